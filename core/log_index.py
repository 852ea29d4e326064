"""What deciding a command looks up across streams, read from the log once per process.

Two rules need more than the streams they act on: the referral rule of the
exclusivity plugin asks for every agreement a member is a party to, and an
erasure asks for every referral of a data subject. Neither is one stream:
both are found by reading the log's ``agreement.proposed``, ``referral.sent``
and ``subject.erased`` events.

A :class:`LogIndex` reads them once and afterwards only the log's new
events (a range of positions, never the history again), so a command
decided in a long-lived process (the web app, a worker) costs the same
whatever the length of the history. Every entry keeps its log position: a
unit of work asks for the entries up to the position it first saw
(:meth:`LogIndex.refresh`), so what it decides does not change under it
when other units of work read newer events meanwhile.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from uuid import UUID

from .commands import AgreementProposed, ReferralSent, SubjectErased
from .events import Event
from .store import Store

#: The log's events the index is made of.
TOPICS = ("agreement.proposed", "referral.sent", "subject.erased")

#: One event's entries: (kind, network, member or subject, agreement id or referral slug).
Entry = tuple[str, str, str, UUID | str | None]


_INDEXED = (AgreementProposed, ReferralSent, SubjectErased)


def entries(event: Event) -> list[Entry]:
    """What an event adds to the index: a party of an agreement, a referral or an erasure."""
    command = event.command
    if not isinstance(command, _INDEXED):  # most events: one check, not three
        return []
    if isinstance(command, AgreementProposed):
        return [("party", command.network, p, event.originator_id) for p in command.parties]
    if isinstance(command, ReferralSent) and command.subject is not None:
        return [("sent", command.network, command.subject, command.referral)]
    if isinstance(command, SubjectErased):
        return [("erased", command.network, command.subject, None)]
    return []


class LogIndex:
    """Agreements by party and referrals by data subject, as of a log position.

    Safe to share between threads: :meth:`refresh` reads under a lock, and
    the lists it appends to are only ever appended to.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._position = 0
        #: (network, member) → [(position, agreement id)], in log order.
        self._parties: defaultdict[tuple[str, str], list[tuple[int, UUID]]] = defaultdict(list)
        #: (network, subject) → [(position, "sent" or "erased", referral slug)], in log order.
        self._subjects: defaultdict[tuple[str, str], list[tuple[int, str, str | None]]] = (
            defaultdict(list)
        )

    def refresh(self) -> int:
        """Read the log's events since the last call; returns the position now reflected."""
        with self._lock:
            for position, event in self._store.read(after=self._position, topics=TOPICS):
                for kind, network, key, value in entries(event):
                    if kind == "party":
                        assert isinstance(value, UUID)
                        self._parties[(network, key)].append((position, value))
                    else:
                        assert value is None or isinstance(value, str)
                        self._subjects[(network, key)].append((position, kind, value))
                self._position = position
            return self._position

    def parties(self, network: str, member: str, upto: int) -> list[UUID]:
        """The agreements proposed with the member as a party, up to a position, oldest first."""
        found = self._parties.get((network, member), ())
        return [agreement for position, agreement in found if position <= upto]

    def subject(self, network: str, subject: str, upto: int) -> list[tuple[str, str | None]]:
        """The data subject's referrals and erasures up to a position: (kind, referral slug)."""
        found = self._subjects.get((network, subject), ())
        return [(kind, value) for position, kind, value in found if position <= upto]


__all__ = ["TOPICS", "Entry", "LogIndex", "entries"]
