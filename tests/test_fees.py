"""The fees plugin: referral fees, revenue shares, caps, clawbacks and tier bonuses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from partnerledger.commands import Compensation, Terms, decode_command
from partnerledger.errors import InvalidCommand
from partnerledger.events import Event
from partnerledger.pluginmanager import Rules, load_rules
from partnerledger.plugins import attribution, fees
from partnerledger.rules import Decision, LedgerEntry, ReferralFacts, TierChoice

T = "2025-06-01T09:00:00Z"
SENT = datetime(2025, 5, 1, 9, tzinfo=UTC)


def event(type_: str, command_id: str, version: int = 1, **fields: Any) -> Event:
    """A real event wrapping a decoded command."""
    record = {"type": type_, "network": "riverside", "actor": "coord", "occurred_at": T}
    command = decode_command(msgspec.json.encode({**record, **fields}))
    return Event(
        originator_id=uuid.uuid4(),
        originator_version=version,
        recorded_at=datetime(2025, 6, 1, 9, 0, 1, tzinfo=UTC),
        command_id=command_id,
        command=command,
    )


def converted(deal_value: str = "10000", currency: str = "USD", cid: str = "conv-1") -> Event:
    return event(
        "referral.converted", cid, 3, referral="r1", deal_value=deal_value, currency=currency
    )


def reversed_(amount: str, cid: str = "rev-1") -> Event:
    return event("referral.reversed", cid, 4, referral="r1", amount=amount, reason="refund")


def facts(deal_value: str | None = "10000", referral: str = "r1") -> ReferralFacts:
    return ReferralFacts(
        referral=referral,
        from_member="alice",
        to_member="bob",
        customer="Acme",
        status="converted",
        sent_at=SENT,
        deal_value=Decimal(deal_value) if deal_value is not None else None,
        currency="USD",
    )


FEE_250 = Terms(
    scope="referrals",
    compensation=Compensation(kind="referral_fee", amount=Decimal("250")),
)
SHARE_10 = Terms(
    scope="referrals",
    compensation=Compensation(kind="revenue_share", rate=Decimal("0.10")),
)


@pytest.fixture
def rules() -> Rules:
    return load_rules(builtins=[fees, attribution], env={"PARTNERLEDGER_PLUGINS": ""})


def entries(decisions: list[Decision]) -> list[LedgerEntry]:
    for decision in decisions:
        assert decision.plugin == "fees"
        assert decision.version == "1.0.0"
    return [d.value for d in decisions]  # type: ignore[misc]


# ------------------------------------------------------------ direct calls


def test_referral_fee_from_terms() -> None:
    [entry] = (
        fees.partnerledger_incentives(
            event=converted(), referral=facts(), terms=FEE_250, tier=None, settings=fees.Settings()
        )
        or []
    )
    assert entry == LedgerEntry(
        member="alice",
        kind="referral_fee",
        amount=Decimal("250.00"),
        currency="USD",
        source="conv-1",
        note="referral fee 250.00 under agreement terms",
    )
    assert str(entry.amount) == "250.00"


def test_revenue_share_from_terms() -> None:
    [entry] = (
        fees.partnerledger_incentives(
            event=converted(), referral=facts(), terms=SHARE_10, tier=None, settings=fees.Settings()
        )
        or []
    )
    assert entry.kind == "revenue_share"
    assert entry.amount == Decimal("1000.00")
    assert str(entry.amount) == "1000.00"
    assert entry.member == "alice"
    assert entry.currency == "USD"
    assert entry.source == "conv-1"
    assert entry.note == "10% of 10000.00 under agreement terms"


def test_revenue_share_rounds_half_up_to_cents() -> None:
    terms = Terms(scope="x", compensation=Compensation(kind="revenue_share", rate=Decimal("0.125")))
    [entry] = (
        fees.partnerledger_incentives(
            event=converted("100.1"),
            referral=facts(),
            terms=terms,
            tier=None,
            settings=fees.Settings(),
        )
        or []
    )
    assert entry.amount == Decimal("12.51")  # 12.5125 → 12.51
    [entry] = (
        fees.partnerledger_incentives(
            event=converted("100.2"),
            referral=facts(),
            terms=terms,
            tier=None,
            settings=fees.Settings(),
        )
        or []
    )
    assert entry.amount == Decimal("12.53")  # 12.525 → 12.53 (half up, not half even)
    assert entry.note == "12.5% of 100.20 under agreement terms"


def test_cap_limits_the_share() -> None:
    settings = fees.Settings(revenue_share_cap=Decimal("600"))
    [entry] = (
        fees.partnerledger_incentives(
            event=converted(), referral=facts(), terms=SHARE_10, tier=None, settings=settings
        )
        or []
    )
    assert entry.amount == Decimal("600.00")
    assert entry.note == "10% of 10000.00 under agreement terms, capped at 600.00"
    # Below the cap the share is untouched.
    [entry] = (
        fees.partnerledger_incentives(
            event=converted("5000"),
            referral=facts("5000"),
            terms=SHARE_10,
            tier=None,
            settings=settings,
        )
        or []
    )
    assert entry.amount == Decimal("500.00")


def test_cap_does_not_touch_a_flat_fee() -> None:
    settings = fees.Settings(revenue_share_cap=Decimal("100"))
    [entry] = (
        fees.partnerledger_incentives(
            event=converted(), referral=facts(), terms=FEE_250, tier=None, settings=settings
        )
        or []
    )
    assert entry.amount == Decimal("250.00")


def test_defaults_apply_without_terms_or_compensation() -> None:
    share = fees.Settings(default_kind="revenue_share", default_rate=Decimal("0.05"))
    fee = fees.Settings(default_kind="referral_fee", default_fee=Decimal("99.5"))
    no_compensation = Terms(scope="co-marketing only")
    for terms in (None, no_compensation):
        [entry] = (
            fees.partnerledger_incentives(
                event=converted(), referral=facts(), terms=terms, tier=None, settings=share
            )
            or []
        )
        assert (entry.kind, entry.amount) == ("revenue_share", Decimal("500.00"))
        assert entry.note == "5% of 10000.00 under the fees plugin's defaults"
        [entry] = (
            fees.partnerledger_incentives(
                event=converted(), referral=facts(), terms=terms, tier=None, settings=fee
            )
            or []
        )
        assert (entry.kind, entry.amount) == ("referral_fee", Decimal("99.50"))


def test_default_kind_none_pays_nothing() -> None:
    assert (
        fees.partnerledger_incentives(
            event=converted(), referral=facts(), terms=None, tier=None, settings=fees.Settings()
        )
        is None
    )


def test_terms_override_defaults() -> None:
    settings = fees.Settings(default_kind="referral_fee", default_fee=Decimal("1"))
    [entry] = (
        fees.partnerledger_incentives(
            event=converted(), referral=facts(), terms=SHARE_10, tier=None, settings=settings
        )
        or []
    )
    assert (entry.kind, entry.amount) == ("revenue_share", Decimal("1000.00"))


def test_conversion_currency_is_used() -> None:
    [entry] = (
        fees.partnerledger_incentives(
            event=converted(currency="EUR"),
            referral=facts(),
            terms=SHARE_10,
            tier=None,
            settings=fees.Settings(),
        )
        or []
    )
    assert entry.currency == "EUR"


def test_partial_clawback_of_a_fee() -> None:
    [entry] = (
        fees.partnerledger_incentives(
            event=reversed_("2500"),
            referral=facts(),
            terms=FEE_250,
            tier=None,
            settings=fees.Settings(),
        )
        or []
    )
    assert entry.kind == "clawback"
    assert entry.amount == Decimal("-62.50")
    assert str(entry.amount) == "-62.50"
    assert entry.member == "alice"
    assert entry.source == "rev-1"
    assert entry.currency == "USD"
    assert "2500.00 of 10000.00 reversed" in entry.note


def test_full_clawback_of_a_share() -> None:
    [entry] = (
        fees.partnerledger_incentives(
            event=reversed_("10000"),
            referral=facts(),
            terms=SHARE_10,
            tier=None,
            settings=fees.Settings(),
        )
        or []
    )
    assert (entry.kind, entry.amount) == ("clawback", Decimal("-1000.00"))


def test_clawback_of_a_capped_share_is_proportional_to_what_was_paid() -> None:
    settings = fees.Settings(revenue_share_cap=Decimal("600"))
    [entry] = (
        fees.partnerledger_incentives(
            event=reversed_("5000"), referral=facts(), terms=SHARE_10, tier=None, settings=settings
        )
        or []
    )
    assert entry.amount == Decimal("-300.00")


def test_clawback_never_exceeds_what_was_earned() -> None:
    [entry] = (
        fees.partnerledger_incentives(
            event=reversed_("20000"),
            referral=facts(),
            terms=FEE_250,
            tier=None,
            settings=fees.Settings(),
        )
        or []
    )
    assert entry.amount == Decimal("-250.00")


def test_clawback_without_a_deal_value_is_nothing() -> None:
    for deal in (None, "0"):
        assert (
            fees.partnerledger_incentives(
                event=reversed_("10"),
                referral=facts(deal),
                terms=FEE_250,
                tier=None,
                settings=fees.Settings(),
            )
            is None
        )


def test_tier_bonus_for_the_commands_member() -> None:
    settings = fees.Settings(tier_bonuses={"gold": Decimal("150")}, bonus_currency="GBP")
    training = event("training.completed", "train-1", member="carol", training="Sales 101")
    [entry] = (
        fees.partnerledger_incentives(
            event=training,
            referral=None,
            terms=None,
            tier=TierChoice(tier="gold", reason="score 90 reaches gold (80)"),
            settings=settings,
        )
        or []
    )
    assert entry == LedgerEntry(
        member="carol",
        kind="bonus",
        amount=Decimal("150.00"),
        currency="GBP",
        source="train-1",
        note="gold tier bonus (score 90 reaches gold (80))",
    )
    # A tier without a bonus, no tier at all, or no member: nothing.
    for choice in (TierChoice(tier="silver"), TierChoice(tier=None)):
        assert (
            fees.partnerledger_incentives(
                event=training, referral=None, terms=None, tier=choice, settings=settings
            )
            is None
        )
    no_member = event("network.tiers_set", "tiers-1", tiers=[])
    assert (
        fees.partnerledger_incentives(
            event=no_member,
            referral=None,
            terms=None,
            tier=TierChoice(tier="gold"),
            settings=settings,
        )
        is None
    )


def test_other_events_give_nothing() -> None:
    sent = event(
        "referral.sent", "sent-1", referral="r1", from_member="alice", to_member="bob", customer="A"
    )
    settings = fees.Settings(default_kind="referral_fee", default_fee=Decimal("10"))
    assert (
        fees.partnerledger_incentives(
            event=sent, referral=facts(), terms=FEE_250, tier=None, settings=settings
        )
        is None
    )
    # A conversion without its referral facts: nothing either.
    assert (
        fees.partnerledger_incentives(
            event=converted(), referral=None, terms=FEE_250, tier=None, settings=settings
        )
        is None
    )


# ------------------------------------------------------ through the manager


def test_through_the_manager(rules: Rules) -> None:
    assert rules.info("fees").version == "1.0.0"
    assert "partnerledger_incentives" in rules.info("fees").hooks
    enabled = {"fees": rules.settings("fees", {"revenue_share_cap": "800"})}
    [entry] = entries(rules.incentives(converted(), enabled, referral=facts(), terms=SHARE_10))
    assert entry.amount == Decimal("800.00")
    [entry] = entries(rules.incentives(reversed_("2500"), enabled, referral=facts(), terms=FEE_250))
    assert entry.amount == Decimal("-62.50")
    bonus = {
        "fees": rules.settings("fees", {"tier_bonuses": {"gold": 50}, "bonus_currency": "USD"})
    }
    training = event("training.completed", "train-1", member="carol", training="Sales 101")
    [entry] = entries(rules.incentives(training, bonus, tier=TierChoice(tier="gold")))
    assert (entry.kind, entry.member, entry.amount) == ("bonus", "carol", Decimal("50.00"))


def test_network_without_the_plugin_gets_no_entries(rules: Rules) -> None:
    assert rules.incentives(converted(), {}, referral=facts(), terms=SHARE_10) == []
    assert rules.incentives(reversed_("10000"), {}, referral=facts(), terms=SHARE_10) == []


def test_seed_numbers_revenue_share_over_a_year(rules: Rules) -> None:
    """5 referrals a month, 40 % converted at 10,000 each, a 10 % share: 24,000 a year."""
    referrals_per_month = 5
    conversion_rate = Decimal("0.40")
    conversions_per_month = referrals_per_month * conversion_rate
    assert conversions_per_month == 2
    enabled = {"fees": rules.settings("fees", {})}
    monthly: list[Decimal] = []
    for month in range(1, 13):
        total = Decimal(0)
        for n in range(int(conversions_per_month)):
            decisions = rules.incentives(
                converted("10000", cid=f"conv-{month}-{n}"),
                enabled,
                referral=facts(referral=f"r-{month}-{n}"),
                terms=SHARE_10,
            )
            [entry] = entries(decisions)
            assert entry.amount == Decimal("1000.00")
            total += entry.amount
        monthly.append(total)
    assert monthly == [Decimal("2000.00")] * 12
    assert sum(monthly, Decimal(0)) == Decimal("24000.00")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"default_fee": "-1"}, "settings.default_fee"),
        ({"default_rate": "1.5"}, "settings.default_rate"),
        ({"default_rate": "-0.1"}, "settings.default_rate"),
        ({"revenue_share_cap": "-5"}, "settings.revenue_share_cap"),
        ({"default_kind": "bribe"}, "settings.default_kind"),
        ({"fee": 1}, "settings.fee"),
        ({"default_fee": "lots"}, "settings.default_fee"),
        ({"tier_bonuses": {"gold": "-1"}}, "settings.tier_bonuses.gold"),
        ({"tier_bonuses": {"gold": "1"}}, "settings.bonus_currency"),
    ],
)
def test_settings_refusals(rules: Rules, raw: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidCommand) as caught:
        rules.settings("fees", raw)
    assert caught.value.field.startswith("settings.")
    assert caught.value.field == field


def test_settings_defaults(rules: Rules) -> None:
    settings = rules.settings("fees", None)
    assert settings == fees.Settings()
    assert settings.default_kind == "none"
    assert settings.revenue_share_cap is None
    edge = rules.settings("fees", {"default_rate": 1, "default_fee": 0, "revenue_share_cap": 0})
    assert edge.default_rate == Decimal(1)
