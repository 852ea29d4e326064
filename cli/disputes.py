"""``partnerledger dispute``: raise, comment on, withdraw, resolve and read disputes.

Evidence files are stored by content hash in the store's database before
the event that names them (10 MiB at most each); ``dispute evidence`` writes
one back. A resolution and its compensating events (``--reassign-credit``,
``--adjust``, ``--reverse-entry``) are recorded in one transaction. See
docs/disputes.md.
"""

from __future__ import annotations

import mimetypes
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click
import msgspec
from rich.table import Table
from rich.text import Text

from partnerledger import DomainError, Ledger
from partnerledger.commands import DisputeOutcome
from partnerledger.disputes import (
    DisputeRecord,
    DisputeService,
    Upload,
    dispute_record,
    dispute_records,
    parse_subject,
)
from partnerledger.events import Event
from partnerledger.evidence import EvidenceStore, plain_media_type

from .main import _default_actor, _event_json, _fail, _parse_time, _state, cli, err, out

OUTCOMES: tuple[DisputeOutcome, ...] = ("upheld", "rejected", "partly_upheld")


@cli.group()
def dispute() -> None:
    """Disputes: raised on a referral, a conversion, an attribution or a ledger entry.

    Nothing is edited: a dispute is resolved by compensating events (credit
    reassigned, ledger adjusted) recorded with its resolution.
    """


@contextmanager
def _service() -> Iterator[DisputeService]:
    state = _state()
    store = state.store()
    projector = state.projector()
    try:
        files = EvidenceStore(store.database)
    except DomainError as error:
        raise _fail(error) from error
    try:
        yield DisputeService(Ledger(store), projector, files)
    except DomainError as error:
        raise _fail(error) from error
    finally:
        files.close()


def _uploads(paths: tuple[str, ...]) -> list[Upload]:
    found = []
    for path in paths:
        file = Path(path)
        try:
            data = file.read_bytes()
        except OSError as error:
            raise click.BadParameter(str(error), param_hint="--evidence-file") from None
        kind, _ = mimetypes.guess_type(file.name)
        found.append(Upload(file.name, plain_media_type(kind), data))
    return found


def _when(at: str | None) -> datetime:
    return _parse_time(at, "--at") or datetime.now(UTC)


def _report(events: list[Event], as_json: bool) -> None:
    if not events:
        err.print("Already recorded (nothing written)")
        return
    store = _state().store()
    last = store.last_position()
    for index, event in enumerate(events):
        if as_json:
            position = last - len(events) + index + 1
            sys.stdout.buffer.write(_event_json(position, event) + b"\n")
        else:
            out.print(f"Recorded {event.type} ({event.command_id})", markup=False)


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        (
            click.option("--network", required=True, help="The network."),
            click.option("--dispute", "slug", required=True, help="The dispute's id."),
            click.option(
                "--actor", help="Who does this [default: $PARTNERLEDGER_ACTOR or user@host]."
            ),
            click.option("--at", help="When it happened (ISO 8601 with offset) [default: now]."),
            click.option("--json", "as_json", is_flag=True, help="Print the events as JSON."),
        )
    ):
        fn = option(fn)
    return fn


EVIDENCE_TEXT = click.option(
    "--evidence-text", "texts", multiple=True, help="Evidence as text (repeatable)."
)
EVIDENCE_FILE = click.option(
    "--evidence-file",
    "files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="An evidence file, at most 10 MiB (repeatable).",
)


@dispute.command("raise")
@_common
@click.option(
    "--on",
    "on",
    required=True,
    metavar="KIND:ID",
    help="referral:R, conversion:R, attribution:R or ledger-entry:MEMBER/SOURCE.",
)
@click.option("--by", "by", help="The member raising it [default: a coordinator, the actor].")
@click.option("--statement", required=True, help="What is disputed, and why.")
@EVIDENCE_TEXT
@EVIDENCE_FILE
@click.option("--command-id", help="Idempotency key (default: derived from the content).")
def dispute_raise(
    network: str,
    slug: str,
    actor: str | None,
    at: str | None,
    as_json: bool,
    on: str,
    by: str | None,
    statement: str,
    texts: tuple[str, ...],
    files: tuple[str, ...],
    command_id: str | None,
) -> None:
    """Raise a dispute with a statement and evidence."""
    try:
        kind, subject = parse_subject(on, "--on")
    except DomainError as error:
        raise click.BadParameter(error.reason, param_hint="--on") from None
    uploads = _uploads(files)
    with _service() as service:
        event = service.raise_dispute(
            network=network, dispute=slug, subject_kind=kind, subject=subject,
            statement=statement, raised_by=by, texts=texts, uploads=uploads,
            actor=actor or _default_actor(), at=_when(at), command_id=command_id,
        )  # fmt: skip
    _report([event] if event else [], as_json)


