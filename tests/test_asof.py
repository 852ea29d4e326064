"""Every view as of a recorded time or a business time, computed from the log.

The history has backdated events (business time well before recorded
time), a period close recorded after its period, an event recorded after
the close but dated inside the closed period, a change of plugin settings,
another network's events in between, and an event whose store time is
earlier than the one logged before it (clocks of two processes). For each
cut, the views as of the cut must equal the live views of a second store,
built for real, that holds only the events the cut keeps: all four views,
in full, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from partnerledger import Database, Ledger, Store
from partnerledger.cli.main import cli
from partnerledger.closing import plan_close
from partnerledger.commands import convert_command
from partnerledger.domain import Network
from partnerledger.errors import InvalidCommand, NotFound
from partnerledger.events import Event
from partnerledger.periods import Calendar
from partnerledger.pluginmanager import Rules
from partnerledger.projection import Projector
from partnerledger.sql import SqlBackend, SQLiteBackend
from partnerledger.views import ledger as ledger_view
from partnerledger.views import standings as standings_view
from partnerledger.views.asof import (
    VIEWS,
    Cut,
    CutLog,
    clear_cache,
    parse_moment,
    views_as_of,
)
from partnerledger.views.scorecards import scorecards
from partnerledger.views.trail import entities, trail
from webkit import START, World, browser, build_world, command, record

NET = "asof-net"
OTHER = "asof-other"
MEMBERS = ("ann", "bob", "cy")
PERIODS = ("2025-Q1", "2025-Q2", "2025-Q3")


def at(month: int, day: int = 1) -> datetime:
    """A business time: noon of a day of 2025."""
    return datetime(2025, month, day, 12, tzinfo=UTC)


def rec(month: int, day: int) -> datetime:
    """A store time: the evening of a day of 2025."""
    return datetime(2025, month, day, 18, tzinfo=UTC)


def cmd(kind: str, when: datetime, network: str = NET, **fields: Any) -> Any:
    return convert_command(
        {"type": kind, "network": network, "actor": "coordinator", "occurred_at": when, **fields}
    )


class Clock:
    """The store clock of the history: set before each write."""

    def __init__(self) -> None:
        self.now = rec(1, 1)

    def __call__(self) -> datetime:
        return self.now


def referral(slug: str, sender: str, receiver: str, when: datetime) -> list[Any]:
    return [
        cmd("referral.sent", when, referral=slug, from_member=sender, to_member=receiver,
            customer=f"customer {slug}"),
        cmd("referral.accepted", when, referral=slug),
    ]  # fmt: skip


def converted(slug: str, when: datetime, value: str) -> Any:
    return cmd("referral.converted", when, referral=slug, deal_value=value, currency="EUR")


def history(store: Store) -> None:
    """The history every test here reads (store times set by a clock)."""
    clock = Clock()
    ledger = Ledger(store, clock=clock)

    def write(recorded: datetime, *commands: Any) -> None:
        clock.now = recorded
        ledger.execute(*commands)

    write(
        rec(1, 1),
        cmd("network.created", at(1), name="As Of", currency="EUR", period="quarter",
            tiers=[{"name": "silver", "threshold": "0"}, {"name": "gold", "threshold": "20"}]),
        cmd("plugin.enabled", at(1), plugin="fees",
            settings={"default_kind": "revenue_share", "default_rate": "0.10",
                      "tier_bonuses": {"gold": "50"}, "bonus_currency": "EUR"}),
        cmd("plugin.enabled", at(1), plugin="points"),
        cmd("plugin.enabled", at(1), plugin="threshold-tiers"),
        *(cmd("member.joined", at(1), member=m, name=m.title(), category=c)
          for m, c in zip(MEMBERS, ("law", "tax", "flowers"), strict=True)),
    )  # fmt: skip
    write(rec(1, 10), *referral("r1", "ann", "bob", at(1, 10)))
    write(
        rec(2, 1),
        cmd("network.created", at(2, 1), OTHER, name="Other", currency="EUR"),
        cmd("member.joined", at(2, 1), OTHER, member="ann", name="Other Ann", category="law"),
    )
    write(rec(2, 3), converted("r1", at(2, 3), "10000"))
    write(rec(2, 5), cmd("one_to_one.held", at(2, 5), member="ann", with_member="cy"))
    write(rec(2, 10), *referral("r2", "ann", "bob", at(2, 10)))
    write(rec(3, 1), *referral("r3", "bob", "ann", at(3, 1)))
    # Backdated: converted on 20 February, recorded on 10 March.
    write(rec(3, 10), converted("r2", at(2, 20), "5000"))
    # Another process's clock: recorded "before" the event logged just before it.
    write(
        rec(3, 9),
        cmd("introduction.made", at(3, 9), introduction="i1", introducer="cy",
            introduced="ann", to_member="bob", note="lunch"),
    )  # fmt: skip
    write(rec(3, 12), cmd("member.joined", at(3, 12), OTHER, member="bo", name="Bo", category="x"))
    # Q1 closed on 1 April (business time), recorded on 5 April.
    clock.now = rec(4, 5)
    with Projector(store, ledger.rules, VIEWS) as projector:
        _, work = plan_close(ledger, projector, NET, "2025-Q1", actor="coordinator", at=at(4, 1))
        work.commit()
    # After the close: a conversion dated inside Q1 (it lands in Q2 of the ledger).
    write(rec(4, 10), *referral("r4", "cy", "ann", at(3, 14)), converted("r4", at(3, 15), "2000"))
    write(
        rec(4, 20),
        cmd("plugin.configured", at(4, 20), plugin="fees",
            settings={"default_kind": "revenue_share", "default_rate": "0.20",
                      "tier_bonuses": {"gold": "50"}, "bonus_currency": "EUR"}),
    )  # fmt: skip
    write(rec(5, 2), *referral("r5", "bob", "cy", at(5, 1)), converted("r5", at(5, 2), "3000"))
    write(rec(5, 10), cmd("referral.reversed", at(5, 10), referral="r1", amount="4000",
                          reason="refund"))  # fmt: skip
    write(rec(5, 20), cmd("payout.recorded", at(5, 20), member="ann", payout="p1",
                          amount="1000", currency="EUR", reference="SEPA 1"))  # fmt: skip


# ------------------------------------------------------------- reference stores


@pytest.fixture
def new_database(database_url: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes empty databases of the same kind as ``database_url`` (dropped afterwards)."""
    schemas: list[str] = []
    base = database_url.split("?")[0]

    def make() -> str:
        if not database_url.startswith("postgresql"):
            return str(tmp_path / f"reference-{uuid.uuid4().hex[:8]}.db")
        schema = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"create schema {schema}")
        schemas.append(schema)
        return f"{base}?schema={schema}"

    yield make
    if schemas:
        with psycopg.connect(base, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"drop schema {schema} cascade")


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


