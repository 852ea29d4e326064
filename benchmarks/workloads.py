"""What runs inside one benchmark subprocess: a workload, timed, through the public entry points.

Every function takes the arguments the orchestrator sent (a dict of plain
data) and returns what it measured (a dict of plain data). Only the section
a figure is about is timed; opening the store, reading the rows a raw limit
writes and the like are not. :mod:`benchmarks.child` adds the process's
peak memory.

The raw limits are measured with the same rows the platform stores: the
encoded events of the store that the import just wrote (same sizes, same
keys), inserted and read with plain SQL in one transaction, SQLite in WAL
mode like the store, PostgreSQL with ``executemany`` and binary ``COPY``.
"""

from __future__ import annotations

import cProfile
import hashlib
import sqlite3
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit
from uuid import UUID

import psycopg

from partnerledger import Database, DomainError, Ledger, Store
from partnerledger.events import encode_event

#: The cProfile of the timed sections, when the orchestrator asked for one.
PROFILE: cProfile.Profile | None = None

Row = tuple[str, int, str, bytes]


class BenchFailure(Exception):
    """A workload could not be measured (the message says why)."""


@contextmanager
def section(result: dict[str, Any], key: str = "seconds") -> Iterator[None]:
    """Time the block into ``result[key]`` (seconds), under the profiler if one is on."""
    if PROFILE is not None:
        PROFILE.enable()
    start = time.perf_counter()
    try:
        yield
    finally:
        result[key] = time.perf_counter() - start
        if PROFILE is not None:
            PROFILE.disable()


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _store(url: str) -> Store:
    return Store(Database.parse(url))


def encoded_rows(store: Store, limit: int | None = None, after: int = 0) -> list[Row]:
    """The store's events as the store encodes them: (originator id, version, topic, state)."""
    rows: list[Row] = []
    for _, event in store.read(after=after):
        rows.append(
            (str(event.originator_id), event.originator_version, event.type, encode_event(event))
        )
        if limit is not None and len(rows) >= limit:
            break
    return rows


# ------------------------------------------------------------------ raw SQL

SQLITE_TABLE = """CREATE TABLE raw_events (
    originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB,
    PRIMARY KEY (originator_id, originator_version))"""
SQLITE_INSERT = (
    "INSERT INTO raw_events (originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)"
)
PG_TABLE = """CREATE TABLE raw_events (
    originator_id uuid NOT NULL, originator_version bigint NOT NULL, topic text, state bytea,
    notification_id bigserial NOT NULL,
    PRIMARY KEY (originator_id, originator_version))"""
PG_INDEX = "CREATE UNIQUE INDEX raw_events_notification_id ON raw_events (notification_id)"
PG_INSERT = (
    "INSERT INTO raw_events (originator_id, originator_version, topic, state) "
    "VALUES (%s, %s, %s, %s)"
)
PG_COPY = (
    "COPY raw_events (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)"
)


def pg_connect(url: str) -> psycopg.Connection[Any]:
    """A psycopg connection to a store URL, its ``?schema=`` as the search path."""
    parts = urlsplit(url)
    schema = parse_qs(parts.query).get("schema", [""])[0]
    plain = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    options = f"-c search_path={schema}" if schema else ""
    return psycopg.connect(plain, options=options, connect_timeout=10)


def sqlite_scratch(path: str) -> sqlite3.Connection:
    """A fresh SQLite file in WAL mode with a table shaped like the store's."""
    Path(path).unlink(missing_ok=True)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(SQLITE_TABLE)
    return connection


def sqlite_insert(connection: sqlite3.Connection, rows: list[Row]) -> None:
    """Every row with ``executemany``, in one transaction."""
    connection.execute("BEGIN")
    connection.executemany(SQLITE_INSERT, rows)
    connection.execute("COMMIT")


def pg_scratch(connection: psycopg.Connection[Any]) -> None:
    """A fresh table shaped like the store's (same keys and index)."""
    with connection.transaction():
        connection.execute("DROP TABLE IF EXISTS raw_events")
        connection.execute(PG_TABLE)
        connection.execute(PG_INDEX)


