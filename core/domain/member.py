"""Members: the businesses of a network, and their status."""

from __future__ import annotations

from uuid import UUID

from ..commands import (
    PROGRAM,
    Command,
    Contact,
    MemberCommand,
    MemberInvited,
    MemberJoined,
    MemberLeft,
    MemberReinstated,
    MemberStatus,
    MemberSuspended,
    MemberUpdated,
)
from ..errors import AlreadyExists, InvalidCommand, InvalidTransition, NotFound
from ..identity import aggregate_id
from .base import Aggregate, Lookup, rule


def member_id(network: str, slug: str) -> UUID:
    """The aggregate id of a member."""
    return aggregate_id("member", network, slug)


class Member(Aggregate):
    """A business in one network."""

    kind = "member"

    def __init__(self, id: UUID) -> None:
        super().__init__(id)
        self.slug = ""
        self.name = ""
        self.category = ""
        self.service_area: str | None = None
        self.contact: Contact | None = None
        self.status: MemberStatus = "invited"

    @property
    def can_act(self) -> bool:
        """Only active members send, receive or take part in anything new."""
        return self.status == "active"

    def when(self, command: Command) -> None:
        if isinstance(command, MemberInvited | MemberJoined):
            self.slug = command.member
            self.name = command.name or self.name
            self.category = command.category or self.category
            self.service_area = command.service_area or self.service_area
            self.contact = command.contact or self.contact
            self.status = "invited" if isinstance(command, MemberInvited) else "active"
        elif isinstance(command, MemberUpdated):
            self.name = command.name or self.name
            self.category = command.category or self.category
            self.service_area = command.service_area or self.service_area
            self.contact = command.contact or self.contact
        elif isinstance(command, MemberSuspended):
            self.status = "suspended"
        elif isinstance(command, MemberReinstated):
            self.status = "active"
        elif isinstance(command, MemberLeft):
            self.status = "left"
        else:
            super().when(command)


def _key(command: MemberCommand, _: str) -> UUID:
    return member_id(command.network, command.member)


def _existing(member: Member | None, command: Command, slug: str) -> Member:
    if member is None:
        raise NotFound("member", f"no member {slug!r} in network {command.network!r}")
    return member


def _not_reserved(command: MemberCommand) -> None:
    if command.member == PROGRAM:
        raise InvalidCommand("member", f"{PROGRAM!r} is reserved for the network's program")


@rule(MemberInvited, Member, _key)
def invite(lookup: Lookup, member: Member | None, command: MemberInvited) -> None:
    lookup.network(command.network)
    _not_reserved(command)
    if member is not None:
        raise AlreadyExists("member", f"member {command.member!r} already exists")


@rule(MemberJoined, Member, _key)
def join(lookup: Lookup, member: Member | None, command: MemberJoined) -> None:
    lookup.network(command.network)
    _not_reserved(command)
    if member is not None and member.status != "invited":
        raise AlreadyExists(
            "member", f"member {command.member!r} already exists (status {member.status})"
        )
    if member is None:
        for name, value in (("name", command.name), ("category", command.category)):
            if value is None:
                raise InvalidCommand(name, "required when a new member joins")


@rule(MemberUpdated, Member, _key)
def update(lookup: Lookup, member: Member | None, command: MemberUpdated) -> None:
    lookup.network(command.network)
    found = _existing(member, command, command.member)
    if found.status == "left":
        raise InvalidTransition("member", f"member {command.member!r} has left the network")
    if not any((command.name, command.category, command.service_area, command.contact)):
        raise InvalidCommand("name", "give at least one of name, category, service_area, contact")


def _transition(
    member: Member | None, command: Command, slug: str, allowed: tuple[MemberStatus, ...], verb: str
) -> None:
    found = _existing(member, command, slug)
    if found.status not in allowed:
        raise InvalidTransition(
            "member",
            f"member {slug!r} is {found.status}; only a member who is "
            f"{' or '.join(allowed)} can {verb}",
        )


@rule(MemberSuspended, Member, _key)
def suspend(lookup: Lookup, member: Member | None, command: MemberSuspended) -> None:
    lookup.network(command.network)
    _transition(member, command, command.member, ("active",), "be suspended")


@rule(MemberReinstated, Member, _key)
def reinstate(lookup: Lookup, member: Member | None, command: MemberReinstated) -> None:
    lookup.network(command.network)
    _transition(member, command, command.member, ("suspended",), "be reinstated")


@rule(MemberLeft, Member, _key)
def leave(lookup: Lookup, member: Member | None, command: MemberLeft) -> None:
    lookup.network(command.network)
    _transition(member, command, command.member, ("invited", "active", "suspended"), "leave")
