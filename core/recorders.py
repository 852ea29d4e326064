"""Our recorders: a batch inserted with one statement; PostgreSQL fails fast when it is away.

``eventsourcing``'s SQLite application recorder inserts one row at a time to
learn each row's notification id. Ours inserts the whole batch with
``executemany`` and derives the ids: the transaction holds SQLite's write
lock, and rows of a table without AUTOINCREMENT get the next rowid after the
largest, so a batch of ``n`` rows takes the ``n`` ids ending at
``last_insert_rowid()``.

On PostgreSQL the library inserts a batch as an array of a composite type,
which psycopg builds in Python (most of an import's insert time). Ours sends
the rows with binary ``COPY`` after taking the library's own ``EXCLUSIVE``
table lock: with the lock held nobody else draws from the notification id
sequence, so the batch's ids are the ``n`` values ending at ``lastval()``.

``eventsourcing``'s PostgreSQL recorder retries every statement ten times,
each attempt waiting up to the pool's timeout for a connection: a request
made while the server restarts would hang for most of a minute. Ours tries
once more at once, after the pool has thrown out its dead connections (a
connection that died while idle is only found out when used), and gives
up straight away when no connection could be had in time
(``tests/test_outages.py``).

Both also read the streams of many aggregates in one query
(:meth:`select_streams`), for imports. The library's recorder conformance
tests run against both (``tests/test_recorder.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from psycopg.sql import SQL, Identifier
from psycopg_pool import PoolTimeout

T = TypeVar("T")

#: Aggregates per ``IN (...)`` list / array of :meth:`select_streams`.
STREAMS_CHUNK = 500


#: ``unchanged_after=(position, moved)``: write only if ``moved(states)`` is false for the
#: states of the events stored after ``position`` (checked under the write lock).
Unchanged = tuple[int, Callable[[list[bytes]], bool]]


class LogMoved(IntegrityError):
    """Events that matter were stored after the position a batch was decided on."""


#: ``new_keys=(table, rows)``: data subjects' keys made up for a batch, stored in its
#: transaction before its events; rows are (network, subject, key, created_at).
NewKeys = tuple[str, list[tuple[str, str, str, Any]]]


class KeysTaken(IntegrityError):
    """Another writer stored a key of one of the batch's data subjects first.

    Nothing was written: the batch is sealed again with the stored key.
    """


def _insert_keys(cursor: Any, new_keys: NewKeys, mark: str) -> None:
    """Store a batch's new keys (inside its transaction); :class:`KeysTaken` if one exists."""
    table, rows = new_keys
    if not rows:
        return
    cursor.executemany(
        f"INSERT INTO {table} (network, subject, key, created_at) "  # noqa: S608
        f"VALUES ({mark}, {mark}, {mark}, {mark}) ON CONFLICT (network, subject) DO NOTHING",
        rows,
    )
    if cursor.rowcount == len(rows):  # every row ours (the drivers sum executemany's counts)
        return
    taken = []
    for network, subject, key, _ in rows:
        cursor.execute(
            f"SELECT key FROM {table} WHERE network = {mark} AND subject = {mark}",  # noqa: S608
            (network, subject),
        )
        row = cursor.fetchone()
        if row is None or row["key"] != key:
            taken.append(subject)
    if taken:
        raise KeysTaken(f"keys of {len(taken)} data subject(s) were stored by another writer")


def _check_unchanged(states: list[bytes], unchanged: Unchanged) -> None:
    if states and unchanged[1](states):
        raise LogMoved(f"{len(states)} events were stored after position {unchanged[0]}")


