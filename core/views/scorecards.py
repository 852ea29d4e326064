"""Partnership scorecards: what each pair of members gives and gets (a relationship value matrix).

The :class:`Scorecards` projection keeps, for every network, the counts of
each *direction* (member → partner): referrals sent, accepted and converted,
the deal values converted and the amounts reversed since; for every *pair*
of members the first and last time they interacted; and what it needs to
know about referrals (who sent which to whom, and when) and agreements
(parties, status, targets, when they took effect, when a pilot ends).

:func:`scorecards` reads those tables and computes everything that depends
on "now" (days since the last interaction, months of the relationship,
value per month, agreement progress, the flags) at query time from the
stored times, so rebuilding the view never changes a figure.

The exact definition of every figure and flag is in ``docs/scorecards.md``;
in short:

* **interaction**: a ``referral.sent`` either way, an ``introduction.made``
  involving both members (introducer, introduced and the member introduced
  to: every pair of them), a ``one_to_one.held`` between them; its time is the
  business time (``occurred_at``).
* **converted value** of a direction: the deal values of its converted
  referrals minus every amount reversed on them since (refunds, clawbacks).
  A referral that converted stays counted as converted when it is reversed.
* **conversion rate**: converted ÷ sent (``None`` when nothing was sent).
* **credit reassigned**: after a dispute's ``credit.reassigned``, the
  referral counts, in full (sent, accepted, converted, values), in the
  direction of the member now credited, and that pair interacted when it
  was sent.
* **months of the relationship**: the calendar months (UTC) that the span
  from the pair's first interaction up to ``as_of`` touches, each begun month
  counting as one: a first referral on 6 January and ``as_of`` 1 January of
  the next year (00:00) make 12 months. Value per month is the converted
  value ÷ those months; value per year is twelve times that.
* **agreement progress**: referrals exchanged between the pair (both ways)
  since the agreement took effect, per *whole* month elapsed since then, and
  their conversion rate, against the terms' targets.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar

from ..commands import (
    PROGRAM,
    AgreementAccepted,
    AgreementActivated,
    AgreementAmended,
    AgreementCommand,
    AgreementExpired,
    AgreementProposed,
    AgreementRenewed,
    AgreementTerminated,
    CreditReassigned,
    IntroductionMade,
    MemberInvited,
    MemberJoined,
    NetworkCreated,
    OneToOneHeld,
    ReferralAccepted,
    ReferralConverted,
    ReferralReversed,
    ReferralSent,
    Terms,
    command_type,
)
from ..errors import InvalidCommand, NotFound
from ..events import Event
from ..projection import BatchRows, Networks, Projection, by_network, projection
from ..replay import LIVE
from ..sql import SqlBackend
from ..types import MAX_DAYS, OUT_OF_RANGE, in_range

#: Days before a pilot's end from which a pair is flagged ``pilot_ending``.
PILOT_ENDING_DAYS = 14
#: Default number of days without an interaction after which a pair is dormant.
DORMANT_DAYS = 90

NETWORKS = "partnerledger_scorecard_networks"
MEMBERS = "partnerledger_scorecard_members"
REFERRALS = "partnerledger_scorecard_referrals"
FLOWS = "partnerledger_scorecard_flows"
PAIRS = "partnerledger_scorecard_pairs"
AGREEMENTS = "partnerledger_scorecard_agreements"
PARTIES = "partnerledger_scorecard_parties"

_CENT = Decimal("0.01")
_RATE = Decimal("0.0001")
_ZERO = Decimal(0)


# ---------------------------------------------------------------- the view


@projection
class Scorecards(Projection):
    """Per direction and per pair of members: referral counts, values, interaction times."""

    name = "scorecards"
    version = 1
    tables: ClassVar[tuple[str, ...]] = (
        NETWORKS,
        MEMBERS,
        REFERRALS,
        FLOWS,
        PAIRS,
        AGREEMENTS,
        PARTIES,
    )
    topics: ClassVar[tuple[str, ...]] = tuple(
        command_type(cls)
        for cls in (
            NetworkCreated,
            MemberInvited,
            MemberJoined,
            ReferralSent,
            ReferralAccepted,
            ReferralConverted,
            ReferralReversed,
            IntroductionMade,
            OneToOneHeld,
            AgreementProposed,
            AgreementAccepted,
            AgreementActivated,
            AgreementAmended,
            AgreementRenewed,
            AgreementTerminated,
            AgreementExpired,
            CreditReassigned,
        )
    )

    def create(self) -> None:
        ts = self.db.timestamp
        statements = (
            f"""CREATE TABLE IF NOT EXISTS {self.t(NETWORKS)} (
                network TEXT PRIMARY KEY,
                currency TEXT NOT NULL
            )""",
            f"""CREATE TABLE IF NOT EXISTS {self.t(MEMBERS)} (
                network TEXT NOT NULL,
                member TEXT NOT NULL,
                PRIMARY KEY (network, member)
            )""",
            f"""CREATE TABLE IF NOT EXISTS {self.t(REFERRALS)} (
                network TEXT NOT NULL,
                referral TEXT NOT NULL,
                from_member TEXT NOT NULL,
                to_member TEXT NOT NULL,
                sent_at {ts} NOT NULL,
                accepted_at {ts},
                converted_at {ts},
                deal_value TEXT,
                reversed_value TEXT NOT NULL,
                PRIMARY KEY (network, referral)
            )""",
            f"""CREATE INDEX IF NOT EXISTS partnerledger_scorecard_referrals_pair
                ON {self.t(REFERRALS)} (network, from_member, to_member, sent_at)""",
            f"""CREATE TABLE IF NOT EXISTS {self.t(FLOWS)} (
                network TEXT NOT NULL,
                member TEXT NOT NULL,
                partner TEXT NOT NULL,
                sent INTEGER NOT NULL,
                accepted INTEGER NOT NULL,
                converted INTEGER NOT NULL,
                deal_value TEXT NOT NULL,
                reversed_value TEXT NOT NULL,
                PRIMARY KEY (network, member, partner)
            )""",
            f"""CREATE TABLE IF NOT EXISTS {self.t(PAIRS)} (
                network TEXT NOT NULL,
                member_a TEXT NOT NULL,
                member_b TEXT NOT NULL,
                first_interaction_at {ts},
                last_interaction_at {ts},
                introductions INTEGER NOT NULL,
                one_to_ones INTEGER NOT NULL,
                PRIMARY KEY (network, member_a, member_b)
            )""",
            f"""CREATE TABLE IF NOT EXISTS {self.t(AGREEMENTS)} (
                network TEXT NOT NULL,
                agreement TEXT NOT NULL,
                position BIGINT NOT NULL,
                kind TEXT NOT NULL,
                status TEXT NOT NULL,
                proposed_at {ts} NOT NULL,
                pilot_days INTEGER,
                effective_at {ts},
                pilot_ends_at {ts},
                referrals_per_month INTEGER,
                conversion_rate TEXT,
                PRIMARY KEY (network, agreement)
            )""",
            f"""CREATE TABLE IF NOT EXISTS {self.t(PARTIES)} (
                network TEXT NOT NULL,
                agreement TEXT NOT NULL,
                party TEXT NOT NULL,
                accepted INTEGER NOT NULL,
                PRIMARY KEY (network, agreement, party)
            )""",
        )
        for statement in statements:
            self.db.execute(statement)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        # The batch's rows, read once and written once (see Projection.prepare/flush).
        self._networks: dict[str, str] = {}
        self._members: dict[tuple[str, str], None] = {}
        self._referrals: BatchRows[tuple[str, str], list[Any]] = BatchRows(self._load_referrals)
        self._flows: BatchRows[tuple[str, str, str], list[Any]] = BatchRows(self._load_flows)
        self._pairs: BatchRows[tuple[str, str, str], list[Any]] = BatchRows(self._load_pairs)
        self._agreements: BatchRows[tuple[str, str], list[Any]] = BatchRows(self._load_agreements)
        self._parties: BatchRows[tuple[str, str], dict[str, int]] = BatchRows(self._load_parties)

    # -- reading a batch's rows ----------------------------------------------

    def _load_referrals(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[Any]]:
        found: dict[tuple[str, str], list[Any]] = {}
        dt = self.db.dt
        for network, slugs in by_network(keys).items():
            for (
                slug,
                sender,
                receiver,
                sent,
                accepted,
                converted,
                deal,
                reversed_value,
            ) in self.db.select_in(
                f"SELECT referral, from_member, to_member, sent_at, accepted_at, "
                f"converted_at, deal_value, reversed_value FROM {self.t(REFERRALS)} "
                "WHERE network = ? AND referral {in}",
                (network,),
                slugs,
            ):
                found[(network, str(slug))] = [
                    str(sender),
                    str(receiver),
                    dt(sent),
                    dt(accepted) if accepted is not None else None,
                    dt(converted) if converted is not None else None,
                    str(deal) if deal is not None else None,
                    str(reversed_value),
                ]
        return found

    def _load_flows(
        self, keys: list[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], list[Any]]:
        found: dict[tuple[str, str, str], list[Any]] = {}
        wanted = set(keys)  # the query reads every partner of the members: keep those asked
        for network, members in by_network(keys).items():
            for (
                member,
                partner,
                sent,
                accepted,
                converted,
                deal,
                reversed_value,
            ) in self.db.select_in(
                f"SELECT member, partner, sent, accepted, converted, deal_value, "
                f"reversed_value FROM {self.t(FLOWS)} WHERE network = ? AND member {{in}}",
                (network,),
                members,
            ):
                key = (network, str(member), str(partner))
                if key not in wanted:
                    continue
                found[key] = [
                    int(sent),
                    int(accepted),
                    int(converted),
                    str(deal),
                    str(reversed_value),
                ]
        return found

    def _load_pairs(
        self, keys: list[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], list[Any]]:
        found: dict[tuple[str, str, str], list[Any]] = {}
        dt = self.db.dt
        wanted = set(keys)  # the query reads every pair of the members: keep those asked
        for network, members in by_network(keys).items():
            for a, b, first, last, introductions, one_to_ones in self.db.select_in(
                f"SELECT member_a, member_b, first_interaction_at, last_interaction_at, "
                f"introductions, one_to_ones FROM {self.t(PAIRS)} "
                "WHERE network = ? AND member_a {in}",
                (network,),
                members,
            ):
                key = (network, str(a), str(b))
                if key not in wanted:
                    continue
                found[key] = [
                    dt(first) if first is not None else None,
                    dt(last) if last is not None else None,
                    int(introductions),
                    int(one_to_ones),
                ]
        return found

    def _load_agreements(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[Any]]:
        found: dict[tuple[str, str], list[Any]] = {}
        dt = self.db.dt
        for network, slugs in by_network(keys).items():
            for row in self.db.select_in(
                f"SELECT agreement, position, kind, status, proposed_at, pilot_days, "
                f"effective_at, pilot_ends_at, referrals_per_month, conversion_rate "
                f"FROM {self.t(AGREEMENTS)} WHERE network = ? AND agreement {{in}}",
                (network,),
                slugs,
            ):
                found[(network, str(row[0]))] = [
                    int(row[1]),
                    str(row[2]),
                    str(row[3]),
                    dt(row[4]),
                    int(row[5]) if row[5] is not None else None,
                    dt(row[6]) if row[6] is not None else None,
                    dt(row[7]) if row[7] is not None else None,
                    int(row[8]) if row[8] is not None else None,
                    str(row[9]) if row[9] is not None else None,
                ]
        return found

    def _load_parties(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, int]]:
        found: dict[tuple[str, str], dict[str, int]] = {}
        for network, slugs in by_network(keys).items():
            for slug, party, accepted in self.db.select_in(
                f"SELECT agreement, party, accepted FROM {self.t(PARTIES)} "
                "WHERE network = ? AND agreement {in}",
                (network,),
                slugs,
            ):
                found.setdefault((network, str(slug)), {})[str(party)] = int(accepted)
        return found

    def prepare(self, events: Sequence[tuple[int, Event]]) -> None:
        referrals: list[tuple[str, str]] = []
        agreements: list[tuple[str, str]] = []
        for _, event in events:
            command = event.command
            if isinstance(
                command,
                ReferralSent | ReferralAccepted | ReferralConverted | ReferralReversed
                | CreditReassigned,
            ):  # fmt: skip
                referrals.append((command.network, command.referral))
            elif isinstance(command, AgreementCommand):
                agreements.append((command.network, command.agreement))
        self._referrals.fetch(referrals)
        self._agreements.fetch(agreements)
        self._parties.fetch(agreements)
        # The directions and pairs the batch will change, from what it sends and what was sent.
        flows: list[tuple[str, str, str]] = []
        pairs: list[tuple[str, str, str]] = []

        def pair(network: str, a: str, b: str) -> None:
            first, second = sorted((a, b))
            pairs.append((network, first, second))

        for key, row in self._referrals.rows.items():
            if row is not None:
                flows.append((key[0], row[0], row[1]))
        for _, event in events:
            command = event.command
            network = command.network
            if isinstance(command, ReferralSent):
                flows.append((network, command.from_member, command.to_member))
                pair(network, command.from_member, command.to_member)
            elif isinstance(command, CreditReassigned):
                row = self._referrals.rows.get((network, command.referral))
                if row is not None:
                    flows.append((network, command.to_member, row[1]))
                    pair(network, command.to_member, row[1])
            elif isinstance(command, IntroductionMade):
                involved = [command.introducer, command.introduced]
                if command.to_member:
                    involved.append(command.to_member)
                for i, a in enumerate(involved):
                    for b in involved[i + 1 :]:
                        pair(network, a, b)
            elif isinstance(command, OneToOneHeld):
                pair(network, command.member, command.with_member)
            elif isinstance(command, AgreementProposed):
                members = [p for p in command.parties if p != PROGRAM]
                for i, a in enumerate(members):
                    for b in members[i + 1 :]:
                        pair(network, a, b)
        self._flows.fetch(flows)
        self._pairs.fetch(pairs)

    # -- handling events -----------------------------------------------------

    def handle(self, position: int, event: Event, networks: Networks) -> None:
        command = event.command
        network = command.network
        at = command.occurred_at
        if isinstance(command, NetworkCreated):
            self._networks.setdefault(network, command.currency)
        elif isinstance(command, MemberInvited | MemberJoined):
            self._members[(network, command.member)] = None
        elif isinstance(command, ReferralSent):
            self._sent(network, command, at)
        elif isinstance(command, ReferralAccepted | ReferralConverted | ReferralReversed):
            self._referral_moved(network, command, at)
        elif isinstance(command, CreditReassigned):
            self._reassigned(network, command)
        elif isinstance(command, IntroductionMade):
            involved = [command.introducer, command.introduced]
            if command.to_member:
                involved.append(command.to_member)
            for i, a in enumerate(involved):
                for b in involved[i + 1 :]:
                    self._touch(network, a, b, at, introductions=1)
        elif isinstance(command, OneToOneHeld):
            self._touch(network, command.member, command.with_member, at, one_to_ones=1)
        elif isinstance(command, AgreementCommand):
            self._agreement(position, network, command, at)

    # -- referrals -----------------------------------------------------------

    def _sent(self, network: str, command: ReferralSent, at: datetime) -> None:
        key = (network, command.referral)
        if self._referrals.get(key) is None:  # the first one sent stays
            self._referrals.put(
                key, [command.from_member, command.to_member, at, None, None, None, "0"]
            )
        self._flow(network, command.from_member, command.to_member, sent=1)
        self._touch(network, command.from_member, command.to_member, at)

    def _referral_moved(
        self,
        network: str,
        command: ReferralAccepted | ReferralConverted | ReferralReversed,
        at: datetime,
    ) -> None:
        key = (network, command.referral)
        row = self._referrals.get(key)
        if row is None:  # the log only holds moves of referrals it sent first
            return
        sender, receiver = row[0], row[1]
        if isinstance(command, ReferralAccepted):
            row[3] = at
            self._flow(network, sender, receiver, accepted=1)
        elif isinstance(command, ReferralConverted):
            row[4] = at
            row[5] = str(command.deal_value)
            self._flow(network, sender, receiver, converted=1, deal_value=command.deal_value)
        else:
            row[6] = str(Decimal(row[6]) + command.amount)
            self._flow(network, sender, receiver, reversed_value=command.amount)
        self._referrals.put(key, row)

    def _reassigned(self, network: str, command: CreditReassigned) -> None:
        """A dispute moved the referral's credit: from now on it is the new member's, in full."""
        key = (network, command.referral)
        row = self._referrals.get(key)
        if row is None:
            return
        sender, receiver, sent_at, accepted_at, converted_at, deal, reversed_value = row
        counts = {
            "sent": 1,
            "accepted": 1 if accepted_at is not None else 0,
            "converted": 1 if converted_at is not None else 0,
        }
        deal_value = Decimal(deal) if deal is not None else _ZERO
        reversed_total = Decimal(reversed_value)
        self._flow(
            network, sender, receiver, **{k: -v for k, v in counts.items()},
            deal_value=-deal_value, reversed_value=-reversed_total,
        )  # fmt: skip
        self._flow(
            network, command.to_member, receiver, **counts,
            deal_value=deal_value, reversed_value=reversed_total,
        )  # fmt: skip
        row[0] = command.to_member
        self._referrals.put(key, row)
        self._touch(network, command.to_member, receiver, sent_at)

    def _flow(
        self,
        network: str,
        member: str,
        partner: str,
        *,
        sent: int = 0,
        accepted: int = 0,
        converted: int = 0,
        deal_value: Decimal = _ZERO,
        reversed_value: Decimal = _ZERO,
    ) -> None:
        """Add to the counts and sums of one direction, member → partner."""
        key = (network, member, partner)
        row = self._flows.get(key)
        if row is None:
            self._flows.put(key, [sent, accepted, converted, str(deal_value), str(reversed_value)])
            return
        row[0] += sent
        row[1] += accepted
        row[2] += converted
        row[3] = str(Decimal(row[3]) + deal_value)
        row[4] = str(Decimal(row[4]) + reversed_value)
        self._flows.put(key, row)

    # -- interactions ---------------------------------------------------------

    def _touch(
        self,
        network: str,
        a: str,
        b: str,
        at: datetime | None,
        *,
        introductions: int = 0,
        one_to_ones: int = 0,
    ) -> None:
        """Record an interaction of a pair at ``at`` (``None``: make sure the pair exists)."""
        if a == b:
            return
        first, second = sorted((a, b))
        key = (network, first, second)
        row = self._pairs.get(key)
        if row is None:
            self._pairs.put(key, [at, at, introductions, one_to_ones])
            return
        if at is None:
            return
        old_first, old_last = row[0], row[1]
        row[0] = at if old_first is None or at < old_first else old_first
        row[1] = at if old_last is None or at > old_last else old_last
        row[2] += introductions
        row[3] += one_to_ones
        self._pairs.put(key, row)

    # -- agreements -----------------------------------------------------------

    def _agreement(
        self, position: int, network: str, command: AgreementCommand, at: datetime
    ) -> None:
        key = (network, command.agreement)
        if isinstance(command, AgreementProposed):
            targets = _targets(command.terms)
            if self._agreements.get(key) is None:
                pilot_days = command.pilot.days if command.pilot is not None else None
                self._agreements.put(
                    key,
                    [position, command.kind, "proposed", at, pilot_days, None, None, *targets],
                )
            parties = self._parties.get(key)
            parties = dict(parties) if parties is not None else {}
            for party in command.parties:
                parties.setdefault(party, 0)
            self._parties.put(key, parties)
            members = [p for p in command.parties if p != PROGRAM]
            for i, a in enumerate(members):
                for b in members[i + 1 :]:
                    self._touch(network, a, b, None)
            return
        row = self._agreements.get(key)
        if row is None:
            return
        status, pilot_days = row[2], row[4]
        if isinstance(command, AgreementAccepted):
            parties = self._parties.get(key) or {}
            if command.party in parties:
                parties[command.party] = 1
                self._parties.put(key, parties)
            if all(parties.values()):
                pilot_ends = at + timedelta(days=int(pilot_days)) if pilot_days else None
                row[2] = "pilot" if pilot_ends is not None else "active"
                row[5] = at
                row[6] = pilot_ends
        elif isinstance(command, AgreementAmended):
            per_month, rate = _targets(command.terms)
            row[7], row[8] = per_month, rate
            row[2] = status if status == "pilot" else "amended"
        elif isinstance(command, AgreementActivated | AgreementRenewed):
            row[2] = "active" if isinstance(command, AgreementActivated) else "renewed"
        elif isinstance(command, AgreementTerminated | AgreementExpired):
            row[2] = "terminated" if isinstance(command, AgreementTerminated) else "expired"
        self._agreements.put(key, row)

    # -- writing a batch ------------------------------------------------------

    def flush(self, networks: Networks) -> None:
        db = self.db
        ts = db.ts
        db.insert(
            self.t(NETWORKS),
            ("network", "currency"),
            list(self._networks.items()),
            "ON CONFLICT DO NOTHING",
        )
        db.insert(
            self.t(MEMBERS), ("network", "member"), list(self._members), "ON CONFLICT DO NOTHING"
        )
        db.insert(
            self.t(REFERRALS),
            ("network", "referral", "from_member", "to_member", "sent_at", "accepted_at",
             "converted_at", "deal_value", "reversed_value"),
            [
                (*key, r[0], r[1], ts(r[2]), _ts(db, r[3]), _ts(db, r[4]), r[5], r[6])
                for key, r in self._referrals.changed()
            ],
            _upsert(("network", "referral"), ("from_member", "to_member", "sent_at",
                    "accepted_at", "converted_at", "deal_value", "reversed_value")),
        )  # fmt: skip
        db.insert(
            self.t(FLOWS),
            ("network", "member", "partner", "sent", "accepted", "converted", "deal_value",
             "reversed_value"),
            [(*key, *row) for key, row in self._flows.changed()],
            _upsert(("network", "member", "partner"),
                    ("sent", "accepted", "converted", "deal_value", "reversed_value")),
        )  # fmt: skip
        db.insert(
            self.t(PAIRS),
            ("network", "member_a", "member_b", "first_interaction_at", "last_interaction_at",
             "introductions", "one_to_ones"),
            [
                (*key, _ts(db, r[0]), _ts(db, r[1]), r[2], r[3])
                for key, r in self._pairs.changed()
            ],
            _upsert(("network", "member_a", "member_b"),
                    ("first_interaction_at", "last_interaction_at", "introductions",
                     "one_to_ones")),
        )  # fmt: skip
        db.insert(
            self.t(AGREEMENTS),
            ("network", "agreement", "position", "kind", "status", "proposed_at", "pilot_days",
             "effective_at", "pilot_ends_at", "referrals_per_month", "conversion_rate"),
            [
                (*key, r[0], r[1], r[2], ts(r[3]), r[4], _ts(db, r[5]), _ts(db, r[6]), r[7], r[8])
                for key, r in self._agreements.changed()
            ],
            _upsert(("network", "agreement"),
                    ("position", "kind", "status", "proposed_at", "pilot_days", "effective_at",
                     "pilot_ends_at", "referrals_per_month", "conversion_rate")),
        )  # fmt: skip
        db.insert(
            self.t(PARTIES),
            ("network", "agreement", "party", "accepted"),
            [
                (*key, party, accepted)
                for key, parties in self._parties.changed()
                for party, accepted in parties.items()
            ],
            _upsert(("network", "agreement", "party"), ("accepted",)),
        )
        self.discard()

    def discard(self) -> None:
        self._networks = {}
        self._members = {}
        for rows in (self._referrals, self._flows, self._pairs, self._agreements):
            rows.clear()
        self._parties.clear()


def _ts(db: SqlBackend, moment: datetime | None) -> Any:
    return db.ts(moment) if moment is not None else None


def _upsert(key: Sequence[str], columns: Sequence[str]) -> str:
    """``ON CONFLICT (key) DO UPDATE`` setting ``columns`` to the row inserted."""
    sets = ", ".join(f"{c} = excluded.{c}" for c in columns)
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"


def _targets(terms: Terms) -> tuple[int | None, str | None]:
    targets = terms.targets
    if targets is None:
        return None, None
    rate = targets.conversion_rate
    return targets.referrals_per_month, str(rate) if rate is not None else None


# ---------------------------------------------------------------- figures


@dataclass(frozen=True)
class Flow:
    """One direction of a pair: the referrals one member sent the other, and what they became."""

    sent: int
    accepted: int
    converted: int
    #: converted ÷ sent, to 4 decimal places; ``None`` when nothing was sent
    conversion_rate: Decimal | None
    #: the deal values of the converted referrals, as converted
    deal_value: Decimal
    #: the amounts reversed on them since (refunds, clawbacks)
    reversed_value: Decimal
    #: deal value minus reversed value
    converted_value: Decimal
    #: converted value ÷ converted, to the cent; ``None`` when nothing converted
    average_deal: Decimal | None
    #: converted value ÷ months of the relationship, to the cent
    value_per_month: Decimal
    #: twelve times the exact value per month, to the cent
    value_per_year: Decimal

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: money as strings with two decimals, rates as numbers."""
        return {
            "sent": self.sent,
            "accepted": self.accepted,
            "converted": self.converted,
            "conversion_rate": _rate_json(self.conversion_rate),
            "deal_value": money(self.deal_value),
            "reversed_value": money(self.reversed_value),
            "converted_value": money(self.converted_value),
            "average_deal": money(self.average_deal) if self.average_deal is not None else None,
            "value_per_month": money(self.value_per_month),
            "value_per_year": money(self.value_per_year),
        }


