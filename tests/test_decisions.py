"""Recorded decisions recomputed with the recorded rules, beside today's what-if.

On SQLite and PostgreSQL.

A demo history (riverside: quarterly, traffic lights, threshold tiers with a
grace period, fees) with the fees plugin paying a default revenue share and
tier bonuses, three quarters closed in order and a payout in between; then
the checks: every decision matches; a reconfigured plugin leaves the record
matching and shows in the what-if; a tampered decision (in the events, or
edited in the database row) is a mismatch naming the field; a plugin that
is missing or at another version is "rules unavailable"; events cut to a
window are "inputs unavailable"; the CLI's exit codes; the web page's
guards.
"""

from __future__ import annotations

import json
import re
import sqlite3
import types
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from click.testing import CliRunner

from partnerledger import Database, Ledger, Store
from partnerledger.audit.decisions import (
    STATUSES,
    DecisionCheck,
    check_decisions,
    check_store,
    closed_periods,
    like_view,
    summary,
)
from partnerledger.cli.main import cli
from partnerledger.closing import close_period, what_if
from partnerledger.commands import (
    Command,
    StatementClosed,
    TierDecided,
    convert_command,
)
from partnerledger.demo import generate
from partnerledger.events import Event, encode_event
from partnerledger.pluginmanager import ALLOWLIST_ENV, Rules, load_rules
from partnerledger.plugins import BUILTIN_PLUGINS
from partnerledger.plugins import traffic_lights as traffic_lights_plugin
from partnerledger.projection import Projector
from partnerledger.rules import TierChoice, inputs_digest
from webkit import World, browser, build_world, record

NET = "riverside"
FEES = {
    "default_kind": "revenue_share",
    "default_rate": "0.05",
    "tier_bonuses": {"silver": "20", "gold": "50"},
    "bonus_currency": "USD",
}
CLOSES = (("2024-Q1", "2024-04-01"), ("2024-Q2", "2024-07-01"), ("2024-Q3", "2024-10-01"))


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def command(kind: str, when: str, **fields: Any) -> Command:
    return convert_command(
        {"type": kind, "network": NET, "actor": "coord", "occurred_at": at(when), **fields}
    )


def demo_commands() -> list[Command]:
    """Nine months of demo riverside; fees pays 5% of every deal and tier bonuses from the start."""
    commands = list(generate(seed=5, members=14, months=9, networks=1))
    index = next(
        i
        for i, c in enumerate(commands)
        if c.type == "plugin.enabled" and getattr(c, "plugin", "") == "fees"
    )
    fees = convert_command(
        {"type": "plugin.configured", "network": NET, "actor": "coord",
         "occurred_at": commands[index].occurred_at, "plugin": "fees", "settings": FEES}
    )  # fmt: skip
    commands.insert(index + 1, fees)
    return commands


@pytest.fixture(autouse=True)
def signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Closes sign checkpoints: with a key of the test's own."""
    monkeypatch.setenv("PARTNERLEDGER_SIGNING_KEY", str(tmp_path / "keys" / "signing.key"))
    monkeypatch.setenv("PARTNERLEDGER_ORIGIN", "decisions.test")


@pytest.fixture
def closed(ledger: Ledger, projector: Projector) -> Ledger:
    """The demo history with 2024-Q1, Q2 and Q3 closed, and a payout between Q2 and Q3."""
    ledger.execute_all(demo_commands())
    for name, day in CLOSES:
        if name == "2024-Q3":
            ledger.execute(
                command("payout.recorded", "2024-07-10", member=paid(projector),
                        payout="p-1", amount="10", currency="USD", reference="ACH 1")
            )  # fmt: skip
        close_period(ledger, projector, NET, name, actor="coord", at=at(day))
    return ledger


def paid(projector: Projector) -> str:
    """A member with a closed statement (so with a balance)."""
    projector.catch_up()
    return next(e.command.member for _, e in projector.store.read() if e.type == "statement.closed")


def by_kind(checks: list[DecisionCheck], kind: str) -> list[DecisionCheck]:
    return [c for c in checks if c.kind == kind]


def statuses(checks: list[DecisionCheck]) -> set[str]:
    return {c.status for c in checks}


def rules_without(name: str) -> Rules:
    plugins = [p for p in BUILTIN_PLUGINS if getattr(p, "NAME", None) != name]
    assert len(plugins) == len(BUILTIN_PLUGINS) - 1
    return load_rules(builtins=plugins, env={ALLOWLIST_ENV: ""})


