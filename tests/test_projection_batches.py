"""Projections read and write a batch's rows a few statements at a time, not per event.

* A batch's statements: rebuilding a demo history runs a bounded number of
  SQL statements per batch (reads of what the batch needs, one write per
  table), whatever the batch's size: not several per event as before.
* The pieces: :class:`BatchRows` (rows read once, changed in memory, written
  once), :meth:`SqlBackend.insert` (binary COPY on PostgreSQL, upserts through
  a temporary table) and :meth:`SqlBackend.select_in`, :meth:`Store.streams`,
  stored times read and written exactly (years before 1000 included).

Incremental views equal rebuilt ones for any batch split: tests/test_projections.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest

from partnerledger import Database, Ledger, Store, sql
from partnerledger.commands import convert_command, encode_command
from partnerledger.demo import generate
from partnerledger.jsonl import import_lines
from partnerledger.projection import BatchRows, Projector
from partnerledger.sql import SqlBackend, connect, utc_text


def _history(store: Store, members: int = 8, months: int = 6) -> int:
    lines = [encode_command(c) for c in generate(seed=3, members=members, months=months)]
    report = import_lines(Ledger(store), lines)
    assert report.rejected == []
    return store.last_position()


class _Counter:
    """Counts the statements a connection runs (an insert of many rows is one statement)."""

    def __init__(self, db: SqlBackend, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("execute", "executemany", "insert", "select_in"):
            original = getattr(db, name)
            monkeypatch.setattr(db, name, self._wrap(original))

    def _wrap(self, original: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original(*args, **kwargs)

        return counted


def test_a_rebuild_runs_a_bounded_number_of_statements_per_batch(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    last = _history(store, members=10, months=12)
    assert last > 1200  # several batches of 400, each with hundreds of events of every view
    with Projector(store, batch=400) as projector:
        counter = _Counter(projector.db, monkeypatch)
        handled = projector.rebuild()
        batches = -(-handled // 400)
        assert handled == last
        # Per batch: the tracking rows, a few reads per view, one write per table, and the
        # standings of the periods the batch changed. Per event, it used to be about four.
        assert counter.count / batches < 120, (counter.count, batches)
        assert counter.count < handled / 2  # it used to be some 4 * handled


def test_batch_rows_read_once_and_list_what_changed() -> None:
    loads: list[list[str]] = []
    stored = {"a": [1], "b": [2]}

    def load(keys: list[str]) -> dict[str, list[int]]:
        loads.append(keys)
        return {k: list(stored[k]) for k in keys if k in stored}

    rows: BatchRows[str, list[int]] = BatchRows(load)
    rows.fetch(["a", "c", "a"])
    assert loads == [["a", "c"]]
    assert rows.get("a") == [1]
    assert rows.get("c") is None  # read: no row
    assert loads == [["a", "c"]]  # nothing read again
    assert rows.get("b") == [2]  # missed by fetch: read alone
    assert loads == [["a", "c"], ["b"]]
    rows.put("c", [3])
    rows.put("a", [4])
    assert rows.changed() == [("c", [3]), ("a", [4])]
    rows.clear()
    assert rows.changed() == []
    assert rows.get("a") == [1]  # a new batch reads again


@pytest.fixture
def db(store: Store) -> Iterator[SqlBackend]:
    backend = connect(store.database)
    try:
        yield backend
    finally:
        backend.close()


@pytest.mark.parametrize("few_rows", [0, sql.FEW_ROWS], ids=["copy", "executemany"])
def test_insert_copies_rows_and_upserts_them(
    db: SqlBackend, few_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL copies many rows and sends a few with executemany: both ways, same rows.
    monkeypatch.setattr(sql, "FEW_ROWS", few_rows)
    table = db.table("pl_test_insert")
    blob = "BYTEA" if db.kind == "postgresql" else "BLOB"
    db.execute(
        f"CREATE TABLE {table} (k TEXT NOT NULL, n BIGINT NOT NULL, i INTEGER, "
        f"at {db.timestamp}, b {blob}, PRIMARY KEY (k))"
    )
    when = datetime(2025, 1, 6, 9, 0, 0, 7, tzinfo=UTC)
    columns = ("k", "n", "i", "at", "b")
    with db.transaction():
        db.insert(
            table, columns, [("x", 1, None, db.ts(when), b"\x00\x01"), ("y", 2, 3, None, None)]
        )
        upsert = "ON CONFLICT (k) DO UPDATE SET n = excluded.n, i = excluded.i"
        db.insert(table, columns, [("x", 10, 11, None, None), ("z", 5, 6, None, None)], upsert)
        db.insert(table, columns, [("z", 99, 99, None, None)], "ON CONFLICT DO NOTHING")
    _, rows = db.execute(f"SELECT k, n, i, at, b FROM {table} ORDER BY k")
    assert [(k, int(n), i) for k, n, i, _, _ in rows] == [("x", 10, 11), ("y", 2, 3), ("z", 5, 6)]
    assert db.dt(rows[0][3]) == when
    assert bytes(rows[0][4]) == b"\x00\x01"
    assert rows[1][3] is None and rows[1][4] is None

    # A batch rolled back writes nothing, its temporary rows included.
    def rolled_back() -> None:
        with db.transaction():
            db.insert(table, columns, [("w", 1, 1, None, None)], "ON CONFLICT DO NOTHING")
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError, match="rolled back"):
        rolled_back()
    with db.transaction():
        db.insert(table, columns, [("v", 1, 1, None, None)], "ON CONFLICT DO NOTHING")
    _, keys = db.execute(f"SELECT k FROM {table} ORDER BY k")
    assert [k for (k,) in keys] == ["v", "x", "y", "z"]
    many = [f"k{i}" for i in range(1200)]  # more than one IN list on SQLite
    with db.transaction():
        db.insert(table, ("k", "n"), [(k, i) for i, k in enumerate(many)])
    found = db.select_in(f"SELECT k, n FROM {table} WHERE n >= ? AND k {{in}}", (1,), many)
    assert sorted(str(k) for k, _ in found) == sorted(many[1:])
    assert db.select_in(f"SELECT k FROM {table} WHERE k {{in}}", (), []) == []


def test_upserts_stage_again_after_a_rollback_dropped_the_stage(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The staging table of an upsert is created once per connection (PostgreSQL): one
    created by a transaction that rolled back is gone, and the next upsert creates it again;
    two upserts into one table in one transaction each see only their own rows."""
    monkeypatch.setattr(sql, "FEW_ROWS", 0)  # these few rows go through the stage too
    first, second = connect(store.database), connect(store.database)
    try:
        table = first.table("pl_test_stage")
        first.execute(f"CREATE TABLE {table} (k TEXT PRIMARY KEY, n BIGINT NOT NULL)")
        upsert = "ON CONFLICT (k) DO UPDATE SET n = excluded.n"

        def rolled_back() -> None:
            with second.transaction():
                second.insert(table, ("k", "n"), [("a", 1)], upsert)  # creates the stage
                raise RuntimeError("rolled back")  # ... and drops it again

        with pytest.raises(RuntimeError, match="rolled back"):
            rolled_back()
        with second.transaction():
            second.insert(table, ("k", "n"), [("a", 2), ("b", 2)], upsert)
            second.insert(table, ("k", "n"), [("b", 3)], upsert)
        with second.transaction():  # the stage exists now: not created again, still empty
            second.insert(table, ("k", "n"), [("c", 4)], upsert)
        _, rows = first.execute(f"SELECT k, n FROM {table} ORDER BY k")
        assert [(k, int(n)) for k, n in rows] == [("a", 2), ("b", 3), ("c", 4)]
    finally:
        second.close()
        first.close()


