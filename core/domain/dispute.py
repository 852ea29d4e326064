"""Disputes: a challenge to a referral, a conversion, an attribution or a ledger entry.

raised → (commented …) → resolved | withdrawn. A dispute is its own
aggregate (one stream per network and dispute slug); its comments, its
``ledger.adjusted`` compensations and its resolution are events of that
stream. A ``credit.reassigned`` compensation is an event of the *referral's*
stream (the referral's credited member is part of its state), naming the
dispute that issued it.

Nothing is edited: a resolution records new, compensating events, and lists
their command ids in ``dispute.resolved``. The compensations come first (each
checks that its dispute is open), then the resolution, which checks that it
lists exactly the compensations recorded for the dispute. The application
service (:mod:`partnerledger.disputes`) records them in one transaction.

What this module cannot check, because it needs the views (the ledger
entries are computed by the incentive plugins): that a disputed ledger entry
exists, and that a reversal is exactly minus the entry it reverses. The
service checks both against the ledger view before recording.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from ..commands import (
    Command,
    CreditReassigned,
    DisputeCommand,
    DisputeCommented,
    DisputeOutcome,
    DisputeRaised,
    DisputeResolved,
    DisputeSubjectKind,
    DisputeWithdrawn,
    Evidence,
    LedgerAdjusted,
    derived_command_id,
)
from ..errors import AlreadyExists, InvalidCommand, InvalidTransition, NotFound
from ..identity import aggregate_id
from .base import Aggregate, Lookup, active_member, distinct, money, network_currency, rule
from .referral import Referral, referral_id

DisputeStatus = Literal["raised", "resolved", "withdrawn"]
#: Subject kinds that name a referral (the others name a ledger entry).
REFERRAL_KINDS: tuple[DisputeSubjectKind, ...] = ("referral", "conversion", "attribution")


def dispute_id(network: str, slug: str) -> UUID:
    """The aggregate id of a dispute."""
    return aggregate_id("dispute", network, slug)


def split_entry(ref: str) -> tuple[str, str]:
    """A ledger entry's identity ``MEMBER/SOURCE`` as (member, source)."""
    member, _, source = ref.partition("/")
    return member, source


class Dispute(Aggregate):
    """One dispute and what became of it."""

    kind = "dispute"

    def __init__(self, id: UUID) -> None:
        super().__init__(id)
        self.slug = ""
        self.subject_kind: DisputeSubjectKind = "referral"
        self.subject = ""
        self.raised_by: str | None = None
        self.actor = ""
        self.statement = ""
        self.status: DisputeStatus = "raised"
        self.evidence: list[Evidence] = []
        self.comments = 0
        #: ``ledger.adjusted`` events of this dispute: command id -> the command
        self.adjustments: dict[str, LedgerAdjusted] = {}
        self.outcome: DisputeOutcome | None = None
        self.reason: str | None = None
        self.compensations: tuple[str, ...] = ()

    @property
    def referral(self) -> str | None:
        """The referral disputed (directly, or its conversion or attribution)."""
        return self.subject if self.subject_kind in REFERRAL_KINDS else None

    @property
    def entry_member(self) -> str | None:
        """For a ledger entry's dispute: the member the entry belongs to."""
        return split_entry(self.subject)[0] if self.subject_kind == "ledger_entry" else None

    def when(self, command: Command) -> None:
        if isinstance(command, DisputeRaised):
            self.slug = command.dispute
            self.subject_kind = command.subject_kind
            self.subject = command.subject
            self.raised_by = command.raised_by
            self.actor = command.actor
            self.statement = command.statement
            self.evidence.extend(command.evidence)
        elif isinstance(command, DisputeCommented):
            self.comments += 1
            self.evidence.extend(command.evidence)
        elif isinstance(command, LedgerAdjusted):
            self.adjustments[derived_command_id(command)] = command
        elif isinstance(command, DisputeResolved):
            self.status = "resolved"
            self.outcome = command.outcome
            self.reason = command.reason
            self.compensations = command.compensations
        elif isinstance(command, DisputeWithdrawn):
            self.status = "withdrawn"
            self.reason = command.reason
        else:
            super().when(command)


