"""Standings: every member's score and tier in every period of its network.

The view keeps two kinds of rows:

*Activity*, the inputs of scoring, in tables keyed by UTC day: additive
counters per member and day (referrals given and received, conversions,
converted value, thanks for closed business, visitors, testimonials,
trainings, one-to-ones, introductions; amounts in exact units of 1/10,000),
the latest attendance line per meeting and member, each referral's sender
(its credited member: a dispute's ``credit.reassigned`` changes it),
each conversion's time and each member's first appearance. A period's
:class:`~partnerledger.rules.Activity` is summed from them by SQL over the
period's window, so the work grows with the members and days of one window,
never with the history. It equals what :mod:`partnerledger.activity` computes
from the log (a test compares them).

*Standings*, one row per network, period and member: the window scored (the
scoring plugin's ``window_months`` ending with the period, else the period
itself), the activity, the score (with its breakdown, e.g. the seven
traffic-light sections, the total and the colour) and the tier the tiering
plugin gives it, with the previous period's tier and the periods already
spent below it (for grace periods). Rows of open periods are *provisional*:
recomputed with the network's plugins and settings as they are now, after
every batch of events that could change them (an event changes the period
it falls in and every later one, through the chain of previous tiers; a
change of plugins, settings or tier ladder changes every period). Rows of a
*closed* period are the recorded ``tier.decided`` events (with any
``tier.overridden``): never recomputed, whatever the rules or the code.
Periods run from the network's creation to the latest business time of any
of its events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from ..activity import last_months
from ..commands import (
    CreditReassigned,
    IntroductionMade,
    MeetingAttended,
    MemberInvited,
    MemberJoined,
    MemberLeft,
    MemberReinstated,
    MemberSuspended,
    OneToOneHeld,
    PeriodClosed,
    ReferralConverted,
    ReferralReversed,
    ReferralSent,
    TestimonialGiven,
    TierDecided,
    TierOverridden,
    TrainingCompleted,
    TyfcbReported,
    VisitorBrought,
    command_type,
)
from ..domain import Network
from ..errors import NotFound
from ..events import Event
from ..periods import Calendar, Period
from ..pluginmanager import PluginFailed, Rules
from ..projection import NETWORK_TOPICS, BatchRows, Networks, Projection, by_network, projection
from ..rules import Activity, Decision, Score, TierChoice, Window, inputs_digest
from ..sql import SqlBackend

#: Amounts are kept as integers of this many units per currency unit.
UNITS = Decimal(10_000)
_ACTIVITY_FIELDS = (
    "referrals_given",
    "referrals_received",
    "referrals_given_converted",
    "converted_value_given",
    "tyfcb_received",
    "visitors",
    "testimonials_given",
    "trainings",
    "one_to_ones",
    "introductions",
)
_AMOUNTS = ("converted_value_given", "tyfcb_received")
_STATUSES = ("present", "late", "absent", "substitute", "medical")

_encode = msgspec.json.Encoder(decimal_format="string").encode
_decision = msgspec.json.Decoder(Decision | None).decode
_activity = msgspec.json.Decoder(Activity).decode


@dataclass(frozen=True)
class Standing:
    """One member's standing in one period."""

    network: str
    period: str
    member: str
    status: str  # the member's status now
    window: Window
    activity: Activity
    score: Decision | None  # a Score decision; None without a scoring plugin
    tier: Decision | None  # a TierChoice decision; None without a tiering plugin
    previous: str | None  # the tier held in the previous period
    periods_below: int  # periods in a row already kept below the previous tier
    streak: int  # this period included: periods kept in a tier while below it
    closed: bool  # recorded at a period close (never recomputed)
    override: str | None = None  # a coordinator's override: the tier given
    override_reason: str | None = None
    problem: str | None = None  # a plugin failed: why

    @property
    def total(self) -> Decimal | None:
        """The score's total."""
        value = self.score.value if self.score else None
        return value.total if isinstance(value, Score) else None

    @property
    def label(self) -> str | None:
        """The score's label (a traffic-light colour)."""
        value = self.score.value if self.score else None
        return value.label if isinstance(value, Score) else None

    @property
    def tier_name(self) -> str | None:
        """The tier in force: the override if any, else the decided tier."""
        if self.override_reason is not None:
            return self.override
        value = self.tier.value if self.tier else None
        return value.tier if isinstance(value, TierChoice) else None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON (money and scores as strings)."""
        score = self.score.value if self.score else None
        return {
            "network": self.network,
            "period": self.period,
            "member": self.member,
            "status": self.status,
            "window": {"start": self.window.start, "end": self.window.end},
            "score": str(score.total) if isinstance(score, Score) else None,
            "label": self.label,
            "breakdown": (
                {k: str(v) for k, v in score.breakdown.items()} if isinstance(score, Score) else {}
            ),
            "tier": self.tier_name,
            "decided_tier": (
                self.tier.value.tier
                if self.tier and isinstance(self.tier.value, TierChoice)
                else None
            ),
            "reason": (
                self.tier.value.reason
                if self.tier and isinstance(self.tier.value, TierChoice)
                else None
            ),
            "scoring_plugin": (
                {"name": self.score.plugin, "version": self.score.version} if self.score else None
            ),
            "tiering_plugin": (
                {"name": self.tier.plugin, "version": self.tier.version} if self.tier else None
            ),
            "previous": self.previous,
            "periods_below": self.periods_below,
            "closed": self.closed,
            "override_reason": self.override_reason,
            "problem": self.problem,
            "activity": msgspec.to_builtins(self.activity),
        }


def period_window(rules: Rules, enabled: dict[str, Any], period: Period) -> Window:
    """The window scored for a period: a scoring plugin's ``window_months``, else the period."""
    for name, settings in enabled.items():
        if not rules.implements(name, "partnerledger_score"):
            continue
        months = getattr(settings, "window_months", None)
        if isinstance(months, int):
            return last_months(period.end, months)
    return Window(start=period.start, end=period.end)