def test_streams_read_many_aggregates_at_once(store: Store) -> None:
    _history(store, members=4, months=2)
    ids = list(dict.fromkeys(event.originator_id for _, event in store.read()))
    assert len(ids) > 20
    found = store.streams([*ids, ids[0], uuid4()])  # an id twice, an id without events
    assert set(found) == set(ids)
    for originator_id in ids:
        assert found[originator_id] == store.stream(originator_id)


def test_stored_times_read_back_exactly() -> None:
    db = connect(Database(kind="sqlite", path=":memory:"))
    try:
        for moment in (
            datetime(2025, 1, 6, 9, 0, tzinfo=UTC),
            datetime(185, 3, 1, 0, 0, 0, 1, tzinfo=UTC),
            datetime(2025, 1, 6, 9, 0, tzinfo=timezone(timedelta(hours=2))),
            datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
        ):
            text = utc_text(moment)
            assert len(text) == 27 and text.endswith("Z")
            back = db.dt(text)
            assert back == moment and back.tzinfo == UTC
        assert utc_text(datetime(185, 3, 1, tzinfo=UTC)) == "0185-03-01T00:00:00.000000Z"
        with pytest.raises(ValueError, match="without its offset"):
            db.dt("2025-01-06T09:00:00.000000")  # no offset: not a stored time
    finally:
        db.close()


