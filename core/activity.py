"""Members' activity in a window of business time, read from the log.

Scoring rules (plugins) receive a :class:`~partnerledger.rules.Activity`:
counts and sums over the events whose business time (``occurred_at``) lies
in a half-open :class:`~partnerledger.rules.Window` (``start <= t < end``).
This module computes it from the event log: :func:`member_activities` for
every member of a network in one pass over the log (what a period close
uses), :func:`member_activity` for one member.

What each field counts (all over events of the network in the window):

``meetings_held``
    distinct ``meeting`` slugs of ``meeting.attended`` events (any member's).
``present`` / ``late`` / ``absent`` / ``substitute`` / ``medical``
    the member's meetings by their *latest* recorded status: a later
    ``meeting.attended`` line for the same meeting and member corrects the
    earlier one (its status and its time replace the earlier line's).
``referrals_given`` / ``referrals_received``
    ``referral.sent`` with the member as ``from_member`` / ``to_member``.
``referrals_given_converted``
    ``referral.converted`` events in the window of referrals the member sent
    (whenever they were sent).
``converted_value_given``
    the ``deal_value`` of those conversions, minus the ``amount`` of every
    ``referral.reversed`` in the window of a referral the member sent
    (whenever it was converted): the net value the member's referrals brought
    in during the window, which is negative when refunds outweigh new deals.
    A referral "the member sent" is one credited to them: after a dispute's
    ``credit.reassigned``, the conversions and reversals recorded later in
    the log count for the new member (``referrals_given`` stays the sender's).
``tyfcb_received``
    the ``amount`` of ``tyfcb.reported`` with the member as ``thanked_member``.
``visitors`` / ``testimonials_given`` / ``trainings``
    ``visitor.brought`` / ``testimonial.given`` / ``training.completed`` by
    the member.
``one_to_ones``
    ``one_to_one.held`` with the member on either side.
``introductions``
    ``introduction.made`` with the member as ``introducer``.
``last_conversion_at``
    the business time of the latest ``referral.converted`` of a referral the
    member sent, in the window or before it (before ``window.end``), or
    ``None`` if there is none.
``currency``
    the network's currency (every amount in a network is in it).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from .commands import (
    Attendance,
    CreditReassigned,
    IntroductionMade,
    MeetingAttended,
    MemberInvited,
    MemberJoined,
    NetworkCreated,
    OneToOneHeld,
    ReferralConverted,
    ReferralReversed,
    ReferralSent,
    TestimonialGiven,
    TrainingCompleted,
    TyfcbReported,
    VisitorBrought,
    command_type,
)
from .errors import NotFound
from .events import Event
from .rules import Activity, Window
from .store import Store

#: The event types activity is computed from (the log is read filtered to them).
TOPICS: tuple[str, ...] = tuple(
    command_type(cls)
    for cls in (
        NetworkCreated,
        MemberInvited,
        MemberJoined,
        MeetingAttended,
        ReferralSent,
        ReferralConverted,
        ReferralReversed,
        TyfcbReported,
        VisitorBrought,
        TestimonialGiven,
        TrainingCompleted,
        OneToOneHeld,
        IntroductionMade,
        CreditReassigned,
    )
)


@dataclass
class _Tally:
    """Mutable counters of one member while the log is read."""

    counts: dict[str, int] = field(default_factory=dict)
    converted_value_given: Decimal = Decimal(0)
    tyfcb_received: Decimal = Decimal(0)
    last_conversion_at: datetime | None = None

    def add(self, name: str, count: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + count


def last_months(end: datetime, months: int) -> Window:
    """The window of the ``months`` calendar months before ``end``: ``[end - months, end)``.

    Calendar-month arithmetic: the start keeps ``end``'s day and time of day,
    clamped to the length of its month (six months before 31 August is
    28 or 29 February). ``end`` must be timezone-aware; ``months`` at least 1.
    """
    if end.tzinfo is None:
        raise ValueError("end: give a time with an offset")
    if months < 1:
        raise ValueError("months: must be at least 1")
    index = end.year * 12 + (end.month - 1) - months
    year, month = divmod(index, 12)
    month += 1
    day = min(end.day, calendar.monthrange(year, month)[1])
    return Window(start=end.replace(year=year, month=month, day=day), end=end)


def member_activity(store: Store, network: str, member: str, window: Window) -> Activity:
    """One member's activity in the window (see the module for what each field counts).

    Raises :class:`~partnerledger.errors.NotFound` for an unknown network. A
    member without events gets an activity of zeros.
    """
    return _compute((e for _, e in store.read(topics=TOPICS)), network, window, member)[member]


def member_activities(store: Store, network: str, window: Window) -> dict[str, Activity]:
    """Every member's activity in the window, from one pass over the log.

    The members are those invited to or joined the network before
    ``window.end`` (whatever their status since: filter on it if needed),
    each with an activity even when it is all zeros, in order of first
    appearance. Raises :class:`~partnerledger.errors.NotFound` for an
    unknown network.
    """
    return _compute((e for _, e in store.read(topics=TOPICS)), network, window, None)


def activities_of(
    events: Iterable[Event], network: str, window: Window, *, only: str | None = None
) -> dict[str, Activity]:
    """Every member's (or only one member's) activity in the window, from events in log order.

    What :func:`member_activities` computes, from any events (an audit check
    recomputes a recorded decision's inputs from the events before it).
    Raises :class:`~partnerledger.errors.NotFound` when the events hold no
    ``network.created`` of the network.
    """
    return _compute((e for e in events if e.type in TOPICS), network, window, only)


def _compute(
    events: Iterable[Event], network: str, window: Window, only: str | None
) -> dict[str, Activity]:
    currency: str | None = None
    tallies: dict[str, _Tally] = {}
    if only is not None:
        tallies[only] = _Tally()
    # (meeting, member) -> (status, business time) of the latest line.
    attendance: dict[tuple[str, str], tuple[Attendance, datetime]] = {}
    senders: dict[str, str] = {}  # referral -> from_member

    def tally(member: str) -> _Tally | None:
        if only is not None and member != only:
            return None
        found = tallies.get(member)
        if found is None:
            found = tallies[member] = _Tally()
        return found

    def count(members: Iterable[str], name: str) -> None:
        for member in members:
            found = tally(member)
            if found is not None:
                found.add(name)

    for event in events:
        command: Any = event.command
        if command.network != network:
            continue
        when: datetime = command.occurred_at
        inside = when in window
        if isinstance(command, NetworkCreated):
            currency = command.currency
        elif isinstance(command, MemberInvited | MemberJoined):
            if when < window.end:
                tally(command.member)
        elif isinstance(command, MeetingAttended):
            attendance[(command.meeting, command.member)] = (command.status, when)
        elif isinstance(command, ReferralSent):
            senders[command.referral] = command.from_member
            if inside:
                count((command.from_member,), "referrals_given")
                count((command.to_member,), "referrals_received")
        elif isinstance(command, ReferralConverted):
            sender = senders.get(command.referral)
            found = tally(sender) if sender is not None and when < window.end else None
            if found is not None:
                if found.last_conversion_at is None or when > found.last_conversion_at:
                    found.last_conversion_at = when
                if inside:
                    found.add("referrals_given_converted")
                    found.converted_value_given += command.deal_value
        elif isinstance(command, CreditReassigned):  # later conversions count for the new member
            senders[command.referral] = command.to_member
        elif isinstance(command, ReferralReversed):
            sender = senders.get(command.referral)
            found = tally(sender) if sender is not None and inside else None
            if found is not None:
                found.converted_value_given -= command.amount
        elif not inside:
            continue
        elif isinstance(command, TyfcbReported):
            found = tally(command.thanked_member)
            if found is not None:
                found.tyfcb_received += command.amount
        elif isinstance(command, VisitorBrought):
            count((command.member,), "visitors")
        elif isinstance(command, TestimonialGiven):
            count((command.member,), "testimonials_given")
        elif isinstance(command, TrainingCompleted):
            count((command.member,), "trainings")
        elif isinstance(command, OneToOneHeld):
            count((command.member, command.with_member), "one_to_ones")
        elif isinstance(command, IntroductionMade):
            count((command.introducer,), "introductions")

    if currency is None:
        raise NotFound("network", f"no network {network!r}")

    meetings: set[str] = set()
    for (meeting, member), (status, when) in attendance.items():
        if when in window:
            meetings.add(meeting)
            count((member,), status)

    return {
        member: Activity(
            network=network,
            member=member,
            window=window,
            currency=currency,
            meetings_held=len(meetings),
            converted_value_given=found.converted_value_given,
            tyfcb_received=found.tyfcb_received,
            last_conversion_at=found.last_conversion_at,
            **found.counts,
        )
        for member, found in tallies.items()
    }


__all__ = ["TOPICS", "activities_of", "last_months", "member_activities", "member_activity"]
