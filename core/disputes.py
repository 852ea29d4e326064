"""Disputes, as the CLI and the web handle them: raise, comment, withdraw, resolve, read.

:class:`DisputeService` records the dispute commands (see
:mod:`partnerledger.domain.dispute` for their rules) and does what the
domain cannot, because it needs the views or the evidence files:

* evidence files are checked (10 MiB at most), the command decided, then
  the files stored by content hash, then the event appended: a refused
  command stores nothing, and no event ever names a file that is not there;
* a dispute on a ledger entry needs the entry to exist in the ledger view
  (an entry is named ``MEMBER/SOURCE``: its member and the command id of the
  event that caused it, see :func:`entry_ref`);
* a resolution builds its compensating events (``credit.reassigned``,
  ``ledger.adjusted``; a reversal is an adjustment of exactly minus what is
  left of an entry: the entry's amount plus earlier adjustments of it) and
  records them with ``dispute.resolved`` in **one** transaction, all or nothing.

Reading: :func:`dispute_records` and :func:`dispute_record` fold a network's
dispute events from the audit trail view (every event of ``dispute:<slug>``,
compensations included), with the dispute's parties.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from .commands import (
    Command,
    DisputeSubjectKind,
    convert_command,
)
from .domain.dispute import Dispute, dispute_id, split_entry
from .errors import InvalidCommand, InvalidTransition, NotFound, from_validation_error
from .events import Event
from .evidence import EvidenceStore, check_file, digest
from .ledger import Ledger
from .projection import Projector
from .sql import SqlBackend
from .views import ledger as ledger_view
from .views.trail import EVENTS, PARTIES, TRAIL, TrailEntry

#: How a subject is written on the command line and in links: KIND:ID.
SUBJECT_KINDS: dict[str, DisputeSubjectKind] = {
    "referral": "referral",
    "conversion": "conversion",
    "attribution": "attribution",
    "ledger-entry": "ledger_entry",
    "ledger_entry": "ledger_entry",
}
COMPENSATIONS = ("credit.reassigned", "ledger.adjusted")


def entry_ref(member: str, source: str) -> str:
    """The identity of a ledger entry: ``MEMBER/SOURCE``."""
    return f"{member}/{source}"


def parse_subject(text: str, field: str = "on") -> tuple[DisputeSubjectKind, str]:
    """``referral:R``, ``conversion:R``, ``attribution:R`` or ``ledger-entry:MEMBER/SOURCE``."""
    kind, colon, subject = text.strip().partition(":")
    if not colon or kind not in SUBJECT_KINDS or not subject:
        raise InvalidCommand(
            field,
            f"{text!r}: expected referral:ID, conversion:ID, attribution:ID or "
            "ledger-entry:MEMBER/SOURCE",
        )
    return SUBJECT_KINDS[kind], subject


def subject_text(kind: str, subject: str) -> str:
    """A subject as :func:`parse_subject` reads it."""
    return f"{kind.replace('_', '-')}:{subject}"


def entry_lines(db: SqlBackend, network: str, ref: str) -> list[ledger_view.Entry]:
    """The ledger entries an entry identity names (usually one), in ledger order."""
    member, source = split_entry(ref)
    if not member or not source:
        return []
    return [e for e in ledger_view.entries(db, network, member) if e.source == source]


@dataclass(frozen=True)
class Upload:
    """An evidence file as submitted: its name, media type and bytes."""

    name: str
    media_type: str
    data: bytes


def _evidence(texts: Iterable[str], uploads: Sequence[Upload]) -> list[dict[str, Any]]:
    for upload in uploads:  # before the command: its size must name the form's field
        check_file(upload.name, upload.media_type, upload.data, "evidence_file")
    items: list[dict[str, Any]] = [{"text": text} for text in texts if text.strip()]
    items.extend(
        {"sha256": digest(u.data), "name": u.name, "media_type": u.media_type, "size": len(u.data)}
        for u in uploads
    )
    return items


def _command(fields: dict[str, Any]) -> Command:
    payload = {k: v for k, v in fields.items() if v not in (None, "", [], (), {})}
    try:
        return convert_command(payload)
    except msgspec.ValidationError as error:
        raise from_validation_error(error) from None


def _amount(text: str | Decimal, field: str) -> Decimal:
    try:
        value = text if isinstance(text, Decimal) else Decimal(str(text).strip())
    except InvalidOperation:
        raise InvalidCommand(field, f"{text!r} is not an amount") from None
    if not value.is_finite():
        raise InvalidCommand(field, f"{text!r} is not an amount")
    return value


class DisputeService:
    """Raise, comment, withdraw and resolve disputes over one store."""

    def __init__(self, ledger: Ledger, projector: Projector, files: EvidenceStore) -> None:
        self.ledger = ledger
        self.projector = projector
        self.files = files

    def _record(self, command: Command, uploads: Sequence[Upload]) -> Event | None:
        """Decide the command, store its files, append its event; all or nothing written."""
        work = self.ledger.unit_of_work()
        event = work.decide(command)
        for upload in uploads:  # the files first: an event never names a missing file
            self.files.put(command.network, upload.name, upload.media_type, upload.data)
        work.commit()
        self.projector.catch_up()
        return event

    def _base(self, network: str, actor: str, at: datetime) -> dict[str, Any]:
        return {"network": network, "actor": actor, "occurred_at": at.isoformat()}

    def raise_dispute(
        self,
        *,
        network: str,
        dispute: str,
        subject_kind: str,
        subject: str,
        statement: str,
        actor: str,
        at: datetime,
        raised_by: str | None = None,
        texts: Iterable[str] = (),
        uploads: Sequence[Upload] = (),
        command_id: str | None = None,
    ) -> Event | None:
        """Raise a dispute; for a ledger entry, the entry must be in the ledger view."""
        command = _command(
            {
                "type": "dispute.raised", **self._base(network, actor, at), "dispute": dispute,
                "subject_kind": subject_kind, "subject": subject, "statement": statement,
                "raised_by": raised_by, "evidence": _evidence(texts, uploads),
                "command_id": command_id,
            }
        )  # fmt: skip
        if subject_kind == "ledger_entry":
            self.ledger.unit_of_work().network(network)
            self.projector.catch_up()
            if "/" in subject and not entry_lines(self.projector.db, network, subject):
                raise NotFound("subject", f"no ledger entry {subject!r} in network {network!r}")
        return self._record(command, uploads)

    def comment(
        self,
        *,
        network: str,
        dispute: str,
        text: str,
        actor: str,
        at: datetime,
        author: str | None = None,
        texts: Iterable[str] = (),
        uploads: Sequence[Upload] = (),
        command_id: str | None = None,
    ) -> Event | None:
        """A party's or a coordinator's comment, with evidence."""
        command = _command(
            {
                "type": "dispute.commented", **self._base(network, actor, at),
                "dispute": dispute, "text": text, "author": author,
                "evidence": _evidence(texts, uploads), "command_id": command_id,
            }
        )  # fmt: skip
        return self._record(command, uploads)

    def withdraw(
        self,
        *,
        network: str,
        dispute: str,
        actor: str,
        at: datetime,
        by: str | None = None,
        reason: str | None = None,
    ) -> Event | None:
        """The raiser withdraws the dispute."""
        command = _command(
            {
                "type": "dispute.withdrawn", **self._base(network, actor, at),
                "dispute": dispute, "by": by, "reason": reason,
            }
        )  # fmt: skip
        return self._record(command, ())

    def resolve(
        self,
        *,
        network: str,
        dispute: str,
        outcome: str,
        reason: str,
        actor: str,
        at: datetime,
        reassign: Sequence[tuple[str, str]] = (),
        adjust: Sequence[tuple[str, str | Decimal]] = (),
        reverse: Sequence[str] = (),
    ) -> list[Event]:
        """Resolve a dispute with its compensating events, all in one transaction.

        ``reassign``: (referral, new member) pairs; ``adjust``: (member,
        signed amount) pairs; ``reverse``: entry identities (MEMBER/SOURCE),
        each reversed by an adjustment of minus what is left of it.
        """
        work = self.ledger.unit_of_work()
        found = work.network(network)
        current = work.load(Dispute, dispute_id(network, dispute))
        if current is None:
            raise NotFound("dispute", f"no dispute {dispute!r} in network {network!r}")
        if current.status != "raised":
            raise InvalidTransition("dispute", f"dispute {dispute!r} is already {current.status}")
        base = self._base(network, actor, at)
        commands: list[Command] = []

        def next_id() -> str:
            return f"{dispute}/{len(commands) + 1}"

        for referral, to_member in reassign:
            credited = work.referral(network, referral, "reassign_credit").credited
            commands.append(
                _command(
                    {
                        "type": "credit.reassigned", **base, "referral": referral,
                        "from_member": credited, "to_member": to_member, "dispute": dispute,
                        "reason": reason, "command_id": next_id(),
                    }
                )
            )  # fmt: skip
        for member, amount in adjust:
            commands.append(
                _command(
                    {
                        "type": "ledger.adjusted", **base, "dispute": dispute, "member": member,
                        "amount": str(_amount(amount, "adjust")), "currency": found.currency,
                        "reason": reason, "command_id": next_id(),
                    }
                )
            )  # fmt: skip
        if reverse:
            self.projector.catch_up()
        for ref in reverse:
            left = self.left_of_entry(network, ref)
            if left == 0:
                raise InvalidTransition("reverse_entry", f"entry {ref!r} is reversed in full")
            commands.append(
                _command(
                    {
                        "type": "ledger.adjusted", **base, "dispute": dispute,
                        "member": split_entry(ref)[0], "amount": str(-left),
                        "currency": found.currency, "reason": reason, "entry": ref,
                        "command_id": next_id(),
                    }
                )
            )  # fmt: skip
        ids = [command.command_id for command in commands]
        commands.append(
            _command(
                {
                    "type": "dispute.resolved", **base, "dispute": dispute, "outcome": outcome,
                    "reason": reason, "compensations": ids,
                }
            )
        )  # fmt: skip
        outcome_ = self.ledger.execute(*commands)
        self.projector.catch_up()
        return outcome_.recorded

    def left_of_entry(self, network: str, ref: str) -> Decimal:
        """What is left of a ledger entry: its amount plus every adjustment that names it.

        NotFound on ``reverse_entry`` when the ledger view has no such entry.
        """
        lines = entry_lines(self.projector.db, network, ref)
        if not lines:
            raise NotFound("reverse_entry", f"no ledger entry {ref!r} in network {network!r}")
        left = sum((line.amount for line in lines), Decimal(0))
        for _, event in self.ledger.store.read(topics=["ledger.adjusted"]):
            command: Any = event.command
            if command.network == network and command.entry == ref:
                left += command.amount
        return left


# ------------------------------------------------------------------ reading


@dataclass(frozen=True)
class EvidenceItem:
    """A piece of evidence as an event gave it: a text, or a file named by its hash."""

    text: str | None
    sha256: str | None
    name: str | None
    media_type: str | None
    size: int | None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON (absent fields left out)."""
        found = {
            "text": self.text,
            "sha256": self.sha256,
            "name": self.name,
            "media_type": self.media_type,
            "size": self.size,
        }
        return {k: v for k, v in found.items() if v is not None}


