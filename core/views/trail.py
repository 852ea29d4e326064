"""The audit trail: every event of every entity, in log order, with who and when.

An *entity* is anything the log has a history of, named ``kind:id``:
``network:riverside``, ``member:lee-law``, ``referral:r-0001``,
``agreement:a-lee-park``, ``introduction:i-1``, ``meeting:2025-01-14``,
``period:2025-Q2``, ``payout:p-7`` and ``dispute:d-3``. The view keeps one
row per event and entity it concerns:

* every event of a network belongs to ``network:<slug>``;
* an event belongs to the record it names (its referral, agreement,
  introduction, meeting, period or payout) and to every member it names
  (:meth:`~partnerledger.commands.Command.members`);
* a referral's and an agreement's later events (accepted, converted,
  amended...) name only the record, yet belong to its members too: the view
  remembers each referral's and agreement's members in a table of its own
  (``partnerledger_trail_parties``), the members named by its events so far;
* a dispute's events belong to the dispute and to its members (its raiser,
  the members of the referral it is raised on, the member of a disputed
  ledger entry, commenters); ``dispute.raised`` on a referral also belongs
  to the referral, and a ``credit.reassigned`` to its dispute too (whose
  members it joins);
* a ``referral.sent`` also belongs to its data subject, ``subject:<id>``,
  and so does ``subject.erased`` (docs/privacy.md).

Each row holds the event's type, actor and business time
(``occurred_at``); the event's store time (``recorded_at``), command id and
command as JSON, which :func:`trail` searches, are kept once per event in
``partnerledger_trail_events`` (an event concerns three or four entities:
its command is not written once for each). :func:`entities` lists a network's entities with
their event counts. The JSON is the stored command, personal fields sealed:
:func:`trail` reveals them (the text, or ``[erased]``) and searches them as
revealed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from ..commands import (
    COMMAND_TYPES,
    AgreementCommand,
    Command,
    CreditReassigned,
    DisputeCommand,
    DisputeRaised,
    IntroductionMade,
    MeetingAttended,
    PayoutRecorded,
    PeriodCommand,
    ReferralCommand,
    SubjectErased,
    TyfcbReported,
    VisitorBrought,
    encode_command,
)
from ..errors import InvalidCommand, NotFound
from ..events import Event
from ..privacy import personal_by_type, subject_of, vault_for
from ..projection import Networks, Projection, by_network, projection
from ..sql import SqlBackend

#: The kinds of entity, in the order the trail's listings show them.
KINDS: tuple[str, ...] = (
    "network",
    "member",
    "referral",
    "agreement",
    "introduction",
    "meeting",
    "period",
    "payout",
    "dispute",
    "subject",
)
#: One row per (event, entity it concerns).
TRAIL = "partnerledger_trail"
#: One row per event: its store time, command id and command (read joined on ``position``).
EVENTS = "partnerledger_trail_events"
#: The members each referral and agreement concerns, as its events named them so far.
PARTIES = "partnerledger_trail_parties"
#: Rows :func:`trail` returns when no limit is given.
LIMIT = 1000
#: The escape character of the LIKE patterns :func:`trail` builds.
_ESCAPE = "!"


def entity_id(kind: str, key: str) -> str:
    """The id of an entity: ``kind:key``, e.g. ``member:alice``."""
    return f"{kind}:{key}"


def parse_entity(entity: str) -> tuple[str, str]:
    """Split an entity id into its kind and key; InvalidCommand on ``entity`` if malformed."""
    kind, colon, key = entity.partition(":")
    if not colon or not key or kind not in KINDS:
        raise InvalidCommand(
            "entity",
            f"{entity!r} is not an entity id: expected kind:id, e.g. member:alice "
            f"(kinds: {', '.join(KINDS)})",
        )
    return kind, key


def lifecycle_record(command: Command) -> str | None:
    """The referral, agreement or dispute whose members a command's event also concerns."""
    if isinstance(command, ReferralCommand):
        return entity_id("referral", command.referral)
    if isinstance(command, AgreementCommand):
        return entity_id("agreement", command.agreement)
    if isinstance(command, DisputeCommand):
        return entity_id("dispute", command.dispute)
    return None


