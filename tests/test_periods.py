"""Evaluation periods: months, quarters and rolling blocks, named and parsed."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from partnerledger.errors import InvalidCommand
from partnerledger.periods import Calendar


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_months() -> None:
    calendar = Calendar("month")
    period = calendar.containing(utc(2025, 12, 31, 23, 59))
    assert (period.name, period.start, period.end) == ("2025-12", utc(2025, 12, 1), utc(2026, 1, 1))
    assert calendar.after(period).name == "2026-01"
    assert calendar.before(period).name == "2025-11"
    assert calendar.parse("2025-12") == period
    assert calendar.parse("2025-12-24") == period
    assert [p.name for p in calendar.between(utc(2025, 11, 30), utc(2026, 1, 1))] == [
        "2025-11", "2025-12", "2026-01",
    ]  # fmt: skip


def test_quarters() -> None:
    calendar = Calendar("quarter")
    q4 = calendar.parse("2025-q4")
    assert (q4.name, q4.start, q4.end) == ("2025-Q4", utc(2025, 10, 1), utc(2026, 1, 1))
    assert calendar.containing(utc(2025, 5, 17)).name == "2025-Q2"
    assert calendar.after(q4).name == "2026-Q1"
    assert utc(2025, 12, 31) in q4 and utc(2026, 1, 1) not in q4


def test_rolling_blocks_start_on_the_network_day() -> None:
    calendar = Calendar("rolling", rolling_days=90, anchor=date(2025, 1, 15))
    first = calendar.containing(utc(2025, 1, 15, 8))
    assert (first.name, first.start, first.end) == (
        "2025-01-15+90d", utc(2025, 1, 15), utc(2025, 4, 15),
    )  # fmt: skip
    assert calendar.containing(utc(2025, 4, 15)).name == "2025-04-15+90d"
    assert calendar.parse("2025-03-01") == first
    assert calendar.parse("2025-01-15+90d") == first
    with pytest.raises(InvalidCommand, match="the period containing 2025-01-16 is 2025-01-15"):
        calendar.parse("2025-01-16+90d")


@pytest.mark.parametrize(
    ("kind", "text", "reason"),
    [
        ("month", "2025-Q2", "periods are months, like 2025-06"),
        ("month", "2025-13", "periods are months"),
        ("quarter", "2025-06", "periods are quarters, like 2025-Q2"),
        ("quarter", "2025-Q5", "periods are quarters"),
        ("month", "2025-02-30", "is not a date"),
        ("month", "soon", "is not a period of this network"),
    ],
)
def test_bad_periods_name_the_field_and_the_form(kind: str, text: str, reason: str) -> None:
    with pytest.raises(InvalidCommand, match=reason) as caught:
        Calendar(kind).parse(text)  # type: ignore[arg-type]
    assert caught.value.field == "period"
