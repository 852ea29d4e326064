"""Standings, period close, tier overrides, what-if, statements and payouts."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import click
import msgspec
from rich.table import Table

from partnerledger import DomainError, Ledger
from partnerledger.closing import ClosePlan, close_period, plan_close, what_if
from partnerledger.domain import Network
from partnerledger.errors import NotFound
from partnerledger.periods import Calendar, Period
from partnerledger.sql import SqlBackend
from partnerledger.views import ledger as ledger_view
from partnerledger.views import standings as standings_view
from partnerledger.views.asof import Cut
from partnerledger.views.standings import Standing

from .asof import as_of_options, cut_of, show_cut, views_at
from .main import _action, _default_actor, _fail, _parse_time, _state, cli, err, out

NETWORK_OPTION = click.option("--network", required=True, help="The network's slug.")
PERIOD_HELP = "The period: 2025-06 (month), 2025-Q2 (quarter), or a date inside it."


def _write_json(data: Any) -> None:
    sys.stdout.buffer.write(msgspec.json.encode(data) + b"\n")


def _network(slug: str) -> Network:
    try:
        return Ledger(_state().store()).unit_of_work().network(slug)
    except DomainError as error:
        raise _fail(error) from error


def _period(
    network: Network, text: str | None, views: SqlBackend | None = None, cut: Cut | None = None
) -> Period:
    """The period named, else the one containing the cut's business time, else the latest
    one with events (in the views given, the live ones by default)."""
    calendar = Calendar.of(network)
    try:
        if text is not None:
            return calendar.parse(text)
        if cut is not None and cut.business is not None:
            return calendar.containing(cut.business)
        db = views if views is not None else _state().projector().db
        span = standings_view.span(db, network.network)
        return calendar.containing(span[1] if span else (cut.moment if cut else datetime.now(UTC)))
    except DomainError as error:
        raise _fail(error) from error


# ---------------------------------------------------------------- standings


@cli.command("standings")
@NETWORK_OPTION
@click.option(
    "--period",
    help=PERIOD_HELP + " [default: the latest period with events; with --as-of, the period "
    "containing that moment]",
)
@as_of_options
@click.option("--member", help="Only this member.")
@click.option("--all-members", is_flag=True, help="Include members who left or are not active.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def standings_(
    network: str,
    period: str | None,
    as_of: str | None,
    as_of_recorded: str | None,
    member: str | None,
    all_members: bool,
    as_json: bool,
) -> None:
    """Each member's score (with its breakdown) and tier in a period.

    Open periods are provisional (today's plugins and settings); closed ones
    show the recorded decisions, with any override. With --as-of or
    --as-of-recorded, everything is computed from the log as of that moment
    (the plugins and settings of then, and only the closes recorded by then).
    """
    cut = cut_of(as_of, as_of_recorded)
    if cut is None:
        found_network = _network(network)
        chosen = _period(found_network, period)
        projector = _state().projector()
        try:
            found = standings_view.standings(
                projector.db, projector.rules, found_network, chosen, member=member
            )
        except DomainError as error:
            raise _fail(error) from error
        _show_standings(found, chosen, member, all_members, as_json)
        return
    with views_at(network, cut) as views:
        assert views.network is not None
        chosen = _period(views.network, period, views, cut)
        found = standings_view.standings(views, views.rules, views.network, chosen, member=member)
    _show_standings(found, chosen, member, all_members, as_json)
    show_cut(cut)


def _show_standings(
    found: list[Standing], chosen: Period, member: str | None, all_members: bool, as_json: bool
) -> None:
    if not all_members and member is None:
        found = [s for s in found if s.status == "active"]
    if as_json:
        _write_json([s.as_dict() for s in found])
        return
    _standings_table(found)
    state = "closed" if found and found[0].closed else "provisional"
    if found:
        window = found[0].window
        err.print(
            f"{chosen.name} ({state}); scored window {window.start:%Y-%m-%d} to "
            f"{window.end:%Y-%m-%d} UTC"
        )


def _standings_table(found: list[Standing]) -> None:
    if found and found[0].score is None and not found[0].problem:
        err.print(
            "No scoring plugin is enabled on this network (see `partnerledger plugins --all`)."
        )
    table = Table(header_style="bold")
    for column in ("member", "score", "label", "tier", "previous", "breakdown", "rule"):
        table.add_column(column, overflow="fold")
    for s in found:
        breakdown = (
            s.score.value.breakdown if s.score and hasattr(s.score.value, "breakdown") else {}
        )
        tier = s.tier_name or "-"
        if s.override_reason is not None:
            tier += f" (override: {s.override_reason})"
        table.add_row(
            s.member,
            str(s.total) if s.total is not None else "-",
            s.label or "",
            tier,
            s.previous or "-",
            ", ".join(f"{k} {v}" for k, v in breakdown.items()),
            s.problem or (f"{s.score.plugin} {s.score.version}" if s.score else ""),
        )
    out.print(table)


# ------------------------------------------------------------- period close


@cli.command("close-period")
@NETWORK_OPTION
@click.option("--period", required=True, help=PERIOD_HELP)
@click.option("--preview", is_flag=True, help="Show what would be recorded; write nothing.")
@click.option("--actor", default=None, help="Who closes it [default: $PARTNERLEDGER_ACTOR].")
@click.option("--at", "at", default=None, help="When it is closed (ISO 8601) [default: now].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def close_period_(
    network: str, period: str, preview: bool, actor: str | None, at: str | None, as_json: bool
) -> None:
    """Close a period: record each member's tier and statement for good.

    The tiers are decided with the network's plugins now and recorded as
    events with the plugins' names, versions and settings and a digest of the
    inputs; later changes of rules or code never change them.
    """
    state = _state()
    ledger = Ledger(state.store())
    moment = _parse_time(at, "--at") or datetime.now(UTC)
    who = actor or _default_actor()
    try:
        if preview:
            plan, _ = plan_close(ledger, state.projector(), network, period, actor=who, at=moment)
        else:
            plan = close_period(ledger, state.projector(), network, period, actor=who, at=moment)
    except DomainError as error:
        raise _fail(error) from error
    if as_json:
        _write_json(plan.as_dict())
        return
    _print_plan(plan)


def _print_plan(plan: ClosePlan) -> None:
    _standings_table(plan.decisions)
    if plan.statements:
        table = Table(header_style="bold", title="statements")
        for column in ("member", "opening", "entries", "closing"):
            table.add_column(column, justify="right" if column != "member" else "left")
        for s in plan.statements:
            table.add_row(
                s.member,
                ledger_view.money(s.opening),
                str(len(s.entries)),
                ledger_view.money(s.closing),
            )
        out.print(table)
    verb = "Closed" if plan.recorded else "Would close (preview; nothing written)"
    err.print(
        f"{verb} {plan.period.name}: {len(plan.decisions)} tier decisions, "
        f"{len(plan.statements)} statements, {len(plan.events)} events"
    )


@cli.command("what-if")
@NETWORK_OPTION
@click.option("--period", required=True, help=PERIOD_HELP)
@click.option("--all", "show_all", is_flag=True, help="List unchanged members too.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def what_if_(network: str, period: str, show_all: bool, as_json: bool) -> None:
    """What today's rules would decide for a closed period, beside the record (writes nothing)."""
    state = _state()
    try:
        found = what_if(Ledger(state.store()), state.projector(), network, period)
    except DomainError as error:
        raise _fail(error) from error
    if as_json:
        _write_json([w.as_dict() for w in found])
        return
    changed = [w for w in found if w.changed]
    table = Table(header_style="bold")
    for column in ("member", "recorded", "what if", "changed"):
        table.add_column(column)

    def side(s: Standing | None) -> str:
        if s is None:
            return "-"
        return f"{s.total} {s.label or ''} {s.tier_name or '-'}".replace("  ", " ")

    for w in found if show_all else changed:
        table.add_row(w.member, side(w.recorded), side(w.today), "yes" if w.changed else "")
    if show_all or changed:
        out.print(table)
    err.print(f"{len(changed)} of {len(found)} members would be decided differently today")


@cli.command("override-tier")
@NETWORK_OPTION
@click.option("--period", required=True, help="The closed period, e.g. 2025-Q2.")
@click.option("--member", required=True, help="The member.")
@click.option("--tier", default=None, help="The tier to give (omit for no tier).")
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@_action
def override_tier(
    network: str, period: str, member: str, tier: str | None, reason: str
) -> dict[str, Any]:
    """Override the tier decided for a member in a closed period, with a reason."""
    return {
        "type": "tier.overridden",
        "network": network,
        "period": period,
        "member": member,
        "tier": tier,
        "reason": reason,
    }


# ---------------------------------------------------------------- statements


@cli.command("statement")
@NETWORK_OPTION
@click.option("--member", required=True, help="The member.")
@click.option("--period", required=True, help=PERIOD_HELP)
@as_of_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (one row per entry).")
def statement_(
    network: str,
    member: str,
    period: str,
    as_of: str | None,
    as_of_recorded: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """A member's incentive statement: opening balance, entries, closing balance.

    With --as-of or --as-of-recorded, the statement as of that moment,
    computed from the log.
    """
    cut = cut_of(as_of, as_of_recorded)
    if cut is None:
        found_network = _network(network)
        chosen = _period(found_network, period)
        try:
            Ledger(_state().store()).unit_of_work().member(network, member, "member")
        except DomainError as error:
            raise _fail(error) from error
        found = ledger_view.statement(_state().projector().db, found_network, member, chosen)
    else:
        with views_at(network, cut) as views:
            assert views.network is not None
            chosen = _period(views.network, period)
            if views.member(member) is None:
                raise NotFound("member", f"no member {member!r} in {network!r} {cut.describe()}")
            found = ledger_view.statement(views, views.network, member, chosen)
    _show_statement(found, member, as_json, as_csv)
    if cut is not None:
        show_cut(cut)


def _show_statement(found: ledger_view.Statement, member: str, as_json: bool, as_csv: bool) -> None:
    if as_json:
        _write_json(found.as_dict())
        return
    if as_csv:
        sys.stdout.write(found.as_csv())
        return
    table = Table(header_style="bold", title=f"{member} · {found.period}")
    for column in ("date", "kind", "amount", "source", "rule", "note"):
        table.add_column(column, justify="right" if column == "amount" else "left")
    table.add_row("", "opening", ledger_view.money(found.opening), "", "", "")
    for entry in found.entries:
        table.add_row(
            f"{entry.occurred_at:%Y-%m-%d}",
            entry.kind,
            ledger_view.money(entry.amount),
            entry.source_type,
            f"{entry.plugin} {entry.version}",
            entry.note,
        )
    table.add_row("", "closing", ledger_view.money(found.closing), "", "", "")
    out.print(table)
    err.print(f"{'Closed' if found.closed else 'Open'} statement, {found.currency}")


@cli.group()
def payout() -> None:
    """Record money paid to members against their incentive balance."""


@payout.command("record")
@NETWORK_OPTION
@click.option("--member", required=True, help="The member paid.")
@click.option("--payout", "payout_id", required=True, help="An id for this payout.")
@click.option("--amount", required=True, help="Amount paid, e.g. 250.00.")
@click.option("--currency", required=True, help="ISO 4217 code (the network's).")
@click.option("--reference", default=None, help="Bank or invoice reference.")
@_action
def payout_record(
    network: str, member: str, payout_id: str, amount: str, currency: str, reference: str | None
) -> dict[str, Any]:
    """Record a payout to a member (an entry of minus the amount in their ledger)."""
    return {
        "type": "payout.recorded",
        "network": network,
        "member": member,
        "payout": payout_id,
        "amount": amount,
        "currency": currency,
        "reference": reference,
    }
