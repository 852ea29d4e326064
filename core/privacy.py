"""Personal data in referrals: sealed with a key per data subject, and erasable.

What is personal: the ``customer`` of a ``referral.sent`` and its
``customer_contact`` (a command class lists them in ``personal``). The event
that records such a command never holds them in the clear: each is a
:class:`Sealed` box, AES-256-GCM under a key that belongs to one *data
subject* (the customer) alone. The keys live beside the log, in
``partnerledger_subject_keys``; erasing a subject records ``subject.erased``
and then deletes its key, so every box of that subject becomes unreadable
while the log, its hashes and its proofs stay exactly as they were.

* **Sealing** happens when a unit of work commits
  (:meth:`Vault.seal_events`): the subjects' keys are created (one batch per
  commit) and written *before* the events are appended. A key without an
  event is harmless; an event without its key would be unreadable.
* **Subjects**: a command may name its subject (``subject``); otherwise the
  subject is derived from the customer's name, ``s-`` + 32 hex digits of
  HMAC-SHA256 under a secret of the network (a row of the same table with
  an empty subject), so one customer is one subject within a network, and
  attribution groups competing referrals by subject even after erasure.
* **Reading**: whoever shows a personal field asks the vault
  (:meth:`Vault.reveal`, :meth:`Vault.reveal_commands`...): text in the
  clear is shown as it is, a box is opened, and a box that no longer opens
  (its key destroyed) reads :data:`ERASED`. Views never store personal
  data; they store the subject, or nothing, and reveal at display time.
* **Keys are never cached** between calls: a process never serves a key
  another process (or itself) has destroyed. Each call reads the keys it
  needs in one query.

The exact byte layout is in ``docs/privacy.md``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
import unicodedata
import weakref
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ConcurrencyConflict, InvalidCommand, StoreUnavailable
from .types import Slug

if TYPE_CHECKING:
    from .commands import Command
    from .events import Event
    from .ledger import Ledger, Outcome, UnitOfWork
    from .recorders import NewKeys
    from .sql import SqlBackend
    from .store import Database

#: What a personal field shows once its subject is erased.
ERASED = "[erased]"
#: The table of subject keys (and of each network's pseudonym secret).
KEYS = "partnerledger_subject_keys"
#: The ``subject`` of a network's pseudonym secret row (no slug is empty).
SECRET_ROW = ""
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
#: The first part of every box's associated data (the format's version).
AAD_PREFIX = b"partnerledger/sealed/v1"
#: Subjects per ``IN (...)`` list.
_CHUNK = 500

Box = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9+/]+={0,2}$",
        min_length=40,
        max_length=4096,
        description="Base64 of a 12-byte nonce followed by the AES-256-GCM ciphertext and tag.",
    ),
]


class Sealed(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A personal value as the log keeps it: a box only the subject's key opens."""

    subject: Slug
    box: Box


#: A personal field's value: text in the clear (before sealing, or after revealing),
#: a sealed box, or nothing.
Value = str | Sealed | None
C = TypeVar("C", bound="Command")


def associated_data(network: str, subject: str, field: str) -> bytes:
    """What a box is bound to: the network, the subject and the field (NUL-separated UTF-8)."""
    return b"\x00".join((AAD_PREFIX, network.encode(), subject.encode(), field.encode()))


def seal_with(
    key: bytes, network: str, subject: str, field: str, plaintext: str, cipher: AESGCM | None = None
) -> Sealed:
    """Seal ``plaintext`` under ``key``: a fresh random nonce, then AES-256-GCM.

    ``cipher``: ``AESGCM(key)`` made already (for many fields under one key).
    """
    nonce = os.urandom(NONCE_BYTES)
    sealed = (cipher if cipher is not None else AESGCM(key)).encrypt(
        nonce, plaintext.encode("utf-8"), associated_data(network, subject, field)
    )
    return Sealed(subject=subject, box=base64.b64encode(nonce + sealed).decode("ascii"))


def open_with(key: bytes, network: str, field: str, sealed: Sealed) -> str | None:
    """The text in a box, or ``None`` when ``key`` does not open it (or it was tampered with)."""
    try:
        raw = base64.b64decode(sealed.box, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        return None
    try:
        data = AESGCM(key).decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated_data(network, sealed.subject, field)
        )
        return data.decode("utf-8")
    except (InvalidTag, UnicodeDecodeError):
        return None


