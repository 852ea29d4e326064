"""Recorded decisions, recomputed with the recorded rules, beside today's what-if.

* ``GET /n/{network}/audit/decisions?period=``: the network's closed periods
  and, for the chosen one (the latest closed by default), every decision the
  close recorded (each member's tier, each statement and its entries): as
  recorded (plugin, version, settings, inputs digest, result), as recomputed
  from the log with the same rules, with its status (a mismatch
  highlighted, field by field), and what today's rules and settings would
  decide beside it. Coordinators and auditors; members get 403, users
  without a role in the network 404. Nothing is written.

See docs/decisions.md.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Request, get
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from partnerledger import DomainError
from partnerledger.audit.decisions import STATUSES, check_store, summary
from partnerledger.errors import StoreUnavailable
from partnerledger.periods import Calendar
from partnerledger.views import standings as standings_view

from .pages import NAV, NavItem, page
from .security import network_guard, services_of

#: The roles that see recorded decisions recomputed.
AUDITORS = {"roles": ("coordinator", "auditor")}

NAV.append(NavItem("Decisions", "/audit/decisions", roles=AUDITORS["roles"], order=62))


def decisions_link(network: str, period: str) -> str:
    """The page of a closed period's recorded decisions."""
    return f"/n/{network}/audit/decisions?period={quote(period, safe='')}"


@get(
    "/n/{network:str}/audit/decisions",
    operation_id="auditDecisionsPage",
    guards=[network_guard],
    opt=AUDITORS,
    include_in_schema=False,
)
async def decisions_page(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    period: FromQuery[str | None] = None,
) -> Template:
    """A closed period's recorded decisions, recomputed with the recorded rules, and what-if."""
    services = services_of(request)
    found = services.network(network)
    calendar = Calendar.of(found)
    recorded = standings_view.closed_periods(services.db, network)
    closed = sorted((calendar.parse(name, recorded=True) for name in recorded), reverse=True)
    problem = ""
    status_code = 200
    chosen = closed[0] if closed else None
    if period:
        try:
            chosen = calendar.parse(period)
            if chosen not in closed:
                problem, status_code = f"period {chosen.name} is not closed", 422
        except StoreUnavailable:
            raise
        except DomainError as error:
            problem, status_code, chosen = error.reason, 422, None
    checks = []
    if chosen is not None and not problem:
        rules = services.ledger.rules
        checks = check_store(services.store, rules, network, period=chosen.name, today=rules)
    names = {m.slug: m.name for m in services.members(network)}
    return page(
        request,
        "audit_decisions.html",
        network=network,
        status_code=status_code,
        periods=[p.name for p in closed],
        period=chosen.name if chosen is not None and not problem else (period or ""),
        period_error=problem,
        checks=checks,
        counts=summary(checks),
        statuses=STATUSES,
        names=names,
        standings=lambda name: f"/n/{network}/standings?period={quote(name, safe='')}",
    )


ROUTES = [decisions_page]

__all__ = ["AUDITORS", "ROUTES", "decisions_link"]