def pg_insert(connection: psycopg.Connection[Any], rows: list[Row]) -> None:
    """Every row with ``executemany``, in one transaction."""
    with connection.transaction(), connection.cursor() as cursor:
        cursor.executemany(PG_INSERT, rows)


def raw_sqlite(args: dict[str, Any]) -> dict[str, Any]:
    """SQLite: executemany insert and read of the store's encoded events, one transaction, WAL."""
    with _store(args["source"]) as store:
        rows = encoded_rows(store, args.get("limit"))
    result: dict[str, Any] = {"rows": len(rows), "bytes": sum(len(r[3]) for r in rows)}
    connection = sqlite_scratch(args["path"])
    try:
        with section(result, "insert_seconds"):
            sqlite_insert(connection, rows)
        count = 0
        with section(result, "read_seconds"):
            connection.execute("BEGIN")
            for _ in connection.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                "FROM raw_events ORDER BY rowid"
            ):
                count += 1
            connection.execute("COMMIT")
    finally:
        connection.close()
        for suffix in ("", "-wal", "-shm"):
            Path(args["path"] + suffix).unlink(missing_ok=True)
    if count != len(rows):
        raise BenchFailure(f"read {count} rows back, wrote {len(rows)}")
    return result


def raw_postgres(args: dict[str, Any]) -> dict[str, Any]:
    """PostgreSQL: executemany, binary COPY and a streamed read of the store's encoded events."""
    with _store(args["source"]) as store:
        rows = encoded_rows(store, args.get("limit"))
    typed = [(UUID(r[0]), r[1], r[2], r[3]) for r in rows]
    result: dict[str, Any] = {"rows": len(rows), "bytes": sum(len(r[3]) for r in rows)}
    with pg_connect(args["url"]) as connection:
        pg_scratch(connection)
        with section(result, "insert_seconds"):
            pg_insert(connection, rows)
        pg_scratch(connection)
        with (
            section(result, "copy_seconds"),
            connection.transaction(),
            connection.cursor() as cursor,
            cursor.copy(PG_COPY) as copy,
        ):
            copy.set_types(["uuid", "int8", "text", "bytea"])
            for row in typed:
                copy.write_row(row)
        count = 0
        with (
            section(result, "read_seconds"),
            connection.transaction(),
            connection.cursor(name="raw_read", binary=True) as cursor,
        ):
            cursor.itersize = 2000
            cursor.execute(
                "SELECT notification_id, originator_id, originator_version, topic, state "
                "FROM raw_events ORDER BY notification_id"
            )
            for _ in cursor:
                count += 1
        with connection.transaction():
            connection.execute("DROP TABLE raw_events")
    if count != len(rows):
        raise BenchFailure(f"read {count} rows back, wrote {len(rows)}")
    return result


def es_insert(args: dict[str, Any]) -> dict[str, Any]:
    """eventsourcing's own recorder: the store's encoded events inserted in batches of 1,000."""
    import os

    from eventsourcing.application import Application
    from eventsourcing.persistence import StoredEvent

    with _store(args["source"]) as store:
        rows = encoded_rows(store, args.get("limit"))
    stored = [StoredEvent(UUID(r[0]), r[1], r[2], r[3]) for r in rows]

    class RawBench(Application[UUID]):
        name = "rawbench"

    env = {key: "" for key in os.environ if key.startswith(("POSTGRES_", "SQLITE_"))}
    env.update(Database.parse(args["url"]).env())
    app = RawBench(env=env)
    result: dict[str, Any] = {"rows": len(stored)}
    try:
        batch = int(args.get("batch", 1000))
        with section(result, "insert_seconds"):
            for start in range(0, len(stored), batch):
                app.recorder.insert_events(stored[start : start + batch])
    finally:
        app.close()
    return result


# --------------------------------------------------------------- workloads


def import_events(args: dict[str, Any]) -> dict[str, Any]:
    """(a) ``import_lines`` of a demo JSONL file into an empty store."""
    from partnerledger.jsonl import import_lines

    result: dict[str, Any] = {}
    with _store(args["url"]) as store:
        if store.last_position() != 0:
            raise BenchFailure(f"the store is not empty ({store.last_position()} events)")
        ledger = Ledger(store)
        with Path(args["jsonl"]).open("rb") as lines, section(result):
            report = import_lines(ledger, lines)
        if report.rejected:
            first = report.rejected[0]
            raise BenchFailure(
                f"{report.rejected_count} lines refused; line {first.line}: "
                f"{first.field}: {first.reason}"
            )
        result.update(events=report.recorded, lines=report.lines, last=store.last_position())
    return result


