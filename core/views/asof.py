"""Every view as of a moment: computed from the log, cut at a recorded or a business time.

Two questions an auditor asks of history:

* *What did the system know on 3 March?* A **recorded-time** cut keeps the
  events stored (``recorded_at``) up to that moment: a backdated conversion
  recorded on 10 March is not there yet, nor a period close recorded later.
* *What had happened by 3 March, as we know it now?* A **business-time**
  cut keeps the events whose business time (``occurred_at``) is up to that
  moment, whenever they were recorded: the backdated conversion is there.

A :class:`Cut` may give both: an event is kept when it passes each bound
given. Both bounds are **inclusive**: an event recorded (or that happened)
exactly at the moment is kept; the next microsecond is not.

:func:`views_as_of` builds the four views (standings, ledger, scorecards,
trail) of one network from the events that pass a cut, with the same
projections that keep the live views, into a private in-memory SQLite
database; the queries of :mod:`~partnerledger.views` run on it unchanged.
The network's state the projections judge each event with (its plugins,
settings, tier ladder) is built from the kept events too, and so are the
aggregates a projection reads back (a referral as it stood after an event).
Nothing is read from the live views' tables and nothing is written to the
store's database.

The log's order is not strictly the order of ``recorded_at`` (several
processes append with their own clocks), so the whole log is read and
filtered; reading never stops at the first event past the cut.

Built views are kept in a small in-process LRU cache, keyed by the database,
the network, the cut and the plugins: a page reload or the next page of a
trail at the same cut is answered from it, and events appended since are
fed to it incrementally (those that pass the cut), as a projector follows
the log.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from ..domain import Member, Network, member_id, network_id
from ..errors import InvalidCommand
from ..events import Event
from ..pluginmanager import Rules
from ..projection import Projector
from ..sql import SQLiteBackend
from ..store import PAGE, Database, Store
from ..types import OUT_OF_RANGE, in_range

#: The views an as-of query builds, by projection name.
VIEWS: tuple[str, ...] = ("standings", "ledger", "scorecards", "trail")
#: Built views kept per process (each is an in-memory database of one network).
CACHE_SIZE = 4
#: The query parameters (and, with dashes, the CLI options) that give a cut.
BUSINESS_FIELD = "as_of"
RECORDED_FIELD = "as_of_recorded"

_DATE = re.compile(r"^\d{4}-?\d{2}-?\d{2}$")
_END_OF_DAY = timedelta(days=1, microseconds=-1)


def parse_moment(text: str, field: str, *, naive_is_utc: bool = False) -> datetime:
    """The moment a cut is taken at, from ISO 8601 text; InvalidCommand on ``field``.

    A date (``2025-03-03``) means the **end** of that day, UTC:
    ``2025-03-03T23:59:59.999999Z``, so the whole day is in the cut. A time
    needs an offset (``2025-03-03T12:00:00Z``, ``+02:00``), unless
    ``naive_is_utc`` (what a browser's date-time picker sends: its page says
    the times are UTC). The moment must lie in the range of business times.
    """
    text = text.strip()
    try:
        if _DATE.match(text):
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
            moment += _END_OF_DAY
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                if not naive_is_utc:
                    raise InvalidCommand(
                        field, f"{text!r} has no offset: give one, e.g. Z or +02:00"
                    )
                moment = moment.replace(tzinfo=UTC)
            moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidCommand(
            field,
            f"{text!r} is not a date (2025-03-03) or a time with an offset (2025-03-03T12:00Z)",
        ) from None
    if not in_range(moment):
        raise InvalidCommand(field, OUT_OF_RANGE)
    return moment


def _shown(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


@dataclass(frozen=True)
class Cut:
    """Where history is cut: at a recorded time, a business time, or both (inclusive bounds).

    An event is kept when ``recorded_at <= recorded`` (if given) and
    ``occurred_at <= business`` (if given). Times are aware; they are kept in UTC.
    """

    recorded: datetime | None = None
    business: datetime | None = None

    def __post_init__(self) -> None:
        for name, field in (("recorded", RECORDED_FIELD), ("business", BUSINESS_FIELD)):
            moment: datetime | None = getattr(self, name)
            if moment is None:
                continue
            if moment.tzinfo is None:
                raise InvalidCommand(field, "give a time with an offset, e.g. Z or +02:00")
            object.__setattr__(self, name, moment.astimezone(UTC))

    @classmethod
    def parse(
        cls,
        business: str | None = None,
        recorded: str | None = None,
        *,
        naive_is_utc: bool = False,
        business_field: str = BUSINESS_FIELD,
        recorded_field: str = RECORDED_FIELD,
    ) -> Cut | None:
        """The cut two texts give (empty ones are left out); ``None`` when neither is given.

        A bad text raises InvalidCommand naming its field (see :func:`parse_moment`).
        """
        at = (business or "").strip()
        known = (recorded or "").strip()
        if not at and not known:
            return None
        return cls(
            recorded=parse_moment(known, recorded_field, naive_is_utc=naive_is_utc)
            if known
            else None,
            business=parse_moment(at, business_field, naive_is_utc=naive_is_utc) if at else None,
        )

    def includes(self, event: Event) -> bool:
        """Whether an event is on this side of the cut."""
        if self.recorded is not None and event.recorded_at > self.recorded:
            return False
        return self.business is None or event.occurred_at <= self.business

    @property
    def moment(self) -> datetime:
        """The moment "now" stands for in the views (days since, dormant...): the business
        time if given, else the recorded time."""
        found = self.business or self.recorded
        assert found is not None  # a Cut without either is refused by views_as_of
        return found

    @property
    def field(self) -> str:
        """The query parameter a complaint about the cut names."""
        return BUSINESS_FIELD if self.business is not None else RECORDED_FIELD

    def describe(self) -> str:
        """The cut in words: ``as known on 2025-03-03 23:59:59 UTC``..."""
        parts = []
        if self.recorded is not None:
            parts.append(f"as known on {_shown(self.recorded)}")
        if self.business is not None:
            parts.append(f"as of business time {_shown(self.business)}")
        return ", ".join(parts)

    def query(self) -> dict[str, str]:
        """The cut as query parameters (RFC 3339, UTC), e.g. for links that keep it."""
        found = {}
        if self.business is not None:
            found[BUSINESS_FIELD] = self.business.isoformat().replace("+00:00", "Z")
        if self.recorded is not None:
            found[RECORDED_FIELD] = self.recorded.isoformat().replace("+00:00", "Z")
        return found


class CutLog(Store):
    """One network's events that pass a cut, kept in memory and read like a store.

    The projections of :func:`views_as_of` read it as their log: in log
    order (with the positions of the real log), by aggregate (``stream``),
    and nothing else. It holds no connection and cannot be appended to.
    """

    def __init__(self, database: Database, events: Sequence[tuple[int, Event]] = ()) -> None:
        # Not Store.__init__: there is no database to open, everything is in memory.
        self.database = database
        self.events: list[tuple[int, Event]] = []
        self._streams: dict[UUID, list[Event]] = {}
        self.extend(events)

    def extend(self, events: Sequence[tuple[int, Event]]) -> None:
        """Add events (later in the log than those held)."""
        for position, event in events:
            self.events.append((position, event))
            self._streams.setdefault(event.originator_id, []).append(event)

    def close(self) -> None:
        """Nothing to release."""

    def stream(self, originator_id: UUID) -> list[Event]:
        """The kept events of one aggregate, in version order."""
        return sorted(self._streams.get(originator_id, ()), key=lambda e: e.originator_version)

    def streams(self, originator_ids: Iterable[UUID]) -> dict[UUID, list[Event]]:
        """The kept events of each of these aggregates (those without any left out)."""
        return {i: self.stream(i) for i in dict.fromkeys(originator_ids) if i in self._streams}

    def append(
        self, events: Sequence[Event], *, unchanged_after: Any = None, new_keys: Any = None
    ) -> list[int]:
        """Refused: history as of a moment is read-only."""
        raise InvalidCommand("as_of", "history as of a moment is read-only")

    def read(
        self, *, after: int = 0, topics: Sequence[str] = (), page: int = PAGE
    ) -> Iterator[tuple[int, Event]]:
        """The kept events after position ``after``, in log order."""
        wanted = set(topics)
        for position, event in self.events:
            if position > after and (not wanted or event.type in wanted):
                yield position, event

    def last_position(self) -> int:
        """The position of the last kept event (0 when none is kept)."""
        return self.events[-1][0] if self.events else 0


class AsOfViews(SQLiteBackend):
    """The four views of one network as of a cut, in a private in-memory SQLite database.

    Use it as the ``db`` of the views' queries. ``network`` is the network
    as of the cut (``None`` when it did not exist yet), ``log`` the events
    kept, ``position`` the last position of the real log read, ``rules`` the
    plugins the projections used.
    """

    def __init__(self, source: Database, slug: str, cut: Cut, rules: Rules) -> None:
        # Not SQLiteBackend.__init__: a private database in memory, usable from any thread
        # (one at a time: the cache's lock is held while it is used).
        self.database = Database(kind="sqlite", path=":memory:")
        #: The store's database: what lives beside the log and is no view (the data
        #: subjects' keys...) is read there, never copied here.
        self.source = source
        try:
            self.conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise self.unavailable(error) from error
        self.slug = slug
        self.cut = cut
        #: The plugins the views were computed with (pass them to the queries that need them).
        self.rules = rules
        self.log = CutLog(source)
        #: The last event of the real log read: (position, aggregate, version).
        self.anchor: tuple[int, UUID, int] | None = None
        self.network: Network | None = None

    @property
    def position(self) -> int:
        """The last position of the real log read (0 before any)."""
        return self.anchor[0] if self.anchor else 0

    def member(self, slug: str) -> Member | None:
        """A member of the network as of the cut (``None`` if it had not appeared)."""
        found = Member(member_id(self.slug, slug))
        for event in self.log.stream(found.id):
            found.apply(event)
        return found if found.version else None

    def members(self) -> list[Member]:
        """The network's members as of the cut, in order of appearance."""
        seen: dict[str, None] = {}
        for _, event in self.log.read(topics=("member.invited", "member.joined")):
            seen.setdefault(getattr(event.command, "member", ""), None)
        found = [self.member(slug) for slug in seen]
        return [m for m in found if m is not None]

    def _network(self) -> Network | None:
        found = Network(network_id(self.slug))
        for event in self.log.stream(found.id):
            found.apply(event)
        return found if found.version else None


