"""Incentive statements: what each member earned, lost and was paid, per period, and payouts.

* ``GET /n/{network}/statements?member=&period=``: a member's statement for
  a period (the latest by default): opening balance, the entries with the
  running balance, closing balance, closed or open. Coordinators and
  auditors pick any member (without one: every member's balance); a
  member sees only their own business's. ``as_of`` and ``as_of_recorded``
  show it as of that moment, computed from the log, read-only
  (:mod:`partnerledger.web.asof`).
* ``GET /n/{network}/statements.csv?member=&period=``: the same statement
  as CSV, with the columns of ``partnerledger statement --csv``.
* ``POST /n/{network}/payouts``: the coordinator records a payout (member,
  payout id, amount, currency, reference).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from partnerledger import DomainError
from partnerledger.domain import Network
from partnerledger.errors import InvalidCommand, NotFound, StoreUnavailable
from partnerledger.periods import Calendar, Period
from partnerledger.sql import SqlBackend
from partnerledger.views import ledger as ledger_view
from partnerledger.views.asof import Cut
from partnerledger.views.ledger import Statement

from .asof import context as asof_context
from .asof import page_cut, page_views, with_cut
from .pages import NAV, NavItem, page, read_form
from .periods import network_periods, pick_period
from .referrals import Errors, acting_member, new_id, see_other, show_money, show_time
from .security import COORDINATOR, current_user, network_guard, services_of
from .services import Services

NAV.append(NavItem("Statements", "/statements", order=60))

PAYOUT_FIELDS = ("member", "payout", "amount", "currency", "reference")


def _member_for(request: Request[Any, Any, Any], network: str, asked: str | None) -> str | None:
    """The member whose statement is shown: a member's own business, whatever they ask."""
    me = acting_member(request, network)
    if me is None:
        return asked or None
    if asked and asked != me:
        raise PermissionDeniedException(f"a member sees only their own business's statement ({me})")
    return me


def statement_periods(
    services: Services, network: Network, views: SqlBackend | None = None
) -> list[Period]:
    """The network's periods up to the latest with events or ledger entries, the latest first.

    A payout recorded today lands in today's period, which may be later than
    any event the standings know of. From the views given (as of a moment),
    the live ones by default.
    """
    periods = network_periods(services, network, views)
    db = views if views is not None else services.db
    _, rows = db.execute(
        f"SELECT period FROM {db.table('partnerledger_ledger_entries')} "  # noqa: S608  # the view's own table name
        "WHERE network = ? ORDER BY period_start DESC LIMIT 1",
        (network.network,),
    )
    if rows:
        calendar = Calendar.of(network)
        latest = calendar.parse(str(rows[0][0]), recorded=True)
        if latest > periods[0]:
            periods = list(reversed(calendar.between(periods[-1].start, latest.start)))
    return periods


def _statement(
    services: Services, network: str, member: str, period: str | None, cut: Cut | None = None
) -> tuple[Statement, Period, list[Period]]:
    if cut is not None:
        with page_views(services, network, cut) as views:
            assert views.network is not None
            if views.member(member) is None:
                raise NotFound("member", f"no member {member!r} in {network!r} {cut.describe()}")
            periods = statement_periods(services, views.network, views)
            chosen = pick_period(views.network, periods, period)
            return ledger_view.statement(views, views.network, member, chosen), chosen, periods
    found = services.network(network)
    services.ledger.unit_of_work().member(network, member, "member")
    periods = statement_periods(services, found)
    chosen = pick_period(found, periods, period)
    return ledger_view.statement(services.db, found, member, chosen), chosen, periods