def disputed_referral(command: Command) -> str | None:
    """The referral a dispute is raised on (its conversion or attribution included)."""
    if isinstance(command, DisputeRaised) and command.subject_kind != "ledger_entry":
        return entity_id("referral", command.subject)
    return None


def linked_dispute(command: Command) -> str | None:
    """The dispute a compensating event of a referral belongs to."""
    if isinstance(command, CreditReassigned):
        return entity_id("dispute", command.dispute)
    return None


def data_subject(command: Command) -> str | None:
    """The data subject whose personal data an event carries or erases (docs/privacy.md)."""
    if isinstance(command, SubjectErased):
        return entity_id("subject", command.subject)
    subject = subject_of(command)
    return entity_id("subject", subject) if subject is not None else None


def named_entities(command: Command) -> list[str]:
    """The entities a command names itself: its network, its record, its members."""
    return _named(command, lifecycle_record(command), command.members())


def _named(command: Command, record: str | None, members: Sequence[str]) -> list[str]:
    """:func:`named_entities`, given the command's record and members."""
    found = [entity_id("network", command.network)]
    if record is not None:
        found.append(record)
    elif isinstance(command, IntroductionMade):
        found.append(entity_id("introduction", command.introduction))
    elif isinstance(command, TyfcbReported) and command.referral is not None:
        found.append(entity_id("referral", command.referral))
    elif isinstance(command, MeetingAttended | VisitorBrought) and command.meeting is not None:
        found.append(entity_id("meeting", command.meeting))
    elif isinstance(command, PeriodCommand):
        found.append(entity_id("period", command.period))
    elif isinstance(command, PayoutRecorded):
        found.append(entity_id("payout", command.payout))
    for extra in (disputed_referral(command), linked_dispute(command), data_subject(command)):
        if extra is not None:
            found.append(extra)
    found.extend(entity_id("member", member) for member in members)
    return list(dict.fromkeys(found))


