"""The views follow the log exactly once, survive a kill, and can be thrown away and rebuilt.

Every test runs on a SQLite file and on a fresh PostgreSQL schema (the
``database_url`` / ``store`` fixtures), except the one with several processes
sharing a database, which is PostgreSQL's use case.

* Incremental equals rebuilt: for generated histories (hypothesis), views
  brought up to date chunk by chunk, in small batches, by one projector or a
  reopened one, equal the views rebuilt from the log in one pass.
* Killed halfway: a process catching up is killed with SIGKILL in the middle
  of a batch's transaction and at a random moment; the views it leaves are
  those of its last whole batch, and resuming gives exactly the rebuilt views.
* Several processes: two writers and a ``partnerledger worker`` on one
  PostgreSQL database; rebuilds while a worker follows; two projectors
  racing in threads, each batch taken by exactly one of them.
* A view whose ``version`` changed is rebuilt when a projector opens.
* The ``projections status|rebuild`` and ``worker --once`` commands.
"""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from partnerledger import Database, DomainError, Ledger, Store
from partnerledger.cli.main import cli
from partnerledger.closing import close_period
from partnerledger.commands import Command, convert_command, decode_command, encode_command
from partnerledger.demo import generate
from partnerledger.jsonl import import_lines
from partnerledger.periods import Calendar
from partnerledger.projection import PROJECTIONS, TRACKING, Projector
from partnerledger.views.trail import TRAIL

CLI = str(Path(sys.executable).with_name("partnerledger"))
Dumps = dict[str, list[tuple[str, ...]]]


# ------------------------------------------------------------------ helpers


def dumps(projector: Projector) -> Dumps:
    """Every row of every view, in a canonical order."""
    return {name: view.dump() for name, view in projector.projections.items()}


def assert_same_views(built: Dumps, rebuilt: Dumps) -> None:
    assert built.keys() == rebuilt.keys()
    for name in built:
        assert built[name] == rebuilt[name], f"view {name!r} differs from its rebuild"


def rebuilt_views(store: Store) -> Dumps:
    """The views a fresh projector rebuilds from the whole log (in batches of 2000)."""
    with Projector(store) as fresh:
        fresh.rebuild()
        assert fresh.lag() == 0
        return dumps(fresh)


@cache
def demo_lines(seed: int, members: int, months: int, networks: int = 1) -> tuple[bytes, ...]:
    """A demo history as import lines (valid in this order, prefix by prefix)."""
    return tuple(
        encode_command(command)
        for command in generate(seed=seed, members=members, months=months, networks=networks)
    )


def write_history(store: Store, lines: Sequence[bytes]) -> int:
    """Import lines (the views are left behind); returns the last log position."""
    report = import_lines(Ledger(store), lines)
    assert report.rejected == []
    assert report.recorded == len(lines)
    return store.last_position()


@contextmanager
def fresh_database(database_url: str, scratch: Path) -> Iterator[str]:
    """An empty database of the kind of ``database_url``: a new SQLite file or PostgreSQL schema."""
    if Database.parse(database_url).kind == "sqlite":
        path = scratch / f"{uuid.uuid4().hex}.db"
        try:
            yield str(path)
        finally:
            for leftover in scratch.glob(f"{path.name}*"):
                leftover.unlink()
        return
    server = database_url.partition("?")[0]
    schema = "h_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"create schema {schema}")
    try:
        yield f"{server}?schema={schema}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"drop schema {schema} cascade")


@contextmanager
def running(args: Sequence[str], **options: Any) -> Iterator[subprocess.Popen[str]]:
    """A subprocess, killed (if still running) and reaped whatever happens."""
    with subprocess.Popen(args, text=True, **options) as process:
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


def read_line(process: subprocess.Popen[str], timeout: float = 60, *, stderr: bool = False) -> str:
    """The next line the process prints ('' if it exits first); fails after ``timeout``."""
    stream = process.stderr if stderr else process.stdout
    assert stream is not None
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, f"no output from {process.args} within {timeout} s"
    return stream.readline().strip()