def normalized_name(name: str) -> str:
    """A name as subjects are derived from it: NFKC, case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def pseudonym(secret: bytes, name: str) -> str:
    """The subject of a customer name under a network's secret: ``s-`` + 32 hex digits."""
    digest = hmac.new(secret, normalized_name(name).encode("utf-8"), hashlib.sha256)
    return "s-" + digest.hexdigest()[:32]


def personal_fields(command: Command) -> tuple[str, ...]:
    """The names of a command's personal fields (empty for most commands)."""
    return type(command).personal


def personal_by_type() -> dict[str, tuple[str, ...]]:
    """Command type → its personal fields, for the types that have any."""
    from .commands import COMMAND_TYPES

    return {name: cls.personal for name, cls in COMMAND_TYPES.items() if cls.personal}


def subject_of(command: Command) -> str | None:
    """The data subject a command's personal fields belong to (once prepared)."""
    subject = getattr(command, "subject", None) if personal_fields(command) else None
    return subject if isinstance(subject, str) else None


def has_plaintext(command: Command) -> bool:
    """Whether any personal field of the command is still in the clear."""
    return any(isinstance(getattr(command, name), str) for name in personal_fields(command))


def shown(value: Value) -> str:
    """A revealed value as text (``""`` for none); a box still sealed shows as erased."""
    if value is None:
        return ""
    return value if isinstance(value, str) else ERASED


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class _Wanted:
    """Boxes to open, grouped by network and subject."""

    boxes: list[tuple[str, str, Sealed]] = field(default_factory=list)

    def add(self, network: str, name: str, value: Value) -> None:
        if isinstance(value, Sealed):
            self.boxes.append((network, name, value))

    def subjects(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        for network, _, sealed in self.boxes:
            found[network].add(sealed.subject)
        return found


def sealed_subjects(events: Sequence[Event]) -> dict[str, set[str]]:
    """The data subjects whose personal fields in the clear the events hold, by network."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for event in events:
        command = event.command
        if not has_plaintext(command):
            continue
        subject = subject_of(command)
        if subject is None:  # pragma: no cover - decide prepares every command
            raise InvalidCommand("subject", "the command was not prepared (no data subject)")
        wanted[command.network].add(subject)
    return wanted


class Vault:
    """The subjects' keys of one store, in its database.

    Keeps one connection of its own, opened on first use and shared by the
    threads of the process one at a time (or uses ``db`` when given, which
    it never closes), and creates the table when first used. A PostgreSQL
    connection the server closed is opened again by the next statement.
    """

    def __init__(self, database: Database, *, db: SqlBackend | None = None) -> None:
        self.database = database
        self._borrowed = db
        self._ready = False
        #: Secrets known to be stored (they never change once stored).
        self._secrets: dict[str, bytes] = {}
        #: Secrets made up here and not stored yet: stored by the first commit that uses them.
        self._pending: dict[str, bytes] = {}
        #: The vault's own connection, and what closes it (with the vault at the latest).
        self._kept: SqlBackend | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        #: One thread at a time uses the connection (re-entrant: a call may nest another).
        self._lock = threading.RLock()

    # -- connection -------------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[SqlBackend]:
        """A connection to the store's database with the keys table in it."""
        if self._borrowed is not None:
            self._create(self._borrowed)
            yield self._borrowed
            return
        with self._lock:
            if self._kept is None:
                from .sql import connect

                self._kept = connect(self.database, shared=True)
                # Closed with the vault when nobody calls close(): never left to the GC.
                self._finalizer = weakref.finalize(self, self._kept.close)
            self._create(self._kept)
            yield self._kept

    def close(self) -> None:
        """Close the vault's own connection (the next use opens another)."""
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._kept = None
            self._finalizer = None

    def _create(self, db: SqlBackend) -> None:
        if self._ready:
            return
        statement = f"""CREATE TABLE IF NOT EXISTS {db.table(KEYS)} (
            network TEXT NOT NULL,
            subject TEXT NOT NULL,
            key TEXT NOT NULL,
            created_at {db.timestamp} NOT NULL,
            PRIMARY KEY (network, subject)
        )"""
        for attempt in range(5):
            try:
                db.execute(statement)
                break
            except StoreUnavailable:
                # Two processes creating it at once collide in PostgreSQL's catalog.
                if attempt == 4:
                    raise
        self._ready = True

    # -- subjects ---------------------------------------------------------

    def _secret(self, db: SqlBackend, network: str) -> bytes | None:
        found = self._secrets.get(network)
        if found is not None:
            return found
        _, rows = db.execute(
            f"SELECT key FROM {db.table(KEYS)} WHERE network = ? AND subject = ?",  # noqa: S608
            (network, SECRET_ROW),
        )
        if rows:
            found = self._secrets[network] = base64.b64decode(str(rows[0][0]))
        return found

    def subject_for(self, network: str, name: str) -> str:
        """The subject of a customer name in a network (its secret made up if it has none yet).

        A secret made up here is stored by the first commit that seals
        something of the network (:meth:`seal_events`), not before: a
        command that is refused writes nothing.
        """
        secret = self._secrets.get(network) or self._pending.get(network)
        if secret is None:
            with self.connection() as db:
                secret = self._secret(db, network)
            if secret is None:
                secret = self._pending[network] = os.urandom(KEY_BYTES)
        return pseudonym(secret, name)

    def find_subject(self, network: str, name: str) -> str | None:
        """The subject a customer name has in a network, or ``None`` when it has no secret yet."""
        with self.connection() as db:
            secret = self._secret(db, network)
        return pseudonym(secret, name) if secret is not None else None

    def prepare(self, command: C) -> C:
        """The command with its ``subject`` filled in (unchanged if it has no personal field).

        The subject is the one given, else the one its sealed fields name,
        else derived from the customer's name. Raises InvalidCommand when
        they disagree.
        """
        fields = personal_fields(command)
        if not fields:
            return command
        given = subject_of(command)
        boxed: str | None = None
        for name in fields:
            value = getattr(command, name)
            if not isinstance(value, Sealed):
                continue
            if boxed is not None and value.subject != boxed:
                raise InvalidCommand(
                    name, f"is sealed for data subject {value.subject!r}, not {boxed!r}"
                )
            boxed = value.subject
        if given is not None and boxed is not None and given != boxed:
            raise InvalidCommand(
                "subject",
                f"{given!r} is not the data subject the fields are sealed for ({boxed!r})",
            )
        subject = given or boxed
        if subject is None:
            first = getattr(command, fields[0])
            assert isinstance(first, str)  # required, and not sealed (no box named a subject)
            subject = self.subject_for(command.network, first)
        if subject == given:
            return command
        return msgspec.structs.replace(command, subject=subject)

    def _store_secrets(self, db: SqlBackend, networks: Iterable[str]) -> None:
        pending = {n: self._pending[n] for n in networks if n in self._pending}
        if not pending:
            return
        now = db.ts(datetime.now(UTC))
        db.executemany(
            f"INSERT INTO {db.table(KEYS)} (network, subject, key, created_at) "  # noqa: S608
            "VALUES (?, ?, ?, ?) ON CONFLICT (network, subject) DO NOTHING",
            [(network, SECRET_ROW, _b64(secret), now) for network, secret in pending.items()],
        )
        for network, secret in pending.items():
            del self._pending[network]
            stored = self._secret(db, network)
            if stored != secret:  # another process stored its own first
                raise ConcurrencyConflict(
                    "subject",
                    f"network {network!r} got its pseudonym secret from another process "
                    "at the same time; nothing was written, try again",
                )

    # -- keys -------------------------------------------------------------

    def _select_keys(
        self, db: SqlBackend, network: str, subjects: Iterable[str]
    ) -> dict[str, bytes]:
        wanted = sorted(set(subjects))
        found: dict[str, bytes] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            _, rows = db.execute(
                f"SELECT subject, key FROM {db.table(KEYS)} "  # noqa: S608  # constant table name
                f"WHERE network = ? AND subject IN ({marks})",
                (network, *chunk),
            )
            found.update({str(s): base64.b64decode(str(k)) for s, k in rows})
        return found

    def _keys(
        self, db: SqlBackend, network: str, subjects: Iterable[str], *, create: bool
    ) -> dict[str, bytes]:
        wanted = set(subjects)
        found = self._select_keys(db, network, wanted)
        missing = wanted - found.keys()
        if create and missing:
            now = db.ts(datetime.now(UTC))
            with db.transaction():  # one commit for the batch, not one per key
                db.executemany(
                    f"INSERT INTO {db.table(KEYS)} (network, subject, key, created_at) "  # noqa: S608
                    "VALUES (?, ?, ?, ?) ON CONFLICT (network, subject) DO NOTHING",
                    [(network, s, _b64(os.urandom(KEY_BYTES)), now) for s in sorted(missing)],
                )
            # Read back: a key another process created first is the one to use.
            found.update(self._select_keys(db, network, missing))
        return found

    def has_key(self, network: str, subject: str) -> bool:
        """Whether the subject's key exists (its boxes can be opened)."""
        with self.connection() as db:
            return bool(self._select_keys(db, network, [subject]))

    def is_erased(self, network: str, subject: str) -> bool:
        """Whether the subject's boxes can no longer be opened (no key)."""
        return not self.has_key(network, subject)

    # -- sealing ----------------------------------------------------------

    def seal(self, network: str, subject: str, field: str, plaintext: str) -> Sealed:
        """Seal one value (the subject's key is created on first use)."""
        with self.connection() as db:
            key = self._keys(db, network, [subject], create=True)[subject]
        return seal_with(key, network, subject, field, plaintext)

    def create_keys(self, wanted: Mapping[str, Iterable[str]]) -> dict[str, dict[str, bytes]]:
        """The keys of these subjects (network → subjects), created and stored if missing.

        The networks' pseudonym secrets made up here are stored first. One
        connection, one transaction of new keys per network and 500 subjects.
        """
        with self.connection() as db:
            self._store_secrets(db, wanted)
            return {
                network: self._keys(db, network, subjects, create=True)
                for network, subjects in wanted.items()
            }

    def keys_for(
        self, wanted: Mapping[str, Iterable[str]]
    ) -> tuple[dict[str, dict[str, bytes]], NewKeys | None]:
        """The keys of these subjects: the stored ones read, the missing ones made up.

        The new keys are not stored here: they come back as ``new_keys`` for
        :meth:`Store.append`, which stores them in the events' own
        transaction, before the events (one commit instead of two). The
        networks' pseudonym secrets made up here are stored first.
        """
        with self.connection() as db:
            self._store_secrets(db, wanted)
            now = db.ts(datetime.now(UTC))
            keys: dict[str, dict[str, bytes]] = {}
            rows: list[tuple[str, str, str, Any]] = []
            for network, subjects in wanted.items():
                found = self._select_keys(db, network, subjects)
                for subject in sorted(set(subjects) - found.keys()):
                    found[subject] = key = os.urandom(KEY_BYTES)
                    rows.append((network, subject, _b64(key), now))
                keys[network] = found
            return keys, ((db.table(KEYS), rows) if rows else None)

    def seal_events(
        self, events: Sequence[Event], keys: Mapping[str, Mapping[str, bytes]] | None = None
    ) -> list[Event]:
        """The events with every personal field in the clear sealed; keys created first.

        One connection and one batch of keys per network, whatever the
        number of events; none with ``keys`` (from :meth:`create_keys` or
        :meth:`keys_for`) that hold every subject. Events without personal
        data are returned as they are.
        """
        wanted = sealed_subjects(events)
        if not wanted:
            return list(events)
        if keys is None:
            keys = self.create_keys(wanted)
        todo = [i for i, event in enumerate(events) if has_plaintext(event.command)]
        sealed = list(events)
        ciphers: dict[bytes, AESGCM] = {}  # one per key, not per field
        for i in todo:
            event = events[i]
            command = event.command
            subject = subject_of(command)
            assert subject is not None
            key = keys[command.network][subject]
            cipher = ciphers.get(key)
            if cipher is None:
                cipher = ciphers[key] = AESGCM(key)
            changes = {
                name: seal_with(key, command.network, subject, name, value, cipher)
                for name in personal_fields(command)
                if isinstance(value := getattr(command, name), str)
            }
            sealed[i] = msgspec.structs.replace(
                event,
                command=msgspec.structs.replace(command, **changes),
            )
        return sealed

    # -- reading ----------------------------------------------------------

    def _open_all(self, wanted: _Wanted) -> dict[tuple[str, str, Sealed], str | None]:
        if not wanted.boxes:
            return {}
        with self.connection() as db:
            keys = {
                network: self._select_keys(db, network, subjects)
                for network, subjects in wanted.subjects().items()
            }
        opened: dict[tuple[str, str, Sealed], str | None] = {}
        for network, name, sealed in wanted.boxes:
            key = keys[network].get(sealed.subject)
            opened[(network, name, sealed)] = (
                open_with(key, network, name, sealed) if key is not None else None
            )
        return opened

    def open(self, network: str, field: str, sealed: Sealed) -> str | None:
        """The text in a box, or ``None`` when its subject is erased (the key is gone)."""
        wanted = _Wanted([(network, field, sealed)])
        return self._open_all(wanted)[(network, field, sealed)]

    def reveal(self, network: str, field: str, value: Value) -> str | None:
        """A personal value as people read it: the text, :data:`ERASED`, or ``None`` for none."""
        return self.reveal_many(network, [(field, value)])[0]

    def reveal_many(self, network: str, items: Sequence[tuple[str, Value]]) -> list[str | None]:
        """Several personal values of one network, revealed with one read of the keys.

        A box opens to its text; a box that no longer opens reads
        :data:`ERASED` (see :meth:`open` for ``None`` instead).
        """
        wanted = _Wanted()
        for name, value in items:
            wanted.add(network, name, value)
        opened = self._open_all(wanted)
        found: list[str | None] = []
        for name, value in items:
            if isinstance(value, Sealed):
                text = opened[(network, name, value)]
                found.append(ERASED if text is None else text)
            else:
                found.append(value)
        return found

    def reveal_commands(self, commands: Sequence[C]) -> list[C]:
        """The commands with their personal fields revealed (text, or :data:`ERASED`)."""
        wanted = _Wanted()
        for command in commands:
            for name in personal_fields(command):
                wanted.add(command.network, name, getattr(command, name))
        if not wanted.boxes:
            return list(commands)
        opened = self._open_all(wanted)
        found: list[C] = []
        for command in commands:
            changes: dict[str, Any] = {}
            for name in personal_fields(command):
                value = getattr(command, name)
                if isinstance(value, Sealed):
                    text = opened[(command.network, name, value)]
                    changes[name] = ERASED if text is None else text
            found.append(msgspec.structs.replace(command, **changes) if changes else command)
        return found

    def reveal_events(self, events: Sequence[Event]) -> list[Event]:
        """The events with their commands revealed."""
        commands = self.reveal_commands([event.command for event in events])
        return [
            event if command is event.command else msgspec.structs.replace(event, command=command)
            for event, command in zip(events, commands, strict=True)
        ]

    def reveal_documents(self, documents: Sequence[dict[str, Any]]) -> None:
        """Reveal, in place, the personal fields of commands as plain JSON data (views' rows)."""
        personal = personal_by_type()
        wanted = _Wanted()
        boxes: list[tuple[dict[str, Any], str, str, Sealed]] = []
        for document in documents:
            network = str(document.get("network", ""))
            for name in personal.get(str(document.get("type", "")), ()):
                value = document.get(name)
                if isinstance(value, dict):
                    try:
                        sealed = msgspec.convert(value, Sealed)
                    except msgspec.ValidationError:
                        continue
                    wanted.add(network, name, sealed)
                    boxes.append((document, network, name, sealed))
        opened = self._open_all(wanted)
        for document, network, name, sealed in boxes:
            text = opened[(network, name, sealed)]
            document[name] = ERASED if text is None else text

    # -- erasing ----------------------------------------------------------

    def erase(self, network: str, subject: str) -> bool:
        """Destroy the subject's key; ``True`` when there was one.

        On SQLite the row is overwritten (``secure_delete``) and the
        write-ahead log checkpointed and truncated, so the key's bytes leave
        the files; PostgreSQL keeps the dead row until it is vacuumed (see
        docs/privacy.md).
        """
        with self.connection() as db:
            if db.kind == "sqlite":
                db.execute("PRAGMA secure_delete = ON")
            count, _ = db.execute(
                f"DELETE FROM {db.table(KEYS)} WHERE network = ? AND subject = ?",  # noqa: S608
                (network, subject),
            )
            if db.kind == "sqlite":
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return count > 0

    def redact_messages(
        self, network: str, texts: Iterable[str], command_ids: Iterable[str]
    ) -> int:
        """Replace ``texts`` by :data:`ERASED` in the notifications of these events.

        The delivery queue and the members' inboxes keep the messages that
        plugins wrote about an event (``partnerledger_deliveries``,
        ``partnerledger_inbox``); the messages about a subject's referrals
        are rewritten before its key goes. Returns the rows changed.
        """
        texts = sorted({t for t in texts if t and t != ERASED}, key=len, reverse=True)
        ids = sorted(set(command_ids))
        if not texts or not ids:
            return 0
        changed = 0
        with self.connection() as db:
            deliveries = db.table("partnerledger_deliveries")
            inbox = db.table("partnerledger_inbox")
            if not _table_exists(db, "partnerledger_deliveries"):
                return 0
            if db.kind == "sqlite":
                db.execute("PRAGMA secure_delete = ON")
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ", ".join("?" for _ in chunk)
                for text in texts:
                    count, _ = db.execute(
                        f"UPDATE {deliveries} SET subject = REPLACE(subject, ?, ?), "  # noqa: S608
                        "body = REPLACE(body, ?, ?) "
                        f"WHERE network = ? AND command_id IN ({marks}) "
                        "AND (subject LIKE ? OR body LIKE ?)",
                        (text, ERASED, text, ERASED, network, *chunk, *_contains(text)),
                    )
                    changed += max(count, 0)
                    if _table_exists(db, "partnerledger_inbox"):
                        count, _ = db.execute(
                            f"UPDATE {inbox} SET subject = REPLACE(subject, ?, ?), "  # noqa: S608
                            "body = REPLACE(body, ?, ?) WHERE delivery_id IN "
                            f"(SELECT id FROM {deliveries} WHERE network = ? "
                            f"AND command_id IN ({marks})) AND (subject LIKE ? OR body LIKE ?)",
                            (text, ERASED, text, ERASED, network, *chunk, *_contains(text)),
                        )
                        changed += max(count, 0)
            if db.kind == "sqlite":
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return changed


def _contains(text: str) -> tuple[str, str]:
    """LIKE patterns (twice) that match any text containing ``text`` (no escaping needed:
    a pattern that matches too much only makes REPLACE a no-op)."""
    return (f"%{text}%", f"%{text}%")


def _table_exists(db: SqlBackend, name: str) -> bool:
    if db.kind == "sqlite":
        _, rows = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        )
        return bool(rows)
    _, rows = db.execute("SELECT to_regclass(?)", (db.table(name),))
    return bool(rows and rows[0][0] is not None)