def _page(
    request: Request[Any, Any, Any],
    network: str,
    member: str | None,
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
        db = services.db
        return _page_of(
            request, network, member, period, db, found, services.members(network, db),
            None, errors=errors, posted=posted, status_code=status_code,
        )  # fmt: skip
    with page_views(services, network, cut) as views:
        assert views.network is not None
        return _page_of(
            request, network, member, period, views, views.network, views.members(), cut
        )


def _page_of(
    request: Request[Any, Any, Any],
    network: str,
    member: str | None,
    period: str | None,
    db: SqlBackend,
    found: Network,
    members: list[Any],
    cut: Cut | None,
    *,
    errors: Errors | None = None,
    posted: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Template:
    """The statements page from the views in ``db`` (live, or as of ``cut``)."""
    services = services_of(request)
    chosen_member = _member_for(request, network, member)
    names = {m.slug: m.name for m in members}
    periods = statement_periods(services, found, db)
    problem = ""
    statement = None
    rows: list[tuple[Any, Decimal]] = []
    try:
        chosen = pick_period(found, periods, period)
    except StoreUnavailable:
        raise
    except DomainError as error:
        problem, chosen, status_code = error.reason, periods[0], 422
    if chosen_member is not None and chosen_member not in names:
        if errors:  # a refused payout to an unknown member: no statement to show
            chosen_member = None
        elif cut is not None:
            raise NotFound("member", f"no member {chosen_member!r} in {network!r} {cut.describe()}")
        else:
            services.ledger.unit_of_work().member(network, chosen_member, "member")
    if chosen_member is not None:
        statement = ledger_view.statement(db, found, chosen_member, chosen)
        balance = statement.opening
        for entry in statement.entries:
            balance += entry.amount
            rows.append((entry, balance))
    closed = ledger_view.closed_periods(db, network)
    balances = ledger_view.balances(db, network) if chosen_member is None else {}
    query = urlencode({"member": chosen_member or "", "period": chosen.name})
    role = current_user(request).role_in(network)
    if chosen not in periods:
        periods = sorted([*periods, chosen], reverse=True)
    return page(
        request,
        "statements.html",
        network=network,
        status_code=status_code,
        member=chosen_member,
        me=acting_member(request, network),
        member_options=[(m.slug, f"{m.name} ({m.slug})") for m in members],
        names=names,
        periods=[(p.name, p.name + (" (closed)" if p.name in closed else "")) for p in periods],
        period=chosen,
        period_error=problem,
        statement=statement,
        rows=rows,
        balances=[(m.slug, balances.get(m.slug, Decimal(0))) for m in members],
        currency=found.currency,
        csv_link=with_cut(f"/n/{network}/statements.csv?{query}", cut),
        errors=errors or Errors(),
        posted=posted or {},
        money=show_money,
        when=show_time,
        **asof_context(cut, role, f"/n/{network}/statements?{query}"),
    )


@get(
    "/n/{network:str}/statements",
    operation_id="statementsPage",
    guards=[network_guard],
    include_in_schema=False,
)
async def statements_page(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    member: FromQuery[str | None] = None,
    period: FromQuery[str | None] = None,
    as_of: FromQuery[str | None] = None,
    as_of_recorded: FromQuery[str | None] = None,
) -> Template:
    """A member's incentive statement for a period (a member: their own).

    With ``as_of`` or ``as_of_recorded``, as of that moment, computed from the log.
    """
    return _page(request, network, member, period, cut=page_cut(as_of, as_of_recorded))


@get(
    "/n/{network:str}/statements.csv",
    operation_id="statementCsv",
    guards=[network_guard],
    include_in_schema=False,
)
async def statement_download(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    member: FromQuery[str | None] = None,
    period: FromQuery[str | None] = None,
    as_of: FromQuery[str | None] = None,
    as_of_recorded: FromQuery[str | None] = None,
) -> Response[str]:
    """A member's statement for a period as CSV (the columns of ``partnerledger statement``),
    as of a moment with ``as_of`` or ``as_of_recorded``."""
    cut = page_cut(as_of, as_of_recorded)
    chosen = _member_for(request, network, member)
    if chosen is None:
        raise InvalidCommand("member", "choose the member whose statement to download")
    statement, found, _ = _statement(services_of(request), network, chosen, period, cut)
    name = f"statement-{network}-{chosen}-{found.name}.csv".replace("+", "_")
    return Response(
        content=statement.as_csv(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@post(
    "/n/{network:str}/payouts",
    operation_id="recordPayout",
    guards=[network_guard],
    opt=COORDINATOR,
    include_in_schema=False,
)
async def record_payout(request: Request[Any, Any, Any], network: FromPath[str]) -> Any:
    """Record a payout to a member: an entry of minus the amount in their ledger."""
    services = services_of(request)
    form = await read_form(request)
    member = str(form.get("member", "")).strip()
    fields = {
        "type": "payout.recorded",
        "network": network,
        "member": member,
        "payout": str(form.get("payout", "")).strip() or new_id("p"),
        "amount": str(form.get("amount", "")).strip(),
        "currency": str(form.get("currency", "")).strip() or services.network(network).currency,
        "reference": str(form.get("reference", "")).strip(),
    }
    period = str(form.get("period", "")).strip() or None
    try:
        services.execute(fields, current_user(request))
    except StoreUnavailable:
        raise
    except DomainError as error:
        return _page(
            request, network, member or None, period, posted=form, status_code=422,
            errors=Errors.of("payout", error, PAYOUT_FIELDS),
        )  # fmt: skip
    # The payout lands in the open period of today: the latest, which the page shows first.
    return see_other(f"/n/{network}/statements?{urlencode({'member': member})}")


ROUTES = [statements_page, statement_download, record_payout]

__all__ = ["ROUTES", "statement_periods"]
