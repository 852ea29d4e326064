"""Attribution: who gets the credit when several referrals bring the same customer.

``rule`` picks how the credit is shared between two or more competing
referrals:

* ``"first"`` (the default): the oldest referral (earliest ``sent_at``) gets
  a share of 1, the others 0;
* ``"last"``: the newest referral gets 1, the others 0;
* ``"split"``: an even split. Shares are :class:`~decimal.Decimal` with 4
  decimal places (rounded down) and add up to exactly 1: the remainder goes
  to the oldest referral, so three referrals sent in that order get
  0.3334, 0.3333 and 0.3333.

Ties on ``sent_at`` go to the referral listed first (``"first"``) or last
(``"last"``). Every referral gets a :class:`~partnerledger.rules.Credit`
(share 0 included), in the order the referrals were given, crediting the
referring member (``from_member``). Fewer than two referrals: no decision.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Literal

import msgspec

from partnerledger.hookspecs import hookimpl
from partnerledger.rules import Credit, ReferralFacts

NAME = "attribution"
VERSION = "1.0.0"

#: Precision of split shares: 4 decimal places.
PRECISION = Decimal("0.0001")


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings of the attribution plugin."""

    rule: Literal["first", "last", "split"] = "first"


def _oldest(referrals: list[ReferralFacts]) -> int:
    return min(range(len(referrals)), key=lambda i: (referrals[i].sent_at, i))


def _newest(referrals: list[ReferralFacts]) -> int:
    return max(range(len(referrals)), key=lambda i: (referrals[i].sent_at, i))


def _shares(referrals: list[ReferralFacts], rule: str) -> list[Decimal]:
    count = len(referrals)
    if rule == "split":
        even = (Decimal(1) / count).quantize(PRECISION, rounding=ROUND_DOWN)
        shares = [even] * count
        shares[_oldest(referrals)] += Decimal(1) - even * count
        return shares
    winner = _oldest(referrals) if rule == "first" else _newest(referrals)
    return [Decimal(1) if i == winner else Decimal(0) for i in range(count)]


@hookimpl
def partnerledger_settings() -> type[Settings]:
    """Declare the settings."""
    return Settings


@hookimpl
def partnerledger_attribute(
    customer: str, referrals: list[ReferralFacts], settings: Settings
) -> list[Credit] | None:
    """One credit per referral, in the given order; shares add up to exactly 1."""
    if len(referrals) < 2:
        return None
    shares = _shares(referrals, settings.rule)
    return [
        Credit(referral=r.referral, member=r.from_member, share=share)
        for r, share in zip(referrals, shares, strict=True)
    ]