def rebuild(args: dict[str, Any]) -> dict[str, Any]:
    """(b) ``Projector.rebuild``: every projection replayed from the whole log."""
    from partnerledger.projection import Projector

    result: dict[str, Any] = {}
    with _store(args["url"]) as store, Projector(store) as projector:
        with section(result):
            handled = projector.rebuild()
        last = store.last_position()
        behind = {name: last - p for name, p in projector.positions().items() if p != last}
        if behind:
            raise BenchFailure(f"views behind the log after the rebuild: {behind}")
        result.update(events=handled, last=last, projections=list(projector.positions()))
    return result


def log_read(args: dict[str, Any]) -> dict[str, Any]:
    """The notification log read through the store: undecoded rows, then read and decoded."""
    result: dict[str, Any] = {}
    with _store(args["url"]) as store:
        for _ in store.read_stored():  # warm the caches: both timed reads start alike
            pass
        count = 0
        with section(result, "stored_seconds"):
            for _ in store.read_stored():
                count += 1
        decoded = 0
        with section(result, "decoded_seconds"):
            for _ in store.read():
                decoded += 1
    result.update(rows=count, events=decoded)
    return result


def baseline(args: dict[str, Any]) -> dict[str, Any]:
    """The memory floor: an interpreter with the platform and its plugins loaded (and, with
    ``web``, the web app's modules, as the server has them), doing nothing."""
    import importlib

    import partnerledger.ledger
    import partnerledger.projection

    partnerledger.ledger.default_rules()
    partnerledger.projection._registered()
    if args.get("web"):
        importlib.import_module("partnerledger.web.app")
        importlib.import_module("partnerledger.cli.main")
    return {}


def close_setup(args: dict[str, Any]) -> dict[str, Any]:
    """(e) setup: the demo of one big network imported and its views brought up to date."""
    from partnerledger.jsonl import import_lines
    from partnerledger.projection import Projector

    result: dict[str, Any] = {}
    with _store(args["url"]) as store:
        with Path(args["jsonl"]).open("rb") as lines, section(result, "import_seconds"):
            report = import_lines(Ledger(store), lines)
        if report.rejected:
            raise BenchFailure(f"{report.rejected_count} lines of the close demo refused")
        with Projector(store) as projector, section(result, "catch_up_seconds"):
            projector.catch_up()
        result.update(events=report.recorded, last=store.last_position())
    return result


def close(args: dict[str, Any]) -> dict[str, Any]:
    """(e) ``close_period`` of a network's period (views already current), and its raw floor.

    The raw floor: the events the close recorded, inserted with plain SQL in
    one transaction (a close has to write at least that).
    """
    from partnerledger.closing import close_period
    from partnerledger.projection import Projector

    result: dict[str, Any] = {}
    with _store(args["url"]) as store, Projector(store) as projector:
        projector.catch_up()
        before = store.last_position()
        try:
            with section(result):
                plan = close_period(
                    Ledger(store),
                    projector,
                    args["network"],
                    args["period"],
                    actor="benchmark@partnerledger.local",
                    at=datetime.now(UTC),
                )
        except DomainError as error:
            raise BenchFailure(f"close-period refused: {error.field}: {error.reason}") from error
        written = encoded_rows(store, after=before)
        result.update(
            members=len(plan.decisions),
            statements=len(plan.statements),
            written=len(written),
            network_events=before,
        )
    if args["scratch"].startswith("postgresql://"):
        with pg_connect(args["scratch"]) as connection:
            pg_scratch(connection)
            with section(result, "raw_seconds"):
                pg_insert(connection, written)
            with connection.transaction():
                connection.execute("DROP TABLE raw_events")
    else:
        connection = sqlite_scratch(args["scratch"])
        try:
            with section(result, "raw_seconds"):
                sqlite_insert(connection, written)
        finally:
            connection.close()
            for suffix in ("", "-wal", "-shm"):
                Path(args["scratch"] + suffix).unlink(missing_ok=True)
    return result


