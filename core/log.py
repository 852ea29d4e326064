"""Reading the log: every event, filtered by network, type, member and time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from .commands import AgreementCommand, ReferralCommand
from .events import Event
from .store import Store


@dataclass(frozen=True)
class EventFilter:
    """Which events to show. Times compare with business time (``occurred_at``)."""

    network: str | None = None
    types: Sequence[str] = ()
    member: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, event: Event, members: tuple[str, ...] = ()) -> bool:
        """Whether one event passes every criterion; ``members`` are those it concerns."""
        command = event.command
        if self.network is not None and command.network != self.network:
            return False
        if self.types and command.type not in self.types:
            return False
        if self.member is not None and self.member not in members:
            return False
        if self.since is not None and command.occurred_at < self.since:
            return False
        return self.until is None or command.occurred_at < self.until


def select_events(
    store: Store, where: EventFilter, *, limit: int | None = None
) -> Iterator[tuple[int, Event]]:
    """Events in log order that match ``where``, with their positions."""
    shown = 0
    # Without a member filter the type filter runs in the database (the stored
    # topic is the event type). With one, every event is read: a referral's
    # later events name only the referral, and concern the members its
    # creation named.
    topics = list(where.types) if where.member is None else []
    involved: dict[UUID, frozenset[str]] = {}
    for position, event in store.read(topics=topics):
        if limit is not None and shown >= limit:
            return
        command = event.command
        members: tuple[str, ...] = command.members()
        if where.member is not None and isinstance(command, _LIFECYCLES):
            related = involved.get(event.originator_id, frozenset()) | frozenset(members)
            involved[event.originator_id] = related
            members = tuple(related)
        if where.matches(event, members):
            shown += 1
            yield position, event


# Commands on a record whose members were named when it was created.
_LIFECYCLES = (ReferralCommand, AgreementCommand)
