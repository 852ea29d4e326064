"""Members' activity in a window, computed from the log (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from partnerledger import Ledger, Store
from partnerledger.activity import last_months, member_activities, member_activity
from partnerledger.commands import Command, convert_command
from partnerledger.errors import NotFound
from partnerledger.rules import Activity, Window

NET = "chap"
WINDOW = Window(
    start=datetime(2025, 1, 1, tzinfo=UTC),
    end=datetime(2025, 7, 1, tzinfo=UTC),
)


def line(kind: str, when: str, **fields: Any) -> Command:
    """A command of type ``kind`` in NET at business time ``when`` (ISO, UTC)."""
    fields.setdefault("network", NET)
    fields.setdefault("actor", "coordinator")
    return convert_command({"type": kind, "occurred_at": f"{when}Z", **fields})


def joined(member: str, when: str = "2024-12-01T09:00:00", **fields: Any) -> Command:
    return line(
        "member.joined", when, member=member, name=member.title(), category=member, **fields
    )


def attended(member: str, meeting: str, status: str, when: str, **fields: Any) -> Command:
    return line("meeting.attended", when, member=member, meeting=meeting, status=status, **fields)


def referral(
    slug: str, sender: str, receiver: str, sent: str, converted: str | None = None, value: str = ""
) -> list[Command]:
    """A referral sent (and accepted, and converted when ``converted`` is given)."""
    commands = [
        line(
            "referral.sent", sent, referral=slug, from_member=sender, to_member=receiver,
            customer=f"customer of {slug}",
        ),
        line("referral.accepted", sent, referral=slug),
    ]  # fmt: skip
    if converted is not None:
        commands.append(
            line("referral.converted", converted, referral=slug, deal_value=value, currency="GBP")
        )
    return commands


def reversal(slug: str, when: str, amount: str) -> Command:
    return line("referral.reversed", when, referral=slug, amount=amount, reason="refund")


HISTORY: list[Command] = [
    line("network.created", "2024-12-01T08:00:00", name="Chapter", currency="GBP"),
    joined("ann"),
    joined("bob"),
    joined("cat"),
    # Meetings: m0 before the window, m1-m3 in it, m9 exactly at its end (outside).
    attended("ann", "m0", "absent", "2024-12-20T07:00:00"),
    attended("ann", "m1", "present", "2025-01-07T07:00:00"),
    attended("ann", "m2", "late", "2025-01-14T07:00:00"),
    attended("ann", "m3", "absent", "2025-01-21T07:00:00"),
    attended("bob", "m1", "absent", "2025-01-07T07:00:00"),
    attended("bob", "m2", "medical", "2025-01-14T07:00:00"),
    attended("bob", "m3", "present", "2025-01-21T07:00:00"),
    attended("cat", "m1", "late", "2025-01-07T07:00:00"),
    attended("ann", "m9", "absent", "2025-07-01T00:00:00"),
    # Corrections: a later line for the same meeting and member wins.
    attended("ann", "m3", "substitute", "2025-01-21T07:00:00", substitute="Zoe", actor="ann"),
    attended("bob", "m1", "present", "2025-01-07T07:00:00", actor="bob"),
    # Referrals.
    *referral("r1", "ann", "bob", "2025-01-10T09:00:00", "2025-02-01T09:00:00", "10000.00"),
    reversal("r1", "2025-03-01T09:00:00", "2500.00"),
    *referral("r2", "ann", "cat", "2024-12-15T09:00:00", "2025-01-20T09:00:00", "4000"),
    *referral("r3", "bob", "ann", "2025-02-01T09:00:00", "2025-07-01T00:00:00", "999"),
    *referral("r4", "ann", "bob", "2024-12-05T09:00:00", "2024-12-10T09:00:00", "600"),
    reversal("r4", "2025-02-10T09:00:00", "100"),
    *referral("r5", "cat", "ann", "2025-06-30T23:59:59"),
    # Thank you for closed business.
    line(
        "tyfcb.reported", "2025-03-01T10:00:00", member="bob", thanked_member="ann",
        amount="1500.50", currency="GBP",
    ),
    line(
        "tyfcb.reported", "2025-07-01T10:00:00", member="cat", thanked_member="ann",
        amount="700", currency="GBP",
    ),
    line(
        "tyfcb.reported", "2025-04-01T10:00:00", member="ann", thanked_member="bob",
        amount="300", currency="GBP",
    ),
    # Visitors, testimonials, trainings, one-to-ones, introductions.
    line("visitor.brought", "2025-01-07T07:00:00", member="ann", visitor="V1"),
    line("visitor.brought", "2025-02-07T07:00:00", member="ann", visitor="V2"),
    line("visitor.brought", "2024-12-31T23:59:59", member="ann", visitor="V3"),
    line("testimonial.given", "2025-03-03T07:00:00", member="ann", about_member="bob"),
    line("testimonial.given", "2025-03-03T07:00:00", member="bob", about_member="ann"),
    line("training.completed", "2025-01-15T07:00:00", member="ann", training="MSP"),
    line("training.completed", "2025-02-15T07:00:00", member="cat", training="MSP"),
    line("training.completed", "2025-03-15T07:00:00", member="cat", training="Presenting"),
    line("one_to_one.held", "2025-02-02T07:00:00", member="ann", with_member="bob"),
    line("one_to_one.held", "2025-02-03T07:00:00", member="cat", with_member="ann"),
    line("one_to_one.held", "2025-08-03T07:00:00", member="bob", with_member="cat"),
    line(
        "introduction.made", "2025-05-05T07:00:00", introduction="i1", introducer="ann",
        introduced="bob", to_member="cat",
    ),
    line(
        "introduction.made", "2024-12-05T07:00:00", introduction="i2", introducer="bob",
        introduced="ann", to_business="Bank",
    ),
    # Dan joins after the window: not a member for it.
    joined("dan", "2025-08-01T09:00:00"),
    # Another network with the same member slugs: never counted.
    line("network.created", "2024-12-01T08:00:00", network="other", name="O", currency="EUR"),
    joined("ann", network="other"),
    attended("ann", "m1", "absent", "2025-01-07T07:00:00", network="other"),
    attended("ann", "m7", "late", "2025-01-08T07:00:00", network="other"),
    line("visitor.brought", "2025-01-07T07:00:00", network="other", member="ann", visitor="V"),
]  # fmt: skip


def at(text: str) -> datetime:
    return datetime.fromisoformat(f"{text}+00:00")


EXPECTED = {
    "ann": Activity(
        network=NET, member="ann", window=WINDOW, currency="GBP", meetings_held=3,
        present=1, late=1, absent=0, substitute=1, medical=0,
        referrals_given=1, referrals_received=2, referrals_given_converted=2,
        converted_value_given=Decimal("11400.00"), tyfcb_received=Decimal("1500.50"),
        visitors=2, testimonials_given=1, trainings=1, one_to_ones=2, introductions=1,
        last_conversion_at=at("2025-02-01T09:00:00"),
    ),
    "bob": Activity(
        network=NET, member="bob", window=WINDOW, currency="GBP", meetings_held=3,
        present=2, medical=1, referrals_given=1, referrals_received=1,
        tyfcb_received=Decimal(300), testimonials_given=1, one_to_ones=1,
    ),
    "cat": Activity(
        network=NET, member="cat", window=WINDOW, currency="GBP", meetings_held=3,
        late=1, referrals_given=1, trainings=2, one_to_ones=1,
    ),
}  # fmt: skip


@pytest.fixture
def history(ledger: Ledger) -> Store:
    ledger.execute(*HISTORY)
    return ledger.store


def test_every_field_of_every_member(history: Store) -> None:
    activities = member_activities(history, NET, WINDOW)
    assert activities == EXPECTED
    assert list(activities) == ["ann", "bob", "cat"]  # dan joined after the window


def test_one_member_equals_the_one_pass(history: Store) -> None:
    for member, expected in EXPECTED.items():
        assert member_activity(history, NET, member, WINDOW) == expected


def test_converted_value_is_net_of_reversals_in_the_window(history: Store) -> None:
    # r1 10000 - 2500 (both in), r2 4000 (converted in, sent before),
    # r4 converted before the window, 100 reversed in it: 11400.
    assert member_activity(history, NET, "ann", WINDOW).converted_value_given == Decimal(11400)
    # A window holding only r4's reversal: a negative net value.
    february = Window(start=at("2025-02-05T00:00:00"), end=at("2025-02-28T00:00:00"))
    ann = member_activity(history, NET, "ann", february)
    assert ann.converted_value_given == Decimal(-100)
    assert ann.referrals_given_converted == 0
    assert ann.last_conversion_at == at("2025-02-01T09:00:00")  # before the window


def test_last_conversion_before_the_window_end(history: Store) -> None:
    # r3 converted exactly at the end of WINDOW: not in it, but in the next.
    assert member_activity(history, NET, "bob", WINDOW).last_conversion_at is None
    later = Window(start=WINDOW.end, end=at("2025-12-01T00:00:00"))
    bob = member_activity(history, NET, "bob", later)
    assert bob.last_conversion_at == WINDOW.end
    assert bob.referrals_given_converted == 1
    assert bob.converted_value_given == Decimal(999)
    # Before any conversion of ann's referrals: none.
    early = Window(start=at("2024-12-01T00:00:00"), end=at("2024-12-10T09:00:00"))
    assert member_activity(history, NET, "ann", early).last_conversion_at is None


def test_correction_moves_a_status(history: Store, ledger: Ledger) -> None:
    ledger.execute(attended("ann", "m1", "absent", "2025-01-07T07:00:00", actor="again"))
    ann = member_activity(history, NET, "ann", WINDOW)
    assert (ann.present, ann.absent, ann.late, ann.substitute) == (0, 1, 1, 1)
    assert ann.meetings_held == 3


def test_window_edges_are_half_open(history: Store) -> None:
    # m9 at 2025-07-01T00:00 is the next window's.
    july = Window(start=WINDOW.end, end=at("2025-08-01T00:00:00"))
    ann = member_activity(history, NET, "ann", july)
    assert (ann.meetings_held, ann.absent) == (1, 1)
    assert ann.tyfcb_received == Decimal(700)
    assert member_activity(history, NET, "cat", july).meetings_held == 1  # cat missed it


def test_other_network_is_separate(history: Store) -> None:
    ann = member_activity(history, "other", "ann", WINDOW)
    assert ann.currency == "EUR"
    assert (ann.meetings_held, ann.absent, ann.late, ann.visitors) == (2, 1, 1, 1)
    assert ann.referrals_given == 0
    assert list(member_activities(history, "other", WINDOW)) == ["ann"]


def test_member_without_events_gets_zeros(history: Store) -> None:
    dan = member_activity(history, NET, "dan", WINDOW)
    assert dan == Activity(
        network=NET, member="dan", window=WINDOW, currency="GBP", meetings_held=3
    )


def test_unknown_network_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound) as caught:
        member_activities(store, "nope", WINDOW)
    assert caught.value.field == "network"
    with pytest.raises(NotFound):
        member_activity(store, "nope", "ann", WINDOW)


@pytest.mark.parametrize(
    ("end", "months", "start"),
    [
        ("2025-07-01T00:00:00", 6, "2025-01-01T00:00:00"),
        ("2025-08-31T12:30:00", 6, "2025-02-28T12:30:00"),
        ("2024-08-31T00:00:00", 6, "2024-02-29T00:00:00"),  # leap year
        ("2025-03-15T00:00:00", 3, "2024-12-15T00:00:00"),  # across the year
        ("2025-01-31T00:00:00", 1, "2024-12-31T00:00:00"),
        ("2025-03-31T00:00:00", 1, "2025-02-28T00:00:00"),
        ("2025-05-10T00:00:00", 24, "2023-05-10T00:00:00"),
        ("2025-12-01T00:00:00", 12, "2024-12-01T00:00:00"),
    ],
)
def test_last_months(end: str, months: int, start: str) -> None:
    assert last_months(at(end), months) == Window(start=at(start), end=at(end))


def test_last_months_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="months"):
        last_months(at("2025-01-01T00:00:00"), 0)
    with pytest.raises(ValueError, match="offset"):
        last_months(datetime(2025, 1, 1), 6)
