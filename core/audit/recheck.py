"""Recomputing a bundle's recorded decisions from its own events, with the installed rules."""

from __future__ import annotations

from collections.abc import Iterator

from ..events import Event
from ..ledger import default_rules
from .bundle import BundleReport
from .decisions import check_decisions


def recheck_decisions(events: Iterator[Event], report: BundleReport) -> None:
    """Check every recorded decision in the bundle; say which rules could not be loaded.

    A decision whose plugin is not installed, or is installed at another
    version than the one recorded, is not recomputed (it is never re-decided
    with other rules): it is listed under ``unavailable_rules``.
    """
    checks = check_decisions(events, default_rules(), report.network)
    report.decisions = [check.as_dict() for check in checks]
    unavailable = sorted({str(c.details) for c in checks if c.status == "rules unavailable"})
    report.unavailable_rules = unavailable