def following(worker: subprocess.Popen[str]) -> None:
    """Wait until ``partnerledger worker`` follows the log (a Ctrl-C before would abort it)."""
    assert read_line(worker, stderr=True).startswith("Following")


def poll_until(check: Callable[[], bool], timeout: float = 60, every: float = 0.002) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


def trail_after(projector: Projector, position: int) -> int:
    """How many trail rows come from events after a log position."""
    _, rows = projector.db.execute(
        f"SELECT COUNT(*) FROM {projector.db.table(TRAIL)} WHERE position > ?", (position,)
    )
    return int(rows[0][0])


# ------------------------------------------------------------------ hand-made histories

NET = "pier"
ACTOR = "coord@pier.example"
PEOPLE = ("ann", "bob", "cat", "dan")
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
LADDERS = (
    [{"name": "bronze", "threshold": "0"}, {"name": "silver", "threshold": "30"}]
    + [{"name": "gold", "threshold": "70"}],
    [{"name": "bronze", "threshold": "0"}, {"name": "gold", "threshold": "40"}],
)
PLUGINS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("traffic-lights", {}),
    ("traffic-lights", {"window_months": 1}),
    ("traffic-lights", {"window_months": 3, "tyfcb_5": "100"}),
    ("points", {}),
    ("points", {"recency_days": 30, "introduction": "3"}),
    ("threshold-tiers", {}),
    ("threshold-tiers", {"grace_periods": 1}),
    ("fees", {"default_kind": "referral_fee", "default_fee": "25"}),
    ("fees", {"default_kind": "revenue_share", "default_rate": "0.1", "revenue_share_cap": "300"}),
    ("fees", {"tier_bonuses": {"gold": "50", "silver": "20"}, "bonus_currency": "USD"}),
    ("attribution", {"rule": "first"}),
    ("attribution", {"rule": "last"}),
    ("attribution", {"rule": "split"}),
    ("validation", {"exclusivity": False}),
)


class Close(NamedTuple):
    """Close the network's next open period (at this time, or when it ends if later)."""

    at: datetime


Item = Command | Close


def line(type_: str, at: datetime, **fields: Any) -> Command:
    """A command built from plain data, as the CLI and the web build them."""
    return convert_command(
        {"type": type_, "network": NET, "actor": ACTOR, "occurred_at": at, **fields}
    )


# Business times from a week before the network was created to seven months after,
# in any order: most commands are backdated against some already recorded.
moments = st.integers(-7 * 24 * 60, 210 * 24 * 60).map(lambda m: EPOCH + timedelta(minutes=m))
people = st.sampled_from(PEOPLE)
#: Two or three different members (a member never refers, meets or thanks itself).
pairs = st.permutations(PEOPLE).map(lambda p: p[:2])
trios = st.permutations(PEOPLE).map(lambda p: p[:3])
referrals = st.sampled_from([f"r{i}" for i in range(5)])
amounts = st.integers(1, 400).map(lambda n: f"{n * 12.5:.2f}")
plugins = st.sampled_from(PLUGINS)


def _sent(at: datetime, referral: str, pair: tuple[str, str]) -> list[Item]:
    a, b = pair
    return [
        line("referral.sent", at, referral=referral, from_member=a, to_member=b, customer="Dana")
    ]


def _story(
    times: list[datetime], referral: str, pair: tuple[str, str], value: str, refund: str | None
) -> list[Item]:
    """A referral sent, accepted, converted (and perhaps partly reversed), times in any order."""
    story = [
        *_sent(times[0], referral, pair),
        line("referral.accepted", times[1], referral=referral),
        line("referral.converted", times[2], referral=referral, deal_value=value, currency="USD"),
    ]
    if refund is not None:
        story.append(
            line("referral.reversed", times[3], referral=referral, amount=refund, reason="refund")
        )
    return story