def kept(store: Store, cut: Cut, network: str = NET) -> list[tuple[int, Event]]:
    return [(p, e) for p, e in store.read() if e.network == network and cut.includes(e)]


def snapshot(
    db: SqlBackend,
    rules: Rules,
    network: Network,
    moment: datetime,
    position: Callable[[int], int],
) -> dict[str, Any]:
    """Everything the four views' queries answer about the network (positions translated)."""
    slug = network.network
    calendar = Calendar.of(network)
    found: dict[str, Any] = {
        "network": (network.name, network.currency, network.tiers, network.plugins),
        "closed": sorted(standings_view.closed_periods(db, slug)),
        "ledger_closed": sorted(ledger_view.closed_periods(db, slug)),
        "balances": ledger_view.balances(db, slug),
    }
    for name in PERIODS:
        period = calendar.parse(name)
        found[f"standings {name}"] = [
            s.as_dict() for s in standings_view.standings(db, rules, network, period)
        ]
        for member in MEMBERS:
            found[f"statement {member} {name}"] = ledger_view.statement(
                db, network, member, period
            ).as_dict()
    for member in MEMBERS:
        found[f"history {member}"] = [s.as_dict() for s in standings_view.history(db, slug, member)]
    try:
        found["scorecards"] = [c.as_dict() for c in scorecards(db, slug, as_of=moment)]
    except NotFound:
        found["scorecards"] = None
    try:
        listed = entities(db, slug)
    except NotFound:
        listed = []
    found["entities"] = [
        {**e.as_dict(), "first_position": position(e.first_position),
         "last_position": position(e.last_position)}
        for e in listed
    ]  # fmt: skip
    for e in listed:
        found[f"trail {e.entity}"] = [
            {**entry.as_dict(), "position": position(entry.position)}
            for entry in trail(db, slug, e.entity)
        ]
    return found


def rules_of(store: Store) -> Rules:
    return Ledger(store).rules


def reference(store: Store, cut: Cut, url: str) -> tuple[dict[str, Any], list[tuple[int, int]]]:
    """A second store holding only the events the cut keeps (appended for real, in log order)
    and the live views' snapshot of it; with the map of its positions to the first store's."""
    events = kept(store, cut)
    pairs = []
    with Store(Database.parse(url)) as second:
        for original, event in events:
            (position,) = second.append([event])
            pairs.append((position, original))
        mapping = dict(pairs)
        with Projector(second, rules_of(store), VIEWS) as projector:
            projector.catch_up()
            network = Ledger(second).unit_of_work().network(NET)
            found = snapshot(
                projector.db, projector.rules, network, cut.moment, lambda p: mapping[p]
            )
    return found, pairs