def _key(command: DisputeCommand, _: str) -> UUID:
    return dispute_id(command.network, command.dispute)


def _open(dispute: Dispute | None, network: str, slug: str, field: str = "dispute") -> Dispute:
    """The dispute, which must exist and be open (raised)."""
    if dispute is None:
        raise NotFound(field, f"no dispute {slug!r} in network {network!r}")
    if dispute.status != "raised":
        raise InvalidTransition(
            field, f"dispute {slug!r} is {dispute.status}; only an open dispute can change"
        )
    return dispute


def _referral_parties(referral: Referral) -> set[str]:
    return {referral.from_member, referral.to_member, referral.credited}


def parties(lookup: Lookup, dispute: Dispute) -> set[str]:
    """The members a dispute concerns: its raiser and the members of what it disputes."""
    found = {dispute.raised_by} if dispute.raised_by else set()
    if dispute.referral is not None:
        found |= _referral_parties(lookup.referral(dispute.network, dispute.referral, "dispute"))
    if dispute.entry_member is not None:
        found.add(dispute.entry_member)
    return found


@rule(DisputeRaised, Dispute, _key)
def raise_dispute(lookup: Lookup, dispute: Dispute | None, command: DisputeRaised) -> None:
    lookup.network(command.network)
    if dispute is not None:
        raise AlreadyExists("dispute", f"dispute {command.dispute!r} already exists")
    if command.raised_by is not None:
        lookup.member(command.network, command.raised_by, "raised_by")
    if command.subject_kind == "ledger_entry":
        if "/" not in command.subject:
            raise InvalidCommand(
                "subject", "a ledger entry is named MEMBER/SOURCE (the member, a slash, the "
                "command id of the event that caused it)"
            )  # fmt: skip
        owner, _ = split_entry(command.subject)
        lookup.member(command.network, owner, "subject")
        if command.raised_by is not None and command.raised_by != owner:
            raise InvalidCommand(
                "raised_by",
                f"ledger entry {command.subject!r} is {owner!r}'s; a member disputes only "
                "their own entries",
            )
        return
    if "/" in command.subject:
        raise InvalidCommand("subject", f"a {command.subject_kind} is named by its referral id")
    referral = lookup.referral(command.network, command.subject, "subject")
    if command.subject_kind == "conversion" and referral.status not in ("converted", "reversed"):
        raise InvalidTransition(
            "subject",
            f"referral {command.subject!r} is {referral.status}; only a converted referral's "
            "conversion can be disputed",
        )
    if command.raised_by is not None and command.raised_by not in _referral_parties(referral):
        raise InvalidCommand(
            "raised_by",
            f"member {command.raised_by!r} is not a party to referral {command.subject!r} "
            f"(sent by {referral.from_member!r} to {referral.to_member!r})",
        )


@rule(DisputeCommented, Dispute, _key)
def comment(lookup: Lookup, dispute: Dispute | None, command: DisputeCommented) -> None:
    lookup.network(command.network)
    found = _open(dispute, command.network, command.dispute)
    if command.author is not None:
        lookup.member(command.network, command.author, "author")
        if command.author not in parties(lookup, found):
            raise InvalidCommand(
                "author", f"member {command.author!r} is not a party to dispute {command.dispute!r}"
            )


@rule(LedgerAdjusted, Dispute, _key)
def adjust(lookup: Lookup, dispute: Dispute | None, command: LedgerAdjusted) -> None:
    network = lookup.network(command.network)
    _open(dispute, command.network, command.dispute)
    lookup.member(command.network, command.member, "member")
    money("amount", command.amount)
    if command.amount == 0:
        raise InvalidCommand("amount", "an adjustment must not be zero")
    if command.amount.normalize().as_tuple().exponent < -4:  # type: ignore[operator]
        raise InvalidCommand("amount", "at most 4 decimal places")
    network_currency("currency", command.currency, network)
    if command.entry is not None and split_entry(command.entry)[0] != command.member:
        raise InvalidCommand(
            "entry", f"entry {command.entry!r} is not {command.member!r}'s; adjust its own member"
        )


