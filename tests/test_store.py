"""The event store on a real database: durability, reading, concurrency, configuration.

Store tests run on a SQLite file and on a fresh PostgreSQL schema (the
``database_url`` / ``store`` fixtures); the ``Database.parse`` tests need no
database at all.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from decimal import Decimal
from typing import Any

import msgspec
import psycopg
import pytest
from psycopg import sql

from partnerledger import Database, Ledger, Store, decode_command
from partnerledger.commands import Command
from partnerledger.domain import referral_id
from partnerledger.errors import (
    AlreadyExists,
    ConcurrencyConflict,
    InvalidTransition,
    StoreUnavailable,
)
from partnerledger.events import Event
from partnerledger.store import DATABASE_ENV, DEFAULT_DATABASE

NET = "acme"


# ------------------------------------------------------------------ builders


def command(type_: str, minute: int = 0, **fields: Any) -> Command:
    """One command, built from its JSON line as an import would read it."""
    record = {
        "type": type_,
        "network": NET,
        "actor": fields.pop("actor", "coordinator"),
        "occurred_at": f"2024-03-01T09:{minute:02d}:00Z",
        **fields,
    }
    return decode_command(msgspec.json.encode(record))


def members() -> list[Command]:
    """A network with three active members."""
    return [
        command("network.created", name="Acme Chamber", currency="USD"),
        *(
            command("member.joined", 1, member=slug, name=slug.title(), category="trade")
            for slug in ("alice", "bob", "carol")
        ),
    ]


def sent(referral: str, minute: int = 2, **fields: Any) -> Command:
    fields.setdefault("from_member", "alice")
    fields.setdefault("to_member", "bob")
    return command("referral.sent", minute, referral=referral, customer="Dana", **fields)


def history() -> list[Command]:
    """Ten commands: a network, three members, three referrals in different states."""
    return [
        *members(),
        sent("r1"),
        command("referral.accepted", 3, referral="r1"),
        command("referral.converted", 4, referral="r1", deal_value="1500.50", currency="USD"),
        sent("r2", from_member="bob", to_member="carol"),
        command("referral.declined", 5, referral="r2", reason="out of area"),
        sent("r3", to_member="carol"),
    ]


def stored_rows(database_url: str) -> list[tuple[str, bytes]]:
    """(topic, state) of every stored row in log order, read with the database's own driver."""
    database = Database.parse(database_url)
    if database.kind == "sqlite":
        with closing(sqlite3.connect(database.path)) as conn:
            rows = conn.execute("select topic, state from stored_events order by rowid")
            return [(topic, bytes(state)) for topic, state in rows]
    query = sql.SQL("select topic, state from {}.partnerledger_events order by notification_id")
    with psycopg.connect(
        host=database.host,
        port=database.port,
        user=database.user,
        password=database.password,
        dbname=database.dbname,
    ) as conn:
        cursor = conn.execute(query.format(sql.Identifier(database.schema)))
        return [(topic, bytes(state)) for topic, state in cursor]


# ------------------------------------------------------------------ durability and reading


def test_events_survive_closing_and_reopening(database_url: str) -> None:
    with Store(Database.parse(database_url)) as store:
        outcome = Ledger(store).execute(*history())
        before = list(store.read())
        last = store.last_position()
    assert len(before) == 10
    assert [event for _, event in before] == outcome.recorded
    assert last == before[-1][0]

    with Store(Database.parse(database_url)) as reopened:
        after = list(reopened.read())
        assert after == before  # same positions, same order, same content
        assert reopened.last_position() == last
        r1 = referral_id(NET, "r1")
        assert reopened.stream(r1) == [e for _, e in before if e.originator_id == r1]
        # the ledger decides against the reopened history
        ledger = Ledger(reopened)
        state = ledger.unit_of_work().referral(NET, "r1", "referral")
        assert (state.status, state.version) == ("converted", 3)
        assert state.deal_value == Decimal("1500.50")
        with pytest.raises(AlreadyExists):
            ledger.execute(sent("r1", minute=9, to_member="carol"))
        assert ledger.execute(*history()).duplicates == 10


