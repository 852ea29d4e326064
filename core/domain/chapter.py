"""Chapter activity of BNI-style networks.

Meeting attendance is kept per meeting (a later line for the same member
corrects the earlier one, as a new event). One-to-ones, visitors,
testimonials, trainings and thank-you-for-closed-business reports are each a
record of their own, identified by the command's identity.
"""

from __future__ import annotations

from uuid import UUID

from ..commands import (
    Attendance,
    Command,
    MeetingAttended,
    OneToOneHeld,
    TestimonialGiven,
    TrainingCompleted,
    TyfcbReported,
    VisitorBrought,
)
from ..errors import InvalidCommand, InvalidTransition
from ..identity import aggregate_id
from .base import (
    Aggregate,
    Lookup,
    active_member,
    distinct,
    network_currency,
    positive_money,
    rule,
)


def meeting_id(network: str, meeting: str) -> UUID:
    """The aggregate id of a chapter meeting."""
    return aggregate_id("meeting", network, meeting)


def activity_id(network: str, command_id: str) -> UUID:
    """The aggregate id of a one-off activity record."""
    return aggregate_id("activity", network, command_id)


class Meeting(Aggregate):
    """Who attended one chapter meeting, and how."""

    kind = "meeting"

    def __init__(self, id: UUID) -> None:
        super().__init__(id)
        self.attendance: dict[str, Attendance] = {}

    def when(self, command: Command) -> None:
        if isinstance(command, MeetingAttended):
            self.attendance[command.member] = command.status
        else:
            super().when(command)


class Activity(Aggregate):
    """A one-off chapter activity: one-to-one, visitor, testimonial, training, TYFCB."""

    kind = "activity"

    def __init__(self, id: UUID) -> None:
        super().__init__(id)
        self.command: Command | None = None

    def when(self, command: Command) -> None:
        if isinstance(
            command,
            OneToOneHeld | VisitorBrought | TestimonialGiven | TrainingCompleted | TyfcbReported,
        ):
            self.command = command
        else:
            super().when(command)


def _activity_key(command: Command, command_id: str) -> UUID:
    return activity_id(command.network, command_id)


@rule(MeetingAttended, Meeting, lambda c, _: meeting_id(c.network, c.meeting))
def attend(lookup: Lookup, _: Meeting | None, command: MeetingAttended) -> None:
    lookup.network(command.network)
    member = lookup.member(command.network, command.member, "member")
    if member.status in ("left", "invited"):
        raise InvalidTransition("member", f"member {command.member!r} is {member.status}")
    if command.status == "substitute" and command.substitute is None:
        raise InvalidCommand("substitute", "name the substitute when status is 'substitute'")
    if command.status != "substitute" and command.substitute is not None:
        raise InvalidCommand("substitute", "only for status 'substitute'")


@rule(OneToOneHeld, Activity, _activity_key)
def one_to_one(lookup: Lookup, _: Activity | None, command: OneToOneHeld) -> None:
    lookup.network(command.network)
    distinct("with_member", command.with_member, command.member, "a one-to-one's other member")
    active_member(lookup, command.network, command.member, "member")
    active_member(lookup, command.network, command.with_member, "with_member")


@rule(VisitorBrought, Activity, _activity_key)
def visitor(lookup: Lookup, _: Activity | None, command: VisitorBrought) -> None:
    lookup.network(command.network)
    active_member(lookup, command.network, command.member, "member")


@rule(TestimonialGiven, Activity, _activity_key)
def testimonial(lookup: Lookup, _: Activity | None, command: TestimonialGiven) -> None:
    lookup.network(command.network)
    distinct("about_member", command.about_member, command.member, "a testimonial's subject")
    active_member(lookup, command.network, command.member, "member")
    lookup.member(command.network, command.about_member, "about_member")


@rule(TrainingCompleted, Activity, _activity_key)
def training(lookup: Lookup, _: Activity | None, command: TrainingCompleted) -> None:
    lookup.network(command.network)
    active_member(lookup, command.network, command.member, "member")


@rule(TyfcbReported, Activity, _activity_key)
def tyfcb(lookup: Lookup, _: Activity | None, command: TyfcbReported) -> None:
    network = lookup.network(command.network)
    distinct("thanked_member", command.thanked_member, command.member, "the member thanked")
    active_member(lookup, command.network, command.member, "member")
    lookup.member(command.network, command.thanked_member, "thanked_member")
    positive_money("amount", command.amount)
    network_currency("currency", command.currency, network)
    if command.referral is not None:
        referral = lookup.referral(command.network, command.referral, "referral")
        if referral.status not in ("converted", "reversed"):
            raise InvalidTransition(
                "referral", f"referral {command.referral!r} is {referral.status}, not converted"
            )
        if (referral.from_member, referral.to_member) != (command.thanked_member, command.member):
            raise InvalidCommand(
                "referral",
                f"referral {command.referral!r} went from {referral.from_member!r} to "
                f"{referral.to_member!r}, not from {command.thanked_member!r} "
                f"to {command.member!r}",
            )
