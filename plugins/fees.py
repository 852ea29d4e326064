"""Referral fees, revenue shares, clawbacks and tier bonuses.

What a converted referral earns its referrer (``referral.from_member``) comes
from the terms in force of the agreement between the two members: a flat
``referral_fee`` (the compensation's ``amount``) or a ``revenue_share``
(``rate`` times the deal value, capped by ``revenue_share_cap`` when set). Without
terms, or terms without compensation, the plugin's defaults apply
(``default_kind``, ``default_fee``, ``default_rate``); ``default_kind`` ``"none"``
(the default) pays nothing.

A reversal claws back the same proportion of what the conversion earned:
earned * (reversed amount / original deal value), as a negative ``clawback``.
A tier decision whose tier has an entry in ``tier_bonuses`` pays that bonus
(in ``bonus_currency``) to the member the event's command names.

Amounts are :class:`~decimal.Decimal`, rounded to 2 decimal places (cents)
with ROUND_HALF_UP; an amount that rounds to zero produces no entry.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

import msgspec

from partnerledger.commands import Currency, ReferralConverted, ReferralReversed, Terms
from partnerledger.events import Event
from partnerledger.hookspecs import hookimpl
from partnerledger.rules import LedgerEntry, ReferralFacts, TierChoice

NAME = "fees"
VERSION = "1.0.0"

CENT = Decimal("0.01")
ZERO = Decimal(0)
ONE = Decimal(1)

Kind = Literal["referral_fee", "revenue_share"]


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings of the fees plugin."""

    default_kind: Literal["referral_fee", "revenue_share", "none"] = "none"
    default_fee: Decimal = ZERO
    default_rate: Decimal = ZERO  # a fraction: 0.10 is 10 %
    revenue_share_cap: Decimal | None = None  # per conversion, in the conversion's currency
    tier_bonuses: dict[str, Decimal] = msgspec.field(default_factory=dict)
    bonus_currency: Currency | None = None  # required when tier_bonuses is set

    def __post_init__(self) -> None:
        if self.default_fee < 0:
            raise ValueError("default_fee: must be zero or more")
        if not ZERO <= self.default_rate <= ONE:
            raise ValueError("default_rate: must be a fraction between 0 and 1")
        if self.revenue_share_cap is not None and self.revenue_share_cap < 0:
            raise ValueError("revenue_share_cap: must be zero or more")
        for tier, bonus in self.tier_bonuses.items():
            if bonus < 0:
                raise ValueError(f"tier_bonuses.{tier}: must be zero or more")
        if self.tier_bonuses and self.bonus_currency is None:
            raise ValueError("bonus_currency: required when tier_bonuses are set")


class _Rule(msgspec.Struct, frozen=True, kw_only=True):
    """The compensation rule that applies to one referral, and where it came from."""

    kind: Kind
    fee: Decimal = ZERO
    rate: Decimal = ZERO
    currency: str | None = None  # a fee's own currency, if the terms name one
    origin: str


def money(amount: Decimal) -> Decimal:
    """Round to cents, half up."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def _plain(number: Decimal) -> str:
    """A number without trailing zeros or exponent, at most 2 decimals: 12.5, 10."""
    return format(number.quantize(CENT, rounding=ROUND_HALF_UP).normalize(), "f")


def _rule(terms: Terms | None, settings: Settings) -> _Rule | None:
    compensation = terms.compensation if terms is not None else None
    if compensation is not None:
        return _Rule(
            kind=compensation.kind,
            fee=compensation.amount or ZERO,
            rate=compensation.rate or ZERO,
            currency=compensation.currency,
            origin="agreement terms",
        )
    if settings.default_kind == "none":
        return None
    return _Rule(
        kind=settings.default_kind,
        fee=settings.default_fee,
        rate=settings.default_rate,
        origin="the fees plugin's defaults",
    )


def _earned(rule: _Rule, deal_value: Decimal, settings: Settings) -> tuple[Decimal, str]:
    """What a conversion worth ``deal_value`` earns under ``rule``, and why."""
    if rule.kind == "referral_fee":
        amount = money(rule.fee)
        return amount, f"referral fee {amount} under {rule.origin}"
    share = money(rule.rate * deal_value)
    why = f"{_plain(rule.rate * 100)}% of {money(deal_value)} under {rule.origin}"
    cap = settings.revenue_share_cap
    if cap is not None and share > money(cap):
        share = money(cap)
        why += f", capped at {share}"
    return share, why


def _converted(
    command: ReferralConverted,
    source: str,
    referral: ReferralFacts,
    terms: Terms | None,
    settings: Settings,
) -> list[LedgerEntry] | None:
    rule = _rule(terms, settings)
    if rule is None:
        return None
    amount, why = _earned(rule, command.deal_value, settings)
    if amount == 0:
        return None
    currency = (rule.currency if rule.kind == "referral_fee" else None) or command.currency
    return [
        LedgerEntry(
            member=referral.from_member,
            kind=rule.kind,
            amount=amount,
            currency=currency,
            source=source,
            note=why,
        )
    ]


def _reversed(
    command: ReferralReversed,
    source: str,
    referral: ReferralFacts,
    terms: Terms | None,
    settings: Settings,
) -> list[LedgerEntry] | None:
    rule = _rule(terms, settings)
    deal_value = referral.deal_value
    if rule is None or deal_value is None or deal_value <= 0:
        return None
    earned, why = _earned(rule, deal_value, settings)
    fraction = min(max(command.amount / deal_value, ZERO), ONE)
    amount = money(earned * fraction)
    if amount == 0:
        return None
    if rule.kind == "referral_fee":
        currency = rule.currency or command.currency or referral.currency
    else:
        currency = command.currency or referral.currency
    if currency is None:
        return None
    return [
        LedgerEntry(
            member=referral.from_member,
            kind="clawback",
            amount=-amount,
            currency=currency,
            source=source,
            note=f"{money(command.amount)} of {money(deal_value)} reversed: "
            f"{_plain(fraction * 100)}% of the {earned} earned ({why})",
        )
    ]


def _bonus(event: Event, tier: TierChoice, settings: Settings) -> list[LedgerEntry] | None:
    if tier.tier is None or tier.tier not in settings.tier_bonuses:
        return None
    member = getattr(event.command, "member", None)
    amount = money(settings.tier_bonuses[tier.tier])
    if not isinstance(member, str) or amount == 0 or settings.bonus_currency is None:
        return None
    note = f"{tier.tier} tier bonus" + (f" ({tier.reason})" if tier.reason else "")
    return [
        LedgerEntry(
            member=member,
            kind="bonus",
            amount=amount,
            currency=settings.bonus_currency,
            source=event.command_id,
            note=note,
        )
    ]


@hookimpl
def partnerledger_settings() -> type[Settings]:
    """Declare the settings."""
    return Settings


@hookimpl
def partnerledger_incentives(
    event: Event,
    referral: ReferralFacts | None,
    terms: Terms | None,
    tier: TierChoice | None,
    settings: Settings,
) -> list[LedgerEntry] | None:
    """The fee, share, clawback or bonus an event causes (``None`` for anything else)."""
    command = event.command
    if isinstance(command, ReferralConverted) and referral is not None:
        return _converted(command, event.command_id, referral, terms, settings)
    if isinstance(command, ReferralReversed) and referral is not None:
        return _reversed(command, event.command_id, referral, terms, settings)
    if tier is not None:
        return _bonus(event, tier, settings)
    return None
