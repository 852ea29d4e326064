"""Pages and API answers do work in proportion to their answer, not to the history.

For each page and endpoint (dashboard, standings, scorecards, statement and
the pipeline, as pages and through the API) the test counts the SQL
statements one request runs and times it, first on a small history, then
after ten times more history (older periods of the same network, and
another network): the statements must be the same, the time must not grow
beyond a generous factor, and no request may read the log itself. Then the
statements each request ran are explained on a store with many rows (and
ANALYZE on PostgreSQL): every one that reads a large view table must use an
index, never a full scan of it.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from partnerledger import Database, Ledger, Store
from partnerledger.accounts import Accounts
from partnerledger.sql import PostgresBackend, SqlBackend, SQLiteBackend, connect
from partnerledger.web import referrals
from partnerledger.web.app import create_app
from webkit import PASSWORD, Browser, command

NETWORK = "riverside"
PERIOD = "2025-Q2"
MEMBERS = [f"m-{i}" for i in range(6)]
#: Referrals of the small history: 5 in each status, more than a page shows (below).
SMALL = 30
#: Cards per pipeline column and items per API page in these tests (small, so that the
#: small history fills every page already and both histories answer the same size).
PAGE = 4
COORDINATOR = "coord@riverside.example"
MEMBER = "m0@riverside.example"  # acts for m-0

PAGES = {
    "dashboard page": ("coordinator", f"/n/{NETWORK}/"),
    "standings page": ("coordinator", f"/n/{NETWORK}/standings?period={PERIOD}"),
    "scorecards page": ("member", f"/n/{NETWORK}/me/partners"),
    "statement page": ("coordinator", f"/n/{NETWORK}/statements?member=m-1&period={PERIOD}"),
    "pipeline page": ("coordinator", f"/n/{NETWORK}/referrals"),
    "standings API": ("token", f"/api/v1/networks/{NETWORK}/standings?period={PERIOD}"),
    "scorecards API": ("token", f"/api/v1/networks/{NETWORK}/scorecards?limit={PAGE}"),
    "statement API": ("token", f"/api/v1/networks/{NETWORK}/members/m-1/statements/{PERIOD}"),
    "pipeline API": ("token", f"/api/v1/networks/{NETWORK}/referrals?limit={PAGE}"),
}
#: The view tables that grow with the history (and the event store's).
LARGE = (
    "partnerledger_pipeline",
    "partnerledger_trail",
    "partnerledger_standings",
    "partnerledger_standing_counts",
    "partnerledger_standing_members",
    "partnerledger_scorecard_pairs",
    "partnerledger_scorecard_flows",
    "partnerledger_scorecard_referrals",
    "partnerledger_ledger_entries",
    "stored_events",
    "partnerledger_events",
)


# ------------------------------------------------------------------ history


def _referrals(network: str, prefix: str, start: datetime, count: int) -> list[Any]:
    """``count`` referrals between the members, a day apart, in every status."""
    found: list[Any] = []
    for i in range(count):
        at = start + timedelta(days=i % 80, hours=i % 7)
        slug = f"{prefix}-{i}"
        sender, receiver = MEMBERS[i % 6], MEMBERS[(i + 1 + i // 6) % 6]
        if sender == receiver:
            receiver = MEMBERS[(i + 2) % 6]
        found.append(command("referral.sent", network, referral=slug, from_member=sender,
                             to_member=receiver, customer=f"Customer {prefix} {i}",
                             occurred_at=at))  # fmt: skip
        step = i % 6
        if step == 1:
            found.append(command("referral.declined", network, referral=slug, occurred_at=at))
        if step >= 2:
            found.append(command("referral.accepted", network, referral=slug, occurred_at=at))
        if step == 3:
            found.append(command("referral.lost", network, referral=slug, occurred_at=at))
        if step >= 4:
            found.append(command("referral.converted", network, referral=slug,
                                 deal_value="1000.00", currency="USD", occurred_at=at))  # fmt: skip
        if step == 5:
            found.append(command("referral.reversed", network, referral=slug, amount="100.00",
                                 reason="refund", occurred_at=at))  # fmt: skip
    return found


def _network(network: str, created: datetime) -> list[Any]:
    found = [
        command("network.created", network, name=network.title(), currency="USD",
                period="quarter", occurred_at=created,
                tiers=[{"name": "bronze", "threshold": "0"},
                       {"name": "silver", "threshold": "20"}]),
        command("plugin.enabled", network, plugin="points", occurred_at=created),
        command("plugin.enabled", network, plugin="threshold-tiers", occurred_at=created),
        command("plugin.enabled", network, plugin="fees", occurred_at=created,
                settings={"default_kind": "referral_fee", "default_fee": "50.00"}),
    ]  # fmt: skip
    found += [
        command("member.joined", network, member=m, name=f"Member {m}", category="trade",
                occurred_at=created)
        for m in MEMBERS
    ]  # fmt: skip
    return found


def record(url: str, commands: Sequence[Any]) -> None:
    with Store(Database.parse(url)) as store:
        ledger = Ledger(store)
        for start in range(0, len(commands), 500):
            ledger.execute(*commands[start : start + 500])


def small_history(url: str) -> None:
    """Riverside in 2024-Q4 and 2025-Q2: members, and referrals of the period shown enough
    to fill every page (each pipeline column, a page of the referral list) already."""
    record(url, _network(NETWORK, datetime(2024, 10, 1, tzinfo=UTC)))
    record(url, _referrals(NETWORK, "now", datetime(2025, 4, 2, 9, tzinfo=UTC), SMALL))
    with Accounts(Database.parse(url)) as accounts:
        for email, role, member in ((COORDINATOR, "coordinator", None), (MEMBER, "member", "m-0")):
            user = accounts.create_user(email, email.split("@")[0], PASSWORD)
            accounts.grant(user.id, NETWORK, role, member)


def more_history(url: str) -> None:
    """Ten times the history: riverside's earlier quarters, and another network."""
    record(url, _referrals(NETWORK, "old", datetime(2024, 10, 2, 9, tzinfo=UTC), 8 * SMALL))
    record(url, _network("harbor", datetime(2024, 10, 1, tzinfo=UTC)))
    record(url, _referrals("harbor", "h", datetime(2024, 10, 2, 9, tzinfo=UTC), 2 * SMALL))


