"""The witness: each network's Merkle leaves, recorded as the log is followed.

Every event of a network is a leaf of that network's append-only Merkle tree
(RFC 9162), in log order: leaf ``i`` is the network's ``i``-th event (from 0),
and its hash is ``SHA-256(0x00 || canonical_event(event))``. The witness is a
projection (it follows the log exactly once, in batches, like the views), but
unlike the views it is *evidence*: it is never dropped nor rebuilt, because it
remembers what each stored event looked like when it was first read. Audit
verification compares the live log with it, and it with the signed
checkpoints (:mod:`.checkpoints`).

Table ``partnerledger_leaves``: ``(network, leaf_index, position, leaf_hash)``,
where ``position`` is the event's position in the store's log (its
notification id).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..events import Event
from ..projection import Networks, Projection, projection
from ..sql import SqlBackend
from .canonical import canonical_event
from .merkle import leaf_hash

LEAVES = "partnerledger_leaves"


def blob_type(db: SqlBackend) -> str:
    """The column type for bytes."""
    return "BYTEA" if db.kind == "postgresql" else "BLOB"


@projection
class Witness(Projection):
    """Records every event's leaf hash, per network, in log order."""

    name = "witness"
    version = 1
    tables = (LEAVES,)
    evidence: ClassVar[bool] = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._rows: list[tuple[str, int, int, bytes]] = []
        self._next: dict[str, int] = {}

    def create(self) -> None:
        self.db.execute(
            f"""CREATE TABLE IF NOT EXISTS {self.t(LEAVES)} (
                network TEXT NOT NULL,
                leaf_index BIGINT NOT NULL,
                position BIGINT NOT NULL,
                leaf_hash {blob_type(self.db)} NOT NULL,
                PRIMARY KEY (network, leaf_index)
            )"""
        )

    def _index(self, network: str) -> int:
        index = self._next.get(network)
        if index is None:
            _, rows = self.db.execute(
                f"SELECT COALESCE(MAX(leaf_index), -1) FROM {self.t(LEAVES)} WHERE network = ?",
                (network,),
            )
            index = int(rows[0][0]) + 1
        self._next[network] = index + 1
        return index

    def handle(self, position: int, event: Event, networks: Networks) -> None:
        network = event.network
        self._rows.append(
            (network, self._index(network), position, leaf_hash(canonical_event(event)))
        )

    def flush(self, networks: Networks) -> None:
        self.db.insert(
            self.t(LEAVES), ("network", "leaf_index", "position", "leaf_hash"), self._rows
        )
        self.discard()

    def discard(self) -> None:
        # Another process may extend the tree between batches: read the next
        # index again at the start of the next one.
        self._rows = []
        self._next = {}

    def dump(self) -> list[tuple[str, ...]]:
        _, found = self.db.execute(
            f"SELECT network, leaf_index, position, leaf_hash FROM {self.t(LEAVES)}"
        )
        return sorted((LEAVES, str(n), str(i), str(p), bytes(h).hex()) for n, i, p, h in found)


def recorded_leaves(db: SqlBackend, network: str) -> list[tuple[int, bytes]]:
    """The witness's ``(position, leaf hash)`` of every leaf of a network, in leaf order.

    Raises ``ValueError`` when the leaf indexes are not 0, 1, 2, ... (rows
    deleted from the witness itself).
    """
    _, rows = db.execute(
        f"SELECT leaf_index, position, leaf_hash FROM {db.table(LEAVES)} "
        "WHERE network = ? ORDER BY leaf_index",
        (network,),
    )
    leaves: list[tuple[int, bytes]] = []
    for expected, (index, position, digest) in enumerate(rows):
        if int(index) != expected:
            raise ValueError(f"the witness has no leaf {expected} (next recorded: {index})")
        leaves.append((int(position), bytes(digest)))
    return leaves


def tree_size(db: SqlBackend, network: str) -> int:
    """How many leaves the witness has recorded for a network."""
    _, rows = db.execute(f"SELECT COUNT(*) FROM {db.table(LEAVES)} WHERE network = ?", (network,))
    return int(rows[0][0])


__all__ = ["LEAVES", "Witness", "blob_type", "recorded_leaves", "tree_size"]