@dataclass
class _Entry:
    views: AsOfViews  # holds the rules: their id in the key is never reused while it lives
    projector: Projector


_CACHE: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
_LOCK = threading.RLock()


def _close(entry: _Entry) -> None:
    entry.projector.close()
    entry.views.close()


def clear_cache() -> None:
    """Forget every built view (and release its memory)."""
    with _LOCK:
        while _CACHE:
            _close(_CACHE.popitem()[1])


def _read(
    store: Store, network: str, cut: Cut, after: int
) -> tuple[list[tuple[int, Event]], tuple[int, UUID, int] | None]:
    """The network's events after a position that pass the cut, and the last event read.

    The whole rest of the log is read: its order is not that of ``recorded_at``.
    """
    kept = []
    last = None
    for position, event in store.read(after=after):
        last = (position, event.originator_id, event.originator_version)
        if event.network == network and cut.includes(event):
            kept.append((position, event))
    return kept, last


def _same_log(store: Store, views: AsOfViews) -> bool:
    """Whether the log still holds the last event the views read (it was not replaced)."""
    if views.anchor is None:
        return True
    position = views.anchor[0]
    for found, event in store.read(after=position - 1, page=1):
        return (found, event.originator_id, event.originator_version) == views.anchor
    return False


def _feed(entry: _Entry, store: Store) -> None:
    """Feed the built views the events appended since they were built that pass the cut."""
    views = entry.views
    new, last = _read(store, views.slug, views.cut, views.position)
    if last is not None:
        views.anchor = last
    views.log.extend(new)
    if new:
        entry.projector.batch = len(new)
        entry.projector.catch_up()
    views.network = views._network()