@dataclass(frozen=True)
class Reciprocity:
    """Given against received: referrals and converted value, from the member's side."""

    given: int
    received: int
    #: given - received
    balance: int
    #: given ÷ received, to 4 decimal places; ``None`` when nothing was received
    ratio: Decimal | None
    value_given: Decimal
    value_received: Decimal
    #: value given - value received
    value_balance: Decimal

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: money as strings with two decimals, the ratio as a number."""
        return {
            "given": self.given,
            "received": self.received,
            "balance": self.balance,
            "ratio": _rate_json(self.ratio),
            "value_given": money(self.value_given),
            "value_received": money(self.value_received),
            "value_balance": money(self.value_balance),
        }


@dataclass(frozen=True)
class Progress:
    """The pair's agreement (its latest live one) against its lead-flow targets."""

    agreement: str
    kind: str
    status: str
    effective_at: datetime
    pilot_ends_at: datetime | None
    #: whole months elapsed since the agreement took effect, at least 1
    months: int
    #: referrals exchanged between the pair (both ways) since it took effect
    referrals: int
    #: how many of those converted
    converted: int
    #: referrals ÷ months, to 4 decimal places
    referrals_per_month: Decimal
    target_referrals_per_month: int | None
    #: converted ÷ referrals, to 4 decimal places; ``None`` before any referral
    conversion_rate: Decimal | None
    target_conversion_rate: Decimal | None
    #: whether the targets are judged yet (a whole month has elapsed since it took effect)
    judged: bool
    below_referrals: bool
    below_conversion: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: times in ISO 8601 UTC, rates and counts per month as numbers."""
        target_rate = self.target_conversion_rate
        return {
            "agreement": self.agreement,
            "kind": self.kind,
            "status": self.status,
            "effective_at": _time(self.effective_at),
            "pilot_ends_at": _time(self.pilot_ends_at),
            "months": self.months,
            "referrals": self.referrals,
            "converted": self.converted,
            "referrals_per_month": _rate_json(self.referrals_per_month),
            "target_referrals_per_month": self.target_referrals_per_month,
            "conversion_rate": _rate_json(self.conversion_rate),
            "target_conversion_rate": _rate_json(target_rate),
            "judged": self.judged,
            "below_referrals": self.below_referrals,
            "below_conversion": self.below_conversion,
        }


@dataclass(frozen=True)
class Flags:
    """What needs a coordinator's attention."""

    #: referrals went one way only: one side sent some, the other none
    one_sided: bool
    #: no interaction for at least ``dormant_days`` days before ``as_of``
    dormant: bool
    #: a pilot of theirs ends within 14 days after ``as_of``
    pilot_ending: bool
    #: their agreement is below a target (referrals per month or conversion rate)
    below_target: bool

    def names(self) -> list[str]:
        """The raised flags, as the table shows them."""
        return [
            label
            for label, raised in (
                ("one-sided", self.one_sided),
                ("dormant", self.dormant),
                ("pilot-ending", self.pilot_ending),
                ("below-target", self.below_target),
            )
            if raised
        ]

    def as_dict(self) -> dict[str, bool]:
        """Each flag by name."""
        return {
            "one_sided": self.one_sided,
            "dormant": self.dormant,
            "pilot_ending": self.pilot_ending,
            "below_target": self.below_target,
        }


