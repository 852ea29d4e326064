"""``partnerledger audit``: tamper evidence, recorded decisions and audit bundles."""

from __future__ import annotations

import json

import click

from partnerledger import DomainError
from partnerledger.audit.checkpoints import installation_signer, record_checkpoint
from partnerledger.audit.note import NoteError, Verifier
from partnerledger.audit.verify import verify_network
from partnerledger.errors import InvalidCommand
from partnerledger.sql import connect

from .main import _fail, _state, cli, out


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
