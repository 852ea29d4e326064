"""A process killed with SIGKILL in the middle of its work leaves the store consistent.

Five kinds of work, each on SQLite and on PostgreSQL (the ``database_url``
fixture), each compared with a run of the same work that was not killed, in
a fresh store:

1. an import (``partnerledger import``), killed inside its second batch's
   transaction and at whatever moment it is partway: only whole batches of
   whole commands are in, and importing the file again completes it;
2. a batch of commands (``Ledger.execute``), killed inside its transaction:
   none of it is in, and running it again records all of it;
3. a projection batch (``partnerledger worker``), killed inside a batch: the
   views *and the audit witness* stop at the last whole batch and resume
   exactly once (tests/test_projections.py covers the views alone against a
   rebuild of the same store; the witness is never rebuilt, so only an
   unkilled run can show it counted nothing twice);
4. a period close (``partnerledger close-period``), killed inside its
   transaction or after it, before its checkpoint is signed: the period is
   closed with all its events or not at all;
5. an audit export (``partnerledger audit export``), killed while writing its
   events, its archive, or just before renaming it into place: the target is
   absent or still the previous whole bundle, the leftovers are refused by
   ``audit verify-bundle``, and the next export removes them and succeeds.

The kills land where they should because the child (tests/crash_child.py)
stops for good at a chosen point (it wraps a library call in its own
process; the product is unchanged) and tells the test, which then kills it;
the partway import is killed when the test sees part of it in the store.

Comparing two stores: the pseudonym secret of each network is the same in
every store of these tests (so customers get the same data subjects and
commands the same identities); events are compared with personal fields
revealed and without their store time; view rows with log positions replaced
by the event's rank in the log (PostgreSQL's sequence skips the numbers a
killed transaction took) and without store times; the witness's leaf hashes
are checked against the store's own log.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from click.testing import CliRunner, Result

from partnerledger import Database, Ledger, Store
from partnerledger.audit.canonical import canonical_event
from partnerledger.audit.checkpoints import checkpoints
from partnerledger.audit.merkle import leaf_hash
from partnerledger.cli.main import cli
from partnerledger.commands import decode_command, encode_command
from partnerledger.jsonl import import_lines
from partnerledger.privacy import KEYS, SECRET_ROW, Sealed, Vault, open_with, subjects
from partnerledger.projection import Projector, _text
from partnerledger.sql import SqlBackend
from test_projections import CLI, demo_lines, fresh_database, poll_until, running

CHILD = Path(__file__).with_name("crash_child.py")
NET = "riverside"
#: Every store of these tests gets this pseudonym secret for the demo network.
SECRET = base64.b64encode(bytes(range(32))).decode()
#: Events per import transaction (core/jsonl.py IMPORT_BATCH).
IMPORT_BATCH = 1000
#: The import: 1,500 commands (January to July 2024), two batches (1,000 and 500).
HISTORY = demo_lines(11, 12, 10)[:1500]
#: A shorter history (500 commands, 1 January to 23 April 2024; the network closes quarters).
SHORT = demo_lines(3, 10, 8)[:500]
CLOSE = ["close-period", "--network", NET, "--period", "2024-Q1"]
CLOSE += ["--actor", "coord@riverside.example", "--at", "2024-04-02T09:00:00+00:00"]


@pytest.fixture(autouse=True)
def signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints signed with a key of the test's own (children inherit the setting)."""
    monkeypatch.setenv("PARTNERLEDGER_SIGNING_KEY", str(tmp_path / "keys" / "signing.key"))
    monkeypatch.setenv("PARTNERLEDGER_ORIGIN", "crash.test")


# ------------------------------------------------------------------ helpers


def seed_secret(url: str) -> None:
    """Give the store the pseudonym secret every store of these tests shares."""
    with Vault(Database.parse(url)).connection() as db:
        db.execute(
            f"INSERT INTO {db.table(KEYS)} (network, subject, key, created_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (NET, SECRET_ROW, SECRET, db.ts(datetime.now(UTC))),
        )