CUTS = [
    Cut(recorded=rec(2, 15)),  # r1 converted, r2 sent; the backdated conversion unknown
    Cut(recorded=datetime(2025, 3, 9, 20, tzinfo=UTC)),  # the skewed introduction, not r2's
    Cut(recorded=rec(3, 12)),  # the backdated conversion known
    Cut(recorded=rec(4, 6)),  # the close known, r4 not yet
    Cut(recorded=rec(4, 15)),  # r4 known: it lands in Q2 (Q1 was closed when recorded)
    Cut(recorded=rec(6, 1)),  # everything
    Cut(business=at(2, 25)),  # r2's conversion (backdated) happened by then
    Cut(business=datetime(2025, 3, 31, 23, 59, 59, 999999, tzinfo=UTC)),  # r4 in Q1, no close
    Cut(business=at(4, 3)),  # the close happened; r4 after it in the log: lands in Q2
    Cut(business=at(4, 25)),  # the new fee rate in force
    Cut(recorded=rec(4, 6), business=datetime(2025, 3, 31, 23, 59, 59, tzinfo=UTC)),
]


@pytest.mark.parametrize("cut", CUTS, ids=lambda c: c.describe())
def test_views_as_of_a_cut_equal_the_views_of_a_store_holding_only_its_events(
    store: Store, new_database: Callable[[], str], cut: Cut
) -> None:
    history(store)
    rules = rules_of(store)
    expected, pairs = reference(store, cut, new_database())
    assert pairs, "the cut keeps some events"
    with views_as_of(store, rules, NET, cut) as views:
        assert views.network is not None
        assert views.log.last_position() == pairs[-1][1]
        found = snapshot(views, rules, views.network, cut.moment, lambda p: p)
    assert found.keys() == expected.keys()
    for key in expected:
        # The second store has none of the first's keys: its customers read [erased].
        assert without_personal(found[key]) == without_personal(expected[key]), key


def test_what_each_cut_shows(store: Store) -> None:
    """The figures behind the comparisons, so that the comparisons compare something."""
    history(store)
    rules = rules_of(store)

    def ann_q1(cut: Cut) -> tuple[list[tuple[str, str]], bool]:
        with views_as_of(store, rules, NET, cut) as views:
            assert views.network is not None
            period = Calendar.of(views.network).parse("2025-Q1")
            found = ledger_view.statement(views, views.network, "ann", period)
            return [(e.kind, str(e.amount)) for e in found.entries], found.closed

    assert ann_q1(Cut(recorded=rec(2, 15))) == ([("revenue_share", "1000.00")], False)
    # The backdated conversion: unknown on 9 March, known on 12 March.
    assert ann_q1(Cut(recorded=datetime(2025, 3, 9, 20, tzinfo=UTC)))[0] == [
        ("revenue_share", "1000.00")
    ]
    assert ann_q1(Cut(recorded=rec(3, 12)))[0] == [
        ("revenue_share", "1000.00"),
        ("revenue_share", "500.00"),
    ]
    # Closed when the close is known: its recorded statement, with the gold bonus.
    entries, closed = ann_q1(Cut(recorded=rec(4, 6)))
    assert closed and ("bonus", "50.00") in entries
    # By business time 31 March: r4 (dated 15 March, recorded after the close) is in Q1 of
    # what had happened, and Q1 is not closed yet.
    with views_as_of(store, rules, NET, Cut(business=at(3, 31))) as views:
        assert views.network is not None
        q1 = Calendar.of(views.network).parse("2025-Q1")
        cy = ledger_view.statement(views, views.network, "cy", q1)
        assert [(e.kind, str(e.amount)) for e in cy.entries] == [("revenue_share", "200.00")]
        assert not cy.closed
        assert standings_view.closed_periods(views, NET) == set()
        assert views.network.plugins["fees"]["default_rate"] == "0.10"
    # As known now, r4 landed in Q2, after the close.
    with views_as_of(store, rules, NET, Cut(recorded=rec(6, 1))) as views:
        assert views.network is not None
        q2 = Calendar.of(views.network).parse("2025-Q2")
        cy = ledger_view.statement(views, views.network, "cy", q2)
        assert ("revenue_share", "200.00") in [(e.kind, str(e.amount)) for e in cy.entries]
        assert views.network.plugins["fees"]["default_rate"] == "0.20"
    # The other network's events are never in this one's views.
    with views_as_of(store, rules, NET, Cut(recorded=rec(6, 1))) as views:
        assert all(e.network == NET for _, e in views.log.events)
        assert "member:bo" not in {e.entity for e in entities(views, NET)}