def vault_for(db: SqlBackend) -> Vault:
    """The vault of the store whose views ``db`` holds.

    ``db`` itself, or, for a private copy of views (views as of a moment),
    the store's database it names as its ``source``: keys are never copied.
    """
    from .store import Database

    source = getattr(db, "source", None)
    if isinstance(source, Database):
        return Vault(source)
    return Vault(db.database, db=db)


# ------------------------------------------------------------------ erasure


def complete_erasure(work: UnitOfWork, network: str, subject: str) -> bool:
    """After ``subject.erased`` is recorded: redact the notifications, then destroy the key.

    The texts to redact are read (opened) first, while the key still
    exists. Returns whether a key was destroyed.
    """
    from .domain import Referral, referral_id

    command_ids: list[str] = []
    wanted: list[tuple[str, Value]] = []
    for slug in work.subject_referrals(network, subject):
        referral = work.load(Referral, referral_id(network, slug))
        if referral is None:  # pragma: no cover - the index only names recorded referrals
            continue
        command_ids.extend(referral.command_ids)
        wanted.append(("customer", referral.customer))
        wanted.append(("customer_contact", referral.customer_contact))
    vault = work.vault
    texts = [t for t in vault.reveal_many(network, wanted) if t is not None and t != ERASED]
    vault.redact_messages(network, texts, command_ids)
    return vault.erase(network, subject)


