"""Projections: views kept in tables beside the log, following it exactly once.

A :class:`Projection` turns events into rows of its own tables. A
:class:`Projector` reads the log after each projection's *tracking
position* and hands it the events in batches; a batch's rows and the new
position are written in **one transaction**, so a process killed halfway
leaves every view at the end of its last whole batch, and the next run
resumes there: nothing is counted twice, nothing is skipped.

Several processes may follow the same log (a worker and the web processes
on PostgreSQL, or a writer catching up right after its own command on
SQLite): a batch moves the tracking position only from the value it read
(``UPDATE ... WHERE position = ?``, taken first in the transaction), so when
two processes race for a batch one commits it and the other rolls back and
reads again.

Projections are disposable. :meth:`Projector.rebuild` drops a view's tables,
sets its position to 0 and replays the log; a projection whose ``version``
changed since its rows were written is rebuilt the same way when it is next
opened. The tracking table is ``partnerledger_projections`` (name, version,
position).

Events are judged with the network's state *as of the event* (its plugins
and their settings, its tier ladder): the projector keeps every network's
aggregate up to date while it reads, and hands projections a
:class:`Networks` view of it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from .commands import command_type
from .domain import ROUTES, Network, network_id
from .errors import InvalidCommand, StoreUnavailable
from .events import Event
from .ledger import utc_now
from .pluginmanager import Rules
from .sql import PostgresBackend, SqlBackend, connect, utc_text
from .store import Store

#: Event types of a network's own stream (its plugins among them).
NETWORK_TOPICS: tuple[str, ...] = tuple(
    command_type(cls) for cls, route in ROUTES.items() if route.aggregate is Network
)
_NETWORK_TOPICS = frozenset(NETWORK_TOPICS)
TRACKING = "partnerledger_projections"
#: Events per transaction when a projection catches up.
BATCH = 2000
_LOCK = 0x70617275  # PostgreSQL advisory lock taken while creating tables
_FOLLOWER = 0x70617276  # PostgreSQL advisory lock held by the one worker following the log


def follower_key(schema: str) -> tuple[int, int]:
    """The follower lock of a schema: stores in two schemas of one database follow apart."""
    return _FOLLOWER, zlib.crc32(schema.encode()) - 2**31  # a signed 32-bit integer


#: Longest wait between two tries of a follower while the database is away (seconds).
MAX_BACKOFF = 10.0


def chunks(events: Iterator[tuple[int, Event]], size: int) -> Iterator[list[tuple[int, Event]]]:
    """The log read in lists of at most ``size`` events."""
    chunk: list[tuple[int, Event]] = []
    for item in events:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def apply_network(networks: dict[str, Network], event: Event) -> None:
    """Evolve the network an event of a network's stream belongs to."""
    network = networks.get(event.network)
    if network is None:
        network = networks[event.network] = Network(network_id(event.network))
    network.apply(event)


def networks_until(store: Store, position: int) -> dict[str, Network]:
    """Every network's state as of a log position."""
    networks: dict[str, Network] = {}
    if position <= 0:
        return networks
    for at, event in store.read(topics=NETWORK_TOPICS):
        if at > position:
            break
        apply_network(networks, event)
    return networks


class Networks:
    """Every network as of the event being projected, with its enabled plugins' settings."""

    def __init__(self, rules: Rules, networks: dict[str, Network]) -> None:
        self.rules = rules
        self._networks = networks
        self._enabled: dict[str, tuple[int, dict[str, Any]]] = {}

    def get(self, slug: str) -> Network | None:
        """The network, or ``None`` before it was created."""
        return self._networks.get(slug)

    def enabled(self, slug: str) -> dict[str, Any]:
        """The network's enabled (installed) plugins with their validated settings.

        A plugin whose recorded settings its current version rejects is left
        out: a view never fails on it (the plugin's own pages say why).
        """
        network = self._networks.get(slug)
        if network is None:
            return {}
        cached = self._enabled.get(slug)
        if cached is not None and cached[0] == network.version:
            return cached[1]
        enabled: dict[str, Any] = {}
        for name, raw in network.plugins.items():
            if self.rules.plugin(name) is None:
                continue
            try:
                enabled[name] = self.rules.settings(name, raw)
            except InvalidCommand:
                continue
        self._enabled[slug] = (network.version, enabled)
        return enabled

    def apply(self, event: Event) -> None:
        if event.type in _NETWORK_TOPICS:
            apply_network(self._networks, event)


