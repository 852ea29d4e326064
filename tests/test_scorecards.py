"""Partnership scorecards: the view, its query and ``partnerledger scorecard``, on both DBs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner

from partnerledger import Ledger, Store
from partnerledger.cli.main import cli
from partnerledger.commands import (
    AgreementAccepted,
    AgreementActivated,
    AgreementAmended,
    AgreementProposed,
    AgreementTerminated,
    Command,
    IntroductionMade,
    MemberJoined,
    NetworkCreated,
    OneToOneHeld,
    Pilot,
    ReferralAccepted,
    ReferralConverted,
    ReferralDeclined,
    ReferralLost,
    ReferralReversed,
    ReferralSent,
    Targets,
    Terms,
)
from partnerledger.errors import InvalidCommand, NotFound
from partnerledger.projection import Projector
from partnerledger.views.scorecards import (
    Scorecard,
    calendar_months,
    money,
    scorecards,
    whole_months,
)

NET = "rw"
START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_END = datetime(2026, 1, 1, tzinfo=UTC)  # 00:00 on 1 January: the year's 12 months


def at(day: int, hour: int = 9, *, month: int = 1, year: int = 2025) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def network(*members: str, when: datetime = START - timedelta(days=30)) -> list[Command]:
    common = {"network": NET, "actor": "coord", "occurred_at": when}
    commands: list[Command] = [NetworkCreated(**common, name="Real World", currency="USD")]
    for slug in members:
        commands.append(MemberJoined(**common, member=slug, name=slug, category="trade"))
    return commands


class History:
    """Builds a network's history, one command at a time, with explicit business times."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.count = 0

    def _c(self, cls: type[Command], when: datetime, **fields: Any) -> None:
        self.commands.append(cls(network=NET, actor="coord", occurred_at=when, **fields))

    def referral(
        self,
        sender: str,
        receiver: str,
        when: datetime,
        *,
        outcome: str = "sent",
        value: str | None = None,
        reversed_amount: str | None = None,
    ) -> str:
        """One referral through its lifecycle: sent, declined, accepted, lost or converted."""
        self.count += 1
        slug = f"r{self.count}"
        self._c(
            ReferralSent,
            when,
            referral=slug,
            from_member=sender,
            to_member=receiver,
            customer=f"customer {self.count}",
        )
        if outcome == "declined":
            self._c(ReferralDeclined, when + timedelta(hours=1), referral=slug)
        if outcome in ("accepted", "lost", "converted"):
            self._c(ReferralAccepted, when + timedelta(hours=1), referral=slug)
        if outcome == "lost":
            self._c(ReferralLost, when + timedelta(days=2), referral=slug)
        if outcome == "converted":
            assert value is not None
            self._c(
                ReferralConverted,
                when + timedelta(days=3),
                referral=slug,
                deal_value=Decimal(value),
                currency="USD",
            )
            if reversed_amount is not None:
                self._c(
                    ReferralReversed,
                    when + timedelta(days=10),
                    referral=slug,
                    amount=Decimal(reversed_amount),
                    reason="refund",
                )
        return slug

    def agreement(
        self,
        slug: str,
        parties: tuple[str, ...],
        proposed: datetime,
        accepted: datetime,
        *,
        per_month: int | None = None,
        rate: str | None = None,
        pilot_days: int | None = None,
    ) -> None:
        targets = (
            Targets(
                referrals_per_month=per_month,
                conversion_rate=Decimal(rate) if rate is not None else None,
            )
            if per_month is not None or rate is not None
            else None
        )
        self._c(
            AgreementProposed,
            proposed,
            agreement=slug,
            kind="referral",
            parties=parties,
            terms=Terms(scope="referrals", targets=targets),
            pilot=Pilot(days=pilot_days) if pilot_days is not None else None,
        )
        for party in parties:
            self._c(AgreementAccepted, accepted, agreement=slug, party=party)