def run(url: str, *args: str, code: int = 0) -> Result:
    """The CLI, in this process, on the store at ``url``."""
    result = CliRunner().invoke(cli, ["--database", url, *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def write_file(path: Path, lines: tuple[bytes, ...] | list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@contextmanager
def paused(point: str, args: list[str], scratch: Path) -> Iterator[Callable[[], None]]:
    """A child stopped for good at ``point``; yields the function that kills it there."""
    mark = scratch / f"paused-{uuid.uuid4().hex}"
    errors = scratch / f"{mark.name}.stderr"
    with (
        errors.open("w") as stderr,
        running(
            [sys.executable, str(CHILD), str(mark), point, "--", *args],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        ) as child,
    ):
        poll_until(lambda: mark.exists() or child.poll() is not None, timeout=120, every=0.01)
        assert mark.exists(), f"the child ended ({child.returncode}): {errors.read_text()}"

        def kill() -> None:
            child.send_signal(signal.SIGKILL)
            assert child.wait(timeout=30) == -signal.SIGKILL

        yield kill
    assert child.returncode == -signal.SIGKILL, "the test did not kill the child"


class State(NamedTuple):
    """A store as two runs of the same work must leave it (see the module's docstring)."""

    log: list[tuple[str, int, str, bytes]]
    views: dict[str, list[tuple[str, ...]]]
    subjects: list[tuple[str, tuple[str, ...]]]


def log_of(store: Store) -> list[tuple[str, int, str, bytes]]:
    """Every event in log order: aggregate, version, command id, command (revealed)."""
    events = Vault(store.database).reveal_events([event for _, event in store.read()])
    return [
        (e.originator_id.hex, e.originator_version, e.command_id, encode_command(e.command))
        for e in events
    ]


def _rows(db: SqlBackend, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cursor: Any = db.conn.execute(f"SELECT * FROM {db.table(table)}")  # type: ignore[attr-defined]
    return [d[0] for d in cursor.description], list(cursor.fetchall())


def revealed(keys: dict[str, bytes], text: str) -> str:
    """A JSON document with its sealed boxes opened (each store seals with keys of its own)."""
    if not text.startswith("{"):
        return text
    document = json.loads(text)

    def walk(value: Any, network: str, field: str) -> Any:
        if isinstance(value, dict):
            if value.keys() == {"box", "subject"}:
                sealed = Sealed(value["subject"], value["box"])
                return open_with(keys[sealed.subject], network, field, sealed)
            return {k: walk(v, value.get("network", network), k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, network, field) for v in value]
        return value

    return json.dumps(walk(document, "", ""), sort_keys=True)


def views_of(projector: Projector) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every view and of the witness, comparable between stores."""
    rank: dict[int, int] = {}
    leaves: dict[int, bytes] = {}
    for number, (position, event) in enumerate(projector.store.read()):
        rank[position] = number
        leaves[position] = leaf_hash(canonical_event(event))
    db = projector.db
    _, stored_keys = db.execute(
        f"SELECT subject, key FROM {db.table(KEYS)} WHERE network = ?", (NET,)
    )
    keys = {str(subject): base64.b64decode(str(key)) for subject, key in stored_keys}
    found: dict[str, list[tuple[str, ...]]] = {}
    for name, view in projector.projections.items():
        rows: list[tuple[str, ...]] = []
        for table in view.tables:
            columns, stored = _rows(projector.db, table)
            for row in stored:
                values = dict(zip(columns, row, strict=True))
                if "leaf_hash" in values:  # the witness: its leaf must be the event's
                    same = bytes(values["leaf_hash"]) == leaves.get(int(values["position"]))
                    values["leaf_hash"] = "the event's leaf" if same else "ANOTHER LEAF"
                normal = [table]
                for column, value in values.items():
                    if column == "recorded_at":
                        continue
                    if column == "position" or column.endswith("_position"):
                        normal.append(f"#{rank.get(int(value), -1)}")
                    else:
                        normal.append(revealed(keys, _text(value)))
                rows.append(tuple(normal))
        found[name] = sorted(rows)
    return found


def state_of(store: Store) -> State:
    """The store's log, its views (brought up to date) and its data subjects."""
    with Projector(store) as projector:
        projector.catch_up()
        assert set(projector.positions().values()) == {store.last_position()}
        views = views_of(projector)
    found = [(s.subject, tuple(s.referrals)) for s in subjects(Ledger(store), NET)]
    return State(log_of(store), views, found)


def assert_same(got: State, expected: State) -> None:
    assert len(got.log) == len(expected.log)
    assert got.log == expected.log
    assert got.views.keys() == expected.views.keys()
    for name in got.views:
        assert got.views[name] == expected.views[name], f"view {name!r} differs"
    assert got.subjects == expected.subjects


_REFERENCES: dict[tuple[str, str], State] = {}


def reference(
    database_url: str, scratch: Path, key: str, work: Callable[[str, Path], None]
) -> State:
    """The state ``work`` leaves in a fresh store of the same kind, never killed (cached)."""
    kind = Database.parse(database_url).kind
    if (kind, key) not in _REFERENCES:
        with fresh_database(database_url, scratch) as url:
            seed_secret(url)
            work(url, scratch)
            with Store(Database.parse(url)) as store:
                _REFERENCES[(kind, key)] = state_of(store)
    return _REFERENCES[(kind, key)]


def subject_keys(url: str) -> set[str]:
    with Vault(Database.parse(url)).connection() as db:
        _, rows = db.execute(
            f"SELECT subject FROM {db.table(KEYS)} WHERE subject <> ?", (SECRET_ROW,)
        )
    return {str(row[0]) for row in rows}


# ------------------------------------------------------------------ 1. an import


def imported(lines: tuple[bytes, ...]) -> Callable[[str, Path], None]:
    def work(url: str, scratch: Path) -> None:
        path = write_file(scratch / f"{uuid.uuid4().hex}.jsonl", lines)
        run(url, "import", str(path))

    return work


def check_whole_batches(store: Store, url: str, expected: State) -> int:
    """Only whole import batches are in, in the order of the unkilled run; returns how many."""
    log = log_of(store)
    assert len(log) in (IMPORT_BATCH, len(HISTORY)), f"{len(log)} events: not whole batches"
    assert log == expected.log[: len(log)]  # every aggregate's stream a prefix of its own
    # keys are written before any event: a key without its referral yet is harmless
    # (subjects are listed from the log), and the next run uses it
    assert subject_keys(url) <= {subject for subject, _ in expected.subjects}
    return len(log)


def test_an_import_killed_inside_a_batch_keeps_whole_batches_and_completes_when_run_again(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    expected = reference(database_url, tmp_path, "history", imported(HISTORY))
    seed_secret(database_url)
    path = write_file(tmp_path / "history.jsonl", HISTORY)
    with paused("inserted@2", ["--database", database_url, "import", str(path)], tmp_path) as kill:
        # the second batch is inserted, not committed: nobody else sees it
        assert sum(1 for _ in store.read()) == IMPORT_BATCH
        kill()
    assert check_whole_batches(store, database_url, expected) == IMPORT_BATCH
    with Projector(store) as projector:  # the import never reached its views
        assert set(projector.positions().values()) == {0}
    again = run(database_url, "import", str(path))
    assert "Imported 500 events (1000 already recorded, 0 rejected)" in again.output
    assert_same(state_of(store), expected)


def test_an_import_killed_at_any_moment_partway_completes_when_run_again(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    expected = reference(database_url, tmp_path, "history", imported(HISTORY))
    seed_secret(database_url)
    path = write_file(tmp_path / "history.jsonl", HISTORY)
    seen = [0]

    def partway() -> bool:
        seen[0] = store.last_position()
        return 0 < seen[0] < len(HISTORY)

    with running(
        [CLI, "--database", database_url, "import", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as child:
        poll_until(lambda: partway() or child.poll() is not None)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert 0 < seen[0] < len(HISTORY), f"the import ended before it was killed (at {seen[0]})"
    done = check_whole_batches(store, database_url, expected)
    again = run(database_url, "import", str(path))
    recorded = len(HISTORY) - done
    assert f"Imported {recorded} events ({done} already recorded, 0 rejected)" in again.output
    assert_same(state_of(store), expected)


# ------------------------------------------------------------------ 2. a batch of commands

PRIOR, BATCH = SHORT[:300], SHORT[300:]


def executed(url: str, _: Path) -> None:
    with Store(Database.parse(url)) as store:
        ledger = Ledger(store)
        ledger.execute(*(decode_command(line) for line in PRIOR))
        ledger.execute(*(decode_command(line) for line in BATCH))


def test_a_batch_of_commands_killed_inside_its_transaction_is_wholly_out(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    expected = reference(database_url, tmp_path, "batch", executed)
    seed_secret(database_url)
    ledger = Ledger(store)
    ledger.execute(*(decode_command(line) for line in PRIOR))
    before = state_of(store)
    path = write_file(tmp_path / "batch.jsonl", BATCH)
    with paused("inserted", ["--execute", database_url, str(path)], tmp_path) as kill:
        assert log_of(store) == before.log  # inserted, not committed: invisible
        kill()
    assert_same(state_of(store), before)  # none of it: not an event, not a data subject
    outcome = ledger.execute(*(decode_command(line) for line in BATCH))
    assert (len(outcome.recorded), outcome.duplicates) == (len(BATCH), 0)
    assert_same(state_of(store), expected)


# ------------------------------------------------------------------ 3. a projection batch


def test_a_worker_killed_inside_a_batch_resumes_its_views_and_witness_exactly_once(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    expected = reference(database_url, tmp_path, "short", imported(SHORT))
    seed_secret(database_url)
    report = import_lines(Ledger(store), SHORT)
    assert report.recorded == len(SHORT)  # no views yet
    positions = [position for position, _ in store.read()]
    first = positions[249]  # the end of the first batch (the child's batches are of 250)
    with Projector(store) as projector:
        with paused("batch@2", ["--database", database_url, "worker"], tmp_path) as kill:
            # the second batch is written, not committed: nobody sees it
            assert set(projector.positions().values()) == {first}
            kill()
        assert set(projector.positions().values()) == {first}  # views and witness alike
        views = views_of(projector)
        assert len(views["witness"]) == 250
        assert all(row[-1] == "the event's leaf" for row in views["witness"])
    once = run(database_url, "worker", "--once")
    assert f"Handled {len(SHORT) - 250:,} events" in once.output
    assert_same(state_of(store), expected)
    verified = run(database_url, "audit", "verify", "--network", NET)
    assert f"{len(SHORT):,} witnessed" in verified.output


# ------------------------------------------------------------------ 4. a period close


def closed(url: str, scratch: Path) -> None:
    imported(SHORT)(url, scratch)
    run(url, *CLOSE)


@pytest.mark.parametrize("point", ["inserted", "closed"])
def test_a_period_close_killed_midway_is_wholly_in_or_out(
    store: Store, database_url: str, tmp_path: Path, point: str
) -> None:
    expected = reference(database_url, tmp_path, "close", closed)
    seed_secret(database_url)
    path = write_file(tmp_path / "short.jsonl", SHORT)
    run(database_url, "import", str(path))
    before = log_of(store)
    with paused(point, ["--database", database_url, *CLOSE], tmp_path) as kill:
        if point == "inserted":  # inside the close's transaction
            assert log_of(store) == before
        kill()
    log = log_of(store)
    if point == "inserted":  # not closed at all; closing again records the whole close
        assert log == before
        run(database_url, *CLOSE)
    else:  # closed, with every event of the close; closing again is refused
        assert log == expected.log
        again = run(database_url, *CLOSE, code=1)
        assert "already closed" in again.output
    assert_same(state_of(store), expected)
    with Projector(store) as projector:
        signed = [c.size for c in checkpoints(projector.db, NET)]
    # the close is signed; when killed before its checkpoint, the next one covers it
    assert signed == ([len(expected.log)] if point == "inserted" else [])
    run(database_url, "audit", "checkpoint", "--network", NET)
    assert "OK: history matches" in run(database_url, "audit", "verify", "--network", NET).output


# ------------------------------------------------------------------ 5. an audit export


def leftovers(folder: Path) -> list[Path]:
    return sorted(p for d in folder.glob(".bundle-*") for p in d.rglob("*") if p.is_file())


@pytest.mark.parametrize("point", ["event@20", "member@4", "renaming"])
def test_an_export_killed_midway_leaves_no_bundle_that_is_not_whole(
    store: Store, database_url: str, tmp_path: Path, point: str
) -> None:
    seed_secret(database_url)
    path = write_file(tmp_path / "short.jsonl", SHORT)
    run(database_url, "import", str(path))
    run(database_url, *CLOSE)
    folder = tmp_path / "bundles"
    target = folder / "riverside.bundle"
    export = ["audit", "export", "--network", NET, "-o", str(target)]
    previous = None
    if point != "event@20":  # an earlier bundle is at the target: it stays whole
        run(database_url, *export)
        previous = target.read_bytes()
    with paused(point, ["--database", database_url, *export], tmp_path) as kill:
        kill()
    if previous is None:
        assert not target.exists()
    else:
        assert target.read_bytes() == previous
        run(database_url, "audit", "verify-bundle", str(target))
    left = leftovers(folder)
    assert left, "the killed export left nothing behind"
    for leftover in left:  # none is taken for a bundle, whole or not
        refused = run(database_url, "audit", "verify-bundle", str(leftover), code=1)
        assert "does NOT verify" in refused.output
        assert "not a bundle: the temporary file of an audit export" in refused.output
    running_export = folder / f".bundle-{os.getpid()}-running"  # a live exporter's folder
    running_export.mkdir()
    (running_export / "events.jsonl").write_bytes(b"")
    again = run(database_url, *export)
    assert f"Wrote {target}" in again.output
    assert leftovers(folder) == [running_export / "events.jsonl"]  # the dead export's are gone
    assert "The bundle verifies" in run(database_url, "audit", "verify-bundle", str(target)).output
