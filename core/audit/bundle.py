"""The audit bundle: one file with a network's signed history, verifiable offline by anyone.

A bundle is a POSIX ``ustar`` archive of these members, in this order (the
byte-level layout is specified in ``docs/audit.md``)::

    manifest.json     what the bundle holds, with each member's size and SHA-256
    manifest.note     a signed note naming the manifest's SHA-256
    public-key.txt    the installation's verifier key (C2SP signed-note form)
    checkpoints.json  every signed checkpoint of the network, as signed notes
    proofs.json       consistency proofs between successive checkpoints, and an
                      inclusion proof of every recorded decision and dispute event
    decisions.json    the recorded decisions (period.closed, tier.decided,
                      tier.overridden, statement.closed) with their plugins'
                      names, versions and settings, by leaf
    disputes.json     the dispute events and their compensating events, by leaf
                      (evidence files by SHA-256 only)
    leaves.bin        the leaf hashes of the whole tree, 32 bytes each, in order
    events.jsonl      the exported events: ``{"event":<canonical event>,"leaf":N}``

:func:`export_bundle` writes it to a temporary file beside the target and
renames it into place only when whole. The temporary files live in a folder
``.bundle-<pid>-<random>`` beside the target; an export killed midway leaves
it behind, the next export beside the same target removes the folders of
exporters that no longer run, and :func:`verify_bundle` refuses any file in
such a folder (it is never a bundle, even when whole). :func:`verify_bundle` checks a bundle
with no database and no network: it never writes a file, reads the archive
as a stream with a size limit per member, and holds at most the leaf hashes
(32 bytes per event) and the small JSON members in memory.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import msgspec

from ..errors import InvalidCommand
from ..events import Event, decode_event
from ..projection import Projector
from ..store import Store
from .canonical import canonical_event, has_float, jcs, may_hold_float
from .checkpoints import checkpoints, installation_signer, record_checkpoint
from .merkle import (
    HASH_SIZE,
    MerkleTree,
    ProofError,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from .note import Checkpoint, NoteError, Signer, Verifier, open_note
from .witness import recorded_leaves

FORMAT = "partnerledger-audit-bundle/1"
#: Event types whose events are recorded decisions.
DECISIONS = ("period.closed", "tier.decided", "tier.overridden", "statement.closed")
#: Event types of disputes and what resolves them.
DISPUTES = ("dispute.", "credit.reassigned", "ledger.adjusted")
#: The temporary folder of an export: ``.bundle-<pid>-<random>``, beside the target.
TEMP_PREFIX = ".bundle-"
_TEMP_NAME = re.compile(r"^\.bundle-([0-9]+)-")
BLOCK = 512
MiB = 1024 * 1024
#: Every member, in archive order, with the largest size accepted on reading.
MEMBERS: dict[str, int] = {
    "manifest.json": 16 * MiB,
    "manifest.note": 64 * 1024,
    "public-key.txt": 4096,
    "checkpoints.json": 64 * MiB,
    "proofs.json": 256 * MiB,
    "decisions.json": 256 * MiB,
    "disputes.json": 64 * MiB,
    # held in memory (32 bytes per event): up to 2**25 events (33.5 million) per bundle
    "leaves.bin": HASH_SIZE * 2**25,
    "events.jsonl": 2**40,  # streamed, never held
}
#: Longest line of events.jsonl accepted.
MAX_EVENT = 4 * MiB


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _is_decision(event_type: str) -> bool:
    return event_type in DECISIONS


def _is_dispute(event_type: str) -> bool:
    return event_type.startswith(DISPUTES)


def _entry(leaf: int, event: Event) -> dict[str, Any]:
    """How decisions.json and disputes.json show an event."""
    return {
        "leaf": leaf,
        "type": event.type,
        "recorded_at": event.recorded_at,
        "command": event.command,
    }


_builtins = msgspec.json.Encoder(decimal_format="string")


def _json(value: Any) -> bytes:
    """Canonical (RFC 8785) JSON of a value that may hold structs, times and decimals."""
    return jcs(msgspec.json.decode(_builtins.encode(value)))


def manifest_note_text(network: str, digest: str) -> str:
    """The text signed in manifest.note."""
    return f"{FORMAT}\n{network}\nsha256:{digest}\n"


# ----------------------------------------------------------------- export


@dataclass
class ExportReport:
    """What an export wrote."""

    path: Path
    network: str
    events: int
    tree_size: int
    checkpoints: int
    decisions: int
    disputes: int
    size: int


def _window(moment: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or moment >= start) and (end is None or moment < end)


def export_bundle(
    projector: Projector,
    network: str,
    target: Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    signer: Signer | None = None,
    sign: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> ExportReport:
    """Write the audit bundle of a network's events (business time in [start, end)).

    A checkpoint is signed first, so the bundle covers the whole log as it
    stands (with ``sign=False``, as of the latest checkpoint: an export that
    writes nothing, for read-only users). The export refuses a log that
    differs from its witness (run ``audit verify``): a bundle never carries
    altered history as if it were whole.
    """
    store = projector.store
    signer = signer or installation_signer(store.database)
    db = projector.db
    if sign:
        latest = record_checkpoint(projector, network, signer)
    else:
        projector.catch_up()
        existing = checkpoints(db, network)
        if not existing:
            raise InvalidCommand(
                "network", f"{network!r} has no signed checkpoint yet: a coordinator signs one"
            )
        latest = existing[-1]
    signed = [c for c in checkpoints(db, network) if c.size <= latest.size]
    witnessed = recorded_leaves(db, network)[: latest.size]
    hashes = [digest for _, digest in witnessed]
    tree = MerkleTree(hashes)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target.parent)
    with tempfile.TemporaryDirectory(
        prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=target.parent
    ) as work:
        folder = Path(work)
        decisions: list[dict[str, Any]] = []
        disputes: list[dict[str, Any]] = []
        exported = 0
        leaf = -1
        with (folder / "events.jsonl").open("wb") as events:
            for position, event in _events_of(store, network):
                leaf += 1
                if leaf >= latest.size:
                    break
                data = canonical_event(event)
                if witnessed[leaf][0] != position or leaf_hash(data) != hashes[leaf]:
                    raise InvalidCommand(
                        "network",
                        f"the event at position {position} differs from what was witnessed; "
                        "run `partnerledger audit verify` — nothing was exported",
                    )
                if not _window(event.occurred_at, start, end):
                    continue
                events.write(b'{"event":' + data + b',"leaf":' + str(leaf).encode() + b"}\n")
                exported += 1
                decision, dispute, _ = _KINDS.get(type(event.command)) or _kind(event.command)
                if decision:
                    decisions.append(_entry(leaf, event))
                elif dispute:
                    disputes.append(_entry(leaf, event))
                if progress is not None and exported % 10_000 == 0:
                    progress(leaf + 1, latest.size)
        if leaf + 1 < latest.size:
            raise InvalidCommand(
                "network",
                f"the log has {leaf + 1} events of {network!r}, fewer than the "
                f"{latest.size} signed; run `partnerledger audit verify` — nothing was exported",
            )
        proofs = {
            "consistency": [
                {
                    "old_size": a.size,
                    "new_size": b.size,
                    "proof": [_b64(h) for h in tree.consistency_proof(a.size, b.size)],
                }
                for a, b in itertools.pairwise(signed)
                if a.size < b.size
            ],
            "inclusion": [
                {
                    "leaf": item["leaf"],
                    "tree_size": latest.size,
                    "proof": [_b64(h) for h in tree.inclusion_proof(item["leaf"], latest.size)],
                }
                for item in decisions + disputes
            ],
        }
        members: dict[str, Path] = {}

        def small(name: str, data: bytes) -> None:
            path = folder / name
            path.write_bytes(data)
            members[name] = path

        small("public-key.txt", (signer.verifier().text() + "\n").encode())
        small(
            "checkpoints.json",
            _json([{"size": c.size, "note": c.note} for c in signed]),
        )
        small("proofs.json", _json(proofs))
        small("decisions.json", _json(decisions))
        small("disputes.json", _json(disputes))
        small("leaves.bin", b"".join(hashes))
        members["events.jsonl"] = folder / "events.jsonl"
        files = [
            {"name": name, "size": path.stat().st_size, "sha256": _sha256_file(path)}
            for name, path in members.items()
        ]
        manifest = {
            "format": FORMAT,
            "network": network,
            "origin": f"{signer.name}/{network}",
            "key": signer.verifier().text(),
            "created_at": projector.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "range": {
                "from": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if start else None,
                "to": end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if end else None,
            },
            "tree_size": latest.size,
            "root": _b64(latest.root),
            "events": exported,
            "complete": start is None and end is None,
            "decisions": len(decisions),
            "disputes": len(disputes),
            "files": files,
        }
        manifest_bytes = jcs(manifest) + b"\n"
        small("manifest.json", manifest_bytes)
        note = signer.sign(manifest_note_text(network, hashlib.sha256(manifest_bytes).hexdigest()))
        small("manifest.note", note.encode())
        partial = folder / "bundle.partial"
        with tarfile.open(partial, "w", format=tarfile.USTAR_FORMAT) as archive:
            for name in MEMBERS:  # the manifest first: a reader knows every size up front
                path = members[name]
                info = tarfile.TarInfo(name)
                info.size = path.stat().st_size
                info.mode = 0o644
                info.mtime = 0
                with path.open("rb") as content:
                    archive.addfile(info, content)
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, target)
    return ExportReport(
        path=target,
        network=network,
        events=exported,
        tree_size=latest.size,
        checkpoints=len(signed),
        decisions=len(decisions),
        disputes=len(disputes),
        size=target.stat().st_size,
    )


class _NetworkOnly(msgspec.Struct):
    network: str


class _CommandNetwork(msgspec.Struct):
    command: _NetworkOnly


#: Reads only an event's network (its command's), to skip other networks' events undecoded.
_network_decoder = msgspec.json.Decoder(_CommandNetwork)


def _events_of(store: Store, network: str) -> Iterator[tuple[int, Event]]:
    """The network's events, in log order, with their positions (``Store.read``, filtered).

    Only the network's own events are decoded whole; a row whose network cannot
    even be read is decoded whole too, so that it fails as it would in ``Store.read``.
    """
    decode_network = _network_decoder.decode
    for position, state in store.read_stored():
        try:
            if decode_network(state).command.network != network:
                continue
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        event = decode_event(state)
        if event.network == network:
            yield position, event


def _exporter(folder: Path) -> int | None:
    """The process id in the name of an export's temporary folder, or None if it is not one."""
    found = _TEMP_NAME.match(folder.name)
    return int(found.group(1)) if found else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_stale(parent: Path) -> None:
    """Remove the temporary folders of exports killed midway (their process is gone)."""
    for folder in parent.glob(f"{TEMP_PREFIX}*"):
        pid = _exporter(folder)
        if pid is not None and folder.is_dir() and not _running(pid):
            shutil.rmtree(folder, ignore_errors=True)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------- reading