@projection
class Trail(Projection):
    """The audit trail view: one row per event and entity, and each record's members."""

    name = "trail"
    # 2: data subjects are entities (docs/privacy.md); 3: the command once per event (EVENTS)
    version = 3
    tables = (TRAIL, EVENTS, PARTIES)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only for the batch being handled: written (or forgotten) at its end.
        self._rows: list[tuple[Any, ...]] = []
        self._events: list[tuple[Any, ...]] = []
        self._parties: dict[tuple[str, str], set[str]] = {}
        self._new_parties: list[tuple[str, str, str]] = []

    def create(self) -> None:
        ts = self.db.timestamp
        self.db.execute(
            f"""CREATE TABLE IF NOT EXISTS {self.t(TRAIL)} (
                network TEXT NOT NULL,
                entity TEXT NOT NULL,
                kind TEXT NOT NULL,
                position BIGINT NOT NULL,
                type TEXT NOT NULL,
                actor TEXT NOT NULL,
                occurred_at {ts} NOT NULL,
                PRIMARY KEY (network, entity, position)
            )"""
        )
        self.db.execute(
            f"""CREATE TABLE IF NOT EXISTS {self.t(EVENTS)} (
                position BIGINT PRIMARY KEY,
                recorded_at {ts} NOT NULL,
                command_id TEXT NOT NULL,
                command TEXT NOT NULL
            )"""
        )
        # The primary key serves trail(); this one lists a network's entities of one kind.
        self.db.execute(
            f"CREATE INDEX IF NOT EXISTS {TRAIL}_kind ON {self.t(TRAIL)} (network, kind, entity)"
        )
        self.db.execute(
            f"""CREATE TABLE IF NOT EXISTS {self.t(PARTIES)} (
                network TEXT NOT NULL,
                record TEXT NOT NULL,
                member TEXT NOT NULL,
                PRIMARY KEY (network, record, member)
            )"""
        )

    def prepare(self, events: Sequence[tuple[int, Event]]) -> None:
        """Read the members of the batch's referrals, agreements and disputes in one go."""
        wanted: dict[tuple[str, str], None] = {}
        for _, event in events:
            command = event.command
            record = lifecycle_record(command)
            if record is None:
                continue
            for named in (record, disputed_referral(command), linked_dispute(command)):
                if named is not None and (command.network, named) not in self._parties:
                    wanted[(command.network, named)] = None
        for key in wanted:
            self._parties[key] = set()
        for network, records in by_network(list(wanted)).items():
            for record, member in self.db.select_in(
                f"SELECT record, member FROM {self.t(PARTIES)} WHERE network = ? AND record {{in}}",
                (network,),
                records,
            ):
                self._parties[(network, str(record))].add(str(member))

    def handle(self, position: int, event: Event, networks: Networks) -> None:
        command: Command = event.command
        network = command.network
        record = lifecycle_record(command)
        named = command.members()
        entities = _named(command, record, named)
        if record is not None:
            members = self._members(network, record)
            referral = disputed_referral(command)
            if referral is not None:  # a dispute on a referral concerns its members
                named = (*named, *sorted(self._members(network, referral)))
            for member in named:
                if member not in members:
                    members.add(member)
                    self._new_parties.append((network, record, member))
            dispute = linked_dispute(command)
            if dispute is not None:  # the member now credited becomes a party of the dispute
                others = self._members(network, dispute)
                for member in command.members():
                    if member not in others:
                        others.add(member)
                        self._new_parties.append((network, dispute, member))
            entities.extend(entity_id("member", member) for member in sorted(members))
            entities = list(dict.fromkeys(entities))
        common = (position, command.type, command.actor, self.db.ts(command.occurred_at))
        self._rows.extend(
            [(network, entity, entity.partition(":")[0], *common) for entity in entities]
        )
        self._events.append(
            (
                position,
                self.db.ts(event.recorded_at),
                event.command_id,
                encode_command(command).decode(),
            )
        )

    def _members(self, network: str, record: str) -> set[str]:
        """The members a referral or agreement concerns so far (read once per batch)."""
        key = (network, record)
        members = self._parties.get(key)
        if members is None:
            _, rows = self.db.execute(
                f"SELECT member FROM {self.t(PARTIES)} WHERE network = ? AND record = ?",
                (network, record),
            )
            members = self._parties[key] = {str(row[0]) for row in rows}
        return members

    def flush(self, networks: Networks) -> None:
        # In key order (network, entity, position): each index then gets its new entries in
        # runs on the same pages, not scattered over all of them (about a third faster on
        # SQLite). The kind index is in that order too: an entity's kind is its prefix.
        # (A row starts network, entity, kind, position: unique, so the sort stops there.)
        self._rows.sort()
        self.db.insert(
            self.t(TRAIL),
            ("network", "entity", "kind", "position", "type", "actor", "occurred_at"),
            self._rows,
        )
        self.db.insert(
            self.t(EVENTS), ("position", "recorded_at", "command_id", "command"), self._events
        )
        self.db.insert(self.t(PARTIES), ("network", "record", "member"), self._new_parties)
        self.discard()

    def discard(self) -> None:
        self._rows = []
        self._events = []
        self._parties = {}
        self._new_parties = []


# ------------------------------------------------------------------- queries


