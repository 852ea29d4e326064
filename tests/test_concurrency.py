"""Many clients acting on the same referral, agreement and period at once, on SQLite and PostgreSQL.

The clients are real: 16 threads with their own HTTP connections to a real
``partnerledger serve --workers 2`` (two processes deciding at once) on a
free loopback port, and ``partnerledger`` command lines run as processes
released at the same moment. After each race:

* every answer is a success or a 409 problem document naming the field and
  the reason (a CLI refusal: exit 1 and ``Error: field: reason``), never a
  5xx or a traceback;
* one command wins per version: the aggregate's stream holds exactly the
  events the winners were told about, versions without gaps;
* the log is a serial order of the winners: exported and imported into an
  empty store, every command is accepted again, in log order;
* the domain holds: one conversion per referral, one ledger entry per
  conversion, one acceptance per party, nothing after a termination, one
  close per period, statements that balance;
* the views equal a rebuild of the log.
"""

from __future__ import annotations

import io
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from conftest import _PG_PROBLEM, IN_CI, PG_URL
from partnerledger import Database, Event, Ledger, Store
from partnerledger.commands import Command, convert_command
from partnerledger.domain import agreement_id, closing_id, referral_id
from partnerledger.errors import VersionConflict
from partnerledger.jsonl import export_lines, import_lines
from partnerledger.periods import Calendar
from partnerledger.projection import Projector
from partnerledger.views import ledger as ledger_view
from servekit import Server, cli_at_once, in_threads, serving, tokens
from test_projections import assert_same_views, dumps, rebuilt_views
from webkit import START, World, build_world

THREADS = 16
NET = "riverside"
FEE_TERMS = {
    "scope": "Referrals of legal and tax clients",
    "compensation": {"kind": "referral_fee", "amount": "250"},
}
pytestmark = pytest.mark.slow


@dataclass
class Setup:
    """A world, its tokens, and a server with two worker processes over it."""

    database_url: str
    world: World
    server: Server
    tokens: dict[str, str]
    scratch: Path
    counter: Iterator[int]

    def slug(self, prefix: str) -> str:
        return f"{prefix}-{next(self.counter)}"

    def client(self, who: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.server.url}/api/v1",
            headers={"Authorization": f"Bearer {self.tokens[who]}"},
            timeout=60,
        )

    def post(self, who: str, path: str, body: Any = None) -> httpx.Response:
        with self.client(who) as client:
            return client.post(path, json=body)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    scratch = tmp_path_factory.mktemp(f"race-{request.param}")
    schema = None
    if request.param == "sqlite":
        url = str(scratch / "ledger.db")
    else:
        if _PG_PROBLEM:
            if IN_CI:
                pytest.fail(f"CI=true and {_PG_PROBLEM}")
            pytest.skip(_PG_PROBLEM)
        schema = "c_" + uuid.uuid4().hex[:12]
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"create schema {schema}")
        url = f"{PG_URL}?schema={schema}"
    try:
        world = build_world(url)
        with Store(Database.parse(url)) as store:
            Ledger(store).execute(
                command("plugin.enabled", plugin="fees"),
                command("agreement.proposed", agreement="a-fee", kind="referral",
                        parties=["ann-law", "bob-tax"], terms=FEE_TERMS),
                command("agreement.accepted", agreement="a-fee", party="ann-law"),
                command("agreement.accepted", agreement="a-fee", party="bob-tax"),
                # A conversion in 2025-Q1, for the statements of the close.
                command("referral.accepted", referral="r-1"),
                command("referral.converted", referral="r-1", deal_value="1000",
                        currency="USD"),
            )  # fmt: skip
        keys = tokens(url, {"coordinator": world.coordinator, "ann": world.member,
                            "bob": world.other_member})  # fmt: skip
        with serving(url, scratch, workers=2) as server:
            yield Setup(url, world, server, keys, scratch, itertools.count(1))
            assert "Traceback" not in server.errors(), server.errors()
    finally:
        if schema is not None:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f"drop schema {schema} cascade")