K = TypeVar("K")
V = TypeVar("V")


class BatchRows(Generic[K, V]):
    """The rows of one table as a batch sees them: read once, changed in memory, written once.

    ``load(keys)`` reads the stored rows of the given keys (one query for
    many keys); a key it does not return has no row. :meth:`fetch` reads
    the keys a batch will need in one go, :meth:`get` reads a key it missed.
    :meth:`put` changes a row in memory; :meth:`changed` lists what
    :meth:`Projection.flush` must write. Kept for one batch only: another
    process may change the table between two batches.
    """

    def __init__(self, load: Callable[[list[K]], dict[K, V]]) -> None:
        self._load = load
        #: every key read or changed: its row now (``None``: no row)
        self.rows: dict[K, V | None] = {}
        self._changed: dict[K, None] = {}

    def fetch(self, keys: Iterable[K]) -> None:
        """Read the rows of the keys not read yet, in one query."""
        wanted = [key for key in dict.fromkeys(keys) if key not in self.rows]
        if not wanted:
            return
        found = self._load(wanted)
        for key in wanted:
            self.rows[key] = found.get(key)

    def get(self, key: K) -> V | None:
        """The row of a key (``None``: no row)."""
        if key not in self.rows:
            self.fetch((key,))
        return self.rows[key]

    def put(self, key: K, row: V) -> None:
        """Change (or add) a row: it is written at the end of the batch."""
        self.rows[key] = row
        self._changed[key] = None

    def changed(self) -> list[tuple[K, V]]:
        """The rows changed in this batch, in the order they were first changed."""
        found = []
        for key in self._changed:
            row = self.rows[key]
            if row is not None:
                found.append((key, row))
        return found

    def clear(self) -> None:
        """Forget everything (the batch ended)."""
        self.rows = {}
        self._changed = {}