def _agreement(at: datetime, number: int, pair: tuple[str, str], fee: bool) -> list[Item]:
    a, b = pair
    pay = (
        {"kind": "referral_fee", "amount": "40"}
        if fee
        else {"kind": "revenue_share", "rate": "0.05"}
    )
    slug = f"a{number}"
    return [
        line(
            "agreement.proposed",
            at,
            agreement=slug,
            kind="referral",
            parties=[a, b],
            terms={"scope": "Leads both ways", "compensation": pay},
        ),
        line("agreement.accepted", at, agreement=slug, party=a),
        line("agreement.accepted", at + timedelta(minutes=1), agreement=slug, party=b),
    ]


def _member(at: datetime, what: str, member: str) -> list[Item]:
    if what == "joined":
        return [line("member.joined", at, member=member, name=member.title(), category="trade")]
    return [line(f"member.{what}", at, member=member)]


stories = st.builds(
    _story,
    st.lists(moments, min_size=4, max_size=4),
    st.integers(0, 10**6).map(lambda n: f"s{n}"),  # mostly a referral of its own
    pairs,
    amounts,
    st.none() | amounts,
)
operations: st.SearchStrategy[list[Item]] = st.one_of(
    *[stories] * 8,  # conversions (and reversals) are what the ledger and standings count
    st.builds(_sent, moments, referrals, pairs),
    st.builds(lambda at, r: [line("referral.accepted", at, referral=r)], moments, referrals),
    st.builds(lambda at, r: [line("referral.declined", at, referral=r)], moments, referrals),
    st.builds(lambda at, r: [line("referral.lost", at, referral=r)], moments, referrals),
    st.builds(
        lambda at, r, v: [line("referral.converted", at, referral=r, deal_value=v, currency="USD")],
        moments,
        referrals,
        amounts,
    ),
    st.builds(
        lambda at, r, v: [line("referral.reversed", at, referral=r, amount=v, reason="refund")],
        moments,
        referrals,
        amounts,
    ),
    st.builds(
        lambda at, meeting, m, status: [
            line("meeting.attended", at, meeting=f"m{meeting}", member=m, status=status)
        ],
        moments,
        st.integers(0, 4),
        people,
        st.sampled_from(["present", "late", "absent", "medical"]),
    ),
    st.builds(
        lambda at, p: [line("one_to_one.held", at, member=p[0], with_member=p[1])],
        moments,
        pairs,
    ),
    st.builds(
        lambda at, p, v: [
            line("tyfcb.reported", at, member=p[0], thanked_member=p[1], amount=v, currency="USD")
        ],
        moments,
        pairs,
        amounts,
    ),
    st.builds(
        lambda at, m: [line("visitor.brought", at, member=m, visitor="Vic")], moments, people
    ),
    st.builds(
        lambda at, p: [line("testimonial.given", at, member=p[0], about_member=p[1])],
        moments,
        pairs,
    ),
    st.builds(
        lambda at, m: [line("training.completed", at, member=m, training="Basics")],
        moments,
        people,
    ),
    st.builds(
        lambda at, n, t: [
            line(
                "introduction.made",
                at,
                introduction=f"i{n}",
                introducer=t[0],
                introduced=t[1],
                to_member=t[2],
            )
        ],
        moments,
        st.integers(0, 3),
        trios,
    ),
    st.builds(
        _member,
        moments,
        st.sampled_from(["joined", "suspended", "reinstated", "left"]),
        st.sampled_from([*PEOPLE, "eve"]),
    ),
    st.builds(
        lambda at, p: [line("plugin.enabled", at, plugin=p[0], settings=p[1])], moments, plugins
    ),
    st.builds(
        lambda at, p: [line("plugin.configured", at, plugin=p[0], settings=p[1])],
        moments,
        plugins,
    ),
    st.builds(lambda at, p: [line("plugin.disabled", at, plugin=p[0])], moments, plugins),
    st.builds(
        lambda at, ladder: [line("network.tiers_set", at, tiers=ladder)],
        moments,
        st.sampled_from(LADDERS),
    ),
    st.builds(_agreement, moments, st.integers(0, 2), pairs, st.booleans()),
    st.builds(
        lambda at, n: [line("agreement.terminated", at, agreement=f"a{n}", reason="over")],
        moments,
        st.integers(0, 2),
    ),
    st.builds(
        lambda at, n, m, v: [
            line("payout.recorded", at, payout=f"p{n}", member=m, amount=v, currency="USD")
        ],
        moments,
        st.integers(0, 3),
        people,
        amounts,
    ),
    st.builds(lambda at: [Close(at)], moments),
)


