"""``python -m benchmarks``: every workload, on SQLite and on PostgreSQL, beside its raw limit.

Workloads (the issue's letters), all on histories from the demo generator:

(a) import: ``import_lines`` of the first N commands of ``partnerledger demo -o``
(b) rebuild: ``Projector.rebuild``, every projection replayed from the N events
(c) one command (a referral sent through ``/api/v1``) until every view has it
(d) pages and API endpoints under concurrent clients, one uvicorn worker
(e) ``close_period`` of a network of 1,000 members
(f) audit bundles: export of every network, offline verification (with and
    without recomputing the recorded decisions)
(g) the peak memory of each

Each workload runs in a fresh subprocess (:mod:`benchmarks.child`) so that
its peak resident memory is its own; the server of (c) and (d) is a
``partnerledger serve`` process of its own. The demo file is written once
per size and kept in the work folder's cache.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from .report import (
    TARGETS,
    Line,
    RawLine,
    machine,
    markdown,
    notes_of,
    print_report,
    svg_chart,
    wrk_version,
)
from .web import (
    MEMBER,
    Server,
    api_token,
    check_target,
    command_latency,
    load,
    load_tool,
    percentile,
    sign_in,
)
from .workloads import BenchFailure, pg_connect

ROOT = Path(__file__).resolve().parent.parent
#: Default sizes: the whole default run takes under ten minutes on the reference
#: machine (2 cores) with the code as it was when the harness was written.
DEFAULT_EVENTS = 50_000
DEFAULT_MEMBERS = 1_000
DEFAULT_CLIENTS = 32
DEFAULT_DURATION = 8
DEFAULT_COMMANDS = 100
DEFAULT_POSTGRES = os.environ.get(
    "PARTNERLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
#: The shape of each demo network of the main store (the generator's defaults).
DEMO_MEMBERS = 40
DEMO_MONTHS = 24
CLOSE_MONTHS = 3
NETWORK = "riverside"
#: The memory floors the peaks are set beside.
BASELINES = {"core": "an idle interpreter with partnerledger", "web": "an idle web process"}
LETTERS = ("a", "b", "c", "d", "e", "f", "g")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run every benchmark on SQLite and PostgreSQL; print each figure beside the "
        "raw limit measured in the same run; rewrite docs/performance.md and its chart.",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=DEFAULT_EVENTS,
        help=f"events in the store of (a), (b), (c), (d), (f) "
        f"(default {DEFAULT_EVENTS:,}; the issue's size is 1000000)",
    )
    parser.add_argument(
        "--members",
        type=int,
        default=DEFAULT_MEMBERS,
        help=f"members of the network closed in (e) (default {DEFAULT_MEMBERS:,})",
    )
    parser.add_argument(
        "--clients",
        type=int,
        default=DEFAULT_CLIENTS,
        help=f"concurrent clients in (d) (default {DEFAULT_CLIENTS})",
    )
    parser.add_argument(
        "--duration",
        type=int,
        default=DEFAULT_DURATION,
        help=f"seconds of load per page or endpoint in (d) (default {DEFAULT_DURATION})",
    )
    parser.add_argument(
        "--commands",
        type=int,
        default=DEFAULT_COMMANDS,
        help=f"commands timed in (c) (default {DEFAULT_COMMANDS})",
    )
    parser.add_argument(
        "--databases",
        default="sqlite,postgresql",
        help="comma-separated: sqlite, postgresql (default both)",
    )
    parser.add_argument(
        "--only",
        default=",".join(LETTERS),
        help="comma-separated workloads among a,b,c,d,e,f,g (default all)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "docs" / "performance.md",
        help="the report to rewrite (default docs/performance.md); "
        "the chart is written beside it, same name, .svg",
    )
    parser.add_argument(
        "--no-output", action="store_true", help="print the table only; write no report"
    )
    parser.add_argument("--json", type=Path, help="also write every figure as JSON here")
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES,
        help="a PostgreSQL database to work in (fresh schemas, dropped at the "
        "end; default $PARTNERLEDGER_TEST_POSTGRES or "
        "postgresql://postgres@127.0.0.1:5432/test)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(os.environ.get("TMPDIR", "/tmp")) / "partnerledger-bench",
        help="scratch folder: SQLite stores, bundles, and the cache of demo files",
    )
    parser.add_argument(
        "--load-tool",
        choices=("auto", "wrk", "httpx"),
        default="auto",
        help="the load generator of (d): wrk when installed (auto), or our asyncio+httpx client",
    )
    parser.add_argument("--seed", type=int, default=7, help="demo generator seed (default 7)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="write a cProfile file per workload and database into this folder "
        "(slows the figures down: for finding where time goes)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the stores after the run")
    opts = parser.parse_args(argv)
    opts.databases = [d.strip() for d in opts.databases.split(",") if d.strip()]
    for name in opts.databases:
        if name not in ("sqlite", "postgresql"):
            parser.error(f"--databases: unknown database {name!r}; use sqlite, postgresql")
    opts.only = {w.strip() for w in opts.only.split(",") if w.strip()}
    for letter in opts.only:
        if letter not in LETTERS:
            parser.error(f"--only: unknown workload {letter!r}; use letters among a..g")
    for name in ("events", "members", "clients", "duration", "commands"):
        if getattr(opts, name) < 1:
            parser.error(f"--{name}: must be at least 1")
    if opts.members < 4:
        parser.error("--members: must be at least 4 (the demo generator's minimum)")
    return opts


def _bytes(size: int) -> str:
    return f"{size:,} B" if size < 1000 else f"{size / 1000:,.0f} kB"


def _quarter(moment: str) -> str:
    year, month = int(moment[:4]), int(moment[5:7])
    return f"{year}-Q{(month - 1) // 3 + 1}"


def _generator() -> str:
    """A digest of the demo generator's and the commands' source: a cached demo file is
    used only by the code that wrote it."""
    import hashlib

    import partnerledger.commands
    import partnerledger.demo

    digest = hashlib.sha256()
    for module in (partnerledger.demo, partnerledger.commands):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:12]


class _Line(msgspec.Struct):
    network: str = ""
    occurred_at: str = ""


class Bench:
    """One run: the options, the folders, the figures gathered so far."""

    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.started = time.monotonic()
        self.load_at_start = os.getloadavg()[0]
        self.workdir: Path = opts.workdir.resolve()
        self.cache = self.workdir / "cache"
        self.run_dir = self.workdir / f"run-{os.getpid()}"
        self.cache.mkdir(parents=True, exist_ok=True)
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True)
        self.lines: list[Line] = []
        self.raws: list[RawLine] = []
        self.sizes: list[str] = []
        self.failures: list[str] = []
        self.postgres_version: str | None = None
        self.tool = "-"
        self.baselines: dict[str, float] = {}
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("PARTNERLEDGER_DATABASE", "PARTNERLEDGER_VIEWS")
        }
        self.env.update(
            PARTNERLEDGER_SECRET=secrets.token_hex(32),
            PARTNERLEDGER_SESSIONS=str(self.run_dir / "sessions"),
            PARTNERLEDGER_SIGNING_KEY=str(self.run_dir / "audit.signing-key"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
        self._count = 0
        self._hash_floor: dict[str, float] = {}
        #: The command line as the report shows it (main() sets the options given).
        self.command_line = "python -m benchmarks"

    # ------------------------------------------------------------ plumbing

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {message}", file=sys.stderr, flush=True)

    def child(self, name: str, args: dict[str, Any], database: str) -> dict[str, Any]:
        """Run one workload in a fresh interpreter; returns what it measured."""
        self._count += 1
        result = self.run_dir / f"{self._count:02d}-{name}-{database}.json"
        if self.opts.profile is not None:
            self.opts.profile.mkdir(parents=True, exist_ok=True)
            args = {**args, "profile": str(self.opts.profile / f"{name}-{database}.prof")}
        command = [sys.executable, "-m", "benchmarks.child", name, json.dumps(args), str(result)]
        done = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True)
        data: dict[str, Any] = {}
        if result.exists():
            data = json.loads(result.read_text() or "{}")
        if done.returncode != 0 or "error" in data:
            reason = data.get("error") or (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchFailure(f"{name}: {reason}")
        return data

    def fail(self, workload: str, name: str, database: str, unit: str, error: str) -> None:
        self.failures.append(f"{database} ({workload}) {name}: {error}")
        self.say(f"FAILED {database} ({workload}) {name}: {error}")
        self.lines.append(Line(workload, name, database, None, unit, True, error=error))

    def target(self, key: str, database: str) -> float | None:
        return TARGETS[key][database]

    # ---------------------------------------------------------- demo files

    def demo_file(self) -> Path:
        """The first N commands of the demo generator (written once, then cached)."""
        n, seed = self.opts.events, self.opts.seed
        path = self.cache / f"demo-{n}-s{seed}-m{DEMO_MEMBERS}-{DEMO_MONTHS}mo-{_generator()}.jsonl"
        if path.exists():
            return path
        from partnerledger.demo import count_estimate

        per_network = count_estimate(DEMO_MEMBERS, DEMO_MONTHS)
        networks = max(2, math.ceil(n / per_network) + 1)
        while True:
            self.say(f"writing the demo: {networks} networks (partnerledger demo -o) ...")
            whole = self.cache / f"demo-whole-{os.getpid()}.jsonl"
            self._cli_demo(whole, members=DEMO_MEMBERS, months=DEMO_MONTHS, networks=networks)
            taken = 0
            partial = path.with_suffix(".part")
            with whole.open("rb") as source, partial.open("wb") as target:
                for line in source:
                    if taken == n:
                        break
                    target.write(line)
                    taken += 1
            whole.unlink()
            if taken == n:
                partial.rename(path)
                return path
            partial.unlink()
            networks = math.ceil(networks * 1.3) + 1

    def close_file(self) -> Path:
        """The demo of one network of ``--members`` members over three months (cached)."""
        members, seed = self.opts.members, self.opts.seed
        path = self.cache / f"close-{members}-s{seed}-{CLOSE_MONTHS}mo-{_generator()}.jsonl"
        if not path.exists():
            self.say(f"writing the close demo: one network of {members:,} members ...")
            partial = path.with_suffix(".part")
            self._cli_demo(partial, members=members, months=CLOSE_MONTHS, networks=1)
            partial.rename(path)
        return path

    def _cli_demo(self, target: Path, *, members: int, months: int, networks: int) -> None:
        from .web import cli_command

        command = [
            *cli_command(),
            "demo",
            "--seed",
            str(self.opts.seed),
            "--members",
            str(members),
            "--months",
            str(months),
            "--networks",
            str(networks),
            "-o",
            str(target),
        ]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchFailure(f"partnerledger demo failed: {done.stderr.strip()[-300:]}")

    def demo_facts(self, path: Path) -> tuple[int, str]:
        """How many networks the file has, and the quarter of riverside's last event."""
        networks: set[str] = set()
        last = ""
        decoder = msgspec.json.Decoder(_Line)
        with path.open("rb") as lines:
            for raw in lines:
                line = decoder.decode(raw)
                networks.add(line.network)
                if line.network == NETWORK:
                    last = max(last, line.occurred_at)
        if not last:
            raise BenchFailure(f"the demo file has no {NETWORK} events")
        return len(networks), _quarter(last)

    # ---------------------------------------------------------------- run

    def run(self) -> int:
        opts = self.opts
        only = opts.only
        self.tool = load_tool(opts.load_tool) if "d" in only else "-"
        if self.tool == "wrk":
            self.tool = wrk_version() or "wrk"
        elif self.tool == "httpx":
            self.tool = "httpx (the asyncio client of benchmarks/web.py; wrk not used)"
        if "d" in only:
            self.say(f"load tool: {self.tool}")
        demo = period = None
        networks = 0
        if only & set("abcdf"):
            demo = self.demo_file()
            networks, period = self.demo_facts(demo)
            self.sizes.append(
                f"Store of (a), (b), (c), (d), (f): {opts.events:,} events, the first "
                f"{opts.events:,} commands of `partnerledger demo --seed {opts.seed} --members "
                f"{DEMO_MEMBERS} --months {DEMO_MONTHS}` ({networks} networks); the same file "
                "for both databases."
            )
        if "c" in only:
            self.sizes.append(
                f"(c) {opts.commands} referrals sent one after another through "
                f"`POST /api/v1/networks/{NETWORK}/referrals`, one uvicorn worker."
            )
        if "d" in only:
            self.sizes.append(
                f"(d) {opts.clients} concurrent clients for {opts.duration} s per page or "
                f"endpoint ({NETWORK}, period {period}), one uvicorn worker; load tool: "
                f"{self.tool}."
            )
        if "g" in only:
            for kind, web, detail in (
                ("core", False, "the platform and its plugins loaded, idle"),
                ("web", True, "the same and the web app's modules, as a server has them"),
            ):
                try:
                    peak = self.child("baseline", {"web": web}, kind)["peak_mb"]
                except BenchFailure as error:
                    self.failures.append(f"memory floor: {error}")
                    continue
                self.baselines[kind] = peak
                self.raws.append(
                    RawLine(f"memory floor: {BASELINES[kind]}", "-", peak, "MB", detail)
                )
        for database in opts.databases:
            self.say(f"=== {database}")
            if database == "postgresql":
                self.run_postgres(demo, period)
            else:
                base = self.run_dir / "sqlite"
                base.mkdir()
                self.run_database(
                    "sqlite",
                    main=str(base / "main.db"),
                    scratch=str(base / "scratch.db"),
                    closing=str(base / "close.db"),
                    demo=demo,
                    period=period,
                )
        if "e" in only:
            self.sizes.append(
                f"(e) one network of {opts.members:,} members over {CLOSE_MONTHS} months "
                f"(`partnerledger demo --members {opts.members} --months {CLOSE_MONTHS}`), "
                "its first quarter closed."
            )
        self.sizes.append(
            "Figures are rates, percentiles and times, not totals: they compare across sizes. "
            "The issue's sizes are `--events 1000000`."
        )
        self.finish()
        return 1 if self.failures else 0

    def run_postgres(self, demo: Path | None, period: str | None) -> None:
        url = self.opts.postgres_url.split("?", 1)[0]  # the schemas are ours
        prefix = f"bench_{os.getpid()}"
        schemas = [f"{prefix}_{name}" for name in ("main", "raw", "close")]
        try:
            with pg_connect(url) as connection:
                connection.autocommit = True
                self.postgres_version = str(connection.execute("SHOW server_version").fetchone()[0])
                for schema in schemas:
                    connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                    connection.execute(f"CREATE SCHEMA {schema}")
        except Exception as error:
            for letter in sorted(self.opts.only - {"g"}):
                self.fail(letter, "PostgreSQL", "postgresql", "-", f"not reachable: {error}")
            return
        try:
            self.run_database(
                "postgresql",
                main=f"{url}?schema={schemas[0]}",
                scratch=f"{url}?schema={schemas[1]}",
                closing=f"{url}?schema={schemas[2]}",
                demo=demo,
                period=period,
            )
        finally:
            if not self.opts.keep:
                with pg_connect(url) as connection:
                    connection.autocommit = True
                    for schema in schemas:
                        connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    def run_database(
        self,
        database: str,
        *,
        main: str,
        scratch: str,
        closing: str,
        demo: Path | None,
        period: str | None,
    ) -> None:
        only = self.opts.only
        peaks: list[tuple[str, str, float | None]] = []  # (letter, what, MB)
        store_ready = views_ready = False
        read_rate: float | None = None
        if only & set("abcdf") and demo is not None:
            try:
                store_ready = self.workload_import(database, main, scratch, demo, peaks)
            except BenchFailure as error:
                self.fail("a", "import", database, "events/s", str(error))
        if store_ready and only & set("bcdf"):
            try:
                read_rate = self.workload_rebuild(database, main, peaks)
                views_ready = True
            except BenchFailure as error:
                self.fail("b", "rebuild of every projection", database, "events/s", str(error))
        if "f" in only:
            if views_ready:
                try:
                    self.workload_audit(database, main, read_rate, peaks)
                except BenchFailure as error:
                    self.fail("f", "audit bundles", database, "events/s", str(error))
            else:
                self.fail("f", "audit bundles", database, "events/s", "no store to export")
        if "c" in only:
            if views_ready:
                try:
                    self.workload_latency(database, main, peaks)
                except BenchFailure as error:
                    self.fail("c", "command visible in every view, p99", database, "ms", str(error))
            else:
                self.fail("c", "command visible in every view, p99", database, "ms", "no store")
        if "d" in only:
            if views_ready and period is not None:
                try:
                    self.workload_load(database, main, period, peaks)
                except BenchFailure as error:
                    self.fail("d", "pages and API under load", database, "ms", str(error))
            else:
                self.fail("d", "pages and API under load", database, "ms", "no store")
        if "e" in only:
            try:
                self.workload_close(database, closing, scratch, peaks)
            except BenchFailure as error:
                self.fail("e", f"close of {self.opts.members:,} members", database, "s", str(error))
        if "g" in only:
            for letter, what, peak in peaks:
                if peak is None:
                    continue
                kind = "web" if what.startswith("server") else "core"
                self.lines.append(
                    Line(
                        "g",
                        f"peak memory of ({letter}) {what}",
                        database,
                        peak,
                        "MB",
                        False,
                        raw=self.baselines.get(kind),
                        raw_name=BASELINES[kind],
                        target=self.target("memory", database),
                    )
                )

    # ------------------------------------------------------------ workloads

    def workload_import(
        self,
        database: str,
        main: str,
        scratch: str,
        demo: Path,
        peaks: list[tuple[str, str, float | None]],
    ) -> bool:
        n = self.opts.events
        self.say(f"{database}: (a) import of {n:,} events ...")
        done = self.child("import", {"url": main, "jsonl": str(demo)}, database)
        if done["events"] != n:
            raise BenchFailure(f"imported {done['events']:,} events, expected {n:,}")
        rate = done["events"] / done["seconds"]
        self.say(f"{database}: (a) {rate:,.0f} events/s")
        if "a" not in self.opts.only:
            return True
        raw_rate: float | None = None
        raw_name = ""
        try:
            if database == "sqlite":
                raw = self.child("raw_sqlite", {"source": main, "path": scratch}, database)
                detail = f"{raw['rows']:,} rows, {raw['bytes'] / raw['rows']:,.0f} bytes each"
                insert = raw["rows"] / raw["insert_seconds"]
                self.raws.append(
                    RawLine(
                        "SQLite executemany insert, one transaction, WAL",
                        database,
                        insert,
                        "rows/s",
                        detail,
                    )
                )
                self.raws.append(
                    RawLine(
                        "SQLite read, one transaction",
                        database,
                        raw["rows"] / raw["read_seconds"],
                        "rows/s",
                        detail,
                    )
                )
                raw_rate, raw_name = insert, "SQLite executemany insert"
            else:
                raw = self.child("raw_postgres", {"source": main, "url": scratch}, database)
                detail = f"{raw['rows']:,} rows, {raw['bytes'] / raw['rows']:,.0f} bytes each"
                copy = raw["rows"] / raw["copy_seconds"]
                self.raws.append(
                    RawLine(
                        "PostgreSQL executemany insert, one transaction",
                        database,
                        raw["rows"] / raw["insert_seconds"],
                        "rows/s",
                        detail,
                    )
                )
                self.raws.append(
                    RawLine(
                        "PostgreSQL binary COPY, one transaction", database, copy, "rows/s", detail
                    )
                )
                self.raws.append(
                    RawLine(
                        "PostgreSQL read (server-side cursor, binary)",
                        database,
                        raw["rows"] / raw["read_seconds"],
                        "rows/s",
                        detail,
                    )
                )
                raw_rate, raw_name = copy, "PostgreSQL binary COPY"
            es = self.child("es_insert", {"source": main, "url": scratch}, database)
            self.raws.append(
                RawLine(
                    "eventsourcing recorder insert_events, batches of 1,000",
                    database,
                    es["rows"] / es["insert_seconds"],
                    "rows/s",
                    "the store's library, the same encoded rows",
                )
            )
        except BenchFailure as error:
            self.failures.append(f"{database} raw insert limits: {error}")
            self.say(f"FAILED {database} raw insert limits: {error}")
        self.lines.append(
            Line(
                "a",
                "import",
                database,
                rate,
                "events/s",
                True,
                raw=raw_rate,
                raw_name=raw_name,
                target=self.target("import", database),
                peak_mb=done["peak_mb"],
                detail=f"{done['events']:,} events in {done['seconds']:.1f} s "
                "(import_lines: check every line, then write)",
            )
        )
        peaks.append(("a", "import", done["peak_mb"]))
        return True

    def workload_rebuild(
        self, database: str, main: str, peaks: list[tuple[str, str, float | None]]
    ) -> float | None:
        self.say(f"{database}: (b) rebuild of every projection ...")
        done = self.child("rebuild", {"url": main}, database)
        rate = done["events"] / done["seconds"]
        self.say(f"{database}: (b) {rate:,.0f} events/s")
        read_rate: float | None = None
        try:
            log = self.child("log_read", {"url": main}, database)
            read_rate = log["events"] / log["decoded_seconds"]
            detail = f"{log['events']:,} events, pages of 2,000"
            self.raws.append(
                RawLine(
                    "notification log read (Store.read_stored, undecoded)",
                    database,
                    log["rows"] / log["stored_seconds"],
                    "rows/s",
                    detail,
                )
            )
            self.raws.append(
                RawLine(
                    "notification log read + decode (Store.read)",
                    database,
                    read_rate,
                    "events/s",
                    detail,
                )
            )
        except BenchFailure as error:
            self.failures.append(f"{database} log read: {error}")
        if "b" in self.opts.only:
            self.lines.append(
                Line(
                    "b",
                    "rebuild of every projection",
                    database,
                    rate,
                    "events/s",
                    True,
                    raw=read_rate,
                    raw_name="notification log read + decode",
                    target=self.target("rebuild", database),
                    peak_mb=done["peak_mb"],
                    detail=f"{done['events']:,} events in {done['seconds']:.1f} s; "
                    f"{', '.join(done['projections'])}",
                )
            )
            peaks.append(("b", "rebuild", done["peak_mb"]))
        return read_rate

    def workload_audit(
        self,
        database: str,
        main: str,
        read_rate: float | None,
        peaks: list[tuple[str, str, float | None]],
    ) -> None:
        folder = self.run_dir / f"bundles-{database}"
        self.say(f"{database}: (f) audit bundles: export ...")
        close = {"network": NETWORK, "period": "2024-Q1"}
        exported = self.child(
            "audit_export", {"url": main, "dir": str(folder), "close": close}, database
        )
        rate = exported["events"] / exported["seconds"]
        self.lines.append(
            Line(
                "f",
                "audit bundle export",
                database,
                rate,
                "events/s",
                True,
                raw=read_rate,
                raw_name="notification log read + decode",
                target=self.target("export", database),
                peak_mb=exported["peak_mb"],
                detail=f"{exported['networks']} bundles, {exported['events']:,} events, "
                f"{exported['bytes'] / 1e6:,.1f} MB in {exported['seconds']:.1f} s; "
                f"setup: {exported.get('closed', '')} closed",
            )
        )
        peaks.append(("f", "bundle export", exported["peak_mb"]))
        for recompute in (False, True):
            what = "with recompute" if recompute else "--no-recompute"
            self.say(f"{database}: (f) verify-bundle {what} ...")
            checked = self.child(
                "audit_verify", {"dir": str(folder), "recompute": recompute}, database
            )
            rate = checked["events"] / checked["seconds"]
            detail = f"{checked['bundles']} bundles, {checked['events']:,} events"
            if recompute:
                detail += (
                    f", {checked['decisions']:,} decisions recomputed, "
                    f"{checked['mismatches']} mismatch(es)"
                )
                raw = self._hash_floor.get(database)
            else:
                raw = checked["raw_events"] / checked["raw_seconds"]
                self._hash_floor[database] = raw
                self.raws.append(
                    RawLine(
                        "SHA-256 leaf hashes + Merkle root of the bundles' events (hashlib)",
                        database,
                        raw,
                        "events/s",
                        f"{checked['raw_events']:,} events",
                    )
                )
            self.lines.append(
                Line(
                    "f",
                    f"audit bundle verification {what}",
                    database,
                    rate,
                    "events/s",
                    True,
                    raw=raw,
                    raw_name="SHA-256 leaves + root",
                    target=self.target("verify", database),
                    peak_mb=checked["peak_mb"],
                    detail=detail + f" in {checked['seconds']:.1f} s",
                )
            )
            peaks.append(("f", f"verify {what}", checked["peak_mb"]))

    def _active_members(self, base: str, token: str) -> list[str]:
        import httpx

        response = httpx.get(
            f"{base}/api/v1/networks/{NETWORK}/members",
            params={"status": "active", "limit": 2},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        if response.status_code != 200:
            raise BenchFailure(f"listing the members answered {response.status_code}")
        members = [item["member"] for item in response.json()["items"]]
        if len(members) < 2:
            raise BenchFailure(f"{NETWORK} has fewer than two active members")
        return members

    def workload_latency(
        self, database: str, main: str, peaks: list[tuple[str, str, float | None]]
    ) -> None:
        n = self.opts.commands
        self.say(f"{database}: (c) {n} commands through the API ...")
        with Server(main, self.run_dir, self.env) as server:
            token = api_token(main)
            pair = self._active_members(server.base, token)
            timed = command_latency(
                server.base, main, token, NETWORK, (pair[0], pair[1]), n, f"{database}-{n}"
            )
            peak = server.peak_mb()
        p = {q: percentile(timed.visible, q) for q in (50, 90, 99)}
        answered = percentile(timed.answered, 99)
        raw = percentile(timed.healthz, 99)
        self.raws.append(
            RawLine(
                "GET /healthz, one client, p99",
                database,
                raw,
                "ms",
                f"{len(timed.healthz)} requests, same server and client",
            )
        )
        self.say(f"{database}: (c) p99 {p[99]:.1f} ms")
        self.lines.append(
            Line(
                "c",
                "command visible in every view, p99",
                database,
                p[99],
                "ms",
                False,
                raw=raw,
                raw_name="GET /healthz p99",
                target=self.target("latency", database),
                peak_mb=peak,
                detail=f"{n} referrals sent; p50 {p[50]:.1f} ms, p90 {p[90]:.1f} ms; "
                f"the API's answer alone p99 {answered:.1f} ms",
            )
        )
        peaks.append(("c", "server", peak))

    def workload_load(
        self, database: str, main: str, period: str, peaks: list[tuple[str, str, float | None]]
    ) -> None:
        opts = self.opts
        tool = load_tool(opts.load_tool)
        with Server(main, self.run_dir, self.env) as server:
            token = api_token(main)
            member = self._active_members(server.base, token)[0]
            coordinator = {"Cookie": sign_in(server.base, "coordinator@riverside.example")}
            as_member = {"Cookie": sign_in(server.base, MEMBER)}
            bearer = {"Authorization": f"Bearer {token}"}
            targets = [
                ("page", "dashboard", f"/n/{NETWORK}/", coordinator),
                ("page", "standings", f"/n/{NETWORK}/standings?period={period}", coordinator),
                ("page", "scorecards", f"/n/{NETWORK}/me/partners", as_member),
                (
                    "page",
                    "statement",
                    f"/n/{NETWORK}/statements?member={member}&period={period}",
                    coordinator,
                ),
                ("page", "pipeline", f"/n/{NETWORK}/referrals", coordinator),
                (
                    "API",
                    "standings",
                    f"/api/v1/networks/{NETWORK}/standings?period={period}",
                    bearer,
                ),
                ("API", "scorecards", f"/api/v1/networks/{NETWORK}/scorecards", bearer),
                (
                    "API",
                    "statement",
                    f"/api/v1/networks/{NETWORK}/members/{member}/statements/{period}",
                    bearer,
                ),
                ("API", "pipeline", f"/api/v1/networks/{NETWORK}/referrals", bearer),
            ]
            self.say(f"{database}: (d) /healthz under {opts.clients} clients ...")
            floor = load(
                tool, f"{server.base}/healthz", {}, opts.clients, opts.duration, self.run_dir
            )
            self.raws.append(
                RawLine(
                    f"GET /healthz, {opts.clients} clients, p99",
                    database,
                    floor.p99 or 0,
                    "ms",
                    f"{floor.rps:,.0f} req/s, p50 {floor.p50 or 0:.1f} ms, "
                    f"{floor.requests:,} requests",
                )
            )
            for kind, name, path, headers in targets:
                label = f"{kind} {name} under {opts.clients} clients, p99"
                try:
                    size = check_target(server.base, path, headers)
                    self.say(f"{database}: (d) {kind} {name} ({path}) ...")
                    measured = load(
                        tool, server.base + path, headers, opts.clients, opts.duration, self.run_dir
                    )
                except BenchFailure as error:
                    self.fail("d", label, database, "ms", str(error))
                    continue
                if not measured.requests:
                    # Not one answer within the run: p99 (and p50) lie beyond its duration.
                    self.say(f"{database}: (d) {kind} {name}: no answer in {opts.duration} s")
                    self.lines.append(
                        Line(
                            "d",
                            label,
                            database,
                            opts.duration * 1000.0,
                            "ms",
                            False,
                            above=True,
                            raw=floor.p99,
                            raw_name="GET /healthz p99, same load",
                            target=self.target("load", database),
                            detail=f"no request of {opts.clients} clients answered within "
                            f"{opts.duration} s; {path} ({_bytes(size)})",
                        )
                    )
                    continue
                errors = f", {measured.errors:,} errors" if measured.errors else ""
                self.say(
                    f"{database}: (d) {kind} {name}: {measured.rps:,.1f} req/s, "
                    f"p99 {measured.p99 or 0:,.0f} ms{errors}"
                )
                self.lines.append(
                    Line(
                        "d",
                        label,
                        database,
                        measured.p99,
                        "ms",
                        False,
                        raw=floor.p99,
                        raw_name="GET /healthz p99, same load",
                        target=self.target("load", database),
                        detail=f"{measured.rps:,.1f} req/s ({floor.rps:,.0f} for /healthz), "
                        f"p50 {measured.p50 or 0:,.1f} ms, {measured.requests:,} requests"
                        f"{errors}; {path} ({_bytes(size)})",
                    )
                )
            peak = server.peak_mb()
        for line in self.lines:
            if line.workload == "d" and line.database == database and line.peak_mb is None:
                line.peak_mb = peak
        peaks.append(("d", "server", peak))

    def workload_close(
        self,
        database: str,
        closing: str,
        scratch: str,
        peaks: list[tuple[str, str, float | None]],
    ) -> None:
        members = self.opts.members
        source = self.close_file()
        self.say(f"{database}: (e) setup: import and views of a {members:,}-member network ...")
        setup = self.child("close_setup", {"url": closing, "jsonl": str(source)}, database)
        if database == "sqlite":
            scratch = str(Path(scratch).with_name("close-scratch.db"))
        self.say(f"{database}: (e) close-period ...")
        done = self.child(
            "close",
            {"url": closing, "network": NETWORK, "period": "2024-Q1", "scratch": scratch},
            database,
        )
        self.raws.append(
            RawLine(
                "insert of the close's events, one transaction",
                database,
                done["raw_seconds"],
                "s",
                f"{done['written']:,} events, executemany",
            )
        )
        self.say(f"{database}: (e) {done['seconds']:.2f} s")
        self.lines.append(
            Line(
                "e",
                f"close of {done['members']:,} members",
                database,
                done["seconds"],
                "s",
                False,
                raw=done["raw_seconds"],
                raw_name="insert of its events",
                target=self.target("close", database),
                peak_mb=done["peak_mb"],
                detail=f"{done['members']:,} tier decisions, {done['statements']:,} statements, "
                f"{done['written']:,} events written, on {done['network_events']:,} events "
                f"(setup: import {setup['events'] / setup['import_seconds']:,.0f} events/s, "
                f"views {setup['events'] / setup['catch_up_seconds']:,.0f} events/s)",
            )
        )
        peaks.append(("e", "close-period", done["peak_mb"]))

    # -------------------------------------------------------------- output

    def finish(self) -> None:
        opts = self.opts
        # Workload by workload, each figure on SQLite beside the same on PostgreSQL.
        order = {name: i for i, name in reversed(list(enumerate(ln.name for ln in self.lines)))}
        self.lines.sort(key=lambda ln: (ln.workload, order[ln.name], ln.database != "sqlite"))
        print(print_report(self.lines, self.raws))
        if self.failures:
            print("\nCould not measure:", file=sys.stderr)
            for failure in self.failures:
                print(f"  {failure}", file=sys.stderr)
        when = datetime.now(UTC)
        command = self.command_line
        if opts.json is not None:
            opts.json.write_text(
                json.dumps(
                    {
                        "date": when.isoformat(),
                        "command": command,
                        "lines": [line.as_dict() for line in self.lines],
                        "raw": [raw.__dict__ for raw in self.raws],
                        "failures": self.failures,
                    },
                    indent=2,
                )
            )
        if not opts.no_output:
            output: Path = opts.output
            chart = output.with_suffix(".svg")
            existing = output.read_text() if output.exists() else None
            title = (
                f"partnerledger benchmarks, {when:%Y-%m-%d}: {opts.events:,} events, "
                f"{opts.members:,} members, {opts.clients} clients"
            )
            output.parent.mkdir(parents=True, exist_ok=True)
            chart.write_text(svg_chart(self.lines, title))
            output.write_text(
                markdown(
                    lines=self.lines,
                    raws=self.raws,
                    info=machine(
                        self.postgres_version,
                        self.tool,
                        (self.load_at_start, os.getloadavg()[0]),
                    ),
                    when=when,
                    command=command,
                    sizes=self.sizes,
                    chart=chart.name,
                    notes=notes_of(existing),
                    elapsed=time.monotonic() - self.started,
                )
            )
            self.say(f"wrote {output} and {chart}")
        if not opts.keep:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        self.say("done")


def _terminated(signum: int, frame: object) -> None:
    # As for Ctrl-C: unwind, so that the running workload and server are stopped and
    # the PostgreSQL schemas dropped.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    opts = parse_args(args)
    signal.signal(signal.SIGTERM, _terminated)
    bench = Bench(opts)
    bench.command_line = "python -m benchmarks" + (" " + shlex.join(args) if args else "")
    try:
        return bench.run()
    except BenchFailure as error:
        print(f"benchmarks: {error}", file=sys.stderr)
        return 1
    finally:
        if not opts.keep:
            shutil.rmtree(bench.run_dir, ignore_errors=True)
