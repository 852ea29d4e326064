"""``partnerledger audit``: tamper evidence, recorded decisions and audit bundles."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from partnerledger import DomainError
from partnerledger.audit.bundle import export_bundle, verify_bundle
from partnerledger.audit.checkpoints import installation_signer, record_checkpoint
from partnerledger.audit.note import NoteError, Verifier
from partnerledger.audit.recheck import recheck_decisions
from partnerledger.audit.verify import verify_network
from partnerledger.errors import InvalidCommand
from partnerledger.sql import connect

from .main import _fail, _progress, _state, cli, err, out


@cli.group()
def audit() -> None:
    """Check history: checkpoints, recorded decisions, audit bundles (see docs/audit.md)."""


def _verifiers(keys: tuple[str, ...]) -> list[Verifier]:
    """The trusted keys: those given, or the installation's own."""
    if not keys:
        return [installation_signer(_state().store().database).verifier()]
    try:
        return [Verifier.from_text(k) for k in keys]
    except NoteError as error:
        raise _fail(InvalidCommand("--key", str(error))) from error


@audit.command("key")
def audit_key() -> None:
    """Print the installation's public (verifier) key, to publish for auditors."""
    try:
        out.print(installation_signer(_state().store().database).verifier().text())
    except DomainError as error:
        raise _fail(error) from error


@audit.command("checkpoint")
@click.option("--network", required=True, help="The network.")
@click.option("--json", "as_json", is_flag=True, help="Print the checkpoint as JSON.")
def audit_checkpoint(network: str, as_json: bool) -> None:
    """Sign a checkpoint of NETWORK's Merkle tree as it stands now."""
    state = _state()
    try:
        signed = record_checkpoint(state.projector(), network)
    except DomainError as error:
        raise _fail(error) from error
    if as_json:
        click.echo(
            json.dumps(
                {
                    "network": network,
                    "size": signed.size,
                    "root": signed.root.hex(),
                    "note": signed.note,
                },
                indent=2,
            )
        )
        return
    click.echo(signed.note, nl=False)


@audit.command("verify")
@click.option("--network", required=True, help="The network.")
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="VKEY",
    help="A trusted verifier key (name+id+key); default: the installation's own key.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def audit_verify(network: str, keys: tuple[str, ...], as_json: bool) -> None:
    """Check NETWORK's stored events against the witness and the signed checkpoints.

    Reports every event edited, deleted, inserted or reordered, by log
    position. Exit status 1 when anything is found.
    """
    state = _state()
    try:
        verifiers = _verifiers(keys)
        store = state.store()
        db = connect(store.database)
        try:
            report = verify_network(store, db, network, verifiers)
        finally:
            db.close()
    except DomainError as error:
        raise _fail(error) from error
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        latest = report.latest
        out.print(
            f"Network {network}: {report.events:,} events in the log, {report.witnessed:,} "
            f"witnessed, {report.checkpoints} checkpoint(s)"
            + (f", the latest at tree size {latest.size:,}" if latest else "")
        )
        if report.unwitnessed:
            out.print(f"{report.unwitnessed:,} newer event(s) not witnessed yet")
        for finding in report.findings:
            out.print(f"[bold red]{finding.kind.upper()}[/]: {finding.message}")
        out.print("[green]OK: history matches its checkpoints[/]" if report.ok else "")
    if not report.ok:
        raise SystemExit(1)


def _moment(value: str | None, option: str) -> datetime | None:
    """A date (its start, UTC) or an ISO 8601 time with an offset."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(
            InvalidCommand(option, f"{value!r} is not a date (2025-03-01) or a time with an offset")
        ) from None
    if moment.tzinfo is None:
        raise _fail(InvalidCommand(option, "give a time with an offset, e.g. Z or +02:00"))
    return moment


@audit.command("export")
@click.option("--network", required=True, help="The network.")
@click.option("--from", "start", help="Only events from this business date or time (inclusive).")
@click.option("--to", "end", help="Only events before this business date or time (exclusive).")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The bundle file to write (written whole or not at all).",
)
@click.option("--progress/--no-progress", default=None, help="Show a progress bar.")
def audit_export(
    network: str, start: str | None, end: str | None, output: Path, progress: bool | None
) -> None:
    """Write NETWORK's audit bundle: events, checkpoints, proofs, decisions, disputes."""
    since, until = _moment(start, "--from"), _moment(end, "--to")
    if since and until and since >= until:
        raise _fail(InvalidCommand("--to", "must be after --from"))
    state = _state()
    try:
        projector = state.projector()
        show = err.is_terminal if progress is None else progress
        with _progress(show) as bar:
            task = bar.add_task("exporting", total=None)
            report = export_bundle(
                projector,
                network,
                output,
                start=since,
                end=until,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except DomainError as error:
        raise _fail(error) from error
    out.print(
        f"Wrote {report.path}: {report.events:,} of {report.tree_size:,} events of {network}, "
        f"{report.checkpoints} checkpoint(s), {report.decisions:,} recorded decisions, "
        f"{report.disputes:,} dispute events ({report.size:,} bytes)"
    )


@audit.command("verify-bundle")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="VKEY",
    help="Trust only this verifier key (the installation's published key); "
    "default: the key inside the bundle, whose fingerprint is printed.",
)
@click.option(
    "--recompute/--no-recompute",
    default=True,
    show_default=True,
    help="Recompute every recorded decision from the bundle's events with the installed rules.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def audit_verify_bundle(
    bundle: Path, keys: tuple[str, ...], recompute: bool, as_json: bool
) -> None:
    """Check an audit BUNDLE offline: no database, no network access, nothing written.

    Exit status 1 when the bundle does not verify, 2 when it verifies but a
    recorded decision recomputes differently.
    """
    try:
        trusted = [Verifier.from_text(k) for k in keys]
    except NoteError as error:
        raise _fail(InvalidCommand("--key", str(error))) from error
    report = verify_bundle(
        bundle, trusted=trusted, recheck=recheck_decisions if recompute else None
    )
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        out.print(f"Bundle {bundle}: network {report.network or '?'}, key {report.key or '?'}")
        if not keys and report.key:
            out.print(
                "[yellow]Trusting the key inside the bundle: compare it with the key "
                "the installation publishes (`partnerledger audit key`), or pass --key.[/]"
            )
        for line in report.passed:
            out.print(f"[green]ok[/]   {line}")
        for line in report.errors:
            out.print(f"[bold red]FAIL[/] {line}")
        for rule in report.unavailable_rules:
            out.print(f"[yellow]could not load[/] {rule}")
        mismatches = [d for d in report.decisions if d.get("status") == "mismatch"]
        if report.decisions:
            out.print(
                f"{len(report.decisions):,} recorded decisions recomputed: "
                f"{len(mismatches):,} mismatch(es)"
            )
        for decision in mismatches:
            out.print(f"[bold red]MISMATCH[/] {decision.get('summary', decision)}")
        out.print(
            "[green]The bundle verifies.[/]" if report.ok else "[red]The bundle does NOT verify.[/]"
        )
    if not report.ok:
        raise SystemExit(1)
    if any(d.get("status") == "mismatch" for d in report.decisions):
        raise SystemExit(2)
