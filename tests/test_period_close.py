"""The standings view, period close, overrides and what-if, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner

from partnerledger import Ledger, Store
from partnerledger.activity import member_activities
from partnerledger.cli.main import cli
from partnerledger.closing import close_period, plan_close, what_if
from partnerledger.commands import TierDecided, convert_command, encode_command
from partnerledger.demo import generate
from partnerledger.errors import AlreadyExists, DomainError, InvalidCommand, InvalidTransition
from partnerledger.jsonl import import_lines
from partnerledger.periods import Calendar
from partnerledger.projection import Projector
from partnerledger.rules import Score
from partnerledger.views import standings as standings_view
from test_traffic_lights import NET, chapter_history, line

JULY = datetime(2025, 7, 1, tzinfo=UTC)
LADDER = [
    {"name": "bronze", "threshold": "0"},
    {"name": "silver", "threshold": "30"},
    {"name": "gold", "threshold": "70"},
]


def chapter(ledger: Ledger, *extra: Any) -> None:
    """The worked six months of tests/test_traffic_lights.py, scored by traffic lights."""
    history = chapter_history()
    start = history[0].occurred_at
    ledger.execute(
        history[0],
        line("network.tiers_set", start, tiers=LADDER),
        line("plugin.enabled", start, plugin="traffic-lights"),
        line("plugin.enabled", start, plugin="threshold-tiers"),
        *history[1:],
        *extra,
    )


def by_member(rows: list[standings_view.Standing]) -> dict[str, standings_view.Standing]:
    return {row.member: row for row in rows}


def june(projector: Projector) -> dict[str, standings_view.Standing]:
    projector.catch_up()
    return by_member(standings_view.read_period(projector.db, NET, "2025-06"))


def test_traffic_lights_points_and_colours_of_worked_members(
    ledger: Ledger, projector: Projector
) -> None:
    chapter(ledger)
    rows = june(projector)
    ann = rows["ann"]
    assert ann.window.start == datetime(2025, 1, 1, tzinfo=UTC)  # six months to 1 July
    assert ann.window.end == JULY
    assert ann.score is not None
    assert (ann.score.plugin, ann.score.version) == ("traffic-lights", "1.0.0")
    assert ann.score.value == Score(
        total=Decimal(70),
        breakdown={
            "absences": Decimal(15), "referrals": Decimal(10), "tyfcb": Decimal(10),
            "visitors": Decimal(10), "testimonials": Decimal(10), "on_time": Decimal(5),
            "trainings": Decimal(10),
        },
        label="green",
    )  # fmt: skip
    assert ann.tier_name == "gold"
    assert (rows["bob"].total, rows["bob"].label, rows["bob"].tier_name) == (10, "grey", "bronze")
    assert (rows["cat"].total, rows["cat"].label) == (20, "grey")
    assert not ann.closed
    # Every period from the network's creation to its last event has rows.
    periods = {s.period for s in standings_view.history(projector.db, NET, "ann")}
    assert periods == {"2024-12", *(f"2025-{m:02d}" for m in range(1, 7))}


def test_standings_follow_every_command(ledger: Ledger, projector: Projector) -> None:
    chapter(ledger)
    assert june(projector)["cat"].total == 20
    # cat brings visitors: the open period is recomputed after the command.
    ledger.execute(
        *(
            line("visitor.brought", datetime(2025, 6, 5, tzinfo=UTC), member="cat", visitor=f"x{n}")
            for n in range(5)
        )
    )
    assert june(projector)["cat"].total == 30


def test_view_activity_equals_the_log_for_every_period(
    ledger: Ledger, store: Store, projector: Projector
) -> None:
    lines = (encode_command(c) for c in generate(seed=5, members=12, months=8, networks=1))
    import_lines(ledger, lines)
    projector.catch_up()
    work = ledger.unit_of_work()
    network = work.network("riverside")
    enabled = work.enabled(network)
    span = standings_view.span(projector.db, "riverside")
    assert span is not None
    periods = Calendar.of(network).between(*span)
    assert len(periods) >= 3
    for period in periods:
        window = standings_view.period_window(ledger.rules, enabled, period)
        from_view = standings_view.activities(projector.db, "riverside", window, network.currency)
        assert from_view == member_activities(store, "riverside", window), period.name


def test_close_records_decisions_that_rules_never_change(
    ledger: Ledger, store: Store, projector: Projector
) -> None:
    chapter(ledger)
    before = june(projector)
    plan = close_period(ledger, projector, NET, "2025-06", actor="coordinator", at=JULY)
    assert plan.recorded
    types = [event.type for event in plan.events]
    assert types[0] == "period.closed"
    assert types.count("tier.decided") == 3
    decided = [e.command for e in plan.events if isinstance(e.command, TierDecided)]
    ann = next(c for c in decided if c.member == "ann")
    assert ann.score is not None and ann.tier is not None
    assert (ann.score.plugin, ann.score.version) == ("traffic-lights", "1.0.0")
    assert (ann.tier.plugin, ann.tier.version) == ("threshold-tiers", "1.0.0")
    assert [r.plugin for r in ann.rules] == ["traffic-lights", "threshold-tiers"]
    assert ann.inputs == before["ann"].activity
    assert ann.inputs_digest == standings_view.inputs_digest(ann.inputs)

    closed = june(projector)
    assert all(row.closed for row in closed.values())
    assert closed["ann"].total == 70 and closed["ann"].tier_name == "gold"

    # The rules change: open periods follow, the closed one does not.
    ledger.execute(
        line(
            "plugin.configured", JULY, plugin="traffic-lights",
            settings={"tyfcb_10": "5000", "tyfcb_15": "9000"},
        )
    )  # fmt: skip
    after = june(projector)
    assert after["ann"].total == 70 and after["ann"].label == "green"
    may = by_member(standings_view.read_period(projector.db, NET, "2025-05"))
    assert may["ann"].total is not None and not may["ann"].closed

    # What-if: today's rules would give ann 65 (tyfcb 5 points) and silver; nothing written.
    last = store.last_position()
    found = {w.member: w for w in what_if(ledger, projector, NET, "2025-06")}
    assert store.last_position() == last
    assert found["ann"].changed
    assert found["ann"].today is not None and found["ann"].today.total == 65
    assert found["ann"].today.tier_name == "silver"
    assert found["ann"].as_dict()["recorded"]["tier"] == "gold"
    assert not found["bob"].changed

    # A rebuild from the log gives the recorded decisions back, unchanged.
    projector.rebuild(["standings"])
    assert june(projector) == after


def test_the_next_period_sees_the_recorded_tier(ledger: Ledger, projector: Projector) -> None:
    chapter(ledger, line("meeting.attended", datetime(2025, 7, 3, tzinfo=UTC), member="ann",
                         meeting="w26", status="present"))  # fmt: skip
    close_period(ledger, projector, NET, "2025-06", actor="coordinator", at=JULY)
    ledger.execute(
        line("tier.overridden", JULY, period="2025-06", member="bob", tier="silver",
             reason="organised the chapter's visitor day")
    )  # fmt: skip
    projector.catch_up()
    rows = june(projector)
    assert rows["bob"].tier_name == "silver"
    assert rows["bob"].override_reason == "organised the chapter's visitor day"
    assert rows["bob"].as_dict()["decided_tier"] == "bronze"
    july = by_member(standings_view.read_period(projector.db, NET, "2025-07"))
    assert july["bob"].previous == "silver"
    assert july["ann"].previous == "gold"


def test_close_refusals_write_nothing(ledger: Ledger, store: Store, projector: Projector) -> None:
    chapter(ledger)
    last = store.last_position()
    cases: list[tuple[str, str, datetime, type[DomainError], str]] = [
        (NET, "2025-06", JULY - timedelta(seconds=1), InvalidTransition, "has not ended yet"),
        (NET, "2025-Q2", JULY, InvalidCommand, "periods are months"),
        (NET, "2025-13", JULY, InvalidCommand, "is not a period"),
        ("nowhere", "2025-06", JULY, DomainError, "no network 'nowhere'"),
    ]
    for network, period, at, error, reason in cases:
        with pytest.raises(error, match=reason) as caught:
            close_period(ledger, projector, network, period, actor="c", at=at)
        assert caught.value.field in ("period", "network")
    assert store.last_position() == last

    close_period(ledger, projector, NET, "2025-06", actor="c", at=JULY)
    last = store.last_position()
    with pytest.raises(AlreadyExists, match="already closed"):
        close_period(ledger, projector, NET, "2025-06", actor="c", at=JULY)
    for fields, reason in (
        ({"period": "2025-05", "member": "ann", "tier": "gold"}, "is not closed"),
        ({"period": "2025-06", "member": "ann", "tier": "platinum"}, "not on the network's ladder"),
        ({"period": "2025-06", "member": "ann", "tier": "gold"}, "already holds gold"),
        ({"period": "2025-06", "member": "zed", "tier": "gold"}, "no tier was decided"),
    ):
        with pytest.raises(DomainError, match=reason):
            ledger.execute(line("tier.overridden", JULY, reason="because", **fields))
    assert store.last_position() == last


def test_preview_writes_nothing(ledger: Ledger, store: Store, projector: Projector) -> None:
    chapter(ledger)
    last = store.last_position()
    plan, _ = plan_close(ledger, projector, NET, "2025-06", actor="c", at=JULY)
    assert not plan.recorded and len(plan.events) == 4
    assert store.last_position() == last


def test_grace_periods_chain_through_the_view(ledger: Ledger, projector: Projector) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    commands = [
        convert_command(x)
        for x in (
            {"type": "network.created", "network": "g", "actor": "c", "occurred_at": start,
             "name": "G", "currency": "EUR", "tiers": [{"name": "low", "threshold": "0"},
                                                         {"name": "high", "threshold": "2"}]},
            {"type": "plugin.enabled", "network": "g", "actor": "c", "occurred_at": start,
             "plugin": "points"},
            {"type": "plugin.enabled", "network": "g", "actor": "c", "occurred_at": start,
             "plugin": "threshold-tiers", "settings": {"grace_periods": 1}},
            {"type": "member.joined", "network": "g", "actor": "c", "occurred_at": start,
             "member": "a", "name": "A", "category": "x"},
            {"type": "member.joined", "network": "g", "actor": "c", "occurred_at": start,
             "member": "b", "name": "B", "category": "y"},
        )
    ]  # fmt: skip
    # a is active in January only; the months after, a keeps "high" for one grace period.
    for n in range(3):
        commands.append(
            convert_command(
                {"type": "referral.sent", "network": "g", "actor": "a",
                 "occurred_at": start + timedelta(days=n + 1), "referral": f"r{n}",
                 "from_member": "a", "to_member": "b", "customer": f"c{n}"}
            )
        )  # fmt: skip
    commands.append(
        convert_command(
            {"type": "one_to_one.held", "network": "g", "actor": "b", "member": "b",
             "occurred_at": datetime(2025, 4, 2, tzinfo=UTC), "with_member": "a"}
        )
    )  # fmt: skip
    ledger.execute(*commands)
    projector.catch_up()
    a = {s.period: s for s in standings_view.history(projector.db, "g", "a")}
    jan = a["2025-01"]
    assert jan.total is not None and jan.total >= 2 and jan.tier_name == "high"
    feb, mar = a["2025-02"], a["2025-03"]
    assert feb.total is not None and feb.total < 2
    assert (feb.tier_name, feb.previous, feb.periods_below) == ("high", "high", 0)
    assert (mar.tier_name, mar.previous, mar.periods_below) == ("low", "high", 1)


def test_cli_standings_close_what_if_and_override(database_url: str, ledger: Ledger) -> None:
    chapter(ledger)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, ["--database", database_url, *args])
        assert result.exit_code == code, result.output
        return result.output

    rows = json.loads(run("standings", "--network", NET, "--period", "2025-06", "--json"))
    ann = next(r for r in rows if r["member"] == "ann")
    assert (ann["score"], ann["label"], ann["tier"], ann["closed"]) == (
        "70",
        "green",
        "gold",
        False,
    )
    assert ann["breakdown"]["tyfcb"] == "10"
    # The default period is the latest with events; a date names the period containing it.
    assert json.loads(run("standings", "--network", NET, "--json")) == rows
    assert (
        json.loads(run("standings", "--network", NET, "--period", "2025-06-15", "--json")) == rows
    )
    assert "periods are months" in run("standings", "--network", NET, "--period", "2025-Q2", code=1)

    preview = json.loads(
        run("close-period", "--network", NET, "--period", "2025-06", "--preview",
            "--at", "2025-07-01T00:00:00Z", "--json")
    )  # fmt: skip
    assert preview["recorded"] is False and len(preview["decisions"]) == 3
    assert "Closed 2025-06: 3 tier decisions" in run(
        "close-period", "--network", NET, "--period", "2025-06", "--at", "2025-07-01T00:00:00Z"
    )
    assert "already closed" in run(
        "close-period", "--network", NET, "--period", "2025-06", "--at", "2025-07-02", code=1
    )
    run(
        "override-tier", "--network", NET, "--period", "2025-06", "--member", "cat",
        "--tier", "silver", "--reason", "mentor of the month", "--at", "2025-07-02T00:00:00Z",
    )  # fmt: skip
    rows = json.loads(run("standings", "--network", NET, "--period", "2025-06", "--json"))
    cat = next(r for r in rows if r["member"] == "cat")
    assert (cat["tier"], cat["override_reason"], cat["closed"]) == (
        "silver", "mentor of the month", True,
    )  # fmt: skip
    assert "0 of 3 members would be decided differently" in run(
        "what-if", "--network", NET, "--period", "2025-06"
    )
    run("plugin", "configure", NET, "traffic-lights", "--set", "tyfcb_10=5000",
        "--set", "tyfcb_15=9000")  # fmt: skip
    changed = json.loads(run("what-if", "--network", NET, "--period", "2025-06", "--json"))
    ann_what_if = next(w for w in changed if w["member"] == "ann")
    assert ann_what_if["changed"] and ann_what_if["what_if"]["score"] == "65"
    assert ann_what_if["recorded"]["score"] == "70"


def test_a_tier_decision_must_carry_its_own_inputs(ledger: Ledger, projector: Projector) -> None:
    chapter(ledger)
    plan, _ = plan_close(ledger, projector, NET, "2025-06", actor="c", at=JULY)
    ledger.execute(plan.events[0].command)  # period.closed alone
    decided = next(e.command for e in plan.events if isinstance(e.command, TierDecided))
    import msgspec

    wrong_digest = msgspec.structs.replace(decided, inputs_digest="sha256:" + "0" * 64)
    with pytest.raises(InvalidCommand, match="does not match the inputs") as caught:
        ledger.execute(wrong_digest)
    assert caught.value.field == "inputs_digest"
    other = "bob" if decided.member != "bob" else "ann"
    with pytest.raises(InvalidCommand, match="the inputs are") as caught:
        ledger.execute(msgspec.structs.replace(decided, member=other))
    assert caught.value.field == "inputs.member"
    ledger.execute(decided)