def command(type_: str, **fields: Any) -> Command:
    fields.setdefault("occurred_at", START)
    return convert_command({"type": type_, "network": NET, "actor": "setup", **fields})


# ------------------------------------------------------------------ checks


def race(setup: Setup, calls: list[tuple[str, str, Any]]) -> list[httpx.Response]:
    """Each (who, path, body) POSTed by its own thread and connection, all released at once."""
    clients = [setup.client(who) for who, _, _ in calls]
    try:
        for client in clients:  # connected before the race: the race is between the requests
            assert client.get("/networks").status_code == 200

        def post(index: int) -> httpx.Response:
            _, path, body = calls[index]
            return clients[index].post(path, json=body)

        results = in_threads(len(calls), post)
    finally:
        for client in clients:
            client.close()
    failed = [r for r in results if not isinstance(r, httpx.Response)]
    assert failed == []
    return results


def answered(responses: list[httpx.Response], fields: set[str]) -> list[dict[str, Any]]:
    """Every answer is 201, 200 (a repeat) or a 409 problem naming one of ``fields``; the 409s."""
    refusals = []
    for response in responses:
        assert response.status_code in (200, 201, 409), response.text
        if response.status_code == 409:
            assert response.headers["content-type"].startswith("application/problem+json")
            body = response.json()
            [error] = body["errors"]
            assert error["field"] in fields, body
            assert error["reason"] and error["code"] in ("conflict", "invalid_transition"), body
            refusals.append(body)
    return refusals


def stream(setup: Setup, aggregate: Any) -> list[Event]:
    with Store(Database.parse(setup.database_url)) as store:
        return store.stream(aggregate)


def winners(responses: list[httpx.Response]) -> list[tuple[str, str]]:
    """(type, command_id) of each event a client was told was recorded (201)."""
    found = []
    for response in responses:
        if response.status_code == 201:
            event = response.json()["event"]
            assert response.json()["recorded"] is True
            found.append((event["type"], event["command_id"]))
    return found


def assert_serial_and_rebuilt(setup: Setup) -> None:
    """The log replays in an empty store (a serial order), and the views equal a rebuild."""
    with Store(Database.parse(setup.database_url)) as store:
        lines = io.BytesIO()
        count = export_lines(store, lines)
        fresh = setup.scratch / f"serial-{uuid.uuid4().hex}.db"
        with Store(Database.parse(str(fresh))) as empty:
            report = import_lines(Ledger(empty), lines.getvalue().splitlines())
            assert report.rejected == [], report.rejected[:3]
            assert report.recorded == count
            again = io.BytesIO()
            export_lines(empty, again)
            assert again.getvalue() == lines.getvalue()
        with Projector(store) as projector:
            projector.catch_up()
            assert_same_views(dumps(projector), rebuilt_views(store))


def send(setup: Setup, referral: str, *, accept: bool) -> None:
    body = {"referral": referral, "from_member": "ann-law", "to_member": "bob-tax",
            "customer": f"Customer of {referral}"}  # fmt: skip
    assert setup.post("coordinator", f"/networks/{NET}/referrals", body).status_code == 201
    if accept:
        path = f"/networks/{NET}/referrals/{referral}/accept"
        assert setup.post("bob", path).status_code == 201


def ledger_entries(setup: Setup, source: str) -> list[ledger_view.Entry]:
    with Store(Database.parse(setup.database_url)) as store, Projector(store) as projector:
        projector.catch_up()
        return [e for e in ledger_view.entries(projector.db, NET) if e.source == source]


# ------------------------------------------------------------------ referrals


def test_accept_decline_and_convert_of_one_referral_at_once(setup: Setup) -> None:
    referral = setup.slug("r-answer")
    send(setup, referral, accept=False)
    base = f"/networks/{NET}/referrals/{referral}"
    moves = [("accept", None), ("decline", {"reason": "busy"}),
             ("convert", {"deal_value": "500.00"})]  # fmt: skip
    calls = []
    for index in range(THREADS):
        action, body = moves[index % len(moves)]
        calls.append(("bob" if index % 2 else "coordinator", f"{base}/{action}", body))

    responses = race(setup, calls)

    refusals = answered(responses, {"referral"})
    events = stream(setup, referral_id(NET, referral))
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
    won = winners(responses)
    assert sorted(won) == sorted((e.type, e.command_id) for e in events[1:])
    assert len(refusals) == THREADS - len(won)
    types = [e.type for e in events[1:]]
    assert types in (["referral.declined"], ["referral.accepted"],
                     ["referral.accepted", "referral.converted"])  # fmt: skip
    assert_serial_and_rebuilt(setup)


