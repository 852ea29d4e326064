"""Provisional incentives and attributions, replayed from the log with the rules in force."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
from click.testing import CliRunner

from partnerledger import Ledger
from partnerledger.cli.main import cli
from partnerledger.commands import decode_command
from partnerledger.replay import attributions, incentive_entries

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def next(self) -> str:
        self.now += timedelta(hours=1)
        return self.now.isoformat()


def history(network: str, *, fees: bool) -> list[bytes]:
    clock = Clock()

    def c(type_: str, **fields: object) -> bytes:
        base = {"type": type_, "network": network, "actor": "coord", "occurred_at": clock.next()}
        return msgspec.json.encode({**base, **fields})

    lines = [
        c("network.created", name=network, currency="USD"),
        c("member.joined", member="lee", name="Lee Law", category="lawyer"),
        c("member.joined", member="park", name="Park CPA", category="accountant"),
        c("member.joined", member="kim", name="Kim Realty", category="realtor"),
        c("referral.sent", referral="r0", from_member="lee", to_member="park", customer="Ann"),
        c("referral.accepted", referral="r0"),
        c("referral.converted", referral="r0", deal_value="500.00", currency="USD"),
    ]
    if fees:
        settings = {"default_kind": "revenue_share", "default_rate": "0.10"}
        lines.append(c("plugin.enabled", plugin="fees", settings=settings))
        lines.append(c("plugin.enabled", plugin="attribution", settings={"rule": "split"}))
    lines += [
        c("referral.sent", referral="r1", from_member="lee", to_member="park", customer="Dana"),
        c("referral.accepted", referral="r1"),
        c("referral.converted", referral="r1", deal_value="10000.00", currency="USD"),
        c("referral.reversed", referral="r1", amount="2500.00", reason="refund"),
        c("referral.sent", referral="r2", from_member="kim", to_member="park", customer="Dana"),
        c(
            "agreement.proposed",
            agreement="a1",
            kind="referral",
            parties=["kim", "park"],
            terms={"scope": "homes", "compensation": {"kind": "referral_fee", "amount": "250.00"}},
        ),
        c("agreement.accepted", agreement="a1", party="kim"),
        c("agreement.accepted", agreement="a1", party="park"),
        c("referral.accepted", referral="r2"),
        c("referral.converted", referral="r2", deal_value="3000.00", currency="USD"),
    ]
    return lines


def load(ledger: Ledger) -> None:
    lines = history("north", fees=True) + history("south", fees=False)
    ledger.execute(*(decode_command(x) for x in lines))


def test_incentives_use_the_rules_and_terms_in_force_at_each_event(ledger: Ledger) -> None:
    load(ledger)

    north = incentive_entries(ledger, "north")

    entries = [(j.event.type, j.decision.value) for j in north]
    assert [(t, e.member, e.kind, e.amount) for t, e in entries] == [  # type: ignore[union-attr]
        # r0 converted before fees was enabled: nothing.
        ("referral.converted", "lee", "revenue_share", Decimal("1000.00")),
        ("referral.reversed", "lee", "clawback", Decimal("-250.00")),
        # r2 converted under a live agreement whose terms pay a flat fee.
        ("referral.converted", "kim", "referral_fee", Decimal("250.00")),
    ]
    assert {(j.decision.plugin, j.decision.version) for j in north} == {("fees", "1.0.0")}
    assert incentive_entries(ledger, "south") == []


def test_attribution_of_a_customer_sent_twice(ledger: Ledger) -> None:
    load(ledger)

    credits = [j.decision.value for j in attributions(ledger, "north")]

    assert [(c.referral, c.member, c.share) for c in credits] == [  # type: ignore[union-attr]
        ("r1", "lee", Decimal("0.5")),
        ("r2", "kim", Decimal("0.5")),
    ]
    assert attributions(ledger, "south") == []


def test_cli(database_url: str, ledger: Ledger) -> None:
    load(ledger)
    runner = CliRunner()
    result = runner.invoke(cli, ["--database", database_url, "incentives", "north", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["decision"]["value"]["amount"] for r in rows] == ["1000.00", "-250.00", "250.00"]
    table = runner.invoke(
        cli, ["--database", database_url, "incentives", "north", "--member", "lee"]
    )
    assert "lee: 750.00 USD" in table.output
    credits = runner.invoke(cli, ["--database", database_url, "attributions", "north"])
    assert "Dana" in credits.output
    assert "0.5" in credits.output
    missing = runner.invoke(cli, ["--database", database_url, "incentives", "nowhere"])
    assert missing.exit_code == 1
    assert "Error: network: no network 'nowhere'" in missing.output
