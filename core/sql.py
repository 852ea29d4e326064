"""Our own tables beside the log: one connection and the few SQL differences of each database.

The event store's tables belong to ``eventsourcing``; everything else we keep
(views, tracking positions, the delivery queue) lives in the same database
and is reached through a :class:`SqlBackend`: ``?`` marks parameters on both
databases, timestamps are stored as fixed-width UTC text on SQLite (which
sorts like time) and as ``TIMESTAMPTZ`` on PostgreSQL, and every error
becomes a :class:`~partnerledger.errors.StoreUnavailable` naming the
database.
"""

from __future__ import annotations

import json
import select
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from .errors import StoreUnavailable
from .store import Database, unavailable

Rows = list[tuple[Any, ...]]
#: Values of one ``IN (...)`` list on SQLite (its limit of parameters is 32,766).
IN_CHUNK = 500


def utc_text(moment: datetime) -> str:
    """A time as fixed-width UTC text, ``2025-01-06T09:00:00.000000Z``, which sorts like time.

    Not ``strftime("%Y")``: that writes year 185 as ``185``, not ``0185``,
    and the text would neither sort nor read back.
    """
    # isoformat writes the year with four digits (0185), unlike strftime.
    if moment.tzinfo is UTC:  # most times are (commands store theirs in UTC): the fast way
        return moment.isoformat(timespec="microseconds")[:-6] + "Z"
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


class SqlBackend(ABC):
    """A connection to the store's database, in autocommit mode outside :meth:`transaction`."""

    kind = ""
    serial = ""
    timestamp = ""
    json_type = ""

    def __init__(self, database: Database) -> None:
        self.database = database

    @abstractmethod
    def table(self, name: str) -> str:
        """The table's name as SQL must write it (schema-qualified on PostgreSQL)."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> tuple[int, Rows]:
        """Run one statement; returns the row count and the rows it returned."""

    @abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters."""

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        conflict: str = "",
    ) -> None:
        """Insert many rows at once: ``INSERT INTO table (columns) VALUES ... conflict``.

        ``table`` as :meth:`table` writes it; ``conflict`` an optional ``ON
        CONFLICT ...`` clause. With ``DO UPDATE``, no two rows may share a key
        (PostgreSQL refuses to change a row twice in one statement).
        """
        if not rows:
            return
        marks = ", ".join("?" for _ in columns)
        self.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) {conflict}",  # noqa: S608
            rows,
        )

    def select_in(self, sql: str, params: Sequence[Any], values: Collection[Any]) -> Rows:
        """The rows of ``sql`` whose ``{in}`` marker, after a column, reads "is in ``values``".

        The marker's parameters come after ``params``: put it after every
        other ``?`` of the statement. No rows for no values.
        """
        found: Rows = []
        listed = list(values)
        for start in range(0, len(listed), IN_CHUNK):
            chunk = listed[start : start + IN_CHUNK]
            marks = ", ".join("?" for _ in chunk)
            found.extend(self.execute(sql.replace("{in}", f"IN ({marks})"), (*params, *chunk))[1])
        return found

    @abstractmethod
    def transaction(self) -> Any:
        """A context manager: one transaction, rolled back on any exception."""

    @contextmanager
    def derived(self) -> Iterator[None]:
        """Transactions of data derived from the log (the views), which may skip the flush.

        Their commits do not wait for the disk (SQLite: ``synchronous=NORMAL``
        in WAL mode; PostgreSQL: ``synchronous_commit = off``): a process that
        dies loses nothing, and a power cut or a server crash can lose only the
        last commits, whole, which the views redo from the log (their tracking
        positions are in the same transactions).
        """
        if self._in_transaction():  # a caller's transaction keeps its own durability
            yield
            return
        restore = self._skip_flush()
        try:
            yield
        finally:
            if not self._in_transaction():
                restore()

    def _in_transaction(self) -> bool:
        """Whether a transaction is open on the connection."""
        return False

    def _skip_flush(self) -> Callable[[], None]:
        """Make the next commits skip waiting for the disk; returns what undoes it."""
        return lambda: None

    def ts(self, moment: datetime) -> Any:
        """A timestamp as stored."""
        return moment

    def dt(self, value: Any) -> datetime:
        """A stored timestamp as an aware UTC datetime."""
        assert isinstance(value, datetime)
        return value.astimezone(UTC)

    def json_in(self, value: Any) -> Any:
        """A JSON value as stored."""
        return json.dumps(value, sort_keys=True)

    def json_out(self, value: Any) -> dict[str, str]:
        """A stored JSON object of strings."""
        loaded = json.loads(value) if isinstance(value, str | bytes) else value
        return {str(k): str(v) for k, v in dict(loaded).items()}

    def unavailable(self, error: Exception) -> StoreUnavailable:
        """The error to raise for a failed statement."""
        return unavailable(self.database, error)

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""