def test_everything_in_the_cut_equals_the_live_views(store: Store) -> None:
    history(store)
    rules = rules_of(store)
    with Projector(store, rules, VIEWS) as live:
        live.catch_up()
        network = Ledger(store).unit_of_work().network(NET)
        moment = rec(6, 1)
        expected = snapshot(live.db, rules, network, moment, lambda p: p)
    everything = Cut(recorded=datetime(2199, 1, 1, tzinfo=UTC))
    with views_as_of(store, rules, NET, everything) as views:
        assert views.network is not None
        found = snapshot(views, rules, views.network, moment, lambda p: p)
    assert found.keys() == expected.keys()
    for key in expected:
        assert found[key] == expected[key], key


def without_personal(value: Any) -> Any:
    """A snapshot's part with the customers (personal data, sealed in the log) left out."""
    if isinstance(value, list):
        return [without_personal(v) for v in value]
    if isinstance(value, dict):
        return {k: without_personal(v) for k, v in value.items() if k != "customer"}
    return value


def test_personal_data_read_as_of_a_moment_as_now(store: Store) -> None:
    """Customers are revealed with the store's keys (never copied into the views as of)."""
    history(store)
    rules = rules_of(store)
    with Projector(store, rules, VIEWS) as live:
        live.catch_up()
        now = [e.command.get("customer") for e in trail(live.db, NET, "referral:r1")]
    with views_as_of(store, rules, NET, Cut(recorded=rec(6, 1))) as views:
        then = [e.command.get("customer") for e in trail(views, NET, "referral:r1")]
    assert now[0] == "customer r1"
    assert then == now


def test_a_network_before_its_creation_and_the_cache(store: Store) -> None:
    history(store)
    rules = rules_of(store)
    with views_as_of(store, rules, NET, Cut(business=datetime(2024, 12, 1, tzinfo=UTC))) as v:
        assert v.network is None and v.log.events == []
        assert v.member("ann") is None
    cut = Cut(business=at(2, 25))
    with views_as_of(store, rules, NET, cut) as first:
        before = len(first.log.events)
        assert [m.slug for m in first.members()] == list(MEMBERS)
    with views_as_of(store, rules, NET, cut) as again:
        assert again is first  # from the cache
    # A new event that the cut keeps (dated before it) is fed to the cached views.
    Ledger(store).execute(cmd("visitor.brought", at(2, 24), member="ann", visitor="v1"))
    with views_as_of(store, rules, NET, cut) as later:
        assert later is first
        assert len(later.log.events) == before + 1
        assert later.position == store.last_position()
    with pytest.raises(InvalidCommand), views_as_of(store, rules, NET, Cut()):
        pass


def test_another_log_at_the_same_place_is_never_answered_from_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "replaced.db"
    cut = Cut(recorded=datetime(2199, 1, 1, tzinfo=UTC))
    with Store(Database.parse(str(path))) as store:
        history(store)
        rules = rules_of(store)
        with views_as_of(store, rules, NET, cut) as views:
            assert views.member("cy") is not None
    for leftover in tmp_path.glob("replaced.db*"):
        leftover.unlink()
    with Store(Database.parse(str(path))) as store:
        clock = Clock()
        Ledger(store, clock=clock).execute(
            cmd("network.created", at(1), name="Again", currency="EUR"),
            *(cmd("member.joined", at(1), member=m, name=m, category="x") for m in ("ann", "dee")),
            cmd("visitor.brought", at(2), member="dee", visitor="v1"),
            *referral("r1", "ann", "dee", at(3)),
            *referral("r2", "dee", "ann", at(3)),
            *referral("r3", "ann", "dee", at(3)),
            *referral("r4", "dee", "ann", at(3)),
            *referral("r5", "ann", "dee", at(3)),
        )
        with views_as_of(store, rules, NET, cut) as views:
            assert views.network is not None and views.network.name == "Again"
            assert views.member("cy") is None and views.member("dee") is not None


