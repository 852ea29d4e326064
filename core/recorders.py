"""Our recorders: SQLite inserts a batch in one statement; PostgreSQL fails fast when it is away.

``eventsourcing``'s SQLite application recorder inserts one row at a time to
learn each row's notification id. Ours inserts the whole batch with
``executemany`` and derives the ids: the transaction holds SQLite's write
lock, and rows of a table without AUTOINCREMENT get the next rowid after the
largest, so a batch of ``n`` rows takes the ``n`` ids ending at
``last_insert_rowid()``. The library's recorder conformance tests run against
it (``tests/test_recorder.py``).

``eventsourcing``'s PostgreSQL recorder retries every statement ten times,
each attempt waiting up to the pool's timeout for a connection: a request
made while the server restarts would hang for most of a minute. Ours tries
once more at once, after the pool has thrown out its dead connections (a
connection that died while idle is only found out when used), and gives
up straight away when no connection could be had in time
(``tests/test_outages.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from psycopg_pool import PoolTimeout

T = TypeVar("T")


class BatchSQLiteRecorder(SQLiteApplicationRecorder):
    """Inserts a batch of stored events with one ``executemany``."""

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        **_: Any,
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        c.executemany(
            self.insert_events_statement,
            [
                (
                    s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
                    s.originator_version,
                    s.topic,
                    s.state,
                )
                for s in stored_events
            ],
        )
        c.execute("SELECT last_insert_rowid()")
        last = int(c.fetchone()[0])
        first = last - len(stored_events) + 1
        return list(range(first, last + 1))


def _unretried(method: Any) -> Callable[..., Any]:
    """The library's method without its retry decorator."""
    found: Callable[..., Any] = getattr(method, "__wrapped__", method)
    return found


class FailFastPostgresRecorder(PostgresApplicationRecorder):
    """One retry after the pool's dead connections are thrown out; none when the pool timed out."""

    def _twice(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        call = _unretried(method)
        try:
            return call(self, *args, **kwargs)
        except (InterfaceError, OperationalError) as error:
            if isinstance(error.__cause__, PoolTimeout):
                raise  # no connection in time: the server is away, say so now
            # A connection that died while idle in the pool (the server restarted):
            # check them all, so the retry gets a live one or a fresh connection.
            self.datastore.pool.check()
            return call(self, *args, **kwargs)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # A retry after a connection lost while committing could find the first attempt
        # stored: the versions then collide, and the ledger says "try again" (the command
        # is then recognised as recorded). Nothing is ever stored twice.
        found: Sequence[int] | None = self._twice(
            PostgresApplicationRecorder.insert_events, stored_events, **kwargs
        )
        return found

    def select_events(self, originator_id: UUID | str, **kwargs: Any) -> Sequence[StoredEvent]:
        found: Sequence[StoredEvent] = self._twice(
            PostgresApplicationRecorder.select_events, originator_id, **kwargs
        )
        return found

    def select_notifications(self, *args: Any, **kwargs: Any) -> Any:
        return self._twice(PostgresApplicationRecorder.select_notifications, *args, **kwargs)

    def max_notification_id(self) -> int | None:
        found: int | None = self._twice(PostgresApplicationRecorder.max_notification_id)
        return found


__all__ = ["BatchSQLiteRecorder", "FailFastPostgresRecorder"]
