"""Reading the log: every event, filtered by network, type, member and time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

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

    def matches(self, event: Event) -> bool:
        """Whether one event passes every given criterion."""
        command = event.command
        if self.network is not None and command.network != self.network:
            return False
        if self.member is not None and self.member not in command.members():
            return False
        if self.since is not None and command.occurred_at < self.since:
            return False
        return self.until is None or command.occurred_at < self.until


def select_events(
    store: Store, where: EventFilter, *, limit: int | None = None
) -> Iterator[tuple[int, Event]]:
    """Events in log order that match ``where``, with their positions."""
    shown = 0
    # The type filter runs in the database (the stored topic is the event type).
    for position, event in store.read(topics=list(where.types)):
        if limit is not None and shown >= limit:
            return
        if where.matches(event):
            shown += 1
            yield position, event
