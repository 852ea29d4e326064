"""Plugins that misbehave: raise, return the wrong type, hang, or are slow.

Every hook (score, tier, incentives, attribute, notify, validate, settings)
is exercised with real plugin objects registered through ``load_rules``.
The contract checked everywhere: the operation fails cleanly with a
``PluginFailed`` naming the plugin (and, for a time-out, the hook), or the
plugin is skipped where the hook says so (notify; a view records the
problem); a hung plugin's late answer is never used; nothing is written and
no event is lost or changed. Time limits are short (0.2 s) so the file runs
in seconds.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from partnerledger import Database, Ledger, Store
from partnerledger.accounts import Accounts
from partnerledger.commands import decode_command
from partnerledger.domain import Network, network_id
from partnerledger.hookspecs import hookimpl
from partnerledger.jsonl import import_lines
from partnerledger.periods import Calendar
from partnerledger.pluginmanager import PluginFailed, Rules, load_rules
from partnerledger.plugins import BUILTIN_PLUGINS
from partnerledger.projection import Projector
from partnerledger.rules import (
    Activity,
    Credit,
    LedgerEntry,
    ReferralFacts,
    Score,
    TierChoice,
    Veto,
    Window,
)
from partnerledger.views import ledger as ledger_view
from partnerledger.views import standings as standings_view
from partnerledger.web.app import create_app
from webkit import build_world, command, last_position

HISTORY = Path(__file__).parent / "data" / "riverside.jsonl"
T = "2025-06-01T09:00:00Z"
LIMIT = 0.2  # seconds: the time limit the tests set
ENV = {"PARTNERLEDGER_PLUGINS": "", "PARTNERLEDGER_PLUGIN_TIMEOUT": str(LIMIT)}
HOOKS = (
    "partnerledger_score",
    "partnerledger_tier",
    "partnerledger_incentives",
    "partnerledger_attribute",
    "partnerledger_notify",
    "partnerledger_validate",
    "partnerledger_settings",
)


class Faulty:
    """A plugin whose one hook behaves as ``mode`` says: ok, raise, wrong, hang or slow.

    ``hang`` blocks until :attr:`release` is set (or 5 s), then answers as
    ``ok`` would, too late; ``slow`` sleeps ``delay`` seconds first.
    """

    VERSION = "0.1"
    good: Any = None

    def __init__(self, name: str, mode: str, delay: float = 0.0) -> None:
        self.NAME = name
        self.mode = mode
        self.delay = delay
        self.release = threading.Event()
        self.calls = 0
        self.late: list[object] = []  # what a hung call did after its time ran out

    def act(self) -> Any:
        self.calls += 1
        if self.mode == "raise":
            raise RuntimeError("boom")
        if self.mode == "wrong":
            return {"not": "the right type"}
        if self.mode == "hang":
            self.release.wait(5)
        if self.mode == "slow":
            time.sleep(self.delay)
        return self.good


class FaultyScore(Faulty):
    good = Score(total=Decimal(1))

    @hookimpl
    def partnerledger_score(self) -> Any:
        return self.act()


class FaultyTier(Faulty):
    good = TierChoice(tier=None)

    @hookimpl
    def partnerledger_tier(self) -> Any:
        return self.act()


class FaultyIncentives(Faulty):
    good: list[LedgerEntry] = []

    @hookimpl
    def partnerledger_incentives(self) -> Any:
        return self.act()


class FaultyAttribute(Faulty):
    good = [Credit(referral="r-1", member="a", share=Decimal(1))]

    @hookimpl
    def partnerledger_attribute(self) -> Any:
        return self.act()


class FaultyNotify(Faulty):
    good: list[Any] = []

    @hookimpl
    def partnerledger_notify(self) -> Any:
        return self.act()


class FaultyValidate(Faulty):
    """Vetoes every referral, when it answers; reads the lookup after a hang."""

    @hookimpl
    def partnerledger_validate(self, command: Any, lookup: Any) -> Any:
        value = self.act()
        if self.mode == "hang":
            try:  # the caller stopped waiting: the lookup must refuse this thread
                lookup.network(command.network)
            except PluginFailed as error:
                self.late.append(error)
            return Veto(field="to_member", reason="decided too late")
        return value


class FaultySettings(Faulty):
    @hookimpl
    def partnerledger_settings(self) -> Any:
        return self.act()


CLASSES: dict[str, type[Faulty]] = {
    "partnerledger_score": FaultyScore,
    "partnerledger_tier": FaultyTier,
    "partnerledger_incentives": FaultyIncentives,
    "partnerledger_attribute": FaultyAttribute,
    "partnerledger_notify": FaultyNotify,
    "partnerledger_validate": FaultyValidate,
    "partnerledger_settings": FaultySettings,
}


def rules_with(*plugins: object, **env: str) -> Rules:
    return load_rules(builtins=(*BUILTIN_PLUGINS, *plugins), env={**ENV, **env})


WINDOW = Window(start=datetime(2025, 1, 1, tzinfo=UTC), end=datetime(2025, 4, 1, tzinfo=UTC))
ACTIVITY = Activity(network="n", member="a", window=WINDOW, currency="USD")
FACTS = [
    ReferralFacts(
        referral=f"r-{i}",
        from_member="a",
        to_member="b",
        customer="s",
        status="sent",
        sent_at=WINDOW.start,
    )
    for i in (1, 2)
]


def call(rules: Rules, hook: str, name: str, event: Any = None, lookup: Any = None) -> Any:
    """Call one hook through the facade with only plugin ``name`` enabled.

    Raises the PluginFailed of a failing plugin; for notify (which never
    raises), raises the first failure it reports.
    """
    enabled = {name: None}
    if hook == "partnerledger_score":
        return rules.score(ACTIVITY, enabled)
    if hook == "partnerledger_tier":
        return rules.tier(Score(total=Decimal(1)), (), enabled)
    if hook == "partnerledger_incentives":
        return rules.incentives(event, enabled)
    if hook == "partnerledger_attribute":
        return rules.attribute("s", FACTS, enabled)
    if hook == "partnerledger_notify":
        decisions, failures = rules.notify(event, lookup, enabled)
        if failures:
            raise failures[0]
        return decisions
    if hook == "partnerledger_validate":
        return rules.validate(event.command, lookup, enabled)
    return rules.settings(name, {})


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Ledger]]:
    """An event and a ledger (a lookup) on a small SQLite store."""
    path = tmp_path_factory.mktemp("faults") / "sample.db"
    with Store(Database.parse(str(path))) as store:
        ledger = Ledger(store, rules=rules_with())
        ledger.execute(*(decode_command(x) for x in HISTORY.read_bytes().splitlines()[:8]))
        _, event = list(store.read())[-1]
        yield event, ledger


# ------------------------------------------------------------ every hook


@pytest.mark.parametrize("mode", ["raise", "wrong"])
@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_names_a_plugin_that_raises_or_returns_the_wrong_type(
    sample: tuple[Any, Ledger], hook: str, mode: str
) -> None:
    event, ledger = sample
    plugin = CLASSES[hook](f"faulty-{mode}", mode)
    rules = rules_with(plugin)
    with pytest.raises(PluginFailed) as caught:
        call(rules, hook, plugin.NAME, event, ledger.unit_of_work())
    failure = caught.value
    assert (failure.code, failure.field, failure.plugin) == ("plugin_failed", "plugin", plugin.NAME)
    assert failure.hook == hook
    assert failure.reason.startswith(f"plugin {plugin.NAME!r} ")
    if mode == "raise":
        assert failure.reason == f"plugin {plugin.NAME!r} failed: RuntimeError: boom"
    else:
        wrong = ("returned dict, not", "other than a list of Message", "not a msgspec Struct")
        assert any(text in failure.reason for text in wrong), failure.reason


def test_attribution_shares_must_add_up_to_one() -> None:
    plugin = FaultyAttribute("half", "ok")
    plugin.good = [Credit(referral="r-1", member="a", share=Decimal("0.5"))]
    with pytest.raises(PluginFailed, match=r"shares adding up to 0\.5, not 1"):
        rules_with(plugin).attribute("s", FACTS, {"half": None})
    plugin.good = [Credit(referral="r-9", member="a", share=Decimal(1))]
    with pytest.raises(PluginFailed, match=r"credited referrals it was not given: \['r-9'\]"):
        rules_with(plugin).attribute("s", FACTS, {"half": None})


@pytest.mark.parametrize("hook", HOOKS)
def test_a_hung_plugin_times_out_and_its_late_answer_is_never_used(
    sample: tuple[Any, Ledger], hook: str
) -> None:
    event, ledger = sample
    plugin = CLASSES[hook]("sleepy", "hang")
    rules = rules_with(plugin)
    work = ledger.unit_of_work()
    started = time.perf_counter()
    with pytest.raises(PluginFailed) as caught:
        call(rules, hook, "sleepy", event, work)
    waited = time.perf_counter() - started
    assert LIMIT <= waited < LIMIT + 1.0
    assert caught.value.reason == f"plugin 'sleepy' timed out after {LIMIT:g} s in {hook}"
    assert (caught.value.plugin, caught.value.hook) == ("sleepy", hook)

    # While the hung call's thread still runs, the plugin fails at once: no second wait.
    started = time.perf_counter()
    with pytest.raises(PluginFailed, match="an earlier call that timed out is still running"):
        call(rules, hook, "sleepy", event, work)
    assert time.perf_counter() - started < LIMIT
    assert plugin.calls == 1

    # The thread ends (its answer goes nowhere); the plugin, now well, is called again.
    plugin.release.set()
    deadline = time.monotonic() + 5
    while rules._hung.get("sleepy") and time.monotonic() < deadline:
        time.sleep(0.01)
    plugin.mode = "ok"
    call(rules, hook, "sleepy", event, work)
    assert plugin.calls == 2
    if hook == "partnerledger_validate":
        assert [str(e.reason) for e in plugin.late] == [  # type: ignore[attr-defined]
            "plugin 'sleepy' read the lookup after its time ran out"
        ]


def test_a_slow_plugin_works_and_is_logged(
    sample: tuple[Any, Ledger], caplog: pytest.LogCaptureFixture
) -> None:
    plugin = FaultyScore("slowpoke", "slow", delay=0.1)
    rules = rules_with(plugin, PARTNERLEDGER_PLUGIN_SLOW="0.05", PARTNERLEDGER_PLUGIN_TIMEOUT="2")
    with caplog.at_level(logging.WARNING, logger="partnerledger.plugins"):
        decision = rules.score(ACTIVITY, {"slowpoke": None})
    assert decision is not None and decision.value == Score(total=Decimal(1))
    [record] = [r for r in caplog.records if "slow" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("plugin 'slowpoke' was slow in partnerledger_score: 0.1")


def test_built_ins_run_inline_and_a_zero_limit_runs_everything_inline() -> None:
    plugin = FaultyScore("third-party", "ok")
    rules = rules_with(plugin)
    assert "threshold-tiers" in rules.inline and "third-party" not in rules.inline
    seen: list[str] = []

    class Where(FaultyScore):
        def act(self) -> Any:
            seen.append(threading.current_thread().name)
            return self.good

    where = Where("where", "ok")
    rules_with(where).score(ACTIVITY, {"where": None})
    rules_with(where, PARTNERLEDGER_PLUGIN_TIMEOUT="0").score(ACTIVITY, {"where": None})
    assert seen[0].startswith("partnerledger-plugin") and seen[1] == threading.current_thread().name


@pytest.mark.parametrize("value", ["-1", "soon", "inf", "nan"])
def test_a_bad_time_limit_is_refused_naming_the_setting(value: str) -> None:
    with pytest.raises(Exception, match="PARTNERLEDGER_PLUGIN_TIMEOUT") as caught:
        rules_with(PARTNERLEDGER_PLUGIN_TIMEOUT=value)
    assert getattr(caught.value, "field", None) == "PARTNERLEDGER_PLUGIN_TIMEOUT"


# ------------------------------------------- through commands, imports, views


def line(type_: str, **fields: object) -> bytes:
    record = {"type": type_, "network": "riverside", "actor": "coord", "occurred_at": T}
    return msgspec.json.encode({**record, **fields})


def send(referral: str) -> bytes:
    return line("referral.sent", referral=referral, from_member="lee-law", to_member="park-cpa",
                customer="Ann Other")  # fmt: skip


def snapshot(store: Store) -> list[tuple[int, bytes]]:
    return [(position, msgspec.json.encode(event)) for position, event in store.read()]


@pytest.mark.parametrize("mode", ["raise", "wrong", "hang"])
def test_a_command_fails_cleanly_and_writes_nothing(store: Store, mode: str) -> None:
    plugin = FaultyValidate("guard", mode)
    ledger = Ledger(store, rules=rules_with(plugin))
    ledger.execute(*(decode_command(x) for x in HISTORY.read_bytes().splitlines()))
    ledger.execute(decode_command(line("plugin.enabled", plugin="guard")))
    before = snapshot(store)

    with pytest.raises(PluginFailed) as caught:
        ledger.execute(decode_command(send("r-new")))
    assert "'guard'" in caught.value.reason
    assert snapshot(store) == before
    if mode == "hang":
        assert "timed out after 0.2 s in partnerledger_validate" in caught.value.reason
        plugin.release.set()  # the hung call answers a veto, too late: nobody reads it
        while ledger.rules._hung.get("guard"):
            time.sleep(0.01)
        assert len(plugin.late) == 1
    plugin.mode = "ok"  # well again: the same command is recorded, once
    ledger.execute(decode_command(send("r-new")))
    assert len(snapshot(store)) == len(before) + 1


def test_an_import_refuses_the_lines_a_hung_plugin_held_up(store: Store) -> None:
    plugin = FaultyValidate("guard", "hang")
    ledger = Ledger(store, rules=rules_with(plugin))
    ledger.execute(*(decode_command(x) for x in HISTORY.read_bytes().splitlines()))
    ledger.execute(decode_command(line("plugin.enabled", plugin="guard")))
    before = snapshot(store)

    started = time.perf_counter()
    report = import_lines(ledger, [send(f"r-{i}") for i in range(5)])
    took = time.perf_counter() - started
    plugin.release.set()

    assert not report.written and snapshot(store) == before
    assert [(e.line, e.field, e.code) for e in report.rejected] == [
        (n, "plugin", "plugin_failed") for n in range(1, 6)
    ]
    assert report.rejected[0].reason == (
        "plugin 'guard' timed out after 0.2 s in partnerledger_validate"
    )
    assert all("still running" in e.reason for e in report.rejected[1:])
    assert took < LIMIT + 1.5  # one wait, not five
    assert plugin.calls == 1


@pytest.mark.parametrize("mode", ["raise", "wrong", "hang"])
def test_a_failing_plugin_in_the_views_loses_and_changes_no_event(store: Store, mode: str) -> None:
    incentives = FaultyIncentives("payer", mode)
    scorer = FaultyScore("scorer", mode)
    rules = rules_with(incentives, scorer)
    ledger = Ledger(store, rules=rules)
    lines = HISTORY.read_bytes().splitlines()
    ledger.execute(*(decode_command(x) for x in lines[:2]))
    ledger.execute(
        decode_command(line("plugin.enabled", plugin="payer", occurred_at="2025-01-06T09:01:00Z"))
    )
    ledger.execute(
        decode_command(line("plugin.enabled", plugin="scorer", occurred_at="2025-01-06T09:01:00Z"))
    )
    ledger.execute(*(decode_command(x) for x in lines[2:]))
    before = snapshot(store)

    with Projector(store, rules=rules) as projector:
        projector.catch_up()
        assert snapshot(store) == before  # the log: no event lost or changed
        assert set(projector.positions().values()) == {store.last_position()}
        problems = ledger_view.problems(projector.db, "riverside")
        conversions = [
            p for p, e in store.read() if e.type in ("referral.converted", "referral.reversed")
        ]
        # One problem per event the failing plugin judged (the first for a hang;
        # later calls fail at once while its thread still runs).
        assert [p[0] for p in problems] == conversions
        assert all("'payer'" in reason for _, _, reason in problems)
        if mode == "hang":
            assert (
                problems[0][2] == "plugin 'payer' timed out after 0.2 s in partnerledger_incentives"
            )

        network = ledger.unit_of_work().load(Network, network_id("riverside"))
        assert network is not None
        period = Calendar.of(network).containing(datetime(2025, 2, 1, tzinfo=UTC))
        rows = standings_view.standings(projector.db, rules, network, period)
        assert rows and all(r.problem and "'scorer'" in r.problem for r in rows)
        assert all(r.score is None for r in rows)
    incentives.release.set()
    scorer.release.set()


# ------------------------------------------------------------------ web API


@pytest.fixture
def installed_guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A third-party validation plugin, installed through its entry point, that hangs."""
    (tmp_path / "hanging_guard.py").write_text(
        textwrap.dedent(
            """
            import threading
            from partnerledger import hookimpl

            NAME = "hanging-guard"
            VERSION = "9.9.9"
            release = threading.Event()

            @hookimpl
            def partnerledger_validate(command):
                if command.type == "referral.sent":
                    release.wait(5)
                return None
            """
        )
    )
    info = tmp_path / "hanging_guard-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hanging-guard\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[partnerledger]\nhanging-guard = hanging_guard\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PARTNERLEDGER_PLUGINS", "hanging-guard")
    monkeypatch.setenv("PARTNERLEDGER_PLUGIN_TIMEOUT", str(LIMIT))
    from partnerledger.ledger import default_rules

    default_rules.cache_clear()
    try:
        yield tmp_path
    finally:
        module = sys.modules.pop("hanging_guard", None)
        if module is not None:
            module.release.set()
        default_rules.cache_clear()