def _items(raw: Iterable[dict[str, Any]]) -> list[EvidenceItem]:
    return [
        EvidenceItem(
            text=item.get("text"),
            sha256=item.get("sha256"),
            name=item.get("name"),
            media_type=item.get("media_type"),
            size=item.get("size"),
        )
        for item in raw
    ]


@dataclass(frozen=True)
class Comment:
    """A comment on a dispute."""

    position: int
    author: str | None  # a member; None: a coordinator (see actor)
    actor: str
    occurred_at: datetime
    text: str
    evidence: list[EvidenceItem]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "position": self.position,
            "author": self.author,
            "actor": self.actor,
            "occurred_at": _iso(self.occurred_at),
            "text": self.text,
            "evidence": [item.as_dict() for item in self.evidence],
        }


@dataclass
class DisputeRecord:
    """A dispute as its events tell it."""

    network: str
    dispute: str
    subject_kind: str = ""
    subject: str = ""
    statement: str = ""
    raised_by: str | None = None
    actor: str = ""
    raised_at: datetime | None = None
    status: str = "raised"
    outcome: str | None = None
    reason: str | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    updated_at: datetime | None = None
    evidence: list[EvidenceItem] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    compensations: list[TrailEntry] = field(default_factory=list)
    events: list[TrailEntry] = field(default_factory=list)
    parties: list[str] = field(default_factory=list)

    @property
    def subject_text(self) -> str:
        """The subject as ``kind:id``."""
        return subject_text(self.subject_kind, self.subject)

    @property
    def referral(self) -> str | None:
        """The referral disputed, if the subject is one."""
        return self.subject if self.subject_kind != "ledger_entry" else None

    def files(self) -> set[str]:
        """The hashes of every file the dispute's events name."""
        every = [*self.evidence, *(item for c in self.comments for item in c.evidence)]
        return {item.sha256 for item in every if item.sha256}

    def file(self, sha256: str) -> EvidenceItem | None:
        """The evidence item naming a file."""
        every = [*self.evidence, *(item for c in self.comments for item in c.evidence)]
        return next((item for item in every if item.sha256 == sha256), None)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "network": self.network,
            "dispute": self.dispute,
            "subject_kind": self.subject_kind,
            "subject": self.subject,
            "statement": self.statement,
            "raised_by": self.raised_by,
            "actor": self.actor,
            "raised_at": _iso(self.raised_at),
            "status": self.status,
            "outcome": self.outcome,
            "reason": self.reason,
            "closed_at": _iso(self.closed_at),
            "closed_by": self.closed_by,
            "evidence": [item.as_dict() for item in self.evidence],
            "comments": [c.as_dict() for c in self.comments],
            "compensations": [
                {"type": e.type, "command_id": e.command_id, "command": e.command}
                for e in self.compensations
            ],
            "parties": self.parties,
        }

    def apply(self, entry: TrailEntry) -> None:
        """Fold one event of the dispute's trail."""
        command = entry.command
        self.events.append(entry)
        self.updated_at = entry.occurred_at
        if entry.type == "dispute.raised":
            self.subject_kind = command["subject_kind"]
            self.subject = command["subject"]
            self.statement = command["statement"]
            self.raised_by = command.get("raised_by")
            self.actor = entry.actor
            self.raised_at = entry.occurred_at
            self.evidence = _items(command.get("evidence", ()))
        elif entry.type == "dispute.commented":
            self.comments.append(
                Comment(
                    position=entry.position,
                    author=command.get("author"),
                    actor=entry.actor,
                    occurred_at=entry.occurred_at,
                    text=command["text"],
                    evidence=_items(command.get("evidence", ())),
                )
            )
        elif entry.type in COMPENSATIONS:
            self.compensations.append(entry)
        elif entry.type in ("dispute.resolved", "dispute.withdrawn"):
            self.status = "resolved" if entry.type == "dispute.resolved" else "withdrawn"
            self.outcome = command.get("outcome")
            self.reason = command.get("reason")
            self.closed_at = entry.occurred_at
            self.closed_by = entry.actor


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def _rows(db: SqlBackend, network: str, entity: str | None) -> dict[str, DisputeRecord]:
    where = "t.network = ? AND t.kind = 'dispute'"
    params: list[Any] = [network]
    if entity is not None:
        where += " AND t.entity = ?"
        params.append(entity)
    _, rows = db.execute(
        "SELECT t.entity, t.position, t.type, t.actor, t.occurred_at, e.recorded_at, "  # noqa: S608
        f"e.command_id, e.command FROM {db.table(TRAIL)} t JOIN {db.table(EVENTS)} e "
        f"ON e.position = t.position WHERE {where} ORDER BY t.position",  # the view's own tables
        params,
    )
    found: dict[str, DisputeRecord] = {}
    for name, position, type_, actor, occurred, recorded, command_id, text in rows:
        slug = str(name).partition(":")[2]
        record = found.setdefault(slug, DisputeRecord(network, slug))
        record.apply(
            TrailEntry(
                position=int(position),
                network=network,
                entity=str(name),
                type=str(type_),
                actor=str(actor),
                occurred_at=db.dt(occurred),
                recorded_at=db.dt(recorded),
                command_id=str(command_id),
                command=json.loads(text),
            )
        )
    match = "record LIKE ?" if entity is None else "record = ?"
    _, members = db.execute(
        f"SELECT record, member FROM {db.table(PARTIES)} "  # noqa: S608  # its own table
        f"WHERE network = ? AND {match} ORDER BY member",
        (network, "dispute:%" if entity is None else entity),
    )
    for record_name, member in members:
        party_of = found.get(str(record_name).partition(":")[2])
        if party_of is not None:
            party_of.parties.append(str(member))
    return {slug: r for slug, r in found.items() if r.raised_at is not None}