def test_views_commit_without_waiting_for_the_disk_and_nothing_else_does(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The views are derived from the log: their commits skip the flush (SQLite
    # synchronous=NORMAL, PostgreSQL synchronous_commit=off), and the connection is
    # back to its durable setting for anything else.
    _history(store, members=4, months=2)
    query, fast, durable = (
        ("PRAGMA synchronous", 1, 2)
        if store.database.kind == "sqlite"
        else ("SHOW synchronous_commit", "off", "on")
    )
    with Projector(store) as projector:
        db = projector.db

        def level() -> Any:
            value = db.execute(query)[1][0][0]
            return int(value) if isinstance(fast, int) else str(value)

        seen: list[Any] = []
        view = projector.projections["ledger"]
        original = view.flush

        def flush(networks: Any) -> None:
            seen.append(level())
            original(networks)

        monkeypatch.setattr(view, "flush", flush)
        assert level() == durable
        assert projector.catch_up() > 0
        assert seen and set(seen) == {fast}  # inside the catch-up
        assert level() == durable  # after it
        # Inside a caller's transaction the level is left alone.
        with db.transaction(), db.derived():
            assert level() == durable


def test_a_referral_decides_again_only_its_two_members_standings(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A member's standing depends on their own activity and previous standing only, so a
    # referral decides the sender's and the receiver's again, not the whole network's.
    _history(store, members=10, months=6)
    with Projector(store) as projector:
        projector.catch_up()
        network = "riverside"
        db = projector.db
        _, rows = db.execute(
            "SELECT member FROM "
            f"{db.table('partnerledger_standing_members')} WHERE network = ? ORDER BY member",
            (network,),
        )
        members = [str(r[0]) for r in rows]
        assert len(members) >= 10
        last = max(event.command.occurred_at for _, event in store.read())
        scored: list[str] = []
        real = projector.rules.score

        def score(activity: Any, enabled: Any) -> Any:
            scored.append(activity.member)
            return real(activity, enabled)

        monkeypatch.setattr(projector.rules, "score", score)
        Ledger(store).execute(
            convert_command(
                {
                    "type": "referral.sent",
                    "network": network,
                    "referral": "only-two",
                    "from_member": members[0],
                    "to_member": members[1],
                    "customer": "Someone",
                    "actor": "coordinator@example.com",
                    "occurred_at": last.isoformat(),
                }
            )
        )
        assert projector.catch_up() == 1
        assert sorted(set(scored)) == sorted(members[:2])
        kept = _views_of(projector)
        projector.rebuild()
        assert _views_of(projector) == kept  # the same as deciding everyone again


def _views_of(projector: Projector) -> list[tuple[str, ...]]:
    db = projector.db
    _, rows = db.execute(
        f"SELECT network, period, member, score, tier, streak FROM "
        f"{db.table('partnerledger_standings')} ORDER BY network, period, member"
    )
    return [tuple(str(v) for v in row) for row in rows]