def test_the_api_answers_502_naming_the_plugin(
    database_url: str, tmp_path: Path, installed_guard: Path
) -> None:
    world = build_world(database_url)
    with Store(Database.parse(database_url)) as store:
        Ledger(store).execute(command("plugin.enabled", "riverside", plugin="hanging-guard"))
    with Accounts(Database.parse(database_url)) as accounts:
        user = accounts.by_email(world.coordinator)
        assert user is not None
        token = accounts.create_token(user.id, "faults")[0]
    before = last_position(world)
    app = create_app(database_url, secret="s", sessions=tmp_path / "sessions", inline=True)
    with TestClient(app) as client:
        response = client.post(
            "/api/v1/networks/riverside/referrals",
            json={"from_member": "ann-law", "to_member": "bob-tax", "customer": "Cy"},
            headers={"Authorization": f"Bearer {token}"},
        )
        sys.modules["hanging_guard"].release.set()  # type: ignore[attr-defined]
    assert response.status_code == 502, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["title"] == "Plugin failed"
    assert body["errors"] == [
        {
            "field": "plugin",
            "reason": "plugin 'hanging-guard' timed out after 0.2 s in partnerledger_validate",
            "code": "plugin_failed",
        }
    ]
    assert last_position(world) == before


def test_a_process_exits_although_a_hung_plugin_thread_still_runs(tmp_path: Path) -> None:
    """The pool's threads are daemons: a finished command never waits for a hung plugin."""
    script = tmp_path / "hang.py"
    script.write_text(
        textwrap.dedent(
            """
            import time
            from decimal import Decimal
            from datetime import UTC, datetime
            from partnerledger import hookimpl
            from partnerledger.pluginmanager import PluginFailed, load_rules
            from partnerledger.rules import Activity, Window

            class Stuck:
                NAME = "stuck"

                @hookimpl
                def partnerledger_score(self):
                    time.sleep(60)

            rules = load_rules(builtins=[Stuck()], env={"PARTNERLEDGER_PLUGINS": "",
                                                        "PARTNERLEDGER_PLUGIN_TIMEOUT": "0.2"})
            start = datetime(2025, 1, 1, tzinfo=UTC)
            activity = Activity(network="n", member="m", currency="USD",
                                window=Window(start=start, end=start))
            try:
                rules.score(activity, {"stuck": None})
            except PluginFailed as error:
                print(error.reason)
            """
        )
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "plugin 'stuck' timed out after 0.2 s in partnerledger_score"
    assert time.perf_counter() - started < 10  # not the plugin's 60 s
