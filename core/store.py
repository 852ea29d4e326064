"""The event store: an ``eventsourcing`` application over SQLite or PostgreSQL.

The log is one table of stored events, written only by appending. Events are
encoded by :class:`EventMapper` (msgspec JSON, no pickling, no topics of
Python class paths: the stored topic is the event type, e.g.
``referral.sent``, so renaming a class never breaks old rows).

Where the store lives is a :class:`Database`, parsed from ``--database`` /
``PARTNERLEDGER_DATABASE``: a file path or ``sqlite:///path`` for SQLite (the
default is ``./partnerledger.db``), ``postgresql://user:password@host:port/db``
for PostgreSQL, with an optional ``?schema=name``.
"""

from __future__ import annotations

import os
import random
import time
import traceback
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import (
    IntegrityError,
    Mapper,
    OperationalError,
    PersistenceError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from .errors import ConcurrencyConflict, StoreUnavailable
from .events import Event, decode_event, encode_event

DEFAULT_DATABASE = "partnerledger.db"
DATABASE_ENV = "PARTNERLEDGER_DATABASE"
#: Largest page read from the notification log at once.
PAGE = 2000


@dataclass(frozen=True)
class Database:
    """Where the event store lives."""

    kind: Literal["sqlite", "postgresql"]
    path: str = ""  # SQLite file
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""
    schema: str = ""

    @classmethod
    def parse(cls, value: str | None) -> Database:
        """Parse a file path or URL; ``None`` reads the environment or takes the default."""
        value = value or os.environ.get(DATABASE_ENV) or DEFAULT_DATABASE
        if value.startswith(("postgresql://", "postgres://")):
            url = urlsplit(value)
            query = parse_qs(url.query)
            dbname = unquote(url.path.lstrip("/"))
            if not dbname:
                raise StoreUnavailable("database", f"no database name in {value!r}")
            try:
                port = url.port or 5432
            except ValueError:
                raise StoreUnavailable("database", f"bad port in {url.netloc!r}") from None
            return cls(
                kind="postgresql",
                host=url.hostname or "127.0.0.1",
                port=port,
                user=unquote(url.username or "") or os.environ.get("PGUSER", "postgres"),
                password=unquote(url.password or ""),
                dbname=dbname,
                schema=query.get("schema", [""])[0],
            )
        if value.startswith("sqlite:///"):
            # sqlite:///relative.db and sqlite:////absolute/path.db
            value = value.removeprefix("sqlite:///") or DEFAULT_DATABASE
        if "://" in value:
            raise StoreUnavailable(
                "database", f"unsupported database URL {value!r}; use a file path or postgresql://"
            )
        return cls(kind="sqlite", path=value)

    def describe(self) -> str:
        """A human description without the password."""
        if self.kind == "sqlite":
            return f"SQLite file {self.path}"
        schema = f" (schema {self.schema})" if self.schema else ""
        return f"PostgreSQL {self.user}@{self.host}:{self.port}/{self.dbname}{schema}"

    def env(self) -> dict[str, str]:
        """The ``eventsourcing`` settings for this database."""
        if self.kind == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                # a batch in one executemany (see recorders.py)
                "APPLICATION_RECORDER_TOPIC": "partnerledger.recorders:BatchSQLiteRecorder",
                "SQLITE_DBNAME": self.path,
                "SQLITE_LOCK_TIMEOUT": "10",
            }
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_LOCK_TIMEOUT": "10",
        }
        if self.schema:
            env["POSTGRES_SCHEMA"] = self.schema
        return env


class EventMapper(Mapper[UUID]):
    """Maps :class:`Event` to stored rows with msgspec: the topic is the event type."""

    def __init__(self) -> None:  # no transcoder: msgspec encodes the whole event
        self.compressor = None
        self.cipher = None

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        """Encode one event."""
        event: Event = domain_event
        return StoredEvent(
            originator_id=event.originator_id,
            originator_version=event.originator_version,
            topic=event.type,
            state=encode_event(event),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        """Decode one stored row."""
        return decode_event(stored_event.state)


class _LedgerApplication(Application[UUID]):
    name = "partnerledger"

    def construct_mapper(self) -> Mapper[UUID]:
        return EventMapper()


def _unavailable(database: Database, error: Exception) -> StoreUnavailable:
    return StoreUnavailable("database", f"{database.describe()}: {error}")


def _open(database: Database, env: dict[str, str]) -> _LedgerApplication:
    # Several processes opening a PostgreSQL store at once can collide on the
    # library's CREATE OR REPLACE of its functions ("tuple concurrently
    # updated"): that is harmless and worth a retry.
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            return _LedgerApplication(env=env)
        except (PersistenceError, OSError) as error:
            # Drop the half-built application's frames: they hold its
            # connection pool (and its threads) alive as long as the error lives.
            traceback.clear_frames(error.__traceback__)
            if "concurrently" in str(error) and attempt + 1 < _OPEN_ATTEMPTS:
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311
                continue
            raise _unavailable(database, error) from error
    raise AssertionError("unreachable")


_OPEN_ATTEMPTS = 8
_STREAMS_CHUNK = 500


def _select_states(recorder: Any, start: int, limit: int) -> list[tuple[int, bytes]]:
    """``(position, state)`` of at most ``limit`` events of the log from ``start`` on.

    The library's ``select_notifications`` without what reading the log does
    not need (a UUID and a notification object per row).
    """
    if isinstance(recorder, SQLiteApplicationRecorder):
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT rowid, state FROM {recorder.events_table_name} "  # noqa: S608
                "WHERE rowid >= ? ORDER BY rowid LIMIT ?",
                (start, limit),
            )
            return [(int(row[0]), bytes(row[1])) for row in cursor.fetchall()]
    assert isinstance(recorder, PostgresApplicationRecorder)
    from psycopg.sql import SQL, Identifier

    statement = SQL(
        "SELECT notification_id, state FROM {schema}.{table} WHERE notification_id >= %s "
        "ORDER BY notification_id LIMIT %s"
    ).format(
        schema=Identifier(recorder.datastore.schema),
        table=Identifier(recorder.events_table_name),
    )
    with (
        recorder.datastore.get_connection() as connection,
        connection.cursor(binary=True) as cursor,
    ):
        cursor.execute(statement, (start, limit), prepare=True)
        return [(int(row["notification_id"]), bytes(row["state"])) for row in cursor.fetchall()]


