"""The referral pipeline: one row per referral with its status now, for pages that page.

The pipeline page and the API's referral list show the newest referrals of
each status, or the referrals in the order they were sent, a page at a time.
Folding every referral event of a network on each request (or loading each
referral's stream) grows with the history; this view keeps, per network and
referral, what those lists show:

* who sent it to whom, the customer's name and contact **as the log keeps
  them** (sealed; readers reveal them with the vault, so an erased customer
  reads ``[erased]``), its data subject and note;
* its status (sent, accepted, declined, lost, converted, reversed) and the
  business times of each step; the deal value, its currency, the amount
  reversed so far and the last reason given;
* ``position``: the log position of its ``referral.sent`` (the order sent);
* ``moved_at``: the business time of its last ``referral.*`` event (the
  pipeline's columns show the most recently moved first);
* ``updated_at``: the business time of its last event of any kind (a
  dispute's ``credit.reassigned`` included), as the referral record has it.

Indexes serve each list: ``(network, position)`` the order sent,
``(network, status, moved_at)`` a pipeline column, ``(network, from_member,
position)`` and ``(network, to_member, position)`` one member's referrals.
A batch's changes are kept in memory and written once, at its end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import msgspec

from ..commands import (
    CreditReassigned,
    ReferralAccepted,
    ReferralConverted,
    ReferralDeclined,
    ReferralLost,
    ReferralReversed,
    ReferralSent,
    command_type,
)
from ..events import Event
from ..privacy import Sealed
from ..projection import Networks, Projection, by_network, projection
from ..sql import SqlBackend

PIPELINE = "partnerledger_pipeline"
#: The statuses, in the order the pipeline shows them.
STATUSES = ("sent", "accepted", "converted", "declined", "lost", "reversed")

_COLUMNS = (
    "network",
    "referral",
    "position",
    "from_member",
    "to_member",
    "subject",
    "customer",
    "customer_contact",
    "note",
    "status",
    "sent_at",
    "accepted_at",
    "ended_at",
    "converted_at",
    "moved_at",
    "updated_at",
    "deal_value",
    "currency",
    "reversed_amount",
    "reason",
)
_TIMES = ("sent_at", "accepted_at", "ended_at", "converted_at", "moved_at", "updated_at")
_NEVER = datetime.min.replace(tzinfo=UTC)
_personal = msgspec.json.Decoder(str | Sealed | None).decode
_encode = msgspec.json.encode


@dataclass
class PipelineRow:
    """A referral as the pipeline view keeps it (personal fields as stored: sealed)."""

    network: str
    referral: str
    position: int
    from_member: str = ""
    to_member: str = ""
    subject: str = ""
    customer: str | Sealed | None = None
    customer_contact: str | Sealed | None = None
    note: str | None = None
    status: str = "sent"
    sent_at: datetime | None = None
    accepted_at: datetime | None = None
    ended_at: datetime | None = None
    converted_at: datetime | None = None
    moved_at: datetime | None = None
    updated_at: datetime | None = None
    deal_value: Decimal | None = None
    currency: str | None = None
    reversed_amount: Decimal = field(default_factory=Decimal)
    reason: str | None = None

    @property
    def net_value(self) -> Decimal:
        """The converted value after reversals."""
        return (self.deal_value or Decimal(0)) - self.reversed_amount

    def involves(self, member: str) -> bool:
        """Whether the member sent or received it."""
        return member in (self.from_member, self.to_member)


def _row(db: SqlBackend, values: tuple[Any, ...]) -> PipelineRow:
    data = dict(zip(_COLUMNS, values, strict=True))
    for name in _TIMES:
        data[name] = db.dt(data[name]) if data[name] is not None else None
    for name in ("customer", "customer_contact"):
        data[name] = _personal(data[name]) if data[name] is not None else None
    data["position"] = int(data["position"])
    data["deal_value"] = Decimal(str(data["deal_value"])) if data["deal_value"] else None
    data["reversed_amount"] = Decimal(str(data["reversed_amount"] or "0"))
    return PipelineRow(**data)


def _values(db: SqlBackend, row: PipelineRow) -> tuple[Any, ...]:
    out: list[Any] = []
    for name in _COLUMNS:
        value = getattr(row, name)
        if name in _TIMES:
            value = db.ts(value) if value is not None else None
        elif name in ("customer", "customer_contact"):
            value = _encode(value).decode() if value is not None else None
        elif name in ("deal_value", "reversed_amount"):
            value = str(value) if value is not None else None
        out.append(value)
    return tuple(out)


@projection
class Pipeline(Projection):
    """One row per referral: its parties, customer (sealed), status and times."""

    name = "pipeline"
    version = 1
    tables: ClassVar[tuple[str, ...]] = (PIPELINE,)
    topics: ClassVar[tuple[str, ...]] = tuple(
        command_type(cls)
        for cls in (
            ReferralSent,
            ReferralAccepted,
            ReferralDeclined,
            ReferralLost,
            ReferralConverted,
            ReferralReversed,
            CreditReassigned,
        )
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The rows the batch being handled changed (read once per batch), written at its end.
        self._rows: dict[tuple[str, str], PipelineRow | None] = {}

    def create(self) -> None:
        ts = self.db.timestamp
        table = self.t(PIPELINE)
        for statement in (
            f"""CREATE TABLE IF NOT EXISTS {table} (
                network TEXT NOT NULL, referral TEXT NOT NULL, position BIGINT NOT NULL,
                from_member TEXT NOT NULL, to_member TEXT NOT NULL, subject TEXT NOT NULL,
                customer TEXT, customer_contact TEXT, note TEXT, status TEXT NOT NULL,
                sent_at {ts}, accepted_at {ts}, ended_at {ts}, converted_at {ts},
                moved_at {ts}, updated_at {ts}, deal_value TEXT, currency TEXT,
                reversed_amount TEXT NOT NULL, reason TEXT,
                PRIMARY KEY (network, referral))""",
            f"CREATE INDEX IF NOT EXISTS {PIPELINE}_sent ON {table} (network, position)",
            f"CREATE INDEX IF NOT EXISTS {PIPELINE}_status "
            f"ON {table} (network, status, moved_at, position)",
            f"CREATE INDEX IF NOT EXISTS {PIPELINE}_from "
            f"ON {table} (network, from_member, position)",
            f"CREATE INDEX IF NOT EXISTS {PIPELINE}_to ON {table} (network, to_member, position)",
        ):
            self.db.execute(statement)

    def _get(self, network: str, referral: str) -> PipelineRow | None:
        key = (network, referral)
        if key not in self._rows:
            _, rows = self.db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM {self.t(PIPELINE)} "
                "WHERE network = ? AND referral = ?",
                key,
            )
            self._rows[key] = _row(self.db, rows[0]) if rows else None
        return self._rows[key]

    def prepare(self, events: Sequence[tuple[int, Event]]) -> None:
        """The rows of the batch's referrals, one query per network (not one per event)."""
        wanted: dict[tuple[str, str], None] = {}
        for _, event in events:
            command: Any = event.command  # every topic of this view names a referral
            wanted[(command.network, command.referral)] = None
        for network, slugs in by_network(wanted).items():
            rows = self.db.select_in(
                f"SELECT {', '.join(_COLUMNS)} FROM {self.t(PIPELINE)} "
                "WHERE network = ? AND referral {in}",
                (network,),
                slugs,
            )
            found = {str(row[1]): _row(self.db, row) for row in rows}
            for slug in slugs:
                self._rows.setdefault((network, slug), found.get(slug))

    def handle(self, position: int, event: Event, networks: Networks) -> None:
        command: Any = event.command
        network, slug, at = command.network, command.referral, command.occurred_at
        if isinstance(command, ReferralSent):
            if self._get(network, slug) is not None:  # the log holds one per referral
                return
            self._rows[(network, slug)] = PipelineRow(
                network=network,
                referral=slug,
                position=position,
                from_member=command.from_member,
                to_member=command.to_member,
                subject=command.subject or "",
                customer=command.customer,
                customer_contact=command.customer_contact,
                note=command.note,
                sent_at=at,
                moved_at=at,
                updated_at=at,
            )
            return
        row = self._get(network, slug)
        if row is None:  # the log only holds events of referrals it sent first
            return
        row.updated_at = at
        if isinstance(command, CreditReassigned):
            return
        row.moved_at = at
        if isinstance(command, ReferralAccepted):
            row.status, row.accepted_at = "accepted", at
        elif isinstance(command, ReferralDeclined | ReferralLost):
            row.status = "declined" if isinstance(command, ReferralDeclined) else "lost"
            row.ended_at, row.reason = at, command.reason
        elif isinstance(command, ReferralConverted):
            row.status, row.converted_at = "converted", at
            row.deal_value, row.currency = command.deal_value, command.currency
        elif isinstance(command, ReferralReversed):
            row.status = "reversed"
            row.reversed_amount += command.amount
            row.reason = command.reason

    def flush(self, networks: Networks) -> None:
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[2:])
        self.db.insert(
            self.t(PIPELINE),
            _COLUMNS,
            [_values(self.db, row) for row in self._rows.values() if row is not None],
            f"ON CONFLICT (network, referral) DO UPDATE SET {updates}",
        )
        self.discard()

    def discard(self) -> None:
        self._rows = {}