def erase_subject(
    ledger: Ledger,
    network: str,
    subject: str,
    *,
    actor: str,
    reason: str,
    occurred_at: datetime | None = None,
) -> Outcome:
    """Record ``subject.erased`` and destroy the subject's key (the key stays if recording fails).

    Refused (DomainError naming the field, nothing written) for an unknown
    network or subject, or a subject already erased with no referral since.
    An erasure recorded earlier whose key outlived it (the process stopped
    in between) is completed.
    """
    from .commands import SubjectErased, convert_command
    from .errors import InvalidTransition, from_validation_error
    from .ledger import Outcome

    try:
        command = convert_command(
            {
                "type": "subject.erased",
                "network": network,
                "actor": actor,
                "occurred_at": (occurred_at or ledger.clock()).isoformat(),
                "subject": subject,
                "reason": reason,
            }
        )
    except msgspec.ValidationError as error:
        raise from_validation_error(error) from None
    assert isinstance(command, SubjectErased)
    try:
        return ledger.execute(command)  # commit destroys the key once the event is stored
    except InvalidTransition:
        if not ledger.vault.has_key(network, subject):
            raise
    # Recorded before, yet the key is still there: finish what was interrupted.
    complete_erasure(ledger.unit_of_work(), network, subject)
    return Outcome()