def audit_export(args: dict[str, Any]) -> dict[str, Any]:
    """(f) ``export_bundle`` of every network of the store, one bundle each.

    Setup (not timed): a period of one network is closed first, so that the
    bundles carry recorded decisions for the verifier to recompute.
    """
    from partnerledger.audit.bundle import export_bundle
    from partnerledger.closing import close_period
    from partnerledger.projection import Projector, networks_until

    result: dict[str, Any] = {}
    folder = Path(args["dir"])
    folder.mkdir(parents=True, exist_ok=True)
    with _store(args["url"]) as store, Projector(store) as projector:
        projector.catch_up()
        closed = args.get("close")
        if closed:
            try:
                close_period(
                    Ledger(store),
                    projector,
                    closed["network"],
                    closed["period"],
                    actor="benchmark@partnerledger.local",
                    at=datetime.now(UTC),
                )
                result["closed"] = f"{closed['network']} {closed['period']}"
            except DomainError as error:
                result["closed"] = f"not closed: {error.field}: {error.reason}"
        networks = sorted(networks_until(store, store.last_position()))
        events = 0
        with section(result):
            for network in networks:
                report = export_bundle(projector, network, folder / f"{network}.bundle")
                events += report.events
        result.update(
            events=events,
            networks=len(networks),
            bytes=sum(p.stat().st_size for p in folder.glob("*.bundle")),
            last=store.last_position(),
        )
    return result


def audit_verify(args: dict[str, Any]) -> dict[str, Any]:
    """(f) ``verify_bundle`` of every bundle (offline), with or without recomputing decisions."""
    from partnerledger.audit.bundle import verify_bundle
    from partnerledger.audit.recheck import recheck_decisions

    recheck = recheck_decisions if args.get("recompute") else None
    bundles = sorted(Path(args["dir"]).glob("*.bundle"))
    if not bundles:
        raise BenchFailure(f"no bundles in {args['dir']}")
    result: dict[str, Any] = {}
    events = decisions = mismatches = 0
    failures: list[str] = []
    with section(result):
        for path in bundles:
            report = verify_bundle(path, recheck=recheck)
            events += report.events
            decisions += len(report.decisions)
            mismatches += sum(1 for d in report.decisions if d.get("status") == "mismatch")
            failures.extend(f"{path.name}: {e}" for e in report.errors)
    if failures:
        raise BenchFailure("bundle does not verify: " + "; ".join(failures[:3]))
    result.update(events=events, bundles=len(bundles), decisions=decisions, mismatches=mismatches)
    if not args.get("recompute"):
        result.update(_hash_floor(bundles))
    return result


def _hash_floor(bundles: list[Path]) -> dict[str, Any]:
    """The verifier's floor: read each bundle's events and compute their RFC 9162 leaf hashes
    and the Merkle root with hashlib alone (no parsing, no signatures)."""
    result: dict[str, Any] = {}
    leaves = 0
    with section(result, "raw_seconds"):
        for path in bundles:
            with tarfile.open(path, "r:") as archive:
                member = archive.extractfile("events.jsonl")
                if member is None:
                    raise BenchFailure(f"{path.name}: no events.jsonl")
                hashes = [
                    hashlib.sha256(b"\x00" + line[9 : line.rindex(b',"leaf":')]).digest()
                    for line in member
                ]
            leaves += len(hashes)
            _merkle_root(hashes)
    result["raw_events"] = leaves
    return result


def _merkle_root(hashes: list[bytes]) -> bytes:
    """RFC 9162 MTH over leaf hashes (the same tree, built bottom-up)."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    level = hashes
    while len(level) > 1:
        paired = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


WORKLOADS = {
    "import": import_events,
    "rebuild": rebuild,
    "log_read": log_read,
    "raw_sqlite": raw_sqlite,
    "raw_postgres": raw_postgres,
    "es_insert": es_insert,
    "baseline": baseline,
    "close_setup": close_setup,
    "close": close,
    "audit_export": audit_export,
    "audit_verify": audit_verify,
}