# ------------------------------------------------------------------- queries


def _select(
    db: SqlBackend, where: str, params: list[Any], order: str, limit: int
) -> list[PipelineRow]:
    _, rows = db.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM {db.table(PIPELINE)} "  # our own table
        f"WHERE {where} ORDER BY {order} LIMIT ?",
        (*params, limit),
    )
    return [_row(db, row) for row in rows]


def column(
    db: SqlBackend,
    network: str,
    status: str,
    *,
    member: str | None = None,
    before: tuple[datetime, int] | None = None,
    limit: int,
) -> list[PipelineRow]:
    """The referrals of one status, the most recently moved first (then in the order sent).

    ``member``: only those the member sent or received. ``before``: the
    (``moved_at``, ``position``) of the last row of the previous page.
    """
    where = "network = ? AND status = ?"
    params: list[Any] = [network, status]
    if before is not None:
        moved = db.ts(before[0])
        # The range first, so the index seeks to the cursor instead of skipping newer rows.
        where += " AND moved_at <= ? AND (moved_at < ? OR position > ?)"
        params += [moved, moved, before[1]]
    if member is not None:
        where += " AND (from_member = ? OR to_member = ?)"
        params += [member, member]
    return _select(db, where, params, "moved_at DESC, position", limit)


def columns(
    db: SqlBackend,
    network: str,
    statuses: Sequence[str],
    *,
    member: str | None = None,
    before: tuple[str, tuple[datetime, int]] | None = None,
    limit: int,
) -> dict[str, list[PipelineRow]]:
    """:func:`column` of each status, in one statement (one round trip, not one a status).

    ``before``: (status, cursor) starts that status's column after the cursor.
    Each column is its own ``LIMIT`` read through the ``(network, status,
    moved_at, position)`` index, glued with ``UNION ALL``; the rows come back
    in the order :func:`column` gives.
    """
    if not statuses:
        return {}
    parts, params = [], []
    for index, status in enumerate(statuses):
        where = "network = ? AND status = ?"
        found: list[Any] = [network, status]
        if before is not None and before[0] == status:
            moved = db.ts(before[1][0])
            where += " AND moved_at <= ? AND (moved_at < ? OR position > ?)"
            found += [moved, moved, before[1][1]]
        if member is not None:
            where += " AND (from_member = ? OR to_member = ?)"
            found += [member, member]
        parts.append(  # our own table
            f"SELECT * FROM (SELECT {', '.join(_COLUMNS)} FROM {db.table(PIPELINE)} "
            f"WHERE {where} ORDER BY moved_at DESC, position LIMIT ?) c{index}"
        )
        params += [*found, limit]
    _, rows = db.execute(" UNION ALL ".join(parts), params)
    by_status: dict[str, list[PipelineRow]] = {status: [] for status in statuses}
    for values in rows:
        row = _row(db, values)
        by_status[row.status].append(row)
    # ORDER BY moved_at DESC, position, as each database orders it (UNION ALL itself
    # promises no order): SQLite puts a row never moved last, PostgreSQL first.
    unmoved = -1 if db.kind == "sqlite" else 1
    for found_rows in by_status.values():
        found_rows.sort(key=lambda r: r.position)
        found_rows.sort(
            key=lambda r: (0, r.moved_at) if r.moved_at is not None else (unmoved, _NEVER),
            reverse=True,
        )
    return by_status


