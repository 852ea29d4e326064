"""Checking the live store against its witness and its signed checkpoints.

Three comparisons, each reported by log position (the event's notification id)
and leaf index:

1. every recorded checkpoint's signature, by a trusted key;
2. the witness's leaves against the checkpoints (is the witness itself intact?),
   with a consistency proof between each checkpoint and the next;
3. the live log's leaves against the checkpoints (the authoritative check: a
   history that differs from what was signed), and against the witness, which
   says *where*: an event **edited** (same position, other bytes), **deleted**
   (its position is gone), **inserted** (a position the witness never saw,
   below the last one it saw) or **reordered** (its bytes are at another
   position now).

Events after the witness's last leaf are not judged (they are newer than the
last time the log was read); they are counted as *unwitnessed*.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from ..events import decode_event
from ..sql import SqlBackend
from ..store import Store
from .canonical import canonical_event
from .checkpoints import SignedCheckpoint, checkpoints
from .merkle import MerkleTree, ProofError, leaf_hash, verify_consistency
from .note import NoteError, Verifier
from .witness import recorded_leaves

Kind = Literal["edited", "deleted", "inserted", "reordered", "checkpoint", "witness", "history"]


@dataclass(frozen=True)
class Finding:
    """One thing found wrong."""

    kind: Kind
    message: str
    position: int | None = None
    leaf: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "kind": self.kind,
            "position": self.position,
            "leaf": self.leaf,
            "message": self.message,
        }


@dataclass
class Report:
    """What ``audit verify`` found for one network."""

    network: str
    events: int = 0
    witnessed: int = 0
    unwitnessed: int = 0
    checkpoints: int = 0
    latest: SignedCheckpoint | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether nothing was found wrong."""
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "network": self.network,
            "ok": self.ok,
            "events": self.events,
            "witnessed": self.witnessed,
            "unwitnessed": self.unwitnessed,
            "checkpoints": self.checkpoints,
            "latest_checkpoint": (
                {"size": self.latest.size, "root": self.latest.root.hex(), "note": self.latest.note}
                if self.latest
                else None
            ),
            "findings": [f.as_dict() for f in self.findings],
        }


def live_leaves(store: Store, network: str, known: set[int]) -> list[tuple[int, bytes | None]]:
    """``(position, leaf hash)`` of the network's live events, in log order.

    A row that no longer decodes as an event gets ``None`` when its position
    is one the witness knows (it is reported as edited); otherwise it is
    skipped, since its network cannot be told.
    """
    leaves: list[tuple[int, bytes | None]] = []
    for position, data in store.read_stored():
        try:
            event = decode_event(data)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            if position in known:
                leaves.append((position, None))
            continue
        if event.network == network:
            leaves.append((position, leaf_hash(canonical_event(event))))
    return leaves


def _checked(
    report: Report, signed: list[SignedCheckpoint], verifiers: list[Verifier]
) -> list[SignedCheckpoint]:
    good: list[SignedCheckpoint] = []
    for checkpoint in signed:
        try:
            checkpoint.open(verifiers)
        except NoteError as error:
            report.findings.append(
                Finding("checkpoint", f"checkpoint at tree size {checkpoint.size}: {error}")
            )
            continue
        good.append(checkpoint)
    return good


def _against_checkpoints(
    report: Report, kind: Kind, what: str, hashes: list[bytes], signed: list[SignedCheckpoint]
) -> None:
    """Compare a list of leaf hashes with every checkpoint, with consistency proofs."""
    tree = MerkleTree(hashes) if hashes else None
    previous: SignedCheckpoint | None = None
    for checkpoint in signed:
        if tree is None or checkpoint.size > len(hashes):
            report.findings.append(
                Finding(
                    kind,
                    f"{what} has {len(hashes)} leaves, fewer than the checkpoint "
                    f"signed at tree size {checkpoint.size}",
                    leaf=len(hashes),
                )
            )
            continue
        if tree.root(checkpoint.size) != checkpoint.root:
            report.findings.append(
                Finding(
                    kind,
                    f"{what} does not match the checkpoint signed at tree size "
                    f"{checkpoint.size} on {checkpoint.signed_at:%Y-%m-%d %H:%M:%S} UTC",
                    leaf=checkpoint.size - 1,
                )
            )
        elif previous is not None and previous.size < checkpoint.size:
            try:
                verify_consistency(
                    previous.size,
                    checkpoint.size,
                    previous.root,
                    checkpoint.root,
                    tree.consistency_proof(previous.size, checkpoint.size),
                )
            except ProofError as error:
                report.findings.append(
                    Finding(
                        kind,
                        f"checkpoints at sizes {previous.size} and {checkpoint.size} are not "
                        f"consistent: {error}",
                    )
                )
        previous = checkpoint


