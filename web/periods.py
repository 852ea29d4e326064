"""Standings and the period close: who stands where, and deciding it for good.

* ``GET /n/{network}/standings?period=``: every member's score (with its
  breakdown and colour), tier, previous tier, closed or provisional, and any
  override, in a period (the latest by default; a picker lists the
  network's periods). A member sees their own row. ``as_of`` (business
  time) and ``as_of_recorded`` (store time) show them as of that moment,
  computed from the log, read-only (:mod:`partnerledger.web.asof`).
* ``GET /n/{network}/periods/{period}/close``: the coordinator's preview of
  a close: the tier decisions and statements it would record (nothing is
  written).
* ``POST /n/{network}/periods/{period}/close``: record the close (then back
  to the standings of that period).
* ``POST /n/{network}/periods/{period}/override``: the coordinator overrides
  a member's decided tier, with a reason (``tier.overridden``).
* ``GET /n/{network}/periods/{period}/what-if``: what today's rules would
  decide for a closed period beside the record (coordinators and auditors;
  nothing is written).

A close that cannot be made (the period has not ended, is already closed,
or a later period is) is explained on the page, with nothing written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from litestar import Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from partnerledger import DomainError
from partnerledger.closing import close_period, plan_close, what_if
from partnerledger.domain import Network
from partnerledger.errors import StoreUnavailable
from partnerledger.periods import Calendar, Period
from partnerledger.rules import TierChoice
from partnerledger.sql import SqlBackend
from partnerledger.views import standings as standings_view
from partnerledger.views.asof import AsOfViews, Cut
from partnerledger.views.standings import Standing

from .asof import context as asof_context
from .asof import page_cut, page_views
from .pages import NAV, NavItem, page, read_form
from .referrals import Errors, acting_member, see_other, show_money, show_time
from .security import COORDINATOR, current_user, network_guard, services_of
from .services import Services

NAV.append(NavItem("Standings", "/standings", order=50))

OVERRIDE_FIELDS = ("member", "tier", "reason")
COLOURS = ("green", "amber", "red", "grey")
_STATUS = {"not_found": 404, "already_exists": 409}


def network_periods(
    services: Services, network: Network, views: SqlBackend | None = None
) -> list[Period]:
    """The network's periods from its first event to its latest, the latest first.

    From the views given (as of a moment), the live ones by default.
    """
    calendar = Calendar.of(network)
    found = standings_view.span(views if views is not None else services.db, network.network)
    if found is None:
        now = views.cut.moment if isinstance(views, AsOfViews) else datetime.now(UTC)
        return [calendar.containing(now)]
    return list(reversed(calendar.between(*found)))


def pick_period(network: Network, periods: list[Period], text: str | None) -> Period:
    """The period a query names (the latest by default); InvalidCommand on ``period``."""
    if not text:
        return periods[0]
    return Calendar.of(network).parse(text)


def period_link(network: str, period: str) -> str:
    """The standings page of a period (a rolling period's ``+`` kept as itself)."""
    return f"/n/{network}/standings?period={quote(period, safe='')}"


def _decided(standing: Standing) -> str | None:
    value = standing.tier.value if standing.tier else None
    tier: str | None = value.tier if isinstance(value, TierChoice) else None
    return tier


def _breakdown(standing: Standing) -> list[tuple[str, str]]:
    value = standing.score.value if standing.score else None
    items = getattr(value, "breakdown", {}) or {}
    return [(str(k), str(v)) for k, v in items.items()]


def _colour(standing: Standing) -> str:
    return standing.label if standing.label in COLOURS else "grey"


#: What the standings templates call to show a standing.
HELPERS: dict[str, Any] = {"breakdown": _breakdown, "colour": _colour, "decided": _decided}


# ------------------------------------------------------------------ standings


def _standings(
    request: Request[Any, Any, Any],
    network: str,
    period: str | None,
    *,
    cut: Cut | None = None,
    errors: Errors | None = None,
    posted: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Template:
    services = services_of(request)
    if cut is None:
        found = services.network(network)
        return _standings_of(
            request, network, period, services.db, found, None,
            errors=errors, posted=posted, status_code=status_code,
        )  # fmt: skip
    with page_views(services, network, cut) as views:
        assert views.network is not None
        return _standings_of(request, network, period, views, views.network, cut)


def _standings_of(
    request: Request[Any, Any, Any],
    network: str,
    period: str | None,
    db: SqlBackend,
    found: Network,
    cut: Cut | None,
    *,
    errors: Errors | None = None,
    posted: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Template:
    """The standings page from the views in ``db`` (live, or as of ``cut``)."""
    services = services_of(request)
    periods = network_periods(services, found, db)
    problem = ""
    try:
        if not period and cut is not None and cut.business is not None:
            chosen = Calendar.of(found).containing(cut.business)
        else:
            chosen = pick_period(found, periods, period)
    except StoreUnavailable:
        raise
    except DomainError as error:
        problem, chosen, status_code = error.reason, periods[0], 422
    rules = db.rules if isinstance(db, AsOfViews) else services.ledger.rules
    rows = standings_view.standings(db, rules, found, chosen)
    me = acting_member(request, network)
    role = current_user(request).role_in(network)
    if role == "member":
        rows = [s for s in rows if s.member == me]
    closed = standings_view.closed_periods(db, network)
    now = datetime.now(UTC) if cut is None else cut.moment
    names = {m.slug: m.name for m in services.members(network)}
    if chosen not in periods:
        periods = sorted([*periods, chosen], reverse=True)
    return page(
        request,
        "standings.html",
        network=network,
        status_code=status_code,
        periods=[(p.name, p.name + (" (closed)" if p.name in closed else "")) for p in periods],
        period=chosen,
        period_error=problem,
        closed=chosen.name in closed,
        ended=now >= chosen.end,
        rows=rows,
        names=names,
        me=me,
        tiers=[t.name for t in found.tiers],
        member_options=[(s.member, f"{names.get(s.member, s.member)} ({s.member})") for s in rows],
        errors=errors or Errors(),
        posted=posted or {},
        when=show_time,
        quote=lambda text: quote(text, safe=""),
        **asof_context(cut, role, period_link(network, chosen.name)),
        **HELPERS,
    )


@get(
    "/n/{network:str}/standings",
    operation_id="standingsPage",
    guards=[network_guard],
    include_in_schema=False,
)
async def standings_page(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    period: FromQuery[str | None] = None,
    as_of: FromQuery[str | None] = None,
    as_of_recorded: FromQuery[str | None] = None,
) -> Template:
    """Every member's score, colour, tier and previous tier in a period, closed or provisional.

    With ``as_of`` or ``as_of_recorded``, as of that moment, computed from the log.
    """
    return _standings(request, network, period, cut=page_cut(as_of, as_of_recorded))


# ---------------------------------------------------------------- the close


def _close_page(request: Request[Any, Any, Any], network: str, period: str, *, record: bool) -> Any:
    services = services_of(request)
    user = current_user(request)
    now = datetime.now(UTC)
    try:
        if record:
            plan = close_period(
                services.ledger, services.projector, network, period, actor=user.email, at=now
            )
        else:
            plan, _ = plan_close(
                services.ledger, services.projector, network, period, actor=user.email, at=now
            )
    except StoreUnavailable:
        raise
    except DomainError as error:
        services.network(network)  # an unknown network is a 404 first
        return page(
            request,
            "periods_close.html",
            network=network,
            status_code=_STATUS.get(error.code, 422),
            period=period,
            plan=None,
            error=error.reason,
            back=period_link(network, period),
        )
    if record:
        return see_other(period_link(network, plan.period.name))
    names = {m.slug: m.name for m in services.members(network)}
    return page(
        request,
        "periods_close.html",
        network=network,
        period=plan.period.name,
        plan=plan,
        error="",
        names=names,
        back=period_link(network, plan.period.name),
        money=show_money,
        currency=services.network(network).currency,
        action=f"/n/{network}/periods/{quote(plan.period.name, safe='')}/close",
        **HELPERS,
    )


@get(
    "/n/{network:str}/periods/{period:str}/close",
    operation_id="closePeriodPreview",
    guards=[network_guard],
    opt=COORDINATOR,
    include_in_schema=False,
)
async def close_preview(
    request: Request[Any, Any, Any], network: FromPath[str], period: FromPath[str]
) -> Any:
    """Preview the close of a period: the decisions and statements it would record."""
    return _close_page(request, network, period, record=False)


@post(
    "/n/{network:str}/periods/{period:str}/close",
    operation_id="closePeriod",
    guards=[network_guard],
    opt=COORDINATOR,
    include_in_schema=False,
)
async def close_confirm(
    request: Request[Any, Any, Any], network: FromPath[str], period: FromPath[str]
) -> Any:
    """Close a period: record its tier decisions and statements, all or nothing."""
    return _close_page(request, network, period, record=True)


@post(
    "/n/{network:str}/periods/{period:str}/override",
    operation_id="overrideTier",
    guards=[network_guard],
    opt=COORDINATOR,
    include_in_schema=False,
)
async def override_tier(
    request: Request[Any, Any, Any], network: FromPath[str], period: FromPath[str]
) -> Any:
    """Override the tier decided for a member in a closed period, with a reason."""
    services = services_of(request)
    form = await read_form(request)
    fields = {
        "type": "tier.overridden",
        "network": network,
        "period": period,
        "member": str(form.get("member", "")).strip(),
        "tier": str(form.get("tier", "")).strip(),
        "reason": str(form.get("reason", "")).strip(),
    }
    try:
        services.execute(fields, current_user(request))
    except StoreUnavailable:
        raise
    except DomainError as error:
        errors = Errors.of("override", error, OVERRIDE_FIELDS)
        return _standings(request, network, period, errors=errors, posted=form, status_code=422)
    return see_other(period_link(network, period))


@get(
    "/n/{network:str}/periods/{period:str}/what-if",
    operation_id="whatIfPage",
    guards=[network_guard],
    opt={"roles": ("coordinator", "auditor")},
    include_in_schema=False,
)
async def what_if_page(
    request: Request[Any, Any, Any], network: FromPath[str], period: FromPath[str]
) -> Template:
    """What today's rules would decide for a closed period, beside what was recorded."""
    services = services_of(request)
    services.network(network)
    try:
        found = what_if(services.ledger, services.projector, network, period)
    except StoreUnavailable:
        raise
    except DomainError as error:
        return page(
            request,
            "periods_whatif.html",
            network=network,
            status_code=_STATUS.get(error.code, 422),
            period=period,
            rows=[],
            error=error.reason,
            back=period_link(network, period),
        )
    names = {m.slug: m.name for m in services.members(network)}
    return page(
        request,
        "periods_whatif.html",
        network=network,
        period=period,
        rows=found,
        error="",
        names=names,
        back=period_link(network, period),
        **HELPERS,
    )


ROUTES = [standings_page, close_preview, close_confirm, override_tier, what_if_page]

__all__ = ["ROUTES", "network_periods", "period_link", "pick_period"]