class BatchSQLiteRecorder(SQLiteApplicationRecorder):
    """Inserts a batch of stored events with one ``executemany``."""

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        unchanged_after: Unchanged | None = None,
        new_keys: NewKeys | None = None,
        **_: Any,
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        if new_keys is not None:
            _insert_keys(c.sqlite_cursor, new_keys, "?")
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
        if unchanged_after is not None:
            # Our rows hold the write lock now: what lies between the position and them
            # is every event stored since, and nobody can add one before we commit.
            c.execute(
                f"SELECT state FROM {self.events_table_name} "  # noqa: S608
                "WHERE rowid > ? AND rowid < ? ORDER BY rowid",
                (unchanged_after[0], first),
            )
            _check_unchanged([bytes(row[0]) for row in c.fetchall()], unchanged_after)
        return list(range(first, last + 1))

    def select_streams(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        """Every event of these aggregates, by aggregate then version (one query per 500)."""
        found: list[StoredEvent] = []
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(originator_ids), STREAMS_CHUNK):
                chunk = [i.hex for i in originator_ids[start : start + STREAMS_CHUNK]]
                marks = ",".join("?" * len(chunk))
                c.execute(
                    "SELECT originator_id, originator_version, topic, state "  # noqa: S608
                    f"FROM {self.events_table_name} WHERE originator_id IN ({marks}) "
                    "ORDER BY originator_id, originator_version",
                    chunk,
                )
                found.extend(
                    StoredEvent(
                        originator_id=UUID(row["originator_id"]),
                        originator_version=row["originator_version"],
                        topic=row["topic"],
                        state=row["state"],
                    )
                    for row in c.fetchall()
                )
        return found


def _unretried(method: Any) -> Callable[..., Any]:
    """The library's method without its retry decorator."""
    found: Callable[..., Any] = getattr(method, "__wrapped__", method)
    return found


class BatchPostgresRecorder(PostgresApplicationRecorder):
    """Binary ``COPY`` under the table lock; fails fast while the server is away.

    Every statement gets one retry after the pool's dead connections are
    thrown out, and none when the pool timed out waiting for a connection.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        table = SQL("{0}.{1}").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name)
        )
        self._copy_statement = SQL(
            "COPY {0} (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)"
        ).format(table)
        self._after_statement = SQL(
            "SELECT state FROM {0} WHERE notification_id > %s ORDER BY notification_id"
        ).format(table)
        self._select_streams_statement = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {0} "
            "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
        ).format(table)

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
            BatchPostgresRecorder._copy_events, stored_events, **kwargs
        )
        return found

    def _copy_events(
        self,
        stored_events: Sequence[StoredEvent],
        unchanged_after: Unchanged | None = None,
        new_keys: NewKeys | None = None,
    ) -> Sequence[int]:
        if not stored_events:
            return []
        id_type = self.datastore.originator_id_type
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor() as curs,
        ):
            self._lock_table(curs)
            if unchanged_after is not None:
                # Under the table lock: no event can be stored before we commit.
                curs.execute(self._after_statement, (unchanged_after[0],))
                _check_unchanged([bytes(r["state"]) for r in curs.fetchall()], unchanged_after)
            if new_keys is not None:
                _insert_keys(curs, new_keys, "%s")
            self._notify_channel(curs)
            with curs.copy(self._copy_statement) as copy:
                copy.set_types([id_type, "int8", "text", "bytea"])
                for s in stored_events:
                    copy.write_row(
                        (
                            s.originator_id if id_type == "uuid" else str(s.originator_id),
                            s.originator_version,
                            s.topic,
                            s.state,
                        )
                    )
            last = self._last_id(curs)
        return list(range(last - len(stored_events) + 1, last + 1))

    def _last_id(self, curs: Any) -> int:
        """The id of the last row inserted (inside the insert's transaction).

        The table lock keeps every other writer off the sequence: a batch's
        ids are the consecutive ones ending here.
        """
        curs.execute("SELECT lastval() AS last")
        row = curs.fetchone()
        assert row is not None
        return int(row["last"])

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

    def select_streams(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        """Every event of these aggregates, by aggregate then version (one query per 500)."""
        found: list[StoredEvent] = self._twice(
            BatchPostgresRecorder._select_streams, originator_ids
        )
        return found

    def _select_streams(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        text = self.datastore.originator_id_type != "uuid"
        found: list[StoredEvent] = []
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            for start in range(0, len(originator_ids), STREAMS_CHUNK):
                chunk = originator_ids[start : start + STREAMS_CHUNK]
                curs.execute(
                    self._select_streams_statement,
                    ([str(i) for i in chunk] if text else list(chunk),),
                )
                found.extend(
                    StoredEvent(
                        originator_id=UUID(row["originator_id"]) if text else row["originator_id"],
                        originator_version=row["originator_version"],
                        topic=row["topic"],
                        state=bytes(row["state"]),
                    )
                    for row in curs.fetchall()
                )
        return found


__all__ = ["BatchPostgresRecorder", "BatchSQLiteRecorder", "LogMoved", "Unchanged"]
