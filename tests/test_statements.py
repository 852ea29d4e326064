"""The incentive ledger: entries, clawbacks, payouts, statements across closed periods."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner

from partnerledger import Ledger, Store
from partnerledger.cli.main import cli
from partnerledger.closing import close_period
from partnerledger.commands import StatementClosed, convert_command
from partnerledger.domain import Network
from partnerledger.errors import DomainError
from partnerledger.periods import Calendar
from partnerledger.projection import Projector
from partnerledger.views import ledger as ledger_view

NET = "fees-net"


def at(month: int, day: int = 1, year: int = 2025) -> datetime:
    return datetime(year, month, day, 12, tzinfo=UTC)


def cmd(kind: str, when: datetime, **fields: Any) -> Any:
    return convert_command(
        {"type": kind, "network": NET, "actor": "coordinator", "occurred_at": when, **fields}
    )


def setup(ledger: Ledger) -> None:
    """A quarterly network paying 10 % of each deal to the referrer, with gold bonuses."""
    ledger.execute(
        cmd("network.created", at(1), name="Fees", currency="EUR", period="quarter",
            tiers=[{"name": "silver", "threshold": "0"}, {"name": "gold", "threshold": "2"}]),
        cmd("plugin.enabled", at(1), plugin="fees",
            settings={"default_kind": "revenue_share", "default_rate": "0.10",
                      "tier_bonuses": {"gold": "50"}, "bonus_currency": "EUR"}),
        cmd("plugin.enabled", at(1), plugin="points"),
        cmd("plugin.enabled", at(1), plugin="threshold-tiers"),
        cmd("member.joined", at(1), member="ann", name="Ann", category="law"),
        cmd("member.joined", at(1), member="bob", name="Bob", category="tax"),
    )  # fmt: skip


def referral(ledger: Ledger, slug: str, sent: datetime, converted: datetime, value: str) -> None:
    ledger.execute(
        cmd("referral.sent", sent, referral=slug, from_member="ann", to_member="bob",
            customer=f"customer {slug}"),
        cmd("referral.accepted", sent, referral=slug),
        cmd("referral.converted", converted, referral=slug, deal_value=value, currency="EUR"),
    )  # fmt: skip


def network(ledger: Ledger) -> Network:
    return ledger.unit_of_work().network(NET)


def statement(projector: Projector, ledger: Ledger, member: str, period: str) -> Any:
    projector.catch_up()
    found = network(ledger)
    return ledger_view.statement(projector.db, found, member, Calendar.of(found).parse(period))


def test_conversions_reversals_and_payouts(ledger: Ledger, projector: Projector) -> None:
    setup(ledger)
    referral(ledger, "r1", at(1, 10), at(2, 3), "10000")
    referral(ledger, "r2", at(2, 10), at(3, 3), "2500.50")
    q1 = statement(projector, ledger, "ann", "2025-Q1")
    assert q1.opening == 0
    assert [(e.kind, e.amount, e.plugin, e.source_type) for e in q1.entries] == [
        ("revenue_share", Decimal("1000.00"), "fees", "referral.converted"),
        ("revenue_share", Decimal("250.05"), "fees", "referral.converted"),
    ]
    assert q1.closing == Decimal("1250.05")
    assert q1.as_dict()["closing"] == "1250.05"
    assert q1.as_dict()["entries"][0]["amount"] == "1000.00"

    # A partial refund in Q2 claws back the same share; a payout is an entry too.
    ledger.execute(
        cmd("referral.reversed", at(4, 5), referral="r1", amount="4000", reason="refund"),
        cmd("payout.recorded", at(4, 20), member="ann", payout="p1", amount="1000",
            currency="EUR", reference="SEPA 17"),
    )  # fmt: skip
    q2 = statement(projector, ledger, "ann", "2025-Q2")
    assert q2.opening == Decimal("1250.05")
    assert [(e.kind, e.amount) for e in q2.entries] == [
        ("clawback", Decimal("-400.00")),
        ("payout", Decimal("-1000")),
    ]
    assert q2.closing == Decimal("-149.95")
    assert ledger_view.balances(projector.db, NET) == {"ann": Decimal("-149.95")}
    assert statement(projector, ledger, "bob", "2025-Q1").entries == []


def test_closed_statement_never_changes_and_late_events_land_next(
    ledger: Ledger, store: Store, projector: Projector
) -> None:
    setup(ledger)
    referral(ledger, "r1", at(1, 10), at(2, 3), "10000")
    referral(ledger, "r2", at(1, 11), at(2, 4), "5000")
    plan = close_period(ledger, projector, NET, "2025-Q1", actor="coordinator", at=at(4, 1))
    recorded = [s for s in plan.statements if s.member == "ann"]
    assert len(recorded) == 1
    # ann's points in Q1 reach gold (threshold 2): the fees plugin adds a 50 EUR bonus.
    kinds = [(line.kind, line.amount, line.source_type) for line in recorded[0].entries]
    assert kinds[:2] == [
        ("revenue_share", Decimal("1000.00"), "referral.converted"),
        ("revenue_share", Decimal("500.00"), "referral.converted"),
    ]
    assert kinds[2] == ("bonus", Decimal("50.00"), "tier.decided")
    closed = statement(projector, ledger, "ann", "2025-Q1")
    assert closed.closed and closed.closing == Decimal("1550.00")

    # A reversal of a Q1 conversion, dated in Q1 but recorded after the close, lands in Q2.
    ledger.execute(cmd("referral.reversed", at(3, 20), referral="r2", amount="5000",
                       reason="cancelled"))  # fmt: skip
    # The fee plugin's settings change: Q1 stays as recorded.
    ledger.execute(
        cmd("plugin.configured", at(4, 2), plugin="fees",
            settings={"default_kind": "revenue_share", "default_rate": "0.50"}),
    )  # fmt: skip
    assert statement(projector, ledger, "ann", "2025-Q1") == closed
    q2 = statement(projector, ledger, "ann", "2025-Q2")
    assert q2.opening == closed.closing
    assert [(e.kind, e.amount, e.occurred_at) for e in q2.entries] == [
        ("clawback", Decimal("-500.00"), at(3, 20)),
    ]
    # Rebuilt from the log: the same ledger, the closed statement as recorded.
    before = projector.projections["ledger"].dump()
    projector.rebuild(["ledger"])
    assert projector.projections["ledger"].dump() == before
    assert statement(projector, ledger, "ann", "2025-Q1") == closed

    # The ledger balances: each closing is the next opening, the last closing the balance.
    found = network(ledger)
    calendar = Calendar.of(found)
    period = calendar.parse("2025-Q1")
    previous = Decimal(0)
    for _ in range(3):
        current = ledger_view.statement(projector.db, found, "ann", period)
        assert current.opening == previous
        assert current.closing == current.opening + sum(e.amount for e in current.entries)
        previous = current.closing
        period = calendar.after(period)
    assert previous == ledger_view.balances(projector.db, NET)["ann"]


def test_statement_closed_must_balance(ledger: Ledger, store: Store, projector: Projector) -> None:
    setup(ledger)
    close_period(ledger, projector, NET, "2025-Q1", actor="c", at=at(4, 1))
    last = store.last_position()
    bad = StatementClosed(
        network=NET, actor="c", occurred_at=at(4, 1), period="2025-Q1", member="bob",
        currency="EUR", opening=Decimal(0), closing=Decimal(10),
    )  # fmt: skip
    with pytest.raises(DomainError, match="plus the entries") as caught:
        ledger.execute(bad)
    assert caught.value.field == "closing"
    with pytest.raises(DomainError, match="not the network's currency"):
        ledger.execute(cmd("payout.recorded", at(4, 2), member="ann", payout="p", amount="5",
                           currency="USD"))  # fmt: skip
    with pytest.raises(DomainError, match="greater than zero"):
        ledger.execute(cmd("payout.recorded", at(4, 2), member="ann", payout="p", amount="-5",
                           currency="EUR"))  # fmt: skip
    assert store.last_position() == last


def test_statement_cli(database_url: str, ledger: Ledger) -> None:
    setup(ledger)
    referral(ledger, "r1", at(1, 10), at(2, 3), "10000")
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, ["--database", database_url, *args])
        assert result.exit_code == code, result.output
        return result.output

    run("payout", "record", "--network", NET, "--member", "ann", "--payout", "p1",
        "--amount", "300", "--currency", "EUR", "--at", "2025-03-30T00:00:00Z")  # fmt: skip
    data = json.loads(
        run("statement", "--network", NET, "--member", "ann", "--period", "2025-Q1", "--json")
    )
    assert (data["opening"], data["closing"], data["currency"]) == ("0.00", "700.00", "EUR")
    assert [e["amount"] for e in data["entries"]] == ["1000.00", "-300.00"]
    output = run("statement", "--network", NET, "--member", "ann", "--period", "2025-Q1", "--csv")
    rows = list(csv.DictReader(io.StringIO(output)))
    assert [(r["kind"], r["amount"], r["balance"]) for r in rows] == [
        ("opening", "", "0.00"),
        ("revenue_share", "1000.00", "1000.00"),
        ("payout", "-300.00", "700.00"),
        ("closing", "", "700.00"),
    ]
    table = run("statement", "--network", NET, "--member", "ann", "--period", "2025-02-14")
    assert "revenue_share" in table and "700.00" in table
    assert "no member 'zed'" in run(
        "statement", "--network", NET, "--member", "zed", "--period", "2025-Q1", code=1
    )


def test_ledger_view_equals_a_replay_of_the_log(ledger: Ledger, projector: Projector) -> None:
    from partnerledger.commands import encode_command
    from partnerledger.demo import generate
    from partnerledger.jsonl import import_lines
    from partnerledger.replay import incentive_entries

    import_lines(ledger, (encode_command(c) for c in generate(seed=3, members=16, months=10)))
    projector.catch_up()
    replayed = [
        (j.position, j.decision.plugin, j.decision.value.member, j.decision.value.kind,
         j.decision.value.amount, j.decision.value.source)  # type: ignore[union-attr]
        for j in incentive_entries(ledger, "riverside")
    ]  # fmt: skip
    viewed = [
        (e.position, e.plugin, e.member, e.kind, e.amount, e.source)
        for e in sorted(ledger_view.entries(projector.db, "riverside"), key=lambda e: e.position)
    ]
    assert replayed and viewed == replayed


def test_periods_close_in_order(ledger: Ledger, store: Store, projector: Projector) -> None:
    setup(ledger)
    referral(ledger, "r1", at(1, 10), at(2, 3), "10000")
    close_period(ledger, projector, NET, "2025-Q2", actor="c", at=at(7, 1))
    last = store.last_position()
    with pytest.raises(DomainError, match="periods close in order") as caught:
        close_period(ledger, projector, NET, "2025-Q1", actor="c", at=at(7, 1))
    assert caught.value.field == "period"
    assert store.last_position() == last
    q2 = statement(projector, ledger, "ann", "2025-Q2")
    assert q2.opening == Decimal("1000.00") and q2.closed
    # A Q1 reversal recorded now lands after the latest closed period, not in open Q1.
    ledger.execute(cmd("referral.reversed", at(3, 1), referral="r1", amount="10000",
                       reason="void"))  # fmt: skip
    assert statement(projector, ledger, "ann", "2025-Q2") == q2
    q3 = statement(projector, ledger, "ann", "2025-Q3")
    assert [(e.kind, e.amount) for e in q3.entries] == [("clawback", Decimal("-1000.00"))]
    assert q3.closing == 0


def test_payout_reference_is_the_note(ledger: Ledger, projector: Projector) -> None:
    setup(ledger)
    ledger.execute(cmd("payout.recorded", at(2, 2), member="ann", payout="p9", amount="12.5",
                       currency="EUR", reference="SEPA 99"))  # fmt: skip
    [entry] = statement(projector, ledger, "ann", "2025-Q1").entries
    assert (entry.kind, entry.amount, entry.note) == ("payout", Decimal("-12.5"), "SEPA 99")


# ------------------------------------------------ a conversion racing the close


def test_a_close_is_not_written_over_a_conversion_stored_after_its_views_were_read(
    ledger: Ledger, store: Store, projector: Projector
) -> None:
    """The close reads the views, then writes: a conversion stored in between is never lost.

    Without the check the close's statement would miss the conversion's entry,
    and the ledger view, which shows a closed statement's recorded lines, would
    drop it. The close is written only if no event of its network was stored
    after the position its views were read at (under the store's write lock).
    """
    from partnerledger.closing import _of_network, plan_close
    from partnerledger.errors import LogChanged

    setup(ledger)
    referral(ledger, "r1", at(1, 10), at(2, 3), "10000")
    ledger.execute(cmd("referral.sent", at(3, 1), referral="r2", from_member="ann",
                       to_member="bob", customer="customer r2"),
                   cmd("referral.accepted", at(3, 1), referral="r2"))  # fmt: skip
    plan, work = plan_close(ledger, projector, NET, "2025-Q1", actor="coordinator", at=at(4, 2))
    assert plan.through == store.last_position()
    # Another writer converts r2 (business time in Q1) after the close read its views.
    other = Ledger(store)
    other.execute(cmd("referral.converted", at(3, 20), referral="r2", deal_value="500",
                      currency="EUR"))  # fmt: skip
    before = store.last_position()
    with pytest.raises(LogChanged):
        work.commit(unchanged_after=(plan.through, _of_network(NET)))
    assert store.last_position() == before  # nothing of the close was written
    # An event of another network in between does not stop a close.
    plan, work = plan_close(ledger, projector, NET, "2025-Q1", actor="coordinator", at=at(4, 2))
    other.execute(
        convert_command({"type": "network.created", "network": "elsewhere", "actor": "x",
                         "occurred_at": at(1), "name": "Elsewhere", "currency": "EUR"})
    )  # fmt: skip
    work.commit(unchanged_after=(plan.through, _of_network(NET)))
    q1 = statement(projector, ledger, "ann", "2025-Q1")
    assert [e.amount for e in q1.entries if e.source_type == "referral.converted"] == [
        Decimal("1000.00"),
        Decimal("50.00"),
    ]


def test_close_period_decides_again_when_its_network_changed_meanwhile(
    ledger: Ledger, store: Store, projector: Projector, monkeypatch: pytest.MonkeyPatch
) -> None:
    from partnerledger import closing

    setup(ledger)
    ledger.execute(cmd("referral.sent", at(3, 1), referral="r2", from_member="ann",
                       to_member="bob", customer="customer r2"),
                   cmd("referral.accepted", at(3, 1), referral="r2"))  # fmt: skip
    planned = closing.plan_close
    calls = []

    def racing_plan(*args: Any, **kwargs: Any) -> Any:
        found = planned(*args, **kwargs)
        calls.append(found[0].through)
        if len(calls) == 1:  # a conversion lands between the first plan and its write
            Ledger(store).execute(cmd("referral.converted", at(3, 20), referral="r2",
                                      deal_value="500", currency="EUR"))  # fmt: skip
        return found

    monkeypatch.setattr(closing, "plan_close", racing_plan)
    plan = close_period(ledger, projector, NET, "2025-Q1", actor="coordinator", at=at(4, 2))
    assert len(calls) == 2 and calls[1] > calls[0]
    [ann] = [s for s in plan.statements if s.member == "ann"]
    fees = [e.amount for e in ann.entries if e.source_type == "referral.converted"]
    assert fees == [Decimal("50.00")]
    q1 = statement(projector, ledger, "ann", "2025-Q1")
    assert [e.amount for e in q1.entries if e.source_type == "referral.converted"] == fees
    assert q1.closing == ann.closing
    assert len([e for _, e in store.read() if e.type == "period.closed"]) == 1