def _units(amount: Decimal) -> int:
    return int(amount * UNITS)


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


_TOPICS = (
    MemberInvited,
    MemberJoined,
    MemberSuspended,
    MemberReinstated,
    MemberLeft,
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
    PeriodClosed,
    TierDecided,
    TierOverridden,
    CreditReassigned,
)


@projection
class Standings(Projection):
    """Activity per day and member, and standings per period and member."""

    name = "standings"
    version = 1
    tables = (
        "partnerledger_standing_members",
        "partnerledger_standing_counts",
        "partnerledger_standing_attendance",
        "partnerledger_standing_senders",
        "partnerledger_standing_conversions",
        "partnerledger_standing_spans",
        "partnerledger_standing_closed",
        "partnerledger_standings",
    )
    topics = NETWORK_TOPICS + tuple(command_type(cls) for cls in _TOPICS)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._counts: dict[tuple[str, str, str, str], list[int]] = {}
        #: network → the earliest business time changed in this batch (None: everything)
        self._dirty: dict[str, datetime | None] = {}
        #: network → the members whose activity changed in this batch (None: every member,
        #: as when the network's settings or the meetings held changed)
        self._dirty_members: dict[str, set[str] | None] = {}
        # The batch's rows, read once and written once (see Projection.prepare/flush).
        #: network → [first, last] business time of its events
        self._span_rows: BatchRows[str, list[datetime]] = BatchRows(self._load_spans)
        #: network → its span before this batch (the batch may add periods after its end)
        self._spans: dict[str, tuple[datetime, datetime] | None] = {}
        #: (network, member) → [status, first_at, first_position]
        self._members: BatchRows[tuple[str, str], list[Any]] = BatchRows(self._load_members)
        #: (network, meeting, member) → [status, occurred_at]
        self._attendance: BatchRows[tuple[str, str, str], list[Any]] = BatchRows(
            self._load_attendance
        )
        #: (network, referral) → its credited member
        self._senders: BatchRows[tuple[str, str], str] = BatchRows(self._load_senders)
        self._conversions: list[tuple[str, int, str, datetime]] = []

    def create(self) -> None:
        ts = self.db.timestamp
        for statement in (
            f"""CREATE TABLE IF NOT EXISTS {self.t("partnerledger_standing_members")} (
                network TEXT NOT NULL, member TEXT NOT NULL, status TEXT NOT NULL,
                first_at {ts} NOT NULL, first_position BIGINT NOT NULL,
                PRIMARY KEY (network, member))""",
            f"""CREATE TABLE IF NOT EXISTS {self.t("partnerledger_standing_counts")} (
                network TEXT NOT NULL, member TEXT NOT NULL, day TEXT NOT NULL,
                field TEXT NOT NULL, count BIGINT NOT NULL, amount BIGINT NOT NULL,
                PRIMARY KEY (network, day, member, field))""",
            # The dashboard's monthly sums of a few fields read this index alone.
            f"""CREATE INDEX IF NOT EXISTS partnerledger_standing_counts_field
                ON {self.t("partnerledger_standing_counts")}
                (network, field, day, count, amount)""",
            f"""CREATE TABLE IF NOT EXISTS {self.t("partnerledger_standing_attendance")} (
                network TEXT NOT NULL, meeting TEXT NOT NULL, member TEXT NOT NULL,
                status TEXT NOT NULL, occurred_at {ts} NOT NULL,
                PRIMARY KEY (network, meeting, member))""",
            f"""CREATE INDEX IF NOT EXISTS partnerledger_standing_attendance_time
                ON {self.t("partnerledger_standing_attendance")} (network, occurred_at)""",
            f"""CREATE TABLE IF NOT EXISTS {self.t("partnerledger_standing_senders")} (
                network TEXT NOT NULL, referral TEXT NOT NULL, member TEXT NOT NULL,
                PRIMARY KEY (network, referral))""",
            f"""CREATE TABLE IF NOT EXISTS {self.t("partnerledger_standing_conversions")} (
                network TEXT NOT NULL, position BIGINT NOT NULL, member TEXT NOT NULL,
                occurred_at {ts} NOT NULL, PRIMARY KEY (network, position))""",
            f"""CREATE INDEX IF NOT EXISTS partnerledger_standing_conversions_member
                ON {self.t("partnerledger_standing_conversions")} (network, member, occurred_at)""",
            f"""CREATE TABLE IF NOT EXISTS {self.t("partnerledger_standing_spans")} (
                network TEXT PRIMARY KEY, first_at {ts} NOT NULL, last_at {ts} NOT NULL)""",
            f"""CREATE TABLE IF NOT EXISTS {self.t("partnerledger_standing_closed")} (
                network TEXT NOT NULL, period TEXT NOT NULL, PRIMARY KEY (network, period))""",
            f"""CREATE TABLE IF NOT EXISTS {self.t("partnerledger_standings")} (
                network TEXT NOT NULL, period TEXT NOT NULL, member TEXT NOT NULL,
                period_start {ts} NOT NULL, window_start {ts} NOT NULL, window_end {ts} NOT NULL,
                activity TEXT NOT NULL, score TEXT NOT NULL, tier TEXT NOT NULL,
                tier_name TEXT, previous TEXT, periods_below INTEGER NOT NULL,
                streak INTEGER NOT NULL, closed INTEGER NOT NULL,
                override TEXT, override_reason TEXT, problem TEXT,
                PRIMARY KEY (network, period, member))""",
            f"""CREATE INDEX IF NOT EXISTS partnerledger_standings_member
                ON {self.t("partnerledger_standings")} (network, member, period_start)""",
        ):
            self.db.execute(statement)

    # -- handling events --------------------------------------------------

    def _touch(
        self, network: str, moment: datetime | None, members: Iterable[str] | None = None
    ) -> None:
        """Mark the network's periods from ``moment`` on (all with ``None``) for recomputing,
        for these members (every member with ``None``).

        A member's standing depends on their own activity and previous standing only
        (the rules see one member's activity), except for what every member shares:
        the network's settings and the meetings held.
        """
        if network not in self._dirty_members:
            self._dirty_members[network] = set()
        wanted = self._dirty_members[network]
        if members is None:
            self._dirty_members[network] = None
        elif wanted is not None:
            wanted.update(members)
        if network in self._dirty and self._dirty[network] is None:
            return
        current = self._dirty.get(network, moment)
        if moment is None or current is None:
            self._dirty[network] = None
        else:
            self._dirty[network] = min(current, moment)

    def _count(
        self, network: str, member: str, when: datetime, field: str, amount: int = 0
    ) -> None:
        key = (network, _day(when), member, field)
        found = self._counts.get(key)
        if found is None:
            self._counts[key] = [0 if field in _AMOUNTS else 1, amount]
        else:
            found[0] += 0 if field in _AMOUNTS else 1
            found[1] += amount

    # -- reading a batch's rows ---------------------------------------------

    def _load_spans(self, keys: list[str]) -> dict[str, list[datetime]]:
        dt = self.db.dt
        return {
            str(network): [dt(first), dt(last)]
            for network, first, last in self.db.select_in(
                f"SELECT network, first_at, last_at FROM {self.t('partnerledger_standing_spans')} "
                "WHERE network {in}",
                (),
                keys,
            )
        }

    def _load_members(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[Any]]:
        found: dict[tuple[str, str], list[Any]] = {}
        for network, members in by_network(keys).items():
            for member, status, first_at, first_position in self.db.select_in(
                "SELECT member, status, first_at, first_position FROM "
                f"{self.t('partnerledger_standing_members')} WHERE network = ? AND member {{in}}",
                (network,),
                members,
            ):
                found[(network, str(member))] = [
                    str(status),
                    self.db.dt(first_at),
                    int(first_position),
                ]
        return found

    def _load_attendance(
        self, keys: list[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], list[Any]]:
        found: dict[tuple[str, str, str], list[Any]] = {}
        for network, meetings in by_network(keys).items():
            for meeting, member, status, occurred_at in self.db.select_in(
                "SELECT meeting, member, status, occurred_at FROM "
                f"{self.t('partnerledger_standing_attendance')} "
                "WHERE network = ? AND meeting {in}",
                (network,),
                meetings,
            ):
                found[(network, str(meeting), str(member))] = [
                    str(status),
                    self.db.dt(occurred_at),
                ]
        return found

    def _load_senders(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        found: dict[tuple[str, str], str] = {}
        for network, referrals in by_network(keys).items():
            for referral, member in self.db.select_in(
                f"SELECT referral, member FROM {self.t('partnerledger_standing_senders')} "
                "WHERE network = ? AND referral {in}",
                (network,),
                referrals,
            ):
                found[(network, str(referral))] = str(member)
        return found

    def prepare(self, events: Sequence[tuple[int, Event]]) -> None:
        networks: list[str] = []
        members: list[tuple[str, str]] = []
        attendance: list[tuple[str, str, str]] = []
        senders: list[tuple[str, str]] = []
        for _, event in events:
            command: Any = event.command
            network: str = command.network
            networks.append(network)
            if isinstance(
                command,
                MemberInvited | MemberJoined | MemberSuspended | MemberReinstated | MemberLeft,
            ):
                members.append((network, command.member))
            elif isinstance(command, MeetingAttended):
                attendance.append((network, command.meeting, command.member))
            elif isinstance(
                command, ReferralSent | ReferralConverted | ReferralReversed | CreditReassigned
            ):
                senders.append((network, command.referral))
        self._span_rows.fetch(networks)
        for network in dict.fromkeys(networks):
            if network not in self._spans:
                row = self._span_rows.rows.get(network)
                self._spans[network] = (row[0], row[1]) if row is not None else None
        self._members.fetch(members)
        self._attendance.fetch(attendance)
        self._senders.fetch(senders)

    def handle(self, position: int, event: Event, networks: Networks) -> None:
        command: Any = event.command
        network: str = command.network
        when: datetime = command.occurred_at
        if event.type in NETWORK_TOPICS:
            self._span(network, when)
            self._touch(network, None)  # plugins, settings or ladder: every period
            return
        if isinstance(command, PeriodClosed | TierDecided | TierOverridden):
            self._record(position, command, networks)
            return
        self._span(network, when)
        self._touch(network, when, self._affected(network, command))
        if isinstance(command, MemberInvited | MemberJoined):
            status = "invited" if isinstance(command, MemberInvited) else "active"
            key = (network, command.member)
            row = self._members.get(key)
            if row is None:
                self._members.put(key, [status, when, position])
            else:
                row[0] = status
                self._members.put(key, row)
        elif isinstance(command, MemberSuspended | MemberReinstated | MemberLeft):
            key = (network, command.member)
            row = self._members.get(key)
            if row is not None:
                row[0] = {MemberSuspended: "suspended", MemberReinstated: "active"}.get(
                    type(command), "left"
                )
                self._members.put(key, row)
        elif isinstance(command, MeetingAttended):
            place = (network, command.meeting, command.member)
            line = self._attendance.get(place)
            if line is not None:  # a correction also changes the period of the line it replaces
                self._touch(network, line[1])
            self._attendance.put(place, [command.status, when])
        elif isinstance(command, ReferralSent):
            key = (network, command.referral)
            if self._senders.get(key) is None:
                self._senders.put(key, command.from_member)
            self._count(network, command.from_member, when, "referrals_given")
            self._count(network, command.to_member, when, "referrals_received")
        elif isinstance(command, ReferralConverted):
            sender = self._senders.get((network, command.referral))
            if sender is not None:
                self._count(network, sender, when, "referrals_given_converted")
                self._count(
                    network, sender, when, "converted_value_given", _units(command.deal_value)
                )
                self._conversions.append((network, position, sender, when))
        elif isinstance(command, CreditReassigned):  # later conversions count for the new member
            key = (network, command.referral)
            if self._senders.get(key) is not None:
                self._senders.put(key, command.to_member)
        elif isinstance(command, ReferralReversed):
            sender = self._senders.get((network, command.referral))
            if sender is not None:
                value = -_units(command.amount)
                self._count(network, sender, when, "converted_value_given", value)
        elif isinstance(command, TyfcbReported):
            self._count(
                network, command.thanked_member, when, "tyfcb_received", _units(command.amount)
            )
        elif isinstance(command, VisitorBrought):
            self._count(network, command.member, when, "visitors")
        elif isinstance(command, TestimonialGiven):
            self._count(network, command.member, when, "testimonials_given")
        elif isinstance(command, TrainingCompleted):
            self._count(network, command.member, when, "trainings")
        elif isinstance(command, OneToOneHeld):
            self._count(network, command.member, when, "one_to_ones")
            self._count(network, command.with_member, when, "one_to_ones")
        elif isinstance(command, IntroductionMade):
            self._count(network, command.introducer, when, "introductions")

    def _affected(self, network: str, command: Any) -> set[str] | None:
        """The members whose standing an event can change (``None``: every member)."""
        if isinstance(
            command,
            MemberInvited | MemberJoined | MemberSuspended | MemberReinstated | MemberLeft,
        ):
            return {command.member}
        if isinstance(command, ReferralSent):
            return {command.from_member, command.to_member}
        if isinstance(command, ReferralConverted | ReferralReversed):
            sender = self._senders.get((network, command.referral))
            return {sender} if sender is not None else set()
        if isinstance(command, CreditReassigned):
            return set()  # only later conversions count differently
        if isinstance(command, TyfcbReported):
            return {command.thanked_member}
        if isinstance(command, VisitorBrought | TestimonialGiven | TrainingCompleted):
            return {command.member}
        if isinstance(command, OneToOneHeld):
            return {command.member, command.with_member}
        if isinstance(command, IntroductionMade):
            return {command.introducer}
        return None  # meetings held (every member's attendance rate), or anything else

    def _span(self, network: str, when: datetime) -> None:
        row = self._span_rows.get(network)
        if network not in self._spans:
            self._spans[network] = (row[0], row[1]) if row is not None else None
        if row is None:
            self._span_rows.put(network, [when, when])
        elif when < row[0] or when > row[1]:
            row[0], row[1] = min(row[0], when), max(row[1], when)
            self._span_rows.put(network, row)

    def _record(
        self,
        position: int,
        command: PeriodClosed | TierDecided | TierOverridden,
        networks: Networks,
    ) -> None:
        """A period close's recorded decisions replace the provisional rows, for good."""
        network = networks.get(command.network)
        assert network is not None
        period = Calendar.of(network).parse(command.period, recorded=True)
        self._touch(command.network, period.end)  # later periods' previous tier changes
        table = self.t("partnerledger_standings")
        if isinstance(command, PeriodClosed):
            self.db.execute(
                f"INSERT INTO {self.t('partnerledger_standing_closed')} (network, period) "
                "VALUES (?, ?) ON CONFLICT DO NOTHING",
                (command.network, command.period),
            )
            # Members without a decision keep no provisional row in a closed period.
            self.db.execute(
                f"DELETE FROM {table} WHERE network = ? AND period = ? AND closed = 0",
                (command.network, command.period),
            )
            return
        if isinstance(command, TierOverridden):
            self.db.execute(
                f"UPDATE {table} SET override = ?, override_reason = ?, tier_name = ? "
                "WHERE network = ? AND period = ? AND member = ?",
                (
                    command.tier,
                    command.reason,
                    command.tier,
                    command.network,
                    command.period,
                    command.member,
                ),
            )
            return
        tier_name = (
            command.tier.value.tier
            if command.tier and isinstance(command.tier.value, TierChoice)
            else None
        )
        score = command.score.value if command.score else None
        ladder = _ladder(network, networks.enabled(command.network))
        kept = (
            tier_name is not None
            and tier_name == command.previous
            and isinstance(score, Score)
            and score.total < ladder.get(tier_name, Decimal("-Infinity"))
        )
        self._write(
            [
                (
                    command.network,
                    command.period,
                    command.member,
                    self.db.ts(period.start),
                    self.db.ts(command.inputs.window.start),
                    self.db.ts(command.inputs.window.end),
                    _encode(command.inputs).decode(),
                    _encode(command.score).decode(),
                    _encode(command.tier).decode(),
                    tier_name,
                    command.previous,
                    command.periods_below,
                    command.periods_below + 1 if kept else 0,
                    1,
                    None,
                    None,
                    None,
                )
            ]
        )

    def _write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        conflict = """ON CONFLICT (network, period, member) DO UPDATE SET
            period_start = excluded.period_start, window_start = excluded.window_start,
            window_end = excluded.window_end, activity = excluded.activity,
            score = excluded.score, tier = excluded.tier, tier_name = excluded.tier_name,
            previous = excluded.previous, periods_below = excluded.periods_below,
            streak = excluded.streak, closed = excluded.closed, override = excluded.override,
            override_reason = excluded.override_reason, problem = excluded.problem"""
        # One statement for the rows (a binary COPY and one upsert on PostgreSQL, not a
        # statement per row); a period's rows are its members', so no key comes twice.
        self.db.insert(
            self.t("partnerledger_standings"),
            ("network", "period", "member", "period_start", "window_start", "window_end",
             "activity", "score", "tier", "tier_name", "previous", "periods_below", "streak",
             "closed", "override", "override_reason", "problem"),
            rows,
            conflict,
        )  # fmt: skip

    # -- writing a batch --------------------------------------------------

    def flush(self, networks: Networks) -> None:
        db = self.db
        ts = db.ts
        counts = self.t("partnerledger_standing_counts")
        db.insert(
            counts,
            ("network", "day", "member", "field", "count", "amount"),
            [(*key, count, amount) for key, (count, amount) in self._counts.items()],
            f"""ON CONFLICT (network, day, member, field) DO UPDATE SET
            count = {counts}.count + excluded.count,
            amount = {counts}.amount + excluded.amount""",
        )
        db.insert(
            self.t("partnerledger_standing_spans"),
            ("network", "first_at", "last_at"),
            [(key, ts(first), ts(last)) for key, (first, last) in self._span_rows.changed()],
            "ON CONFLICT (network) DO UPDATE SET "
            "first_at = excluded.first_at, last_at = excluded.last_at",
        )
        db.insert(
            self.t("partnerledger_standing_members"),
            ("network", "member", "status", "first_at", "first_position"),
            [(*key, row[0], ts(row[1]), row[2]) for key, row in self._members.changed()],
            "ON CONFLICT (network, member) DO UPDATE SET status = excluded.status",
        )
        db.insert(
            self.t("partnerledger_standing_attendance"),
            ("network", "meeting", "member", "status", "occurred_at"),
            [(*key, row[0], ts(row[1])) for key, row in self._attendance.changed()],
            "ON CONFLICT (network, meeting, member) DO UPDATE "
            "SET status = excluded.status, occurred_at = excluded.occurred_at",
        )
        db.insert(
            self.t("partnerledger_standing_senders"),
            ("network", "referral", "member"),
            [(*key, member) for key, member in self._senders.changed()],
            "ON CONFLICT (network, referral) DO UPDATE SET member = excluded.member",
        )
        db.insert(
            self.t("partnerledger_standing_conversions"),
            ("network", "position", "member", "occurred_at"),
            [(n, p, m, ts(at)) for n, p, m, at in self._conversions],
        )
        dirty = self._dirty
        members = self._dirty_members
        before = self._spans
        self.discard()
        for network, since in dirty.items():
            old = before.get(network)
            if since is not None and old is not None and old[1] < since:
                since = old[1]  # the periods between the old end and ``since`` are new
            self._recompute(networks, network, since, members.get(network), old)

    def discard(self) -> None:
        self._counts = {}
        self._dirty = {}
        self._dirty_members = {}
        self._spans = {}
        self._span_rows.clear()
        self._members.clear()
        self._attendance.clear()
        self._senders.clear()
        self._conversions = []

    def _recompute(
        self,
        networks: Networks,
        slug: str,
        since: datetime | None,
        members: set[str] | None = None,
        old: tuple[datetime, datetime] | None = None,
    ) -> None:
        """Decide the network's open periods from ``since`` on again, for ``members``
        (every member with ``None``, or when the batch gave the network new periods)."""
        network = networks.get(slug)
        if network is None:
            return
        found = span(self.db, slug)
        if found is None:
            return
        calendar = Calendar.of(network)
        periods = calendar.between(found[0], found[1])
        if since is not None:
            first = calendar.containing(since)
            periods = [p for p in periods if p.start >= first.start]
        if not periods:
            return
        if members is not None and (
            old is None or calendar.between(old[0], old[1]) != calendar.between(*found)
        ):
            members = None  # a new period: nobody has a row in it yet
        if members is not None and not members:
            return
        only = sorted(members) if members is not None else None
        enabled = networks.enabled(slug)
        closed = closed_periods(self.db, slug)
        previous = {
            s.member: s for s in read_period(self.db, slug, calendar.before(periods[0]).name, only)
        }
        table = self.t("partnerledger_standings")
        for period in periods:
            if period.name in closed:
                previous = {s.member: s for s in read_period(self.db, slug, period.name, only)}
                continue
            decided = compute(self.db, self.rules, network, enabled, period, previous, only)
            if only is None:
                self.db.execute(
                    f"DELETE FROM {table} WHERE network = ? AND period = ?", (slug, period.name)
                )
            else:
                self.db.select_in(
                    f"DELETE FROM {table} WHERE network = ? AND period = ? AND member {{in}}",
                    (slug, period.name),
                    only,
                )
            self._write([_row(self.db, s, period) for s in decided])
            previous = {s.member: s for s in decided}


def _row(db: SqlBackend, s: Standing, period: Period) -> tuple[Any, ...]:
    return (
        s.network,
        s.period,
        s.member,
        db.ts(period.start),
        db.ts(s.window.start),
        db.ts(s.window.end),
        _encode(s.activity).decode(),
        _encode(s.score).decode(),
        _encode(s.tier).decode(),
        s.tier_name,
        s.previous,
        s.periods_below,
        s.streak,
        1 if s.closed else 0,
        s.override,
        s.override_reason,
        s.problem,
    )


def _ladder(network: Network, enabled: dict[str, Any]) -> dict[str, Decimal]:
    """Tier name → threshold: the network's ladder, else a tiering plugin's own."""
    rungs: Iterable[Any] = network.tiers
    if not network.tiers:
        for settings in enabled.values():
            ladder = getattr(settings, "ladder", None)
            if ladder:
                rungs = ladder
                break
    return {tier.name: tier.threshold for tier in rungs}


def span(db: SqlBackend, network: str) -> tuple[datetime, datetime] | None:
    _, rows = db.execute(
        f"SELECT first_at, last_at FROM {db.table('partnerledger_standing_spans')} "
        "WHERE network = ?",
        (network,),
    )
    return (db.dt(rows[0][0]), db.dt(rows[0][1])) if rows else None


def closed_periods(db: SqlBackend, network: str) -> set[str]:
    """The network's closed periods."""
    _, rows = db.execute(
        f"SELECT period FROM {db.table('partnerledger_standing_closed')} WHERE network = ?",
        (network,),
    )
    return {str(r[0]) for r in rows}


# ------------------------------------------------------------------ reading


def activities(
    db: SqlBackend,
    network: str,
    window: Window,
    currency: str,
    only: Sequence[str] | None = None,
) -> dict[str, Activity]:
    """Every member's activity in a window whose ends are midnights UTC, from the view's tables.

    The members are those who appeared (invited or joined) before the
    window's end, in order of appearance; with ``only``, those of them.
    """
    for end in (window.start, window.end):
        if end.astimezone(UTC).time() != datetime.min.time():
            raise ValueError("window: the view sums whole UTC days; start and end at midnight")
    start, end = db.ts(window.start), db.ts(window.end)
    _, members = db.execute(
        f"SELECT member FROM {db.table('partnerledger_standing_members')} "
        "WHERE network = ? AND first_at < ? ORDER BY first_position, member",
        (network, end),
    )
    fields: dict[str, dict[str, Any]] = {str(m[0]): {} for m in members}
    sums = f"""SELECT member, field, SUM(count), SUM(amount)
        FROM {db.table("partnerledger_standing_counts")}
        WHERE network = ? AND day >= ? AND day < ?"""
    days = (network, _day(window.start), _day(window.end))
    if only is None:
        _, counts = db.execute(f"{sums} GROUP BY member, field", days)
    else:
        wanted = set(only)
        fields = {member: found for member, found in fields.items() if member in wanted}
        counts = db.select_in(f"{sums} AND member {{in}} GROUP BY member, field", days, only)
    for member, field, count, amount in counts:
        found = fields.get(str(member))
        if found is None:
            continue
        if field in _AMOUNTS:
            found[str(field)] = Decimal(int(amount)) / UNITS
        else:
            found[str(field)] = int(count)
    attendance = db.table("partnerledger_standing_attendance")
    _, held = db.execute(
        f"SELECT COUNT(DISTINCT meeting) FROM {attendance} "
        "WHERE network = ? AND occurred_at >= ? AND occurred_at < ?",
        (network, start, end),
    )
    _, statuses = db.execute(
        f"SELECT member, status, COUNT(*) FROM {attendance} "
        "WHERE network = ? AND occurred_at >= ? AND occurred_at < ? GROUP BY member, status",
        (network, start, end),
    )
    for member, status, count in statuses:
        if str(member) in fields:
            fields[str(member)][str(status)] = int(count)
    _, last = db.execute(
        f"SELECT member, MAX(occurred_at) FROM {db.table('partnerledger_standing_conversions')} "
        "WHERE network = ? AND occurred_at < ? GROUP BY member",
        (network, end),
    )
    for member, moment in last:
        if str(member) in fields:
            fields[str(member)]["last_conversion_at"] = db.dt(moment)
    meetings = int(held[0][0]) if held else 0
    return {
        member: Activity(
            network=network,
            member=member,
            window=window,
            currency=currency,
            meetings_held=meetings,
            **values,
        )
        for member, values in fields.items()
    }


def compute(
    db: SqlBackend,
    rules: Rules,
    network: Network,
    enabled: dict[str, Any],
    period: Period,
    previous: dict[str, Standing],
    only: Sequence[str] | None = None,
) -> list[Standing]:
    """What the rules given decide for a period, from the view's activity (writes nothing).

    ``previous`` holds the previous period's standings (their tiers and streaks);
    ``only``: decide for these members only.
    """
    window = period_window(rules, enabled, period)
    ladder = _ladder(network, enabled)
    found = []
    members = activities(db, network.network, window, network.currency, only)
    for member, activity in members.items():
        before = previous.get(member)
        held = before.tier_name if before else None
        below = before.streak if before else 0
        found.append(decide(rules, network, enabled, period, activity, held, below, ladder))
    return found


def decide(
    rules: Rules,
    network: Network,
    enabled: dict[str, Any],
    period: Period,
    activity: Activity,
    held: str | None,
    below: int,
    ladder: dict[str, Decimal] | None = None,
) -> Standing:
    """One member's standing in a period: the rules given, on that activity (writes nothing).

    ``held`` is the tier held in the previous period, ``below`` the periods
    already kept in it while below it; a plugin that fails is the ``problem``.
    """
    if ladder is None:
        ladder = _ladder(network, enabled)
    score = tier = None
    problem = None
    try:
        score = rules.score(activity, enabled)
        if score is not None and isinstance(score.value, Score):
            tier = rules.tier(
                score.value, network.tiers, enabled, previous=held, periods_below=below
            )
    except PluginFailed as error:
        problem = error.reason
    value = score.value if score else None
    name = tier.value.tier if tier and isinstance(tier.value, TierChoice) else None
    kept = (
        name is not None
        and name == held
        and isinstance(value, Score)
        and value.total < ladder.get(name, Decimal("-Infinity"))
    )
    return Standing(
        network=activity.network,
        period=period.name,
        member=activity.member,
        status="",
        window=activity.window,
        activity=activity,
        score=score,
        tier=tier,
        previous=held,
        periods_below=below,
        streak=below + 1 if kept else 0,
        closed=False,
        problem=problem,
    )


_COLUMNS = (
    "s.network, s.period, s.member, m.status, s.window_start, s.window_end, s.activity, "
    "s.score, s.tier, s.previous, s.periods_below, s.streak, s.closed, s.override, "
    "s.override_reason, s.problem"
)


def _standing(db: SqlBackend, row: Sequence[Any]) -> Standing:
    return Standing(
        network=str(row[0]),
        period=str(row[1]),
        member=str(row[2]),
        status=str(row[3] or ""),
        window=Window(start=db.dt(row[4]), end=db.dt(row[5])),
        activity=_activity(row[6]),
        score=_decision(row[7]),
        tier=_decision(row[8]),
        previous=row[9],
        periods_below=int(row[10]),
        streak=int(row[11]),
        closed=bool(row[12]),
        override=row[13],
        override_reason=row[14],
        problem=row[15],
    )


def read_period(
    db: SqlBackend,
    network: str,
    period: str,
    member: str | Sequence[str] | None = None,
) -> list[Standing]:
    """The stored standings of one period (in order of members' appearance): every
    member's, one member's, or those of a list of members."""
    sql = (
        f"SELECT {_COLUMNS} FROM {db.table('partnerledger_standings')} s "
        f"LEFT JOIN {db.table('partnerledger_standing_members')} m "
        "ON m.network = s.network AND m.member = s.member "
        "WHERE s.network = ? AND s.period = ?"
    )
    params: list[Any] = [network, period]
    if member is None or isinstance(member, str):
        if isinstance(member, str):
            sql += " AND s.member = ?"
            params.append(member)
        _, rows = db.execute(sql + " ORDER BY m.first_position, s.member", params)
        found = [_standing(db, row) for row in rows]
    else:
        rows = db.select_in(sql + " AND s.member {in}", params, member)
        found = sorted(
            (_standing(db, row) for row in rows), key=lambda s: s.member
        )  # by member: the caller keys them by member
    return found


def history(db: SqlBackend, network: str, member: str) -> list[Standing]:
    """One member's standing in every period, oldest first."""
    _, rows = db.execute(
        f"SELECT {_COLUMNS} FROM {db.table('partnerledger_standings')} s "
        f"LEFT JOIN {db.table('partnerledger_standing_members')} m "
        "ON m.network = s.network AND m.member = s.member "
        "WHERE s.network = ? AND s.member = ? ORDER BY s.period_start",
        (network, member),
    )
    return [_standing(db, row) for row in rows]


def standings(
    db: SqlBackend,
    rules: Rules,
    network: Network,
    period: Period,
    *,
    member: str | None = None,
) -> list[Standing]:
    """Every member's standing in a period: stored rows, else computed now (for later periods)."""
    found = read_period(db, network.network, period.name, member)
    if found or period.name in closed_periods(db, network.network):
        return found
    calendar = Calendar.of(network)
    enabled = Networks(rules, {network.network: network}).enabled(network.network)
    previous = {s.member: s for s in read_period(db, network.network, calendar.before(period).name)}
    computed = compute(db, rules, network, enabled, period, previous)
    status_of = statuses(db, network.network)
    result = [replace(s, status=status_of.get(s.member, "")) for s in computed]
    if member is not None:
        result = [s for s in result if s.member == member]
        if not result:
            raise NotFound("member", f"no member {member!r} in network {network.network!r}")
    return result


def statuses(db: SqlBackend, network: str) -> dict[str, str]:
    """Every member's status now."""
    _, rows = db.execute(
        f"SELECT member, status FROM {db.table('partnerledger_standing_members')} "
        "WHERE network = ?",
        (network,),
    )
    return {str(m): str(s) for m, s in rows}


__all__ = [
    "Standing",
    "Standings",
    "activities",
    "closed_periods",
    "compute",
    "decide",
    "history",
    "inputs_digest",
    "period_window",
    "read_period",
    "standings",
]