def real_world_math(history: History) -> None:
    """A year in which 'partner' sends 'you' 5 referrals a month; 2 of them (40 %) close at 10,000.

    Each month: 2 converted, 1 lost, 1 declined, 1 still open.
    """
    for month in range(1, 13):
        outcomes = ("converted", "converted", "lost", "declined", "sent")
        for n, outcome in enumerate(outcomes):
            history.referral(
                "partner",
                "you",
                at(3 + n, month=month),
                outcome=outcome,
                value="10000.00" if outcome == "converted" else None,
            )


@pytest.fixture
def projector(store: Store) -> Iterator[Projector]:
    with Projector(store, names=["scorecards"]) as opened:
        yield opened


def cards(projector: Projector, as_of: datetime, **options: Any) -> list[Scorecard]:
    projector.catch_up()
    return scorecards(projector.db, NET, as_of=as_of, **options)


def one(projector: Projector, as_of: datetime, **options: Any) -> Scorecard:
    found = cards(projector, as_of, **options)
    assert len(found) == 1, found
    return found[0]


# ------------------------------------------------------------- the worked example


def test_real_world_math_comes_out_exactly(ledger: Ledger, projector: Projector) -> None:
    history = History()
    real_world_math(history)
    ledger.execute(*network("partner", "you"), *history.commands)

    card = one(projector, YEAR_END, member="you")
    assert (card.member, card.partner, card.currency) == ("you", "partner", "USD")
    received = card.received
    assert (received.sent, received.accepted, received.converted) == (60, 36, 24)
    assert received.conversion_rate == Decimal("0.4")
    assert received.converted_value == Decimal("240000.00")
    assert received.average_deal == Decimal("10000.00")
    assert card.months_active == 12
    assert received.value_per_month == Decimal("20000.00")
    assert received.value_per_year == Decimal("240000.00")
    assert card.given.sent == 0
    assert card.given.conversion_rate is None
    assert card.given.value_per_month == Decimal(0)
    # Received on the 7th of December, 09:00; as of 1 January 00:00: 24 days 15 hours.
    assert card.last_interaction_at == at(7, month=12)
    assert card.days_since_last_interaction == 24
    assert card.first_interaction_at == at(3)

    data = card.as_dict()
    assert data["received"]["value_per_month"] == "20000.00"
    assert data["received"]["value_per_year"] == "240000.00"
    assert data["received"]["average_deal"] == "10000.00"
    assert data["received"]["conversion_rate"] == 0.4
    assert data["given"]["conversion_rate"] is None
    assert data["given"]["converted_value"] == "0.00"


def test_months_are_the_calendar_months_touched() -> None:
    assert calendar_months(at(6), YEAR_END) == 12
    assert calendar_months(at(6), YEAR_END + timedelta(days=1)) == 13
    assert calendar_months(at(6), at(6)) == 1
    assert calendar_months(at(31), at(1, hour=0, month=2)) == 1  # February not begun
    assert calendar_months(at(31), at(1, month=2)) == 2  # 1 February 09:00: begun
    assert whole_months(START, YEAR_END) == 12
    assert whole_months(at(31), at(28, month=2)) == 1  # clamped to the end of February
    assert whole_months(at(15), at(14, month=2)) == 0


# ------------------------------------------------------------------ each way


