"""Plugins: per-network enabling as events, settings validation, the facade, loading."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from partnerledger import InvalidCommand, InvalidTransition, Ledger, Store
from partnerledger.cli.main import cli
from partnerledger.commands import Tier, decode_command
from partnerledger.domain import Network, network_id
from partnerledger.hookspecs import hookimpl
from partnerledger.pluginmanager import PluginFailed, Rules, load_rules
from partnerledger.plugins import BUILTIN_PLUGINS, tiers
from partnerledger.rules import Score, Veto

HISTORY = Path(__file__).parent / "data" / "riverside.jsonl"
T = "2025-06-01T09:00:00Z"


def line(type_: str, **fields: object) -> bytes:
    record = {"type": type_, "network": "riverside", "actor": "coord", "occurred_at": T}
    return msgspec.json.encode({**record, **fields})


def run(ledger: Ledger, *lines: bytes) -> None:
    ledger.execute(*(decode_command(x) for x in lines))


@pytest.fixture
def riverside(ledger: Ledger) -> Ledger:
    run(ledger, *HISTORY.read_bytes().splitlines())
    return ledger


def network_plugins(ledger: Ledger) -> dict[str, object]:
    network = ledger.unit_of_work().load(Network, network_id("riverside"))
    assert network is not None
    return network.plugins


def test_enable_configure_disable_are_events(riverside: Ledger, store: Store) -> None:
    run(riverside, line("plugin.enabled", plugin="threshold-tiers", settings={"grace_periods": 1}))
    assert network_plugins(riverside) == {"threshold-tiers": {"grace_periods": 1}}
    work = riverside.unit_of_work()
    enabled = work.enabled(work.network("riverside"))
    assert enabled == {"threshold-tiers": tiers.Settings(grace_periods=1)}

    run(riverside, line("plugin.configured", plugin="threshold-tiers", settings={}))
    assert network_plugins(riverside) == {"threshold-tiers": {}}
    run(riverside, line("plugin.disabled", plugin="threshold-tiers"))
    assert network_plugins(riverside) == {}

    types = [
        e.type
        for _, e in store.read(topics=["plugin.enabled", "plugin.configured", "plugin.disabled"])
    ]
    assert types == ["plugin.enabled", "plugin.configured", "plugin.disabled"]


@pytest.mark.parametrize(
    ("fields", "error", "field", "reason"),
    [
        ({"plugin": "nope"}, InvalidCommand, "plugin", "no plugin 'nope' is installed"),
        (
            {"plugin": "threshold-tiers", "settings": {"grace": 1}},
            InvalidCommand,
            "settings.grace",
            "unknown field",
        ),
        (
            {"plugin": "threshold-tiers", "settings": {"grace_periods": "x"}},
            InvalidCommand,
            "settings.grace_periods",
            "Expected `int`",
        ),
        (
            {"plugin": "threshold-tiers", "settings": {"grace_periods": -1}},
            InvalidCommand,
            "settings.grace_periods",
            "zero or more",
        ),
        (
            {
                "plugin": "threshold-tiers",
                "settings": {
                    "ladder": [{"name": "a", "threshold": "5"}, {"name": "b", "threshold": "1"}]
                },
            },
            InvalidCommand,
            "settings.ladder",
            "must rise",
        ),
    ],
)
def test_bad_settings_are_refused_and_nothing_is_written(
    riverside: Ledger, store: Store, fields: dict[str, object], error: type, field: str, reason: str
) -> None:
    before = store.last_position()
    with pytest.raises(error) as caught:
        run(riverside, line("plugin.enabled", **fields))
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert store.last_position() == before


def test_transitions_of_plugins(riverside: Ledger) -> None:
    with pytest.raises(InvalidTransition, match="not enabled"):
        run(riverside, line("plugin.disabled", plugin="threshold-tiers"))
    with pytest.raises(InvalidTransition, match="not enabled"):
        run(riverside, line("plugin.configured", plugin="threshold-tiers"))
    run(riverside, line("plugin.enabled", plugin="threshold-tiers"))
    with pytest.raises(InvalidTransition, match="already enabled"):
        run(riverside, line("plugin.enabled", plugin="threshold-tiers", actor="other"))


# ----------------------------------------------------------------- tiers


LADDER = (
    Tier(name="bronze", threshold=Decimal(0)),
    Tier(name="silver", threshold=Decimal(40)),
    Tier(name="gold", threshold=Decimal(80)),
)


@pytest.mark.parametrize(
    ("total", "previous", "below", "grace", "expected"),
    [
        ("0", None, 0, 0, "bronze"),
        ("39.99", None, 0, 0, "bronze"),
        ("40", None, 0, 0, "silver"),  # exactly on a threshold takes the tier
        ("80", "silver", 0, 0, "gold"),
        ("50", "gold", 0, 0, "silver"),  # no grace: demoted at once
        ("50", "gold", 0, 1, "gold"),  # first period below: kept
        ("50", "gold", 1, 1, "silver"),  # grace used up
        ("-1", None, 0, 0, None),
    ],
)
def test_threshold_tiers(
    total: str, previous: str | None, below: int, grace: int, expected: str | None
) -> None:
    rules = load_rules(builtins=BUILTIN_PLUGINS, env={"PARTNERLEDGER_PLUGINS": ""})
    enabled = {"threshold-tiers": rules.settings("threshold-tiers", {"grace_periods": grace})}
    decision = rules.tier(
        Score(total=Decimal(total)), LADDER, enabled, previous=previous, periods_below=below
    )
    assert decision is not None
    assert (decision.plugin, decision.version) == ("threshold-tiers", "1.0.0")
    assert decision.value.tier == expected  # type: ignore[union-attr]


def test_the_plugins_default_ladder_serves_a_network_without_one() -> None:
    rules = load_rules(builtins=BUILTIN_PLUGINS, env={"PARTNERLEDGER_PLUGINS": ""})
    enabled = {"threshold-tiers": rules.settings("threshold-tiers", {})}
    decision = rules.tier(Score(total=Decimal(85)), (), enabled)
    assert decision is not None
    assert decision.value.tier == "gold"  # type: ignore[union-attr]


def test_a_network_calls_only_the_plugins_it_enabled() -> None:
    rules = load_rules(builtins=BUILTIN_PLUGINS, env={"PARTNERLEDGER_PLUGINS": ""})
    assert rules.tier(Score(total=Decimal(85)), LADDER, {}) is None


# ------------------------------------------------ validation hook, failures


class NoFlorists:
    """A validation rule: no referral may go to the member 'bloom'."""

    NAME = "no-florists"
    VERSION = "2.1.0"

    @hookimpl
    def partnerledger_validate(self, command: object) -> Veto | None:
        if getattr(command, "to_member", None) == "bloom":
            return Veto(field="to_member", reason="florists take no referrals here")
        return None


class Exploding:
    NAME = "exploding"
    VERSION = "0.1"

    @hookimpl
    def partnerledger_tier(self) -> None:
        raise RuntimeError("boom")


def rules_with(*plugins: object) -> Rules:
    return load_rules(builtins=(*BUILTIN_PLUGINS, *plugins), env={"PARTNERLEDGER_PLUGINS": ""})


def test_a_validation_plugin_vetoes_only_where_enabled(database_url: str, store: Store) -> None:
    ledger = Ledger(store, rules=rules_with(NoFlorists()))
    run(ledger, *HISTORY.read_bytes().splitlines()[:5])
    send = line(
        "referral.sent", referral="r-9", from_member="lee-law", to_member="bloom", customer="X"
    )

    run(ledger, send)  # not enabled: allowed
    run(ledger, line("plugin.enabled", plugin="no-florists"))
    before = store.last_position()
    with pytest.raises(InvalidCommand) as caught:
        run(
            ledger,
            line(
                "referral.sent",
                referral="r-10",
                from_member="lee-law",
                to_member="bloom",
                customer="Y",
            ),
        )
    assert caught.value.field == "to_member"
    assert caught.value.reason == "florists take no referrals here (rule of plugin 'no-florists')"
    assert store.last_position() == before


def test_a_failing_plugin_is_named_and_the_operation_fails_cleanly() -> None:
    rules = rules_with(Exploding())
    with pytest.raises(PluginFailed) as caught:
        rules.tier(Score(total=Decimal(1)), LADDER, {"exploding": None})
    assert caught.value.field == "plugin"
    assert caught.value.reason == "plugin 'exploding' failed: RuntimeError: boom"


# ------------------------------------------------------ third-party loading


@pytest.fixture
def installed_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Two plugin distributions installed on sys.path: one good, one broken."""
    (tmp_path / "good_rule.py").write_text(
        textwrap.dedent(
            """
            from decimal import Decimal
            from partnerledger import hookimpl
            from partnerledger.rules import Score

            NAME = "flat-score"
            VERSION = "3.0.0"

            @hookimpl
            def partnerledger_score(activity):
                return Score(total=Decimal(7))
            """
        )
    )
    (tmp_path / "broken_rule.py").write_text("raise ImportError('missing dependency: nothing')\n")
    for name, target in (
        ("good-rule", "flat-score = good_rule"),
        ("broken-rule", "broken = broken_rule"),
    ):
        info = tmp_path / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[partnerledger]\n{target}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for module in ("good_rule", "broken_rule"):
        sys.modules.pop(module, None)


