"""The incentive ledger: what each member has earned, lost and been paid, per period.

Entries come from the network's incentive plugins (``partnerledger_incentives``),
asked about every conversion and reversal with the referral as it stood
after the event, the terms in force then of the latest live agreement
between its two members, and the plugins (and settings) the network had
enabled at that point of the log. Each entry keeps its source event (command
id, type, business time), the plugin and its version. A ``payout.recorded``
event is an entry of kind ``payout`` for minus the amount paid; a
``ledger.adjusted`` event (a dispute's compensation, docs/disputes.md) an
entry of kind ``adjustment`` for its signed amount. The referral's member
the plugins credit is its credited member: the sender, unless a dispute's
``credit.reassigned`` moved the credit before the event.

An entry lands in the statement period its source event's business time
falls in, unless that period was already closed when the event was
recorded: then it lands in the first open period after it. A period close
records each member's statement (``statement.closed``: opening balance, the
entries, among them the tier bonuses of the close, and the closing balance);
from then on the view shows the recorded lines, so a closed statement never
changes, whatever the rules or the code do later. A statement's opening
balance is the sum of the member's entries in earlier periods (read from
each period's total, kept beside the entries); its closing
balance the opening plus its entries: the ledger balances by construction,
and a test checks it over generated histories.

A plugin that fails, or an entry in another currency than the network's, is
kept in ``partnerledger_ledger_problems`` and earns nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from ..commands import (
    PROGRAM,
    AgreementCommand,
    AgreementProposed,
    LedgerAdjusted,
    PayoutRecorded,
    PeriodClosed,
    ReferralConverted,
    ReferralReversed,
    StatementClosed,
    Terms,
    command_type,
)
from ..domain import ROUTES, Aggregate, Agreement, Network, Referral
from ..events import Event
from ..periods import Calendar, Period
from ..pluginmanager import PluginFailed
from ..projection import BatchRows, Networks, Projection, by_network, projection
from ..rules import LedgerEntry, ReferralFacts
from ..sql import SqlBackend
from ..store import Store

LIVE = ("pilot", "active", "amended", "renewed")
CENT = Decimal("0.01")
#: What a payout entry names as its plugin.
PAYOUT_PLUGIN = "partnerledger"
PAYOUT_VERSION = "1"

A = TypeVar("A", bound=Aggregate)
_terms = msgspec.json.Decoder(Terms).decode


def money(amount: Decimal) -> str:
    """Money as JSON shows it: a string with two decimals."""
    return str(amount.quantize(CENT, rounding=ROUND_HALF_EVEN))


def as_of(store: Store, cls: type[A], event: Event, stream: Sequence[Event] | None = None) -> A:
    """The aggregate an event belongs to, as it stood right after the event.

    ``stream``: the aggregate's events already read (else read from ``store``).
    """
    aggregate = cls(event.originator_id)
    for past in store.stream(event.originator_id) if stream is None else stream:
        if past.originator_version > event.originator_version:
            break
        aggregate.apply(past)
    return aggregate


@dataclass(frozen=True)
class Entry:
    """One line of the ledger."""

    network: str
    member: str
    period: str
    position: int  # the log position of the event that put it here
    seq: int
    source: str  # the command id of its source event
    source_type: str
    occurred_at: datetime
    plugin: str
    version: str
    kind: str
    amount: Decimal
    currency: str
    note: str
    recorded: bool  # from a closed statement

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "member": self.member,
            "period": self.period,
            "source": self.source,
            "source_type": self.source_type,
            "occurred_at": self.occurred_at.isoformat(),
            "plugin": self.plugin,
            "version": self.version,
            "kind": self.kind,
            "amount": money(self.amount),
            "currency": self.currency,
            "note": self.note,
        }


@dataclass(frozen=True)
class Statement:
    """A member's statement for one period."""

    network: str
    member: str
    period: str
    currency: str
    opening: Decimal
    closing: Decimal
    closed: bool
    entries: list[Entry] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON (money as strings with two decimals)."""
        return {
            "network": self.network,
            "member": self.member,
            "period": self.period,
            "currency": self.currency,
            "closed": self.closed,
            "opening": money(self.opening),
            "entries": [entry.as_dict() for entry in self.entries],
            "closing": money(self.closing),
        }

    def as_csv(self) -> str:
        """The statement as CSV: an opening row, a row per entry with the balance, a closing row."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        blank = ["", "", "", "", ""]
        balance = self.opening
        writer.writerow([self.period, "", "opening", "", self.currency, *blank, money(balance)])
        for entry in self.entries:
            balance += entry.amount
            writer.writerow(
                [
                    self.period,
                    entry.occurred_at.isoformat(),
                    entry.kind,
                    money(entry.amount),
                    entry.currency,
                    entry.source_type,
                    entry.source,
                    entry.plugin,
                    entry.version,
                    entry.note,
                    money(balance),
                ]
            )
        writer.writerow(
            [self.period, "", "closing", "", self.currency, *blank, money(self.closing)]
        )
        return out.getvalue()