@dataclass(frozen=True)
class Scorecard:
    """One pair of members, seen from ``member``'s side (``partner`` is the other)."""

    network: str
    member: str
    partner: str
    currency: str
    as_of: datetime
    dormant_days: int
    #: member → partner
    given: Flow
    #: partner → member
    received: Flow
    reciprocity: Reciprocity
    first_interaction_at: datetime | None
    last_interaction_at: datetime | None
    #: whole days from the last interaction to ``as_of`` (never below 0)
    days_since_last_interaction: int | None
    introductions: int
    one_to_ones: int
    #: calendar months touched from the first interaction up to ``as_of`` (at least 1)
    months_active: int
    agreement: Progress | None
    flags: Flags

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data: money as strings with two decimals, rates as numbers."""
        return {
            "network": self.network,
            "member": self.member,
            "partner": self.partner,
            "currency": self.currency,
            "as_of": _time(self.as_of),
            "dormant_days": self.dormant_days,
            "given": self.given.as_dict(),
            "received": self.received.as_dict(),
            "reciprocity": self.reciprocity.as_dict(),
            "first_interaction_at": _time(self.first_interaction_at),
            "last_interaction_at": _time(self.last_interaction_at),
            "days_since_last_interaction": self.days_since_last_interaction,
            "introductions": self.introductions,
            "one_to_ones": self.one_to_ones,
            "months_active": self.months_active,
            "agreement": self.agreement.as_dict() if self.agreement is not None else None,
            "flags": self.flags.as_dict(),
        }


def money(value: Decimal) -> str:
    """Money as text with exactly two decimals (half up): ``"20000.00"``."""
    return f"{value.quantize(_CENT, rounding=ROUND_HALF_UP):f}"


def rate(numerator: Decimal | int, denominator: Decimal | int) -> Decimal | None:
    """``numerator / denominator`` to 4 decimal places (half up); ``None`` when dividing by 0."""
    if not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(_RATE, rounding=ROUND_HALF_UP)


def _rate_json(value: Decimal | None) -> float | None:
    # A rate has at most 4 decimal places, which a float's shortest repr keeps
    # exactly in JSON (0.4, 0.3333); money is never a float.
    return float(value) if value is not None else None


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def calendar_months(start: datetime, end: datetime) -> int:
    """The calendar months (UTC) that ``[start, end)`` touches; at least 1.

    Each begun month counts as one: 6 January to 1 January of the next year
    (00:00) is 12; 6 January to 2 January of the next year is 13.
    """
    start = start.astimezone(UTC)
    last = max(start, end.astimezone(UTC) - timedelta(microseconds=1))
    return (last.year - start.year) * 12 + last.month - start.month + 1


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus ``months`` calendar months, its day clamped to the month's length."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def whole_months(start: datetime, end: datetime) -> int:
    """Whole calendar months from ``start`` to ``end`` (monthly anniversaries passed); may be 0.

    The anniversary keeps ``start``'s day and time, clamped to the month's
    length (a month after 31 January is the end of February).
    """
    start = start.astimezone(UTC)
    end = end.astimezone(UTC)
    months = (end.year - start.year) * 12 + end.month - start.month
    while months > 0 and add_months(start, months) > end:
        months -= 1
    return max(months, 0)


# ---------------------------------------------------------------- the query


@dataclass
class _Agreement:
    slug: str
    position: int
    kind: str
    status: str
    proposed_at: datetime
    effective_at: datetime | None
    pilot_ends_at: datetime | None
    referrals_per_month: int | None
    conversion_rate: Decimal | None


def _flow(row: tuple[Any, ...] | None, months: int) -> Flow:
    if row is None:
        row = (0, 0, 0, "0", "0")
    sent, accepted, converted = int(row[0]), int(row[1]), int(row[2])
    deal, reversed_value = Decimal(str(row[3])), Decimal(str(row[4]))
    value = deal - reversed_value
    return Flow(
        sent=sent,
        accepted=accepted,
        converted=converted,
        conversion_rate=rate(converted, sent),
        deal_value=deal,
        reversed_value=reversed_value,
        converted_value=value,
        average_deal=(value / converted).quantize(_CENT, ROUND_HALF_UP) if converted else None,
        value_per_month=(value / months).quantize(_CENT, ROUND_HALF_UP),
        value_per_year=(value * 12 / months).quantize(_CENT, ROUND_HALF_UP),
    )


def _load_agreements(db: SqlBackend, network: str) -> dict[tuple[str, str], list[_Agreement]]:
    """Every agreement of the network, by pair of member parties, in the order proposed."""
    _, rows = db.execute(
        f"SELECT agreement, position, kind, status, proposed_at, effective_at, pilot_ends_at, "
        f"referrals_per_month, conversion_rate FROM {db.table(AGREEMENTS)} WHERE network = ? "
        "ORDER BY position",
        (network,),
    )
    _, party_rows = db.execute(
        f"SELECT agreement, party FROM {db.table(PARTIES)} WHERE network = ? AND party <> ?",
        (network, PROGRAM),
    )
    parties: dict[str, list[str]] = defaultdict(list)
    for slug, party in party_rows:
        parties[str(slug)].append(str(party))
    pairs: dict[tuple[str, str], list[_Agreement]] = defaultdict(list)
    for row in rows:
        found = _Agreement(
            slug=str(row[0]),
            position=int(row[1]),
            kind=str(row[2]),
            status=str(row[3]),
            proposed_at=db.dt(row[4]),
            effective_at=db.dt(row[5]) if row[5] is not None else None,
            pilot_ends_at=db.dt(row[6]) if row[6] is not None else None,
            referrals_per_month=int(row[7]) if row[7] is not None else None,
            conversion_rate=Decimal(str(row[8])) if row[8] is not None else None,
        )
        members = sorted(parties[found.slug])
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                pairs[(a, b)].append(found)
    return pairs


def _progress(
    db: SqlBackend, network: str, pair: tuple[str, str], agreement: _Agreement, as_of: datetime
) -> Progress:
    effective = agreement.effective_at
    assert effective is not None  # a live agreement took effect when its parties all accepted
    a, b = pair
    _, rows = db.execute(
        f"SELECT COUNT(*), COUNT(converted_at) FROM {db.table(REFERRALS)} "
        "WHERE network = ? AND ((from_member = ? AND to_member = ?) "
        "OR (from_member = ? AND to_member = ?)) AND sent_at >= ?",
        (network, a, b, b, a, db.ts(effective)),
    )
    referrals, converted = int(rows[0][0]), int(rows[0][1])
    elapsed = whole_months(effective, as_of)
    months = max(elapsed, 1)
    judged = elapsed >= 1
    target_count = agreement.referrals_per_month
    target_rate = agreement.conversion_rate
    # Exact comparisons: referrals / months < target exactly when referrals < target * months.
    below_referrals = judged and target_count is not None and referrals < target_count * months
    below_conversion = (
        judged and target_rate is not None and referrals > 0 and converted < target_rate * referrals
    )
    per_month = rate(referrals, months)
    assert per_month is not None
    return Progress(
        agreement=agreement.slug,
        kind=agreement.kind,
        status=agreement.status,
        effective_at=effective,
        pilot_ends_at=agreement.pilot_ends_at,
        months=months,
        referrals=referrals,
        converted=converted,
        referrals_per_month=per_month,
        target_referrals_per_month=target_count,
        conversion_rate=rate(converted, referrals),
        target_conversion_rate=target_rate,
        judged=judged,
        below_referrals=below_referrals,
        below_conversion=below_conversion,
    )


def scorecards(
    db: SqlBackend,
    network: str,
    *,
    member: str | None = None,
    as_of: datetime,
    dormant_days: int = DORMANT_DAYS,
    offset: int = 0,
    limit: int | None = None,
) -> list[Scorecard]:
    """The scorecard of every pair of members with any history in ``network``.

    A pair has history once they interacted (a referral, an introduction, a
    one-to-one) or share an agreement. Without ``member`` each pair appears
    once, seen from the side of the member whose slug sorts first; with
    ``member``, only that member's pairs, seen from that member's side.
    ``as_of`` is the moment the time-dependent figures are measured at (days
    since the last interaction, months, agreement progress, flags); the
    counts and values are those of the whole log the view has read. Sorted by
    member, then partner.

    Raises :class:`~partnerledger.errors.NotFound` for an unknown network or
    member, and :class:`~partnerledger.errors.InvalidCommand` for a naive
    ``as_of`` or one outside the range of business times (1900 up to 2200),
    or ``dormant_days`` outside 1 to 36500.

    ``offset`` and ``limit`` give one page of that order: the database reads
    only the page's pairs and their directions, so a page costs what it
    holds, whatever the number of pairs.
    """
    if as_of.tzinfo is None:
        raise InvalidCommand("as_of", "give a time with an offset, e.g. Z or +02:00")
    if not in_range(as_of):
        raise InvalidCommand("as_of", OUT_OF_RANGE)
    if not 1 <= dormant_days <= MAX_DAYS:
        raise InvalidCommand(
            "dormant_days", f"must be from 1 to {MAX_DAYS} (100 years), got {dormant_days}"
        )
    as_of = as_of.astimezone(UTC)
    _, found = db.execute(
        f"SELECT currency FROM {db.table(NETWORKS)} WHERE network = ?", (network,)
    )
    if not found:
        raise NotFound("network", f"no network {network!r}")
    currency = str(found[0][0])
    pair_sql = (
        f"SELECT member_a, member_b, first_interaction_at, last_interaction_at, introductions, "
        f"one_to_ones FROM {db.table(PAIRS)} WHERE network = ?"
    )
    params: tuple[Any, ...] = (network,)
    if member is not None:
        _, known = db.execute(
            f"SELECT 1 FROM {db.table(MEMBERS)} WHERE network = ? AND member = ?",
            (network, member),
        )
        if not known:
            raise NotFound("member", f"no member {member!r} in network {network!r}")
        pair_sql += " AND (member_a = ? OR member_b = ?)"
        params = (network, member, member)
    # The order of the result (member, then partner) as the database sorts it, code point
    # by code point as Python does (PostgreSQL's collation might order hyphens otherwise).
    collate = ' COLLATE "C"' if db.kind == "postgresql" else ""
    if member is None:
        pair_sql += f" ORDER BY member_a{collate}, member_b{collate}"
    else:
        pair_sql += f" ORDER BY CASE WHEN member_a = ? THEN member_b ELSE member_a END{collate}"
        params = (*params, member)
    if limit is not None:
        pair_sql += " LIMIT ? OFFSET ?"
        params = (*params, limit, offset)
    elif offset:
        raise InvalidCommand("offset", "give a limit with an offset")
    _, pair_rows = db.execute(pair_sql, params)
    slugs = sorted({str(m) for row in pair_rows for m in row[:2]})
    flow_sql = (
        "SELECT member, partner, sent, accepted, converted, deal_value, reversed_value "
        f"FROM {db.table(FLOWS)} WHERE network = ?"
    )
    if limit is not None:  # only the directions of the page's pairs
        marks = ", ".join("?" for _ in slugs) or "NULL"
        flow_sql += f" AND member IN ({marks}) AND partner IN ({marks})"
    _, flow_rows = db.execute(
        flow_sql, (network, *slugs, *slugs) if limit is not None else (network,)
    )
    flows = {(str(r[0]), str(r[1])): tuple(r[2:]) for r in flow_rows}
    agreements = _load_agreements(db, network)
    cards = []
    for row in pair_rows:
        a, b = str(row[0]), str(row[1])
        me, partner = (b, a) if member == b else (a, b)
        first = db.dt(row[2]) if row[2] is not None else None
        last = db.dt(row[3]) if row[3] is not None else None
        theirs = agreements.get((a, b), [])
        # The relationship starts with the first interaction, or with its first
        # agreement when they never interacted.
        start = first or min((x.proposed_at for x in theirs), default=as_of)
        months = calendar_months(start, as_of)
        given = _flow(flows.get((me, partner)), months)
        received = _flow(flows.get((partner, me)), months)
        live = [x for x in theirs if x.status in LIVE]
        progress = _progress(db, network, (a, b), live[-1], as_of) if live else None
        quiet_since = last or start
        ending = as_of + timedelta(days=PILOT_ENDING_DAYS)
        flags = Flags(
            one_sided=(given.sent > 0) != (received.sent > 0),
            dormant=as_of - quiet_since >= timedelta(days=dormant_days),
            pilot_ending=any(
                x.status == "pilot"
                and x.pilot_ends_at is not None
                and as_of <= x.pilot_ends_at <= ending
                for x in live
            ),
            below_target=progress is not None
            and (progress.below_referrals or progress.below_conversion),
        )
        cards.append(
            Scorecard(
                network=network,
                member=me,
                partner=partner,
                currency=currency,
                as_of=as_of,
                dormant_days=dormant_days,
                given=given,
                received=received,
                reciprocity=Reciprocity(
                    given=given.sent,
                    received=received.sent,
                    balance=given.sent - received.sent,
                    ratio=rate(given.sent, received.sent),
                    value_given=given.converted_value,
                    value_received=received.converted_value,
                    value_balance=given.converted_value - received.converted_value,
                ),
                first_interaction_at=first,
                last_interaction_at=last,
                days_since_last_interaction=max((as_of - last).days, 0) if last else None,
                introductions=int(row[4]),
                one_to_ones=int(row[5]),
                months_active=months,
                agreement=progress,
                flags=flags,
            )
        )
    cards.sort(key=lambda card: (card.member, card.partner))
    return cards


__all__ = [
    "DORMANT_DAYS",
    "PILOT_ENDING_DAYS",
    "Flags",
    "Flow",
    "Progress",
    "Reciprocity",
    "Scorecard",
    "Scorecards",
    "add_months",
    "calendar_months",
    "money",
    "rate",
    "scorecards",
    "whole_months",
]