@rule(CreditReassigned, Referral, lambda c, _: referral_id(c.network, c.referral))
def reassign(lookup: Lookup, referral: Referral | None, command: CreditReassigned) -> None:
    lookup.network(command.network)
    if referral is None:
        raise NotFound(
            "referral", f"no referral {command.referral!r} in network {command.network!r}"
        )
    found = lookup.load(Dispute, dispute_id(command.network, command.dispute))
    dispute = _open(found, command.network, command.dispute)
    if dispute.referral != command.referral:
        about = dispute.referral or f"ledger entry {dispute.subject}"
        raise InvalidCommand(
            "referral",
            f"dispute {command.dispute!r} is about {about!r}; its resolution reassigns the "
            "credit of that referral only",
        )
    if command.from_member != referral.credited:
        raise InvalidCommand(
            "from_member",
            f"referral {command.referral!r} is credited to {referral.credited!r}, "
            f"not {command.from_member!r}",
        )
    distinct("to_member", command.to_member, command.from_member, "the member credited")
    if command.to_member == referral.to_member:
        raise InvalidCommand(
            "to_member",
            f"{command.to_member!r} received referral {command.referral!r}; the credit goes to "
            "a referrer",
        )
    active_member(lookup, command.network, command.to_member, "to_member")


def _reassignments(lookup: Lookup, dispute: Dispute) -> set[str]:
    if dispute.referral is None:
        return set()
    referral = lookup.referral(dispute.network, dispute.referral, "dispute")
    return {cid for cid, slug in referral.reassignments.items() if slug == dispute.slug}


@rule(DisputeResolved, Dispute, _key)
def resolve(lookup: Lookup, dispute: Dispute | None, command: DisputeResolved) -> None:
    lookup.network(command.network)
    found = _open(dispute, command.network, command.dispute)
    if command.outcome == "rejected" and command.compensations:
        raise InvalidCommand(
            "compensations", "a rejected dispute changes nothing: it has no compensations"
        )
    issued = set(found.adjustments) | _reassignments(lookup, found)
    seen: set[str] = set()
    for index, cid in enumerate(command.compensations):
        if cid in seen:
            raise InvalidCommand(f"compensations[{index}]", f"{cid!r} is listed twice")
        if cid not in issued:
            raise InvalidCommand(
                f"compensations[{index}]",
                f"no compensating event {cid!r} was recorded for dispute {command.dispute!r} "
                "(record the ledger.adjusted and credit.reassigned events first)",
            )
        seen.add(cid)
    left_out = sorted(issued - seen)
    if left_out:
        raise InvalidCommand(
            "compensations",
            f"the compensating events of dispute {command.dispute!r} must all be listed; "
            f"missing {', '.join(left_out)}",
        )


@rule(DisputeWithdrawn, Dispute, _key)
def withdraw(lookup: Lookup, dispute: Dispute | None, command: DisputeWithdrawn) -> None:
    lookup.network(command.network)
    found = _open(dispute, command.network, command.dispute)
    if command.by != found.raised_by:
        raiser = repr(found.raised_by) if found.raised_by else "a coordinator"
        raise InvalidCommand(
            "by", f"only who raised dispute {command.dispute!r} ({raiser}) can withdraw it"
        )
    if found.adjustments or _reassignments(lookup, found):
        raise InvalidTransition(
            "dispute",
            f"dispute {command.dispute!r} has compensating events; a coordinator resolves it",
        )


__all__ = [
    "REFERRAL_KINDS",
    "Dispute",
    "DisputeStatus",
    "dispute_id",
    "parties",
    "split_entry",
]