#: The columns of a statement as CSV (``partnerledger statement --csv``, the web download).
CSV_COLUMNS = (
    "period",
    "occurred_at",
    "kind",
    "amount",
    "currency",
    "source_type",
    "source",
    "plugin",
    "version",
    "note",
    "balance",
)

_ENTRY_COLUMNS = (
    "network, member, period, position, seq, source, source_type, occurred_at, plugin, "
    "version, kind, amount, currency, note, recorded"
)


@projection
class IncentiveLedger(Projection):
    """Ledger entries per member and statement period."""

    name = "ledger"
    version = 2
    tables = (
        "partnerledger_ledger_entries",
        "partnerledger_ledger_totals",
        "partnerledger_ledger_closed",
        "partnerledger_ledger_agreements",
        "partnerledger_ledger_pairs",
        "partnerledger_ledger_problems",
    )
    topics = tuple(
        command_type(cls)
        for cls, route in ROUTES.items()
        if route.aggregate is Agreement
        or cls
        in (
            ReferralConverted,
            ReferralReversed,
            PeriodClosed,
            StatementClosed,
            PayoutRecorded,
            LedgerAdjusted,
        )
    )

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        # The batch's rows, read once and written once (see Projection.prepare/flush).
        #: the streams of the batch's referrals and agreements, read in one query
        self._streams: dict[UUID, list[Event]] = {}
        #: (network, agreement) → [proposed_position, status, terms as JSON]
        self._agreements: BatchRows[tuple[str, str], list[Any]] = BatchRows(self._load_agreements)
        #: (network, a, b) → the agreements between the two members
        self._pairs: BatchRows[tuple[str, str, str], list[str]] = BatchRows(self._load_pairs)
        #: network → its closed periods
        self._closed: dict[str, set[str]] = {}
        self._entries: list[tuple[Any, ...]] = []
        #: (network, member, period) → (its start, the amount of the entries a recorded
        #: statement replaced in this batch): taken off the period's total
        self._removed: dict[tuple[str, str, str], tuple[Any, Decimal]] = {}
        self._problems: dict[tuple[str, int, str], str] = {}

    def create(self) -> None:
        ts = self.db.timestamp
        for statement in (
            f"""CREATE TABLE IF NOT EXISTS {self.t("partnerledger_ledger_entries")} (
                network TEXT NOT NULL, member TEXT NOT NULL, period TEXT NOT NULL,
                period_start {ts} NOT NULL, position BIGINT NOT NULL, seq INTEGER NOT NULL,
                source TEXT NOT NULL, source_type TEXT NOT NULL, occurred_at {ts} NOT NULL,
                plugin TEXT NOT NULL, version TEXT NOT NULL, kind TEXT NOT NULL,
                amount TEXT NOT NULL, currency TEXT NOT NULL, note TEXT NOT NULL,
                recorded INTEGER NOT NULL, PRIMARY KEY (network, position, seq))""",
            f"""CREATE INDEX IF NOT EXISTS partnerledger_ledger_entries_member
                ON {self.t("partnerledger_ledger_entries")} (network, member, period_start)""",
            # Each member's total per period: a statement's opening balance sums the
            # member's earlier periods, not every earlier entry.
            f"""CREATE TABLE IF NOT EXISTS {self.t("partnerledger_ledger_totals")} (
                network TEXT NOT NULL, member TEXT NOT NULL, period TEXT NOT NULL,
                period_start {ts} NOT NULL, total TEXT NOT NULL,
                PRIMARY KEY (network, member, period))""",
            f"""CREATE TABLE IF NOT EXISTS {self.t("partnerledger_ledger_closed")} (
                network TEXT NOT NULL, period TEXT NOT NULL, PRIMARY KEY (network, period))""",
            f"""CREATE TABLE IF NOT EXISTS {self.t("partnerledger_ledger_agreements")} (
                network TEXT NOT NULL, agreement TEXT NOT NULL, proposed_position BIGINT NOT NULL,
                status TEXT NOT NULL, terms TEXT NOT NULL, PRIMARY KEY (network, agreement))""",
            f"""CREATE TABLE IF NOT EXISTS {self.t("partnerledger_ledger_pairs")} (
                network TEXT NOT NULL, a TEXT NOT NULL, b TEXT NOT NULL, agreement TEXT NOT NULL,
                PRIMARY KEY (network, a, b, agreement))""",
            f"""CREATE TABLE IF NOT EXISTS {self.t("partnerledger_ledger_problems")} (
                network TEXT NOT NULL, position BIGINT NOT NULL, plugin TEXT NOT NULL,
                reason TEXT NOT NULL, PRIMARY KEY (network, position, plugin))""",
        ):
            self.db.execute(statement)

    # -- reading a batch's rows ---------------------------------------------

    def _load_agreements(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[Any]]:
        found: dict[tuple[str, str], list[Any]] = {}
        for network, slugs in by_network(keys).items():
            for slug, position, status, terms in self.db.select_in(
                "SELECT agreement, proposed_position, status, terms FROM "
                f"{self.t('partnerledger_ledger_agreements')} "
                "WHERE network = ? AND agreement {in}",
                (network,),
                slugs,
            ):
                found[(network, str(slug))] = [int(position), str(status), str(terms)]
        return found

    def _load_pairs(
        self, keys: list[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], list[str]]:
        found: dict[tuple[str, str, str], list[str]] = {key: [] for key in keys}
        for network, members in by_network(keys).items():
            for a, b, slug in self.db.select_in(
                f"SELECT a, b, agreement FROM {self.t('partnerledger_ledger_pairs')} "
                "WHERE network = ? AND a {in}",
                (network,),
                members,
            ):
                pair = (network, str(a), str(b))
                if pair in found:
                    found[pair].append(str(slug))
        return found

    def _closed_periods(self, network: str) -> set[str]:
        found = self._closed.get(network)
        if found is None:
            found = self._closed[network] = closed_periods(self.db, network)
        return found

    def _as_of(self, cls: type[A], event: Event) -> A:
        return as_of(self.store, cls, event, self._streams.get(event.originator_id))

    def prepare(self, events: Sequence[tuple[int, Event]]) -> None:
        wanted = [
            event.originator_id
            for _, event in events
            if isinstance(event.command, AgreementCommand | ReferralConverted | ReferralReversed)
        ]
        self._streams = self.store.streams(wanted) if wanted else {}
        pairs: list[tuple[str, str, str]] = []
        agreements: list[tuple[str, str]] = []
        for _, event in events:
            command = event.command
            if isinstance(command, AgreementCommand):
                agreements.append((command.network, command.agreement))
            elif isinstance(command, ReferralConverted | ReferralReversed):
                referral = self._as_of(Referral, event)
                if referral.credited and referral.to_member:
                    first, second = sorted((referral.credited, referral.to_member))
                    pairs.append((command.network, first, second))
        self._pairs.fetch(pairs)
        for (network, _, _), slugs in list(self._pairs.rows.items()):
            agreements.extend((network, slug) for slug in slugs or ())
        self._agreements.fetch(agreements)

    # -- handling events ----------------------------------------------------

    def handle(self, position: int, event: Event, networks: Networks) -> None:
        command: Any = event.command
        network = networks.get(command.network)
        if network is None:
            return
        if isinstance(command, AgreementCommand):
            self._agreement(position, event)
        elif isinstance(command, ReferralConverted | ReferralReversed):
            self._referral(position, event, network, networks.enabled(command.network))
        elif isinstance(command, PeriodClosed):
            self.db.execute(
                f"INSERT INTO {self.t('partnerledger_ledger_closed')} (network, period) "
                "VALUES (?, ?) ON CONFLICT DO NOTHING",
                (command.network, command.period),
            )
            if command.network in self._closed:
                self._closed[command.network].add(command.period)
        elif isinstance(command, StatementClosed):
            self._statement(position, command, network)
        elif isinstance(command, PayoutRecorded):
            self._insert(
                network,
                position,
                event,
                [
                    (
                        command.member,
                        PAYOUT_PLUGIN,
                        PAYOUT_VERSION,
                        "payout",
                        -command.amount,
                        command.reference or "",
                    )
                ],
            )
        elif isinstance(command, LedgerAdjusted):  # a dispute's compensation (docs/disputes.md)
            note = f"dispute {command.dispute}: {command.reason}"
            line = (command.member, PAYOUT_PLUGIN, PAYOUT_VERSION, "adjustment", command.amount)
            self._insert(network, position, event, [(*line, note)])

    def _agreement(self, position: int, event: Event) -> None:
        agreement = self._as_of(Agreement, event)
        command = event.command
        network = command.network
        if isinstance(command, AgreementProposed):
            parties = sorted({p for p in command.parties if p != PROGRAM})
            for i, a in enumerate(parties):
                for b in parties[i + 1 :]:
                    pair = (network, a, b)
                    slugs = self._pairs.get(pair) or []
                    if agreement.slug not in slugs:
                        self._pairs.put(pair, [*slugs, agreement.slug])
        key = (network, agreement.slug)
        terms = msgspec.json.encode(agreement.current_terms).decode()
        row = self._agreements.get(key)
        if row is None:
            self._agreements.put(key, [position, agreement.status, terms])
        else:
            self._agreements.put(key, [row[0], agreement.status, terms])

    def terms_between(self, network: str, a: str, b: str) -> Terms | None:
        """The terms in force of the latest live agreement between two members."""
        first, second = sorted((a, b))
        latest: list[Any] | None = None
        for slug in self._pairs.get((network, first, second)) or ():
            row = self._agreements.get((network, slug))
            if row is not None and row[1] in LIVE and (latest is None or row[0] > latest[0]):
                latest = row
        return _terms(latest[2]) if latest is not None else None

    def _referral(
        self, position: int, event: Event, network: Network, enabled: dict[str, Any]
    ) -> None:
        if not enabled:
            return
        referral = self._as_of(Referral, event)
        facts = ReferralFacts(
            referral=referral.slug,
            from_member=referral.credited,  # the sender, unless a dispute reassigned the credit
            to_member=referral.to_member,
            customer=referral.subject,  # the data subject: views never hold personal data
            status=referral.status,
            sent_at=referral.created_at or event.occurred_at,
            deal_value=referral.deal_value,
            reversed_amount=referral.reversed_amount,
            currency=referral.currency,
        )
        terms = self.terms_between(network.network, referral.credited, referral.to_member)
        try:
            decisions = self.rules.incentives(event, enabled, referral=facts, terms=terms)
        except PluginFailed as error:
            self._problem(network.network, position, "-", error.reason)
            return
        lines = []
        for decision in decisions:
            entry = decision.value
            assert isinstance(entry, LedgerEntry)
            if entry.currency != network.currency:
                self._problem(
                    network.network,
                    position,
                    decision.plugin,
                    f"an entry in {entry.currency}; the network keeps {network.currency}",
                )
                continue
            lines.append(
                (
                    entry.member,
                    decision.plugin,
                    decision.version,
                    entry.kind,
                    entry.amount,
                    entry.note,
                )
            )
        self._insert(network, position, event, lines)

    def _problem(self, network: str, position: int, plugin: str, reason: str) -> None:
        self._problems.setdefault((network, position, plugin), reason)

    def open_period(self, network: Network, moment: datetime) -> Period:
        """The period an entry of this business time lands in.

        Its own period, unless that is closed or before the latest closed one
        (periods close in order): then the first period after the latest closed.
        """
        calendar = Calendar.of(network)
        period = calendar.containing(moment)
        closed = [
            calendar.parse(name, recorded=True) for name in self._closed_periods(network.network)
        ]
        if closed and period <= max(closed):
            return calendar.after(max(closed))
        return period

    def _insert(
        self,
        network: Network,
        position: int,
        event: Event,
        lines: Sequence[tuple[str, str, str, str, Decimal, str]],
    ) -> None:
        if not lines:
            return
        period = self.open_period(network, event.occurred_at)
        start = self.db.ts(period.start)
        occurred_at = self.db.ts(event.occurred_at)
        self._entries.extend(
            (
                network.network,
                member,
                period.name,
                start,
                position,
                seq,
                event.command_id,
                event.type,
                occurred_at,
                plugin,
                version,
                kind,
                str(amount),
                network.currency,
                note,
                0,
            )
            for seq, (member, plugin, version, kind, amount, note) in enumerate(lines)
        )

    def _statement(self, position: int, command: StatementClosed, network: Network) -> None:
        period = Calendar.of(network).parse(command.period, recorded=True)
        table = self.t("partnerledger_ledger_entries")
        _, gone = self.db.execute(
            f"DELETE FROM {table} WHERE network = ? AND member = ? AND period = ? RETURNING amount",
            (command.network, command.member, command.period),
        )
        replaced = (command.network, command.member, command.period)
        # The stored entries leave the total; this batch's own never reached it.
        removed = sum((Decimal(str(row[0])) for row in gone), Decimal(0))
        self._entries = [row for row in self._entries if row[:3] != replaced]
        before = self._removed.get(replaced, (None, Decimal(0)))[1]
        self._removed[replaced] = (self.db.ts(period.start), before + removed)
        self._entries.extend(
            (
                command.network,
                command.member,
                command.period,
                self.db.ts(period.start),
                position,
                seq,
                line.source,
                line.source_type,
                self.db.ts(line.occurred_at),
                line.plugin,
                line.version,
                line.kind,
                str(line.amount),
                command.currency,
                line.note,
                1,
            )
            for seq, line in enumerate(command.entries)
        )

    # -- writing a batch ----------------------------------------------------

    def flush(self, networks: Networks) -> None:
        db = self.db
        db.insert(
            self.t("partnerledger_ledger_pairs"),
            ("network", "a", "b", "agreement"),
            [(*key, slug) for key, slugs in self._pairs.changed() for slug in slugs],
            "ON CONFLICT DO NOTHING",
        )
        db.insert(
            self.t("partnerledger_ledger_agreements"),
            ("network", "agreement", "proposed_position", "status", "terms"),
            [(*key, *row) for key, row in self._agreements.changed()],
            "ON CONFLICT (network, agreement) DO UPDATE "
            "SET status = excluded.status, terms = excluded.terms",
        )
        db.insert(
            self.t("partnerledger_ledger_entries"),
            ("network", "member", "period", "period_start", "position", "seq", "source",
             "source_type", "occurred_at", "plugin", "version", "kind", "amount", "currency",
             "note", "recorded"),
            self._entries,
        )  # fmt: skip
        self._write_totals()
        db.insert(
            self.t("partnerledger_ledger_problems"),
            ("network", "position", "plugin", "reason"),
            [(*key, reason) for key, reason in self._problems.items()],
            "ON CONFLICT DO NOTHING",
        )
        self.discard()

    def _write_totals(self) -> None:
        """Add the batch's entries (less what statements replaced) to each period's total."""
        changes: dict[tuple[str, str, str], list[Any]] = {}
        for row in self._entries:
            change = changes.setdefault(row[:3], [row[3], Decimal(0)])
            change[1] += Decimal(row[12])
        for key, (start, removed) in self._removed.items():
            change = changes.setdefault(key, [start, Decimal(0)])
            change[1] -= removed
        if not changes:
            return
        db = self.db
        table = self.t("partnerledger_ledger_totals")
        stored: dict[tuple[str, str, str], Decimal] = {}
        for network, members in by_network(list(changes)).items():
            rows = db.select_in(
                f"SELECT member, period, total FROM {table} WHERE network = ? AND member {{in}}",
                (network,),
                members,
            )
            stored.update({(network, str(m), str(p)): Decimal(str(t)) for m, p, t in rows})
        db.insert(
            table,
            ("network", "member", "period", "period_start", "total"),
            [
                (*key, start, str(stored.get(key, Decimal(0)) + change))
                for key, (start, change) in changes.items()
            ],
            "ON CONFLICT (network, member, period) DO UPDATE SET total = excluded.total",
        )

    def discard(self) -> None:
        self._streams = {}
        self._agreements.clear()
        self._pairs.clear()
        self._closed = {}
        self._entries = []
        self._removed = {}
        self._problems = {}