def test_counts_and_values_each_way_with_a_reversal(ledger: Ledger, projector: Projector) -> None:
    history = History()
    history.referral("ana", "ben", at(2), outcome="converted", value="500.00")
    history.referral("ana", "ben", at(3), outcome="accepted")
    history.referral("ana", "ben", at(4), outcome="declined")
    history.referral(
        "ben", "ana", at(5), outcome="converted", value="1000.0050", reversed_amount="250.00"
    )
    ledger.execute(*network("ana", "ben", "cy"), *history.commands)

    card = one(projector, at(1, hour=0, month=3))  # Jan, Feb: 2 months
    assert (card.member, card.partner) == ("ana", "ben")
    given, received = card.given, card.received
    assert (given.sent, given.accepted, given.converted) == (3, 2, 1)
    assert given.conversion_rate == Decimal("0.3333")
    assert given.converted_value == Decimal("500.00")
    assert (received.sent, received.accepted, received.converted) == (1, 1, 1)
    assert received.conversion_rate == Decimal(1)
    assert received.deal_value == Decimal("1000.0050")
    assert received.reversed_value == Decimal("250.00")
    assert received.converted_value == Decimal("750.0050")
    assert received.average_deal == Decimal("750.01")
    assert card.months_active == 2
    assert received.value_per_month == Decimal("375.00")  # 375.0025
    assert received.value_per_year == Decimal("4500.03")  # 12 * 375.0025 = 4500.03
    r = card.reciprocity
    assert (r.given, r.received, r.balance, r.ratio) == (3, 1, 2, Decimal(3))
    assert r.value_balance == Decimal("-250.0050")
    assert card.flags.one_sided is False
    assert card.as_dict()["received"]["converted_value"] == "750.01"
    assert card.as_dict()["reciprocity"]["value_balance"] == "-250.01"

    (from_ben,) = cards(projector, at(1, hour=0, month=3), member="ben")
    assert (from_ben.member, from_ben.partner) == ("ben", "ana")
    assert from_ben.given == received and from_ben.received == given
    assert from_ben.reciprocity.ratio == Decimal("0.3333")
    assert from_ben.reciprocity.balance == -2
    # cy has no history with anyone: known, but no pairs.
    assert cards(projector, at(1, hour=0, month=3), member="cy") == []


def test_a_later_reversal_lowers_the_converted_value(ledger: Ledger, projector: Projector) -> None:
    history = History()
    slug = history.referral("ana", "ben", at(2), outcome="converted", value="1200.00")
    ledger.execute(*network("ana", "ben"), *history.commands)
    assert one(projector, at(1, month=2)).given.converted_value == Decimal("1200.00")
    for n, amount in enumerate(("200.00", "1000.00")):
        ledger.execute(
            ReferralReversed(
                network=NET,
                actor="coord",
                occurred_at=at(20 + n),
                referral=slug,
                amount=Decimal(amount),
                reason="clawback",
            )
        )
    card = one(projector, at(1, month=2))
    assert card.given.converted == 1  # still a conversion, now worth nothing
    assert card.given.converted_value == Decimal(0)
    assert card.given.reversed_value == Decimal("1200.00")
    assert card.given.average_deal == Decimal(0)


# ------------------------------------------------------------------ flags


def test_one_sided(ledger: Ledger, projector: Projector) -> None:
    history = History()
    history.referral("ana", "ben", at(2))
    history.referral("ana", "ben", at(3))
    ledger.execute(*network("ana", "ben"), *history.commands)
    card = one(projector, at(10))
    assert card.flags.one_sided is True
    assert card.reciprocity.ratio is None
    assert "one-sided" in card.flags.names()
    ledger.execute(
        ReferralSent(
            network=NET,
            actor="coord",
            occurred_at=at(11),
            referral="back",
            from_member="ben",
            to_member="ana",
            customer="x",
        )
    )
    card = one(projector, at(12))
    assert card.flags.one_sided is False
    assert card.reciprocity.ratio == Decimal(2)


def test_dormant_after_90_days_by_default_or_as_configured(
    ledger: Ledger, projector: Projector
) -> None:
    history = History()
    history.referral("ana", "ben", at(2))
    ledger.execute(*network("ana", "ben", "cy"), *history.commands)
    ledger.execute(
        OneToOneHeld(
            network=NET, actor="coord", occurred_at=at(10), member="ben", with_member="ana"
        ),
        IntroductionMade(
            network=NET,
            actor="coord",
            occurred_at=at(5),
            introduction="i1",
            introducer="cy",
            introduced="ana",
            to_member="ben",
        ),
    )
    last = at(10)
    # the introduction made three pairs
    assert [c.partner for c in cards(projector, last, member="ana")] == ["ben", "cy"]
    card = cards(projector, last + timedelta(days=89, hours=23), member="ana")[0]
    assert (card.partner, card.one_to_ones, card.introductions) == ("ben", 1, 1)
    assert card.last_interaction_at == last
    assert card.first_interaction_at == at(2)
    assert card.days_since_last_interaction == 89
    assert card.flags.dormant is False
    card = cards(projector, last + timedelta(days=90), member="ana")[0]
    assert card.days_since_last_interaction == 90
    assert card.flags.dormant is True
    card = cards(projector, last + timedelta(days=30), member="ana", dormant_days=30)[0]
    assert card.flags.dormant is True
    card = cards(projector, last + timedelta(days=29), member="ana", dormant_days=30)[0]
    assert card.flags.dormant is False
    cy = cards(projector, last + timedelta(days=90), member="cy")
    assert [(c.partner, c.last_interaction_at, c.introductions) for c in cy] == [
        ("ana", at(5), 1),
        ("ben", at(5), 1),
    ]


