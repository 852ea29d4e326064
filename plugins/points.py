"""Points: a weighted score for company partner programs.

Each component is a count (or value) from the member's activity times its
weight (a setting):

==================  ===================================================  ==========
component           what it counts                                       default
==================  ===================================================  ==========
referrals_given     referrals the member sent                            1
referrals_converted conversions of the member's referrals                5
converted_value     net converted value of them, per 1,000 of the        1
                    network's currency (exact, not rounded; negative
                    when reversals outweigh new deals)
introductions       introductions the member made                        2
==================  ===================================================  ==========

The total is the sum of the components. With ``recency_days`` set, it is
then multiplied by a recency factor that falls linearly from 1 (last
conversion at the window's end) to ``recency_floor`` at ``recency_days``
days since the member's last conversion, and stays at the floor after (a
member who never converted gets the floor). The total is then rounded to
two decimal places and the breakdown gains a ``recency`` entry (the
adjustment, zero or negative), so the breakdown always adds up to the total.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import msgspec

from partnerledger.hookspecs import hookimpl
from partnerledger.rules import Activity, Score

NAME = "points"
VERSION = "1.0.0"

CENTS = Decimal("0.01")
SECONDS_PER_DAY = 86400


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings of the points plugin."""

    referral_given: Decimal = Decimal(1)
    referral_converted: Decimal = Decimal(5)
    per_1000_converted_value: Decimal = Decimal(1)
    introduction: Decimal = Decimal(2)
    recency_days: int | None = None
    recency_floor: Decimal = Decimal("0.5")

    def __post_init__(self) -> None:
        for name in ("referral_given", "referral_converted", "per_1000_converted_value"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be zero or more")
        if self.introduction < 0:
            raise ValueError("introduction: must be zero or more")
        if self.recency_days is not None and self.recency_days < 1:
            raise ValueError("recency_days: must be at least 1 (or null for no recency)")
        if not 0 <= self.recency_floor <= 1:
            raise ValueError("recency_floor: must be between 0 and 1")


def recency_factor(activity: Activity, settings: Settings) -> Decimal:
    """1 for a conversion at the window's end, falling linearly to the floor at recency_days."""
    if settings.recency_days is None:
        return Decimal(1)
    last = activity.last_conversion_at
    if last is None:
        return settings.recency_floor
    elapsed = activity.window.end - last
    seconds = max(elapsed.days * SECONDS_PER_DAY + elapsed.seconds, 0)
    span = settings.recency_days * SECONDS_PER_DAY
    if seconds >= span:
        return settings.recency_floor
    return 1 - (1 - settings.recency_floor) * Decimal(seconds) / Decimal(span)


def breakdown(activity: Activity, settings: Settings) -> dict[str, Decimal]:
    """Each component's points, before recency."""
    return {
        "referrals_given": activity.referrals_given * settings.referral_given,
        "referrals_converted": activity.referrals_given_converted * settings.referral_converted,
        "converted_value": activity.converted_value_given
        / 1000
        * settings.per_1000_converted_value,
        "introductions": activity.introductions * settings.introduction,
    }


@hookimpl
def partnerledger_settings() -> type[Settings]:
    """Declare the settings."""
    return Settings


@hookimpl
def partnerledger_score(activity: Activity, settings: Settings | None) -> Score:
    """The weighted total, scaled by recency when configured."""
    settings = settings if settings is not None else Settings()
    parts = breakdown(activity, settings)
    subtotal = sum(parts.values(), Decimal(0))
    if settings.recency_days is None:
        return Score(total=subtotal, breakdown=parts)
    factor = recency_factor(activity, settings)
    total = (subtotal * factor).quantize(CENTS, rounding=ROUND_HALF_EVEN)
    return Score(total=total, breakdown={**parts, "recency": total - subtotal})
