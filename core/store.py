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

import math
import os
import random
import sqlite3
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

from .errors import LogChanged, StoreUnavailable, VersionConflict
from .events import Event, decode_event, encode_event
from .recorders import (
    BatchPostgresRecorder,
    BatchSQLiteRecorder,
    KeysTaken,
    LogMoved,
    NewKeys,
    Unchanged,
)

DEFAULT_DATABASE = "partnerledger.db"
DATABASE_ENV = "PARTNERLEDGER_DATABASE"
#: Seconds to wait for the database (a locked SQLite file, a PostgreSQL connection).
TIMEOUT_ENV = "PARTNERLEDGER_DB_TIMEOUT"
#: The waits when ``PARTNERLEDGER_DB_TIMEOUT`` is unset.
DEFAULT_TIMEOUTS = {"sqlite": 10.0, "postgresql": 5.0}
#: Seconds the PostgreSQL pool keeps trying to replace a lost connection before it gives
#: up; the next request then tries again at once (so recovery never waits long).
RECONNECT_WINDOW = 5.0
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

    def timeout(self) -> float:
        """Seconds to wait for the database: a SQLite file's lock, a PostgreSQL connection.

        ``PARTNERLEDGER_DB_TIMEOUT`` when set, else 10 s for SQLite and 5 s for PostgreSQL.
        """
        raw = os.environ.get(TIMEOUT_ENV, "").strip()
        if not raw:
            return DEFAULT_TIMEOUTS[self.kind]
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0 < value <= 3600:
            raise StoreUnavailable(
                "database", f"{TIMEOUT_ENV} must be a number of seconds (0-3600), not {raw!r}"
            )
        return value

    def env(self) -> dict[str, str]:
        """The ``eventsourcing`` settings for this database."""
        seconds = str(max(1, math.ceil(self.timeout())))  # the library wants whole seconds
        if self.kind == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                # a batch in one executemany (see recorders.py)
                "APPLICATION_RECORDER_TOPIC": "partnerledger.recorders:BatchSQLiteRecorder",
                "SQLITE_DBNAME": self.path,
                "SQLITE_LOCK_TIMEOUT": seconds,
            }
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            # how long a request waits for a pooled connection
            "POSTGRES_CONNECT_TIMEOUT": seconds,
            "POSTGRES_LOCK_TIMEOUT": "10",
            # a batch with one binary COPY; fails fast while the server is away (recorders.py)
            "APPLICATION_RECORDER_TOPIC": "partnerledger.recorders:BatchPostgresRecorder",
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


def unavailable(database: Database, error: BaseException) -> StoreUnavailable:
    """The :class:`StoreUnavailable` for an error of the database, naming it.

    The reason names the database and gives the driver's first line
    ("database is locked", "connection refused"...); ``public`` says the
    same without the database's address, for web pages.
    """
    cause = " ".join(str(error).split("\n", 1)[0].split()) or type(error).__name__
    found: BaseException | None = error
    while found is not None and not isinstance(found, sqlite3.Error):
        found = found.__cause__
    name = getattr(found, "sqlite_errorname", "")
    if name.startswith("SQLITE_IOERR"):  # e.g. a write refused: no space, a file size limit
        cause = f"{cause} ({name}: the file could not be written; is the disk full?)"
    public = "the database is not available right now"
    if database.kind == "sqlite":
        public = f"{public} ({cause})"  # "database is locked", "database or disk is full"
    return StoreUnavailable("database", f"{database.describe()}: {cause}", public=public)


_unavailable = unavailable


def _same_record() -> VersionConflict:
    """Another writer appended to one of the same aggregates first; nothing was written."""
    return VersionConflict(
        "command",
        "another command changed the same record at the same time; nothing was written, try again",
    )


def _open(database: Database, env: dict[str, str]) -> _LedgerApplication:
    # Several processes opening a PostgreSQL store at once can collide on the
    # library's CREATE OR REPLACE of its functions ("tuple concurrently
    # updated"): that is harmless and worth a retry.
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            return _LedgerApplication(env=env)
        except (PersistenceError, OSError, sqlite3.Error) as error:
            # Drop the half-built application's frames: they hold its
            # connection pool (and its threads) alive as long as the error lives.
            traceback.clear_frames(error.__traceback__)
            if "concurrently" in str(error) and attempt + 1 < _OPEN_ATTEMPTS:
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311
                continue
            raise _unavailable(database, error) from error
    raise AssertionError("unreachable")


_OPEN_ATTEMPTS = 8


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
        datastore = getattr(self._app.recorder, "datastore", None)
        pool = getattr(datastore, "pool", None)
        if pool is not None:  # PostgreSQL: see RECONNECT_WINDOW
            pool.reconnect_timeout = RECONNECT_WINDOW

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
        if not wanted:
            return {}
        recorder = self._app.recorder
        assert isinstance(recorder, BatchSQLiteRecorder | BatchPostgresRecorder)
        try:
            rows = recorder.select_streams(wanted)
        except PersistenceError as error:
            raise _unavailable(self.database, error) from error
        found: dict[UUID, list[Event]] = {}
        for row in rows:
            originator_id = row.originator_id
            assert isinstance(originator_id, UUID)
            found.setdefault(originator_id, []).append(decode_event(row.state))
        return found

    def append_stored(self, rows: Sequence[StoredEvent]) -> list[int]:
        """Append rows already encoded (``EventMapper`` form) in one transaction.

        The positions in the log are returned; errors as :meth:`append`.
        """
        if not rows:
            return []
        try:
            ids = self._app.recorder.insert_events(list(rows))
        except IntegrityError as error:
            raise _same_record() from error
        except (OperationalError, PersistenceError) as error:
            raise _unavailable(self.database, error) from error
        return list(ids or [])

    def append(
        self,
        events: Sequence[Event],
        *,
        unchanged_after: Unchanged | None = None,
        new_keys: NewKeys | None = None,
    ) -> list[int]:
        """Append events in one transaction; returns their positions in the log.

        Raises :class:`~partnerledger.errors.VersionConflict` (a
        ``ConcurrencyConflict``; nothing is written) when another writer
        appended to one of the same aggregates first. With
        ``unchanged_after=(position, moved)`` the events are written only if
        ``moved`` finds nothing that matters in the states of the events
        stored after ``position`` (checked under the store's write lock);
        else :class:`~partnerledger.errors.LogChanged` and nothing is written.
        ``new_keys``: data subjects' keys stored in the same transaction, before
        the events (:meth:`Vault.keys_for`); :class:`~partnerledger.recorders.KeysTaken`
        when another writer stored one of them first, and nothing is written.
        """
        if not events:
            return []
        kwargs: dict[str, object] = {}
        if unchanged_after is not None:
            kwargs["unchanged_after"] = unchanged_after
        if new_keys is not None:
            kwargs["new_keys"] = new_keys
        try:
            recordings = self._app.events.put(list(events), **kwargs)
        except KeysTaken:
            raise
        except LogMoved as error:
            raise LogChanged(
                "log",
                f"events were stored after position {unchanged_after and unchanged_after[0]} "
                "while this was decided; nothing was written",
            ) from error
        except IntegrityError as error:
            raise _same_record() from error
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