def test_the_live_views_are_untouched(store: Store, database_url: str, tmp_path: Path) -> None:
    history(store)
    rules = rules_of(store)
    with Projector(store, rules) as live:
        live.catch_up()
        # More events the live views have not read yet: an as-of query must not read them in.
        Ledger(store).execute(cmd("visitor.brought", at(5, 25), member="bob", visitor="v9"))
        positions = live.positions()
        tables = {name: view.dump() for name, view in live.projections.items()}
        with views_as_of(store, rules, NET, Cut(business=at(5, 30))) as views:
            assert views.log.last_position() == store.last_position()
        runner = CliRunner()
        for args in (
            ("standings", "--network", NET, "--as-of", "2025-05-30"),
            ("scorecard", "--network", NET, "--as-of-recorded", "2025-05-30"),
            ("statement", "--network", NET, "--member", "ann", "--period", "2025-Q2",
             "--as-of", "2025-05-30"),
            ("trail", "--network", NET, "--entity", "member:ann", "--as-of", "2025-05-30"),
        ):  # fmt: skip
            result = runner.invoke(cli, ["--database", database_url, *args])
            assert result.exit_code == 0, result.output
        assert live.positions() == positions
        assert {name: view.dump() for name, view in live.projections.items()} == tables
        assert min(positions.values()) < store.last_position()


def test_a_projector_keeps_its_views_in_a_database_given(store: Store) -> None:
    history(store)  # its close caught the store's own views up to the close
    with Projector(store, rules_of(store), VIEWS) as live:
        before = live.positions()
        tables = {name: view.dump() for name, view in live.projections.items()}
    assert max(before.values()) < store.last_position()
    private = SQLiteBackend(Database(kind="sqlite", path=":memory:"))
    with Projector(store, rules_of(store), VIEWS, db=private) as projector:
        projector.catch_up()
        assert set(projector.positions().values()) == {store.last_position()}
    assert private.execute("SELECT COUNT(*) FROM partnerledger_trail")[1][0][0] > 0
    private.close()  # given, so not closed by the projector
    with Projector(store, rules_of(store), VIEWS) as live:  # nothing written to the store's
        assert live.positions() == before
        assert {name: view.dump() for name, view in live.projections.items()} == tables


# ------------------------------------------------------------------ parsing


def test_times_of_a_cut() -> None:
    assert parse_moment("2025-03-03", "as_of") == datetime(
        2025, 3, 3, 23, 59, 59, 999999, tzinfo=UTC
    )
    assert parse_moment("2025-03-03T12:00:00+02:00", "as_of") == datetime(
        2025, 3, 3, 10, tzinfo=UTC
    )
    assert parse_moment("2025-03-03T12:00", "as_of", naive_is_utc=True) == datetime(
        2025, 3, 3, 12, tzinfo=UTC
    )
    for text, reason in (
        ("2025-03-03T12:00", "offset"),
        ("yesterday", "not a date"),
        ("2025-02-30", "not a date"),
        ("1899-12-31", "1900"),
        ("2200-01-01T00:00:00Z", "2200"),
        ("9999-12-31T23:59:59-01:00", "not a date"),
    ):
        with pytest.raises(InvalidCommand) as refused:
            parse_moment(text, "as_of_recorded")
        assert refused.value.field == "as_of_recorded"
        assert reason in refused.value.reason
    with pytest.raises(InvalidCommand) as naive:
        Cut(business=datetime(2025, 1, 1))
    assert naive.value.field == "as_of"
    cut = Cut.parse("2025-03-03", " ")
    assert cut == Cut(business=datetime(2025, 3, 3, 23, 59, 59, 999999, tzinfo=UTC))
    assert Cut.parse("", None) is None
    assert cut.describe() == "as of business time 2025-03-03 23:59:59 UTC"
    assert Cut(recorded=rec(3, 3)).describe() == "as known on 2025-03-03 18:00:00 UTC"
    assert Cut(recorded=rec(3, 3)).query() == {"as_of_recorded": "2025-03-03T18:00:00Z"}
    log = CutLog(Database(kind="sqlite", path=":memory:"))
    with pytest.raises(InvalidCommand):
        log.append([])


# ---------------------------------------------------------------------- CLI


