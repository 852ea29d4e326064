"""``partnerledger``: the command line, a thin shell over the core.

Exit codes: 0 ok, 1 the domain refused the command (or the store failed),
2 usage error (click's own).
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import click
import msgspec
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from partnerledger import Database, DomainError, Ledger, Store, __version__
from partnerledger.commands import (
    COMMAND_TYPES,
    command_schema,
    convert_command,
    encode_command,
)
from partnerledger.delivery import Deliveries, DeliveryReport
from partnerledger.errors import from_validation_error
from partnerledger.events import Event
from partnerledger.jsonl import ImportReport, export_lines, import_lines
from partnerledger.ledger import default_rules
from partnerledger.log import EventFilter, select_events
from partnerledger.privacy import reveal_in_batches
from partnerledger.projection import Projector

#: Show a progress bar when views are this many events behind.
PROGRESS_FROM = 5000

# Messages never wrap (soft_wrap) so that they stay greppable when piped; tables
# take the terminal's width, or a wide page when the output is not a terminal.
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)
if not out.is_terminal:
    out.width = 200


class Fail(click.ClickException):
    """A refused command: exit code 1, printed as ``Error: field: reason``."""

    exit_code = 1


def _fail(error: DomainError) -> Fail:
    return Fail(f"{error.field}: {error.reason}")


class _Rate(ProgressColumn):
    """Items per second, as the import and export bars show."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} events/s" if speed else "- events/s", style="cyan")


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeElapsedColumn(),
        console=err,
        disable=not enabled,
        transient=False,
    )
    with progress:
        yield progress


# ----------------------------------------------------------------- the group


class _Context:
    def __init__(self, database: str | None) -> None:
        self.database_arg = database
        self._store: Store | None = None
        self._projector: Projector | None = None

    def store(self) -> Store:
        if self._store is None:
            try:
                self._store = Store(Database.parse(self.database_arg))
            except DomainError as error:
                raise _fail(error) from error
        return self._store

    def projector(self) -> Projector:
        """The views, brought up to the end of the log (the CLI follows it itself)."""
        if self._projector is None:
            try:
                self._projector = Projector(self.store())
            except DomainError as error:
                raise _fail(error) from error
        self.catch_up()
        return self._projector

    def catch_up(self, show: bool | None = None) -> None:
        """Bring the views up to date after a write, with a progress bar when it takes long."""
        projector = self._projector
        if projector is None:
            try:
                projector = self._projector = Projector(self.store())
            except DomainError as error:
                raise _fail(error) from error
        behind = projector.lag()
        try:
            visible = err.is_terminal if show is None else show
            with _progress(visible and behind > PROGRESS_FROM) as bar:
                task = bar.add_task("Updating views", total=behind)
                projector.catch_up(lambda done, _: bar.update(task, completed=done))
        except DomainError as error:
            raise _fail(error) from error

    def close(self) -> None:
        if self._projector is not None:
            self._projector.close()
        if self._store is not None:
            self._store.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--database",
    envvar="PARTNERLEDGER_DATABASE",
    metavar="PATH|URL",
    help="SQLite file (default ./partnerledger.db) or postgresql://user:pw@host:port/db "
    "[env PARTNERLEDGER_DATABASE].",
)
@click.version_option(__version__, prog_name="partnerledger")
@click.pass_context
def cli(ctx: click.Context, database: str | None) -> None:
    """An append-only ledger of a partner network's history.

    Every change is a command; every accepted command is an event in the log.
    """
    state = _Context(database)
    ctx.obj = state
    ctx.call_on_close(state.close)


def _state() -> _Context:
    state: _Context = click.get_current_context().find_object(_Context)  # type: ignore[assignment]
    return state


@cli.command()
def init() -> None:
    """Create the event store (tables) if it does not exist yet."""
    store = _state().store()
    count = store.last_position()
    out.print(f"Event store ready: {store.database.describe()} ({count} events)")


@cli.command(name="import")
@click.argument("file", type=click.File("rb"))
@click.option("--skip-invalid", is_flag=True, help="Import the good lines; save the bad ones.")
@click.option(
    "--rejected",
    "rejected_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Where --skip-invalid writes rejected lines (default FILE.rejected.jsonl).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--progress/--no-progress", default=None, help="Show a progress bar (default: on a terminal)."
)
def import_(
    file: IO[bytes],
    skip_invalid: bool,
    rejected_path: str | None,
    as_json: bool,
    progress: bool | None,
) -> None:
    """Import commands from a JSON Lines FILE ('-' for stdin).

    The whole file is checked first: if any line is bad, nothing is written and
    every bad line is reported (the first 50). Lines already in the store are
    skipped, so importing a file twice records it once.
    """
    ledger = Ledger(_state().store())
    show = err.is_terminal if progress is None else progress
    total = _count_lines(file)
    with _progress(show) as bar:
        check = bar.add_task("checking", total=total)
        write = bar.add_task("writing", total=None, visible=False)

        def on_write(n: int) -> None:
            bar.update(write, visible=True, advance=n)

        try:
            report = import_lines(
                ledger,
                file,
                skip_invalid=skip_invalid,
                on_line=lambda n: bar.advance(check, n),
                on_write=on_write,
            )
        except DomainError as error:
            raise _fail(error) from error
    if skip_invalid and report.rejected:
        name = getattr(file, "name", "<stdin>")
        source = "stdin" if name == "<stdin>" else name
        target = Path(rejected_path or f"{source}.rejected.jsonl")
        with target.open("wb") as rejected:
            for line in report.rejected:
                rejected.write(msgspec.json.encode(line.as_dict()) + b"\n")
        err.print(f"{report.rejected_count} rejected lines written to {target}")
    if report.written:
        _state().catch_up(show)
    _print_report(report, as_json)
    if report.rejected and not skip_invalid:
        sys.exit(1)