# ---------------------------------------------------------------- measuring


class Statements:
    """Every statement the views' connections run (the test's own instrument)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[Any, ...]]] = []
        self.log_reads = 0
        self.on = False

    def note(self, sql: str, params: Sequence[Any]) -> None:
        if self.on:
            self.seen.append((sql, tuple(params)))


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Statements:
    monkeypatch.setattr(referrals, "COLUMN_LIMIT", PAGE)
    found = Statements()
    for cls in (SQLiteBackend, PostgresBackend):
        original = cls.execute

        def execute(
            self: SqlBackend, sql: str, params: Sequence[Any] = (), _o: Any = original
        ) -> Any:
            found.note(sql, params)
            return _o(self, sql, params)

        monkeypatch.setattr(cls, "execute", execute)
    for name in ("read", "read_stored", "stream"):
        original = getattr(Store, name)

        def counted(
            self: Store, *args: Any, _o: Any = original, _n: str = name, **kwargs: Any
        ) -> Any:
            if found.on:
                found.log_reads += _n != "stream"
                found.seen.append((f"Store.{_n}", ()))
            return _o(self, *args, **kwargs)

        monkeypatch.setattr(Store, name, counted)
    return found


@contextmanager
def clients(url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A coordinator's and a member's sessions and an API token, on one app."""
    with Accounts(Database.parse(url)) as accounts:
        user = accounts.by_email(COORDINATOR)
        assert user is not None
        token, _ = accounts.create_token(user.id, "scaling")
    app = create_app(url, secret="s", sessions=tmp_path / "sessions")
    with TestClient(app) as client:
        web = Browser(client)
        web.sign_in(COORDINATOR)
        yield {"client": client, "web": web, "token": token}