def rules_with_version(name: str, module: types.ModuleType, version: str) -> Rules:
    """The built-ins, with one of them installed at another version (the same code)."""
    other = types.ModuleType(f"{module.__name__}_other")
    other.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
    other.VERSION = version  # type: ignore[attr-defined]
    plugins = [other if getattr(p, "NAME", None) == name else p for p in BUILTIN_PLUGINS]
    return load_rules(builtins=plugins, env={ALLOWLIST_ENV: ""})


def replaced(events: list[tuple[int, Event]], position: int, changed: Any) -> list[Any]:
    """The events with one event's command replaced."""
    return [
        (p, msgspec.structs.replace(e, command=changed) if p == position else e) for p, e in events
    ]


# ------------------------------------------------------------------ all match


def test_every_recorded_decision_recomputes_the_same(closed: Ledger, store: Store) -> None:
    events = list(store.read())
    checks = check_store(store, closed.rules, NET, today=closed.rules)
    assert statuses(checks) == {"match"}, [c.summary for c in checks if c.status != "match"]
    counts = summary(checks)
    assert counts == {**dict.fromkeys(STATUSES, 0), "match": len(checks)}
    decided = [(p, e) for p, e in events if isinstance(e.command, TierDecided)]
    statements = [(p, e) for p, e in events if isinstance(e.command, StatementClosed)]
    lines = [line for _, e in statements for line in e.command.entries]
    tiers = by_kind(checks, "tier")
    assert [(c.position, c.command_id) for c in tiers] == [(p, e.command_id) for p, e in decided]
    assert len(by_kind(checks, "statement")) == len(statements)
    assert len(by_kind(checks, "statement_entry")) == len(lines)
    # Every kind of entry was recomputed: shares of deals, clawbacks, bonuses, the payout.
    kinds = {c.recorded["result"]["kind"] for c in by_kind(checks, "statement_entry")}
    assert {"revenue_share", "bonus", "payout"} <= kinds
    assert closed_periods(events, NET) == [name for name, _ in CLOSES]

    tier = tiers[-1]
    command = decided[-1][1].command
    assert tier.recorded["inputs_digest"] == command.inputs_digest
    assert tier.recomputed is not None
    assert tier.recomputed["inputs_digest"] == command.inputs_digest
    assert tier.recorded["scoring"] == {"plugin": "traffic-lights", "version": "1.0.0"}
    assert tier.recorded["rules"][1] == {
        "plugin": "threshold-tiers", "version": "1.0.0", "settings": {"grace_periods": 1},
    }  # fmt: skip
    assert tier.recomputed["result"] == tier.recorded["result"]
    # Q2 and Q3 follow a closed period: their previous tiers are checked too.
    notes = [str(d) for c in tiers if c.period != "2024-Q1" for d in c.details]
    assert not any("taken as recorded" in n for n in notes)

    # Nothing changed since: today's rules decide the same.
    assert all(c.what_if is not None and c.what_if["changed"] is False for c in checks)
    json.dumps([c.as_dict() for c in checks])  # plain data

    # The same from plain events (an audit bundle's): no positions, the same statuses.
    plain = check_decisions((e for _, e in events), closed.rules, NET)
    assert [c.status for c in plain] == [c.status for c in checks]
    assert all(c.position is None and c.what_if is None for c in plain)
    # One period.
    q2 = check_decisions(events, closed.rules, NET, period="2024-Q2")
    assert {c.period for c in q2} == {"2024-Q2"} and statuses(q2) == {"match"}
    assert len(q2) == len([c for c in checks if c.period == "2024-Q2"])


def test_a_recomputed_activity_is_written_as_the_view_writes_it(closed: Ledger) -> None:
    decided = next(
        e.command
        for _, e in closed.store.read()
        if isinstance(e.command, TierDecided) and e.command.inputs.converted_value_given
    )
    inputs = decided.inputs
    longhand = msgspec.structs.replace(
        inputs, converted_value_given=inputs.converted_value_given.quantize(Decimal("0.0001"))
    )
    assert longhand == inputs and inputs_digest(longhand) != inputs_digest(inputs)
    assert inputs_digest(like_view(longhand)) == decided.inputs_digest


