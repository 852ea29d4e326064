"""Referrals: a lead sent from one member to another, through its lifecycle.

sent → accepted | declined; accepted → converted | lost;
converted → reversed (in full or in part, possibly in several steps).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from ..commands import (
    Command,
    CreditReassigned,
    ReferralAccepted,
    ReferralCommand,
    ReferralConverted,
    ReferralDeclined,
    ReferralLost,
    ReferralReversed,
    ReferralSent,
    derived_command_id,
)
from ..errors import AlreadyExists, InvalidCommand, InvalidTransition, NotFound
from ..identity import aggregate_id
from ..privacy import Sealed
from .base import Aggregate, Lookup, active_member, distinct, network_currency, positive_money, rule

ReferralStatus = Literal["sent", "accepted", "declined", "converted", "lost", "reversed"]


def referral_id(network: str, slug: str) -> UUID:
    """The aggregate id of a referral."""
    return aggregate_id("referral", network, slug)


class Referral(Aggregate):
    """One lead and what became of it."""

    kind = "referral"

    def __init__(self, id: UUID) -> None:
        super().__init__(id)
        self.slug = ""
        self.from_member = ""
        self.to_member = ""
        #: Personal data: sealed (as stored) or in the clear (decided, not yet committed);
        #: show it with ``Lookup.reveal`` / ``Vault.reveal`` (docs/privacy.md).
        self.customer: str | Sealed = ""
        self.customer_contact: str | Sealed | None = None
        #: The data subject the customer's data belongs to.
        self.subject = ""
        self.status: ReferralStatus = "sent"
        self.deal_value: Decimal | None = None
        self.currency: str | None = None
        self.converted_at: datetime | None = None
        self.reversed_amount = Decimal(0)
        #: Who is credited with it: the sender, unless a dispute reassigned the credit.
        self.credited = ""
        #: The ``credit.reassigned`` events applied: command id -> the dispute that issued it.
        self.reassignments: dict[str, str] = {}

    @property
    def net_value(self) -> Decimal:
        """Converted value after reversals (zero before conversion)."""
        return (self.deal_value or Decimal(0)) - self.reversed_amount

    def when(self, command: Command) -> None:
        if isinstance(command, ReferralSent):
            self.slug = command.referral
            self.from_member = command.from_member
            self.to_member = command.to_member
            self.customer = command.customer
            self.customer_contact = command.customer_contact
            self.subject = command.subject or ""
            self.credited = command.from_member
        elif isinstance(command, ReferralAccepted):
            self.status = "accepted"
        elif isinstance(command, ReferralDeclined):
            self.status = "declined"
        elif isinstance(command, ReferralLost):
            self.status = "lost"
        elif isinstance(command, ReferralConverted):
            self.status = "converted"
            self.deal_value = command.deal_value
            self.currency = command.currency
            self.converted_at = command.occurred_at
        elif isinstance(command, ReferralReversed):
            self.status = "reversed"
            self.reversed_amount += command.amount
        elif isinstance(command, CreditReassigned):
            self.credited = command.to_member
            self.reassignments[derived_command_id(command)] = command.dispute
        else:
            super().when(command)


def _key(command: ReferralCommand, _: str) -> UUID:
    return referral_id(command.network, command.referral)


def _in_state(
    referral: Referral | None, command: ReferralCommand, allowed: tuple[ReferralStatus, ...]
) -> Referral:
    if referral is None:
        raise NotFound(
            "referral", f"no referral {command.referral!r} in network {command.network!r}"
        )
    if referral.status not in allowed:
        action = command.type.split(".")[1]
        raise InvalidTransition(
            "referral",
            f"referral {command.referral!r} is {referral.status}; only a referral that is "
            f"{' or '.join(allowed)} can be {action}",
        )
    return referral


@rule(ReferralSent, Referral, _key)
def send(lookup: Lookup, referral: Referral | None, command: ReferralSent) -> None:
    lookup.network(command.network)
    if referral is not None:
        raise AlreadyExists("referral", f"referral {command.referral!r} already exists")
    distinct("to_member", command.to_member, command.from_member, "a referral's receiver")
    active_member(lookup, command.network, command.from_member, "from_member")
    active_member(lookup, command.network, command.to_member, "to_member")


@rule(ReferralAccepted, Referral, _key)
def accept(lookup: Lookup, referral: Referral | None, command: ReferralAccepted) -> None:
    lookup.network(command.network)
    _in_state(referral, command, ("sent",))


@rule(ReferralDeclined, Referral, _key)
def decline(lookup: Lookup, referral: Referral | None, command: ReferralDeclined) -> None:
    lookup.network(command.network)
    _in_state(referral, command, ("sent",))


@rule(ReferralLost, Referral, _key)
def lose(lookup: Lookup, referral: Referral | None, command: ReferralLost) -> None:
    lookup.network(command.network)
    _in_state(referral, command, ("accepted",))


@rule(ReferralConverted, Referral, _key)
def convert(lookup: Lookup, referral: Referral | None, command: ReferralConverted) -> None:
    network = lookup.network(command.network)
    _in_state(referral, command, ("accepted",))
    positive_money("deal_value", command.deal_value)
    network_currency("currency", command.currency, network)


@rule(ReferralReversed, Referral, _key)
def reverse(lookup: Lookup, referral: Referral | None, command: ReferralReversed) -> None:
    network = lookup.network(command.network)
    found = _in_state(referral, command, ("converted", "reversed"))
    positive_money("amount", command.amount)
    if command.currency is not None:
        network_currency("currency", command.currency, network)
    remaining = found.net_value
    if remaining <= 0:
        raise InvalidTransition("referral", f"referral {command.referral!r} is reversed in full")
    if command.amount > remaining:
        raise InvalidCommand(
            "amount", f"{command.amount} exceeds the value left to reverse ({remaining})"
        )
