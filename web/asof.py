"""History as of a moment on the pages: the date picker, its query parameters and the views.

The standings, statements, member (standing history and scorecards) and
trail pages take two query parameters (see :mod:`partnerledger.views.asof`):

* ``as_of_recorded``: what the system knew at that store time (only the
  events recorded by then);
* ``as_of``: what had happened by that business time, as known now.

Each is a date (the end of that day, UTC) or a time: with an offset, or
without one as the picker (``<input type="datetime-local">``) sends it,
read as UTC. A bad value is refused (422) naming the parameter. With
either, the page is computed from the log as of that moment (never from the
live views), says so in a banner, and shows no form that writes: history
is read-only. Coordinators and auditors see the picker.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import Any
from urllib.parse import urlencode

from partnerledger.errors import InvalidCommand
from partnerledger.views.asof import (
    BUSINESS_FIELD,
    RECORDED_FIELD,
    AsOfViews,
    Cut,
    views_as_of,
)

from .services import Services

#: The roles that see the picker (anyone who reads the page may follow a link with a cut).
PICKER_ROLES = ("coordinator", "auditor")


def page_cut(as_of: str | None, as_of_recorded: str | None) -> Cut | None:
    """The cut a page's query gives (empty parameters are left out); InvalidCommand on the
    parameter at fault."""
    return Cut.parse(as_of, as_of_recorded, naive_is_utc=True)


@contextmanager
def page_views(services: Services, network: str, cut: Cut) -> Iterator[AsOfViews]:
    """The network's views as of the cut (its ``network`` is never ``None``).

    A network created after the cut is refused (422) naming the parameter.
    """
    services.network(network)  # an unknown network is a 404 first
    with views_as_of(services.store, services.ledger.rules, network, cut) as views:
        if views.network is None:
            raise InvalidCommand(cut.field, f"{network!r} did not exist yet {cut.describe()}")
        yield views


def picker_value(cut: Cut | None, field: str) -> str:
    """The value of a picker's input: the cut's moment as ``datetime-local`` writes it (UTC)."""
    if cut is None:
        return ""
    moment = cut.business if field == BUSINESS_FIELD else cut.recorded
    return "" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%S}"


def cut_query(cut: Cut | None) -> str:
    """The cut as a query string (``as_of=...&as_of_recorded=...``); empty without one."""
    return urlencode(cut.query()) if cut is not None else ""


def with_cut(path: str, cut: Cut | None) -> str:
    """A link that keeps the cut."""
    query = cut_query(cut)
    if not query:
        return path
    return f"{path}{'&' if '?' in path else '?'}{query}"


def context(cut: Cut | None, role: str | None, now_link: str) -> dict[str, Any]:
    """What the templates' picker and banner need (``_asof.html``)."""
    return {
        "cut": cut,
        "show_picker": role in PICKER_ROLES,
        "asof_values": {
            BUSINESS_FIELD: picker_value(cut, BUSINESS_FIELD),
            RECORDED_FIELD: picker_value(cut, RECORDED_FIELD),
        },
        "now_link": now_link,
        "with_cut": lambda path: with_cut(path, cut),
    }


__all__ = [
    "PICKER_ROLES",
    "context",
    "cut_query",
    "page_cut",
    "page_views",
    "picker_value",
    "with_cut",
]