def test_entry_points_and_the_allowlist(installed_plugins: Path) -> None:
    everything = load_rules(env={})
    assert "flat-score" in everything.names()
    assert "threshold-tiers" in everything.names()
    assert everything.failures == {"broken": "ImportError: missing dependency: nothing"}
    assert everything.info("flat-score").version == "3.0.0"
    assert everything.info("flat-score").hooks == ("partnerledger_score",)

    none = load_rules(env={"PARTNERLEDGER_PLUGINS": ""})
    assert set(none.names()) == {"threshold-tiers", "validation"} | {
        p.NAME
        for p in BUILTIN_PLUGINS  # type: ignore[attr-defined]
    }
    assert "flat-score" not in none.names()
    assert none.failures == {}

    only = load_rules(env={"PARTNERLEDGER_PLUGINS": "flat-score"})
    assert "flat-score" in only.names()
    assert only.failures == {}


def test_plugins_command_lists_plugins(
    installed_plugins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from partnerledger.ledger import default_rules

    default_rules.cache_clear()
    monkeypatch.delenv("PARTNERLEDGER_PLUGINS", raising=False)
    try:
        runner = CliRunner()
        listed = runner.invoke(cli, ["plugins"])
        assert listed.exit_code == 0
        assert "flat-score" in listed.output
        assert "threshold-tiers" not in listed.output
        assert "Failed to load plugin broken" in listed.output

        every = runner.invoke(cli, ["plugins", "--all", "--json"])
        data = msgspec.json.decode(every.stdout)
        names = {p["name"] for p in data["plugins"]}
        assert {"flat-score", "threshold-tiers"} <= names
        tiers_info = next(p for p in data["plugins"] if p["name"] == "threshold-tiers")
        assert tiers_info["builtin"] is True
        assert "partnerledger_tier" in tiers_info["hooks"]
        assert data["failed"] == [
            {"name": "broken", "error": "ImportError: missing dependency: nothing"}
        ]

        by_hook = runner.invoke(cli, ["plugins", "--all", "--hook", "partnerledger_tier", "--json"])
        assert [p["name"] for p in msgspec.json.decode(by_hook.stdout)["plugins"]] == [
            "threshold-tiers"
        ]
    finally:
        default_rules.cache_clear()


def test_plugin_cli_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    db = ["--database", str(tmp_path / "p.db")]
    assert runner.invoke(cli, [*db, "import", str(HISTORY)]).exit_code == 0
    ok = runner.invoke(
        cli, [*db, "plugin", "enable", "riverside", "threshold-tiers", "--set", "grace_periods=1"]
    )
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(
        cli,
        [*db, "plugin", "configure", "riverside", "threshold-tiers", "--set", "grace_periods=-2"],
    )
    assert bad.exit_code == 1
    assert "Error: settings.grace_periods: must be zero or more" in bad.output
    assert (
        runner.invoke(cli, [*db, "plugin", "disable", "riverside", "threshold-tiers"]).exit_code
        == 0
    )


# ------------------------------------------------------ validation plugin


def exclusive_history() -> list[bytes]:
    def joined(slug: str, category: str) -> bytes:
        return line("member.joined", member=slug, name=slug, category=category)

    return [
        line("network.created", name="Riverside", currency="USD"),
        joined("lee-law", "lawyer"),
        joined("park-cpa", "accountant"),
        joined("kim-cpa", "accountant"),
        joined("bloom", "florist"),
        line(
            "agreement.proposed",
            agreement="a-x",
            kind="referral",
            parties=["lee-law", "park-cpa"],
            terms={"scope": "tax work", "exclusivity": True},
        ),
        line("agreement.accepted", agreement="a-x", party="lee-law"),
        line("agreement.accepted", agreement="a-x", party="park-cpa"),
    ]


def sent(referral: str, to_member: str) -> bytes:
    return line(
        "referral.sent", referral=referral, from_member="lee-law", to_member=to_member, customer="C"
    )


def test_exclusivity_is_respected_where_the_validation_plugin_is_on(
    ledger: Ledger, store: Store
) -> None:
    run(ledger, *exclusive_history())
    run(ledger, sent("r-0", "kim-cpa"))  # the plugin is not enabled yet
    run(ledger, line("plugin.enabled", plugin="validation"))

    before = store.last_position()
    with pytest.raises(InvalidCommand) as caught:
        run(ledger, sent("r-1", "kim-cpa"))
    assert caught.value.field == "to_member"
    assert (
        "refers accountant business only to 'park-cpa' under exclusive agreement 'a-x'"
        in caught.value.reason
    )
    assert store.last_position() == before

    run(ledger, sent("r-2", "park-cpa"))  # the exclusive partner
    run(ledger, sent("r-3", "bloom"))  # another category
    run(ledger, line("agreement.terminated", agreement="a-x", reason="done"))
    run(ledger, sent("r-4", "kim-cpa"))  # no live exclusive agreement any more


def test_exclusivity_counts_an_agreement_proposed_in_the_same_batch(
    ledger: Ledger, store: Store
) -> None:
    history = exclusive_history()
    enable = line("plugin.enabled", plugin="validation")
    with pytest.raises(InvalidCommand, match="exclusive agreement 'a-x'"):
        run(ledger, history[0], enable, *history[1:], sent("r-1", "kim-cpa"))
    assert store.last_position() == 0  # the whole batch is refused


def test_exclusivity_can_be_switched_off(ledger: Ledger) -> None:
    run(ledger, *exclusive_history())
    run(ledger, line("plugin.enabled", plugin="validation", settings={"exclusivity": False}))
    run(ledger, sent("r-1", "kim-cpa"))


class WrongNotifier:
    NAME = "wrong-notifier"
    VERSION = "0.1"

    @hookimpl
    def partnerledger_notify(self) -> object:
        return {"not": "a list"}


def test_a_notifier_returning_the_wrong_type_is_a_failure_not_a_crash(ledger: Ledger) -> None:
    run(ledger, *HISTORY.read_bytes().splitlines()[:1])
    _, event = next(iter(ledger.store.read()))
    rules = rules_with(WrongNotifier())
    decisions, failures = rules.notify(event, ledger.unit_of_work(), {"wrong-notifier": None})
    assert decisions == []
    assert [f.reason for f in failures] == [
        "plugin 'wrong-notifier' returned something other than a list of Message"
    ]