class BundleError(ValueError):
    """The archive cannot be read as a bundle (truncated, malformed, unexpected member)."""


@dataclass
class _Member:
    name: str
    size: int
    offset: int  # of its data in the file


def _octal(field: bytes, what: str) -> int:
    text = field.rstrip(b"\0 ").decode("ascii", "replace")
    if not re.fullmatch(r"[0-7]+", text):
        raise BundleError(f"malformed archive header: {what} is not an octal number")
    return int(text, 8)


class _Archive:
    """A strict, streaming ustar reader: every byte of the file is accounted for."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.offset = 0

    def _read(self, n: int, what: str) -> bytes:
        data = self.stream.read(n)
        if len(data) != n:
            raise BundleError(f"truncated: the file ends inside {what}")
        self.offset += n
        return data

    def header(self, expected: str) -> _Member | None:
        """The next member's header; None at the end of the archive."""
        block = self._read(BLOCK, f"the header of {expected}")
        if block == bytes(BLOCK):
            # the end: a second zero block, then zeros to the end of the record
            if self._read(BLOCK, "the end of the archive") != bytes(BLOCK):
                raise BundleError("corrupt archive: non-zero bytes in its end marker")
            rest = self.stream.read(tarfile.RECORDSIZE + 1)
            if len(rest) > tarfile.RECORDSIZE or rest.strip(b"\0"):
                raise BundleError("bytes after the end of the archive")
            if (self.offset + len(rest)) % tarfile.RECORDSIZE:
                raise BundleError("truncated: the archive's final padding is cut short")
            return None
        stored = _octal(block[148:156], "checksum")
        actual = sum(block[:148]) + 8 * 32 + sum(block[156:])
        if stored != actual:
            raise BundleError(
                f"corrupt archive: the header before {expected} fails its checksum "
                f"(offset {self.offset - BLOCK})"
            )
        name = block[:100].rstrip(b"\0").decode("utf-8", "replace")
        prefix = block[345:500].rstrip(b"\0")
        if prefix or block[156:157] not in (b"0", b"\0") or block[157:257].strip(b"\0"):
            raise BundleError(f"unexpected archive member {name!r}: only plain files are allowed")
        if block[257:263] != b"ustar\0":
            raise BundleError(f"archive member {name!r} is not in ustar format")
        size = _octal(block[124:136], "size")
        return _Member(name, size, self.offset)

    def data(self, member: _Member, chunk: int = 1 << 20) -> Iterator[bytes]:
        """A member's data in chunks, then its padding (which must be zero)."""
        left = member.size
        while left:
            piece = self._read(min(chunk, left), member.name)
            left -= len(piece)
            yield piece
        pad = -member.size % BLOCK
        if pad and self._read(pad, f"the padding of {member.name}").strip(b"\0"):
            raise BundleError(f"corrupt archive: non-zero padding after {member.name}")


