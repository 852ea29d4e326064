"""The domain rules, end to end through ``Ledger.execute`` on a real store.

Every rule has a passing case and its refusals. A refusal is checked for its
exact error class, the field it names, a key part of its reason, and for
having written nothing at all (same last position, same log).

Each test runs on SQLite and on PostgreSQL (the ``ledger`` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
import pytest

from partnerledger import Ledger, commands, decode_command
from partnerledger.commands import (
    PROGRAM,
    AgreementAccepted,
    AgreementActivated,
    AgreementAmended,
    AgreementExpired,
    AgreementProposed,
    AgreementRenewed,
    AgreementTerminated,
    Command,
    Compensation,
    IntroductionMade,
    MeetingAttended,
    MemberInvited,
    MemberJoined,
    MemberLeft,
    MemberReinstated,
    MemberSuspended,
    MemberUpdated,
    NetworkCreated,
    NetworkTiersSet,
    OneToOneHeld,
    Pilot,
    ReferralAccepted,
    ReferralConverted,
    ReferralDeclined,
    ReferralLost,
    ReferralReversed,
    ReferralSent,
    Terms,
    Tier,
    TrainingCompleted,
    TyfcbReported,
    VisitorBrought,
)
from partnerledger.domain import (
    Activity,
    Agreement,
    Introduction,
    Meeting,
    Member,
    Network,
    Referral,
    activity_id,
    agreement_id,
    introduction_id,
    meeting_id,
)
from partnerledger.errors import (
    AlreadyExists,
    DomainError,
    InvalidCommand,
    InvalidTransition,
    NotFound,
    from_validation_error,
)
from partnerledger.events import Event

NET = "acme"
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)

C = TypeVar("C", bound=Command)


# ------------------------------------------------------------------ builders


def at(days: float = 0) -> datetime:
    """A business time, ``days`` after T0."""
    return T0 + timedelta(days=days)


def make(cls: type[C], when: float = 0, **fields: Any) -> C:
    """A command of ``cls`` in network NET, issued by the coordinator at ``at(when)``."""
    fields.setdefault("network", NET)
    fields.setdefault("actor", "coordinator")
    fields.setdefault("occurred_at", at(when))
    return cls(**fields)


def network(**fields: Any) -> NetworkCreated:
    fields.setdefault("name", "Acme Chamber")
    fields.setdefault("currency", "USD")
    return make(NetworkCreated, **fields)


def tier(name: str, threshold: str) -> Tier:
    return Tier(name=name, threshold=Decimal(threshold))


def invited(member: str, **fields: Any) -> MemberInvited:
    fields.setdefault("name", member.title())
    fields.setdefault("category", "trade")
    return make(MemberInvited, member=member, **fields)


def joined(member: str, **fields: Any) -> MemberJoined:
    fields.setdefault("name", member.title())
    fields.setdefault("category", "trade")
    return make(MemberJoined, member=member, **fields)


def sent(
    referral: str = "r1", from_member: str = "alice", to_member: str = "bob", **fields: Any
) -> ReferralSent:
    fields.setdefault("customer", "Dana Customer")
    return make(
        ReferralSent, referral=referral, from_member=from_member, to_member=to_member, **fields
    )


def accepted(referral: str = "r1", **fields: Any) -> ReferralAccepted:
    return make(ReferralAccepted, referral=referral, **fields)


def declined(referral: str = "r1", **fields: Any) -> ReferralDeclined:
    return make(ReferralDeclined, referral=referral, **fields)


def converted(
    referral: str = "r1", value: str = "1000.00", currency: str = "USD", **fields: Any
) -> ReferralConverted:
    return make(
        ReferralConverted,
        referral=referral,
        deal_value=Decimal(value),
        currency=currency,
        **fields,
    )


def reversal(amount: str, referral: str = "r1", **fields: Any) -> ReferralReversed:
    fields.setdefault("reason", "refund")
    return make(ReferralReversed, referral=referral, amount=Decimal(amount), **fields)


def terms(**fields: Any) -> Terms:
    fields.setdefault("scope", "Refer residential plumbing leads")
    return Terms(**fields)


def proposed(
    agreement: str = "a1", parties: tuple[str, ...] = ("alice", "bob"), **fields: Any
) -> AgreementProposed:
    fields.setdefault("kind", "referral")
    fields.setdefault("terms", terms())
    return make(AgreementProposed, agreement=agreement, parties=parties, **fields)


def agreement_accepted(party: str, agreement: str = "a1", **fields: Any) -> AgreementAccepted:
    return make(AgreementAccepted, agreement=agreement, party=party, **fields)


def converted_referral(referral: str = "r1", value: str = "1000.00") -> list[Command]:
    """The commands that take a referral from alice to bob up to converted."""
    return [sent(referral), accepted(referral, when=1), converted(referral, value, when=2)]


# ------------------------------------------------------------------ helpers


def log(ledger: Ledger) -> list[tuple[int, Event]]:
    return list(ledger.store.read())


def refused(
    ledger: Ledger, error: type[DomainError], field: str, reason: str, *commands: Command
) -> DomainError:
    """Execute ``commands``; check the exact error and that nothing was written."""
    position = ledger.store.last_position()
    before = log(ledger)
    with pytest.raises(DomainError) as caught:
        ledger.execute(*commands)
    found = caught.value
    assert type(found) is error, f"expected {error.__name__}, got {found!r}"
    assert found.field == field, found
    assert reason in found.reason, found
    assert ledger.store.last_position() == position
    assert log(ledger) == before
    return found


def recorded(ledger: Ledger, *commands: Command) -> list[Event]:
    """Execute ``commands``, which must all be recorded; return their events."""
    outcome = ledger.execute(*commands)
    assert outcome.duplicates == 0
    # As stored: personal data sealed, with its data subject (docs/privacy.md).
    stored = ledger.vault.reveal_commands([event.command for event in outcome.recorded])
    assert stored == [ledger.prepare(c) for c in commands]
    return outcome.recorded


def network_state(ledger: Ledger) -> Network:
    return ledger.unit_of_work().network(NET)


def member_state(ledger: Ledger, member: str) -> Member:
    return ledger.unit_of_work().member(NET, member, "member")


def referral_state(ledger: Ledger, referral: str = "r1") -> Referral:
    return ledger.unit_of_work().referral(NET, referral, "referral")


def agreement_state(ledger: Ledger, agreement: str = "a1") -> Agreement:
    found = ledger.unit_of_work().load(Agreement, agreement_id(NET, agreement))
    assert found is not None
    return found


@pytest.fixture
def net(ledger: Ledger) -> Ledger:
    """A USD network with three active members: alice, bob and carol."""
    recorded(ledger, network(), joined("alice"), joined("bob"), joined("carol"))
    return ledger


# ------------------------------------------------------------------ network


def test_network_created(ledger: Ledger) -> None:
    recorded(ledger, network(tiers=(tier("bronze", "0"), tier("silver", "10"))))
    state = network_state(ledger)
    assert (state.name, state.currency, state.period) == ("Acme Chamber", "USD", "month")
    assert [t.name for t in state.tiers] == ["bronze", "silver"]
    assert state.tiers[1].threshold == Decimal("10")
    assert ledger.store.last_position() >= 1
    assert len(log(ledger)) == 1


def test_network_created_twice_already_exists(ledger: Ledger) -> None:
    recorded(ledger, network())
    refused(ledger, AlreadyExists, "network", "already exists", network(name="Other", when=1))


def test_rolling_period_needs_rolling_days(ledger: Ledger) -> None:
    refused(ledger, InvalidCommand, "rolling_days", "required", network(period="rolling"))
    recorded(ledger, network(period="rolling", rolling_days=90))
    state = network_state(ledger)
    assert (state.period, state.rolling_days) == ("rolling", 90)


def test_rolling_days_only_with_a_rolling_period(ledger: Ledger) -> None:
    refused(ledger, InvalidCommand, "rolling_days", "only allowed", network(rolling_days=30))


@pytest.mark.parametrize(
    ("ladder", "field", "reason"),
    [
        (("0", "10", "5"), "tiers[2].threshold", "must rise"),
        (("0", "10", "10"), "tiers[2].threshold", "must rise"),
        (("-1",), "tiers[0].threshold", "zero or more"),
        (("NaN",), "tiers[0].threshold", "zero or more"),
    ],
)
def test_tier_thresholds_must_rise(
    ledger: Ledger, ladder: tuple[str, ...], field: str, reason: str
) -> None:
    tiers = tuple(tier(f"t{index}", value) for index, value in enumerate(ladder))
    refused(ledger, InvalidCommand, field, reason, network(tiers=tiers))


def test_tier_names_are_unique(ledger: Ledger) -> None:
    tiers = (tier("gold", "0"), tier("gold", "5"))
    refused(ledger, InvalidCommand, "tiers[1].name", "appears twice", network(tiers=tiers))


def test_tiers_set(net: Ledger) -> None:
    ladder = (tier("member", "0"), tier("partner", "5"), tier("champion", "20"))
    recorded(net, make(NetworkTiersSet, when=1, tiers=ladder))
    assert network_state(net).tiers == ladder
    refused(
        net,
        InvalidCommand,
        "tiers[1].threshold",
        "must rise",
        make(NetworkTiersSet, when=2, tiers=(tier("a", "5"), tier("b", "1"))),
    )
    refused(
        net,
        NotFound,
        "network",
        "no network",
        make(NetworkTiersSet, network="nowhere", tiers=ladder),
    )


def test_commands_in_an_unknown_network_are_not_found(ledger: Ledger) -> None:
    refused(ledger, NotFound, "network", "'acme'", joined("alice"))
    refused(ledger, NotFound, "network", "'acme'", sent())


# ------------------------------------------------------------------ members


def test_member_lifecycle(ledger: Ledger) -> None:
    recorded(ledger, network(), invited("alice", when=1))
    assert member_state(ledger, "alice").status == "invited"
    recorded(ledger, joined("alice", when=2))
    assert member_state(ledger, "alice").status == "active"
    recorded(ledger, make(MemberSuspended, when=3, member="alice", reason="unpaid dues"))
    assert member_state(ledger, "alice").status == "suspended"
    recorded(ledger, make(MemberReinstated, when=4, member="alice"))
    assert member_state(ledger, "alice").status == "active"
    recorded(ledger, make(MemberLeft, when=5, member="alice", reason="moved away"))
    state = member_state(ledger, "alice")
    assert state.status == "left"
    assert state.version == 5
    assert state.created_at == at(1)
    assert state.updated_at == at(5)


def test_member_updated_keeps_absent_fields(net: Ledger) -> None:
    recorded(net, make(MemberUpdated, when=1, member="alice", service_area="Springfield"))
    state = member_state(net, "alice")
    assert (state.name, state.category, state.service_area) == ("Alice", "trade", "Springfield")
    refused(
        net, InvalidCommand, "name", "at least one", make(MemberUpdated, when=2, member="alice")
    )


def test_member_invited_or_joined_twice_already_exists(net: Ledger) -> None:
    refused(net, AlreadyExists, "member", "already exists", invited("alice", when=1))
    refused(net, AlreadyExists, "member", "already exists", joined("alice", name="A2", when=1))


def test_suspending_a_suspended_member(net: Ledger) -> None:
    recorded(net, make(MemberSuspended, when=1, member="alice"))
    refused(
        net,
        InvalidTransition,
        "member",
        "is suspended",
        make(MemberSuspended, when=2, member="alice"),
    )


def test_reinstating_an_active_member(net: Ledger) -> None:
    refused(
        net,
        InvalidTransition,
        "member",
        "is active",
        make(MemberReinstated, when=1, member="alice"),
    )


@pytest.mark.parametrize(
    ("command", "error", "field", "reason"),
    [
        (make(MemberSuspended, when=2, member="alice"), InvalidTransition, "member", "is left"),
        (make(MemberReinstated, when=2, member="alice"), InvalidTransition, "member", "is left"),
        (make(MemberLeft, when=2, member="alice"), InvalidTransition, "member", "is left"),
        (
            make(MemberUpdated, when=2, member="alice", name="Alice II"),
            InvalidTransition,
            "member",
            "has left",
        ),
        (joined("alice", when=2), AlreadyExists, "member", "status left"),
        (sent(when=2), InvalidTransition, "from_member", "'alice' is left"),
        (
            sent(from_member="bob", to_member="alice", when=2),
            InvalidTransition,
            "to_member",
            "left",
        ),
        (
            make(TrainingCompleted, when=2, member="alice", training="Networking 101"),
            InvalidTransition,
            "member",
            "left",
        ),
        (
            make(MeetingAttended, when=2, member="alice", meeting="m1", status="present"),
            InvalidTransition,
            "member",
            "left",
        ),
    ],
)
def test_a_member_who_left_can_do_nothing(
    net: Ledger, command: Command, error: type[DomainError], field: str, reason: str
) -> None:
    recorded(net, make(MemberLeft, when=1, member="alice"))
    refused(net, error, field, reason, command)


def test_an_invited_or_suspended_member_cannot_take_part(net: Ledger) -> None:
    recorded(net, invited("dave", when=1), make(MemberSuspended, when=1, member="carol"))
    refused(net, InvalidTransition, "from_member", "invited", sent(from_member="dave"))
    refused(net, InvalidTransition, "to_member", "suspended", sent(to_member="carol"))


def test_unknown_member(net: Ledger) -> None:
    refused(net, NotFound, "member", "'zed'", make(MemberSuspended, when=1, member="zed"))
    refused(net, NotFound, "to_member", "'zed'", sent(to_member="zed"))
    refused(net, NotFound, "from_member", "'zed'", sent(from_member="zed"))


# ------------------------------------------------------------------ referrals


def test_referral_to_oneself(net: Ledger) -> None:
    refused(
        net, InvalidCommand, "to_member", "another member", sent(from_member="bob", to_member="bob")
    )


def test_referral_sent_twice_already_exists(net: Ledger) -> None:
    recorded(net, sent())
    refused(net, AlreadyExists, "referral", "already exists", sent(to_member="carol"))


def test_referral_full_lifecycle(net: Ledger) -> None:
    recorded(net, sent(actor="alice"))
    state = referral_state(net)
    assert (state.status, state.from_member, state.to_member) == ("sent", "alice", "bob")
    assert net.vault.reveal(NET, "customer", state.customer) == "Dana Customer"  # stored sealed

    recorded(net, accepted(when=1, actor="bob"))
    assert referral_state(net).status == "accepted"

    recorded(net, converted(value="1000.00", when=10))
    state = referral_state(net)
    assert state.status == "converted"
    assert state.deal_value == Decimal("1000.00")
    assert state.currency == "USD"
    assert state.converted_at == at(10)
    assert state.net_value == Decimal("1000.00")

    recorded(net, reversal("100.25", when=20, reason="partial refund"))
    state = referral_state(net)
    assert state.status == "reversed"
    assert state.reversed_amount == Decimal("100.25")
    assert state.net_value == Decimal("899.75")

    recorded(net, reversal("399.75", when=21, currency="USD"))
    assert referral_state(net).net_value == Decimal("500.00")

    recorded(net, reversal("500.00", when=22, reason="cancelled"))
    state = referral_state(net)
    assert state.reversed_amount == Decimal("1000.00")
    assert state.net_value == 0
    assert state.version == 6

    refused(net, InvalidTransition, "referral", "reversed in full", reversal("0.01", when=23))


def test_referral_declined_then_converted(net: Ledger) -> None:
    recorded(net, sent(), declined(when=1, reason="too far"))
    assert referral_state(net).status == "declined"
    refused(net, InvalidTransition, "referral", "is declined", converted(when=2))
    refused(net, InvalidTransition, "referral", "is declined", accepted(when=2))


def test_converting_a_referral_that_was_not_accepted(net: Ledger) -> None:
    recorded(net, sent())
    refused(net, InvalidTransition, "referral", "is sent", converted(when=1))


def test_accepting_twice(net: Ledger) -> None:
    recorded(net, sent(), accepted(when=1))
    refused(net, InvalidTransition, "referral", "is accepted", accepted(when=2, actor="bob"))


def test_referral_lost(net: Ledger) -> None:
    recorded(net, sent(), accepted(when=1), make(ReferralLost, when=2, referral="r1"))
    assert referral_state(net).status == "lost"
    refused(net, InvalidTransition, "referral", "is lost", converted(when=3))


def test_unknown_referral(net: Ledger) -> None:
    refused(net, NotFound, "referral", "'r404'", accepted("r404"))
    refused(net, NotFound, "referral", "'r404'", reversal("1", referral="r404"))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("-5", "greater than zero"),
        ("0", "greater than zero"),
        ("0.00", "greater than zero"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("10.00001", "4 decimal places"),
    ],
)
def test_deal_value_must_be_positive_money(net: Ledger, value: str, reason: str) -> None:
    recorded(net, sent(), accepted(when=1))
    refused(net, InvalidCommand, "deal_value", reason, converted(value=value, when=2))


def test_deal_value_nan_from_json(net: Ledger) -> None:
    recorded(net, sent(), accepted(when=1))
    line = (
        '{"type":"referral.converted","network":"acme","actor":"bob",'
        '"occurred_at":"2024-03-05T09:00:00Z","referral":"r1","deal_value":"NaN","currency":"USD"}'
    )
    refused(net, InvalidCommand, "deal_value", "finite", decode_command(line))


def test_deal_value_in_another_currency(net: Ledger) -> None:
    recorded(net, sent(), accepted(when=1))
    refused(
        net,
        InvalidCommand,
        "currency",
        "EUR is not the network's currency (USD)",
        converted(currency="EUR", when=2),
    )


def test_reversing_more_than_remains(net: Ledger) -> None:
    recorded(net, *converted_referral(value="1000.00"))
    refused(net, InvalidCommand, "amount", "exceeds", reversal("1000.01", when=3))
    recorded(net, reversal("600", when=4))
    error = refused(net, InvalidCommand, "amount", "exceeds", reversal("400.01", when=5))
    assert "400.00" in error.reason


def test_reversal_refusals(net: Ledger) -> None:
    recorded(net, sent(), accepted(when=1))
    refused(net, InvalidTransition, "referral", "is accepted", reversal("1", when=2))
    recorded(net, converted(when=3))
    refused(net, InvalidCommand, "amount", "greater than zero", reversal("0", when=4))
    refused(
        net, InvalidCommand, "currency", "not the network's", reversal("1", currency="EUR", when=4)
    )


def test_time_without_offset_is_refused_at_decoding() -> None:
    line = (
        '{"type":"referral.sent","network":"acme","actor":"alice",'
        '"occurred_at":"2024-03-01T09:00:00","referral":"r1","from_member":"alice",'
        '"to_member":"bob","customer":"Dana"}'
    )
    with pytest.raises(msgspec.ValidationError) as caught:
        decode_command(line)
    error = from_validation_error(caught.value)
    assert type(error) is InvalidCommand
    assert error.field == "occurred_at"
    assert "timezone" in error.reason


def command_line(type_: str, **fields: Any) -> bytes:
    """One import line: the common fields, then ``fields``."""
    record = {"type": type_, "network": NET, "actor": "coordinator"}
    record["occurred_at"] = "2024-03-01T09:00:00Z"
    return msgspec.json.encode({**record, **fields})


@pytest.mark.parametrize(
    ("line", "field"),
    [
        pytest.param(
            command_line("network.created", name="N", currency="usd"), "currency", id="top"
        ),
        pytest.param(
            command_line(
                "agreement.proposed",
                agreement="a1",
                kind="referral",
                parties=["alice", "bob"],
                terms={"scope": "s", "compensation": {"kind": "revenue_share", "rate": []}},
            ),
            "terms.compensation.rate",
            id="nested",
        ),
        pytest.param(
            command_line("network.tiers_set", tiers=[{"name": "", "threshold": "1"}]),
            "tiers[0].name",
            id="list-item-field",
        ),
        pytest.param(
            command_line(
                "agreement.proposed",
                agreement="a1",
                kind="referral",
                parties=["alice", "not a slug"],
                terms={"scope": "s"},
            ),
            "parties[1]",
            id="list-item",
        ),
        pytest.param(
            command_line("network.tiers_set", tiers=[{"name": "t", "threshold": "1", "x": 1}]),
            "tiers[0].x",
            id="unknown-field-in-list-item",
        ),
    ],
)
def test_validation_errors_name_fields_as_the_domain_does(line: bytes, field: str) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        decode_command(line)
    error = from_validation_error(caught.value)
    assert type(error) is InvalidCommand
    assert error.field == field


def test_time_with_an_offset_is_stored_in_utc(net: Ledger) -> None:
    line = (
        '{"type":"referral.sent","network":"acme","actor":"alice",'
        '"occurred_at":"2024-03-01T11:00:00+02:00","referral":"r1","from_member":"alice",'
        '"to_member":"bob","customer":"Dana"}'
    )
    command = decode_command(line)
    assert command.occurred_at == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert command.occurred_at.tzinfo is UTC
    recorded(net, command)
    _, event = log(net)[-1]
    assert event.occurred_at == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert referral_state(net).created_at == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


# ------------------------------------------------------------------ introductions


def introduction(**fields: Any) -> IntroductionMade:
    fields.setdefault("introduction", "i1")
    fields.setdefault("introducer", "alice")
    fields.setdefault("introduced", "bob")
    return make(IntroductionMade, **fields)


def test_introduction_to_a_member(net: Ledger) -> None:
    recorded(net, introduction(to_member="carol", note="both do kitchens"))
    found = net.unit_of_work().load(Introduction, introduction_id(NET, "i1"))
    assert found is not None
    assert (found.introducer, found.introduced, found.to_member) == ("alice", "bob", "carol")
    assert found.to_business is None


def test_introduction_to_a_business(net: Ledger) -> None:
    recorded(net, introduction(to_business="Springfield Hardware"))
    found = net.unit_of_work().load(Introduction, introduction_id(NET, "i1"))
    assert found is not None
    assert (found.to_member, found.to_business) == (None, "Springfield Hardware")


@pytest.mark.parametrize(
    ("fields", "error", "field", "reason"),
    [
        (
            {"to_member": "carol", "to_business": "Hardware Co"},
            InvalidCommand,
            "to_member",
            "exactly one",
        ),
        ({}, InvalidCommand, "to_member", "exactly one"),
        (
            {"introduced": "alice", "to_business": "X"},
            InvalidCommand,
            "introduced",
            "another member",
        ),
        ({"to_member": "bob"}, InvalidCommand, "to_member", "another member"),
        ({"to_member": "alice"}, InvalidCommand, "to_member", "another member"),
        ({"to_member": "zed"}, NotFound, "to_member", "'zed'"),
        ({"introduced": "zed", "to_business": "X"}, NotFound, "introduced", "'zed'"),
    ],
)
def test_introduction_refusals(
    net: Ledger, fields: dict[str, Any], error: type[DomainError], field: str, reason: str
) -> None:
    refused(net, error, field, reason, introduction(**fields))


def test_introduction_twice_already_exists(net: Ledger) -> None:
    recorded(net, introduction(to_member="carol"))
    refused(
        net, AlreadyExists, "introduction", "already exists", introduction(to_business="X", when=1)
    )


# ------------------------------------------------------------------ agreements


def test_agreement_lifecycle(net: Ledger) -> None:
    recorded(
        net,
        proposed(
            terms=terms(duration_days=365),
            pilot=Pilot(goals=("two referrals a month",)),
        ),
    )
    assert agreement_state(net).status == "proposed"

    recorded(net, agreement_accepted("alice", when=1))
    state = agreement_state(net)
    assert (state.status, state.accepted_by) == ("proposed", {"alice"})

    recorded(net, agreement_accepted("bob", when=2))
    state = agreement_state(net)
    assert state.status == "pilot"
    assert state.started_at == at(2)
    assert state.pilot_ends_at == at(2) + timedelta(days=90)

    recorded(net, make(AgreementActivated, when=92, agreement="a1"))
    state = agreement_state(net)
    assert state.status == "active"
    assert state.ends_at == at(92) + timedelta(days=365)

    new_terms = terms(scope="Refer all plumbing leads", duration_days=365)
    error = refused(
        net,
        InvalidCommand,
        "accepted_by",
        "not accepted by bob",
        make(AgreementAmended, when=100, agreement="a1", terms=new_terms, accepted_by=("alice",)),
    )
    assert "bob" in error.reason
    recorded(
        net,
        make(
            AgreementAmended,
            when=100,
            agreement="a1",
            terms=new_terms,
            accepted_by=("alice", "bob"),
        ),
    )
    state = agreement_state(net)
    assert state.status == "amended"
    assert state.terms_version == 2
    assert state.current_terms == new_terms
    assert state.terms[0].scope == "Refer residential plumbing leads"

    recorded(net, make(AgreementRenewed, when=400, agreement="a1", duration_days=180))
    state = agreement_state(net)
    assert state.status == "renewed"
    assert state.ends_at == at(92) + timedelta(days=365 + 180)

    recorded(net, make(AgreementTerminated, when=500, agreement="a1", reason="bob retired"))
    state = agreement_state(net)
    assert (state.status, state.termination_reason) == ("terminated", "bob retired")

    refused(
        net,
        InvalidTransition,
        "agreement",
        "is terminated",
        make(AgreementExpired, when=600, agreement="a1"),
    )
    refused(
        net,
        InvalidTransition,
        "agreement",
        "is terminated",
        make(AgreementRenewed, when=600, agreement="a1", duration_days=30),
    )


def test_agreement_with_the_program_without_pilot_then_expired(net: Ledger) -> None:
    recorded(
        net,
        proposed(parties=("alice", PROGRAM), terms=terms(duration_days=30)),
        agreement_accepted(PROGRAM, when=1),
        agreement_accepted("alice", when=2),
    )
    state = agreement_state(net)
    assert state.status == "active"
    assert state.pilot_ends_at is None
    assert state.ends_at == at(2) + timedelta(days=30)
    refused(
        net,
        InvalidTransition,
        "agreement",
        "is active",
        make(AgreementActivated, when=3, agreement="a1"),
    )
    recorded(net, make(AgreementExpired, when=32, agreement="a1"))
    assert agreement_state(net).status == "expired"
    refused(
        net,
        InvalidTransition,
        "agreement",
        "is expired",
        make(AgreementTerminated, when=33, agreement="a1", reason="late"),
    )


def test_pilot_with_its_own_length(net: Ledger) -> None:
    recorded(
        net,
        proposed(pilot=Pilot(days=30)),
        agreement_accepted("bob", when=1),
        agreement_accepted("alice", when=3),
    )
    assert agreement_state(net).pilot_ends_at == at(3) + timedelta(days=30)


def test_amending_during_the_pilot_keeps_the_pilot(net: Ledger) -> None:
    recorded(
        net,
        proposed(pilot=Pilot()),
        agreement_accepted("alice", when=1),
        agreement_accepted("bob", when=1),
        make(
            AgreementAmended,
            when=10,
            agreement="a1",
            terms=terms(scope="Narrower scope"),
            accepted_by=("bob", "alice"),
        ),
    )
    state = agreement_state(net)
    assert state.terms_version == 2
    assert state.status == "pilot"
    recorded(net, make(AgreementActivated, when=91, agreement="a1"))
    assert agreement_state(net).status == "active"


def test_agreement_acceptance_refusals(net: Ledger) -> None:
    recorded(net, proposed(), agreement_accepted("alice", when=1))
    refused(net, InvalidCommand, "party", "not a party", agreement_accepted("carol", when=2))
    refused(
        net,
        InvalidTransition,
        "party",
        "already accepted",
        agreement_accepted("alice", when=2, actor="alice"),
    )
    refused(net, NotFound, "agreement", "'a404'", agreement_accepted("alice", agreement="a404"))
    refused(
        net,
        InvalidTransition,
        "agreement",
        "is proposed",
        make(AgreementActivated, when=2, agreement="a1"),
    )


def test_amendment_refusals(net: Ledger) -> None:
    recorded(
        net, proposed(), agreement_accepted("alice", when=1), agreement_accepted("bob", when=1)
    )
    refused(
        net,
        InvalidCommand,
        "accepted_by",
        "not parties to the agreement: carol",
        make(
            AgreementAmended,
            when=2,
            agreement="a1",
            terms=terms(scope="New"),
            accepted_by=("alice", "bob", "carol"),
        ),
    )
    refused(
        net,
        InvalidCommand,
        "terms",
        "same as the terms in force",
        make(AgreementAmended, when=2, agreement="a1", terms=terms(), accepted_by=("alice", "bob")),
    )


def test_renewal_needs_a_duration(net: Ledger) -> None:
    recorded(
        net,
        proposed(),
        agreement_accepted("alice", when=1),
        agreement_accepted("bob", when=1),
    )
    refused(
        net,
        InvalidCommand,
        "duration_days",
        "give one",
        make(AgreementRenewed, when=2, agreement="a1"),
    )


def test_revenue_share(net: Ledger) -> None:
    good = Compensation(kind="revenue_share", rate=Decimal("0.10"))
    recorded(net, proposed(terms=terms(compensation=good)))
    assert agreement_state(net).current_terms.compensation == good
    refused(
        net,
        InvalidCommand,
        "terms.compensation.rate",
        "fraction between 0 and 1",
        proposed(
            "a2", terms=terms(compensation=Compensation(kind="revenue_share", rate=Decimal("1.5")))
        ),
    )
    refused(
        net,
        InvalidCommand,
        "terms.compensation.rate",
        "required",
        proposed("a2", terms=terms(compensation=Compensation(kind="revenue_share"))),
    )


def test_referral_fee(net: Ledger) -> None:
    refused(
        net,
        InvalidCommand,
        "terms.compensation.amount",
        "required",
        proposed(terms=terms(compensation=Compensation(kind="referral_fee"))),
    )
    refused(
        net,
        InvalidCommand,
        "terms.compensation.currency",
        "not the network's currency",
        proposed(
            terms=terms(
                compensation=Compensation(kind="referral_fee", amount=Decimal("50"), currency="EUR")
            )
        ),
    )
    recorded(
        net,
        proposed(terms=terms(compensation=Compensation(kind="referral_fee", amount=Decimal("50")))),
    )


def test_responsibilities_name_parties_only(net: Ledger) -> None:
    refused(
        net,
        InvalidCommand,
        "terms.responsibilities.carol",
        "'carol' is not a party",
        proposed(terms=terms(responsibilities={"alice": "send leads", "carol": "call back"})),
    )
    recorded(net, proposed(terms=terms(responsibilities={"alice": "send", "bob": "call back"})))


@pytest.mark.parametrize(
    ("parties", "error", "field", "reason"),
    [
        (("alice",), InvalidCommand, "parties", "at least two"),
        (("alice", "alice"), InvalidCommand, "parties", "listed twice"),
        (("alice", "zed"), NotFound, "parties[1]", "'zed'"),
    ],
)
def test_agreement_parties(
    net: Ledger, parties: tuple[str, ...], error: type[DomainError], field: str, reason: str
) -> None:
    refused(net, error, field, reason, proposed(parties=parties))


def test_agreement_with_a_suspended_party(net: Ledger) -> None:
    recorded(net, make(MemberSuspended, when=1, member="bob"))
    refused(net, InvalidTransition, "parties[1]", "suspended", proposed(when=2))


def test_agreement_proposed_twice(net: Ledger) -> None:
    recorded(net, proposed())
    refused(net, AlreadyExists, "agreement", "already exists", proposed(parties=("bob", "carol")))


# ------------------------------------------------------------------ chapter activity
#
# TestimonialGiven is used as commands.TestimonialGiven: imported by name, pytest
# would try to collect it as a test class (its name starts with "Test").


def attended(member: str, status: str, meeting: str = "m1", **fields: Any) -> MeetingAttended:
    return make(MeetingAttended, member=member, meeting=meeting, status=status, **fields)


def test_meeting_attended_and_corrected(net: Ledger) -> None:
    recorded(net, attended("alice", "present"), attended("bob", "late"))
    recorded(net, attended("bob", "present", when=1, actor="secretary"))
    meeting = net.unit_of_work().load(Meeting, meeting_id(NET, "m1"))
    assert meeting is not None
    assert meeting.attendance == {"alice": "present", "bob": "present"}
    assert meeting.version == 3


def test_meeting_substitute(net: Ledger) -> None:
    refused(
        net, InvalidCommand, "substitute", "name the substitute", attended("alice", "substitute")
    )
    refused(
        net,
        InvalidCommand,
        "substitute",
        "only for status 'substitute'",
        attended("alice", "present", substitute="Sam"),
    )
    recorded(net, attended("alice", "substitute", substitute="Sam Stand-in"))
    refused(net, NotFound, "member", "'zed'", attended("zed", "present"))


def test_one_to_one(net: Ledger) -> None:
    [event] = recorded(net, make(OneToOneHeld, member="alice", with_member="bob", note="coffee"))
    activity = net.unit_of_work().load(Activity, activity_id(NET, event.command_id))
    assert activity is not None
    assert activity.command == event.command
    refused(
        net,
        InvalidCommand,
        "with_member",
        "another member",
        make(OneToOneHeld, when=1, member="alice", with_member="alice"),
    )
    refused(
        net, NotFound, "with_member", "'zed'", make(OneToOneHeld, member="alice", with_member="zed")
    )


def test_visitor(net: Ledger) -> None:
    recorded(net, make(VisitorBrought, member="carol", visitor="Vic", meeting="m1"))
    refused(net, NotFound, "member", "'zed'", make(VisitorBrought, member="zed", visitor="Vic"))


def test_testimonial(net: Ledger) -> None:
    recorded(
        net, make(commands.TestimonialGiven, member="alice", about_member="bob", text="Great work")
    )
    refused(
        net,
        InvalidCommand,
        "about_member",
        "another member",
        make(commands.TestimonialGiven, member="alice", about_member="alice"),
    )


def test_training(net: Ledger) -> None:
    recorded(net, make(TrainingCompleted, member="alice", training="Member Success"))
    recorded(net, make(MemberSuspended, when=1, member="bob"))
    refused(
        net,
        InvalidTransition,
        "member",
        "suspended",
        make(TrainingCompleted, when=2, member="bob", training="Member Success"),
    )


def tyfcb(**fields: Any) -> TyfcbReported:
    fields.setdefault("member", "bob")
    fields.setdefault("thanked_member", "alice")
    fields.setdefault("amount", Decimal("1000.00"))
    fields.setdefault("currency", "USD")
    return make(TyfcbReported, **fields)


def test_tyfcb_reported(net: Ledger) -> None:
    recorded(net, *converted_referral())
    recorded(net, tyfcb(referral="r1", when=3), tyfcb(when=4, note="without a referral"))


def test_tyfcb_refusals(net: Ledger) -> None:
    recorded(net, sent(), accepted(when=1))
    refused(net, InvalidTransition, "referral", "not converted", tyfcb(referral="r1"))
    refused(net, NotFound, "referral", "'r404'", tyfcb(referral="r404"))
    recorded(net, converted(when=2))
    refused(
        net,
        InvalidCommand,
        "referral",
        "went from 'alice' to 'bob'",
        tyfcb(member="alice", thanked_member="bob", referral="r1"),
    )
    refused(net, InvalidCommand, "amount", "greater than zero", tyfcb(amount=Decimal("0")))
    refused(net, InvalidCommand, "currency", "not the network's", tyfcb(currency="GBP"))
    refused(net, InvalidCommand, "thanked_member", "another member", tyfcb(thanked_member="bob"))


# ------------------------------------------------------------------ idempotency and batches


def test_executing_the_same_command_twice_records_it_once(net: Ledger) -> None:
    command = sent()
    recorded(net, command)
    position = net.store.last_position()
    outcome = net.execute(command)
    assert (outcome.recorded, outcome.duplicates) == ([], 1)
    assert net.store.last_position() == position
    assert [e.type for _, e in log(net)].count("referral.sent") == 1


def test_the_same_time_in_another_offset_is_the_same_command(net: Ledger) -> None:
    recorded(net, sent())
    line = (
        '{"type":"referral.sent","network":"acme","actor":"coordinator",'
        '"occurred_at":"2024-03-01T04:00:00-05:00","referral":"r1","from_member":"alice",'
        '"to_member":"bob","customer":"Dana Customer"}'
    )
    outcome = net.execute(decode_command(line))
    assert (outcome.recorded, outcome.duplicates) == ([], 1)


def test_duplicates_within_one_batch_and_one_off_activities(net: Ledger) -> None:
    visit = make(VisitorBrought, member="carol", visitor="Vic")
    outcome = net.execute(visit, sent(), visit)
    assert (len(outcome.recorded), outcome.duplicates) == (2, 1)
    outcome = net.execute(visit)
    assert (outcome.recorded, outcome.duplicates) == ([], 1)


def test_a_batch_is_all_or_nothing(net: Ledger) -> None:
    first, second = sent(), accepted(when=1)
    bad = converted(value="-1", when=2)
    refused(net, InvalidCommand, "deal_value", "greater than zero", first, second, bad)
    with pytest.raises(NotFound):
        referral_state(net)
    # the first two were refused only because of the third
    recorded(net, first, second)
    assert referral_state(net).status == "accepted"


# ------------------------------------------------------------------ what is stored


def test_money_stays_decimal_after_a_reload(net: Ledger) -> None:
    recorded(net, *converted_referral(value="1234.5670"), reversal("0.1000", when=3))
    state = referral_state(net)  # a fresh unit of work: replayed from the store
    assert type(state.deal_value) is Decimal
    assert str(state.deal_value) == "1234.5670"
    assert type(state.reversed_amount) is Decimal
    assert state.net_value == Decimal("1234.467")
    assert str(state.net_value) == "1234.4670"
    [(_, event)] = [(p, e) for p, e in log(net) if e.type == "referral.converted"]
    assert isinstance(event.command, ReferralConverted)
    assert type(event.command.deal_value) is Decimal
    assert str(event.command.deal_value) == "1234.5670"


def test_events_carry_network_actor_and_times(net: Ledger) -> None:
    before = datetime.now(UTC)
    recorded(net, sent(actor="alice", when=0.5), accepted(actor="bob", when=1.25))
    after = datetime.now(UTC)
    events = [event for _, event in log(net)][-2:]
    assert [e.type for e in events] == ["referral.sent", "referral.accepted"]
    assert [e.network for e in events] == [NET, NET]
    assert [e.actor for e in events] == ["alice", "bob"]
    assert [e.occurred_at for e in events] == [at(0.5), at(1.25)]
    for event in events:
        assert event.occurred_at.utcoffset() == timedelta(0)
        assert event.recorded_at.utcoffset() == timedelta(0)
        assert before <= event.recorded_at <= after
        assert event.command_id.startswith("sha256:")
    assert [e.originator_version for e in events] == [1, 2]
    assert events[0].originator_id == events[1].originator_id


def test_an_explicit_command_id_is_kept(net: Ledger) -> None:
    [event] = recorded(net, sent(command_id="crm:lead/42"))
    assert event.command_id == "crm:lead/42"
    outcome = net.execute(sent(command_id="crm:lead/42"))
    assert outcome.duplicates == 1


# ------------------------------------------------------------------ commands built in Python
#
# msgspec checks the constraints of a Struct (slug patterns, ISO currency codes,
# lengths, ranges, a time offset) when it decodes JSON, not when Python code
# calls the constructor. A command built in Python must still not be recorded
# when it breaks them: the event could not be decoded again, and every read of
# the log would fail from then on.

SCHEMA_BREAKERS = [
    pytest.param(lambda: network(network="bad slug!"), "network", id="network-slug"),
    pytest.param(lambda: network(network="n2", currency="usd"), "currency", id="currency-code"),
    pytest.param(
        lambda: network(network="n2", period="rolling", rolling_days=0),
        "rolling_days",
        id="rolling-days-0",
    ),
    pytest.param(lambda: sent("r 2"), "referral", id="referral-slug"),
    pytest.param(lambda: sent("r2", actor=""), "actor", id="empty-actor"),
    pytest.param(lambda: sent("r2", customer=""), "customer", id="empty-customer"),
    pytest.param(lambda: proposed(pilot=Pilot(days=0)), "pilot.days", id="pilot-days-0"),
    pytest.param(
        lambda: make(NetworkTiersSet, tiers=(Tier(name="", threshold=Decimal(1)),)),
        "tiers[0].name",
        id="empty-tier-name",
    ),
]


@pytest.mark.parametrize(("build", "field"), SCHEMA_BREAKERS)
def test_a_command_built_in_python_is_held_to_the_schema(
    net: Ledger, build: Any, field: str
) -> None:
    position = net.store.last_position()
    try:
        refused(net, InvalidCommand, field, "", build())
    finally:
        assert net.store.last_position() == position
        log(net)  # the log must stay readable whatever happened


def test_a_naive_time_is_refused_not_taken_as_local(net: Ledger) -> None:
    position = net.store.last_position()
    with pytest.raises((ValueError, TypeError, DomainError)):
        net.execute(sent(occurred_at=datetime(2024, 3, 1, 9, 0)))
    assert net.store.last_position() == position