def test_an_empty_store(store: Store) -> None:
    assert store.last_position() == 0
    assert list(store.read()) == []
    assert store.append([]) == []
    assert store.stream(referral_id(NET, "r1")) == []


def test_the_stored_topic_is_the_event_type(store: Store, database_url: str) -> None:
    Ledger(store).execute(*history())
    events = [event for _, event in store.read()]
    rows = stored_rows(database_url)
    assert [topic for topic, _ in rows] == [event.type for event in events]
    for (topic, state), event in zip(rows, events, strict=True):
        data = json.loads(state)  # plain JSON, no pickle, no Python class path
        assert data["command"]["type"] == topic
        assert data["command"]["occurred_at"].endswith("Z")
        assert data["recorded_at"].endswith("Z")
        assert data["originator_version"] == event.originator_version
    converted = next(json.loads(s) for t, s in rows if t == "referral.converted")
    assert converted["command"]["deal_value"] == "1500.50"  # money is a string, not a float


def test_read_filters_by_topic(store: Store) -> None:
    Ledger(store).execute(*history())
    everything = list(store.read())
    only_sent = list(store.read(topics=["referral.sent"]))
    assert [event.command.referral for _, event in only_sent] == ["r1", "r2", "r3"]  # type: ignore[attr-defined]
    assert only_sent == [(p, e) for p, e in everything if e.type == "referral.sent"]
    two = list(store.read(topics=["referral.accepted", "referral.declined"]))
    assert [e.type for _, e in two] == ["referral.accepted", "referral.declined"]
    assert list(store.read(topics=["no.such_type"])) == []
    # topics and after together
    after = only_sent[0][0]
    assert list(store.read(after=after, topics=["referral.sent"])) == only_sent[1:]


def test_read_after_pages_through_the_log(store: Store) -> None:
    Ledger(store).execute(*history())
    everything = list(store.read())
    positions = [position for position, _ in everything]
    assert len(positions) == 10
    assert positions == sorted(set(positions))
    assert list(store.read(page=3)) == everything  # 4 pages: 3 + 3 + 3 + 1
    assert list(store.read(page=1)) == everything
    assert list(store.read(page=10)) == everything  # a full page, then an empty one
    for after in (0, positions[0], positions[3], positions[6], positions[8], positions[9]):
        expected = [(p, e) for p, e in everything if p > after]
        assert list(store.read(after=after, page=3)) == expected, after
    assert list(store.read(after=positions[-1] + 100, page=3)) == []
    joined = list(store.read(topics=["member.joined"], page=2))
    assert [e.command.member for _, e in joined] == ["alice", "bob", "carol"]  # type: ignore[attr-defined]


# ------------------------------------------------------------------ concurrency


@pytest.mark.parametrize("second_store", [False, True], ids=["same-store", "two-stores"])
def test_two_units_of_work_on_the_same_referral(
    store: Store, database_url: str, second_store: bool
) -> None:
    Ledger(store).execute(*members(), sent("r1"))
    start = store.last_position()
    with Store(Database.parse(database_url)) as other_store:
        first = Ledger(store).unit_of_work()
        second = Ledger(other_store if second_store else store).unit_of_work()
        assert first.referral(NET, "r1", "referral").status == "sent"
        assert second.referral(NET, "r1", "referral").status == "sent"

        accept = first.decide(command("referral.accepted", 3, referral="r1", actor="bob"))
        decline = second.decide(command("referral.declined", 3, referral="r1", actor="bob"))
        assert accept is not None
        assert decline is not None
        assert accept.originator_version == decline.originator_version == 2

        assert first.commit() == 1
        log = list(store.read())
        with pytest.raises(ConcurrencyConflict) as caught:
            second.commit()
        assert caught.value.field == "referral"  # the record another command changed first
        assert "'r1' was changed by another command" in caught.value.reason
        assert "nothing was written" in caught.value.reason

    assert list(store.read()) == log
    new = [event for _, event in store.read(after=start)]
    assert new == [accept]
    state = Ledger(store).unit_of_work().referral(NET, "r1", "referral")
    assert (state.status, state.version) == ("accepted", 2)