def by_network(keys: Collection[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Keys ``(network, key, ...)`` grouped by network: network → the keys' second parts."""
    grouped: dict[str, dict[Any, None]] = {}
    for key in keys:
        grouped.setdefault(key[0], {})[key[1]] = None
    return {network: list(found) for network, found in grouped.items()}


class Projection(ABC):
    """A view: tables of its own, filled from events.

    Subclasses name the view (``name``), the tables they own (``tables``,
    dropped on rebuild), their DDL (:meth:`create`) and what an event does to
    their rows (:meth:`handle`, called inside the batch's transaction, in log
    order). A projection may keep changes in memory while a batch is handled
    and write them in :meth:`flush`, at the end of the same transaction;
    :meth:`discard` forgets them when the transaction is rolled back.
    Bump ``version`` when the rows a projection writes change meaning: its
    view is then rebuilt from the log when next opened.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    tables: ClassVar[tuple[str, ...]]
    #: The event types it reads; empty for every event.
    topics: ClassVar[tuple[str, ...]] = ()
    #: Evidence (the audit witness) is never dropped nor rebuilt: it remembers
    #: what the log looked like when it was first read.
    evidence: ClassVar[bool] = False

    def __init__(self, db: SqlBackend, rules: Rules, store: Store) -> None:
        self.db = db
        self.rules = rules
        #: The log, for projections that rebuild an aggregate as of an event.
        self.store = store

    def t(self, name: str) -> str:
        """A table name as SQL must write it."""
        return self.db.table(name)

    @abstractmethod
    def create(self) -> None:
        """Create the tables and indexes if they do not exist."""

    @abstractmethod
    def handle(self, position: int, event: Event, networks: Networks) -> None:
        """Change the view for one event."""

    def prepare(self, events: Sequence[tuple[int, Event]]) -> None:  # noqa: B027
        """Read, in a few queries, what handling these events will need (inside the batch's
        transaction, before :meth:`handle` sees them): the events of the batch this view
        handles, in log order."""

    def dump(self) -> list[tuple[str, ...]]:
        """Every row of every table, as text, in a canonical order (to compare views)."""
        rows: list[tuple[str, ...]] = []
        for table in self.tables:
            _, found = self.db.execute(f"SELECT * FROM {self.t(table)}")
            rows.extend(sorted((table, *(_text(v) for v in row)) for row in found))
        return rows

    def flush(self, networks: Networks) -> None:  # noqa: B027  # most projections write as they go
        """Write what :meth:`handle` kept in memory (inside the batch's transaction).

        ``networks`` holds every network as of the batch's last event.
        """

    def discard(self) -> None:  # noqa: B027
        """Forget what :meth:`handle` kept in memory (the batch was rolled back)."""


def _text(value: Any) -> str:
    """A stored value as text that reads the same from SQLite and PostgreSQL."""
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value.startswith(("{", "[")):
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except ValueError:
            return value
    return "" if value is None else str(value)


#: Every projection by name, in the order they are run.
PROJECTIONS: dict[str, type[Projection]] = {}


def projection(cls: type[Projection]) -> type[Projection]:
    """Register a projection class (a class decorator)."""
    PROJECTIONS[cls.name] = cls
    return cls


def _registered() -> dict[str, type[Projection]]:
    from . import views  # noqa: F401  # registers the built-in views
    from .audit import witness  # noqa: F401  # and the audit witness

    return PROJECTIONS


class _Moved(Exception):
    """Another process moved a tracking position first: the batch was rolled back."""

    def __init__(self, handled: int) -> None:
        super().__init__(handled)
        #: Events of the batches committed so far (a retry goes on counting from there).
        self.handled = handled


class Projector:
    """Keeps the views of one store up to date."""

    def __init__(
        self,
        store: Store,
        rules: Rules | None = None,
        names: Sequence[str] | None = None,
        *,
        batch: int = BATCH,
        clock: Callable[[], datetime] = utc_now,
        db: SqlBackend | None = None,
    ) -> None:
        """``db``: keep the views in this connection instead of the store's database
        (a private one, e.g. the views as of a moment); its owner closes it."""
        from .ledger import default_rules

        registered = _registered()
        for name in names or ():
            if name not in registered:
                raise InvalidCommand(
                    "projection", f"no projection {name!r}; known: {', '.join(registered)}"
                )
        self.store = store
        self.rules = rules if rules is not None else default_rules()
        self.batch = max(batch, 1)
        self.clock = clock
        self._owns_db = db is None
        self.db = connect(store.database) if db is None else db
        #: Every network as of the last committed batch's end, kept for the next catch-up
        #: (``None`` while a batch changes it, and after a failed one: read again then).
        self._networks: tuple[int, Networks] | None = None
        chosen = [n for n in registered if not names or n in names]
        self.projections: dict[str, Projection] = {
            name: registered[name](self.db, self.rules, store) for name in chosen
        }
        try:
            self._create()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the connection (unless it was given)."""
        if self._owns_db:
            self.db.close()

    def __enter__(self) -> Projector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _create(self) -> None:
        with self.db.transaction():
            if isinstance(self.db, PostgresBackend):
                # Concurrent CREATE TABLE IF NOT EXISTS can collide in the catalog.
                self.db.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK,))
            self.db.execute(
                f"""CREATE TABLE IF NOT EXISTS {self.db.table(TRACKING)} (
                    name TEXT PRIMARY KEY,
                    version INTEGER NOT NULL,
                    position BIGINT NOT NULL,
                    updated_at {self.db.timestamp}
                )"""
            )
            stored = self._stored()
            for name, view in self.projections.items():
                if name in stored and stored[name][0] != view.version and not view.evidence:
                    self.db.execute(  # the tracking row first (see rebuild)
                        f"UPDATE {self.db.table(TRACKING)} SET version = ?, position = 0 "
                        "WHERE name = ?",
                        (view.version, name),
                    )
                    self._drop(view)
            # Every tracking row before any view's CREATE ... IF NOT EXISTS: those lock
            # the view's table even when it exists, and a process catching up holds
            # tracking rows while it waits for the views' tables. Waiting for its rows
            # while holding a table it wants deadlocked (two `close-period` at once).
            for name, view in sorted(self.projections.items()):
                self.db.execute(
                    f"INSERT INTO {self.db.table(TRACKING)} (name, version, position) "
                    "VALUES (?, ?, 0) ON CONFLICT DO NOTHING",
                    (name, view.version),
                )
            for view in self.projections.values():
                view.create()

    def _stored(self) -> dict[str, tuple[int, int]]:
        _, rows = self.db.execute(f"SELECT name, version, position FROM {self.db.table(TRACKING)}")
        return {str(name): (int(version), int(position)) for name, version, position in rows}

    def _drop(self, view: Projection) -> None:
        for table in view.tables:
            self.db.execute(f"DROP TABLE IF EXISTS {self.db.table(table)}")

    def positions(self) -> dict[str, int]:
        """Each view's tracking position: the last log position it reflects."""
        stored = self._stored()
        return {name: stored.get(name, (0, 0))[1] for name in self.projections}

    def lag(self) -> int:
        """How many log positions the furthest-behind view is behind the log."""
        last = self.store.last_position()
        return max((last - p for p in self.positions().values()), default=0)

    def catch_up(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Bring every view up to the end of the log; returns how many events it handled.

        ``progress(done, last_position)`` is called after each batch.
        """
        handled = 0
        while True:
            try:
                return self._catch_up(progress, handled)
            except _Moved as moved:
                # another process took a batch: read the positions again
                handled = moved.handled

    def _catch_up(self, progress: Callable[[int, int], None] | None, handled: int) -> int:
        """Catch up from the stored positions; ``handled`` events were handled before."""
        positions = self.positions()
        start = min(positions.values(), default=0)
        last = self.store.last_position()
        if start >= last:
            return handled  # (a page's read: nothing to write, no setting changed)
        with self.db.derived():
            return self._batches(start, positions, progress, handled, last)

    def _batches(
        self,
        start: int,
        positions: dict[str, int],
        progress: Callable[[int, int], None] | None,
        handled: int,
        last: int,
    ) -> int:
        """Handle the log after ``start`` batch by batch; returns the events handled in all."""
        networks = self._networks_at(start)
        for batch in chunks(self.store.read(after=start, page=self.batch), self.batch):
            end = batch[-1][0]
            stamp = self.db.ts(self.clock())
            self._networks = None  # changed in place below: kept again once the batch commits
            try:
                with self.db.transaction():
                    if isinstance(self.db, PostgresBackend):
                        # Shared with other batches, exclusive with a process creating
                        # or dropping the views' tables (_create, rebuild): their CREATE
                        # INDEX IF NOT EXISTS locks each table even when it exists, in
                        # another order than a batch writes them (a deadlock, 1 in 6
                        # runs of two closes at once).
                        self.db.execute("SELECT pg_advisory_xact_lock_shared(?)", (_LOCK,))
                    # Tracking rows are taken in name order in every process (whatever
                    # order its projections were registered in), so that two processes
                    # racing for a batch wait for each other instead of deadlocking.
                    for name in sorted(self.projections):
                        if positions[name] >= end:
                            continue
                        moved, _ = self.db.execute(
                            f"UPDATE {self.db.table(TRACKING)} SET position = ?, updated_at = ? "
                            "WHERE name = ? AND position = ?",
                            (end, stamp, name, positions[name]),
                        )
                        if moved != 1:
                            raise _Moved(handled)
                    # Each view's events of the batch: read what they need first, in a few
                    # queries, then handle them in log order with every network as of each.
                    typed = [(position, event, event.type) for position, event in batch]
                    handlers = []
                    for name, view in self.projections.items():
                        topics = frozenset(view.topics)
                        after = positions[name]
                        mine = [
                            (position, event)
                            for position, event, kind in typed
                            if position > after and (not topics or kind in topics)
                        ]
                        view.prepare(mine)
                        handlers.append(({p for p, _ in mine}, view.handle))
                    for position, event, kind in typed:
                        if kind in _NETWORK_TOPICS:
                            networks.apply(event)
                        for wanted, handle in handlers:
                            if position in wanted:
                                handle(position, event, networks)
                    for view in self.projections.values():
                        view.flush(networks)
            except BaseException:
                for view in self.projections.values():
                    view.discard()
                raise
            self._networks = (end, networks)
            for name in self.projections:
                positions[name] = max(positions[name], end)
            handled += len(batch)
            if progress is not None:
                progress(handled, last)
        return handled

    def _networks_at(self, position: int) -> Networks:
        """Every network as of a log position.

        From the networks the last catch-up of this process ended with, reading
        only the networks' events since, when it ended at or before the
        position; from the whole log's network events otherwise (the first
        catch-up, a rebuild, a failed batch).
        """
        kept, self._networks = self._networks, None
        if kept is None or kept[0] > position:
            return Networks(self.rules, networks_until(self.store, position))
        at, networks = kept
        if at < position:
            for found, event in self.store.read(after=at, topics=NETWORK_TOPICS):
                if found > position:
                    break
                networks.apply(event)
        return networks

    def rebuild(
        self,
        names: Sequence[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Drop the named views (all by default) and replay the whole log into them."""
        chosen = [
            view
            for n, view in self.projections.items()
            if (n in names if names else not view.evidence)
        ]
        for name in names or ():
            if name not in self.projections:
                raise InvalidCommand("projection", f"no projection {name!r}")
            if self.projections[name].evidence:
                raise InvalidCommand(
                    "projection",
                    f"{name!r} is audit evidence: it is never rebuilt "
                    "(it remembers the log as it was first read; see docs/audit.md)",
                )
        with self.db.transaction():
            if isinstance(self.db, PostgresBackend):
                self.db.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK,))
            for view in chosen:
                # The tracking row first: a batch in flight holds it until it commits, and
                # may still write to the view's tables. Dropping them first would deadlock
                # with it (PostgreSQL): it waits for the dropped tables, we for its row.
                self.db.execute(
                    f"UPDATE {self.db.table(TRACKING)} SET version = ?, position = 0 "
                    "WHERE name = ?",
                    (view.version, view.name),
                )
                self._drop(view)
                view.create()
        return self.catch_up(progress)

    def follow(
        self,
        stop: threading.Event,
        poll: float = 0.2,
        on_standby: Callable[[], None] | None = None,
        *,
        on_error: Callable[[StoreUnavailable, float], None] | None = None,
        on_recovered: Callable[[], None] | None = None,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        """Catch up, then keep catching up every ``poll`` seconds until ``stop`` is set.

        On PostgreSQL only one follower writes the views at a time: it holds a
        session advisory lock for as long as it runs. Another follower stands
        by (``on_standby`` is called when it starts standing by) and takes over
        when the lock is released, which PostgreSQL does when the holder's
        connection ends, a killed worker's included. The tracking positions
        make the takeover exact: the new follower resumes at the last
        committed batch.

        When the database goes away (a restart, a locked file) the follower
        does not stop: ``on_error(error, delay)`` is called, it waits ``delay``
        (doubling from ``poll``, at most ``max_backoff`` seconds) and tries
        again; ``on_recovered`` is called when a catch-up works again. A batch
        cut off halfway was rolled back, so it is read again, and counted
        once. The lock went with the lost connection: the follower takes it
        again on the new one (or stands by if another follower took it).
        """
        backend = self.db if isinstance(self.db, PostgresBackend) else None
        locked = 0  # the connection generation that holds the lock (0: none)
        standing_by = False
        delay = 0.0
        try:
            while not stop.is_set():
                try:
                    if backend is not None and backend.ensure() != locked:
                        _, rows = backend.execute(
                            "SELECT pg_try_advisory_lock(CAST(? AS INTEGER), CAST(? AS INTEGER))",
                            follower_key(backend.schema),
                        )
                        if not rows[0][0]:
                            if not standing_by and on_standby is not None:
                                on_standby()
                            standing_by = True
                            stop.wait(max(poll, 0.5))
                            continue
                        standing_by = False
                        locked = backend.generation
                    handled = self.catch_up()
                except StoreUnavailable as error:
                    delay = min(max_backoff, delay * 2 if delay else max(poll, 0.1))
                    if on_error is not None:
                        on_error(error, delay)
                    stop.wait(delay)
                    continue
                if delay:
                    delay = 0.0
                    if on_recovered is not None:
                        on_recovered()
                if handled == 0:
                    stop.wait(poll)
        finally:
            if backend is not None and locked == backend.generation:
                with contextlib.suppress(StoreUnavailable):
                    backend.execute(
                        "SELECT pg_advisory_unlock(CAST(? AS INTEGER), CAST(? AS INTEGER))",
                        follower_key(backend.schema),
                    )

    def wait_until(self, position: int, timeout: float = 10.0) -> bool:
        """Wait (polling) until every view reflects ``position``; False on timeout."""
        deadline = time.monotonic() + timeout
        while min(self.positions().values(), default=position) < position:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


__all__ = [
    "NETWORK_TOPICS",
    "PROJECTIONS",
    "BatchRows",
    "Networks",
    "Projection",
    "Projector",
    "apply_network",
    "by_network",
    "chunks",
    "networks_until",
    "projection",
]