# ------------------------------------------------------------------ what-if


def test_reconfigured_rules_leave_the_record_and_show_in_the_what_if(
    closed: Ledger, store: Store, projector: Projector
) -> None:
    closed.execute(
        command("plugin.configured", "2024-10-02", plugin="traffic-lights",
                settings={"tyfcb_5": "100", "tyfcb_10": "200", "tyfcb_15": "300"}),
        command("plugin.configured", "2024-10-02", plugin="fees",
                settings={**FEES, "tier_bonuses": {"silver": "30", "gold": "70"}}),
    )  # fmt: skip
    q3_decided = [
        e.command for _, e in store.read() if isinstance(e.command, TierDecided)
        and e.command.period == "2024-Q3" and e.command.tier is not None
    ]  # fmt: skip
    bumped = next(c for c in q3_decided if c.tier.value.tier != "gold")  # type: ignore[union-attr]
    closed.execute(
        command("tier.overridden", "2024-10-03", period="2024-Q3", member=bumped.member,
                tier="gold", reason="ran the referral workshop")
    )  # fmt: skip
    checks = check_store(store, closed.rules, NET, today=closed.rules)
    assert statuses(checks) == {"match"}
    overridden = next(c for c in by_kind(checks, "tier") if c.member == bumped.member
                      and c.period == "2024-Q3")  # fmt: skip
    assert overridden.recorded["override"] == "gold"
    assert overridden.what_if is not None
    assert overridden.what_if["recorded"]["in_force"] == "gold"
    changed = [c for c in checks if c.what_if and c.what_if["changed"]]
    tiers = by_kind(changed, "tier")
    assert tiers, "cheaper thanks for closed business must lift some scores"
    for check in tiers:
        assert check.what_if is not None
        assert check.what_if["recorded"]["score"] == check.recorded["result"]["score"]
        assert Decimal(check.what_if["what_if"]["score"]) > Decimal(
            check.recorded["result"]["score"]
        )
    # The what-if is closing.what_if's: for Q3 (its previous period is closed), the same sides.
    q3 = {w.member: w.as_dict() for w in what_if(closed, projector, NET, "2024-Q3")}
    for check in by_kind(checks, "tier"):
        if check.period == "2024-Q3":
            assert check.what_if is not None
            assert check.what_if["what_if"] == q3[check.member]["what_if"], check.member
            assert check.what_if["changed"] == q3[check.member]["changed"]
    bonuses = [
        c for c in by_kind(checks, "statement_entry") if c.recorded["result"]["kind"] == "bonus"
    ]
    assert bonuses
    for check in bonuses:
        assert check.recomputed is not None and check.what_if is not None
        recorded = check.recorded["result"]["amount"]
        assert check.recomputed["result"]["amount"] == recorded  # the recorded settings
        assert {recorded, check.what_if["result"]["amount"]} in (
            {"20.00", "30.00"},
            {"50.00", "70.00"},
        )
        assert check.what_if["changed"] is True
    statement = next(c for c in by_kind(checks, "statement") if c.what_if and c.what_if["changed"])
    assert statement.what_if is not None and statement.recomputed is not None
    assert statement.what_if["result"]["closing"] != statement.recomputed["result"]["closing"]
    assert statement.what_if["rules"][0]["settings"] == {
        "tyfcb_5": "100", "tyfcb_10": "200", "tyfcb_15": "300",
    }  # fmt: skip


# ------------------------------------------------------------------ tampering


