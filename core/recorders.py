"""Our SQLite recorder: a batch of events inserted with one statement, not row by row.

``eventsourcing``'s SQLite application recorder inserts one row at a time to
learn each row's notification id. Ours inserts the whole batch with
``executemany`` and derives the ids: the transaction holds SQLite's write
lock, and rows of a table without AUTOINCREMENT get the next rowid after the
largest, so a batch of ``n`` rows takes the ``n`` ids ending at
``last_insert_rowid()``. The library's recorder conformance tests run against
it (``tests/test_recorder.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor


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


__all__ = ["BatchSQLiteRecorder"]
