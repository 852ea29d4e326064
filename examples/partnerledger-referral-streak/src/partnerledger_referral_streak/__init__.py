"""Referral streak: points for every referral a member gives, and a bonus for a streak.

A scoring plugin for partnerledger. A member scores ``per_referral`` points
for each referral given in the window, and ``bonus`` points more when they
gave at least ``streak`` of them. With ``converted_only``, only referrals
that converted in the window count.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from partnerledger import hookimpl
from partnerledger.rules import Activity, Score

NAME = "referral-streak"
VERSION = "1.0.0"


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings of the referral-streak plugin; every field has a default."""

    per_referral: Decimal = Decimal(10)
    streak: int = 3
    bonus: Decimal = Decimal(25)
    converted_only: bool = False

    def __post_init__(self) -> None:
        # "field: reason" names the setting at fault: the network's command is
        # refused on settings.<field> with the reason.
        if self.per_referral < 0:
            raise ValueError("per_referral: must be zero or more")
        if self.streak < 1:
            raise ValueError("streak: must be at least 1")
        if self.bonus < 0:
            raise ValueError("bonus: must be zero or more")


@hookimpl
def partnerledger_settings() -> type[Settings]:
    """Declare the settings."""
    return Settings


@hookimpl
def partnerledger_score(activity: Activity, settings: Settings) -> Score:
    """Points per referral given, plus the bonus for a streak."""
    if settings.converted_only:
        given = activity.referrals_given_converted
    else:
        given = activity.referrals_given
    on_streak = given >= settings.streak
    breakdown = {
        "referrals": given * settings.per_referral,
        "streak_bonus": settings.bonus if on_streak else Decimal(0),
    }
    return Score(
        total=sum(breakdown.values(), Decimal(0)),
        breakdown=breakdown,
        label="streak" if on_streak else None,
    )
