"""The tier ladder: its rungs, their thresholds and benefits, and (for coordinators) editing it.

A coordinator edits every rung in one form, adds a rung (the empty row at
the end, or "Add another rung" for more rows) or removes one, and saves the
whole ladder as one ``network.tiers_set``. The domain names a refused field
by its position in the ladder it received (``tiers[1].threshold``); the page
maps that back to the row of the form it came from, so the reason shows
next to the right rung's input, and nothing is written.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from partnerledger import DomainError
from partnerledger.domain import Network
from partnerledger.errors import StoreUnavailable

from .dashboard import latest_standings
from .pages import NAV, NavItem, page, read_form
from .security import COORDINATOR, current_user, network_guard, services_of
from .services import ensure_network

NAV.append(NavItem("Tiers", "/tiers", order=80))

_ROW = re.compile(r"^tiers-(\d+)-(name|threshold|benefits|remove)$")
_FIELD = re.compile(r"^tiers\[(\d+)\]\.(name|threshold|benefits)")


def _rows_of(network: Network) -> list[dict[str, Any]]:
    """The form's rows for the ladder as it is, and one empty row for a new rung."""
    rows = [
        {"name": t.name, "threshold": str(t.threshold), "benefits": "\n".join(t.benefits)}
        for t in network.tiers
    ]
    return [*rows, {"name": "", "threshold": "", "benefits": ""}]


def _rows_from(form: dict[str, Any]) -> list[dict[str, Any]]:
    """The submitted rows, in the order of the form."""
    found: dict[int, dict[str, Any]] = {}
    for key, value in form.items():
        match = _ROW.match(key)
        if match:
            text = value[-1] if isinstance(value, list) else value
            found.setdefault(int(match[1]), {})[match[2]] = str(text)
    return [
        {
            "name": row.get("name", "").strip(),
            "threshold": row.get("threshold", "").strip(),
            "benefits": row.get("benefits", ""),
            "remove": bool(row.get("remove")),
        }
        for _, row in sorted(found.items())
    ]


def _benefits(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _ladder(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
    """The rungs to record, and for each the index of the form row it came from.

    Rows marked for removal and rows left entirely empty are left out.
    """
    tiers, origin = [], []
    for index, row in enumerate(rows):
        if row.get("remove") or not (row["name"] or row["threshold"] or _benefits(row["benefits"])):
            continue
        tiers.append(
            {
                "name": row["name"],
                "threshold": row["threshold"],
                "benefits": _benefits(row["benefits"]),
            }
        )
        origin.append(index)
    return tiers, origin


def _errors(error: DomainError, origin: list[int]) -> dict[str, str]:
    """A refused field, named as the input of the form row it came from."""
    match = _FIELD.match(error.field)
    if match and int(match[1]) < len(origin):
        return {f"tiers-{origin[int(match[1])]}-{match[2]}": error.reason}
    return {error.field: error.reason}


def _ladder_page(
    request: Request[Any, Any, Any],
    network: str,
    *,
    rows: list[dict[str, Any]] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    services = services_of(request)
    found = ensure_network(services, network)
    period, standing = latest_standings(services.db, network)
    holders = Counter(s.tier_name for s in standing.values() if s.tier_name)
    plugin_ladder = None
    if not found.tiers:
        for name, raw in found.plugins.items():
            try:
                settings = services.ledger.rules.settings(name, raw)
            except DomainError:
                continue
            if getattr(settings, "ladder", None):
                plugin_ladder = (name, settings.ladder)
                break
    return page(
        request, "ladder.html", network=network, info=found, period=period, holders=holders,
        plugin_ladder=plugin_ladder, rows=rows if rows is not None else _rows_of(found),
        errors=errors or {}, status_code=status_code,
    )  # fmt: skip


@get(
    "/n/{network:str}/tiers",
    operation_id="tiersPage",
    guards=[network_guard],
    include_in_schema=False,
)
async def tiers_page(request: Request[Any, Any, Any], network: FromPath[str]) -> Template:
    """The network's tier ladder: thresholds, benefits and how many members hold each tier."""
    return _ladder_page(request, network)


@post(
    "/n/{network:str}/tiers",
    operation_id="setTiers",
    guards=[network_guard],
    opt=COORDINATOR,
    include_in_schema=False,
)
async def set_tiers(request: Request[Any, Any, Any], network: FromPath[str]) -> Any:
    """Replace the tier ladder (a coordinator only); "add" shows one more empty row instead."""
    services = services_of(request)
    ensure_network(services, network)
    form = await read_form(request)
    rows = _rows_from(form)
    if form.get("add"):
        kept = [r for r in rows if not r.get("remove")]
        return _ladder_page(
            request, network, rows=[*kept, {"name": "", "threshold": "", "benefits": ""}]
        )
    tiers, origin = _ladder(rows)
    fields = {"type": "network.tiers_set", "network": network, "tiers": tuple(tiers)}
    try:
        services.execute(fields, current_user(request))
    except StoreUnavailable:
        raise
    except DomainError as error:
        return _ladder_page(
            request, network, rows=rows, errors=_errors(error, origin), status_code=422
        )
    return Redirect(path=f"/n/{network}/tiers", status_code=303)


ROUTES = [tiers_page, set_tiers]