def test_a_conflicting_batch_writes_nothing(store: Store) -> None:
    ledger = Ledger(store)
    ledger.execute(*members(), sent("r1"))
    late = ledger.unit_of_work()
    late.decide(sent("r2", minute=3))  # a new aggregate: no conflict on its own
    late.decide(command("referral.declined", 3, referral="r1"))
    ledger.execute(command("referral.accepted", 3, referral="r1"))
    position = store.last_position()
    with pytest.raises(ConcurrencyConflict):
        late.commit()
    assert store.last_position() == position
    assert store.stream(referral_id(NET, "r2")) == []


THREADS = 8


def _in_threads(count: int, work: Callable[[int], object]) -> list[object]:
    """Run ``work(i)`` in ``count`` threads released together; each result or exception."""
    barrier = threading.Barrier(count, timeout=30)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


def _race(database_url: str, commands: list[Command]) -> list[object]:
    """Execute each command in its own thread through its own Ledger and Store.

    The stores are opened one after the other beforehand (see
    test_opening_stores_concurrently for opening them at the same time), so the
    race is between the appends.
    """
    stores = [Store(Database.parse(database_url)) for _ in commands]
    try:

        def execute(index: int) -> object:
            outcome = Ledger(stores[index]).execute(commands[index])
            return outcome.recorded[0] if outcome.recorded else "duplicate"

        return _in_threads(len(commands), execute)
    finally:
        for opened in stores:
            opened.close()


@pytest.mark.parametrize("round_", [1, 2, 3])  # the same race, three times
def test_racing_threads_make_one_winner_per_version(
    store: Store, database_url: str, round_: int
) -> None:
    referral = f"r{round_}"
    Ledger(store).execute(*members(), sent(referral))
    start = store.last_position()
    kinds = [
        ("referral.accepted", {}),
        ("referral.declined", {"reason": "busy"}),
        ("referral.converted", {"deal_value": "100", "currency": "USD"}),
    ]
    racers = []
    for index in range(THREADS):
        type_, fields = kinds[index % len(kinds)]
        racers.append(command(type_, 3, referral=referral, actor=f"clerk{index}", **fields))

    results = _race(database_url, racers)

    unexpected = [
        r for r in results if not isinstance(r, Event | ConcurrencyConflict | InvalidTransition)
    ]
    assert unexpected == []
    winners = [r for r in results if isinstance(r, Event)]
    stream = store.stream(referral_id(NET, referral))
    versions = [event.originator_version for event in stream]
    assert versions == list(range(1, len(stream) + 1))  # no duplicate, no gap
    assert len(winners) == len(stream) - 1 >= 1
    assert sorted(winners, key=lambda e: e.originator_version) == stream[1:]
    assert stream[1].type in ("referral.accepted", "referral.declined")
    if stream[1].type == "referral.declined":
        assert len(stream) == 2
    else:
        assert [e.type for e in stream[2:]] in ([], ["referral.converted"])
    new = [event for _, event in store.read(after=start)]
    assert new == stream[1:]


def test_racing_threads_creating_the_same_referral(store: Store, database_url: str) -> None:
    Ledger(store).execute(*members())
    start = store.last_position()
    racers = [
        sent("r1", actor=f"clerk{i}", to_member="bob" if i % 2 == 0 else "carol")
        for i in range(THREADS)
    ]
    results = _race(database_url, racers)
    winners = [r for r in results if isinstance(r, Event)]
    losers = [r for r in results if not isinstance(r, Event)]
    assert len(winners) == 1
    assert all(isinstance(r, ConcurrencyConflict | AlreadyExists) for r in losers), losers
    assert [event for _, event in store.read(after=start)] == winners