def run(database_url: str, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--database", database_url, *args], catch_exceptions=False)


def test_the_commands_as_of_a_moment(store: Store, database_url: str) -> None:
    history(store)
    statement = ("statement", "--network", NET, "--member", "ann", "--period", "2025-Q1")
    known = run(database_url, *statement, "--as-of-recorded", "2025-03-09", "--json")
    assert known.exit_code == 0, known.output
    assert [e["amount"] for e in json.loads(known.stdout)["entries"]] == ["1000.00"]
    assert "Shown as known on 2025-03-09 23:59:59 UTC — computed from the log" in known.stderr
    later = run(database_url, *statement, "--as-of-recorded", "2025-03-10T18:00:00Z", "--json")
    assert [e["amount"] for e in json.loads(later.stdout)["entries"]] == ["1000.00", "500.00"]
    happened = run(database_url, *statement, "--as-of", "2025-02-25")
    assert happened.exit_code == 0, happened.output
    assert "500.00" in happened.stdout and "Open statement" in happened.stderr
    assert "Shown as of business time 2025-02-25 23:59:59 UTC" in happened.stderr

    # Standings: the period containing the business time; closed once the close is known.
    march = run(database_url, "standings", "--network", NET, "--as-of", "2025-03-31", "--json")
    rows = {r["member"]: r for r in json.loads(march.stdout)}
    assert {r["period"] for r in rows.values()} == {"2025-Q1"}
    assert not rows["ann"]["closed"]
    # ann in Q1 by then: 2 referrals given (2), 2 converted (10), 15,000 converted (15).
    assert rows["ann"]["score"] == "27" and rows["ann"]["tier"] == "gold"
    closed = run(database_url, "standings", "--network", NET, "--period", "2025-Q1",
                 "--as-of-recorded", "2025-04-06", "--json")  # fmt: skip
    assert all(r["closed"] for r in json.loads(closed.stdout))
    before = run(database_url, "standings", "--network", NET, "--period", "2025-Q1",
                 "--as-of-recorded", "2025-04-04", "--json")  # fmt: skip
    assert not any(r["closed"] for r in json.loads(before.stdout))

    cards = run(database_url, "scorecard", "--network", NET, "--member", "ann",
                "--as-of-recorded", "2025-02-15", "--json")  # fmt: skip
    assert cards.exit_code == 0, cards.output
    [(partner, card)] = [(c["partner"], c) for c in json.loads(cards.stdout) if c["given"]["sent"]]
    assert partner == "bob" and card["given"]["sent"] == 2 and card["given"]["converted"] == 1
    assert card["as_of"] == "2025-02-15T23:59:59.999999Z"

    trail_of = run(database_url, "trail", "--network", NET, "--entity", "referral:r2",
                   "--as-of-recorded", "2025-03-09", "--json")  # fmt: skip
    assert [json.loads(line)["type"] for line in trail_of.stdout.splitlines()] == [
        "referral.sent",
        "referral.accepted",
    ]
    everything = run(database_url, "trail", "--network", NET, "--entity", "referral:r2", "--json")
    assert len(everything.stdout.splitlines()) == 3

    early = run(database_url, "standings", "--network", NET, "--as-of", "2024-06-01")
    assert early.exit_code == 1
    assert f"network: no network '{NET}' as of business time 2024-06-01" in early.output
    ghost = run(database_url, *statement[:3], "--member", "zed", "--period", "2025-Q1",
                "--as-of", "2025-06-01")  # fmt: skip
    assert ghost.exit_code == 1 and "member: no member 'zed'" in ghost.output


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [
        ("--as-of", "yesterday", "not a date"),
        ("--as-of", "2025-03-03T12:00:00", "offset"),
        ("--as-of-recorded", "1800-01-01", "1900"),
        ("--as-of-recorded", "2025-13-01", "not a date"),
    ],
)
def test_bad_times_are_refused_naming_the_option(
    tmp_path: Path, option: str, value: str, reason: str
) -> None:
    database = str(tmp_path / "empty.db")
    for args in (
        ("standings", "--network", NET),
        ("scorecard", "--network", NET),
        ("statement", "--network", NET, "--member", "ann", "--period", "2025-Q1"),
        ("trail", "--network", NET, "--entity", "member:ann"),
    ):
        result = CliRunner().invoke(cli, ["--database", database, *args, option, value])
        assert result.exit_code == 2, result.output
        assert option in result.output and reason in result.output


# ---------------------------------------------------------------------- web


def score_of(html: str, member: str) -> str:
    """The score in a member's row of the standings table."""
    row = re.search(rf'<th scope="row">[^<]*<span class="muted">{member}\b.*?</tr>', html, re.S)
    assert row is not None, member
    found = re.search(r'<td class="num">([^<]*)</td>', row.group(0))
    assert found is not None
    return found.group(1)


def _write_forms(html: str) -> list[str]:
    """The actions of the page's forms that post (signing out aside)."""
    actions = re.findall(r'<form[^>]*method="post"[^>]*action="([^"]+)"', html)
    return [a for a in actions if a != "/logout"]