def measure(
    url: str, tmp_path: Path, statements: Statements, repeat: int = 7
) -> dict[str, tuple[list[str], float, int]]:
    """Per target: the statements one request runs, its median time, and log reads."""
    found: dict[str, tuple[list[str], float, int]] = {}
    with clients(url, tmp_path) as c:
        client: TestClient[Any] = c["client"]
        bearer = {"Authorization": f"Bearer {c['token']}"}
        for role in ("coordinator", "token", "member"):
            if role == "member":
                client.cookies.clear()
                c["web"].sign_in(MEMBER)
            for name, (who, path) in PAGES.items():
                if who != role:
                    continue
                headers = bearer if who == "token" else {}
                assert client.get(path, headers=headers).status_code == 200, name  # warm
                statements.seen, statements.log_reads, statements.on = [], 0, True
                response = client.get(path, headers=headers)
                statements.on = False
                assert response.status_code == 200, (name, response.text[:300])
                # An IN list as long as the answer (the cards shown) is one statement all the same.
                shape = [re.sub(r"IN \(\?(, \?)*\)", "IN (...)", sql) for sql, _ in statements.seen]
                reads = statements.log_reads
                times = []
                for _ in range(repeat):
                    began = time.perf_counter()
                    client.get(path, headers=headers)
                    times.append(time.perf_counter() - began)
                found[name] = (shape, statistics.median(times), reads)
                found[f"{name} params"] = (
                    [json.dumps([sql, [str(p) for p in ps]]) for sql, ps in statements.seen],
                    0.0,
                    0,
                )
    return found


# ------------------------------------------------------------------ EXPLAIN


def _fill(db: SqlBackend, table: str, copies: int) -> None:
    """Many rows of other networks in a view table: copies of riverside's, renamed."""
    if db.kind == "sqlite":
        _, info = db.execute(f"PRAGMA table_info({table})")
        columns = [str(row[1]) for row in info]
    else:
        assert isinstance(db, PostgresBackend)
        _, info = db.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            (db.schema, table),
        )
        columns = [str(row[0]) for row in info]
    if "network" not in columns:
        return
    chosen = ", ".join(columns)
    renamed = ", ".join("'filler-' || g.n" if c == "network" else f"t.{c}" for c in columns)
    series = (
        "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?) "
        "SELECT n FROM s)"
        if db.kind == "sqlite"
        else "(SELECT generate_series(1, ?) AS n)"
    )
    db.execute(
        f"INSERT INTO {db.table(table)} ({chosen}) SELECT {renamed} "
        f"FROM {db.table(table)} t CROSS JOIN {series} g WHERE t.network = ?",
        (copies, NETWORK),
    )