def _select_streams(recorder: Any, ids: list[UUID]) -> list[tuple[UUID, bytes]]:
    """``(originator id, state)`` of every event of these aggregates, in version order."""
    if isinstance(recorder, SQLiteApplicationRecorder):
        marks = ", ".join("?" for _ in ids)
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT originator_id, state FROM {recorder.events_table_name} "  # noqa: S608
                f"WHERE originator_id IN ({marks}) ORDER BY originator_id, originator_version",
                [i.hex for i in ids],
            )
            return [(UUID(row[0]), bytes(row[1])) for row in cursor.fetchall()]
    assert isinstance(recorder, PostgresApplicationRecorder)
    from psycopg.sql import SQL, Identifier

    statement = SQL(
        "SELECT originator_id, state FROM {schema}.{table} WHERE originator_id = ANY(%s) "
        "ORDER BY originator_id, originator_version"
    ).format(
        schema=Identifier(recorder.datastore.schema),
        table=Identifier(recorder.events_table_name),
    )
    with recorder.datastore.get_connection() as connection, connection.cursor() as cursor:
        cursor.execute(statement, [ids])
        return [(row["originator_id"], bytes(row["state"])) for row in cursor.fetchall()]


class Store:
    """Append-only storage of events, and reads of one stream or of the whole log."""

    def __init__(self, database: Database) -> None:
        self.database = database
        if database.kind == "sqlite":
            parent = Path(database.path).resolve().parent
            if not parent.is_dir():
                raise StoreUnavailable("database", f"no such directory: {parent}")
        env = {key: "" for key in os.environ if key.startswith(("POSTGRES_", "SQLITE_"))}
        env.update(database.env())
        self._app = _open(database, env)

    def close(self) -> None:
        """Release connections."""
        self._app.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stream(self, originator_id: UUID) -> list[Event]:
        """Every event of one aggregate, in version order."""
        try:
            stored = self._app.recorder.select_events(originator_id)
        except PersistenceError as error:
            raise _unavailable(self.database, error) from error
        return [decode_event(row.state) for row in stored]

    def streams(self, originator_ids: Iterable[UUID]) -> dict[UUID, list[Event]]:
        """Every event of each of these aggregates (one query per 500): id → events.

        Aggregates without events are left out.
        """
        wanted = list(dict.fromkeys(originator_ids))
        found: dict[UUID, list[Event]] = {}
        recorder = self._app.recorder
        try:
            for start in range(0, len(wanted), _STREAMS_CHUNK):
                chunk = wanted[start : start + _STREAMS_CHUNK]
                for originator_id, state in _select_streams(recorder, chunk):
                    found.setdefault(originator_id, []).append(decode_event(state))
        except PersistenceError as error:
            raise _unavailable(self.database, error) from error
        return found

    def append(self, events: Sequence[Event]) -> list[int]:
        """Append events in one transaction; returns their positions in the log.

        Raises :class:`ConcurrencyConflict` (and writes nothing) when another
        writer appended to one of the same aggregates first.
        """
        if not events:
            return []
        try:
            recordings = self._app.events.put(list(events))
        except IntegrityError as error:
            raise ConcurrencyConflict(
                "command",
                "another command changed the same record at the same time; "
                "nothing was written, try again",
            ) from error
        except (OperationalError, PersistenceError) as error:
            raise _unavailable(self.database, error) from error
        return [r.notification.id for r in recordings]

    def read(
        self, *, after: int = 0, topics: Sequence[str] = (), page: int = PAGE
    ) -> Iterator[tuple[int, Event]]:
        """Every event after position ``after``, in log order, with its position."""
        if not topics:
            for position, state in self.read_stored(after=after, page=page):
                yield position, decode_event(state)
            return
        start = after + 1
        while True:
            try:
                rows = self._app.recorder.select_notifications(start, page, topics=list(topics))
            except PersistenceError as error:
                raise _unavailable(self.database, error) from error
            for row in rows:
                yield row.id, decode_event(row.state)
            if len(rows) < page:
                return
            start = rows[-1].id + 1

    def read_stored(self, *, after: int = 0, page: int = PAGE) -> Iterator[tuple[int, bytes]]:
        """Every stored row after position ``after``, undecoded: ``(position, bytes)``.

        For checks of the log itself (audit verification), which must go on
        past a row that no longer decodes.
        """
        start = after + 1
        while True:
            try:
                rows = _select_states(self._app.recorder, start, page)
            except PersistenceError as error:
                raise _unavailable(self.database, error) from error
            yield from rows
            if len(rows) < page:
                return
            start = rows[-1][0] + 1

    def last_position(self) -> int:
        """Position of the last event in the log (0 when empty)."""
        try:
            return self._app.recorder.max_notification_id() or 0
        except PersistenceError as error:
            raise _unavailable(self.database, error) from error