@pytest.fixture
def timeline(database_url: str) -> tuple[World, str]:
    """The web tests' world, a conversion, then (recorded later) a backdated one."""
    world = build_world(database_url)
    record(
        world,
        command("plugin.enabled", "riverside", plugin="fees",
                settings={"default_kind": "revenue_share", "default_rate": "0.10"}),
        command("referral.accepted", "riverside", referral="r-1", occurred_at=START),
        command("referral.converted", "riverside", referral="r-1", deal_value="10000",
                currency="USD", occurred_at=datetime(2025, 2, 1, 9, tzinfo=UTC)),
    )  # fmt: skip
    time.sleep(0.01)
    middle = datetime.now(UTC)
    time.sleep(0.01)
    record(
        world,
        command("referral.sent", "riverside", referral="r-2", from_member="ann-law",
                to_member="bob-tax", customer="Erin Example",
                occurred_at=datetime(2025, 1, 15, tzinfo=UTC)),
        command("referral.accepted", "riverside", referral="r-2",
                occurred_at=datetime(2025, 1, 16, tzinfo=UTC)),
        command("referral.converted", "riverside", referral="r-2", deal_value="5000",
                currency="USD", occurred_at=datetime(2025, 2, 15, tzinfo=UTC)),
    )  # fmt: skip
    return world, middle.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def test_the_pages_as_of_a_moment(timeline: tuple[World, str], tmp_path: Path) -> None:
    world, middle = timeline
    query = f"as_of_recorded={middle.replace(':', '%3A')}"
    with browser(world, tmp_path, world.coordinator) as b:
        now = b.get("/n/riverside/standings?period=2025-Q1")
        assert now.status_code == 200
        assert 'name="as_of_recorded" type="datetime-local"' in now.text
        assert "asof-banner" not in now.text
        then = b.get(f"/n/riverside/standings?period=2025-Q1&{query}")
        assert then.status_code == 200, then.text
        shown = middle[:10] + " " + middle[11:19] + " UTC"
        assert f"Shown as known on {shown}</strong> — computed from the log" in then.text
        # ann as known then: 1 referral given, converted, 10,000 (1 + 5 + 10); now 27.
        assert score_of(then.text, "ann-law") == "16"
        assert score_of(now.text, "ann-law") == "27"
        assert _write_forms(then.text) == []

        statement = b.get(f"/n/riverside/statements?member=ann-law&period=2025-Q1&{query}")
        assert statement.status_code == 200
        assert "1,000.00 USD" in statement.text and "1,500.00" not in statement.text
        assert "Record a payout" not in statement.text and _write_forms(statement.text) == []
        assert "as_of_recorded=" in statement.text  # the CSV link keeps the cut
        csv = b.get(f"/n/riverside/statements.csv?member=ann-law&period=2025-Q1&{query}")
        assert csv.status_code == 200 and csv.text.count("revenue_share") == 1
        live = b.get("/n/riverside/statements?member=ann-law&period=2025-Q1")
        assert "1,500.00 USD" in live.text and "/n/riverside/payouts" in live.text

        member = b.get(f"/n/riverside/members/bob-tax?{query}")
        assert member.status_code == 200 and "Shown as known on" in member.text
        assert _write_forms(member.text) == []
        assert _write_forms(b.get("/n/riverside/members/bob-tax").text)  # status actions

        trail_page = b.get(f"/n/riverside/trail?entity=referral%3Ar-2&{query}")
        assert trail_page.status_code == 404  # r-2 was not known then
        trail_page = b.get(f"/n/riverside/trail?entity=member%3Aann-law&{query}")
        assert trail_page.status_code == 200
        assert "referral.converted" in trail_page.text and "r-2" not in trail_page.text
        assert "Shown as known on" in trail_page.text

        happened = b.get("/n/riverside/standings?as_of=2025-01-31")
        assert happened.status_code == 200
        assert "Shown as of business time 2025-01-31 23:59:59 UTC" in happened.text
        # By 31 January (business time), r-2 was sent and accepted; nothing converted yet.
        assert score_of(happened.text, "ann-law") == "2"


def test_the_picker_is_for_coordinators_and_auditors(
    timeline: tuple[World, str], tmp_path: Path
) -> None:
    world, _ = timeline
    for email, shown in ((world.auditor, True), (world.member, False)):
        with browser(world, tmp_path, email) as b:
            page = b.get("/n/riverside/standings?period=2025-Q1")
            assert ('name="as_of"' in page.text) is shown
            cut = b.get("/n/riverside/standings?period=2025-Q1&as_of=2025-01-31")
            assert cut.status_code == 200 and "Shown as of business time" in cut.text
    with browser(world, tmp_path, world.auditor) as b:
        # What the picker sends: both inputs, one left empty, a time without an offset (UTC).
        picked = b.get("/n/riverside/standings?as_of_recorded=&as_of=2025-01-31T23%3A59%3A59")
        assert picked.status_code == 200
        assert "Shown as of business time 2025-01-31 23:59:59 UTC" in picked.text
        assert 'name="as_of" type="datetime-local" step="1" value="2025-01-31T23:59:59"' in (
            picked.text
        )
        assert "<h1>Standings · 2025-Q1</h1>" in picked.text  # the period containing it


