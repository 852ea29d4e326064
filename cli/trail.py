"""``partnerledger trail``: one entity's audit trail, from the trail view."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import click
import msgspec
from rich.table import Table
from rich.text import Text

from partnerledger import DomainError
from partnerledger.commands import COMMAND_TYPES
from partnerledger.sql import SqlBackend
from partnerledger.views.trail import KINDS, LIMIT, TrailEntry, trail

from .asof import as_of_options, cut_of, show_cut, views_at
from .main import _fail, _parse_time, _state, cli, err, out

#: Fields every command has: shown in their own columns, not among the details.
_COMMON = {"type", "network", "actor", "occurred_at", "command_id"}


@cli.command("trail")
@click.option("--network", required=True, help="The network.")
@click.option(
    "--entity",
    required=True,
    metavar="KIND:ID",
    help=f"The entity, e.g. member:alice or referral:r-17 (kinds: {', '.join(KINDS)}).",
)
@click.option(
    "--type", "types", multiple=True, metavar="TYPE", help="Only this event type (repeatable)."
)
@click.option("--actor", help="Only events this actor recorded.")
@click.option("--since", help="Business time from (inclusive), ISO 8601.")
@click.option("--until", help="Business time until (exclusive), ISO 8601.")
@click.option("--search", help="Only events whose command contains this text (any case).")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many events.")
@as_of_options
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per line instead of a table."
)
def trail_(
    network: str,
    entity: str,
    types: tuple[str, ...],
    actor: str | None,
    since: str | None,
    until: str | None,
    search: str | None,
    limit: int | None,
    as_of: str | None,
    as_of_recorded: str | None,
    as_json: bool,
) -> None:
    """Show an entity's audit trail: every event, oldest first, with actor and times.

    A referral's and an agreement's events are in the trail of each member
    they concern; every event of a network is in the trail of network:SLUG.
    With --as-of or --as-of-recorded, only the events the cut keeps.
    """
    for name in types:
        if name not in COMMAND_TYPES:
            raise click.BadParameter(f"unknown event type {name!r}", param_hint="--type")
    begin = _parse_time(since, "--since")
    end = _parse_time(until, "--until")
    cut = cut_of(as_of, as_of_recorded)
    if cut is None:
        db = _state().projector().db
        _show(db, network, entity, types, actor, begin, end, search, limit, as_json)
        return
    with views_at(network, cut) as views:
        _show(views, network, entity, types, actor, begin, end, search, limit, as_json)
    show_cut(cut)


def _show(
    db: SqlBackend,
    network: str,
    entity: str,
    types: tuple[str, ...],
    actor: str | None,
    begin: datetime | None,
    end: datetime | None,
    search: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Print the trail from the views in ``db``."""

    def entries() -> Iterator[TrailEntry]:
        """The whole trail (or ``limit`` entries), read a page at a time."""
        after, left = 0, limit
        while left is None or left > 0:
            size = LIMIT if left is None else min(left, LIMIT)
            page = trail(
                db,
                network,
                entity,
                types=types,
                actor=actor,
                since=begin,
                until=end,
                search=search,
                after=after,
                limit=size,
            )
            yield from page
            if len(page) < size:
                return
            after = page[-1].position
            left = None if left is None else left - len(page)

    try:
        if as_json:
            for entry in entries():
                sys.stdout.buffer.write(msgspec.json.encode(entry.as_dict()) + b"\n")
            return
        table = Table(show_lines=False, header_style="bold")
        for column in ("#", "occurred (UTC)", "recorded (UTC)", "type", "actor", "details"):
            table.add_column(column, overflow="fold")
        rows = 0
        for entry in entries():
            table.add_row(
                str(entry.position),
                entry.occurred_at.strftime("%Y-%m-%d %H:%M"),
                entry.recorded_at.strftime("%Y-%m-%d %H:%M:%S"),
                entry.type,
                Text(entry.actor),  # Text: what a user typed is never read as markup
                Text(_details(entry.command)),
            )
            rows += 1
    except DomainError as error:
        raise _fail(error) from error
    out.print(table)
    err.print(f"{rows} event{'' if rows == 1 else 's'} in the trail of {entity}")


def _details(command: dict[str, Any]) -> str:
    """The command's own fields, as ``key=value`` pairs."""
    return ", ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value, separators=(',', ':'))}"
        for key, value in command.items()
        if key not in _COMMON
    )