def test_a_tampered_tier_decision_is_a_mismatch_naming_the_field(closed: Ledger) -> None:
    events = list(closed.store.read())
    position, event = next(
        (p, e)
        for p, e in events
        if isinstance(e.command, TierDecided) and e.command.period == "2024-Q1"
        and e.command.tier is not None and e.command.tier.value.tier == "bronze"
    )  # fmt: skip
    decided = event.command
    assert decided.tier is not None and isinstance(decided.tier.value, TierChoice)
    gold = msgspec.structs.replace(
        decided.tier, value=msgspec.structs.replace(decided.tier.value, tier="gold")
    )
    forged = msgspec.structs.replace(decided, tier=gold)
    checks = check_decisions(replaced(events, position, forged), closed.rules, NET)
    wrong = [c for c in checks if c.status == "mismatch"]
    first = wrong[0]
    assert (first.kind, first.period, first.member, first.position) == (
        "tier", "2024-Q1", decided.member, position,
    )  # fmt: skip
    assert [(d.field, d.recorded, d.recomputed) for d in first.differences] == [
        ("tier.tier", "gold", "bronze")
    ]
    assert first.recomputed is not None and first.recomputed["result"]["tier"] == "bronze"
    assert first.recorded["result"]["tier"] == "gold"  # reported, never replaced
    assert "tier.tier: differs (recorded gold, recomputed bronze)" in first.summary
    # The next period's decision read the real tier: its previous tier no longer agrees.
    assert all(c.member == decided.member for c in wrong[1:])

    # Inputs changed (with a matching digest): the digest and the field differ from the log.
    inputs = msgspec.structs.replace(decided.inputs, visitors=decided.inputs.visitors + 4)
    forged = msgspec.structs.replace(decided, inputs=inputs, inputs_digest=inputs_digest(inputs))
    checks = check_decisions(replaced(events, position, forged), closed.rules, NET)
    (found,) = [c for c in checks if c.status == "mismatch"]
    fields = [d.field for d in found.differences]
    assert fields[:2] == ["inputs_digest", "inputs.visitors"]
    # A digest that is not the inputs' own.
    forged = msgspec.structs.replace(decided, inputs_digest="sha256:" + "0" * 64)
    checks = check_decisions(replaced(events, position, forged), closed.rules, NET)
    (found,) = [c for c in checks if c.status == "mismatch"]
    assert found.differences[0].field == "inputs_digest"
    assert "is not the SHA-256 of the recorded inputs" in found.differences[0].reason