@pytest.mark.parametrize(
    ("path", "param", "value"),
    [
        ("/n/riverside/standings", "as_of", "soon"),
        ("/n/riverside/statements", "as_of_recorded", "2025-02-30"),
        ("/n/riverside/members/ann-law", "as_of", "1800-01-01"),
        ("/n/riverside/trail", "as_of_recorded", "2025-01-01T25:00"),
        ("/n/riverside/standings", "as_of", "2024-01-01"),  # before the network existed
    ],
)
def test_bad_cuts_on_pages_are_refused_naming_the_parameter(
    database_url: str, tmp_path: Path, path: str, param: str, value: str
) -> None:
    world = build_world(database_url)
    with browser(world, tmp_path, world.auditor) as b:
        response = b.get(path, params={param: value})
        assert response.status_code == 422, response.text
        assert f"{param}: " in response.text


def test_the_api_as_of_a_moment(timeline: tuple[World, str], tmp_path: Path) -> None:
    world, middle = timeline
    from partnerledger.accounts import Accounts

    with Accounts(Database.parse(world.database_url)) as accounts:
        user = accounts.by_email(world.auditor)
        assert user is not None
        token = accounts.create_token(user.id, "asof")[0]
    headers = {"Authorization": f"Bearer {token}"}
    base = "/api/v1/networks/riverside"
    with browser(world, tmp_path) as b:

        def get(path: str, **params: str) -> Any:
            return b.get(base + path, params=params, headers=headers)

        q1 = get("/standings", period="2025-Q1", as_of_recorded=middle).json()["items"]
        assert {s["member"]: s["score"] for s in q1}["ann-law"] == "16"
        assert {
            s["member"]: s["score"] for s in get("/standings", period="2025-Q1").json()["items"]
        }["ann-law"] == "27"
        by_business = get("/standings", as_of="2025-01-31T23:59:59Z").json()
        assert by_business["period"] == "2025-Q1"
        statement = get("/members/ann-law/statements/2025-Q1", as_of_recorded=middle).json()
        assert [e["amount"] for e in statement["entries"]] == ["1000.00"]
        cards = get("/scorecards", as_of="2025-01-20T00:00:00Z").json()["items"]
        assert [(c["member"], c["given"]["sent"], c["given"]["converted"]) for c in cards] == [
            ("ann-law", 2, 0),
        ]
        events = get("/events", as_of_recorded=middle, type="referral.sent").json()["items"]
        assert [e["command"]["referral"] for e in events] == ["r-1"]
        events = get("/events", as_of="2025-01-15T00:00:00Z", type="referral.sent").json()
        assert [e["command"]["referral"] for e in events["items"]] == ["r-1", "r-2"]
        for path in ("/standings", "/scorecards", "/events", "/members/ann-law/statements/2025-Q1"):
            for param, value in (("as_of", "2025-01-01"), ("as_of_recorded", "1800-01-01T00:00Z")):
                problem = get(path, **{param: value})
                assert problem.status_code == 422, (path, param)
                assert problem.json()["errors"][0]["field"] == param
        assert get("/standings", as_of="2024-01-01T00:00:00Z").status_code == 404


def test_views_as_of_are_built_quickly_and_then_cached(tmp_path: Path) -> None:
    """A network of a few thousand events answers in well under the couple of seconds
    the demo network (12,000 events) takes, and again from the cache at once."""
    from partnerledger.commands import encode_command
    from partnerledger.demo import generate
    from partnerledger.jsonl import import_lines

    with Store(Database.parse(str(tmp_path / "demo.db"))) as store:
        import_lines(
            Ledger(store),
            (encode_command(c) for c in generate(members=20, months=12, networks=1)),
        )
        slug = next(e.network for _, e in store.read(topics=["network.created"]))
        rules = rules_of(store)
        cut = Cut(business=datetime(2199, 1, 1, tzinfo=UTC))
        started = time.perf_counter()
        with views_as_of(store, rules, slug, cut) as views:
            assert views.network is not None and views.log.events
        built = time.perf_counter() - started
        started = time.perf_counter()
        with views_as_of(store, rules, slug, cut):
            pass
        again = time.perf_counter() - started
    assert built < 10 and again < 0.5, (built, again)
    assert timedelta(seconds=again) < timedelta(seconds=built)
