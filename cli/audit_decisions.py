"""``partnerledger audit decisions``: recorded decisions, recomputed with the recorded rules."""

from __future__ import annotations

import sys

import click
import msgspec
from rich.table import Table
from rich.text import Text

from partnerledger import DomainError, Ledger
from partnerledger.audit.decisions import STATUSES, DecisionCheck, check_store, summary
from partnerledger.errors import InvalidCommand, InvalidTransition
from partnerledger.periods import Calendar

from .audit import audit
from .main import _fail, _state, err, out

_STYLE = {
    "match": "green",
    "mismatch": "bold red",
    "rules unavailable": "yellow",
    "inputs unavailable": "yellow",
}


@audit.command("decisions")
@click.option("--network", required=True, help="The network's slug.")
@click.option(
    "--period", help="Only this closed period (its name, or a date inside it) [default: every one]."
)
@click.option("--member", help="Only this member's decisions.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--mismatches-only", is_flag=True, help="List only the decisions that recompute differently."
)
def audit_decisions(
    network: str, period: str | None, member: str | None, as_json: bool, mismatches_only: bool
) -> None:
    """Recompute every recorded decision (tiers, statements) from the log with its recorded rules.

    Each decision is shown as recorded, as recomputed with the same plugins,
    versions and settings, with its status (match, mismatch, rules
    unavailable, inputs unavailable), beside what today's rules would decide.
    Nothing is written. Exit status 1 when any decision is a mismatch (or the
    command is refused: unknown network, a period that is not closed), 0
    otherwise: "rules unavailable" is reported but is not a mismatch.
    """
    state = _state()
    store = state.store()
    ledger = Ledger(store)
    try:
        found = ledger.unit_of_work().network(network)
        chosen = Calendar.of(found).parse(period).name if period is not None else None
    except DomainError as error:
        raise _fail(error) from error
    checks = check_store(store, ledger.rules, network, period=chosen, today=ledger.rules)
    if chosen is not None and not checks:
        closed = any(
            e.type == "period.closed" and e.network == network and e.command.period == chosen
            for _, e in store.read(topics=["period.closed"])
        )
        if not closed:
            raise _fail(InvalidTransition("period", f"period {chosen} is not closed"))
    if member is not None:
        checks = [c for c in checks if c.member == member]
        if not checks:
            where = f"in {chosen}" if chosen else f"in {network}"
            raise _fail(InvalidCommand("member", f"no recorded decision of {member!r} {where}"))
    counts = summary(checks)
    shown = [c for c in checks if c.status == "mismatch"] if mismatches_only else checks
    if as_json:
        data = {
            "network": network,
            "period": chosen,
            "member": member,
            "summary": counts,
            "checks": [c.as_dict() for c in shown],
        }
        sys.stdout.buffer.write(msgspec.json.encode(data) + b"\n")
    else:
        _table(shown)
        _findings(shown)
        err.print(
            f"{len(checks):,} recorded decisions checked: "
            + ", ".join(f"{counts[s]:,} {s}" for s in STATUSES)
        )
    if counts["mismatch"]:
        sys.exit(1)


def _kind(check: DecisionCheck) -> str:
    if check.kind == "statement_entry":
        return f"statement entry {check.entry}"
    return check.kind


def _table(checks: list[DecisionCheck]) -> None:
    if not checks:
        return
    table = Table(header_style="bold")
    for column in ("period", "member", "kind", "recorded", "recomputed", "status", "what-if today"):
        table.add_column(column, overflow="fold")
    for check in checks:
        table.add_row(
            check.period,
            check.member,
            _kind(check),
            check.recorded_text,
            check.recomputed_text,
            Text(check.status, style=_STYLE[check.status]),
            check.what_if_text,
        )
    out.print(table)


def _findings(checks: list[DecisionCheck]) -> None:
    """What differs, field by field, and why a decision could not be recomputed."""
    for check in checks:
        if check.status == "match":
            continue
        where = f"{check.period} {check.member} {_kind(check)}"
        for detail in check.details:
            if detail.status != check.status:
                continue
            line = f"{where}: {detail}"
            if detail.recorded is not None or detail.recomputed is not None:
                line += f" (recorded {detail.recorded}, recomputed {detail.recomputed})"
            err.print(Text(line, style=_STYLE[check.status]))