def test_pilot_ending_within_14_days(ledger: Ledger, projector: Projector) -> None:
    history = History()
    history.agreement("pilot-1", ("ana", "ben"), at(1), at(2), pilot_days=90)
    ledger.execute(*network("ana", "ben"), *history.commands)
    ends = at(2) + timedelta(days=90)
    card = one(projector, ends - timedelta(days=15))
    assert card.agreement is not None
    assert (card.agreement.status, card.agreement.pilot_ends_at) == ("pilot", ends)
    assert card.flags.pilot_ending is False
    assert one(projector, ends - timedelta(days=14)).flags.pilot_ending is True
    assert one(projector, ends).flags.pilot_ending is True
    assert one(projector, ends + timedelta(seconds=1)).flags.pilot_ending is False
    # A pair with only an agreement has history, but no interaction yet.
    assert card.last_interaction_at is None
    assert card.days_since_last_interaction is None
    assert card.given.sent == card.received.sent == 0
    ledger.execute(
        AgreementActivated(network=NET, actor="coord", occurred_at=at(20), agreement="pilot-1")
    )
    card = one(projector, ends - timedelta(days=1))
    assert card.agreement is not None and card.agreement.status == "active"
    assert card.flags.pilot_ending is False


def test_below_target_against_the_agreement(ledger: Ledger, projector: Projector) -> None:
    history = History()
    history.agreement(
        "deal",
        ("ana", "ben", "program"),
        at(20, year=2024, month=12),
        START,
        per_month=5,
        rate="0.40",
    )  # in effect from 1 January 00:00
    real_world_math_between(history, "ben", "ana")
    ledger.execute(*network("ana", "ben"), *history.commands)

    card = one(projector, YEAR_END)
    progress = card.agreement
    assert progress is not None
    assert (progress.agreement, progress.effective_at, progress.months) == ("deal", START, 12)
    assert (progress.referrals, progress.converted) == (60, 24)
    assert progress.referrals_per_month == Decimal(5)
    assert progress.conversion_rate == Decimal("0.4")
    assert progress.target_referrals_per_month == 5
    assert progress.target_conversion_rate == Decimal("0.40")
    assert (progress.below_referrals, progress.below_conversion) == (False, False)
    assert card.flags.below_target is False
    # One more month without referrals: 60 in 13 months is below 5 a month.
    later = one(projector, YEAR_END + timedelta(days=31))
    assert later.agreement is not None
    assert later.agreement.months == 13
    assert later.agreement.below_referrals is True
    assert later.flags.below_target is True
    assert later.as_dict()["agreement"]["referrals_per_month"] == 4.6154

    # New terms: a 50 % conversion target, which 40 % is below.
    ledger.execute(
        AgreementAmended(
            network=NET,
            actor="coord",
            occurred_at=YEAR_END - timedelta(days=1),
            agreement="deal",
            terms=Terms(
                scope="referrals",
                targets=Targets(referrals_per_month=5, conversion_rate=Decimal("0.5")),
            ),
            accepted_by=("ana", "ben", "program"),
        )
    )
    card = one(projector, YEAR_END)
    assert card.agreement is not None
    assert card.agreement.status == "amended"
    assert (card.agreement.below_referrals, card.agreement.below_conversion) == (False, True)
    assert card.flags.below_target is True

    # A terminated agreement has no targets left to miss.
    ledger.execute(
        AgreementTerminated(
            network=NET, actor="coord", occurred_at=YEAR_END, agreement="deal", reason="done"
        )
    )
    card = one(projector, YEAR_END)
    assert card.agreement is None
    assert card.flags.below_target is False


