"""The attribution plugin: first wins, last wins, or an exact even split."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from partnerledger.errors import InvalidCommand
from partnerledger.pluginmanager import Rules, load_rules
from partnerledger.plugins import attribution, fees
from partnerledger.rules import Credit, ReferralFacts

DAY0 = datetime(2025, 5, 1, 9, tzinfo=UTC)


def referral(slug: str, member: str, days: int) -> ReferralFacts:
    return ReferralFacts(
        referral=slug,
        from_member=member,
        to_member="bob",
        customer="Acme",
        status="sent",
        sent_at=DAY0 + timedelta(days=days),
    )


# Deliberately not in sent_at order: the oldest is r2, the newest r3.
R1 = referral("r1", "alice", 2)
R2 = referral("r2", "carol", 0)
R3 = referral("r3", "dave", 5)


@pytest.fixture
def rules() -> Rules:
    return load_rules(builtins=[fees, attribution], env={"PARTNERLEDGER_PLUGINS": ""})


def shares(credits: list[Credit] | None) -> list[tuple[str, str, Decimal]]:
    assert credits is not None
    return [(c.referral, c.member, c.share) for c in credits]


def attribute(rule: str, referrals: list[ReferralFacts]) -> list[Credit] | None:
    settings = attribution.Settings(rule=rule)  # type: ignore[arg-type]
    return attribution.partnerledger_attribute(
        customer="Acme", referrals=referrals, settings=settings
    )


def test_first_wins_by_sent_at_in_input_order() -> None:
    assert shares(attribute("first", [R1, R2, R3])) == [
        ("r1", "alice", Decimal(0)),
        ("r2", "carol", Decimal(1)),
        ("r3", "dave", Decimal(0)),
    ]


def test_last_wins() -> None:
    assert shares(attribute("last", [R1, R2, R3])) == [
        ("r1", "alice", Decimal(0)),
        ("r2", "carol", Decimal(0)),
        ("r3", "dave", Decimal(1)),
    ]


def test_first_is_the_default() -> None:
    assert attribution.Settings().rule == "first"


def test_ties_go_to_the_first_listed_or_last_listed() -> None:
    a, b = referral("a", "alice", 1), referral("b", "carol", 1)
    assert [c.share for c in attribute("first", [a, b]) or []] == [1, 0]
    assert [c.share for c in attribute("last", [a, b]) or []] == [0, 1]


def test_split_three_ways_adds_up_exactly() -> None:
    credits = attribute("split", [R2, R1, R3])  # oldest first, as the hook receives them
    assert shares(credits) == [
        ("r2", "carol", Decimal("0.3334")),
        ("r1", "alice", Decimal("0.3333")),
        ("r3", "dave", Decimal("0.3333")),
    ]
    assert sum((c.share for c in credits or []), Decimal(0)) == Decimal(1)


def test_split_remainder_goes_to_the_oldest_whatever_the_order() -> None:
    credits = attribute("split", [R1, R2, R3])
    assert [c.share for c in credits or []] == [
        Decimal("0.3333"),
        Decimal("0.3334"),
        Decimal("0.3333"),
    ]


@pytest.mark.parametrize("count", [2, 3, 4, 6, 7, 9, 11, 13, 97])
def test_split_always_sums_to_one(count: int) -> None:
    referrals = [referral(f"r{i}", f"m{i}", i) for i in range(count)]
    credits = attribute("split", referrals) or []
    assert len(credits) == count
    assert sum((c.share for c in credits), Decimal(0)) == Decimal(1)
    for credit in credits:
        assert credit.share == credit.share.quantize(Decimal("0.0001"))
        assert credit.share > 0


def test_split_two_ways_is_exact_halves() -> None:
    assert [c.share for c in attribute("split", [R1, R2]) or []] == [
        Decimal("0.5"),
        Decimal("0.5"),
    ]


@pytest.mark.parametrize("rule", ["first", "last", "split"])
def test_fewer_than_two_referrals_is_no_decision(rule: str) -> None:
    assert attribute(rule, []) is None
    assert attribute(rule, [R1]) is None


def test_through_the_manager(rules: Rules) -> None:
    enabled = {"attribution": rules.settings("attribution", {"rule": "split"})}
    decisions = rules.attribute("Acme", [R2, R1, R3], enabled)
    assert [(d.plugin, d.version) for d in decisions] == [("attribution", "1.0.0")] * 3
    assert [d.value.share for d in decisions] == [  # type: ignore[union-attr]
        Decimal("0.3334"),
        Decimal("0.3333"),
        Decimal("0.3333"),
    ]
    enabled = {"attribution": rules.settings("attribution", {})}
    decisions = rules.attribute("Acme", [R2, R1, R3], enabled)
    assert [d.value.share for d in decisions] == [1, 0, 0]  # type: ignore[union-attr]
    # One referral: the plugin declines; a network without the plugin: no decision.
    assert rules.attribute("Acme", [R1], enabled) == []
    assert rules.attribute("Acme", [R1, R2], {}) == []


@pytest.mark.parametrize(
    ("raw", "field"),
    [({"rule": "random"}, "settings.rule"), ({"rules": "first"}, "settings.rules")],
)
def test_settings_refusals(rules: Rules, raw: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidCommand) as caught:
        rules.settings("attribution", raw)
    assert caught.value.field == field
