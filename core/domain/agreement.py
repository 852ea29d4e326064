"""Agreements between members (or a member and the program), with versioned terms.

proposed → (all parties accept) → pilot → active, or straight to active
without a pilot; active → amended (a new terms version every party accepts)
→ renewed; any live state → terminated (with a reason) or expired.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from ..commands import (
    PROGRAM,
    AgreementAccepted,
    AgreementActivated,
    AgreementAmended,
    AgreementCommand,
    AgreementExpired,
    AgreementKind,
    AgreementProposed,
    AgreementRenewed,
    AgreementTerminated,
    Command,
    Pilot,
    Terms,
)
from ..errors import AlreadyExists, InvalidCommand, InvalidTransition, NotFound
from ..identity import aggregate_id
from ..types import LATEST, MAX_DAYS
from .base import Aggregate, Lookup, fraction, network_currency, positive_money, rule
from .network import Network

AgreementStatus = Literal[
    "proposed", "pilot", "active", "amended", "renewed", "terminated", "expired"
]
LIVE: tuple[AgreementStatus, ...] = ("active", "amended", "renewed")
#: The latest end of an agreement: the longest term begun at the last business time.
LATEST_END = LATEST + timedelta(days=MAX_DAYS)
#: The most referrals a month a target asks for (the views keep 64-bit integers).
MAX_REFERRALS_PER_MONTH = 100_000


def agreement_id(network: str, slug: str) -> UUID:
    """The aggregate id of an agreement."""
    return aggregate_id("agreement", network, slug)


class Agreement(Aggregate):
    """An agreement and every version of its terms."""

    kind = "agreement"

    def __init__(self, id: UUID) -> None:
        super().__init__(id)
        self.slug = ""
        self.kind_of: AgreementKind = "referral"
        self.parties: tuple[str, ...] = ()
        self.terms: list[Terms] = []
        self.pilot: Pilot | None = None
        self.accepted_by: set[str] = set()
        self.status: AgreementStatus = "proposed"
        self.started_at: datetime | None = None
        self.pilot_ends_at: datetime | None = None
        self.ends_at: datetime | None = None
        self.termination_reason: str | None = None

    @property
    def current_terms(self) -> Terms:
        """The terms version in force (the latest accepted)."""
        return self.terms[-1]

    @property
    def terms_version(self) -> int:
        """1 for the original terms, 2 after the first amendment..."""
        return len(self.terms)

    def _run_for(self, start: datetime, days: int | None) -> None:
        self.ends_at = start + timedelta(days=days) if days else None

    def when(self, command: Command) -> None:
        if isinstance(command, AgreementProposed):
            self.slug = command.agreement
            self.kind_of = command.kind
            self.parties = command.parties
            self.terms = [command.terms]
            self.pilot = command.pilot
        elif isinstance(command, AgreementAccepted):
            self.accepted_by.add(command.party)
            if self.accepted_by >= set(self.parties):
                self.started_at = command.occurred_at
                if self.pilot is not None:
                    self.status = "pilot"
                    self.pilot_ends_at = command.occurred_at + timedelta(days=self.pilot.days)
                else:
                    self.status = "active"
                    self._run_for(command.occurred_at, self.current_terms.duration_days)
        elif isinstance(command, AgreementActivated):
            self.status = "active"
            self._run_for(command.occurred_at, self.current_terms.duration_days)
        elif isinstance(command, AgreementAmended):
            self.terms.append(command.terms)
            if self.status != "pilot":  # a pilot stays a pilot until it is activated
                self.status = "amended"
        elif isinstance(command, AgreementRenewed):
            self.status = "renewed"
            start = max(filter(None, (self.ends_at, command.occurred_at)))
            self._run_for(start, command.duration_days or self.current_terms.duration_days)
        elif isinstance(command, AgreementTerminated):
            self.status = "terminated"
            self.termination_reason = command.reason
        elif isinstance(command, AgreementExpired):
            self.status = "expired"
        else:
            super().when(command)


def _key(command: AgreementCommand, _: str) -> UUID:
    return agreement_id(command.network, command.agreement)


def _in_state(
    agreement: Agreement | None, command: AgreementCommand, allowed: tuple[AgreementStatus, ...]
) -> Agreement:
    if agreement is None:
        raise NotFound(
            "agreement", f"no agreement {command.agreement!r} in network {command.network!r}"
        )
    if agreement.status not in allowed:
        action = command.type.split(".")[1]
        raise InvalidTransition(
            "agreement",
            f"agreement {command.agreement!r} is {agreement.status}; only an agreement that is "
            f"{' or '.join(allowed)} can be {action}",
        )
    return agreement


def _check_terms(terms: Terms, parties: tuple[str, ...], network: Network, field: str) -> None:
    for party in terms.responsibilities:
        if party not in parties:
            raise InvalidCommand(
                f"{field}.responsibilities.{party}", f"{party!r} is not a party to the agreement"
            )
    targets = terms.targets
    if targets is not None and targets.conversion_rate is not None:
        fraction(f"{field}.targets.conversion_rate", targets.conversion_rate)
    if targets is not None and (targets.referrals_per_month or 0) > MAX_REFERRALS_PER_MONTH:
        raise InvalidCommand(
            f"{field}.targets.referrals_per_month",
            f"at most {MAX_REFERRALS_PER_MONTH}, got {targets.referrals_per_month}",
        )
    pay = terms.compensation
    if pay is None:
        return
    where = f"{field}.compensation"
    if pay.kind == "referral_fee":
        if pay.amount is None:
            raise InvalidCommand(f"{where}.amount", "required for a referral fee")
        positive_money(f"{where}.amount", pay.amount)
        network_currency(f"{where}.currency", pay.currency or network.currency, network)
        if pay.rate is not None:
            raise InvalidCommand(f"{where}.rate", "only for a revenue share")
    else:
        if pay.rate is None:
            raise InvalidCommand(f"{where}.rate", "required for a revenue share")
        fraction(f"{where}.rate", pay.rate)
        if pay.currency is not None:
            network_currency(f"{where}.currency", pay.currency, network)
        if pay.rate == 0:
            raise InvalidCommand(f"{where}.rate", "must be greater than zero")
        if pay.amount is not None:
            raise InvalidCommand(f"{where}.amount", "only for a referral fee")


@rule(AgreementProposed, Agreement, _key)
def propose(lookup: Lookup, agreement: Agreement | None, command: AgreementProposed) -> None:
    network = lookup.network(command.network)
    if agreement is not None:
        raise AlreadyExists("agreement", f"agreement {command.agreement!r} already exists")
    if len(command.parties) < 2:
        raise InvalidCommand("parties", "an agreement needs at least two parties")
    if len(set(command.parties)) != len(command.parties):
        raise InvalidCommand("parties", "a party is listed twice")
    for index, party in enumerate(command.parties):
        if party != PROGRAM:
            member = lookup.member(command.network, party, f"parties[{index}]")
            if member.status in ("left", "suspended"):
                raise InvalidTransition(f"parties[{index}]", f"member {party!r} is {member.status}")
    _check_terms(command.terms, command.parties, network, "terms")


@rule(AgreementAccepted, Agreement, _key)
def accept(lookup: Lookup, agreement: Agreement | None, command: AgreementAccepted) -> None:
    lookup.network(command.network)
    found = _in_state(agreement, command, ("proposed",))
    if command.party not in found.parties:
        raise InvalidCommand("party", f"{command.party!r} is not a party to the agreement")
    if command.party in found.accepted_by:
        raise InvalidTransition("party", f"{command.party!r} has already accepted")
    if command.party != PROGRAM:
        member = lookup.member(command.network, command.party, "party")
        if member.status in ("left", "suspended"):
            raise InvalidTransition("party", f"member {command.party!r} is {member.status}")


@rule(AgreementActivated, Agreement, _key)
def activate(lookup: Lookup, agreement: Agreement | None, command: AgreementActivated) -> None:
    lookup.network(command.network)
    _in_state(agreement, command, ("pilot",))


@rule(AgreementAmended, Agreement, _key)
def amend(lookup: Lookup, agreement: Agreement | None, command: AgreementAmended) -> None:
    network = lookup.network(command.network)
    found = _in_state(agreement, command, ("pilot", *LIVE))
    unknown = [p for p in command.accepted_by if p not in found.parties]
    if unknown:
        raise InvalidCommand("accepted_by", f"not parties to the agreement: {', '.join(unknown)}")
    pending = [p for p in found.parties if p not in command.accepted_by]
    if pending:
        raise InvalidCommand(
            "accepted_by",
            f"an amendment must be accepted by every party; not accepted by {', '.join(pending)}",
        )
    if command.terms == found.current_terms:
        raise InvalidCommand("terms", "the new terms are the same as the terms in force")
    _check_terms(command.terms, found.parties, network, "terms")


@rule(AgreementRenewed, Agreement, _key)
def renew(lookup: Lookup, agreement: Agreement | None, command: AgreementRenewed) -> None:
    lookup.network(command.network)
    found = _in_state(agreement, command, LIVE)
    days = command.duration_days or found.current_terms.duration_days
    if days is None:
        raise InvalidCommand("duration_days", "the terms set no duration; give one to renew")
    # Renewals add up: each one runs on from the end of the last. Past the
    # latest end a first term can have, they would soon leave the calendar.
    end = max(filter(None, (found.ends_at, command.occurred_at))) + timedelta(days=days)
    if end > LATEST_END:
        raise InvalidCommand(
            "duration_days",
            f"the renewed term would end on {end.date()}, past {LATEST_END.date()}, "
            "the latest an agreement may run; renew it for a shorter term",
        )


@rule(AgreementTerminated, Agreement, _key)
def terminate(lookup: Lookup, agreement: Agreement | None, command: AgreementTerminated) -> None:
    lookup.network(command.network)
    _in_state(agreement, command, ("proposed", "pilot", *LIVE))


@rule(AgreementExpired, Agreement, _key)
def expire(lookup: Lookup, agreement: Agreement | None, command: AgreementExpired) -> None:
    lookup.network(command.network)
    _in_state(agreement, command, ("pilot", *LIVE))