# ------------------------------------------------------------------ reading


def closed_periods(db: SqlBackend, network: str) -> set[str]:
    """The network's closed statement periods."""
    _, rows = db.execute(
        f"SELECT period FROM {db.table('partnerledger_ledger_closed')} WHERE network = ?",
        (network,),
    )
    return {str(row[0]) for row in rows}


def _entries(db: SqlBackend, where: str, params: Sequence[Any]) -> Iterator[Entry]:
    _, rows = db.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM {db.table('partnerledger_ledger_entries')} "
        f"WHERE {where} ORDER BY period_start, position, seq",
        params,
    )
    for row in rows:
        yield Entry(
            network=str(row[0]),
            member=str(row[1]),
            period=str(row[2]),
            position=int(row[3]),
            seq=int(row[4]),
            source=str(row[5]),
            source_type=str(row[6]),
            occurred_at=db.dt(row[7]),
            plugin=str(row[8]),
            version=str(row[9]),
            kind=str(row[10]),
            amount=Decimal(str(row[11])),
            currency=str(row[12]),
            note=str(row[13]),
            recorded=bool(row[14]),
        )


def entries(db: SqlBackend, network: str, member: str | None = None) -> list[Entry]:
    """Every entry of the network (or of one member), in period and log order."""
    if member is None:
        return list(_entries(db, "network = ?", (network,)))
    return list(_entries(db, "network = ? AND member = ?", (network, member)))