@dispute.command("comment")
@_common
@click.option("--by", "by", help="The member commenting [default: a coordinator, the actor].")
@click.option("--text", required=True, help="The comment.")
@EVIDENCE_TEXT
@EVIDENCE_FILE
def dispute_comment(
    network: str,
    slug: str,
    actor: str | None,
    at: str | None,
    as_json: bool,
    by: str | None,
    text: str,
    texts: tuple[str, ...],
    files: tuple[str, ...],
) -> None:
    """Comment on an open dispute, with evidence."""
    uploads = _uploads(files)
    with _service() as service:
        event = service.comment(
            network=network, dispute=slug, text=text, author=by, texts=texts, uploads=uploads,
            actor=actor or _default_actor(), at=_when(at),
        )  # fmt: skip
    _report([event] if event else [], as_json)


@dispute.command("withdraw")
@_common
@click.option("--by", "by", help="The member who raised it [default: a coordinator].")
@click.option("--reason", help="Why.")
def dispute_withdraw(
    network: str,
    slug: str,
    actor: str | None,
    at: str | None,
    as_json: bool,
    by: str | None,
    reason: str | None,
) -> None:
    """Withdraw an open dispute (only whoever raised it)."""
    with _service() as service:
        event = service.withdraw(
            network=network, dispute=slug, by=by, reason=reason,
            actor=actor or _default_actor(), at=_when(at),
        )  # fmt: skip
    _report([event] if event else [], as_json)


def _pairs(values: tuple[str, ...], option: str, metavar: str) -> list[tuple[str, str]]:
    found = []
    for value in values:
        left, colon, right = value.rpartition(":")
        if not colon or not left or not right:
            raise click.BadParameter(f"{value!r}: expected {metavar}", param_hint=option)
        found.append((left, right))
    return found


@dispute.command("resolve")
@_common
@click.option("--outcome", required=True, type=click.Choice(OUTCOMES), help="The decision.")
@click.option("--reason", required=True, help="Why; also the reason of each compensation.")
@click.option(
    "--reassign-credit",
    "reassign",
    multiple=True,
    metavar="REFERRAL:TO_MEMBER",
    help="Move the referral's credit to another member (repeatable).",
)
@click.option(
    "--adjust",
    multiple=True,
    metavar="MEMBER:AMOUNT",
    help="A signed ledger adjustment, e.g. ann-law:-250 (repeatable).",
)
@click.option(
    "--reverse-entry",
    "reverse",
    multiple=True,
    metavar="MEMBER/SOURCE",
    help="Reverse what is left of a ledger entry (repeatable).",
)
def dispute_resolve(
    network: str,
    slug: str,
    actor: str | None,
    at: str | None,
    as_json: bool,
    outcome: str,
    reason: str,
    reassign: tuple[str, ...],
    adjust: tuple[str, ...],
    reverse: tuple[str, ...],
) -> None:
    """Resolve an open dispute, with its compensating events (one transaction).

    A credit reassignment moves the referral's future incentives and its
    standing credit; money already credited for it moves only with explicit
    --adjust or --reverse-entry.
    """
    moves = _pairs(reassign, "--reassign-credit", "REFERRAL:TO_MEMBER")
    amounts = _pairs(adjust, "--adjust", "MEMBER:AMOUNT")
    with _service() as service:
        events = service.resolve(
            network=network, dispute=slug, outcome=outcome, reason=reason, reassign=moves,
            adjust=amounts, reverse=list(reverse), actor=actor or _default_actor(),
            at=_when(at),
        )  # fmt: skip
    _report(events, as_json)