def _count_lines(file: IO[bytes]) -> int | None:
    if not file.seekable():
        return None
    count, last = 0, b"\n"
    for chunk in iter(lambda: file.read(1 << 20), b""):  # chunks: a line may be huge
        count += chunk.count(b"\n")
        last = chunk[-1:]
    file.seek(0)
    return count + (last != b"\n")


def _print_report(report: ImportReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    if report.rejected and not report.written:
        err.print(
            f"[red]Nothing imported:[/] {report.rejected_count} of {report.lines} lines "
            "are invalid."
        )
    for line in report.shown:
        err.print(f"  line {line.line}: {line.field}: {line.reason}", markup=False)
    if report.rejected_count > len(report.shown):
        err.print(f"  ... and {report.rejected_count - len(report.shown)} more")
    if report.written:
        out.print(
            f"Imported {report.recorded} events"
            f" ({report.duplicates} already recorded, {report.rejected_count} rejected)"
        )


@cli.command()
@click.option("--network", help="Only this network's history (default: every network).")
@click.option(
    "--output", "-o", type=click.File("wb"), default="-", help="File to write (default stdout)."
)
@click.option(
    "--progress/--no-progress", default=None, help="Show a progress bar (default: on a terminal)."
)
def export(network: str | None, output: IO[bytes], progress: bool | None) -> None:
    """Export the recorded commands as JSON Lines, in log order.

    Importing the file into an empty store and exporting again gives the same bytes.
    """
    store = _state().store()
    show = err.is_terminal if progress is None else progress
    with _progress(show) as bar:
        task = bar.add_task("exporting", total=store.last_position())
        try:
            count = export_lines(
                store, output, network=network, on_event=lambda n: bar.advance(task, n)
            )
        except DomainError as error:
            raise _fail(error) from error
    err.print(f"Exported {count} events")


@cli.command()
@click.option(
    "--output", "-o", type=click.File("w"), default="-", help="File to write (default stdout)."
)
def schema(output: IO[str]) -> None:
    """Print the JSON Schema of one import line (generated from the command types)."""
    output.write(json.dumps(command_schema(), indent=2, sort_keys=True) + "\n")


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected an ISO 8601 date or time", param_hint=option) from None
    if moment.tzinfo is None:
        if "T" in value or " " in value:
            raise click.BadParameter(
                "give a time with an offset, e.g. Z or +02:00", param_hint=option
            )
        moment = moment.replace(tzinfo=UTC)  # a bare date is midnight UTC
    return moment.astimezone(UTC)


@cli.command()
@click.option("--network", help="Only this network.")
@click.option(
    "--type", "types", multiple=True, metavar="TYPE", help="Only this event type (repeatable)."
)
@click.option("--member", help="Only events that concern this member.")
@click.option("--since", help="Business time from (inclusive), ISO 8601.")
@click.option("--until", help="Business time until (exclusive), ISO 8601.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many events.")
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per line instead of a table."
)
def events(
    network: str | None,
    types: tuple[str, ...],
    member: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Show the log: every event, oldest first, filtered."""
    for name in types:
        if name not in COMMAND_TYPES:
            raise click.BadParameter(f"unknown event type {name!r}", param_hint="--type")
    where = EventFilter(
        network=network,
        types=types,
        member=member,
        since=_parse_time(since, "--since"),
        until=_parse_time(until, "--until"),
    )
    store = _state().store()
    try:
        # Personal fields are sealed in the log: shown in the clear, or [erased].
        found = reveal_in_batches(Ledger(store).vault, select_events(store, where, limit=limit))
        if as_json:
            for position, event in found:
                sys.stdout.buffer.write(_event_json(position, event) + b"\n")
            return
        table = Table(show_lines=False, header_style="bold")
        for column in ("#", "occurred (UTC)", "type", "network", "actor", "details"):
            table.add_column(column, overflow="fold")
        rows = 0
        for position, event in found:
            table.add_row(
                str(position),
                event.occurred_at.strftime("%Y-%m-%d %H:%M"),
                event.type,
                event.network,
                event.actor,
                _details(event),
            )
            rows += 1
    except DomainError as error:
        raise _fail(error) from error
    out.print(table)
    err.print(f"{rows} events")


_HIDDEN = {"type", "network", "actor", "occurred_at", "command_id"}


def _details(event: Event) -> str:
    data = msgspec.to_builtins(event.command)
    return ", ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value, separators=(',', ':'))}"
        for key, value in data.items()
        if key not in _HIDDEN
    )


def _event_json(position: int, event: Event) -> bytes:
    return msgspec.json.encode(
        {
            "position": position,
            "type": event.type,
            "aggregate_id": event.originator_id,
            "version": event.originator_version,
            "recorded_at": event.recorded_at,
            "command_id": event.command_id,
            "command": event.command,
        }
    )


@cli.command()
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same history).")
@click.option("--members", default=40, show_default=True, type=click.IntRange(min=4))
@click.option("--months", default=24, show_default=True, type=click.IntRange(min=1))
@click.option("--networks", default=1, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--output",
    "-o",
    type=click.File("wb"),
    help="Write the commands as JSON Lines instead of importing them.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Show a progress bar (default: on a terminal)."
)
def demo(
    seed: int,
    members: int,
    months: int,
    networks: int,
    output: IO[bytes] | None,
    progress: bool | None,
) -> None:
    """Generate a realistic demo network (deterministic for a seed) and load it."""
    from partnerledger.demo import generate

    commands = generate(seed=seed, members=members, months=months, networks=networks)
    if output is not None:
        count = 0
        for command in commands:
            output.write(encode_command(command) + b"\n")
            count += 1
        err.print(f"Wrote {count} commands")
        return
    ledger = Ledger(_state().store())
    show = err.is_terminal if progress is None else progress
    with _progress(show) as bar:
        check = bar.add_task("generating", total=None)
        write = bar.add_task("writing", total=None, visible=False)
        try:
            report = import_lines(
                ledger,
                (encode_command(c) for c in commands),
                on_line=lambda n: bar.advance(check, n),
                on_write=lambda n: bar.update(write, visible=True, advance=n),
            )
        except DomainError as error:
            raise _fail(error) from error
    if report.written:
        _state().catch_up(show)
    _print_report(report, as_json=False)
    if report.rejected:
        sys.exit(1)


# ----------------------------------------------------------- domain actions


def _default_actor() -> str:
    return os.environ.get("PARTNERLEDGER_ACTOR") or f"{getpass.getuser()}@{socket.gethostname()}"


def _action(fn: Callable[..., dict[str, Any]]) -> Callable[..., None]:
    """Give a command-building function the common options, and run what it builds."""

    @click.option(
        "--actor", default=None, help="Who does this [default: $PARTNERLEDGER_ACTOR or user@host]."
    )
    @click.option(
        "--at", "at", default=None, help="When it happened (ISO 8601 with offset) [default: now]."
    )
    @click.option(
        "--command-id", default=None, help="Idempotency key (default: derived from the content)."
    )
    @click.option("--json", "as_json", is_flag=True, help="Print the recorded event as JSON.")
    def run(
        actor: str | None, at: str | None, command_id: str | None, as_json: bool, **options: Any
    ) -> None:
        payload = {
            key: value for key, value in fn(**options).items() if value not in (None, (), {})
        }
        payload["actor"] = actor or _default_actor()
        payload["occurred_at"] = at or datetime.now(UTC).isoformat()
        if command_id:
            payload["command_id"] = command_id
        _execute(payload, as_json)

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


def _execute(payload: dict[str, Any], as_json: bool) -> None:
    try:
        command = convert_command(payload)
    except msgspec.ValidationError as error:
        raise _fail(from_validation_error(error)) from error
    store = _state().store()
    ledger = Ledger(store)
    try:
        outcome = ledger.execute(command)
    except DomainError as error:
        raise _fail(error) from error
    if not outcome.recorded:
        err.print(f"Already recorded: {command.type} (nothing written)")
        return
    event = ledger.vault.reveal_events(outcome.recorded)[0]  # personal data is stored sealed
    try:
        _state().catch_up()
    except Fail as error:  # recorded: only the views are behind, and they catch up later
        err.print(
            f"Warning: recorded, but the views are not up to date ({error.message}); "
            "they catch up with the next command or `partnerledger worker`",
            markup=False,
        )
    if as_json:
        sys.stdout.buffer.write(_event_json(store.last_position(), event) + b"\n")
    else:
        out.print(f"Recorded {event.type}: {_details(event)}", markup=False)


def _load_json_option(value: str | None, option: str) -> Any:
    if value is None:
        return None
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
        return json.loads(text)
    except (OSError, ValueError) as error:
        raise click.BadParameter(
            f"expected JSON or @file.json: {error}", param_hint=option
        ) from None


def _tiers(values: tuple[str, ...]) -> list[dict[str, Any]]:
    tiers = []
    for value in values:
        name, _, rest = value.partition(":")
        threshold, _, benefits = rest.partition(":")
        if not name or not threshold:
            raise click.BadParameter(
                f"{value!r}: expected NAME:THRESHOLD[:BENEFIT;BENEFIT]", param_hint="--tier"
            )
        tiers.append(
            {
                "name": name,
                "threshold": threshold,
                "benefits": [b for b in benefits.split(";") if b],
            }
        )
    return tiers


NETWORK = click.argument("network")
TIER = click.option(
    "--tier",
    "tiers",
    multiple=True,
    metavar="NAME:THRESHOLD[:BENEFITS]",
    help="A rung of the tier ladder, lowest first, benefits separated by ';' (repeatable).",
)


@cli.group()
def network() -> None:
    """Create networks and set their tier ladder."""


@network.command("create")
@NETWORK
@click.option("--name", required=True, help="Display name.")
@click.option("--currency", required=True, help="ISO 4217 code, e.g. USD.")
@click.option(
    "--period",
    type=click.Choice(["month", "quarter", "rolling"]),
    default="month",
    show_default=True,
)
@click.option("--rolling-days", type=int, help="Length of a rolling period.")
@TIER
@_action
def network_create(
    network: str,
    name: str,
    currency: str,
    period: str,
    rolling_days: int | None,
    tiers: tuple[str, ...],
) -> dict[str, Any]:
    """Create NETWORK."""
    return {
        "type": "network.created",
        "network": network,
        "name": name,
        "currency": currency,
        "period": period,
        "rolling_days": rolling_days,
        "tiers": _tiers(tiers),
    }


@network.command("tiers")
@NETWORK
@TIER
@_action
def network_tiers(network: str, tiers: tuple[str, ...]) -> dict[str, Any]:
    """Replace NETWORK's tier ladder."""
    return {"type": "network.tiers_set", "network": network, "tiers": _tiers(tiers)}


@cli.command("deliver")
@click.option(
    "--follow", is_flag=True, help="Keep delivering as events are recorded, until Ctrl-C."
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="With --follow: at most one round per this many seconds.",
)
@click.option("--json", "as_json", is_flag=True, help="Print each round's counts as JSON.")
def deliver(follow: bool, interval: float, as_json: bool) -> None:
    """Send the notifications of recorded events: inbox messages, emails, webhooks.

    Queues the messages of every event recorded since the last run (the
    network's enabled plugins decide them), then attempts every delivery that
    is due; a failed one is retried with backoff by later runs. Email goes to
    $PARTNERLEDGER_SMTP (host:port, default 127.0.0.1:25) from
    $PARTNERLEDGER_MAIL_FROM. Recording events never waits for this.
    """
    store = _state().store()
    ledger = Ledger(store)
    try:
        with Deliveries(store.database) as deliveries:
            while True:
                started = time.monotonic()
                queued = deliveries.collect(ledger)
                report = deliveries.deliver()
                _print_round(deliveries, queued, report, as_json, quiet=follow)
                if not follow:
                    return
                time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except DomainError as error:
        raise _fail(error) from error
    except KeyboardInterrupt:
        err.print("Stopped.")


def _print_round(
    deliveries: Deliveries, queued: int, report: DeliveryReport, as_json: bool, quiet: bool
) -> None:
    if as_json:
        data = {
            "position": deliveries.position(),
            "queued": queued,
            **report.as_dict(),
            "totals": deliveries.status_counts(),
        }
        click.echo(json.dumps(data))
        return
    if quiet and not queued and not report.attempted:
        return  # --follow: say nothing when nothing happened
    totals = deliveries.status_counts()
    out.print(
        f"Queued {queued} deliveries (log position {deliveries.position()}); "
        f"attempted {report.attempted}: {report.delivered} delivered, "
        f"{report.retrying} to retry, {report.failed} failed. "
        f"Totals: {totals['pending']} pending, {totals['delivered']} delivered, "
        f"{totals['failed']} failed.",
        markup=False,
    )
    for problem in report.errors:
        when = "gave up" if problem["final"] else "will retry"
        err.print(
            f"Delivery {problem['id']} ({problem['channel']} to {problem['recipient']}) "
            f"failed, attempt {problem['attempts']}, {when}: {problem['error']}",
            markup=False,
        )


@cli.command("inbox")
@click.argument("network")
@click.argument("member")
@click.option("--unread", is_flag=True, help="Only messages not read yet.")
@click.option("--mark-read", is_flag=True, help="Mark the messages shown as read.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def inbox_(network: str, member: str, unread: bool, mark_read: bool, as_json: bool) -> None:
    """MEMBER's in-app messages in NETWORK, newest first (`partnerledger deliver` sends them)."""
    store = _state().store()
    try:
        work = Ledger(store).unit_of_work()
        work.network(network)
        work.member(network, member, "member")
        with Deliveries(store.database) as deliveries:
            messages = deliveries.inbox(network, member, unread_only=unread)
            if mark_read:
                for message in messages:
                    deliveries.mark_read(message.id)
    except DomainError as error:
        raise _fail(error) from error
    if as_json:
        for message in messages:
            click.echo(json.dumps(message.as_dict()))
        return
    table = Table(header_style="bold")
    for column in ("#", "received (UTC)", "subject", "message", "read"):
        table.add_column(column, overflow="fold")
    for message in messages:
        table.add_row(
            str(message.id),
            message.created_at.strftime("%Y-%m-%d %H:%M"),
            message.subject,
            message.body,
            "yes" if message.read_at else "",
        )
    out.print(table)
    unread_count = sum(1 for message in messages if message.read_at is None)
    err.print(f"{len(messages)} messages, {unread_count} unread")


def _judged_json(judged: list[Any]) -> bytes:
    rows = [
        {
            "position": j.position,
            "event": j.event.type,
            "command_id": j.event.command_id,
            "occurred_at": j.event.occurred_at,
            "decision": j.decision,
        }
        for j in judged
    ]
    return msgspec.json.encode(rows) + b"\n"


@cli.command("incentives")
@click.argument("network")
@click.option("--member", help="Only this member's entries.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def incentives_(network: str, member: str | None, as_json: bool) -> None:
    """What NETWORK's incentive plugins derive from its conversions and reversals (writes nothing).

    The log is replayed: each event is judged with the plugins, settings and
    agreement terms in force when it was recorded. Totals per member follow.
    """
    from partnerledger.replay import incentive_entries

    try:
        judged = incentive_entries(Ledger(_state().store()), network)
    except DomainError as error:
        raise _fail(error) from error
    judged = [j for j in judged if member is None or j.decision.value.member == member]
    if as_json:
        sys.stdout.buffer.write(_judged_json(judged))
        return
    table = Table(header_style="bold")
    for column in ("#", "occurred (UTC)", "member", "kind", "amount", "note", "rule"):
        table.add_column(column, overflow="fold")
    totals: dict[tuple[str, str], Decimal] = {}
    for j in judged:
        entry = j.decision.value
        table.add_row(
            str(j.position),
            j.event.occurred_at.strftime("%Y-%m-%d"),
            entry.member,
            entry.kind,
            f"{entry.amount} {entry.currency}",
            entry.note,
            f"{j.decision.plugin} {j.decision.version}",
        )
        key = (entry.member, entry.currency)
        totals[key] = totals.get(key, Decimal(0)) + entry.amount
    out.print(table)
    for (who, currency), total in sorted(totals.items()):
        out.print(f"{who}: {total} {currency}")
    if not judged:
        err.print("No entries: is an incentive plugin (e.g. fees) enabled on this network?")


@cli.command("attributions")
@click.argument("network")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def attributions_(network: str, as_json: bool) -> None:
    """Credit for customers sent to the same member by two or more referrals (writes nothing)."""
    from partnerledger.replay import attributions

    ledger = Ledger(_state().store())
    try:
        judged = attributions(ledger, network)
    except DomainError as error:
        raise _fail(error) from error
    if as_json:
        sys.stdout.buffer.write(_judged_json(judged))
        return
    # Grouped by data subject; the name shown is revealed ([erased] once erased).
    customers = ledger.vault.reveal_many(
        network, [("customer", j.event.command.customer) for j in judged]
    )
    table = Table(header_style="bold")
    for column in ("customer", "to member", "referral", "credit to", "share", "rule"):
        table.add_column(column)
    for j, customer in zip(judged, customers, strict=True):
        credit = j.decision.value
        table.add_row(
            customer or "",
            j.event.command.to_member,
            credit.referral,
            credit.member,
            str(credit.share),
            f"{j.decision.plugin} {j.decision.version}",
        )
    out.print(table)
    if not judged:
        err.print("No competing referrals, or no attribution plugin enabled on this network.")


@cli.command("plugins")
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
@click.option("--hook", "hook", help="Only plugins that implement this hook.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins_(show_all: bool, hook: str | None, as_json: bool) -> None:
    """List installed plugins with their version, hooks and settings."""
    rules = default_rules()
    infos = [rules.info(name) for name in rules.names()]
    infos = [i for i in infos if (show_all or not i.builtin) and (hook is None or hook in i.hooks)]
    if as_json:
        listing = {
            "plugins": [i.as_dict() for i in infos],
            "failed": [{"name": n, "error": e} for n, e in sorted(rules.failures.items())],
        }
        click.echo(json.dumps(listing, indent=2))
        return
    table = Table(header_style="bold")
    for column in ("plugin", "version", "hooks", "settings"):
        table.add_column(column, overflow="fold")
    for info in infos:
        settings = ", ".join(
            f"{name}={spec.get('default', '')}"
            for name, spec in _settings_fields(info.settings).items()
        )
        table.add_row(
            info.name + (" (built-in)" if info.builtin else ""),
            info.version,
            "\n".join(info.hooks),
            settings,
        )
    out.print(table)
    if not show_all:
        err.print("Built-in plugins are hidden; --all lists them.")
    for name, error in sorted(rules.failures.items()):
        err.print(f"[red]Failed to load plugin {name}:[/] {error}", markup=True)


def _settings_fields(schema: dict[str, Any] | None) -> dict[str, Any]:
    if not schema:
        return {}
    ref = schema.get("$ref", "").rsplit("/", 1)[-1]
    definition = schema.get("$defs", {}).get(ref, schema)
    properties: dict[str, Any] = definition.get("properties", {})
    return properties


def _settings(values: tuple[str, ...], settings_json: str | None) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if settings_json is not None:
        loaded = _load_json_option(settings_json, "--settings")
        if not isinstance(loaded, dict):
            raise click.BadParameter("expected a JSON object", param_hint="--settings")
        settings.update(loaded)
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r}: expected NAME=VALUE", param_hint="--set")
        try:
            settings[key] = json.loads(raw)
        except ValueError:
            settings[key] = raw
    return settings


@cli.group()
def plugin() -> None:
    """Enable, configure and disable a network's plugins."""


SETTINGS = [
    click.option(
        "--set",
        "values",
        multiple=True,
        metavar="NAME=VALUE",
        help="A setting (VALUE is JSON, or else a string); repeatable.",
    ),
    click.option(
        "--settings", "settings_json", metavar="JSON|@FILE", help="All settings as a JSON object."
    ),
]


def _with_settings(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(SETTINGS):
        fn = option(fn)
    return fn


def _plugin_settings_command(name: str, type_: str, doc: str) -> None:
    """``plugin enable`` and ``plugin configure``: a plugin and its whole settings."""

    def build(
        network: str, plugin: str, values: tuple[str, ...], settings_json: str | None
    ) -> dict[str, Any]:
        return {
            "type": type_,
            "network": network,
            "plugin": plugin,
            "settings": _settings(values, settings_json),
        }

    build.__name__ = f"plugin_{name}"
    build.__doc__ = doc
    command = _with_settings(_action(build))
    plugin.command(name)(NETWORK(click.argument("plugin")(command)))


_plugin_settings_command(
    "enable", "plugin.enabled", "Enable PLUGIN on NETWORK, with settings (defaults fill the rest)."
)
_plugin_settings_command(
    "configure",
    "plugin.configured",
    "Replace the settings of PLUGIN on NETWORK (what is left out takes its default).",
)


@plugin.command("disable")
@NETWORK
@click.argument("plugin")
@_action
def plugin_disable(network: str, plugin: str) -> dict[str, Any]:
    """Disable PLUGIN on NETWORK."""
    return {"type": "plugin.disabled", "network": network, "plugin": plugin}


@cli.group()
def member() -> None:
    """Add members and change their status."""


PROFILE = [
    click.option("--name", help="Business name."),
    click.option("--category", help="Category, e.g. accountant."),
    click.option("--service-area", help="Where the member works."),
    click.option("--email", help="Contact email."),
    click.option("--phone", help="Contact phone."),
    click.option("--person", help="Contact person."),
]


def _profile(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(PROFILE):
        fn = option(fn)
    return fn


def _contact(email: str | None, phone: str | None, person: str | None) -> dict[str, str] | None:
    contact = {k: v for k, v in (("email", email), ("phone", phone), ("person", person)) if v}
    return contact or None


@member.command("add")
@NETWORK
@click.argument("member")
@_profile
@click.option("--invite", is_flag=True, help="Invite (status invited) instead of adding as active.")
@_action
def member_add(
    network: str,
    member: str,
    name: str | None,
    category: str | None,
    service_area: str | None,
    email: str | None,
    phone: str | None,
    person: str | None,
    invite: bool,
) -> dict[str, Any]:
    """Add MEMBER to NETWORK (member.joined), or invite it (member.invited).

    An invited member joins with `add` too (without --invite).
    """
    return {
        "type": "member.invited" if invite else "member.joined",
        "network": network,
        "member": member,
        "name": name,
        "category": category,
        "service_area": service_area,
        "contact": _contact(email, phone, person),
    }


@member.command("update")
@NETWORK
@click.argument("member")
@_profile
@_action
def member_update(
    network: str,
    member: str,
    name: str | None,
    category: str | None,
    service_area: str | None,
    email: str | None,
    phone: str | None,
    person: str | None,
) -> dict[str, Any]:
    """Change MEMBER's profile."""
    return {
        "type": "member.updated",
        "network": network,
        "member": member,
        "name": name,
        "category": category,
        "service_area": service_area,
        "contact": _contact(email, phone, person),
    }


def _step(
    group: click.Group, name: str, type_: str, subject: str, doc: str, with_reason: bool
) -> None:
    """A command whose only input is the subject (and maybe a reason)."""

    def build(network: str, reason: str | None = None, **subject_arg: str) -> dict[str, Any]:
        return {"type": type_, "network": network, "reason": reason, **subject_arg}

    build.__name__ = f"{group.name}_{name}"
    build.__doc__ = doc
    command = _action(build)
    if with_reason:
        command = click.option("--reason", help="Why.")(command)
    command = click.argument(subject)(command)
    group.command(name)(NETWORK(command))


def _member_status(name: str, type_: str, doc: str) -> None:
    _step(member, name, type_, "member", doc, with_reason=True)


_member_status("suspend", "member.suspended", "Suspend an active MEMBER.")
_member_status("reinstate", "member.reinstated", "Reinstate a suspended MEMBER.")
_member_status("leave", "member.left", "Record that MEMBER left the network.")


@cli.group()
def introduction() -> None:
    """Record introductions."""


@introduction.command("make")
@NETWORK
@click.argument("introduction")
@click.option("--introducer", required=True, help="The member making the introduction.")
@click.option("--introduced", required=True, help="The member being introduced.")
@click.option("--to-member", help="Introduced to this member...")
@click.option("--to-business", help="...or to this outside business.")
@click.option("--note")
@_action
def introduction_make(
    network: str,
    introduction: str,
    introducer: str,
    introduced: str,
    to_member: str | None,
    to_business: str | None,
    note: str | None,
) -> dict[str, Any]:
    """Record INTRODUCTION: one member introduces another to a member or an outside business."""
    return {
        "type": "introduction.made",
        "network": network,
        "introduction": introduction,
        "introducer": introducer,
        "introduced": introduced,
        "to_member": to_member,
        "to_business": to_business,
        "note": note,
    }


@cli.group()
def referral() -> None:
    """Send referrals and move them through their lifecycle."""


@referral.command("send")
@NETWORK
@click.argument("referral")
@click.option("--from", "from_member", required=True, help="Sending member.")
@click.option("--to", "to_member", required=True, help="Receiving member.")
@click.option("--customer", required=True, help="The lead (stored encrypted).")
@click.option("--contact", help="The customer's email or phone (stored encrypted).")
@click.option("--subject", help="The customer's data subject id (default: derived from the name).")
@click.option("--note")
@_action
def referral_send(
    network: str,
    referral: str,
    from_member: str,
    to_member: str,
    customer: str,
    contact: str | None,
    subject: str | None,
    note: str | None,
) -> dict[str, Any]:
    """Send REFERRAL from one member to another.

    The customer's name and contact are personal data: sealed in the log,
    erasable with erase-subject (docs/privacy.md).
    """
    return {
        "type": "referral.sent",
        "network": network,
        "referral": referral,
        "from_member": from_member,
        "to_member": to_member,
        "customer": customer,
        "customer_contact": contact,
        "subject": subject,
        "note": note,
    }


def _referral_step(name: str, type_: str, doc: str, with_reason: bool) -> None:
    _step(referral, name, type_, "referral", doc, with_reason)


_referral_step("accept", "referral.accepted", "Accept REFERRAL.", with_reason=False)
_referral_step("decline", "referral.declined", "Decline REFERRAL.", with_reason=True)
_referral_step(
    "lose", "referral.lost", "Record that accepted REFERRAL did not convert.", with_reason=True
)


@referral.command("convert")
@NETWORK
@click.argument("referral")
@click.option("--value", "deal_value", required=True, help="Deal value, e.g. 10000.00.")
@click.option("--currency", required=True, help="ISO 4217 code (the network's).")
@_action
def referral_convert(network: str, referral: str, deal_value: str, currency: str) -> dict[str, Any]:
    """Record that REFERRAL became business (the date is --at)."""
    return {
        "type": "referral.converted",
        "network": network,
        "referral": referral,
        "deal_value": deal_value,
        "currency": currency,
    }


@referral.command("reverse")
@NETWORK
@click.argument("referral")
@click.option("--amount", required=True, help="Amount reversed (all or part of the value).")
@click.option("--reason", required=True, help="Why (refund, chargeback...).")
@click.option("--currency", help="ISO 4217 code (the network's).")
@_action
def referral_reverse(
    network: str, referral: str, amount: str, reason: str, currency: str | None
) -> dict[str, Any]:
    """Reverse all or part of a converted REFERRAL."""
    return {
        "type": "referral.reversed",
        "network": network,
        "referral": referral,
        "amount": amount,
        "reason": reason,
        "currency": currency,
    }


@cli.group()
def agreement() -> None:
    """Propose agreements and move them through their lifecycle."""


TERMS = [
    click.option(
        "--terms",
        "terms_json",
        metavar="JSON|@FILE",
        help="All terms as JSON (see docs/import-format.md); overrides the options below.",
    ),
    click.option("--scope", help="What the agreement covers."),
    click.option("--fee", help="Referral fee per converted referral."),
    click.option("--revenue-share", help="Share of the deal value, as a fraction (0.10 is 10 %)."),
    click.option("--referrals-per-month", type=int, help="Lead-flow target."),
    click.option("--conversion-rate", help="Expected conversion rate, as a fraction."),
    click.option("--duration-days", "term_days", type=int, help="How long the agreement runs."),
    click.option("--exclusive", is_flag=True, help="Exclusivity clause."),
]


def _terms_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(TERMS):
        fn = option(fn)
    return fn


def _terms(
    terms_json: str | None,
    scope: str | None,
    fee: str | None,
    revenue_share: str | None,
    referrals_per_month: int | None,
    conversion_rate: str | None,
    term_days: int | None,
    exclusive: bool,
) -> Any:
    if terms_json is not None:
        return _load_json_option(terms_json, "--terms")
    if scope is None:
        raise click.UsageError("give --scope (or the whole terms with --terms)")
    terms: dict[str, Any] = {"scope": scope, "exclusivity": exclusive}
    if fee is not None:
        terms["compensation"] = {"kind": "referral_fee", "amount": fee}
    elif revenue_share is not None:
        terms["compensation"] = {"kind": "revenue_share", "rate": revenue_share}
    targets = {
        k: v
        for k, v in (
            ("referrals_per_month", referrals_per_month),
            ("conversion_rate", conversion_rate),
        )
        if v is not None
    }
    if targets:
        terms["targets"] = targets
    if term_days is not None:
        terms["duration_days"] = term_days
    return terms


@agreement.command("propose")
@NETWORK
@click.argument("agreement")
@click.option(
    "--kind",
    required=True,
    type=click.Choice(["referral", "co-marketing", "channel", "joint-venture", "supply-chain"]),
)
@click.option(
    "--party",
    "parties",
    multiple=True,
    required=True,
    help="A party: member slug or 'program' (repeat).",
)
@_terms_options
@click.option("--pilot-days", type=int, help="Start with a pilot of this many days (90 is usual).")
@click.option("--goal", "goals", multiple=True, help="A pilot goal (repeatable).")
@_action
def agreement_propose(
    network: str,
    agreement: str,
    kind: str,
    parties: tuple[str, ...],
    pilot_days: int | None,
    goals: tuple[str, ...],
    **terms: Any,
) -> dict[str, Any]:
    """Propose AGREEMENT between parties, with its first terms."""
    pilot = None
    if pilot_days is not None or goals:
        pilot = {"days": pilot_days or 90, "goals": list(goals)}
    return {
        "type": "agreement.proposed",
        "network": network,
        "agreement": agreement,
        "kind": kind,
        "parties": list(parties),
        "terms": _terms(**terms),
        "pilot": pilot,
    }


@agreement.command("accept")
@NETWORK
@click.argument("agreement")
@click.option("--party", required=True, help="The accepting party.")
@_action
def agreement_accept(network: str, agreement: str, party: str) -> dict[str, Any]:
    """Record that one party accepts the proposed AGREEMENT."""
    return {
        "type": "agreement.accepted",
        "network": network,
        "agreement": agreement,
        "party": party,
    }


@agreement.command("amend")
@NETWORK
@click.argument("agreement")
@_terms_options
@click.option(
    "--accepted-by",
    multiple=True,
    required=True,
    help="A party accepting the new terms (every party must).",
)
@_action
def agreement_amend(
    network: str, agreement: str, accepted_by: tuple[str, ...], **terms: Any
) -> dict[str, Any]:
    """Amend AGREEMENT with a new terms version accepted by every party."""
    return {
        "type": "agreement.amended",
        "network": network,
        "agreement": agreement,
        "terms": _terms(**terms),
        "accepted_by": list(accepted_by),
    }


@agreement.command("renew")
@NETWORK
@click.argument("agreement")
@click.option("--duration-days", type=int, help="Length of the new term (default: the terms').")
@_action
def agreement_renew(network: str, agreement: str, duration_days: int | None) -> dict[str, Any]:
    """Renew AGREEMENT for another term."""
    return {
        "type": "agreement.renewed",
        "network": network,
        "agreement": agreement,
        "duration_days": duration_days,
    }


@agreement.command("terminate")
@NETWORK
@click.argument("agreement")
@click.option("--reason", required=True, help="Why it ends.")
@_action
def agreement_terminate(network: str, agreement: str, reason: str) -> dict[str, Any]:
    """Terminate AGREEMENT."""
    return {
        "type": "agreement.terminated",
        "network": network,
        "agreement": agreement,
        "reason": reason,
    }


def _agreement_step(name: str, type_: str, doc: str) -> None:
    _step(agreement, name, type_, "agreement", doc, with_reason=False)


_agreement_step("activate", "agreement.activated", "End AGREEMENT's pilot and make it active.")
_agreement_step("expire", "agreement.expired", "Record that AGREEMENT expired.")


@cli.group()
def chapter() -> None:
    """Record chapter activity: attendance, one-to-ones, visitors, testimonials, TYFCB..."""


@chapter.command("attend")
@NETWORK
@click.argument("meeting")
@click.argument("member")
@click.option(
    "--status",
    required=True,
    type=click.Choice(["present", "late", "absent", "substitute", "medical"]),
)
@click.option("--substitute", help="Who stood in (status substitute).")
@_action
def chapter_attend(
    network: str, meeting: str, member: str, status: str, substitute: str | None
) -> dict[str, Any]:
    """Record MEMBER's attendance at MEETING (e.g. 2025-01-07)."""
    return {
        "type": "meeting.attended",
        "network": network,
        "meeting": meeting,
        "member": member,
        "status": status,
        "substitute": substitute,
    }


@chapter.command("one-to-one")
@NETWORK
@click.argument("member")
@click.argument("with_member")
@click.option("--note")
@_action
def chapter_one_to_one(
    network: str, member: str, with_member: str, note: str | None
) -> dict[str, Any]:
    """Record a one-to-one between MEMBER and WITH_MEMBER."""
    return {
        "type": "one_to_one.held",
        "network": network,
        "member": member,
        "with_member": with_member,
        "note": note,
    }


@chapter.command("visitor")
@NETWORK
@click.argument("member")
@click.argument("visitor")
@click.option("--business", "visitor_business", help="The visitor's business.")
@click.option("--meeting", help="The meeting visited.")
@_action
def chapter_visitor(
    network: str, member: str, visitor: str, visitor_business: str | None, meeting: str | None
) -> dict[str, Any]:
    """Record that MEMBER brought VISITOR."""
    return {
        "type": "visitor.brought",
        "network": network,
        "member": member,
        "visitor": visitor,
        "visitor_business": visitor_business,
        "meeting": meeting,
    }


@chapter.command("testimonial")
@NETWORK
@click.argument("member")
@click.argument("about_member")
@click.option("--text")
@_action
def chapter_testimonial(
    network: str, member: str, about_member: str, text: str | None
) -> dict[str, Any]:
    """Record that MEMBER gave a testimonial about ABOUT_MEMBER."""
    return {
        "type": "testimonial.given",
        "network": network,
        "member": member,
        "about_member": about_member,
        "text": text,
    }


@chapter.command("training")
@NETWORK
@click.argument("member")
@click.argument("training")
@_action
def chapter_training(network: str, member: str, training: str) -> dict[str, Any]:
    """Record that MEMBER completed TRAINING."""
    return {
        "type": "training.completed",
        "network": network,
        "member": member,
        "training": training,
    }


@chapter.command("tyfcb")
@NETWORK
@click.argument("member")
@click.argument("thanked_member")
@click.option("--amount", required=True, help="Value of the closed business.")
@click.option("--currency", required=True, help="ISO 4217 code (the network's).")
@click.option("--referral", help="The referral that brought the business.")
@click.option("--note")
@_action
def chapter_tyfcb(
    network: str,
    member: str,
    thanked_member: str,
    amount: str,
    currency: str,
    referral: str | None,
    note: str | None,
) -> dict[str, Any]:
    """Record MEMBER's thank-you to THANKED_MEMBER for closed business."""
    return {
        "type": "tyfcb.reported",
        "network": network,
        "member": member,
        "thanked_member": thanked_member,
        "amount": amount,
        "currency": currency,
        "referral": referral,
        "note": note,
    }


# The commands that read the views live in modules of their own; importing
# them registers them on the group.
from partnerledger.cli import audit as _audit  # noqa: E402, F401
from partnerledger.cli import audit_decisions as _audit_decisions  # noqa: E402, F401
from partnerledger.cli import disputes as _disputes  # noqa: E402, F401
from partnerledger.cli import privacy as _privacy  # noqa: E402, F401
from partnerledger.cli import views as _views  # noqa: E402, F401


def main() -> None:
    """Console entry point."""
    cli(prog_name="partnerledger")


if __name__ == "__main__":
    main()
