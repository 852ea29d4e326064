"""Introductions: a member introduces another to a member or to an outside business."""

from __future__ import annotations

from uuid import UUID

from ..commands import Command, IntroductionMade
from ..errors import AlreadyExists, InvalidCommand
from ..identity import aggregate_id
from .base import Aggregate, Lookup, active_member, distinct, rule


def introduction_id(network: str, slug: str) -> UUID:
    """The aggregate id of an introduction."""
    return aggregate_id("introduction", network, slug)


class Introduction(Aggregate):
    """A warm introduction, the start of many partnerships."""

    kind = "introduction"

    def __init__(self, id: UUID) -> None:
        super().__init__(id)
        self.introducer = ""
        self.introduced = ""
        self.to_member: str | None = None
        self.to_business: str | None = None

    def when(self, command: Command) -> None:
        if isinstance(command, IntroductionMade):
            self.introducer = command.introducer
            self.introduced = command.introduced
            self.to_member = command.to_member
            self.to_business = command.to_business
        else:
            super().when(command)


@rule(IntroductionMade, Introduction, lambda c, _: introduction_id(c.network, c.introduction))
def introduce(lookup: Lookup, intro: Introduction | None, command: IntroductionMade) -> None:
    lookup.network(command.network)
    if intro is not None:
        raise AlreadyExists("introduction", f"introduction {command.introduction!r} already exists")
    if (command.to_member is None) == (command.to_business is None):
        raise InvalidCommand("to_member", "give exactly one of to_member and to_business")
    distinct("introduced", command.introduced, command.introducer, "the member introduced")
    active_member(lookup, command.network, command.introducer, "introducer")
    active_member(lookup, command.network, command.introduced, "introduced")
    if command.to_member is not None:
        distinct("to_member", command.to_member, command.introduced, "the introduction's target")
        distinct("to_member", command.to_member, command.introducer, "the introduction's target")
        active_member(lookup, command.network, command.to_member, "to_member")