class Rows:
    """The stored event rows, edited in the database behind the application's back."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.database = store.database

    @property
    def table(self) -> str:
        name: str = self.store._app.recorder.events_table_name  # type: ignore[attr-defined]
        return name

    def set_state(self, position: int, state: bytes) -> None:
        d = self.database
        if d.kind == "sqlite":
            with sqlite3.connect(d.path, isolation_level=None) as db:
                db.execute(f"UPDATE {self.table} SET state = ? WHERE rowid = ?", (state, position))
            return
        with psycopg.connect(host=d.host, port=d.port, user=d.user, dbname=d.dbname,
                             autocommit=True,
                             options=f"-c search_path={d.schema or 'public'}") as db:  # fmt: skip
            db.execute(
                f"UPDATE {self.table} SET state = %s WHERE notification_id = %s", (state, position)
            )


def tamper_statement(store: Store) -> tuple[int, Any]:
    """Raise a revenue share of a closed statement by 1.00 (and its closing), in the row itself."""
    position, event = next(
        (p, e)
        for p, e in store.read()
        if isinstance(e.command, StatementClosed)
        and any(line.kind == "revenue_share" for line in e.command.entries)
    )
    statement = event.command
    lines = list(statement.entries)
    index = next(i for i, line in enumerate(lines) if line.kind == "revenue_share")
    lines[index] = msgspec.structs.replace(lines[index], amount=lines[index].amount + 1)
    forged = msgspec.structs.replace(statement, entries=tuple(lines), closing=statement.closing + 1)
    Rows(store).set_state(position, encode_event(msgspec.structs.replace(event, command=forged)))
    return position, (statement, index)


def test_a_statement_edited_in_the_database_is_a_mismatch(closed: Ledger, store: Store) -> None:
    position, (statement, index) = tamper_statement(store)
    checks = check_store(store, closed.rules, NET)
    at_position = [c for c in checks if c.position == position]
    entry = next(c for c in at_position if c.entry == index)
    assert entry.status == "mismatch"
    original = statement.entries[index].amount
    assert [(d.field, d.recorded, d.recomputed) for d in entry.differences] == [
        ("amount", str(original + 1), str(original))
    ]
    whole = next(c for c in at_position if c.kind == "statement")
    assert whole.status == "mismatch"
    assert "closing" in [d.field for d in whole.differences]
    others = [c for c in at_position if c.kind == "statement_entry" and c.entry != index]
    assert statuses(others) <= {"match"}


# ------------------------------------------------------------------ unavailable


def test_missing_or_other_versions_of_plugins_are_rules_unavailable(closed: Ledger) -> None:
    events = list(closed.store.read())
    checks = check_decisions(events, rules_without("fees"), NET)
    entries = by_kind(checks, "statement_entry")
    fees = [c for c in entries if c.recorded["plugin"] == "fees"]
    assert fees and statuses(fees) == {"rules unavailable"}
    detail = fees[0].details[0]
    assert (detail.field, detail.status) == ("rules.fees", "rules unavailable")
    assert "plugin 'fees' (recorded at version 1.0.0) is not installed" in detail.reason
    assert fees[0].recomputed is None
    assert statuses([c for c in entries if c.recorded["plugin"] != "fees"]) == {"match"}
    assert statuses(by_kind(checks, "tier")) == {"match"}  # fees decides no tier
    assert "mismatch" not in statuses(checks)

    other = rules_with_version("traffic-lights", traffic_lights_plugin, "2.0.0")
    checks = check_decisions(events, other, NET, today=other)
    tiers = by_kind(checks, "tier")
    assert statuses(tiers) == {"rules unavailable"}
    reasons = [str(d) for d in tiers[0].details if d.status == "rules unavailable"]
    assert reasons == [
        "rules.traffic-lights: plugin 'traffic-lights' was recorded at version 1.0.0 and "
        "version 2.0.0 is installed: a recorded decision is never re-decided with other rules"
    ]
    # What can be checked still is: the inputs from the log, the tier from the recorded score.
    assert tiers[0].recomputed is not None
    assert tiers[0].recomputed["inputs_digest"] == tiers[0].recorded["inputs_digest"]
    assert tiers[0].recomputed["result"]["tier"] == tiers[0].recorded["result"]["tier"]
    # Today's what-if uses today's version.
    assert tiers[0].what_if is not None
    assert tiers[0].what_if["what_if"]["scoring_plugin"]["version"] == "2.0.0"
    assert "mismatch" not in statuses(checks)


def test_events_cut_to_a_window_are_inputs_unavailable(closed: Ledger) -> None:
    events = list(closed.store.read())
    later = [(p, e) for p, e in events if e.occurred_at >= at("2024-03-01")]
    checks = check_decisions(later, closed.rules, NET)
    assert statuses(checks) == {"inputs unavailable"}
    reasons = {str(d) for c in checks for d in c.details if d.status == "inputs unavailable"}
    assert reasons and all("network.created" in r for r in reasons)

    # A hole in the middle: the gap is named; the recorded rules still run on the recorded
    # inputs, so a forged tier is found all the same.
    holed = [(p, e) for p, e in events if not at("2024-05-01") <= e.occurred_at < at("2024-05-15")]
    checks = check_decisions(holed, closed.rules, NET)
    tiers = by_kind(checks, "tier")
    assert statuses(tiers) == {"inputs unavailable"}
    assert "comes after a gap" in str(tiers[0].details[0])
    assert "the rules ran on the recorded inputs" in [d.reason for d in tiers[0].details]
    position, event = next((p, e) for p, e in holed if isinstance(e.command, TierDecided))
    decided = event.command
    assert decided.score is not None
    score = msgspec.structs.replace(
        decided.score, value=msgspec.structs.replace(decided.score.value, total=Decimal(99))
    )
    forged = msgspec.structs.replace(decided, score=score)
    checks = check_decisions(replaced(holed, position, forged), closed.rules, NET)
    found = next(c for c in checks if c.position == position)
    assert found.status == "mismatch" and found.differences[0].field == "score.total"


# ------------------------------------------------------------------ the CLI


def test_cli_audit_decisions(closed: Ledger, store: Store, database_url: str) -> None:
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, ["--database", database_url, "audit", "decisions", *args])
        assert result.exit_code == code, result.output
        return result.output

    output = run("--network", NET)
    assert "recorded decisions checked" in output and " 0 mismatch" in output
    for column in ("period", "member", "kind", "recorded", "recomputed", "status", "what-if"):
        assert column in output
    data = json.loads(run("--network", NET, "--period", "2024-05-17", "--json"))
    assert data["period"] == "2024-Q2" and data["summary"]["mismatch"] == 0
    assert {c["period"] for c in data["checks"]} == {"2024-Q2"}
    assert {c["status"] for c in data["checks"]} == {"match"}
    member = data["checks"][0]["member"]
    mine = json.loads(run("--network", NET, "--period", "2024-Q2", "--member", member, "--json"))
    assert {c["member"] for c in mine["checks"]} == {member}
    assert json.loads(run("--network", NET, "--mismatches-only", "--json"))["checks"] == []

    assert "periods are quarters" in run("--network", NET, "--period", "2024-07", code=1)
    assert "period 2024-Q4 is not closed" in run("--network", NET, "--period", "2024-Q4", code=1)
    assert "no network 'nowhere'" in run("--network", "nowhere", code=1)
    assert "no recorded decision of 'zed'" in run("--network", NET, "--member", "zed", code=1)

    tamper_statement(store)
    output = run("--network", NET, code=1)
    assert "mismatch" in output and "amount: differs" in output
    data = json.loads(run("--network", NET, "--mismatches-only", "--json", code=1))
    assert data["checks"] and {c["status"] for c in data["checks"]} == {"mismatch"}
    assert data["summary"]["mismatch"] == len(data["checks"])


# ------------------------------------------------------------------ the web page

PAGE = "/n/riverside/audit/decisions"


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> World:
    made = build_world(database_url)
    record(
        made,
        convert_command({"type": "referral.sent", "network": NET, "actor": "ann",
                         "occurred_at": at("2025-02-03"), "referral": "r-2",
                         "from_member": "bob-tax", "to_member": "ann-law", "customer": "Lee"}),
    )  # fmt: skip
    with browser(made, tmp_path, made.coordinator) as web:
        assert web.post("/n/riverside/periods/2025-Q1/close").status_code in (200, 303)
    return made


def test_web_auditors_see_recorded_decisions_recomputed(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.auditor) as web:
        response = web.get(PAGE)
        assert response.status_code == 200
        html = response.text
        assert "<h1>Recorded decisions · 2025-Q1</h1>" in html
        rows = re.findall(r'<tr class="([a-z-]+)" id="tier-([a-z-]+)"', html)
        assert sorted(rows) == [("match", "ann-law"), ("match", "bob-tax")]
        assert "0 mismatch" in html and '<span class="status match">match</span>' in html
        assert "points 1.0.0" in html and "threshold-tiers 1.0.0" in html
        assert "sha256:" in html and "same" in html
        assert 'href="/n/riverside/audit/decisions"' in html  # in the navigation
        standings = web.get("/n/riverside/standings?period=2025-Q1").text
        assert 'href="/n/riverside/audit/decisions?period=2025-Q1"' in standings
        response = web.get(f"{PAGE}?period=2025-Q7")
        assert response.status_code == 422 and "periods are quarters" in response.text
        response = web.get(f"{PAGE}?period=2025-Q2")
        assert response.status_code == 422 and "period 2025-Q2 is not closed" in response.text
    # Today's rules differ: the record still matches; the what-if says what would change.
    record(world, convert_command({"type": "plugin.configured", "network": NET, "actor": "c",
                                   "occurred_at": at("2025-04-02"), "plugin": "points",
                                   "settings": {"referral_given": "25"}}))  # fmt: skip
    with browser(world, tmp_path, world.coordinator) as web:
        html = web.get(f"{PAGE}?period=2025-Q1").text
        assert "0 mismatch" in html and "<strong>changed</strong>" in html
    with browser(world, tmp_path, world.member) as web:
        assert web.get(PAGE).status_code == 403
        assert 'href="/n/riverside/audit/decisions"' not in web.get("/n/riverside/standings").text
    with browser(world, tmp_path, world.outsider) as web:
        assert web.get(PAGE).status_code == 404


def test_web_highlights_a_mismatch(world: World, tmp_path: Path) -> None:
    with Store(Database.parse(world.database_url)) as store:
        position, event = next(
            (p, e) for p, e in store.read() if isinstance(e.command, TierDecided)
        )
        decided = event.command
        assert decided.tier is not None and isinstance(decided.tier.value, TierChoice)
        other = "silver" if decided.tier.value.tier != "silver" else "bronze"
        tier = msgspec.structs.replace(
            decided.tier, value=msgspec.structs.replace(decided.tier.value, tier=other)
        )
        forged = msgspec.structs.replace(event, command=msgspec.structs.replace(decided, tier=tier))
        Rows(store).set_state(position, encode_event(forged))
    with browser(world, tmp_path, world.auditor) as web:
        html = web.get(PAGE).text
        assert f'<tr class="mismatch" id="tier-{decided.member}"' in html
        assert "1 mismatch" in html and "<code>tier.tier</code>: differs" in html