def period_entries(db: SqlBackend, network: str, period: str) -> list[Entry]:
    """Every entry of one period, in log order."""
    return list(_entries(db, "network = ? AND period = ?", (network, period)))


def statement(db: SqlBackend, network: Network, member: str, period: Period) -> Statement:
    """A member's statement for a period: opening balance, entries, closing balance."""
    _, before = db.execute(
        f"SELECT total FROM {db.table('partnerledger_ledger_totals')} "
        "WHERE network = ? AND member = ? AND period_start < ?",
        (network.network, member, db.ts(period.start)),
    )
    opening = sum((Decimal(str(row[0])) for row in before), Decimal(0))  # one row a period
    lines = list(
        _entries(
            db,
            "network = ? AND member = ? AND period = ?",
            (network.network, member, period.name),
        )
    )
    closing = opening + sum((line.amount for line in lines), Decimal(0))
    return Statement(
        network=network.network,
        member=member,
        period=period.name,
        currency=network.currency,
        opening=opening,
        closing=closing,
        closed=period.name in closed_periods(db, network.network),
        entries=lines,
    )


def balances(db: SqlBackend, network: str) -> dict[str, Decimal]:
    """Every member's balance: the sum of all their entries."""
    totals: dict[str, Decimal] = {}
    for entry in entries(db, network):
        totals[entry.member] = totals.get(entry.member, Decimal(0)) + entry.amount
    return totals


def problems(db: SqlBackend, network: str) -> list[tuple[int, str, str]]:
    """Events the plugins could not judge: (log position, plugin, reason)."""
    _, rows = db.execute(
        f"SELECT position, plugin, reason FROM {db.table('partnerledger_ledger_problems')} "
        "WHERE network = ? ORDER BY position, plugin",
        (network,),
    )
    return [(int(p), str(plugin), str(reason)) for p, plugin, reason in rows]


__all__ = [
    "CSV_COLUMNS",
    "Entry",
    "IncentiveLedger",
    "Statement",
    "as_of",
    "balances",
    "closed_periods",
    "entries",
    "money",
    "period_entries",
    "problems",
    "statement",
]
