"""The referral-streak plugin, tested through partnerledger's test kit.

The ``partnerledger_*`` fixtures come from partnerledger's pytest plugin
(its ``pytest11`` entry point): nothing to import, nothing to configure.
The plugin itself is found the way partnerledger finds any plugin, through
this package's ``partnerledger`` entry point, so install the package first
(``pip install -e .``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from partnerledger import InvalidCommand, Ledger
from partnerledger.rules import Activity, Score, TierChoice, Window

if TYPE_CHECKING:
    from partnerledger.testing import NetworkHelper

PLUGIN = "referral-streak"


def test_the_plugin_is_installed_and_listed(partnerledger_ledger: Ledger) -> None:
    rules = partnerledger_ledger.rules
    assert PLUGIN in rules.names(), rules.failures.get(PLUGIN, "not installed")
    info = rules.info(PLUGIN)
    assert info.version == "1.0.0"
    assert info.builtin is False
    assert info.hooks == ("partnerledger_score", "partnerledger_settings")
    assert info.settings is not None
    assert PLUGIN not in rules.failures


def history(net: NetworkHelper) -> None:
    """Three members; ann gives three referrals (two converted), bo gives one."""
    net.members("ann", "bo", "cy")
    net.referral("ann", "bo", deal_value="1000")
    net.referral("ann", "cy", deal_value="500")
    net.referral("ann", "bo", until="accepted")
    net.referral("bo", "ann", deal_value="200")


def test_only_the_network_that_enabled_it_is_scored_by_it(
    partnerledger_network: NetworkHelper,
) -> None:
    streaky = partnerledger_network.create("streaky")
    history(streaky)
    plain = partnerledger_network.create("plain")
    history(plain)

    streaky.enable(PLUGIN)

    assert set(streaky.plugins()) == {PLUGIN}
    assert plain.plugins() == {}
    assert plain.score("ann") is None  # no scoring plugin enabled there

    decision = streaky.score("ann")
    assert decision is not None
    # Every decision names the plugin and its version.
    assert (decision.plugin, decision.version) == (PLUGIN, "1.0.0")


def test_scores_with_the_default_settings(partnerledger_network: NetworkHelper) -> None:
    net = partnerledger_network.create()
    history(net)
    net.enable(PLUGIN)

    scores = {s.member: s.score.value for s in net.standings() if s.score is not None}
    assert scores == {
        "ann": Score(
            total=Decimal(55),
            breakdown={"referrals": Decimal(30), "streak_bonus": Decimal(25)},
            label="streak",
        ),
        "bo": Score(
            total=Decimal(10),
            breakdown={"referrals": Decimal(10), "streak_bonus": Decimal(0)},
        ),
        "cy": Score(
            total=Decimal(0),
            breakdown={"referrals": Decimal(0), "streak_bonus": Decimal(0)},
        ),
    }


def total(net: NetworkHelper, member: str) -> Decimal:
    """The member's score total under the network's plugins."""
    decision = net.score(member)
    assert decision is not None
    assert isinstance(decision.value, Score)
    return decision.value.total


def test_settings_change_the_scores(partnerledger_network: NetworkHelper) -> None:
    net = partnerledger_network.create()
    history(net)
    net.enable(PLUGIN, per_referral="4", streak=2, bonus="100", converted_only=True)

    assert total(net, "ann") == Decimal(108)  # 2 converted x 4, and the bonus for 2

    net.configure(PLUGIN, streak=5)  # what is left out takes its default
    assert total(net, "ann") == Decimal(30)  # 3 given x 10, no bonus

    net.disable(PLUGIN)
    assert net.score("ann") is None


def test_a_streak_score_feeds_the_tiers(partnerledger_network: NetworkHelper) -> None:
    net = partnerledger_network.create(
        tiers=[{"name": "member", "threshold": "0"}, {"name": "champion", "threshold": "50"}]
    )
    history(net)
    net.enable(PLUGIN)
    net.enable("threshold-tiers")

    tiers = {s.member: s.tier.value for s in net.standings() if s.tier is not None}
    assert all(isinstance(choice, TierChoice) for choice in tiers.values())
    assert {member: choice.tier for member, choice in tiers.items()} == {
        "ann": "champion",
        "bo": "member",
        "cy": "member",
    }


@pytest.mark.parametrize(
    ("settings", "field", "reason"),
    [
        ({"streak": 0}, "settings.streak", "must be at least 1"),
        ({"bonus": "-1"}, "settings.bonus", "must be zero or more"),
        ({"per_referral": "-0.5"}, "settings.per_referral", "must be zero or more"),
        ({"streak": "three"}, "settings.streak", "Expected `int`, got `str`"),
        ({"streaks": 3}, "settings.streaks", "unknown field"),
    ],
)
def test_bad_settings_are_refused_and_nothing_is_written(
    partnerledger_network: NetworkHelper, settings: dict[str, object], field: str, reason: str
) -> None:
    net = partnerledger_network.create()
    before = net.types()
    with pytest.raises(InvalidCommand) as caught:
        net.enable(PLUGIN, **settings)
    assert (caught.value.field, caught.value.reason) == (field, reason)
    assert net.types() == before


def test_the_hook_through_the_rules_facade(partnerledger_ledger: Ledger) -> None:
    """The plugin decides alone, without a store: Rules.score with its settings."""
    rules = partnerledger_ledger.rules
    window = Window(start=datetime(2025, 1, 1, tzinfo=UTC), end=datetime(2025, 2, 1, tzinfo=UTC))
    activity = Activity(network="n", member="m", window=window, currency="USD", referrals_given=7)
    enabled = {PLUGIN: rules.settings(PLUGIN, {"streak": 7, "bonus": "1.5"})}
    decision = rules.score(activity, enabled)
    assert decision is not None
    assert decision.value == Score(
        total=Decimal("71.5"),
        breakdown={"referrals": Decimal(70), "streak_bonus": Decimal("1.5")},
        label="streak",
    )
