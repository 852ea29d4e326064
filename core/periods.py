"""Evaluation periods: the spans of business time standings and statements cover.

A network evaluates its members by calendar month (``2025-06``), by calendar
quarter (``2025-Q2``) or in consecutive blocks of N days (``rolling``). Rolling
blocks start at 00:00 UTC of the day the network was created and are named
by their first day and length: ``2025-01-15+90d``. All periods are half-open
spans of UTC time, ``start <= t < end``.

:func:`parse_period` accepts a period's name, or for any kind of network a
date (``2025-05-17``), which names the period containing that day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from .commands import Period as PeriodKind
from .domain import Network
from .errors import InvalidCommand
from .types import EARLIEST, LATEST

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")
_ROLLING = re.compile(r"^(\d{4}-\d{2}-\d{2})\+(\d+)d$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, order=True)
class Period:
    """One evaluation period of a network: ``start <= t < end`` (UTC)."""

    start: datetime
    end: datetime
    name: str

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class Calendar:
    """How a network cuts time into periods."""

    kind: PeriodKind
    rolling_days: int | None = None
    anchor: date | None = None  # rolling: the network's first day

    @classmethod
    def of(cls, network: Network) -> Calendar:
        """The network's calendar."""
        anchor = network.created_at.astimezone(UTC).date() if network.created_at else None
        return cls(network.period, network.rolling_days, anchor)

    def containing(self, moment: datetime) -> Period:
        """The period a moment of business time falls in."""
        moment = moment.astimezone(UTC)
        if self.kind == "month":
            return _month(moment.year, moment.month)
        if self.kind == "quarter":
            return _quarter(moment.year, (moment.month - 1) // 3 + 1)
        days, anchor = self._rolling()
        index = (moment.date() - anchor).days // days
        return self._block(anchor + timedelta(days=index * days), days)

    def after(self, period: Period) -> Period:
        """The next period."""
        return self.containing(period.end)

    def before(self, period: Period) -> Period:
        """The previous period."""
        return self.containing(period.start - timedelta(microseconds=1))

    def between(self, first: datetime, last: datetime) -> list[Period]:
        """Every period from the one containing ``first`` to the one containing ``last``."""
        periods = []
        current = self.containing(first)
        final = self.containing(last)
        while current.start <= final.start:
            periods.append(current)
            current = self.after(current)
        return periods

    def parse(self, text: str, field: str = "period", *, recorded: bool = False) -> Period:
        """A period named by ``text`` (its name, or a date inside it).

        Periods lie in the range of business times, from 1900 up to 2200:
        others are refused, like a name that is no period of the network.
        ``recorded`` reads a name back from the log or a view, which is
        never refused (it was a period when it was recorded).
        """
        text = text.strip()
        low, high = (1, 9999) if recorded else (EARLIEST.year, LATEST.year)
        if _DATE.match(text):
            day = _day(text, text, field, low, high)
            return self.containing(datetime(day.year, day.month, day.day, tzinfo=UTC))
        if self.kind == "month" and (found := _MONTH.match(text)):
            year, month = _year(found[1], text, field, low, high), int(found[2])
            if 1 <= month <= 12:
                return _month(year, month)
        elif self.kind == "quarter" and (found := _QUARTER.match(text)):
            return _quarter(_year(found[1], text, field, low, high), int(found[2]))
        elif self.kind == "rolling" and (found := _ROLLING.match(text)):
            day = _day(found[1], text, field, low, high)
            period = self.containing(datetime(day.year, day.month, day.day, tzinfo=UTC))
            if period.name == text:
                return period
            raise InvalidCommand(
                field,
                f"{text!r} is not one of this network's periods; "
                f"the period containing {found[1]} is {period.name}",
            )
        raise InvalidCommand(field, f"{text!r} is not a period of this network: {self.example()}")

    def example(self) -> str:
        """How this network's periods are written, for error messages."""
        if self.kind == "month":
            return "periods are months, like 2025-06 (or give a date inside one)"
        if self.kind == "quarter":
            return "periods are quarters, like 2025-Q2 (or give a date inside one)"
        days, anchor = self._rolling()
        return (
            f"periods are blocks of {days} days from {anchor}, like "
            f"{anchor.isoformat()}+{days}d (or give a date inside one)"
        )

    def _rolling(self) -> tuple[int, date]:
        if not self.rolling_days or self.anchor is None:
            raise InvalidCommand("period", "the network has no rolling period length")
        return self.rolling_days, self.anchor

    def _block(self, start: date, days: int) -> Period:
        begin = datetime(start.year, start.month, start.day, tzinfo=UTC)
        return Period(begin, begin + timedelta(days=days), f"{start.isoformat()}+{days}d")


def _year(digits: str, text: str, field: str, low: int, high: int) -> int:
    """The year of a period's name, from ``low`` up to (not including) ``high``."""
    year = int(digits)
    if not low <= year < high:
        raise InvalidCommand(
            field, f"{text!r} is out of range: periods lie from {low} up to (not including) {high}"
        )
    return year


def _day(digits: str, text: str, field: str, low: int, high: int) -> date:
    try:
        day = date.fromisoformat(digits)
    except ValueError:
        raise InvalidCommand(field, f"{digits!r} is not a date") from None
    _year(str(day.year), text, field, low, high)
    return day


def _month(year: int, month: int) -> Period:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return Period(start, end, f"{year:04d}-{month:02d}")


def _quarter(year: int, quarter: int) -> Period:
    first = (quarter - 1) * 3 + 1
    start = datetime(year, first, 1, tzinfo=UTC)
    end = datetime(year + (first + 3 > 12), (first + 2) % 12 + 1, 1, tzinfo=UTC)
    return Period(start, end, f"{year:04d}-Q{quarter}")


__all__ = ["Calendar", "Period"]
