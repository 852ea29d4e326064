"""The audit trail view: every event of every entity, in order, filtered and searched.

Runs on SQLite and PostgreSQL. The history is tests/data/riverside.jsonl,
recorded with a store clock that ticks one second per event, so each
event's recorded time is known.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from partnerledger import InvalidCommand, Ledger, NotFound, Store
from partnerledger.cli.main import cli
from partnerledger.commands import (
    MemberJoined,
    MemberUpdated,
    PayoutRecorded,
    PeriodClosed,
    ReferralAccepted,
    ReferralSent,
)
from partnerledger.jsonl import import_lines
from partnerledger.log import EventFilter, select_events
from partnerledger.projection import Projector
from partnerledger.views.trail import (
    TrailEntry,
    entities,
    like_pattern,
    named_entities,
    parse_entity,
    trail,
)

HISTORY = Path(__file__).parent / "data" / "riverside.jsonl"
LINES = HISTORY.read_bytes().splitlines()
#: The store time of the first event; each later event is one second later.
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NET = "riverside"


def ticking() -> Callable[[], datetime]:
    """A store clock that advances one second per event."""
    moments = (START + timedelta(seconds=n) for n in range(1_000_000))
    return lambda: next(moments)


@pytest.fixture
def clocked(store: Store) -> Ledger:
    return Ledger(store, clock=ticking())


@pytest.fixture
def views(clocked: Ledger) -> Iterator[Projector]:
    """The riverside history recorded, and the trail view caught up on it."""
    assert import_lines(clocked, LINES).written
    with Projector(clocked.store, names=["trail"]) as projector:
        projector.catch_up()
        yield projector


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def types_of(entries: list[TrailEntry]) -> list[str]:
    return [e.type for e in entries]


# ------------------------------------------------------------------ the rows


def test_a_members_trail_in_log_order_with_actor_and_both_times(views: Projector) -> None:
    found = trail(views.db, NET, "member:bloom")
    positions = [e.position for e in found]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)
    first = found[0]
    assert (first.type, first.actor) == ("member.invited", "coord@riverside.example")
    assert first.occurred_at == at("2025-01-06T09:07:00Z")
    assert first.recorded_at == START + timedelta(seconds=first.position - 1)
    joined = found[1]
    # Business time in UTC, whatever offset it arrived with (+01:00 in the file).
    assert (joined.type, joined.actor) == ("member.joined", "owner@bloom.example")
    assert joined.occurred_at == at("2025-01-08T11:00:00Z")
    assert joined.recorded_at.tzinfo is not None
    assert joined.command["member"] == "bloom"
    assert joined.command_id.startswith("sha256:")
    assert found[-1].type == "member.left"
    assert found[-1].as_dict() == {
        "position": 37,
        "type": "member.left",
        "actor": "coord@riverside.example",
        "occurred_at": "2025-12-31T09:00:00Z",
        "recorded_at": "2026-03-01T12:00:36Z",
        "command_id": found[-1].command_id,
        "command": json.loads(LINES[36]),
    }


def test_a_members_trail_is_what_the_log_filter_selects(views: Projector) -> None:
    for member in ("lee-law", "park-cpa", "bloom"):
        expected = [
            p for p, _ in select_events(views.store, EventFilter(network=NET, member=member))
        ]
        assert [e.position for e in trail(views.db, NET, f"member:{member}")] == expected


def test_a_referrals_events_belong_to_both_its_members(views: Projector) -> None:
    referral = trail(views.db, NET, "referral:r-0001")
    assert types_of(referral) == [
        "referral.sent",
        "referral.accepted",
        "referral.converted",
        "referral.reversed",
        "tyfcb.reported",  # it names the referral it thanks for
    ]
    later = {e.position for e in referral if e.type != "referral.sent"}
    for member in ("lee-law", "park-cpa"):
        assert later <= {e.position for e in trail(views.db, NET, f"member:{member}")}
    assert not later & {e.position for e in trail(views.db, NET, "member:bloom")}


def test_an_agreements_events_belong_to_its_parties_not_to_the_program(views: Projector) -> None:
    agreement = trail(views.db, NET, "agreement:a-bloom-program")
    assert types_of(agreement) == [
        "agreement.proposed",
        "agreement.accepted",
        "agreement.accepted",
        "agreement.terminated",
    ]
    bloom = {e.position for e in trail(views.db, NET, "member:bloom")}
    assert {e.position for e in agreement} <= bloom
    with pytest.raises(NotFound):
        trail(views.db, NET, "member:program")
    renewed = trail(views.db, NET, "member:park-cpa", types=["agreement.renewed"])
    assert [e.command["agreement"] for e in renewed] == ["a-lee-park"]


def test_every_event_is_in_the_networks_trail(views: Projector) -> None:
    network = trail(views.db, NET, "network:riverside")
    assert [e.position for e in network] == list(range(1, 38))
    assert types_of(trail(views.db, NET, "introduction:i-1")) == ["introduction.made"]
    meeting = trail(views.db, NET, "meeting:2025-01-14")
    assert types_of(meeting) == ["meeting.attended"] * 3 + ["visitor.brought"]


def test_periods_and_payouts_have_trails(views: Projector, clocked: Ledger) -> None:
    clocked.execute(
        PeriodClosed(
            network=NET, actor="coord", occurred_at=at("2025-04-02T09:00:00Z"), period="2025-Q1"
        ),
        PayoutRecorded(
            network=NET,
            actor="treasurer",
            occurred_at=at("2025-04-03T09:00:00Z"),
            member="lee-law",
            payout="p-1",
            amount=Decimal("250.00"),
            currency="USD",
        ),
    )
    views.catch_up()
    assert types_of(trail(views.db, NET, "period:2025-Q1")) == ["period.closed"]
    payout = trail(views.db, NET, "payout:p-1")
    assert [(e.type, e.actor) for e in payout] == [("payout.recorded", "treasurer")]
    assert trail(views.db, NET, "member:lee-law")[-1].type == "payout.recorded"


def test_the_entities_a_command_names() -> None:
    sent = ReferralSent(
        network="n",
        actor="a",
        occurred_at=START,
        referral="r-1",
        from_member="x",
        to_member="y",
        customer="C",
    )
    assert named_entities(sent) == ["network:n", "referral:r-1", "member:x", "member:y"]
    accepted = ReferralAccepted(network="n", actor="a", occurred_at=START, referral="r-1")
    assert named_entities(accepted) == ["network:n", "referral:r-1"]
    assert parse_entity("period:2025-01-15+90d") == ("period", "2025-01-15+90d")
    assert parse_entity("member:a:b") == ("member", "a:b")  # a slug may hold a colon


# ------------------------------------------------------------- filters and search


def test_filters_by_type_actor_and_business_time(views: Projector) -> None:
    db = views.db
    lee = "member:lee-law"
    assert types_of(trail(db, NET, lee, types=["referral.sent", "referral.lost"])) == [
        "referral.sent",
        "referral.sent",
        "referral.sent",
        "referral.lost",
    ]
    by_park = trail(db, NET, lee, actor="park@park-cpa.example")
    assert by_park
    assert {e.actor for e in by_park} == {"park@park-cpa.example"}
    # since is inclusive, until exclusive, both on business time.
    window = trail(db, NET, lee, since=at("2025-01-10T09:00:00Z"), until=at("2025-01-12T09:00:00Z"))
    assert types_of(window) == ["referral.sent", "referral.accepted"]
    late = trail(db, NET, lee, since=at("2025-12-01T00:00:00Z"))
    assert types_of(late) == ["agreement.renewed"]
    assert trail(db, NET, lee, types=["member.left"]) == []  # no match is no error


def test_search_ignores_case_and_reads_the_whole_command(views: Projector) -> None:
    db = views.db
    found = trail(db, NET, "member:park-cpa", search="dana WHITFIELD")
    assert [(e.type, e.command["customer"]) for e in found] == [("referral.sent", "Dana Whitfield")]
    # Keys, values and nested terms are all searched.
    assert types_of(trail(db, NET, "member:lee-law", search="REVENUE_SHARE")) == [
        "agreement.amended"
    ]
    assert len(trail(db, NET, "network:riverside", search="Lee & Co.")) == 1
    assert trail(db, NET, "member:lee-law", search="no such text") == []


def test_search_treats_wildcards_and_quotes_as_text(clocked: Ledger, views: Projector) -> None:
    def sent(referral: str, note: str) -> ReferralSent:
        return ReferralSent(
            network=NET,
            actor="ana@lee-law.example",
            occurred_at=at("2025-05-01T09:00:00Z"),
            referral=referral,
            from_member="lee-law",
            to_member="park-cpa",
            customer="Ada",
            note=note,
        )

    clocked.execute(
        sent("r-pct", "100% sure"),
        sent("r-quote", 'she said "call me" twice'),
        sent("r-accent", "Café École"),
    )
    views.catch_up()
    db = views.db

    def hits(text: str) -> list[str]:
        return [e.command["referral"] for e in trail(db, NET, "member:lee-law", search=text)]

    assert hits("0% S") == ["r-pct"]
    assert hits("0_") == []  # not "a zero then any character"
    assert hits("%") == ["r-pct"]
    assert hits('"CALL me"') == ["r-quote"]
    assert hits("Café École") == ["r-accent"]
    assert like_pattern('a%b_c!d"e') == '%a!%b!_c!!d\\"e%'


def test_paging_with_after_and_limit(views: Projector) -> None:
    whole = trail(views.db, NET, "network:riverside")
    pages: list[TrailEntry] = []
    after = 0
    while page := trail(views.db, NET, "network:riverside", after=after, limit=10):
        pages.extend(page)
        after = page[-1].position
    assert pages == whole
    assert len(trail(views.db, NET, "network:riverside", limit=3)) == 3


def test_errors(views: Projector) -> None:
    db = views.db
    with pytest.raises(NotFound) as network:
        trail(db, "elsewhere", "member:bloom")
    assert network.value.field == "network"
    with pytest.raises(NotFound) as entity:
        trail(db, NET, "member:nobody")
    assert entity.value.field == "entity"
    for malformed in ("bloom", "member:", "robot:r2", ":bloom"):
        with pytest.raises(InvalidCommand) as invalid:
            trail(db, NET, malformed)
        assert invalid.value.field == "entity"
        assert "expected kind:id" in invalid.value.reason
    with pytest.raises(InvalidCommand) as kind:
        trail(db, NET, "member:bloom", types=["member.exploded"])
    assert kind.value.field == "type"
    with pytest.raises(InvalidCommand) as naive:
        trail(db, NET, "member:bloom", since=datetime(2025, 1, 1))
    assert naive.value.field == "since"
    with pytest.raises(InvalidCommand):
        trail(db, NET, "member:bloom", limit=0)
    with pytest.raises(NotFound):
        entities(db, "elsewhere")
    with pytest.raises(InvalidCommand):
        entities(db, NET, kind="robot")


def test_the_entities_of_a_network_with_their_counts(views: Projector) -> None:
    listed = {e.entity: e for e in entities(views.db, NET)}
    assert next(iter(listed)) == "network:riverside"
    assert listed["network:riverside"].events == 37
    assert (listed["referral:r-0001"].events, listed["referral:r-0002"].events) == (5, 2)
    assert listed["member:lee-law"].events == len(trail(views.db, NET, "member:lee-law"))
    bloom = listed["member:bloom"]
    assert bloom.kind == "member"
    assert bloom.first_occurred_at == at("2025-01-06T09:07:00Z")
    assert bloom.last_occurred_at == at("2025-12-31T09:00:00Z")
    assert bloom.last_position == 37
    assert bloom.as_dict()["last_occurred_at"] == "2025-12-31T09:00:00Z"
    members = entities(views.db, NET, kind="member")
    assert [e.entity for e in members] == ["member:bloom", "member:lee-law", "member:park-cpa"]
    assert entities(views.db, NET, kind="payout") == []


# ----------------------------------------------------------------- rebuilding


def test_a_rebuild_gives_the_view_built_between_writes(store: Store) -> None:
    ledger = Ledger(store, clock=ticking())
    # Small batches: a referral's parties are remembered across batches, in the table.
    with Projector(store, names=["trail"], batch=3) as incremental:
        for start in range(0, len(LINES), 7):
            assert import_lines(ledger, LINES[start : start + 7]).written
            incremental.catch_up()
        ledger.execute(
            MemberUpdated(
                network=NET, actor="coord", occurred_at=START, member="lee-law", name="L"
            ),
            MemberJoined(
                network=NET, actor="coord", occurred_at=START, member="new", name="N", category="c"
            ),
        )
        incremental.catch_up()
        built = incremental.projections["trail"].dump()
        assert any(row[0] == "partnerledger_trail_parties" for row in built)
    with Projector(store, names=["trail"]) as fresh:
        assert fresh.rebuild(["trail"]) == len(LINES) + 2
        assert fresh.projections["trail"].dump() == built


# ------------------------------------------------------------------- the CLI

Run = Callable[..., Result]


@pytest.fixture
def run(database_url: str) -> Run:
    """Invoke the CLI against the test database."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(
            cli,
            ["--database", database_url, *args],
            env={"PARTNERLEDGER_ACTOR": "coord@riverside.example"},
            catch_exceptions=False,
        )

    return invoke


