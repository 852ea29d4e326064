"""The points plugin: weighted components for partner programs, with optional recency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from partnerledger import Ledger, Store
from partnerledger.activity import member_activities
from partnerledger.commands import Command, convert_command
from partnerledger.errors import InvalidCommand
from partnerledger.pluginmanager import Rules, load_rules
from partnerledger.plugins import points
from partnerledger.plugins.points import Settings, partnerledger_score, recency_factor
from partnerledger.rules import Activity, Score, Window

END = datetime(2025, 7, 1, tzinfo=UTC)
WINDOW = Window(start=datetime(2025, 1, 1, tzinfo=UTC), end=END)
RECENT = Settings(recency_days=90)


def activity(**fields: Any) -> Activity:
    return Activity(network="acme", member="ann", window=WINDOW, currency="USD", **fields)


def days_ago(days: float) -> datetime:
    return END - timedelta(days=days)


@pytest.fixture
def rules() -> Rules:
    return load_rules(builtins=[points], env={"PARTNERLEDGER_PLUGINS": ""})


BUSY = {
    "referrals_given": 3,
    "referrals_given_converted": 2,
    "converted_value_given": Decimal("7500.00"),
    "introductions": 4,
}


def test_default_weights() -> None:
    result = partnerledger_score(activity(**BUSY), Settings())
    assert result == Score(
        total=Decimal("28.5"),
        breakdown={
            "referrals_given": Decimal(3),
            "referrals_converted": Decimal(10),
            "converted_value": Decimal("7.5"),
            "introductions": Decimal(8),
        },
    )
    assert result.label is None


def test_nothing_scores_zero() -> None:
    result = partnerledger_score(activity(), Settings())
    assert result.total == 0
    assert set(result.breakdown.values()) == {Decimal(0)}


def test_net_reversals_can_make_the_value_negative() -> None:
    result = partnerledger_score(activity(converted_value_given=Decimal(-2000)), Settings())
    assert result.breakdown["converted_value"] == Decimal(-2)
    assert result.total == Decimal(-2)


def test_custom_weights_through_the_manager(rules: Rules) -> None:
    raw = {
        "referral_given": "0.5",
        "referral_converted": 10,
        "per_1000_converted_value": "2",
        "introduction": 0,
    }
    settings = rules.settings("points", raw)
    decision = rules.score(activity(**BUSY), {"points": settings})
    assert decision is not None
    assert (decision.plugin, decision.version) == ("points", "1.0.0")
    assert decision.value == Score(
        total=Decimal("36.5"),
        breakdown={
            "referrals_given": Decimal("1.5"),
            "referrals_converted": Decimal(20),
            "converted_value": Decimal(15),
            "introductions": Decimal(0),
        },
    )


def test_default_settings_through_the_manager(rules: Rules) -> None:
    enabled = {"points": rules.settings("points", {})}
    assert enabled["points"] == Settings()
    decision = rules.score(activity(**BUSY), enabled)
    assert decision is not None
    assert (decision.plugin, decision.version) == ("points", "1.0.0")
    assert isinstance(decision.value, Score)
    assert decision.value.total == Decimal("28.5")


# ---------------------------------------------------------------- recency


@pytest.mark.parametrize(
    ("last", "factor"),
    [
        (END, Decimal(1)),
        (days_ago(45), Decimal("0.75")),
        (days_ago(9), Decimal("0.95")),
        (days_ago(89), Decimal(1) - Decimal("0.5") * 89 / 90),
        (days_ago(90), Decimal("0.5")),  # on the floor at recency_days
        (days_ago(400), Decimal("0.5")),  # and stays there
        (END + timedelta(days=1), Decimal(1)),  # never above 1
        (None, Decimal("0.5")),  # never converted: the floor
    ],
)
def test_recency_factor(last: datetime | None, factor: Decimal) -> None:
    assert recency_factor(activity(last_conversion_at=last), RECENT) == factor


def test_recency_counts_hours_too() -> None:
    # 22.5 days of 90: a quarter of the way down from 1 to 0.5.
    last = END - timedelta(days=22, hours=12)
    assert recency_factor(activity(last_conversion_at=last), RECENT) == Decimal("0.875")


def test_without_recency_the_factor_is_one() -> None:
    assert recency_factor(activity(), Settings()) == 1
    result = partnerledger_score(activity(**BUSY), Settings())
    assert "recency" not in result.breakdown


@pytest.mark.parametrize(
    ("last", "total", "adjustment"),
    [
        (END, "28.50", "0.00"),
        (days_ago(45), "21.38", "-7.12"),  # 28.5 * 0.75 = 21.375, half-even to 21.38
        (days_ago(30), "23.75", "-4.75"),  # 28.5 * 5/6
        (None, "14.25", "-14.25"),
    ],
)
def test_recency_scales_the_total(last: datetime | None, total: str, adjustment: str) -> None:
    result = partnerledger_score(activity(**BUSY, last_conversion_at=last), RECENT)
    assert result.total == Decimal(total)
    assert result.breakdown["recency"] == Decimal(adjustment)
    assert sum(result.breakdown.values()) == result.total


def test_recency_floor_setting() -> None:
    settings = Settings(recency_days=10, recency_floor=Decimal(0))
    result = partnerledger_score(activity(**BUSY, last_conversion_at=days_ago(5)), settings)
    assert result.total == Decimal("14.25")
    assert partnerledger_score(activity(**BUSY), settings).total == 0


# --------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        ({"recency_days": 0}, "settings.recency_days", "at least 1"),
        ({"recency_floor": "1.5"}, "settings.recency_floor", "between 0 and 1"),
        ({"recency_floor": "-0.1"}, "settings.recency_floor", "between 0 and 1"),
        ({"referral_given": "-1"}, "settings.referral_given", "zero or more"),
        ({"introduction": "-2"}, "settings.introduction", "zero or more"),
        ({"referral_given": "many"}, "settings.referral_given", "Invalid decimal"),
        ({"bonus": 1}, "settings.bonus", "unknown field"),
    ],
)
def test_bad_settings_are_refused(
    rules: Rules, raw: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(InvalidCommand) as caught:
        rules.settings("points", raw)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_recency_settings_are_accepted(rules: Rules) -> None:
    settings = rules.settings("points", {"recency_days": 30, "recency_floor": "0.25"})
    assert settings == Settings(recency_days=30, recency_floor=Decimal("0.25"))
    assert rules.settings("points", {"recency_days": None}) == Settings()


# ------------------------------------------------------------ end to end


def line(kind: str, when: datetime, **fields: Any) -> Command:
    return convert_command(
        {"type": kind, "network": "acme", "actor": "manager", "occurred_at": when, **fields}
    )


def converted(slug: str, sender: str, sent: datetime, when: datetime, value: str) -> list[Command]:
    return [
        line(
            "referral.sent", sent, referral=slug, from_member=sender, to_member="hub",
            customer=f"customer {slug}",
        ),
        line("referral.accepted", sent, referral=slug),
        line("referral.converted", when, referral=slug, deal_value=value, currency="USD"),
    ]  # fmt: skip


def test_end_to_end_from_the_log(ledger: Ledger, store: Store, rules: Rules) -> None:
    start = datetime(2024, 12, 1, tzinfo=UTC)
    ledger.execute(
        line("network.created", start, name="Acme partners", currency="USD"),
        *(
            line("member.joined", start, member=m, name=m.title(), category="partner")
            for m in ("hub", "ann", "bob")
        ),
        # ann: 3 referrals in the window, 2 converted (12,000 - 2,000 reversed), last 45 days ago.
        *converted("a1", "ann", days_ago(150), days_ago(100), "12000"),
        line("referral.reversed", days_ago(60), referral="a1", amount="2000", reason="refund"),
        *converted("a2", "ann", days_ago(120), days_ago(45), "0.50"),
        line(
            "referral.sent", days_ago(10), referral="a3", from_member="ann", to_member="hub",
            customer="x",
        ),
        line(
            "introduction.made", days_ago(20), introduction="i1", introducer="ann",
            introduced="bob", to_member="hub",
        ),
        # bob: one referral converted before the window only.
        *converted("b1", "bob", start, start + timedelta(days=2), "5000"),
    )  # fmt: skip
    everyone = member_activities(store, "acme", WINDOW)
    ann, bob = everyone["ann"], everyone["bob"]
    assert (ann.referrals_given, ann.referrals_given_converted) == (3, 2)
    assert ann.converted_value_given == Decimal("10000.50")
    assert (ann.introductions, ann.last_conversion_at) == (1, days_ago(45))
    assert (bob.referrals_given, bob.last_conversion_at) == (0, start + timedelta(days=2))

    enabled = {"points": rules.settings("points", {"recency_days": 90})}
    decision = rules.score(ann, enabled)
    assert decision is not None
    assert (decision.plugin, decision.version) == ("points", "1.0.0")
    # 3 + 10 + 10.0005 + 2 = 25.0005, times 0.75 = 18.750375 → 18.75.
    assert decision.value == Score(
        total=Decimal("18.75"),
        breakdown={
            "referrals_given": Decimal(3),
            "referrals_converted": Decimal(10),
            "converted_value": Decimal("10.0005"),
            "introductions": Decimal(2),
            "recency": Decimal("-6.2505"),
        },
    )
    bob_decision = rules.score(bob, enabled)
    assert bob_decision is not None
    assert bob_decision.value == Score(
        total=Decimal("0.00"),
        breakdown={
            "referrals_given": Decimal(0),
            "referrals_converted": Decimal(0),
            "converted_value": Decimal(0),
            "introductions": Decimal(0),
            "recency": Decimal(0),
        },
    )