@dataclass(frozen=True)
class TrailEntry:
    """One event in an entity's trail."""

    position: int
    network: str
    entity: str
    type: str
    actor: str
    occurred_at: datetime
    recorded_at: datetime
    command_id: str
    command: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON: times as RFC 3339 UTC text, the command as recorded."""
        return {
            "position": self.position,
            "type": self.type,
            "actor": self.actor,
            "occurred_at": _iso(self.occurred_at),
            "recorded_at": _iso(self.recorded_at),
            "command_id": self.command_id,
            "command": self.command,
        }


@dataclass(frozen=True)
class EntitySummary:
    """An entity of a network and the extent of its trail."""

    entity: str
    kind: str
    events: int
    first_position: int
    last_position: int
    first_occurred_at: datetime
    last_occurred_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "entity": self.entity,
            "kind": self.kind,
            "events": self.events,
            "first_position": self.first_position,
            "last_position": self.last_position,
            "first_occurred_at": _iso(self.first_occurred_at),
            "last_occurred_at": _iso(self.last_occurred_at),
        }


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _aware(moment: datetime, field: str) -> datetime:
    if moment.tzinfo is None:
        raise InvalidCommand(field, "give a time with an offset, e.g. Z or +02:00")
    return moment


def like_pattern(search: str) -> str:
    """A LIKE pattern (escape ``!``) matching the text anywhere in a command's JSON.

    The text is written as JSON writes it inside a string (a quote as ``\\"``),
    then ``%``, ``_`` and ``!`` are escaped.
    """
    written = msgspec.json.encode(search).decode()[1:-1]
    escaped = (
        written.replace(_ESCAPE, _ESCAPE * 2)
        .replace("%", _ESCAPE + "%")
        .replace("_", _ESCAPE + "_")
    )
    return f"%{escaped}%"


def trail(
    db: SqlBackend,
    network: str,
    entity: str,
    *,
    types: Sequence[str] = (),
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    search: str | None = None,
    after: int = 0,
    limit: int = LIMIT,
) -> list[TrailEntry]:
    """An entity's events in log order, after position ``after``, at most ``limit`` of them.

    ``types`` keeps those event types, ``actor`` one actor's events;
    ``since`` (inclusive) and ``until`` (exclusive) bound the business time;
    ``search`` keeps events whose command JSON contains the text, ignoring
    case (ASCII letters on every database, all letters where the database's
    locale folds them). Page on with ``after`` set to the last position read.
    Personal fields are sealed in the view: :func:`trail` reveals them (the
    text, or ``[erased]``) and searches them as revealed, so an erased
    customer's name finds nothing.

    Raises InvalidCommand on a malformed ``entity`` or filter, NotFound on
    ``network`` for a network the view does not know and on ``entity`` for
    an entity without events.
    """
    parse_entity(entity)
    for name in types:
        if name not in COMMAND_TYPES:
            raise InvalidCommand("type", f"unknown event type {name!r}")
    if limit < 1:
        raise InvalidCommand("limit", "must be at least 1")
    where = ["t.network = ?", "t.entity = ?", "t.position > ?"]
    params: list[Any] = [network, entity, after]
    if types:
        where.append(f"type IN ({', '.join('?' for _ in types)})")
        params.extend(types)
    if actor is not None:
        where.append("actor = ?")
        params.append(actor)
    if since is not None:
        where.append("occurred_at >= ?")
        params.append(db.ts(_aware(since, "since")))
    if until is not None:
        where.append("occurred_at < ?")
        params.append(db.ts(_aware(until, "until")))
    vault = vault_for(db)  # the store's keys, also for views as of a moment
    personal = personal_by_type()
    if search:
        # LOWER on both sides: the same folding whatever the database does with non-ASCII.
        match = f"LOWER(command) LIKE LOWER(CAST(? AS TEXT)) ESCAPE '{_ESCAPE}'"
        params.append(like_pattern(search))
        if personal:
            # Personal data is sealed in the view: such events are searched once revealed.
            match = f"({match} OR type IN ({', '.join('?' for _ in personal)}))"
            params.extend(personal)
        where.append(match)
    sql = (
        "SELECT t.position, t.type, t.actor, t.occurred_at, e.recorded_at, e.command_id, "
        f"e.command FROM {db.table(TRAIL)} t JOIN {db.table(EVENTS)} e ON e.position = t.position "
        f"WHERE {' AND '.join(where)} ORDER BY t.position LIMIT ?"
    )
    found: list[TrailEntry] = []
    while True:
        _, rows = db.execute(sql, (*params, limit))
        if not rows:
            break
        commands = [json.loads(row[6]) for row in rows]
        vault.reveal_documents(commands)  # the name, or [erased]: never a box
        for (position, type_, actor_, occurred_at, recorded_at, command_id, _), command in zip(
            rows, commands, strict=True
        ):
            if search and type_ in personal and not _mentions(command, search):
                continue
            found.append(
                TrailEntry(
                    position=int(position),
                    network=network,
                    entity=entity,
                    type=str(type_),
                    actor=str(actor_),
                    occurred_at=db.dt(occurred_at),
                    recorded_at=db.dt(recorded_at),
                    command_id=str(command_id),
                    command=command,
                )
            )
        if len(found) >= limit or len(rows) < limit:
            break
        params[2] = int(rows[-1][0])  # position > the last row read: read on
    if not found:
        _require(db, network, entity)
    return found[:limit]


def _mentions(command: dict[str, Any], search: str) -> bool:
    """Whether a revealed command's JSON contains the text, ignoring case (as the LIKE does)."""
    text = json.dumps(command, ensure_ascii=False, separators=(",", ":"))
    return msgspec.json.encode(search).decode()[1:-1].lower() in text.lower()


def entities(
    db: SqlBackend, network: str, *, kind: str | None = None, latest: int | None = None
) -> list[EntitySummary]:
    """A network's entities (of one ``kind``, or all) with their event counts.

    Sorted by kind (network, member, referral...) then id; with ``latest``,
    only that many, those with the most recent events. NotFound on
    ``network`` for a network the view does not know; InvalidCommand on
    ``kind`` for an unknown kind.
    """
    where = "network = ?"
    params: list[Any] = [network]
    if kind is not None:
        if kind not in KINDS:
            raise InvalidCommand("kind", f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
        where += " AND kind = ?"
        params.append(kind)
    _, rows = db.execute(
        "SELECT entity, kind, COUNT(*), MIN(position), MAX(position), "
        f"MIN(occurred_at), MAX(occurred_at) FROM {db.table(TRAIL)} WHERE {where} "
        "GROUP BY entity, kind"
        + (" ORDER BY MAX(position) DESC, entity LIMIT ?" if latest is not None else ""),
        [*params, latest] if latest is not None else params,
    )
    if not rows:
        _require(db, network, None)
    found = [
        EntitySummary(
            entity=str(entity),
            kind=str(kind_),
            events=int(count),
            first_position=int(first),
            last_position=int(last),
            first_occurred_at=db.dt(first_at),
            last_occurred_at=db.dt(last_at),
        )
        for entity, kind_, count, first, last, first_at, last_at in rows
    ]
    return sorted(found, key=lambda e: (KINDS.index(e.kind), e.entity))


def entity_count(db: SqlBackend, network: str) -> int:
    """How many entities of the network the trail holds."""
    _, rows = db.execute(
        f"SELECT COUNT(DISTINCT entity) FROM {db.table(TRAIL)} WHERE network = ?", (network,)
    )
    return int(rows[0][0]) if rows else 0


def _has(db: SqlBackend, network: str, entity: str) -> bool:
    _, rows = db.execute(
        f"SELECT 1 FROM {db.table(TRAIL)} WHERE network = ? AND entity = ? LIMIT 1",
        (network, entity),
    )
    return bool(rows)


def _require(db: SqlBackend, network: str, entity: str | None) -> None:
    """NotFound unless the view knows the network (and the entity has events)."""
    if not _has(db, network, entity_id("network", network)):
        raise NotFound("network", f"no network {network!r}")
    if entity is not None and not _has(db, network, entity):
        raise NotFound("entity", f"no events of {entity} in network {network!r}")


__all__ = [
    "EVENTS",
    "KINDS",
    "LIMIT",
    "PARTIES",
    "TRAIL",
    "EntitySummary",
    "Trail",
    "TrailEntry",
    "entities",
    "entity_count",
    "entity_id",
    "lifecycle_record",
    "like_pattern",
    "named_entities",
    "parse_entity",
    "trail",
]
