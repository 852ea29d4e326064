"""Signed checkpoints: a network's tree size and root hash, signed by the installation.

A checkpoint is a C2SP ``tlog-checkpoint`` in a C2SP ``signed-note`` (see
:mod:`.note` and ``docs/audit.md``)::

    partnerledger.local/riverside
    12864
    q4Z1n0JQ4l2v5rV0e6Cq6qk6m1XH2mQvJ0m3Cq3U9bM=
    time 2026-11-24T10:15:02Z

    — partnerledger.local x08go/ZJkuBS9UG/SffcvIAQxVBti...

The origin line is ``<installation origin>/<network>``; the ``time`` extension
line is when it was signed (UTC). The installation's Ed25519 key lives in a
file outside the database (``PARTNERLEDGER_SIGNING_KEY``; by default beside a
SQLite store, ``<store>.signing-key``), so that whoever can write to the
database cannot sign. Checkpoints are recorded at every period close and on
demand (``partnerledger audit checkpoint``) in the table
``partnerledger_checkpoints``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import InvalidCommand
from ..projection import Projector
from ..sql import SqlBackend
from ..store import Database
from .merkle import MerkleTree
from .note import Checkpoint, NoteError, Signer, Verifier, load_or_create_signer, open_note
from .witness import blob_type, recorded_leaves

CHECKPOINTS = "partnerledger_checkpoints"
KEY_ENV = "PARTNERLEDGER_SIGNING_KEY"
ORIGIN_ENV = "PARTNERLEDGER_ORIGIN"
DEFAULT_ORIGIN = "partnerledger.local"
_ORIGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-_:/]*$")


def origin_name() -> str:
    """The installation's origin (and signing key name), ``PARTNERLEDGER_ORIGIN``."""
    origin = os.environ.get(ORIGIN_ENV) or DEFAULT_ORIGIN
    if not _ORIGIN.match(origin) or "+" in origin:
        raise InvalidCommand(
            ORIGIN_ENV, f"{origin!r} is not a valid origin (e.g. ledger.example.com)"
        )
    return origin


def key_path(database: Database) -> Path:
    """Where the installation's signing key lives."""
    configured = os.environ.get(KEY_ENV)
    if configured:
        return Path(configured)
    if database.kind == "sqlite":
        path = Path(database.path)
        return path.with_name(path.name + ".signing-key")
    name = f"{database.host}-{database.port}-{database.dbname}"
    if database.schema:
        name += f"-{database.schema}"
    return Path.home() / ".config" / "partnerledger" / f"{name}.signing-key"


def installation_signer(database: Database) -> Signer:
    """The installation's signing key (created on first use)."""
    try:
        return load_or_create_signer(key_path(database), origin_name())
    except NoteError as error:
        raise InvalidCommand("signing key", str(error)) from error


@dataclass(frozen=True)
class SignedCheckpoint:
    """A recorded checkpoint: what it says and the signed note that says it."""

    network: str
    size: int
    root: bytes
    signed_at: datetime
    note: str

    def open(self, verifiers: list[Verifier]) -> Checkpoint:
        """Check the signature and that the note says what the row says."""
        checkpoint = Checkpoint.parse(open_note(self.note, verifiers))
        if checkpoint.size != self.size or checkpoint.root != self.root:
            raise NoteError(
                f"the note says size {checkpoint.size}, the row says size {self.size} "
                "or another root hash"
            )
        if not checkpoint.origin.endswith("/" + self.network):
            raise NoteError(f"the note's origin {checkpoint.origin!r} is not of {self.network!r}")
        return checkpoint


def create_table(db: SqlBackend) -> None:
    """Create the checkpoints table if it does not exist."""
    db.execute(
        f"""CREATE TABLE IF NOT EXISTS {db.table(CHECKPOINTS)} (
            network TEXT NOT NULL,
            size BIGINT NOT NULL,
            root {blob_type(db)} NOT NULL,
            signed_at {db.timestamp} NOT NULL,
            note TEXT NOT NULL,
            PRIMARY KEY (network, size)
        )"""
    )


def checkpoints(db: SqlBackend, network: str) -> list[SignedCheckpoint]:
    """Every recorded checkpoint of a network, by tree size."""
    create_table(db)
    _, rows = db.execute(
        f"SELECT size, root, signed_at, note FROM {db.table(CHECKPOINTS)} "
        "WHERE network = ? ORDER BY size",
        (network,),
    )
    return [
        SignedCheckpoint(network, int(size), bytes(root), db.dt(at), str(note))
        for size, root, at, note in rows
    ]


def sign_checkpoint(signer: Signer, network: str, size: int, root: bytes, at: datetime) -> str:
    """The signed note of a checkpoint."""
    moment = at.astimezone(UTC).replace(microsecond=0)
    body = Checkpoint(
        origin=f"{signer.name}/{network}",
        size=size,
        root=root,
        extensions=(f"time {moment.strftime('%Y-%m-%dT%H:%M:%SZ')}",),
    )
    return signer.sign(body.text())


def record_checkpoint(
    projector: Projector, network: str, signer: Signer | None = None
) -> SignedCheckpoint:
    """Bring the witness to the end of the log and sign the network's tree as it is.

    Signing twice at the same size returns the checkpoint already recorded.
    """
    projector.catch_up()
    db = projector.db
    signer = signer or installation_signer(projector.store.database)
    create_table(db)
    leaves = [digest for _, digest in recorded_leaves(db, network)]
    if not leaves:
        raise InvalidCommand("network", f"no events of network {network!r} to sign")
    tree = MerkleTree(leaves)
    size = len(leaves)
    root = tree.root()
    at = projector.clock()
    note = sign_checkpoint(signer, network, size, root, at)
    db.execute(
        f"INSERT INTO {db.table(CHECKPOINTS)} (network, size, root, signed_at, note) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (network, size, root, db.ts(at), note),
    )
    for recorded in reversed(checkpoints(db, network)):
        if recorded.size == size:
            return recorded
    raise AssertionError("the checkpoint just recorded is missing")


__all__ = [
    "CHECKPOINTS",
    "SignedCheckpoint",
    "checkpoints",
    "installation_signer",
    "key_path",
    "origin_name",
    "record_checkpoint",
    "sign_checkpoint",
]