@st.composite
def beginnings(draw: st.DrawFn) -> list[Item]:
    """A network, three members and one invited, and mostly some plugins from the start."""
    start = [
        line(
            "network.created",
            EPOCH,
            name="Pier Chamber",
            currency="USD",
            period=draw(st.sampled_from(["month", "quarter"])),
            tiers=LADDERS[0],
        ),
        *(
            line("member.joined", EPOCH, member=m, name=m.title(), category=f"trade-{m}")
            for m in PEOPLE[:3]
        ),
        line("member.invited", EPOCH, member="dan", name="Dan", category="trade-dan"),
    ]
    for family in (("traffic-lights", "points"), ("threshold-tiers",), ("fees",), ("attribution",)):
        chosen = draw(st.none() | st.sampled_from([p for p in PLUGINS if p[0] in family]))
        if chosen is not None:
            start.append(line("plugin.enabled", EPOCH, plugin=chosen[0], settings=chosen[1]))
    return start


class Plan(NamedTuple):
    """A history cut into chunks; after each chunk the projector does ``actions[i]``."""

    chunks: list[list[Any]]
    actions: list[str]
    batch: int


def cut(draw: st.DrawFn, items: Sequence[Any], batch: st.SearchStrategy[int]) -> Plan:
    """Random chunks of ``items`` and what the projector does after each."""
    cuts = sorted(set(draw(st.lists(st.integers(1, max(len(items) - 1, 1)), max_size=6))))
    bounds = [0, *(c for c in cuts if c < len(items)), len(items)]
    chunks = [list(items[a:b]) for a, b in pairwise(bounds)]
    actions = draw(
        st.lists(
            st.sampled_from(["nothing", "catch up", "reopen"]),
            min_size=len(chunks),
            max_size=len(chunks),
        )
    )
    return Plan(chunks, actions, draw(batch))


@st.composite
def hand_made(draw: st.DrawFn) -> Plan:
    items = draw(beginnings()) + [
        item for op in draw(st.lists(operations, min_size=10, max_size=50)) for item in op
    ]
    return cut(draw, items, st.integers(1, 6))


@st.composite
def demo_prefixes(draw: st.DrawFn) -> Plan:
    lines = demo_lines(
        draw(st.integers(0, 1000)),
        draw(st.integers(2, 6)),
        draw(st.integers(1, 3)),
        draw(st.integers(1, 2)),
    )
    size = draw(st.integers(1, len(lines)))
    return cut(draw, lines[:size], st.integers(1, 64))


def follow_plan(
    store: Store, plan: Plan, write: Callable[[Ledger, Projector, list[Any]], None]
) -> Dumps:
    """Write the plan's chunks, updating the views as it says; the views at the end."""
    ledger = Ledger(store)
    projector = Projector(store, batch=plan.batch)
    try:
        for chunk, action in zip(plan.chunks, plan.actions, strict=True):
            write(ledger, projector, chunk)
            if action == "reopen":  # a new process: networks read again up to its position
                projector.close()
                projector = Projector(store, batch=plan.batch)
            if action != "nothing":
                projector.catch_up()
        projector.catch_up()
        assert projector.lag() == 0
        assert set(projector.positions().values()) == {store.last_position()}
        return dumps(projector)
    finally:
        projector.close()