@contextmanager
def views_as_of(store: Store, rules: Rules, network: str, cut: Cut) -> Iterator[AsOfViews]:
    """The views of ``network`` computed from the log as of ``cut`` (read-only, cached).

    The database yielded is private to this module's cache: use it inside
    the ``with`` block only (the cache's lock is held meanwhile), never write
    to it. Its ``network`` is ``None`` when the network did not exist at the cut.
    """
    if cut.recorded is None and cut.business is None:
        raise InvalidCommand(BUSINESS_FIELD, "give a recorded time or a business time to cut at")
    key = (store.database, network, cut, id(rules))
    with _LOCK:
        entry = _CACHE.get(key)
        if entry is not None:
            _CACHE.move_to_end(key)
            if not _same_log(store, entry.views):  # another log at the same place
                del _CACHE[key]
                _close(entry)
                entry = None
        if entry is None:
            views = AsOfViews(store.database, network, cut, rules)
            try:
                projector = Projector(views.log, rules, VIEWS, db=views)
            except BaseException:
                views.close()
                raise
            entry = _Entry(views, projector)
            try:
                _feed(entry, store)
            except BaseException:
                _close(entry)
                raise
            _CACHE[key] = entry
            while len(_CACHE) > CACHE_SIZE:
                _close(_CACHE.popitem(last=False)[1])
        elif store.last_position() > entry.views.position:
            _feed(entry, store)
        yield entry.views


__all__ = [
    "BUSINESS_FIELD",
    "CACHE_SIZE",
    "RECORDED_FIELD",
    "VIEWS",
    "AsOfViews",
    "Cut",
    "CutLog",
    "clear_cache",
    "parse_moment",
    "views_as_of",
]