def test_converting_one_referral_at_once_records_one_conversion_and_one_entry(
    setup: Setup,
) -> None:
    referral = setup.slug("r-convert")
    send(setup, referral, accept=True)
    path = f"/networks/{NET}/referrals/{referral}/convert"
    same = {"deal_value": "900.00", "command_id": f"convert-{referral}",
            "occurred_at": datetime.now(UTC).isoformat()}  # fmt: skip
    calls = [
        ("bob" if i % 2 else "coordinator", path,
         same if i % 2 else {"deal_value": f"{100 + i}.00"})
        for i in range(THREADS)
    ]  # fmt: skip

    responses = race(setup, calls)

    answered(responses, {"referral"})
    events = stream(setup, referral_id(NET, referral))
    conversions = [e for e in events if e.type == "referral.converted"]
    assert len(conversions) == 1
    [won] = winners(responses)
    assert won == ("referral.converted", conversions[0].command_id)
    repeats = [r.json() for r in responses if r.status_code == 200]
    for repeat in repeats:  # an idempotent repeat answers with the one conversion
        assert repeat["recorded"] is False
        assert repeat["event"]["command_id"] == conversions[0].command_id == same["command_id"]
    # One fee entry for the one conversion, nothing counted twice.
    entries = ledger_entries(setup, conversions[0].command_id)
    assert [(e.member, e.kind, e.amount) for e in entries] == [("ann-law", "referral_fee", 250)]
    assert_serial_and_rebuilt(setup)


def test_cli_processes_converting_one_referral_at_once(setup: Setup) -> None:
    referral = setup.slug("r-cli")
    send(setup, referral, accept=True)
    runs = cli_at_once(
        [
            [
                "--database",
                setup.database_url,
                "referral",
                "convert",
                NET,
                referral,
                "--value",
                f"{200 + i}.00",
                "--currency",
                "USD",
                "--actor",
                f"clerk{i}",
            ]
            for i in range(4)
        ],
        setup.scratch,
    )
    done = [run for run in runs if run.returncode == 0]
    refused = [run for run in runs if run.returncode != 0]
    assert len(done) == 1, [(r.returncode, r.stderr) for r in runs]
    assert "Recorded referral.converted" in done[0].stdout
    for run in refused:
        assert run.returncode == 1, run.stderr
        assert "Traceback" not in run.stderr
        assert run.stderr.startswith("Error: referral: ") and "converted" in run.stderr
    conversions = [
        e for e in stream(setup, referral_id(NET, referral)) if e.type == "referral.converted"
    ]
    assert len(conversions) == 1
    assert len(ledger_entries(setup, conversions[0].command_id)) == 1
    assert_serial_and_rebuilt(setup)


# ------------------------------------------------------------------ agreements


def propose(setup: Setup, agreement: str, *, accepted: bool) -> None:
    body = {"agreement": agreement, "kind": "referral", "parties": ["ann-law", "bob-tax"],
            "terms": FEE_TERMS}  # fmt: skip
    assert setup.post("coordinator", f"/networks/{NET}/agreements", body).status_code == 201
    if accepted:
        for who in ("ann", "bob"):
            path = f"/networks/{NET}/agreements/{agreement}/accept"
            assert setup.post(who, path).status_code == 201