def _plan(db: SqlBackend, sql: str, params: list[str]) -> list[str]:
    """The tables the statement reads in full (no index): empty when every read uses one."""
    if db.kind == "sqlite":
        _, rows = db.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return [
            str(row[3]) for row in rows
            if str(row[3]).startswith("SCAN ") and " INDEX " not in str(row[3])
            and any(f"SCAN {t}" in str(row[3]) for t in LARGE)
        ]  # fmt: skip
    _, rows = db.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
    plan = rows[0][0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    full: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in LARGE:
            full.append(f"Seq Scan on {node['Relation Name']}")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return full


def test_pages_do_the_same_statements_whatever_the_history_through_indexes(
    database_url: str, tmp_path: Path, statements: Statements
) -> None:
    """The statements and time of each page, small history then ten times more; then
    every statement that reads a large view table, explained: it uses an index."""
    small_history(database_url)
    before = measure(database_url, tmp_path, statements)
    more_history(database_url)
    found = after = measure(database_url, tmp_path, statements)
    for name in PAGES:
        shape_before, time_before, reads_before = before[name]
        shape_after, time_after, reads_after = after[name]
        assert reads_before == reads_after == 0, f"{name} read the log"
        assert shape_after == shape_before, f"{name}: the statements changed with the history"
        # Generous: a shared, noisy machine (medians of several requests, and 30 ms for a
        # scheduler's hiccup on answers of a few ms); a page that folded the history
        # (ten times the rows) would still be far beyond it.
        assert time_after < 3 * time_before + 0.03, (name, time_before, time_after)
    db = connect(Database.parse(database_url))
    try:
        for table in LARGE:
            if table not in ("stored_events", "partnerledger_events"):
                _fill(db, table, 400)
        if db.kind == "postgresql":
            # Many more stored events (other aggregates), so that an index is worth using.
            events = db.table("partnerledger_events")
            db.execute(
                f"INSERT INTO {events} (originator_id, originator_version, topic, state) "
                f"SELECT gen_random_uuid(), originator_version, topic, state FROM {events} "
                "CROSS JOIN generate_series(1, 40)"
            )
            db.execute(f"ANALYZE {events}")
            for table in LARGE[:-2]:
                db.execute(f"ANALYZE {db.table(table)}")
        explained, full = 0, []
        for name in PAGES:
            for text in found[f"{name} params"][0]:
                sql, params = json.loads(text)
                if not sql.lstrip().upper().startswith("SELECT") or not any(
                    t in sql for t in LARGE
                ):
                    continue
                typed: list[Any] = [int(p) if p.isdigit() else p for p in params]
                scans = _plan(db, sql, typed)
                if scans:
                    full.append((name, sql, scans))
                explained += 1
        assert full == []
        assert explained >= len(PAGES)
    finally:
        db.close()


def _all_pages(
    client: TestClient[Any], path: str, headers: dict[str, str], limit: int
) -> list[Any]:
    items: list[Any] = []
    cursor = ""
    for _ in range(100):
        joiner = "&" if "?" in path else "?"
        response = client.get(f"{path}{joiner}limit={limit}&cursor={cursor}", headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        if page["next"] is None:
            return items
        cursor = page["next"]
    raise AssertionError("no last page")


def test_small_pages_add_up_to_the_whole_list(database_url: str, tmp_path: Path) -> None:
    small_history(database_url)
    with clients(database_url, tmp_path) as c:
        client: TestClient[Any] = c["client"]
        bearer = {"Authorization": f"Bearer {c['token']}"}
        for path in (
            f"/api/v1/networks/{NETWORK}/scorecards",
            f"/api/v1/networks/{NETWORK}/scorecards?member=m-2",
            f"/api/v1/networks/{NETWORK}/referrals",
            f"/api/v1/networks/{NETWORK}/referrals?status=converted",
            f"/api/v1/networks/{NETWORK}/referrals?member=m-3&status=sent",
        ):
            whole = client.get(f"{path}{'&' if '?' in path else '?'}limit=200", headers=bearer)
            assert whole.status_code == 200 and whole.json()["next"] is None
            expected = whole.json()["items"]
            assert expected, path
            got = _all_pages(client, path, bearer, 4)
            # Scorecards carry "now" (as_of): compare them without it.
            for item in (*expected, *got):
                item.pop("as_of", None)
            assert got == expected, path
        referrals = client.get(f"/api/v1/networks/{NETWORK}/referrals?limit=200", headers=bearer)
        sent = [r["referral"] for r in referrals.json()["items"]]
        assert sent == [f"now-{i}" for i in range(SMALL)]  # in the order sent
        pairs = client.get(f"/api/v1/networks/{NETWORK}/scorecards?limit=200", headers=bearer)
        keys = [(s["member"], s["partner"]) for s in pairs.json()["items"]]
        assert keys == sorted(keys) and len(keys) == len(set(keys)) == 15
