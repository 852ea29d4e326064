"""Data subjects: the customers whose personal data referrals carry, sealed (docs/privacy.md).

A subject's stream holds its erasures (``subject.erased``). Its referrals
live in their own streams; the rule finds them through the lookup.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from ..commands import Command, SubjectErased
from ..errors import InvalidTransition, NotFound
from ..identity import aggregate_id
from .base import Aggregate, Lookup, rule


def subject_id(network: str, subject: str) -> UUID:
    """The aggregate id of a data subject."""
    return aggregate_id("subject", network, subject)


class Subject(Aggregate):
    """A data subject and its erasures."""

    kind = "subject"

    def __init__(self, id: UUID) -> None:
        super().__init__(id)
        self.subject = ""
        self.erasures = 0
        self.erased_at: datetime | None = None
        self.reason = ""

    def when(self, command: Command) -> None:
        if isinstance(command, SubjectErased):
            self.subject = command.subject
            self.erasures += 1
            self.erased_at = command.occurred_at
            self.reason = command.reason
        else:
            super().when(command)


@rule(SubjectErased, Subject, lambda c, _: subject_id(c.network, c.subject))
def erase(lookup: Lookup, subject: Subject | None, command: SubjectErased) -> None:
    lookup.network(command.network)
    if not lookup.subject_referrals(command.network, command.subject):
        raise NotFound(
            "subject",
            f"no referral of data subject {command.subject!r} in network {command.network!r}",
        )
    if not lookup.subject_referrals(command.network, command.subject, since_erasure=True):
        raise InvalidTransition(
            "subject",
            f"data subject {command.subject!r} is already erased (no referral of it since)",
        )