def execute_items(ledger: Ledger, projector: Projector, items: list[Item]) -> None:
    """Record each command the domain accepts (refused ones are skipped); close periods."""
    for item in items:
        if isinstance(item, Close):
            network = ledger.unit_of_work().network(NET)
            calendar = Calendar.of(network)
            period = calendar.containing(EPOCH)
            while period.name in _closed(projector):
                period = calendar.after(period)
            with suppress(DomainError):
                close_period(
                    ledger, projector, NET, period.name, actor=ACTOR, at=max(item.at, period.end)
                )
                note(f"closed {period.name}")
        else:
            with suppress(DomainError):
                ledger.execute(item)


def _closed(projector: Projector) -> set[str]:
    projector.catch_up()
    _, rows = projector.db.execute(
        f"SELECT period FROM {projector.db.table('partnerledger_standing_closed')} "
        "WHERE network = ?",
        (NET,),
    )
    return {str(row[0]) for row in rows}


def import_chunk(ledger: Ledger, _: Projector, lines: list[bytes]) -> None:
    report = import_lines(ledger, lines)
    assert report.rejected == []


def examples(database_url: str, *, sqlite: int, postgresql: int) -> settings:
    """Settings: a PostgreSQL example (a schema, round trips) costs ten times a SQLite one."""
    kind = Database.parse(database_url).kind
    return settings(
        max_examples=sqlite if kind == "sqlite" else postgresql,
        deadline=None,
        database=None,  # nothing saved in the work tree
        suppress_health_check=[HealthCheck.too_slow],
    )


def test_incremental_views_equal_rebuilt_ones_for_backdated_histories(
    database_url: str, tmp_path: Path
) -> None:
    """Commands in any business-time order, plugins and ladders changing, periods closing."""

    @examples(database_url, sqlite=100, postgresql=30)
    @given(plan=hand_made())
    def check(plan: Plan) -> None:
        with fresh_database(database_url, tmp_path) as url, Store(Database.parse(url)) as store:
            built = follow_plan(store, plan, execute_items)
            note(f"{store.last_position()} events, batches of {plan.batch}, {plan.actions}")
            assert_same_views(built, rebuilt_views(store))

    check()


def test_incremental_views_equal_rebuilt_ones_for_demo_histories(
    database_url: str, tmp_path: Path
) -> None:
    """Prefixes of realistic histories imported in random chunks."""

    @examples(database_url, sqlite=40, postgresql=12)
    @given(plan=demo_prefixes())
    def check(plan: Plan) -> None:
        with fresh_database(database_url, tmp_path) as url, Store(Database.parse(url)) as store:
            built = follow_plan(store, plan, import_chunk)
            assert_same_views(built, rebuilt_views(store))

    check()


def test_a_later_event_gives_the_periods_in_between_their_standings(store: Store) -> None:
    """Found by the test above: months with no event between two batches still get their rows."""
    Ledger(store).execute(
        line("network.created", EPOCH, name="Pier", currency="USD", period="month"),
        line("member.joined", EPOCH, member="ann", name="Ann", category="trade"),
        line("member.joined", EPOCH + timedelta(days=60), member="bob", name="Bob", category="x"),
    )
    with Projector(store, batch=2) as projector:  # January, then March in a batch of its own
        projector.catch_up()
        built = dumps(projector)
        periods = sorted(
            {row[2] for row in built["standings"] if row[0] == "partnerledger_standings"}
        )
        assert periods == ["2024-01", "2024-02", "2024-03"]
    assert_same_views(built, rebuilt_views(store))


# ------------------------------------------------------------------ killed halfway