class SQLiteBackend(SqlBackend):
    """SQLite, in WAL mode, taking the write lock when a transaction begins."""

    kind = "sqlite"
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
    timestamp = "TEXT"
    json_type = "TEXT"

    def __init__(self, database: Database, *, shared: bool = False) -> None:
        """``shared``: the connection may be used by several threads, one at a time (the
        caller serialises them)."""
        super().__init__(database)
        try:
            self.conn = sqlite3.connect(
                database.path,
                timeout=database.timeout(),
                isolation_level=None,
                check_same_thread=not shared,
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as error:
            raise self.unavailable(error) from error

    def table(self, name: str) -> str:
        return name

    def execute(self, sql: str, params: Sequence[Any] = ()) -> tuple[int, Rows]:
        try:
            cursor = self.conn.execute(sql, tuple(params))
            rows = cursor.fetchall()
        except sqlite3.Error as error:
            raise self.unavailable(error) from error
        return cursor.rowcount, rows

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        try:
            self.conn.executemany(sql, rows)
        except sqlite3.Error as error:
            raise self.unavailable(error) from error

    @contextmanager
    def transaction(self) -> Iterator[None]:
        # IMMEDIATE: take the write lock now, so a position check cannot race.
        self.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def _in_transaction(self) -> bool:
        return self.conn.in_transaction

    def _skip_flush(self) -> Callable[[], None]:
        conn = self.conn
        try:
            (level,) = conn.execute("PRAGMA synchronous").fetchone()
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as error:
            raise self.unavailable(error) from error

        def restore() -> None:
            with suppress(sqlite3.Error):  # never hides what went wrong inside
                conn.execute(f"PRAGMA synchronous={int(level)}")

        return restore

    def ts(self, moment: datetime) -> Any:
        # Fixed-width UTC text sorts like time.
        return utc_text(moment)

    def dt(self, value: Any) -> datetime:
        # fromisoformat reads the trailing Z (Python 3.11+) and is ~50 times faster than strptime.
        moment = datetime.fromisoformat(str(value))
        if moment.tzinfo is None:
            raise ValueError(f"a stored time without its offset: {value!r}")
        return moment

    def close(self) -> None:
        self.conn.close()


#: Rows that PostgreSQL inserts with ``executemany`` rather than ``COPY``.
FEW_ROWS = 16


class PostgresBackend(SqlBackend):
    """PostgreSQL with psycopg, tables in the store's schema."""

    kind = "postgresql"
    serial = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    timestamp = "TIMESTAMPTZ"
    json_type = "JSONB"

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self.schema = database.schema or "public"
        self._column_types: dict[str, dict[str, int]] = {}
        #: How many connections were opened: a new one after the server went away has
        #: lost what the old one held (a session advisory lock: see Projector.follow).
        self.generation = 0
        self._depth = 0  # transactions open (nested ones are savepoints)
        #: The staging tables of :meth:`insert` this connection has created (and committed).
        self._staged: set[str] = set()
        #: Those created by the open transaction (staged for good when it commits).
        self._created: set[str] = set()
        self.conn = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        database = self.database
        try:
            conn = psycopg.connect(
                host=database.host,
                port=database.port,
                user=database.user,
                password=database.password,
                dbname=database.dbname,
                connect_timeout=max(1, round(database.timeout())),
                autocommit=True,
            )
        except psycopg.Error as error:
            raise self.unavailable(error) from error
        self.generation += 1
        self._staged = set()  # temporary tables die with their connection
        return conn

    def _in_transaction(self) -> bool:
        return self._depth > 0

    def _skip_flush(self) -> Callable[[], None]:
        # The commits return before their WAL reaches the disk: a server crash can
        # lose only the last transactions, whole, which the views redo from the log.
        try:
            self._live().execute("SET synchronous_commit = off")
        except psycopg.Error as error:
            raise self.unavailable(error) from error

        def restore() -> None:
            with suppress(psycopg.Error):  # never hides what went wrong inside
                self.conn.execute("RESET synchronous_commit")

        return restore

    def ensure(self) -> int:
        """Reconnect if the server closed the connection; returns the connection's generation."""
        try:
            self._live()
        except psycopg.Error as error:
            raise self.unavailable(error) from error
        return self.generation

    def _live(self) -> psycopg.Connection[Any]:
        """The connection, opened again when the server closed it (a restart, an outage).

        An idle connection has nothing to read unless the server said goodbye
        (or closed the socket): then it is checked with an empty statement,
        and replaced when dead. Inside a transaction nothing is replaced: the
        transaction fails, and the next statement after it reconnects.
        """
        conn = self.conn
        if self._depth:
            return conn
        if not conn.closed and not conn.broken:
            try:
                readable, _, _ = select.select([conn.fileno()], [], [], 0)
            except (OSError, ValueError, psycopg.Error):
                readable = [True]
            if readable:
                try:
                    conn.execute("")
                except psycopg.Error:
                    conn.close()
        if conn.closed or conn.broken:
            conn.close()
            self.conn = conn = self._connect()
        return conn

    def table(self, name: str) -> str:
        quoted = self.schema.replace('"', '""')
        return f'"{quoted}".{name}'

    def execute(self, sql: str, params: Sequence[Any] = ()) -> tuple[int, Rows]:
        try:
            with self._live().cursor() as cursor:
                cursor.execute(sql.replace("?", "%s"), tuple(params))
                rows = cursor.fetchall() if cursor.description else []
                return cursor.rowcount, rows
        except psycopg.Error as error:
            raise self.unavailable(error) from error

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        try:
            with self._live().cursor() as cursor:
                cursor.executemany(sql.replace("?", "%s"), rows)
        except psycopg.Error as error:
            raise self.unavailable(error) from error

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        conflict: str = "",
    ) -> None:
        # executemany sends the rows one by one (pipeline mode); a binary COPY sends them
        # all at once, many times faster. With a conflict clause the rows are copied into
        # a temporary table first, then inserted from it with that clause: two round trips
        # (the COPY; the INSERT and the staging table's DELETE in one message), three the
        # first time the connection stages rows for the table (it creates the stage). A few
        # rows (a command's own, caught up at once) go in one pipelined executemany instead.
        if not rows:
            return
        if len(rows) <= FEW_ROWS:
            super().insert(table, columns, rows, conflict)
            return
        types = self._types(table)
        names = ", ".join(columns)
        stage = "pl_stage_" + table.rpartition(".")[2]
        try:
            with self._live().cursor() as cursor:
                if conflict and stage not in self._staged:
                    cursor.execute(
                        f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} "
                        f"(LIKE {table}) ON COMMIT DELETE ROWS"
                    )
                    if self._depth:  # created for good when the transaction commits
                        self._created.add(stage)
                    else:
                        self._staged.add(stage)
                with cursor.copy(
                    f"COPY {stage if conflict else table} ({names}) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types([types[column] for column in columns])
                    for row in rows:
                        copy.write_row(row)
                if conflict:
                    # No parameters: both statements go in one simple-protocol message.
                    cursor.execute(
                        f"INSERT INTO {table} ({names}) "  # noqa: S608
                        f"SELECT {names} FROM {stage} {conflict}; DELETE FROM {stage}"
                    )
        except psycopg.Error as error:
            raise self.unavailable(error) from error

    def _types(self, table: str) -> dict[str, int]:
        """Each column's type (its oid), read once per table."""
        found = self._column_types.get(table)
        if found is None:
            _, rows = self.execute(
                "SELECT attname, atttypid FROM pg_attribute "
                "WHERE attrelid = CAST(? AS regclass) AND attnum > 0 AND NOT attisdropped",
                (table,),
            )
            found = self._column_types[table] = {str(name): int(oid) for name, oid in rows}
        return found

    def select_in(self, sql: str, params: Sequence[Any], values: Collection[Any]) -> Rows:
        listed = list(values)
        if not listed:
            return []
        return self.execute(sql.replace("{in}", "= ANY(?)"), (*params, listed))[1]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        outer = not self._depth
        if outer:
            self._created = set()
        try:
            with self._live().transaction():
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
        except BaseException as error:
            # Rolled back (a savepoint too: forget what the whole transaction created, to be
            # safe): a staging table created inside is gone, or may be.
            self._created = set()
            if isinstance(error, psycopg.Error):
                raise self.unavailable(error) from error
            raise
        if outer:
            self._staged |= self._created
            self._created = set()

    def json_in(self, value: Any) -> Any:
        return Jsonb(value)

    def close(self) -> None:
        self.conn.close()


def connect(database: Database, *, shared: bool = False) -> SqlBackend:
    """A connection to the database of the event store.

    ``shared``: several threads will use it, one at a time (a psycopg
    connection always allows that; a SQLite one is told so).
    """
    if database.kind == "sqlite":
        return SQLiteBackend(database, shared=shared)
    return PostgresBackend(database)


__all__ = ["PostgresBackend", "SQLiteBackend", "SqlBackend", "connect"]
