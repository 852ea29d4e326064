"""Evidence files of disputes, stored by content hash beside the log.

An event never holds a file: a ``dispute.raised`` or ``dispute.commented``
names each file by its SHA-256 (``sha256:`` and 64 hex digits), with its
name, media type and size. The bytes live in the store's database, in
``partnerledger_evidence`` (network, sha256, name, media_type, size,
content, stored_at), one row per network and content: storing the same
bytes twice in a network stores them once (the first name is kept; each
event keeps the name it was given). A network never reads another's files,
even when their contents are the same.

Files are written *before* the event that names them: a file without an
event is harmless (nothing shows it), an event without its file would be
evidence lost. A file may have at most 10 MiB (:data:`MAX_BYTES`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

from .commands import MAX_EVIDENCE_BYTES
from .errors import InvalidCommand, NotFound
from .sql import SqlBackend, connect
from .store import Database
from .types import lone_surrogate

TABLE = "partnerledger_evidence"
#: The most bytes one file may have: 10 MiB.
MAX_BYTES = MAX_EVIDENCE_BYTES
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
_MEDIA_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
)


def digest(data: bytes) -> str:
    """The content hash an event names a file by: ``sha256:`` and 64 lowercase hex digits."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_file(name: str, media_type: str, data: bytes, field: str = "evidence") -> None:
    """Refuse a file that cannot be evidence, naming ``field`` and the reason."""
    if len(data) > MAX_BYTES:
        raise InvalidCommand(
            field,
            f"{name!r} is {len(data):,} bytes; a file may have at most 10 MiB "
            f"({MAX_BYTES:,} bytes)",
        )
    if not name or len(name) > 200 or lone_surrogate(name):
        raise InvalidCommand(field, "a file needs a name of 1 to 200 characters")
    if not _MEDIA_TYPE.match(media_type):
        raise InvalidCommand(field, f"{media_type!r} is not a media type (e.g. application/pdf)")


def plain_media_type(value: str | None) -> str:
    """A media type as the events keep it: without parameters, lower case; unknown: octet-stream."""
    found = (value or "").split(";", 1)[0].strip().lower()
    return found if _MEDIA_TYPE.match(found) else "application/octet-stream"


@dataclass(frozen=True)
class StoredFile:
    """A file as stored: what it is, and its bytes."""

    network: str
    sha256: str
    name: str
    media_type: str
    size: int
    content: bytes
    stored_at: datetime


class EvidenceStore:
    """The content-addressed evidence files of every network, in the store's database."""

    def __init__(self, database: Database) -> None:
        self.db: SqlBackend = connect(database)
        blob = "BYTEA" if self.db.kind == "postgresql" else "BLOB"
        try:
            self.db.execute(
                f"""CREATE TABLE IF NOT EXISTS {self.db.table(TABLE)} (
                    network TEXT NOT NULL, sha256 TEXT NOT NULL, name TEXT NOT NULL,
                    media_type TEXT NOT NULL, size BIGINT NOT NULL, content {blob} NOT NULL,
                    stored_at {self.db.timestamp} NOT NULL, PRIMARY KEY (network, sha256))"""
            )
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        """Release the connection."""
        self.db.close()

    def __enter__(self) -> EvidenceStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def put(self, network: str, name: str, media_type: str, data: bytes) -> str:
        """Store a file of a network; returns its hash. Storing the same bytes again is a no-op."""
        check_file(name, media_type, data)
        sha256 = digest(data)
        self.db.execute(
            f"""INSERT INTO {self.db.table(TABLE)}
            (network, sha256, name, media_type, size, content, stored_at)
            VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (network, sha256) DO NOTHING""",  # noqa: S608  # our table
            (network, sha256, name, media_type, len(data), data,
             self.db.ts(datetime.now(UTC))),
        )  # fmt: skip
        return sha256

    def has(self, network: str, sha256: str) -> bool:
        """Whether the network holds a file with this hash."""
        _, rows = self.db.execute(
            f"SELECT 1 FROM {self.db.table(TABLE)} WHERE network = ? AND sha256 = ?",  # noqa: S608
            (network, sha256),
        )
        return bool(rows)

    def get(self, network: str, sha256: str) -> StoredFile:
        """A network's file by its hash; NotFound on ``sha256`` (also for another network's)."""
        if not _SHA256.match(sha256):
            raise InvalidCommand("sha256", "expected sha256: and 64 lowercase hex digits")
        _, rows = self.db.execute(
            f"SELECT name, media_type, size, content, stored_at FROM {self.db.table(TABLE)} "  # noqa: S608
            "WHERE network = ? AND sha256 = ?",
            (network, sha256),
        )
        if not rows:
            raise NotFound("sha256", f"no evidence file {sha256} in network {network!r}")
        name, media_type, size, content, stored_at = rows[0]
        return StoredFile(
            network=network,
            sha256=sha256,
            name=str(name),
            media_type=str(media_type),
            size=int(size),
            content=bytes(content),
            stored_at=self.db.dt(stored_at),
        )


__all__ = [
    "MAX_BYTES",
    "TABLE",
    "EvidenceStore",
    "StoredFile",
    "check_file",
    "digest",
    "plain_media_type",
]