def real_world_math_between(history: History, sender: str, receiver: str) -> None:
    for month in range(1, 13):
        for n, outcome in enumerate(("converted", "converted", "lost", "declined", "sent")):
            history.referral(
                sender,
                receiver,
                at(3 + n, month=month),
                outcome=outcome,
                value="10000.00" if outcome == "converted" else None,
            )


def test_targets_wait_for_a_whole_month(ledger: Ledger, projector: Projector) -> None:
    history = History()
    history.referral("ana", "ben", at(5))
    history.agreement("new", ("ana", "ben"), at(1), at(10), per_month=5, rate="0.5")
    history.referral("ana", "ben", at(12))
    ledger.execute(*network("ana", "ben"), *history.commands)
    card = one(projector, at(9, month=2))
    assert card.agreement is not None
    assert card.agreement.judged is False
    assert card.agreement.conversion_rate == Decimal(0)
    assert card.flags.below_target is False
    card = one(projector, at(10, month=2))
    assert card.agreement is not None
    assert card.agreement.judged is True
    assert (card.agreement.below_referrals, card.agreement.below_conversion) == (True, True)
    assert card.flags.below_target is True
    # The referral sent before the agreement took effect does not count toward it.
    assert (card.given.sent, card.agreement.referrals) == (2, 1)


# ------------------------------------------------------------------ errors


def test_unknown_network_or_member(ledger: Ledger, projector: Projector) -> None:
    ledger.execute(*network("ana"))
    projector.catch_up()
    with pytest.raises(NotFound) as found:
        scorecards(projector.db, "nowhere", as_of=YEAR_END)
    assert found.value.field == "network"
    with pytest.raises(NotFound) as found:
        scorecards(projector.db, NET, member="ghost", as_of=YEAR_END)
    assert found.value.field == "member"
    with pytest.raises(InvalidCommand) as invalid:
        scorecards(projector.db, NET, as_of=YEAR_END, dormant_days=0)
    assert invalid.value.field == "dormant_days"
    with pytest.raises(InvalidCommand) as invalid:
        scorecards(projector.db, NET, as_of=datetime(2025, 1, 1))
    assert invalid.value.field == "as_of"
    assert scorecards(projector.db, NET, as_of=YEAR_END) == []


# ------------------------------------------------------------------ rebuild


def test_rebuild_gives_the_view_the_incremental_updates_built(store: Store, ledger: Ledger) -> None:
    history = History()
    history.agreement("deal", ("ana", "ben", "program"), at(1), at(2), per_month=2, pilot_days=60)
    real_world_math_between(history, "ben", "ana")
    history.referral("ana", "ben", at(9, month=3), outcome="converted", value="99.9950")
    history.referral(
        "cy", "ben", at(9, month=4), outcome="converted", value="10", reversed_amount="5"
    )
    commands = [*network("ana", "ben", "cy"), *history.commands]
    commands.append(
        OneToOneHeld(network=NET, actor="coord", occurred_at=at(1), member="cy", with_member="ana")
    )
    with Projector(store, names=["scorecards"]) as incremental:
        step = 17
        for index in range(0, len(commands), step):
            ledger.execute(*commands[index : index + step])
            incremental.catch_up()
        view = incremental.projections["scorecards"]
        built = view.dump()
        before = [c.as_dict() for c in scorecards(incremental.db, NET, as_of=YEAR_END)]
    with Projector(store, names=["scorecards"], batch=7) as fresh:
        fresh.rebuild(["scorecards"])
        assert fresh.projections["scorecards"].dump() == built
        after = [c.as_dict() for c in scorecards(fresh.db, NET, as_of=YEAR_END)]
    assert after == before
    assert len(built) > 62  # 62 referrals and the rest
    assert [(c["member"], c["partner"]) for c in after] == [
        ("ana", "ben"),
        ("ana", "cy"),
        ("ben", "cy"),
    ]