def test_both_parties_accepting_at_once_are_both_recorded(setup: Setup) -> None:
    # Eight agreements, each accepted by its two parties at the same moment.
    agreements = [setup.slug("a-accept") for _ in range(THREADS // 2)]
    for agreement in agreements:
        propose(setup, agreement, accepted=False)
    calls = [
        (who, f"/networks/{NET}/agreements/{agreement}/accept", None)
        for agreement in agreements
        for who in ("ann", "bob")
    ]

    responses = race(setup, calls)

    # A party's acceptance that lost the race to the other party's is decided
    # again on the new version, where it is still valid: every one is recorded.
    assert [r.status_code for r in responses] == [201] * len(calls), [
        r.text for r in responses if r.status_code != 201
    ]
    with httpx.Client(headers={"Authorization": f"Bearer {setup.tokens['coordinator']}"}) as c:
        for agreement in agreements:
            events = stream(setup, agreement_id(NET, agreement))
            accepted = [e.command.party for e in events if e.type == "agreement.accepted"]  # type: ignore[attr-defined]
            assert sorted(accepted) == ["ann-law", "bob-tax"]
            found = c.get(f"{setup.server.url}/api/v1/networks/{NET}/agreements/{agreement}")
            assert found.json()["status"] == "active"
    assert sorted(winners(responses)) == sorted(
        (e.type, e.command_id)
        for agreement in agreements
        for e in stream(setup, agreement_id(NET, agreement))
        if e.type == "agreement.accepted"
    )
    assert_serial_and_rebuilt(setup)


def test_amendments_against_a_termination_at_once(setup: Setup) -> None:
    agreement = setup.slug("a-end")
    propose(setup, agreement, accepted=True)
    base = f"/networks/{NET}/agreements/{agreement}"
    calls = []
    for index in range(THREADS):
        if index % 2:
            terms = {
                **FEE_TERMS,
                "compensation": {"kind": "referral_fee", "amount": f"{300 + index}"},
            }
            calls.append(("coordinator", f"{base}/amend",
                          {"terms": terms, "accepted_by": ["ann-law", "bob-tax"]}))  # fmt: skip
        else:
            calls.append(("coordinator", f"{base}/terminate", {"reason": f"ended by {index}"}))

    responses = race(setup, calls)

    refusals = answered(responses, {"agreement"})
    events = stream(setup, agreement_id(NET, agreement))
    tail = [e.type for e in events[3:]]  # after the proposal and the two acceptances
    assert sorted(winners(responses)) == sorted((e.type, e.command_id) for e in events[3:])
    # A serial order: amendments, then one termination, and nothing after it.
    assert tail.count("agreement.terminated") == 1
    assert tail[-1] == "agreement.terminated"
    assert set(tail[:-1]) <= {"agreement.amended"}
    # An amendment is never decided again on terms its author did not see: a
    # lost race is a 409 conflict on the agreement, with the versions.
    conflicts = [r for r in refusals if r["errors"][0]["code"] == "conflict"]
    for conflict in conflicts:
        assert "was changed by another command at the same time" in conflict["errors"][0]["reason"]
    assert_serial_and_rebuilt(setup)


# ------------------------------------------------------------------ periods


def test_two_closes_of_one_period_at_once(setup: Setup) -> None:
    runs = cli_at_once(
        [
            [
                "--database",
                setup.database_url,
                "close-period",
                "--network",
                NET,
                "--period",
                "2025-Q1",
                "--at",
                "2025-04-02T00:00:00Z",
                "--actor",
                f"coord{i}",
            ]
            for i in range(3)
        ],
        setup.scratch,
    )
    done = [run for run in runs if run.returncode == 0]
    assert len(done) == 1, [(r.returncode, r.stderr) for r in runs]
    for run in runs:
        if run.returncode != 0:
            assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
            assert run.stderr.startswith("Error: period: "), run.stderr
    events = stream(setup, closing_id(NET, "2025-Q1"))
    assert [e.type for e in events].count("period.closed") == 1
    decided = [e.command.member for e in events if e.type == "tier.decided"]  # type: ignore[attr-defined]
    assert sorted(decided) == sorted(set(decided)) == ["ann-law", "bob-tax"]
    statements = [e.command for e in events if e.type == "statement.closed"]
    members = [s.member for s in statements]  # type: ignore[attr-defined]
    assert "ann-law" in members and len(members) == len(set(members))
    # The statements balance, and the ledger shows what the close recorded.
    with Store(Database.parse(setup.database_url)) as store, Projector(store) as projector:
        projector.catch_up()
        network = Ledger(store).unit_of_work().network(NET)
        period = Calendar.of(network).parse("2025-Q1")
        for recorded in statements:
            shown = ledger_view.statement(projector.db, network, recorded.member, period)  # type: ignore[attr-defined]
            assert shown.closed
            assert (shown.opening, shown.closing) == (recorded.opening, recorded.closing)  # type: ignore[attr-defined]
            assert shown.closing == shown.opening + sum(e.amount for e in shown.entries)
            assert len(shown.entries) == len(recorded.entries)  # type: ignore[attr-defined]
    assert_serial_and_rebuilt(setup)


# ------------------------------------------------------------------ in-process


def test_parties_accepting_in_threads_are_decided_again_after_a_version_conflict(
    database_url: str,
) -> None:
    """Threads of one process (no HTTP in between): the appends really collide, every round.

    Both acceptances of each agreement are recorded, the loser's decided again
    on the winner's version; an amendment (never decided again) that loses
    gets the conflict, naming the agreement and the versions.
    """
    build_world(database_url)
    parties = ["ann-law", "bob-tax"]
    setup = [command("agreement.proposed", agreement=f"a-{i}", kind="referral",
                     parties=parties, terms=FEE_TERMS) for i in range(4)]  # fmt: skip
    with Store(Database.parse(database_url)) as store:
        Ledger(store).execute(*setup)
    commands = [
        command("agreement.accepted", agreement=f"a-{i}", party=party, actor=party)
        for i in range(4)
        for party in ("ann-law", "bob-tax")
    ]
    stores = [Store(Database.parse(database_url)) for _ in commands]
    try:
        results = in_threads(len(commands), lambda i: Ledger(stores[i]).execute(commands[i]))
    finally:
        for opened in stores:
            opened.close()
    assert [type(r).__name__ for r in results] == ["Outcome"] * len(commands), results
    with Store(Database.parse(database_url)) as store:
        for i in range(4):
            events = store.stream(agreement_id(NET, f"a-{i}"))
            assert [e.type for e in events] == ["agreement.proposed", *["agreement.accepted"] * 2]
            assert Ledger(store).unit_of_work().agreement(NET, f"a-{i}", "agreement").status == (
                "active"
            )
        # Amendments of one agreement at once: one wins, the others are refused
        # with the conflict (their terms were chosen on a version now gone).
        terms = [{**FEE_TERMS, "compensation": {"kind": "referral_fee", "amount": f"{300 + i}"}}
                 for i in range(6)]  # fmt: skip
        amendments = [command("agreement.amended", agreement="a-0", terms=t,
                              accepted_by=["ann-law", "bob-tax"]) for t in terms]  # fmt: skip
    stores = [Store(Database.parse(database_url)) for _ in amendments]
    try:
        results = in_threads(len(amendments), lambda i: Ledger(stores[i]).execute(amendments[i]))
    finally:
        for opened in stores:
            opened.close()
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) >= 1
    for error in lost:
        assert isinstance(error, VersionConflict), error
        assert error.field == "agreement"
        assert "agreement 'a-0' was changed by another command at the same time" in error.reason
    with Store(Database.parse(database_url)) as store:
        amended = [
            e for e in store.stream(agreement_id(NET, "a-0")) if e.type == "agreement.amended"
        ]
        assert len(amended) == len(won)


def test_the_accounts_open_while_a_worker_follows_the_log(postgres_url: str) -> None:
    """The follower's lock is not the accounts' table lock: serve starts beside a worker."""
    from partnerledger.accounts import Accounts
    from partnerledger.projection import _FOLLOWER

    server = postgres_url.partition("?")[0]
    with psycopg.connect(server, autocommit=True) as follower:
        follower.execute("SELECT pg_advisory_lock(%s)", (_FOLLOWER,))  # a worker follows
        opened = in_threads(1, lambda _: Accounts(Database.parse(postgres_url)), timeout=30)
        [accounts] = opened
        assert isinstance(accounts, Accounts), accounts
        accounts.close()