# ------------------------------------------------------------------ subjects


@dataclass
class SubjectSummary:
    """A data subject of a network: its referrals and whether it is erased."""

    subject: str
    referrals: list[str] = field(default_factory=list)
    customer: str = ""
    erased: bool = False
    erasures: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "subject": self.subject,
            "customer": self.customer,
            "referrals": self.referrals,
            "erased": self.erased,
            "erasures": self.erasures,
        }


def subjects(
    ledger: Ledger,
    network: str,
    *,
    referral: str | None = None,
    customer: str | None = None,
) -> list[SubjectSummary]:
    """The data subjects of a network, with their referrals, in order of first appearance.

    ``referral`` keeps the subject of that referral; ``customer`` the
    subject that customer name maps to. A subject whose key is gone shows
    :data:`ERASED`, never a name.
    """
    from .commands import ReferralSent, SubjectErased

    found: dict[str, SubjectSummary] = {}
    latest: dict[str, Value] = {}
    since: dict[str, int] = defaultdict(int)
    for _, event in ledger.store.read(topics=["referral.sent", "subject.erased"]):
        command = event.command
        if command.network != network:
            continue
        if isinstance(command, ReferralSent) and command.subject is not None:
            summary = found.setdefault(command.subject, SubjectSummary(command.subject))
            summary.referrals.append(command.referral)
            latest[command.subject] = command.customer
            since[command.subject] += 1
        elif isinstance(command, SubjectErased):
            summary = found.setdefault(command.subject, SubjectSummary(command.subject))
            summary.erasures += 1
            since[command.subject] = 0
    chosen = list(found.values())
    if referral is not None:
        chosen = [s for s in chosen if referral in s.referrals]
    if customer is not None:
        wanted = ledger.vault.find_subject(network, customer)
        chosen = [s for s in chosen if s.subject == wanted]
    names = ledger.vault.reveal_many(network, [("customer", latest.get(s.subject)) for s in chosen])
    for summary, name in zip(chosen, names, strict=True):
        summary.customer = shown(name)
        summary.erased = summary.erasures > 0 and since[summary.subject] == 0
        if summary.erased:
            summary.customer = ERASED
    return chosen


def reveal_in_batches(
    vault: Vault, events: Iterable[tuple[int, Event]], size: int = 500
) -> Iterator[tuple[int, Event]]:
    """Positions and events with their personal fields revealed, a batch of keys at a time."""
    batch: list[tuple[int, Event]] = []
    for item in events:
        batch.append(item)
        if len(batch) >= size:
            yield from zip(
                (p for p, _ in batch), vault.reveal_events([e for _, e in batch]), strict=True
            )
            batch = []
    if batch:
        yield from zip(
            (p for p, _ in batch), vault.reveal_events([e for _, e in batch]), strict=True
        )


__all__ = [
    "ERASED",
    "KEYS",
    "Sealed",
    "SubjectSummary",
    "Vault",
    "associated_data",
    "complete_erasure",
    "erase_subject",
    "normalized_name",
    "open_with",
    "personal_fields",
    "pseudonym",
    "reveal_in_batches",
    "seal_with",
    "shown",
    "subjects",
    "vault_for",
]