def dispute_records(
    db: SqlBackend, network: str, *, status: str | None = None, member: str | None = None
) -> list[DisputeRecord]:
    """A network's disputes, newest first; of one ``status``, or those a ``member`` is party to."""
    if status is not None and status not in ("raised", "resolved", "withdrawn"):
        raise InvalidCommand("status", f"{status!r}: expected raised, resolved or withdrawn")
    found = [
        record
        for record in _rows(db, network, None).values()
        if (status is None or record.status == status)
        and (member is None or member in record.parties)
    ]
    return sorted(found, key=lambda r: r.events[0].position, reverse=True)


def dispute_record(db: SqlBackend, network: str, dispute: str) -> DisputeRecord:
    """One dispute, with every event of its trail; NotFound on ``dispute``."""
    found = _rows(db, network, f"dispute:{dispute}").get(dispute)
    if found is None:
        raise NotFound("dispute", f"no dispute {dispute!r} in network {network!r}")
    return found


__all__ = [
    "COMPENSATIONS",
    "SUBJECT_KINDS",
    "Comment",
    "DisputeRecord",
    "DisputeService",
    "EvidenceItem",
    "Upload",
    "dispute_record",
    "dispute_records",
    "entry_lines",
    "entry_ref",
    "parse_subject",
    "subject_text",
]