#: Catches up in batches and stops for good inside the transaction of one of them,
#: after every view has written its rows for that batch and before the commit.
PAUSING = """
import sys, threading
import partnerledger.views
from partnerledger import Database, Store
from partnerledger.projection import PROJECTIONS, Projector

url, batch, pause_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
last = PROJECTIONS[list(PROJECTIONS)[-1]]  # flushed last in each batch's transaction
flush = last.flush
flushed = 0

def pausing_flush(self, networks):
    global flushed
    flush(self, networks)
    flushed += 1
    if flushed == pause_at:
        print("inside", flush=True)
        threading.Event().wait()

last.flush = pausing_flush
with Store(Database.parse(url)) as store, Projector(store, batch=batch) as projector:
    projector.catch_up()
print("finished", flush=True)
"""


def test_a_projector_killed_inside_a_batch_resumes_after_its_last_whole_batch(
    store: Store, database_url: str
) -> None:
    last = write_history(store, demo_lines(11, 10, 8))
    positions = [position for position, _ in store.read()]
    batch, pause_at = 100, 4
    committed = positions[(pause_at - 1) * batch - 1]  # the end of the third batch
    with Projector(store) as projector:
        with running(
            [sys.executable, "-c", PAUSING, database_url, str(batch), str(pause_at)],
            stdout=subprocess.PIPE,
        ) as child:
            assert read_line(child) == "inside"
            # the fourth batch is written but not committed: nobody else sees it
            assert set(projector.positions().values()) == {committed}
            assert trail_after(projector, committed) == 0
            child.send_signal(signal.SIGKILL)
            assert child.wait(timeout=30) == -signal.SIGKILL
        assert set(projector.positions().values()) == {committed}
        assert trail_after(projector, committed) == 0  # the half-done batch is gone
        # resuming counts every later event once
        assert projector.catch_up() == sum(1 for p in positions if p > committed)
        assert set(projector.positions().values()) == {last}
        assert_same_views(dumps(projector), rebuilt_views(store))


