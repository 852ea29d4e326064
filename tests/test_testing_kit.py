"""The test kit for plugin authors, used the way a plugin's own tests use it.

Nothing is imported from ``partnerledger.testing``: the fixtures come from
the ``pytest11`` entry point of the installed distribution.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from partnerledger import InvalidCommand, InvalidTransition, Ledger, Store
from partnerledger.rules import Score

if TYPE_CHECKING:  # only the type: the fixtures come from the entry point
    from partnerledger.testing import NetworkHelper


def test_the_kit_is_registered_through_its_entry_point(request: pytest.FixtureRequest) -> None:
    plugin = request.config.pluginmanager.get_plugin("partnerledger")
    assert plugin is not None
    assert plugin.__name__ == "partnerledger.testing"


def test_the_store_and_ledger_fixtures(
    partnerledger_store: Store, partnerledger_ledger: Ledger
) -> None:
    assert partnerledger_store.database.kind == "sqlite"
    assert partnerledger_store.last_position() == 0
    assert partnerledger_ledger.store is partnerledger_store
    assert "points" in partnerledger_ledger.rules.names()


def test_a_tiny_history(partnerledger_network: NetworkHelper, partnerledger_store: Store) -> None:
    net = partnerledger_network.create(tiers=[{"name": "silver", "threshold": "5"}])
    assert net is partnerledger_network
    net.member("lee-law", category="lawyer")
    net.member("park-cpa", category="accountant")
    referral = net.referral("lee-law", "park-cpa", deal_value="2500")
    assert referral == "r-1"
    net.referral("park-cpa", "lee-law", until="sent")

    assert net.types() == [
        "network.created",
        "member.joined",
        "member.joined",
        "referral.sent",
        "referral.accepted",
        "referral.converted",
        "referral.sent",
    ]
    times = [event.occurred_at for event in net.events()]
    assert times == sorted(times)
    assert partnerledger_store.last_position() == 7
    assert [e.command.deal_value for e in net.events("referral.converted")] == [Decimal(2500)]

    activity = net.activity("lee-law")
    assert (activity.referrals_given, activity.referrals_given_converted) == (1, 1)
    assert activity.converted_value_given == Decimal(2500)

    assert net.score("lee-law") is None  # no scoring plugin enabled yet
    net.enable("points")
    net.enable("threshold-tiers")
    assert set(net.plugins()) == {"points", "threshold-tiers"}
    score = net.score("lee-law")
    assert score is not None
    assert (score.plugin, score.version) == ("points", "1.0.0")
    assert score.value == Score(
        total=Decimal("8.5"),
        breakdown={
            "referrals_given": Decimal(1),
            "referrals_converted": Decimal(5),
            "converted_value": Decimal("2.5"),
            "introductions": Decimal(0),
        },
    )
    tier = net.tier("lee-law")
    assert tier is not None
    assert tier.value.tier == "silver"
    assert {s.member for s in net.standings()} == {"lee-law", "park-cpa"}


def test_settings_configure_disable_and_refusals(partnerledger_network: NetworkHelper) -> None:
    net = partnerledger_network.create("riverside", currency="EUR", period="month")
    net.member("a")
    net.member("b")
    net.enable("points", referral_given="3")
    assert net.plugins()["points"].referral_given == Decimal(3)
    net.configure("points", introduction=0)
    assert net.plugins()["points"].referral_given == Decimal(1)
    with pytest.raises(InvalidCommand) as caught:
        net.configure("points", recency_floor="2")
    assert (caught.value.field, caught.value.reason) == (
        "settings.recency_floor",
        "must be between 0 and 1",
    )
    net.disable("points")
    assert net.plugins() == {}
    with pytest.raises(InvalidTransition):
        net.disable("points")

    # Plain data, as one line of an import file; the helper fills the rest.
    net.execute(
        {
            "type": "introduction.made",
            "introduction": "i-1",
            "introducer": "a",
            "introduced": "b",
            "to_business": "Acme",
        }
    )
    with pytest.raises(InvalidCommand) as caught:
        net.execute({"type": "referral.sent", "referral": "x", "from_member": "a"})
    assert caught.value.field == "to_member"
    assert net.types()[-1] == "introduction.made"


def test_two_networks_in_one_store(partnerledger_network: NetworkHelper) -> None:
    first = partnerledger_network.create("one")
    second = partnerledger_network.create("two")
    assert (first.slug, second.slug) == ("one", "two")
    second.enable("points")
    assert first.plugins() == {}
    assert set(second.plugins()) == {"points"}
    assert first.on("two").plugins() == second.plugins()
    assert [e.network for e in first.events()] == ["one"]
