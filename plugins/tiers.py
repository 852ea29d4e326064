"""Threshold tiers: the highest rung of the ladder whose minimum score is reached.

Uses the network's tier ladder, or this plugin's ``ladder`` setting when the
network has none (bronze 0, silver 40, gold 80 by default). With
``grace_periods`` = N, a member whose score falls below the tier held in the
previous period keeps it for N periods before being demoted.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from partnerledger.commands import Tier
from partnerledger.hookspecs import hookimpl
from partnerledger.rules import Score, TierChoice

NAME = "threshold-tiers"
VERSION = "1.0.0"

DEFAULT_LADDER = (
    Tier(name="bronze", threshold=Decimal(0)),
    Tier(name="silver", threshold=Decimal(40)),
    Tier(name="gold", threshold=Decimal(80)),
)


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings of the threshold-tiers plugin."""

    grace_periods: int = 0
    ladder: tuple[Tier, ...] = DEFAULT_LADDER

    def __post_init__(self) -> None:
        if self.grace_periods < 0:
            raise ValueError("grace_periods: must be zero or more")
        thresholds = [tier.threshold for tier in self.ladder]
        if thresholds != sorted(set(thresholds)):
            raise ValueError("ladder: thresholds must rise from the lowest tier to the highest")


@hookimpl
def partnerledger_settings() -> type[Settings]:
    """Declare the settings."""
    return Settings


@hookimpl
def partnerledger_tier(
    score: Score,
    ladder: tuple[Tier, ...],
    previous: str | None,
    periods_below: int,
    settings: Settings,
) -> TierChoice:
    """The highest rung reached, or the previous tier while its grace period lasts."""
    rungs = ladder or settings.ladder
    names = [tier.name for tier in rungs]
    earned = None
    for tier in rungs:
        if score.total >= tier.threshold:
            earned = tier.name
    if (
        previous in names
        and (earned is None or names.index(earned) < names.index(previous))
        and periods_below < settings.grace_periods
    ):
        left = settings.grace_periods - periods_below
        return TierChoice(
            tier=previous,
            reason=f"score {score.total} is below {previous}; kept for a grace period "
            f"({left} period{'s' if left != 1 else ''} left)",
        )
    if earned is None:
        return TierChoice(tier=None, reason=f"score {score.total} is below every tier")
    threshold = rungs[names.index(earned)].threshold
    return TierChoice(tier=earned, reason=f"score {score.total} reaches {earned} ({threshold})")