# ------------------------------------------------------------------ the command line


def invoke(database_url: str, *args: str) -> Any:
    return CliRunner().invoke(
        cli, ["--database", database_url, "scorecard", *args], catch_exceptions=False
    )


def test_cli_json_and_table(database_url: str, ledger: Ledger) -> None:
    history = History()
    history.agreement(
        "deal", ("partner", "you"), at(20, year=2024, month=12), START, per_month=5, rate="0.4"
    )
    real_world_math(history)
    history.referral("you", "partner", at(20, month=6), outcome="converted", value="1234.5")
    ledger.execute(*network("partner", "you", "third"), *history.commands)

    # A time, not a date: a date would mean the end of 1 January, which touches a 13th month.
    result = invoke(
        database_url,
        "--network",
        NET,
        "--member",
        "you",
        "--as-of",
        "2026-01-01T00:00:00Z",
        "--json",
    )
    assert result.exit_code == 0, result.output
    (card,) = json.loads(result.stdout, parse_float=Decimal)
    assert (card["member"], card["partner"], card["currency"]) == ("you", "partner", "USD")
    assert card["received"]["value_per_month"] == "20000.00"
    assert card["received"]["value_per_year"] == "240000.00"
    assert card["received"]["conversion_rate"] == Decimal("0.4")
    assert card["given"]["converted_value"] == "1234.50"
    assert card["given"]["conversion_rate"] == Decimal("1.0")
    assert card["reciprocity"]["ratio"] == Decimal("0.0167")
    assert card["agreement"]["target_conversion_rate"] == Decimal("0.4")
    assert card["agreement"]["referrals"] == 61
    assert card["flags"] == {
        "one_sided": False,
        "dormant": False,
        "pilot_ending": False,
        "below_target": False,
    }
    assert card["as_of"] == "2026-01-01T00:00:00Z"
    assert card["months_active"] == 12
    assert card["days_since_last_interaction"] == 24
    for flow in (card["given"], card["received"]):
        for field in ("deal_value", "reversed_value", "converted_value", "value_per_month"):
            assert isinstance(flow[field], str) and flow[field].split(".")[1].isdigit()
            assert len(flow[field].split(".")[1]) == 2

    result = invoke(database_url, "--network", NET, "--as-of", "2026-06-01", "--dormant-days", "30")
    assert result.exit_code == 0, result.output
    table = result.stdout
    assert "partner" in table and "you" in table
    assert "dormant" in table and "below-target" in table
    assert "20,000.00" not in table  # spread over 17 months now
    assert "240,000.00" in table  # value received in total
    assert "60/36/24" in table
    assert "1/1/1" in table

    result = invoke(database_url, "--network", NET, "--member", "third")
    assert result.exit_code == 0
    assert "No partnerships" in result.stderr


def test_cli_errors(database_url: str, ledger: Ledger) -> None:
    ledger.execute(*network("ana"))
    result = invoke(database_url, "--network", "nowhere")
    assert result.exit_code == 1
    assert "network: no network 'nowhere'" in result.output
    result = invoke(database_url, "--network", NET, "--member", "ghost", "--json")
    assert result.exit_code == 1
    assert "member: no member 'ghost'" in result.output
    result = invoke(database_url, "--network", NET, "--dormant-days", "0")
    assert result.exit_code == 2
    result = invoke(database_url, "--network", NET, "--as-of", "yesterday")
    assert result.exit_code == 2
    result = invoke(database_url, "--member", "ana")
    assert result.exit_code == 2
    assert "--network" in result.output


def test_money_formatting() -> None:
    assert money(Decimal("20000")) == "20000.00"
    assert money(Decimal("0.005")) == "0.01"
    assert money(Decimal("-250.0050")) == "-250.01"
    assert money(Decimal("1E+5")) == "100000.00"
