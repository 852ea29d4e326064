"""``--as-of`` and ``--as-of-recorded``: the views' commands as of a moment, computed from the log.

``standings``, ``scorecard``, ``statement`` and ``trail`` take both options
(see :mod:`partnerledger.views.asof`): ``--as-of-recorded TIME`` shows what
the system knew then (only the events recorded by then), ``--as-of TIME``
what had happened by then as known now (the events whose business time is
up to then, whenever recorded). A TIME is ISO 8601 with an offset, or a
date, meaning the end of that day (UTC). Nothing is read from, or written
to, the live views.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from partnerledger import DomainError, Ledger
from partnerledger.errors import InvalidCommand, NotFound
from partnerledger.views.asof import AsOfViews, Cut, views_as_of

from .main import _fail, _state, err

F = TypeVar("F", bound=Callable[..., Any])

BUSINESS_OPTION = "--as-of"
RECORDED_OPTION = "--as-of-recorded"
_TIME = "ISO 8601 with an offset, or a date (the end of that day, UTC)"


def as_of_options(fn: F) -> F:
    """Add ``--as-of`` and ``--as-of-recorded`` to a command."""
    fn = click.option(
        RECORDED_OPTION,
        "as_of_recorded",
        metavar="TIME",
        help="Show what the system knew at this store time: only the events recorded by "
        f"then, computed from the log ({_TIME}).",
    )(fn)
    return click.option(
        BUSINESS_OPTION,
        "as_of",
        metavar="TIME",
        help="Show what had happened by this business time, as known now: only the events "
        f"that happened by then, computed from the log ({_TIME}).",
    )(fn)


def cut_of(as_of: str | None, as_of_recorded: str | None) -> Cut | None:
    """The cut the options give (``None`` without either); a bad time is a usage error."""
    try:
        return Cut.parse(
            as_of, as_of_recorded, business_field=BUSINESS_OPTION, recorded_field=RECORDED_OPTION
        )
    except InvalidCommand as error:
        raise click.BadParameter(error.reason, param_hint=error.field) from None


@contextmanager
def views_at(network: str, cut: Cut) -> Iterator[AsOfViews]:
    """The network's views as of the cut (its ``network`` is never ``None``).

    A domain error inside the block (or a network that did not exist then)
    ends the command with exit code 1, naming the field.
    """
    store = _state().store()
    try:
        with views_as_of(store, Ledger(store).rules, network, cut) as views:
            if views.network is None:
                raise NotFound("network", f"no network {network!r} {cut.describe()}")
            yield views
    except DomainError as error:
        raise _fail(error) from error


def show_cut(cut: Cut) -> None:
    """Say which cut the output shows (on stderr, so JSON output stays clean)."""
    err.print(f"Shown {cut.describe()} — computed from the log")


__all__ = ["as_of_options", "cut_of", "show_cut", "views_at"]