def _locate(
    report: Report,
    recorded: list[tuple[int, bytes]],
    live: list[tuple[int, bytes | None]],
) -> None:
    """Say where the live log differs from the witness.

    The two sequences of leaf hashes are aligned (a diff), so that renumbering
    the rows after an insertion or a deletion is reported as that one change;
    a leaf that left one place and appears at another is *reordered*.
    """
    last = recorded[-1][0] if recorded else 0
    witnessed = [d for _, d in recorded]
    now = [d if d is not None else b"undecodable %d" % p for p, d in live]
    if witnessed == now:
        return
    old: dict[bytes, int] = {}  # leaf hashes that left their place, by witnessed leaf
    new: dict[bytes, int] = {}  # leaf hashes found in a new place, by live index
    pairs: list[tuple[int, int]] = []  # one replaced by one: an edit, unless it moved
    matcher = difflib.SequenceMatcher(None, witnessed, now, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        old.update((witnessed[i], i) for i in range(i1, i2))
        new.update((now[j], j) for j in range(j1, j2))
        if op == "replace" and i2 - i1 == j2 - j1:
            pairs.extend(zip(range(i1, i2), range(j1, j2), strict=True))
    moved = {digest: (i, new[digest]) for digest, i in old.items() if digest in new}
    for i, j in moved.values():
        report.findings.append(
            Finding(
                "reordered",
                f"the event witnessed as leaf {i} at position {recorded[i][0]} is now "
                f"leaf {j} at position {live[j][0]}",
                position=live[j][0],
                leaf=i,
            )
        )
    edited_old: set[int] = set()
    edited_new: set[int] = set()
    for i, j in pairs:
        if witnessed[i] in moved or now[j] in moved:
            continue
        edited_old.add(i)
        edited_new.add(j)
        position = live[j][0]
        detail = (
            "no longer decodes as an event"
            if live[j][1] is None
            else "has other content than when it was witnessed"
        )
        report.findings.append(
            Finding(
                "edited",
                f"the event at position {position} (leaf {i}) {detail}",
                position=position,
                leaf=i,
            )
        )
    for digest, i in old.items():
        if digest in moved or i in edited_old:
            continue
        report.findings.append(
            Finding(
                "deleted",
                f"the event witnessed as leaf {i} at position {recorded[i][0]} is gone "
                "from the log (deleted, or moved to another network)",
                position=recorded[i][0],
                leaf=i,
            )
        )
    for digest, j in new.items():
        if digest in moved or j in edited_new or live[j][0] > last:
            continue  # (after the last witnessed position: newer, not judged)
        report.findings.append(
            Finding(
                "inserted",
                f"the event now at position {live[j][0]} (leaf {j}) was not in the log when "
                "it was witnessed (inserted)",
                position=live[j][0],
                leaf=j,
            )
        )
    report.findings.sort(
        key=lambda f: (f.kind in ("checkpoint", "witness", "history"), f.leaf or 0)
    )


def verify_network(store: Store, db: SqlBackend, network: str, verifiers: list[Verifier]) -> Report:
    """Check one network's live events against its witness and checkpoints."""
    report = Report(network)
    signed = checkpoints(db, network)
    report.checkpoints = len(signed)
    good = _checked(report, signed, verifiers)
    report.latest = good[-1] if good else None
    try:
        recorded = recorded_leaves(db, network)
    except ValueError as error:
        report.findings.append(Finding("witness", f"the witness is damaged: {error}"))
        recorded = []
    report.witnessed = len(recorded)
    _against_checkpoints(report, "witness", "the witness", [d for _, d in recorded], good)
    live = live_leaves(store, network, {position for position, _ in recorded})
    report.events = len(live)
    last = recorded[-1][0] if recorded else 0
    report.unwitnessed = sum(1 for position, _ in live if position > last)
    _against_checkpoints(
        report,
        "history",
        "the live log",
        [d if d is not None else b"\0" * 32 for _, d in live],
        good,
    )
    _locate(report, recorded, live)
    return report


__all__ = ["Finding", "Report", "live_leaves", "verify_network"]
