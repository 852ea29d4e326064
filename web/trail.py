"""The audit trail of any entity: every event, in log order, with who and when.

``GET /n/{network}/trail?entity=kind:id&type=&actor=&since=&until=&search=&after=``
shows an entity's events (``network:riverside``, ``member:ann-law``,
``referral:r-1``, ``agreement:a-1``, ``period:2025-Q1``...), filtered by
event type, actor, business time (``since`` inclusive, ``until``
inclusive of its day when a date, exclusive when a time) and text in the
command, 200 at a time (``after`` pages on). Other pages link here, e.g.
``/n/riverside/trail?entity=referral:r-1``. ``as_of`` (business time) and
``as_of_recorded`` (store time) show the trail as of that moment, computed
from the log (:mod:`partnerledger.web.asof`).

Coordinators and auditors read every entity of the network; a member reads
the trail of their own business and of the referrals and agreements it is
part of, and gets 403 on any other.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from litestar import Request, get
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from partnerledger import DomainError
from partnerledger.commands import COMMAND_TYPES
from partnerledger.errors import InvalidCommand, StoreUnavailable
from partnerledger.sql import SqlBackend
from partnerledger.views.asof import Cut
from partnerledger.views.trail import (
    PARTIES,
    entities,
    entity_count,
    entity_id,
    parse_entity,
    trail,
)

from .asof import context as asof_context
from .asof import page_cut, page_views
from .pages import NAV, NavItem, page
from .referrals import acting_member
from .security import current_user, network_guard, services_of

NAV.append(NavItem("Trail", "/trail", order=70))

#: Entities the picker offers at most (those with the latest events).
PICKER = 200
#: Events shown per page.
PAGE = 200
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Command fields every event has, left out of its summary.
_COMMON = ("type", "network", "actor", "occurred_at")


def readable_by_member(db: SqlBackend, network: str, member: str) -> set[str]:
    """The entities a member may read: their business, and its referrals and agreements."""
    _, rows = db.execute(
        f"SELECT record FROM {db.table(PARTIES)} WHERE network = ? AND member = ?",  # noqa: S608  # the view's own table name
        (network, member),
    )
    return {entity_id("member", member), *(str(row[0]) for row in rows)}


def parse_time(text: str | None, field: str, *, end: bool = False) -> datetime | None:
    """A date (midnight UTC; with ``end``, the midnight after it) or a time with an offset."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        if _DATE.match(text):
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end else moment
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidCommand(field, f"{text!r} is not a date (2025-06-30) or a time") from None
    if moment.tzinfo is None:
        raise InvalidCommand(field, "give a time with an offset, e.g. 2025-06-30T12:00Z")
    return moment


def summary(command: dict[str, Any]) -> str:
    """The fields of a command that say what happened (the common ones left out)."""
    parts = []
    for key, value in command.items():
        if key in _COMMON:
            continue
        if isinstance(value, dict | list):
            continue  # nested terms, inputs, entries: in the full command
        parts.append(f"{key}: {value}")
    return "; ".join(parts)


@get(
    "/n/{network:str}/trail",
    operation_id="trailPage",
    guards=[network_guard],
    include_in_schema=False,
)
async def trail_page(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    entity: FromQuery[str | None] = None,
    type: FromQuery[str | None] = None,  # the query parameter's name
    actor: FromQuery[str | None] = None,
    since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None,
    search: FromQuery[str | None] = None,
    after: FromQuery[int | None] = None,
    as_of: FromQuery[str | None] = None,
    as_of_recorded: FromQuery[str | None] = None,
) -> Template:
    """Every event of an entity, in log order, with who recorded it and when (filterable).

    With ``as_of`` or ``as_of_recorded``, only the events of the log as of that moment.
    """
    services = services_of(request)
    services.network(network)
    cut = page_cut(as_of, as_of_recorded)
    filters = {"entity": entity, "type": type, "actor": actor, "since": since, "until": until,
               "search": search, "after": after}  # fmt: skip
    if cut is None:
        return _trail_page(request, network, services.db, None, filters)
    with page_views(services, network, cut) as views:
        return _trail_page(request, network, views, cut, filters)


def _trail_page(
    request: Request[Any, Any, Any],
    network: str,
    db: SqlBackend,
    cut: Cut | None,
    filters: dict[str, Any],
) -> Template:
    """The trail page from the views in ``db`` (live, or as of ``cut``)."""
    entity, type, actor = filters["entity"], filters["type"], filters["actor"]
    since, until, search, after = (
        filters["since"], filters["until"], filters["search"], filters["after"]
    )  # fmt: skip
    me = acting_member(request, network)
    allowed = readable_by_member(db, network, me) if me is not None else None
    chosen = (entity or "").strip() or (
        entity_id("member", me) if me is not None else entity_id("network", network)
    )
    errors: dict[str, str] = {}
    status = 200
    try:
        parse_entity(chosen)
    except StoreUnavailable:
        raise
    except DomainError as error:
        errors["entity"] = error.reason
    if allowed is not None and "entity" not in errors and chosen not in allowed:
        raise PermissionDeniedException(
            f"a member reads the trail of their business ({me}) and of its referrals and "
            "agreements only"
        )
    bounds: dict[str, datetime | None] = {}
    for name, text, end in (("since", since, False), ("until", until, True)):
        try:
            bounds[name] = parse_time(text, name, end=end)
        except StoreUnavailable:
            raise
        except DomainError as error:
            errors[name] = error.reason
    rows: list[Any] = []
    if not errors:
        try:
            rows = trail(
                db, network, chosen, types=[type] if type else [],
                actor=(actor or "").strip() or None, since=bounds["since"],
                until=bounds["until"], search=search or None, after=after or 0, limit=PAGE + 1,
            )  # fmt: skip
        except StoreUnavailable:
            raise
        except DomainError as error:
            errors[error.field if error.field in ("entity", "type") else "entity"] = error.reason
            status = 404 if error.code == "not_found" else 422
    elif status == 200:
        status = 422
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    try:
        if allowed is None:
            # The picker offers the entities with the latest events (ties by id), not
            # a network's every referral (thousands): any other is typed as kind:id.
            known = entities(db, network, latest=PICKER)
            total = entity_count(db, network)
        else:
            known = [e for e in entities(db, network) if e.entity in allowed]
            total = len(known)
    except StoreUnavailable:
        raise
    except DomainError:
        known, total = [], 0
    query = {
        "entity": chosen, "type": type or "", "actor": actor or "", "since": since or "",
        "until": until or "", "search": search or "",
    }  # fmt: skip
    kept = {**query, **(cut.query() if cut is not None else {})}
    next_link = (
        f"/n/{network}/trail?{urlencode({**kept, 'after': rows[-1].position})}" if more else None
    )
    role = current_user(request).role_in(network)
    return page(
        request,
        "trail.html",
        network=network,
        status_code=status,
        entity=chosen,
        values=query,
        errors=errors,
        rows=rows,
        entities=known,
        entity_total=total,
        types=[("", "Any type"), *((t, t) for t in sorted(COMMAND_TYPES))],
        next_link=next_link,
        paged=bool(after),
        first_link=f"/n/{network}/trail?{urlencode(kept)}",
        summary=summary,
        **asof_context(cut, role, f"/n/{network}/trail?{urlencode(query)}"),
    )


ROUTES = [trail_page]

__all__ = ["PAGE", "ROUTES", "parse_time", "readable_by_member", "summary"]