def counts(db: SqlBackend, network: str, *, member: str | None = None) -> dict[str, int]:
    """How many referrals the network has in each status (``member``: sent or received)."""
    where, params = "network = ?", [network]
    if member is not None:
        where += " AND (from_member = ? OR to_member = ?)"
        params += [member, member]
    _, rows = db.execute(
        f"SELECT status, COUNT(*) FROM {db.table(PIPELINE)} "  # our own table
        f"WHERE {where} GROUP BY status",
        params,
    )
    return {str(status): int(count) for status, count in rows}


def in_order_sent(
    db: SqlBackend,
    network: str,
    *,
    after: int = 0,
    status: str | None = None,
    member: str | None = None,
    limit: int,
) -> list[PipelineRow]:
    """Referrals in the order they were sent, after log position ``after`` (a page's cursor)."""
    where, params = "network = ? AND position > ?", [network, after]
    if status is not None:
        where += " AND status = ?"
        params.append(status)
    if member is not None:
        where += " AND (from_member = ? OR to_member = ?)"
        params += [member, member]
    return _select(db, where, params, "position", limit)


def referral_rows(db: SqlBackend, network: str, referrals: list[str]) -> list[PipelineRow]:
    """The rows of the referrals named (those the view has), in the order sent."""
    if not referrals:
        return []
    marks = ", ".join("?" for _ in referrals)
    return _select(
        db, f"network = ? AND referral IN ({marks})", [network, *referrals], "position",
        len(referrals),
    )  # fmt: skip


__all__ = [
    "PIPELINE",
    "STATUSES",
    "Pipeline",
    "PipelineRow",
    "column",
    "columns",
    "counts",
    "in_order_sent",
    "referral_rows",
]