def test_the_trail_command(run: Run) -> None:
    assert run("import", str(HISTORY)).exit_code == 0
    table = run("trail", "--network", NET, "--entity", "referral:r-0001")
    assert table.exit_code == 0, table.output
    for text in ("referral.accepted", "park@park-cpa.example", "deal_value=10000.00", "2025-02-01"):
        assert text in table.stdout
    assert "5 events in the trail of referral:r-0001" in table.stderr

    listed = run("trail", "--network", NET, "--entity", "member:park-cpa", "--json")
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert set(rows[0]) == {
        "position",
        "type",
        "actor",
        "occurred_at",
        "recorded_at",
        "command_id",
        "command",
    }
    assert rows[0]["type"] == "member.joined"
    assert rows[0]["occurred_at"] == "2025-01-06T09:06:00Z"
    assert "referral.accepted" in [r["type"] for r in rows]

    def types(*args: str) -> list[str]:
        result = run("trail", "--network", NET, "--json", *args)
        assert result.exit_code == 0, result.output
        return [json.loads(line)["type"] for line in result.stdout.splitlines()]

    lee = ("--entity", "member:lee-law")
    assert types(*lee, "--type", "referral.lost", "--type", "referral.declined") == [
        "referral.declined",
        "referral.lost",
    ]
    assert types(*lee, "--since", "2025-12-01") == ["agreement.renewed"]
    assert types(*lee, "--until", "2025-01-06T09:06:00Z") == ["member.joined"]
    assert types(*lee, "--actor", "owner@bloom.example") == ["referral.sent"]
    assert types(*lee, "--search", "WHITFIELD") == ["referral.sent"]
    assert len(types(*lee, "--limit", "4")) == 4

    missing = run("trail", "--network", NET, "--entity", "member:nobody")
    assert missing.exit_code == 1
    assert "Error: entity: no events of member:nobody" in missing.output
    malformed = run("trail", "--network", NET, "--entity", "nobody")
    assert malformed.exit_code == 1
    assert "expected kind:id" in malformed.output
    unknown = run("trail", "--network", "elsewhere", "--entity", "member:bloom")
    assert unknown.exit_code == 1
    assert "Error: network: no network 'elsewhere'" in unknown.output
    assert run("trail", "--network", NET, "--entity", "member:bloom", "--type", "x").exit_code == 2
    assert (
        run("trail", "--network", NET, "--entity", "member:bloom", "--since", "soon").exit_code == 2
    )