def test_opening_stores_concurrently(
    store: Store, database_url: str, request: pytest.FixtureRequest
) -> None:
    """Several processes or workers opening the same (existing) store at once."""
    Ledger(store).execute(*members())

    def open_and_read(_: int) -> object:
        try:
            with Store(Database.parse(database_url)) as opened:
                return opened.last_position()
        except StoreUnavailable as error:
            # only the text: a kept error keeps the half-opened connection pool alive
            # (see test_a_store_that_fails_to_open_leaves_nothing_running)
            return error.reason

    results = [r for _ in range(5) for r in _in_threads(THREADS, open_and_read)]
    assert results == [store.last_position()] * (5 * THREADS)


# ------------------------------------------------------------------ where the store lives


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("x.db", Database(kind="sqlite", path="x.db")),
        ("sqlite:///rel.db", Database(kind="sqlite", path="rel.db")),
        ("sqlite:////abs/x.db", Database(kind="sqlite", path="/abs/x.db")),
        (
            "postgresql://u:p@h:5433/db?schema=s",
            Database(
                kind="postgresql",
                host="h",
                port=5433,
                user="u",
                password="p",
                dbname="db",
                schema="s",
            ),
        ),
        (
            "postgres://u:p%40ss@h/my%20db",
            Database(
                kind="postgresql", host="h", port=5432, user="u", password="p@ss", dbname="my db"
            ),
        ),
    ],
)
def test_database_parse(monkeypatch: pytest.MonkeyPatch, value: str, expected: Database) -> None:
    monkeypatch.setenv(DATABASE_ENV, "from-the-environment.db")
    assert Database.parse(value) == expected  # an explicit value beats the environment


def test_database_parse_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATABASE_ENV, "postgresql://u:s3cret@h:5433/db?schema=s")
    database = Database.parse(None)
    assert (database.kind, database.host, database.port, database.schema) == (
        "postgresql",
        "h",
        5433,
        "s",
    )
    assert database.password == "s3cret"
    assert "s3cret" not in database.describe()
    monkeypatch.setenv(DATABASE_ENV, "sqlite:///env.db")
    assert Database.parse(None) == Database(kind="sqlite", path="env.db")
    monkeypatch.delenv(DATABASE_ENV)
    assert Database.parse(None) == Database(kind="sqlite", path=DEFAULT_DATABASE)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("mysql://u:p@h/db", "unsupported database URL"),
        ("postgresql://u@h:5432/", "no database name"),
    ],
)
def test_database_parse_refuses(value: str, reason: str) -> None:
    with pytest.raises(StoreUnavailable) as caught:
        Database.parse(value)
    assert caught.value.field == "database"
    assert reason in caught.value.reason


@pytest.mark.parametrize("value", ["postgresql://u@h:notaport/db", "postgresql://u@h:99999/db"])
def test_database_parse_refuses_a_bad_port(value: str) -> None:
    with pytest.raises(StoreUnavailable) as caught:
        Database.parse(value)
    assert caught.value.field == "database"


def test_sqlite_in_a_missing_directory(tmp_path: Any) -> None:
    path = tmp_path / "no" / "such" / "dir" / "ledger.db"
    with pytest.raises(StoreUnavailable) as caught:
        Store(Database.parse(str(path)))
    assert caught.value.field == "database"
    assert "no such directory" in caught.value.reason
    assert not path.parent.exists()


def _pool_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("pool-")}


def test_a_store_that_fails_to_open_leaves_nothing_running() -> None:
    before = _pool_threads()
    with pytest.raises(StoreUnavailable) as caught:
        Store(Database.parse("postgresql://postgres@127.0.0.1:1/test"))
    kept = caught.value  # a caller that reports the error later still holds it
    deadline = time.monotonic() + 3
    while _pool_threads() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pool_threads() - before == set(), kept


def test_postgresql_where_nothing_listens() -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        Store(Database.parse("postgresql://postgres:secret@127.0.0.1:1/test"))
    elapsed = time.monotonic() - started
    assert caught.value.field == "database"
    assert "127.0.0.1:1" in caught.value.reason
    assert "secret" not in str(caught.value)
    assert elapsed < 10, f"took {elapsed:.1f} s to give up"
