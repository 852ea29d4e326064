"""Traffic lights: the classic BNI chapter scoring (as published for UK chapters, 2012).

A member's last ``window_months`` months (six by default) earn up to 100
points in seven sections. Rates per week divide a count by the number of
weekly chapter meetings the network held in the window
(``Activity.meetings_held``; with none, every rate is 0). A value exactly on
a threshold takes the higher band.

========================  ==========================================================
absences                  0 → 15, 1 → 10, 2 → 5, more → 0 (status "absent" only;
                          substitutes and medical absences do not count)
referrals given / week    < 0.5 → 0, < 0.75 → 5, < 1 → 10, < 1.2 → 15, else 20
TYFCB received (value)    < 1,000 → 0, < 2,500 → 5, < 5,000 → 10, else 15
                          (thresholds are settings, in the network's currency)
visitors / week           < 0.083 → 0, < 0.167 → 5, < 0.25 → 10, < 0.5 → 15, else 20
testimonials / week       0 → 0, < 0.075 → 5, else 10
on time                   never late → 5, else 0
trainings                 0 / 1 / 2 / 3 or more → 0 / 5 / 10 / 15
========================  ==========================================================

The label is the colour: green from 70 points, amber 50 to 69, red 30 to 49,
grey below 30. Rates are Decimals, so thresholds compare exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import msgspec

from partnerledger.hookspecs import hookimpl
from partnerledger.rules import Activity, Score

NAME = "traffic-lights"
VERSION = "1.0.0"

#: (lower bound, points) from the highest band down; below every bound scores 0.
Bands = Sequence[tuple[Decimal, int]]

REFERRAL_BANDS: Bands = (
    (Decimal("1.2"), 20),
    (Decimal(1), 15),
    (Decimal("0.75"), 10),
    (Decimal("0.5"), 5),
)
VISITOR_BANDS: Bands = (
    (Decimal("0.5"), 20),
    (Decimal("0.25"), 15),
    (Decimal("0.167"), 10),
    (Decimal("0.083"), 5),
)
TESTIMONIAL_BANDS: Bands = (
    (Decimal("0.075"), 10),
    (Decimal(0), 5),  # any testimonial at all: 0 itself is handled apart
)
COLOURS: Sequence[tuple[Decimal, str]] = (
    (Decimal(70), "green"),
    (Decimal(50), "amber"),
    (Decimal(30), "red"),
)


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings of the traffic-lights plugin."""

    tyfcb_5: Decimal = Decimal(1000)
    """TYFCB received (in the network's currency) from which the section earns 5 points."""
    tyfcb_10: Decimal = Decimal(2500)
    """... 10 points."""
    tyfcb_15: Decimal = Decimal(5000)
    """... 15 points."""
    window_months: int = 6
    """How many months back a member's activity is scored."""

    def __post_init__(self) -> None:
        if self.tyfcb_5 < 0:
            raise ValueError("tyfcb_5: must be zero or more")
        if not self.tyfcb_5 < self.tyfcb_10:
            raise ValueError(
                f"tyfcb_10: must be above tyfcb_5 ({self.tyfcb_5}); the thresholds must rise"
            )
        if not self.tyfcb_10 < self.tyfcb_15:
            raise ValueError(
                f"tyfcb_15: must be above tyfcb_10 ({self.tyfcb_10}); the thresholds must rise"
            )
        if not 1 <= self.window_months <= 120:
            raise ValueError("window_months: must be between 1 and 120")


def band(value: Decimal, bands: Bands) -> int:
    """The points of the highest band whose lower bound ``value`` reaches."""
    for bound, points in bands:
        if value >= bound:
            return points
    return 0


def per_week(count: int, meetings: int) -> Decimal:
    """A count per weekly meeting held (0 when no meeting was held)."""
    if meetings <= 0:
        return Decimal(0)
    return Decimal(count) / Decimal(meetings)


def colour(total: Decimal) -> str:
    """Green, amber, red or grey."""
    for bound, name in COLOURS:
        if total >= bound:
            return name
    return "grey"


def breakdown(activity: Activity, settings: Settings) -> dict[str, Decimal]:
    """The points of each of the seven sections."""
    meetings = activity.meetings_held
    absences = {0: 15, 1: 10, 2: 5}.get(activity.absent, 0)
    tyfcb = band(
        activity.tyfcb_received,
        ((settings.tyfcb_15, 15), (settings.tyfcb_10, 10), (settings.tyfcb_5, 5)),
    )
    testimonials = per_week(activity.testimonials_given, meetings)
    points = {
        "absences": absences,
        "referrals": band(per_week(activity.referrals_given, meetings), REFERRAL_BANDS),
        "tyfcb": tyfcb,
        "visitors": band(per_week(activity.visitors, meetings), VISITOR_BANDS),
        "testimonials": band(testimonials, TESTIMONIAL_BANDS) if testimonials > 0 else 0,
        "on_time": 5 if activity.late == 0 else 0,
        "trainings": min(activity.trainings, 3) * 5,
    }
    return {name: Decimal(value) for name, value in points.items()}


@hookimpl
def partnerledger_settings() -> type[Settings]:
    """Declare the settings."""
    return Settings


@hookimpl
def partnerledger_score(activity: Activity, settings: Settings | None) -> Score:
    """Points out of 100, by section, with the traffic-light colour."""
    sections = breakdown(activity, settings if settings is not None else Settings())
    total = sum(sections.values(), Decimal(0))
    return Score(total=total, breakdown=sections, label=colour(total))