# ----------------------------------------------------------------- verification


@dataclass
class BundleReport:
    """What verify-bundle found."""

    path: Path
    network: str = ""
    key: str = ""
    tree_size: int = 0
    events: int = 0
    complete: bool = False
    checkpoints: int = 0
    errors: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    unavailable_rules: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the bundle verified."""
        return not self.errors

    def fail(self, message: str) -> None:
        """Record an error (verification goes on, to say everything that is wrong)."""
        if message not in self.errors:
            self.errors.append(message)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "path": str(self.path),
            "ok": self.ok,
            "network": self.network,
            "key": self.key,
            "tree_size": self.tree_size,
            "events": self.events,
            "complete": self.complete,
            "checkpoints": self.checkpoints,
            "passed": self.passed,
            "errors": self.errors,
            "decisions": self.decisions,
            "unavailable_rules": self.unavailable_rules,
        }


_EVENT_LINE = re.compile(rb'^\{"event":(\{.*\}),"leaf":(0|[1-9][0-9]{0,17})\}$', re.DOTALL)


@dataclass
class _Read:
    """What the streaming pass keeps."""

    small: dict[str, bytes] = field(default_factory=dict)
    digests: dict[str, tuple[int, str]] = field(default_factory=dict)
    leaves: bytearray = field(default_factory=bytearray)
    event_leaves: list[int] = field(default_factory=list)
    declared: dict[str, int] = field(default_factory=dict)
    events_offset: int = 0
    events_size: int = 0


def _load_json(report: BundleReport, read: _Read, name: str) -> Any:
    try:
        return msgspec.json.decode(read.small[name])
    except (KeyError, ValueError, msgspec.DecodeError) as error:
        report.fail(f"{name} is not valid JSON: {error}")
        return None


def _stream(report: BundleReport, archive: _Archive) -> _Read:
    """Read every member once, in order, hashing as it goes."""
    read = _Read()
    for expected, limit in MEMBERS.items():
        member = archive.header(expected)
        if member is None:
            raise BundleError(f"truncated: the archive ends before {expected}")
        if member.name != expected:
            raise BundleError(
                f"unexpected archive member {member.name!r} where {expected!r} belongs "
                "(members are never extracted: nothing was written)"
            )
        if member.size > limit:
            raise BundleError(
                f"{member.name} is {member.size:,} bytes, over its limit of {limit:,}"
            )
        declared = read.declared.get(expected)
        if declared is not None and declared != member.size:
            report.fail(
                f"{expected} is {member.size:,} bytes, the manifest says {declared:,} "
                "(truncated, extended or replaced)"
            )
        digest = hashlib.sha256()
        if expected == "events.jsonl":
            read.events_offset, read.events_size = member.offset, member.size
            _events_pass(report, read, archive, member, digest)
        else:
            buffer = bytearray()
            for piece in archive.data(member):
                digest.update(piece)
                buffer += piece
            if expected == "leaves.bin":
                read.leaves = buffer
            else:
                read.small[expected] = bytes(buffer)
            if expected == "manifest.json":
                read.declared = _declared_sizes(bytes(buffer))
        read.digests[expected] = (member.size, digest.hexdigest())
    if archive.header("the end of the archive") is not None:
        raise BundleError("unexpected archive member after events.jsonl")
    return read


def _declared_sizes(manifest: bytes) -> dict[str, int]:
    """The member sizes the manifest declares (checked again once its signature is)."""
    try:
        data = msgspec.json.decode(manifest)
        return {str(f["name"]): int(f["size"]) for f in data["files"]}
    except (msgspec.DecodeError, KeyError, TypeError, ValueError):
        return {}


def _blocks(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """Runs of whole lines (each ending with its newline) of a stream of chunks.

    The lines are the ones :func:`_lines` gives; a line is refused, as there,
    when what follows the last newline grows over ``limit`` bytes.
    """
    pending = b""
    for piece in chunks:
        cut = piece.rfind(b"\n")
        if cut < 0:
            pending += piece
        else:
            yield pending + piece[: cut + 1]
            pending = piece[cut + 1 :]
        if len(pending) > limit:
            raise BundleError(f"a line of events.jsonl is longer than {limit:,} bytes")
    if pending:
        raise BundleError("events.jsonl does not end with a newline (truncated?)")


def _lines(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """Lines (without their newline) of a stream of chunks; refuses over-long lines."""
    for block in _blocks(chunks, limit):
        lines = block.split(b"\n")
        lines.pop()  # the block ends with a newline: nothing after it
        yield from lines


def _events_pass(
    report: BundleReport,
    read: _Read,
    archive: _Archive,
    member: _Member,
    digest: Any,
) -> None:
    """Hash every event and check it is the leaf it says (leaves.bin is already read)."""
    leaves = read.leaves
    size = len(leaves) // HASH_SIZE
    event_leaves = read.event_leaves
    append = event_leaves.append
    match_line = _EVENT_LINE.match
    sha256 = hashlib.sha256

    def hashed() -> Iterator[bytes]:
        for piece in archive.data(member, 1 << 16):
            digest.update(piece)
            yield piece

    previous = -1
    number = 0
    for line in _lines(hashed(), MAX_EVENT):
        number += 1
        match = match_line(line)
        if match is None:
            report.fail(f'events.jsonl line {number} is not {{"event":...,"leaf":N}}')
            continue
        leaf = int(match[2])
        if leaf <= previous:
            report.fail(
                f"events.jsonl line {number}: leaf {leaf} comes after leaf {previous} "
                "(events reordered or duplicated)"
            )
            continue
        if leaf >= size:
            report.fail(f"events.jsonl line {number}: leaf {leaf} is beyond the tree ({size})")
        else:
            start = leaf * HASH_SIZE
            # (the leaf hash, SHA-256(0x00 || event), as merkle.leaf_hash makes it)
            if sha256(b"\0" + match[1]).digest() != leaves[start : start + HASH_SIZE]:
                report.fail(
                    f"events.jsonl line {number}: the event does not hash to leaf {leaf} "
                    "(edited, inserted, or in the wrong place)"
                )
            append(leaf)
        previous = leaf
    report.events = len(event_leaves)


def _manifest(report: BundleReport, read: _Read, trusted: Sequence[Verifier]) -> dict[str, Any]:
    """Check the manifest's signature and that every member matches it."""
    raw = read.small.get("manifest.json", b"")
    manifest = _load_json(report, read, "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"manifest.json is not a {FORMAT} manifest")
    report.network = str(manifest.get("network", ""))
    report.key = str(manifest.get("key", ""))
    try:
        bundle_key = Verifier.from_text(report.key)
    except NoteError as error:
        raise BundleError(f"the manifest's key is malformed: {error}") from error
    if read.small.get("public-key.txt", b"").decode("utf-8", "replace").strip() != report.key:
        report.fail("public-key.txt is not the key the manifest names")
    keys = list(trusted) or [bundle_key]
    if trusted and not any(k.text() == bundle_key.text() for k in trusted):
        report.fail(
            f"the bundle is signed by {bundle_key.text()}, which is not a key you trust (--key)"
        )
    try:
        text = open_note(read.small.get("manifest.note", b""), keys)
    except NoteError as error:
        report.fail(f"manifest.note: {error}")
    else:
        if text != manifest_note_text(report.network, hashlib.sha256(raw).hexdigest()):
            report.fail("manifest.note does not sign this manifest.json (flipped or replaced)")
        else:
            report.passed.append(f"manifest signed by {bundle_key.name} ({bundle_key.key_id:08x})")
    files = {f.get("name"): f for f in manifest.get("files", []) if isinstance(f, dict)}
    mismatched = 0
    for name in MEMBERS:
        if name in ("manifest.json", "manifest.note"):
            continue
        expected = files.get(name)
        got = read.digests.get(name)
        if expected is None or got is None:
            mismatched += 1
            report.fail(f"{name} is missing from the manifest or the archive")
        elif (expected.get("size"), expected.get("sha256")) != got:
            mismatched += 1
            report.fail(f"{name} does not match the manifest (size or SHA-256 differ)")
    if not mismatched:
        report.passed.append("every member matches the manifest")
    report.tree_size = int(manifest.get("tree_size", 0))
    report.complete = bool(manifest.get("complete"))
    return manifest


def _checkpoints(
    report: BundleReport, read: _Read, manifest: dict[str, Any], keys: Sequence[Verifier]
) -> list[Checkpoint]:
    """Every checkpoint's signature, origin and agreement with the leaves."""
    listed = _load_json(report, read, "checkpoints.json") or []
    origin = str(manifest.get("origin", ""))
    opened: list[Checkpoint] = []
    for item in listed:
        try:
            checkpoint = Checkpoint.parse(open_note(str(item.get("note", "")), keys))
        except (NoteError, AttributeError) as error:
            report.fail(
                f"checkpoint at size {item.get('size') if isinstance(item, dict) else '?'}: {error}"
            )
            continue
        if checkpoint.origin != origin:
            report.fail(
                f"checkpoint at size {checkpoint.size} is of {checkpoint.origin!r}, not {origin!r}"
            )
            continue
        opened.append(checkpoint)
    report.checkpoints = len(opened)
    sizes = [c.size for c in opened]
    if sizes != sorted(set(sizes)):
        report.fail("checkpoints are not in increasing tree size")
    leaves = read.leaves
    if len(leaves) % HASH_SIZE or len(leaves) // HASH_SIZE != report.tree_size:
        report.fail(
            f"leaves.bin holds {len(leaves) / HASH_SIZE:g} leaves, "
            f"the manifest says {report.tree_size}"
        )
        return opened
    if not opened or opened[-1].size != report.tree_size:
        report.fail("the last checkpoint does not sign the bundle's whole tree")
        return opened
    hashes = [bytes(leaves[i : i + HASH_SIZE]) for i in range(0, len(leaves), HASH_SIZE)]
    tree = MerkleTree(hashes)
    for checkpoint in opened:
        if checkpoint.size > len(hashes) or tree.root(checkpoint.size) != checkpoint.root:
            report.fail(f"the leaves do not make the root signed at tree size {checkpoint.size}")
    if base64.b64encode(opened[-1].root).decode() != manifest.get("root"):
        report.fail("the manifest's root is not the last checkpoint's")
    if not any("root" in e or "checkpoint" in e for e in report.errors):
        report.passed.append(
            f"{len(opened)} signed checkpoint(s); "
            f"the {report.tree_size:,} leaves make each signed root"
        )
    return opened


def _proofs(report: BundleReport, read: _Read, opened: list[Checkpoint]) -> None:
    """Consistency proofs between checkpoints, inclusion proofs of decisions."""
    proofs = _load_json(report, read, "proofs.json")
    if not isinstance(proofs, dict):
        report.fail("proofs.json is not an object")
        return
    roots = {c.size: c.root for c in opened}
    failures = 0
    try:
        for item in proofs.get("consistency", []):
            old, new = int(item["old_size"]), int(item["new_size"])
            try:
                verify_consistency(
                    old, new, roots[old], roots[new], [base64.b64decode(p) for p in item["proof"]]
                )
            except (ProofError, KeyError, ValueError) as error:
                failures += 1
                report.fail(f"consistency proof from size {old} to {new} fails: {error}")
        pairs = {(a.size, b.size) for a, b in itertools.pairwise(opened) if a.size < b.size}
        given = {(int(i["old_size"]), int(i["new_size"])) for i in proofs.get("consistency", [])}
        for old, new in sorted(pairs - given):
            failures += 1
            report.fail(f"no consistency proof from size {old} to {new}")
        leaves = read.leaves
        for item in proofs.get("inclusion", []):
            leaf, size = int(item["leaf"]), int(item["tree_size"])
            try:
                verify_inclusion(
                    bytes(leaves[leaf * HASH_SIZE : (leaf + 1) * HASH_SIZE]),
                    leaf,
                    size,
                    [base64.b64decode(p) for p in item["proof"]],
                    roots[size],
                )
            except (ProofError, KeyError, ValueError) as error:
                failures += 1
                report.fail(f"inclusion proof of leaf {leaf} in tree size {size} fails: {error}")
    except (KeyError, TypeError, ValueError) as error:
        report.fail(f"proofs.json is malformed: {error}")
        return
    if not failures:
        report.passed.append(
            f"{len(proofs.get('consistency', []))} consistency and "
            f"{len(proofs.get('inclusion', []))} inclusion proof(s) verify"
        )


def _presence(report: BundleReport, read: _Read, manifest: dict[str, Any]) -> None:
    """Every event present and in order (a complete bundle), and as many as the manifest says."""
    if report.events != manifest.get("events"):
        report.fail(
            f"events.jsonl holds {report.events} events, the manifest says {manifest.get('events')}"
        )
    if report.complete:
        for expected, leaf in enumerate(read.event_leaves):
            if leaf != expected:
                report.fail(f"leaf {expected} is missing from events.jsonl (deleted or reordered)")
                break
        else:
            if len(read.event_leaves) != report.tree_size:
                report.fail(
                    f"events.jsonl stops at leaf {len(read.event_leaves)} of {report.tree_size}"
                )
    if not any("events.jsonl" in e or "leaf" in e for e in report.errors):
        what = "every event of the tree" if report.complete else "each exported event"
        report.passed.append(f"{what} is present, in order, and hashes to its leaf")


def _second_pass(path: Path, read: _Read) -> Iterator[bytes]:
    """The events again (for decoding), in runs of whole lines, checking they are the
    bytes the first pass hashed."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        stream.seek(read.events_offset)
        left = read.events_size

        def chunks() -> Iterator[bytes]:
            nonlocal left
            while left:
                piece = stream.read(min(1 << 16, left))
                if not piece:
                    raise BundleError("the bundle changed while it was being verified")
                left -= len(piece)
                digest.update(piece)
                yield piece

        yield from _blocks(chunks(), MAX_EVENT)
    if (read.events_size, digest.hexdigest()) != read.digests["events.jsonl"]:
        raise BundleError("the bundle changed while it was being verified")


class _Line(msgspec.Struct, frozen=True):
    """One line of events.jsonl, decoded: ``{"event":<event>,"leaf":N}``."""

    event: Event
    leaf: Annotated[int, msgspec.Meta(ge=0, le=10**18 - 1)]


_line_decoder = msgspec.json.Decoder(_Line)
#: Encodes as canonical_event does (sorted members), for every event without a float.
_line_encoder = msgspec.json.Encoder(order="sorted", decimal_format="string")
#: Per command class: (is a decision, is a dispute, may hold a float).
_KINDS: dict[type, tuple[bool, bool, bool]] = {}


def _kind(command: Any) -> tuple[bool, bool, bool]:
    cls = type(command)
    found = _KINDS.get(cls)
    if found is None:
        found = _KINDS[cls] = (
            _is_decision(command.type),
            _is_dispute(command.type),
            may_hold_float(cls),
        )
    return found


def _decoded(block: bytes) -> list[_Line] | None:
    """A run of lines decoded at once, if every line is exactly the sorted-member
    encoding of an event and its leaf (else ``None``: the lines are checked one by one)."""
    try:
        decoded = _line_decoder.decode_lines(block)
    except Exception:  # whatever it is, the lines one by one say it as they always did
        return None
    # Equal bytes: each line is {"event":...,"leaf":N} (as _EVENT_LINE reads it) with the
    # event exactly as the store's encoder writes it, member by member, byte for byte.
    return decoded if _line_encoder.encode_lines(decoded) == block else None


def _contents(
    report: BundleReport, path: Path, read: _Read, recheck: Callable[[Iterator[Event]], None] | None
) -> None:
    """Decode every event: canonical form, network, and decisions/disputes as listed."""
    decisions: list[bytes] = []
    disputes: list[bytes] = []
    problems = 0
    network = report.network

    def one(leaf: int, data: bytes) -> Event | None:
        """The checks of one event, from its bytes."""
        nonlocal problems
        try:
            event = decode_event(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            problems += 1
            report.fail(f"the event of leaf {leaf} is not a valid event: {error}")
            return None
        if canonical_event(event) != data:
            problems += 1
            report.fail(f"the event of leaf {leaf} is not in canonical form")
        if event.network != network:
            problems += 1
            report.fail(f"the event of leaf {leaf} belongs to network {event.network!r}")
        if _is_decision(event.type):
            decisions.append(_json(_entry(leaf, event)))
        elif _is_dispute(event.type):
            disputes.append(_json(_entry(leaf, event)))
        return event

    def events() -> Iterator[Event]:
        nonlocal problems
        for block in _second_pass(path, read):
            decoded = _decoded(block)
            if decoded is None:  # a line that is not well formed and canonical: one by one
                for line in block.split(b"\n")[:-1]:
                    match = _EVENT_LINE.match(line)
                    if match is not None:
                        event = one(int(match[2]), match[1])
                        if event is not None:
                            yield event
                continue
            kinds = _KINDS
            for item in decoded:
                event = item.event
                command = event.command
                decision, dispute, floats = kinds.get(type(command)) or _kind(command)
                if floats and has_float(command):
                    # a float: canonical only in RFC 8785's number form, which the
                    # line's encoding (msgspec's) may not be: the checks of one event
                    again = one(item.leaf, _line_encoder.encode(event))
                    if again is not None:
                        yield again
                    continue
                if command.network != network:
                    problems += 1
                    report.fail(
                        f"the event of leaf {item.leaf} belongs to network {command.network!r}"
                    )
                if decision:
                    decisions.append(_json(_entry(item.leaf, event)))
                elif dispute:
                    disputes.append(_json(_entry(item.leaf, event)))
                yield event

    decoded = events()
    if recheck is not None:
        recheck(decoded)
    for _ in decoded:  # whatever the recheck left unread
        pass
    if not problems:
        report.passed.append("every event decodes, is canonical and belongs to the network")
    for name, found in (("decisions.json", decisions), ("disputes.json", disputes)):
        listed = b"[" + b",".join(found) + b"]"
        if read.small.get(name) != listed:
            report.fail(f"{name} does not list exactly the {name[:-5]} recorded in the events")
        else:
            report.passed.append(
                f"{name} lists the {len(found)} {name[:-5]} recorded in the events"
            )


def verify_bundle(
    path: Path,
    *,
    trusted: Sequence[Verifier] = (),
    recheck: Callable[[Iterator[Event], BundleReport], None] | None = None,
) -> BundleReport:
    """Verify a bundle file offline. ``trusted`` keys, when given, are the only ones accepted.

    ``recheck(events, report)`` recomputes the recorded decisions from the
    bundle's events (see :mod:`.decisions`); it is handed the events as
    they are decoded, in order.
    """
    path = Path(path)
    report = BundleReport(path)
    if _exporter(path.absolute().parent) is not None:
        report.fail(
            f"not a bundle: the temporary file of an audit export that did not finish "
            f"(in {path.parent.name}); export again"
        )
        return report
    try:
        with path.open("rb") as stream:
            read = _stream(report, _Archive(stream))
        manifest = _manifest(report, read, trusted)
        keys = list(trusted) or [Verifier.from_text(report.key)]
        opened = _checkpoints(report, read, manifest, keys)
        _proofs(report, read, opened)
        _presence(report, read, manifest)
        _contents(
            report,
            path,
            read,
            None if recheck is None else (lambda events: recheck(events, report)),
        )
    except BundleError as error:
        report.fail(str(error))
    except OSError as error:
        report.fail(f"cannot read {path}: {error}")
    except (ValueError, TypeError, KeyError, AttributeError, msgspec.MsgspecError) as error:
        # a member that parses but holds the wrong shapes: refused, never a crash
        report.fail(f"malformed bundle: {type(error).__name__}: {error}")
    return report


__all__ = [
    "DECISIONS",
    "FORMAT",
    "MEMBERS",
    "BundleError",
    "BundleReport",
    "ExportReport",
    "export_bundle",
    "verify_bundle",
]