def _who(member: str | None, actor: str) -> str:
    return f"{member} ({actor})" if member else f"coordinator {actor}"


def _show(record: DisputeRecord) -> None:
    out.print(Text(f"Dispute {record.dispute} on {record.subject_text}: {record.status}"))
    raised = record.raised_at.strftime("%Y-%m-%d %H:%M") if record.raised_at else ""
    out.print(Text(f"Raised {raised} UTC by {_who(record.raised_by, record.actor)}"))
    out.print(Text(f"Statement: {record.statement}"))
    out.print(Text(f"Parties: {', '.join(record.parties) or '-'}"))
    table = Table(header_style="bold", title="Trail")
    for column in ("#", "occurred (UTC)", "type", "actor", "what"):
        table.add_column(column, overflow="fold")
    for entry in record.events:
        command = entry.command
        what = {
            "dispute.raised": command.get("statement", ""),
            "dispute.commented": command.get("text", ""),
            "credit.reassigned": f"{command.get('referral')}: "
            f"{command.get('from_member')} -> {command.get('to_member')}",
            "ledger.adjusted": f"{command.get('member')} {command.get('amount')} "
            f"{command.get('currency')}" + (f" (entry {command['entry']})" if "entry" in command
                                            else ""),
            "dispute.resolved": f"{command.get('outcome')}: {command.get('reason')}",
            "dispute.withdrawn": command.get("reason") or "",
        }.get(entry.type, "")  # fmt: skip
        evidence = command.get("evidence") or []
        if evidence:
            what += " | evidence: " + "; ".join(
                e.get("text") or f"{e.get('name')} {e.get('sha256')} ({e.get('size')} bytes)"
                for e in evidence
            )
        table.add_row(
            str(entry.position),
            entry.occurred_at.strftime("%Y-%m-%d %H:%M"),
            entry.type,
            Text(entry.actor),
            Text(what),
        )
    out.print(table)


@dispute.command("show")
@click.argument("slug", metavar="DISPUTE")
@click.option("--network", required=True, help="The network.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dispute_show(slug: str, network: str, as_json: bool) -> None:
    """A dispute: subject, statement, evidence, comments, compensations, resolution."""
    db = _state().projector().db
    try:
        record = dispute_record(db, network, slug)
    except DomainError as error:
        raise _fail(error) from error
    if as_json:
        sys.stdout.buffer.write(msgspec.json.encode(record.as_dict()) + b"\n")
        return
    _show(record)


@dispute.command("list")
@click.option("--network", required=True, help="The network.")
@click.option(
    "--status", type=click.Choice(("raised", "resolved", "withdrawn")), help="Only these."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def dispute_list(network: str, status: str | None, as_json: bool) -> None:
    """A network's disputes, newest first."""
    db = _state().projector().db
    try:
        found = dispute_records(db, network, status=status)
    except DomainError as error:
        raise _fail(error) from error
    if as_json:
        for record in found:
            sys.stdout.buffer.write(msgspec.json.encode(record.as_dict()) + b"\n")
        return
    table = Table(header_style="bold")
    for column in ("dispute", "subject", "status", "outcome", "raised (UTC)", "by", "comments"):
        table.add_column(column, overflow="fold")
    for record in found:
        table.add_row(
            Text(record.dispute),
            Text(record.subject_text),
            record.status,
            record.outcome or "",
            record.raised_at.strftime("%Y-%m-%d %H:%M") if record.raised_at else "",
            Text(_who(record.raised_by, record.actor)),
            str(len(record.comments)),
        )
    out.print(table)
    err.print(f"{len(found)} dispute{'' if len(found) == 1 else 's'}")


@dispute.command("evidence")
@click.argument("sha256")
@click.option("--network", required=True, help="The network.")
@click.option(
    "--output", "-o", required=True, type=click.File("wb"), help="Where to write the file."
)
def dispute_evidence(sha256: str, network: str, output: IO[bytes]) -> None:
    """Write an evidence file of NETWORK, named by its SHA256 (sha256:...), to a file."""
    try:
        with EvidenceStore(_state().store().database) as files:
            found = files.get(network, sha256)
    except DomainError as error:
        raise _fail(error) from error
    output.write(found.content)
    err.print(f"{found.name} ({found.media_type}, {found.size:,} bytes)")
