"""What the rules (plugins) receive and return.

These are plain msgspec Structs, so a decision can be recorded in an event
exactly as the plugin returned it, and compared byte for byte when history
is replayed.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Literal

import msgspec

from .types import AwareDatetime


class Window(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A half-open span of business time: ``start <= t < end``."""

    start: AwareDatetime
    end: AwareDatetime

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


class Activity(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One member's activity in a window, as scoring rules read it.

    Counts and sums are over events whose business time lies in the window.
    ``meetings_held`` counts the chapter's meetings in the window (any member's
    attendance recorded for it), so rates per week divide by it.
    """

    network: str
    member: str
    window: Window
    currency: str
    meetings_held: int = 0
    present: int = 0
    late: int = 0
    absent: int = 0
    substitute: int = 0
    medical: int = 0
    referrals_given: int = 0
    referrals_received: int = 0
    referrals_given_converted: int = 0
    converted_value_given: Decimal = Decimal(0)
    tyfcb_received: Decimal = Decimal(0)
    visitors: int = 0
    testimonials_given: int = 0
    trainings: int = 0
    one_to_ones: int = 0
    introductions: int = 0
    last_conversion_at: AwareDatetime | None = None


class ReferralFacts(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A referral as incentive and attribution rules see it."""

    referral: str
    from_member: str
    to_member: str
    #: The customer's data subject (a pseudonym, the same for every referral of one
    #: customer in a network): rules never see the name, which is sealed (docs/privacy.md).
    customer: str
    status: str
    sent_at: AwareDatetime
    deal_value: Decimal | None = None
    reversed_amount: Decimal = Decimal(0)
    currency: str | None = None


class Score(msgspec.Struct, frozen=True, kw_only=True, tag=True, forbid_unknown_fields=True):
    """A member's score for a window, with its breakdown by component."""

    total: Decimal
    breakdown: dict[str, Decimal] = msgspec.field(default_factory=dict)
    label: str | None = None  # e.g. a traffic-light colour


class TierChoice(msgspec.Struct, frozen=True, kw_only=True, tag=True, forbid_unknown_fields=True):
    """The tier a score earns (``None``: below the lowest rung)."""

    tier: str | None
    reason: str = ""


class LedgerEntry(msgspec.Struct, frozen=True, kw_only=True, tag=True, forbid_unknown_fields=True):
    """Money owed to (positive) or taken back from (negative) a member."""

    member: str
    kind: Literal["referral_fee", "revenue_share", "bonus", "clawback"]
    amount: Decimal
    currency: str
    source: str  # the command id of the event that caused it
    note: str = ""


class Credit(msgspec.Struct, frozen=True, kw_only=True, tag=True, forbid_unknown_fields=True):
    """A referral's share of the credit for a customer."""

    referral: str
    member: str
    share: Decimal  # a fraction; shares of one customer add up to 1


class Message(msgspec.Struct, frozen=True, kw_only=True, tag=True, forbid_unknown_fields=True):
    """A notification to deliver."""

    channel: Literal["inbox", "email", "webhook"]
    to: str  # inbox: a member slug; email: an address; webhook: a URL
    subject: str
    body: str
    headers: dict[str, str] = msgspec.field(default_factory=dict)  # e.g. a webhook signature


class Veto(msgspec.Struct, frozen=True, kw_only=True, tag=True, forbid_unknown_fields=True):
    """A validation rule's refusal of a command: the field and the reason."""

    field: str
    reason: str


class Decision(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A value a plugin decided, with the plugin's name and version.

    The value types are tagged (``"type": "Score"``...), so a recorded decision
    decodes back to exactly what the plugin returned.
    """

    plugin: str
    version: str
    value: Score | TierChoice | LedgerEntry | Credit | Message | Veto


_canonical = msgspec.json.Encoder(decimal_format="string", order="sorted")


def inputs_digest(activity: Activity) -> str:
    """The digest of a decision's inputs: SHA-256 of the activity's canonical JSON.

    Canonical: keys sorted, decimals as strings, times in UTC (RFC 3339).
    """
    return "sha256:" + hashlib.sha256(_canonical.encode(activity)).hexdigest()


__all__ = [
    "Activity",
    "Credit",
    "Decision",
    "LedgerEntry",
    "Message",
    "ReferralFacts",
    "Score",
    "TierChoice",
    "Veto",
    "Window",
    "inputs_digest",
]