@pytest.mark.parametrize(
    "command", [["worker", "--once"], ["projections", "rebuild"]], ids=["worker", "rebuild"]
)
def test_a_process_killed_partway_loses_nothing_and_counts_nothing_twice(
    store: Store, database_url: str, command: list[str]
) -> None:
    """SIGKILL at whatever moment the views are partway through the log (batches of 2000)."""
    last = write_history(store, demo_lines(11, 20, 18))  # some 4,300 events: three batches
    with Projector(store) as projector:
        if command[0] == "projections":
            projector.catch_up()  # the rebuild has views to drop first
        seen = [-1]

        def views() -> set[int]:  # the audit witness is never rebuilt: it stays at the end
            evidence = {n for n, v in projector.projections.items() if v.evidence}
            return {p for n, p in projector.positions().items() if n not in evidence}

        def partway() -> bool:
            seen[0] = min(views())
            return 0 < seen[0] < last

        with running(
            [CLI, "--database", database_url, *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ) as child:
            poll_until(lambda: partway() or child.poll() is not None)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        assert 0 < seen[0] < last, f"the process ended before it was killed (at {seen[0]})"
        stopped = views()
        assert len(stopped) == 1  # every view at the end of the same whole batch
        position = stopped.pop()  # (the one seen, or one more committed just before the kill)
        assert 0 < position < last
        assert trail_after(projector, position) == 0
        assert projector.catch_up() == sum(1 for _ in store.read(after=position))
        assert projector.lag() == 0
        assert_same_views(dumps(projector), rebuilt_views(store))


# ------------------------------------------------------------------ several processes

#: Appends one network's history in small transactions once told to go; with
#: "catch-up" it also brings the views up to date after each (as a web process does).
WRITER = """
import sys
from partnerledger import Database, Ledger, Store
from partnerledger.commands import decode_command
from partnerledger.projection import Projector

url, path, size, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with open(path, "rb") as file:
    commands = [decode_command(line) for line in file if line.strip()]
with Store(Database.parse(url)) as store, Projector(store) as projector:
    ledger = Ledger(store)
    print("ready", flush=True)
    sys.stdin.readline()
    for start in range(0, len(commands), size):
        ledger.execute(*commands[start : start + size])
        if mode == "catch-up":
            projector.catch_up()
print("done", flush=True)
"""


def test_two_writers_and_a_worker_share_one_postgresql_database(
    postgres_url: str, tmp_path: Path
) -> None:
    history = demo_lines(21, 8, 6, 2)  # two networks, some 650 commands each
    files = {}
    for network in ("riverside", "harbor-bni"):
        files[network] = tmp_path / f"{network}.jsonl"
        files[network].write_bytes(
            b"\n".join(raw for raw in history if f'"network":"{network}"'.encode() in raw) + b"\n"
        )
    with Store(Database.parse(postgres_url)) as store, Projector(store) as projector:
        with running(
            [CLI, "--database", postgres_url, "worker", "--poll", "0.05"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        ) as worker:
            following(worker)
            with (
                running(
                    [
                        sys.executable,
                        "-c",
                        WRITER,
                        postgres_url,
                        str(files["riverside"]),
                        "10",
                        "append",
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                ) as first,
                running(
                    [
                        sys.executable,
                        "-c",
                        WRITER,
                        postgres_url,
                        str(files["harbor-bni"]),
                        "10",
                        "catch-up",
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                ) as second,
            ):
                writers = (first, second)
                for writer in writers:
                    assert read_line(writer) == "ready"
                for writer in writers:  # both go at once
                    assert writer.stdin is not None
                    writer.stdin.write("go\n")
                    writer.stdin.flush()
                for writer in writers:
                    assert read_line(writer, timeout=180) == "done"
                    assert writer.wait(timeout=30) == 0
            assert worker.poll() is None, "the worker stopped"
            assert projector.wait_until(store.last_position(), timeout=120)
            assert projector.lag() == 0
            worker.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
            _, errors = worker.communicate(timeout=30)
            assert worker.returncode == 0, errors
        log = [event.command.network for _, event in store.read()]
        assert len(log) == len(history)
        switches = sum(1 for a, b in pairwise(log) if a != b)
        assert switches >= 2, "the writers did not write at the same time"
        assert set(projector.positions().values()) == {store.last_position()}
        assert_same_views(dumps(projector), rebuilt_views(store))


def test_rebuilding_while_a_worker_follows(store: Store, database_url: str) -> None:
    """``projections rebuild`` while a worker is mid-batch: neither fails, nothing is lost.

    On PostgreSQL a rebuild that dropped a view's tables before taking its
    tracking row deadlocked with the worker's batch, and the worker died.
    """
    commands = [decode_command(raw) for raw in demo_lines(21, 8, 6)]
    with running(
        [CLI, "--database", database_url, "worker", "--poll", "0.01"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as worker:
        following(worker)
        ledger = Ledger(store)
        with Projector(store, batch=50) as projector:
            for number, start in enumerate(range(0, len(commands), 60)):
                ledger.execute(*commands[start : start + 60])
                projector.rebuild(["ledger", "standings"] if number % 2 else None)
                assert worker.poll() is None, "the worker stopped"
            assert projector.wait_until(store.last_position(), timeout=60)
            worker.send_signal(signal.SIGINT)
            _, errors = worker.communicate(timeout=30)
            assert worker.returncode == 0, errors
            assert_same_views(dumps(projector), rebuilt_views(store))


def test_two_projectors_racing_in_threads_take_each_batch_once(
    store: Store, database_url: str
) -> None:
    write_history(store, demo_lines(5, 6, 4))
    events = sum(1 for _ in store.read())
    barrier = threading.Barrier(2, timeout=30)
    handled: list[int | BaseException] = [0, 0]

    def race(index: int) -> None:
        try:
            with Projector(store, batch=7) as projector:  # SQLite: a connection per thread
                barrier.wait()
                handled[index] = projector.catch_up()
        except BaseException as error:
            handled[index] = error

    threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert all(isinstance(count, int) for count in handled), handled
    assert sum(handled) == events  # type: ignore[arg-type]  # each batch by exactly one of them
    with Projector(store) as projector:
        assert projector.lag() == 0
        assert_same_views(dumps(projector), rebuilt_views(store))


# ------------------------------------------------------------------ versions


def test_a_view_whose_version_changed_is_rebuilt_when_a_projector_opens(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    last = write_history(store, demo_lines(3, 4, 2))
    events = sum(1 for _ in store.read())
    trail = PROJECTIONS["trail"]
    with Projector(store) as projector:
        projector.catch_up()
        before = dumps(projector)
        # rows the log does not explain, in two views: only a rebuild removes them
        for name in ("trail", "scorecards"):
            for table in PROJECTIONS[name].tables:
                projector.db.execute(f"DELETE FROM {projector.db.table(table)}")

    monkeypatch.setattr(trail, "version", trail.version + 1)
    with Projector(store) as reopened:
        assert reopened.positions() == {
            name: 0 if name == "trail" else last for name in PROJECTIONS
        }
        _, rows = reopened.db.execute(
            f"SELECT name, version FROM {reopened.db.table(TRACKING)} ORDER BY name"
        )
        assert dict(rows) == {name: cls.version for name, cls in PROJECTIONS.items()}
        assert reopened.catch_up() == events  # only the trail replays the log
        after = dumps(reopened)
    assert after["trail"] == before["trail"]
    assert after["scorecards"] == [] != before["scorecards"]  # same version: left alone
    assert after["standings"] == before["standings"]

    with Projector(store) as again:  # the stored version now matches: nothing is dropped
        assert set(again.positions().values()) == {last}
        assert dumps(again)["trail"] == before["trail"]


# ------------------------------------------------------------------ the commands


def test_the_projections_commands_and_the_worker(store: Store, database_url: str) -> None:
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli, ["--database", database_url, *args], catch_exceptions=False)

    last = write_history(store, demo_lines(3, 4, 2))
    events = sum(1 for _ in store.read())
    names = list(PROJECTIONS)

    status = run("projections", "status")
    assert status.exit_code == 0, status.output
    for name in names:
        assert f"{name:<12} at {0:>9,} of {last:,} ({last:,} behind)" in status.output

    once = run("worker", "--once")
    assert once.exit_code == 0, once.output
    assert f"Handled {events:,} events" in once.output
    assert run("worker", "--once").output.strip() == "Handled 0 events"
    status = run("projections", "status")
    for name in names:
        assert f"{name:<12} at {last:>9,} of {last:,} (0 behind)" in status.output

    with Projector(store) as projector:
        built = dumps(projector)
        for name in ("standings", "trail"):
            for table in PROJECTIONS[name].tables:
                projector.db.execute(f"DELETE FROM {projector.db.table(table)}")

        one = run("projections", "rebuild", "standings")
        assert one.exit_code == 0, one.output
        assert f"Rebuilt standings from {events:,} events" in one.output
        now = dumps(projector)
        assert now["standings"] == built["standings"]
        assert now["trail"] == []  # not named: not rebuilt

        unknown = run("projections", "rebuild", "standings", "nope")
        assert unknown.exit_code == 1
        assert "no projection 'nope'" in unknown.output
        assert all(name in unknown.output for name in names)  # the known ones
        assert dumps(projector) == now  # nothing dropped

        every = run("projections", "rebuild")
        assert every.exit_code == 0, every.output
        assert f"Rebuilt {', '.join(names)} from {events:,} events" in every.output
        assert dumps(projector) == built
        assert set(projector.positions().values()) == {last}
