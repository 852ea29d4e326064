"""An audit-bundle verifier written from docs/audit.md alone.

It imports nothing from partnerledger (only the standard library and
``cryptography`` for Ed25519): if the document leaves something out, this
verifier fails where ours passes. The bundle comes from a real export.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import tarfile
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ORDER = [
    "manifest.json",
    "manifest.note",
    "public-key.txt",
    "checkpoints.json",
    "proofs.json",
    "decisions.json",
    "disputes.json",
    "leaves.bin",
    "events.jsonl",
]


class Rejected(Exception):
    pass


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def parse_vkey(vkey: str) -> tuple[str, bytes, Ed25519PublicKey]:
    name, key_id_hex, key64 = vkey.split("+", 2)
    typed = base64.b64decode(key64)
    if typed[0] != 0x01 or len(typed) != 33:
        raise Rejected("not an Ed25519 key")
    key_id = sha256(name.encode() + b"\n" + typed)[:4]
    if key_id.hex() != key_id_hex:
        raise Rejected("key id does not match the key")
    return name, key_id, Ed25519PublicKey.from_public_bytes(typed[1:])


def open_note(note: str, vkey: str) -> str:
    name, key_id, public = parse_vkey(vkey)
    text, sep, signatures = note.rpartition("\n\n")
    if not sep:
        raise Rejected("no signature block")
    text += "\n"
    for line in signatures.splitlines():
        dash, signer, sig64 = line.split(" ")
        if dash != "\u2014":
            raise Rejected("bad signature line")
        raw = base64.b64decode(sig64)
        if signer == name and raw[:4] == key_id:
            try:
                public.verify(raw[4:], text.encode())
            except InvalidSignature:
                raise Rejected("bad signature") from None
            return text
    raise Rejected("not signed by the trusted key")


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> None:
    # RFC 9162 §2.1.3.2
    if index >= size:
        raise Rejected("index beyond the tree")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise Rejected("proof too long")
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha256(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise Rejected("inclusion proof does not verify")


def verify_consistency(m: int, n: int, root1: bytes, root2: bytes, proof: list[bytes]) -> None:
    # RFC 9162 §2.1.4.2
    if m == n:
        if proof or root1 != root2:
            raise Rejected("bad proof for equal sizes")
        return
    if m & (m - 1) == 0:  # a power of two: prepend the first root
        proof = [root1, *proof]
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            raise Rejected("proof too long")
        if fn & 1 or fn == sn:
            fr = sha256(b"\x01" + c + fr)
            sr = sha256(b"\x01" + c + sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = sha256(b"\x01" + sr + c)
        fn >>= 1
        sn >>= 1
    if fr != root1 or sr != root2 or sn != 0:
        raise Rejected("consistency proof does not verify")


def jcs(value: object) -> bytes:
    """RFC 8785 for documents without non-integral numbers (ours have none here)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def independent_verify(path: Path, trusted_key: str) -> int:
    """Returns the number of events verified; raises Rejected."""
    with tarfile.open(path) as archive:
        found = archive.getmembers()
        if [m.name for m in found] != ORDER or not all(m.isfile() for m in found):
            raise Rejected("unexpected members")
        data = {m.name: archive.extractfile(m).read() for m in found}  # type: ignore[union-attr]
    manifest_bytes = data["manifest.json"]
    manifest = json.loads(manifest_bytes)
    if manifest["format"] != "partnerledger-audit-bundle/1":
        raise Rejected("format")
    if manifest_bytes != jcs(manifest) + b"\n":
        raise Rejected("manifest not canonical")
    network = manifest["network"]
    body = open_note(data["manifest.note"].decode(), trusted_key)
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    expected = f"partnerledger-audit-bundle/1\n{network}\nsha256:{digest}\n"
    if body != expected:
        raise Rejected("manifest.note does not sign the manifest")
    for entry in manifest["files"]:
        content = data[entry["name"]]
        if len(content) != entry["size"] or hashlib.sha256(content).hexdigest() != entry["sha256"]:
            raise Rejected(f"{entry['name']} differs from the manifest")
    if data["public-key.txt"].decode() != trusted_key + "\n":
        raise Rejected("public-key.txt")
    # checkpoints
    roots: dict[int, bytes] = {}
    for item in json.loads(data["checkpoints.json"]):
        lines = open_note(item["note"], trusted_key).splitlines()
        origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])
        if origin != manifest["origin"] or size != item["size"]:
            raise Rejected("checkpoint origin or size")
        if not lines[3].startswith("time "):
            raise Rejected("checkpoint time line")
        roots[size] = root
    leaves_bin = data["leaves.bin"]
    leaves = [leaves_bin[i : i + 32] for i in range(0, len(leaves_bin), 32)]
    if len(leaves) != manifest["tree_size"] or max(roots) != len(leaves):
        raise Rejected("tree size")
    for size, root in roots.items():
        if mth(leaves[:size]) != root:
            raise Rejected(f"leaves do not make the root at {size}")
    if base64.b64encode(roots[len(leaves)]).decode() != manifest["root"]:
        raise Rejected("manifest root")
    proofs = json.loads(data["proofs.json"])
    sizes = sorted(roots)
    given = {(p["old_size"], p["new_size"]) for p in proofs["consistency"]}
    if given != set(itertools.pairwise(sizes)):
        raise Rejected("consistency proofs missing")
    for p in proofs["consistency"]:
        verify_consistency(
            p["old_size"],
            p["new_size"],
            roots[p["old_size"]],
            roots[p["new_size"]],
            [base64.b64decode(h) for h in p["proof"]],
        )
    for p in proofs["inclusion"]:
        verify_inclusion(
            leaves[p["leaf"]],
            p["leaf"],
            p["tree_size"],
            [base64.b64decode(h) for h in p["proof"]],
            roots[p["tree_size"]],
        )
    # events
    indexes = []
    decisions = []
    for line in data["events.jsonl"].split(b"\n")[:-1]:
        parsed = json.loads(line)
        event_bytes = jcs(parsed["event"])
        if line != b'{"event":' + event_bytes + b',"leaf":' + str(parsed["leaf"]).encode() + b"}":
            raise Rejected("event line not canonical")
        if sha256(b"\x00" + event_bytes) != leaves[parsed["leaf"]]:
            raise Rejected(f"leaf {parsed['leaf']} does not match")
        if parsed["event"]["command"]["network"] != network:
            raise Rejected("another network's event")
        indexes.append(parsed["leaf"])
        kind = parsed["event"]["command"]["type"]
        if kind in ("period.closed", "tier.decided", "tier.overridden", "statement.closed"):
            decisions.append(
                {
                    "command": parsed["event"]["command"],
                    "leaf": parsed["leaf"],
                    "recorded_at": parsed["event"]["recorded_at"],
                    "type": kind,
                }
            )
    if manifest["complete"] and indexes != list(range(len(leaves))):
        raise Rejected("events missing or out of order")
    if indexes != sorted(set(indexes)):
        raise Rejected("events out of order")
    if jcs(decisions) != data["decisions.json"]:
        raise Rejected("decisions.json")
    for decision in decisions:
        if decision["type"] == "tier.decided":
            digest = hashlib.sha256(jcs(decision["command"]["inputs"])).hexdigest()
            if decision["command"]["inputs_digest"] != f"sha256:{digest}":
                raise Rejected("inputs digest")
    return len(indexes)


@pytest.fixture
def exported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    # The only use of partnerledger: making a real bundle to check.
    from click.testing import CliRunner

    from partnerledger.cli.main import cli

    monkeypatch.setenv("PARTNERLEDGER_SIGNING_KEY", str(tmp_path / "signing.key"))
    database = str(tmp_path / "store.db")
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["--database", database, *args])
        assert result.exit_code == 0, result.output
        return result.output

    run("demo", "--members", "8", "--months", "4", "--networks", "2")
    run("close-period", "--network", "riverside", "--period", "2024-Q1", "--actor", "coordinator")
    run("audit", "checkpoint", "--network", "riverside")
    bundle = tmp_path / "riverside.bundle"
    run("audit", "export", "--network", "riverside", "-o", str(bundle))
    key = run("audit", "key").strip()
    return bundle, key


def test_the_document_is_enough_to_verify_a_bundle(exported: tuple[Path, str]) -> None:
    bundle, key = exported
    assert independent_verify(bundle, key) > 100


def test_the_independent_verifier_refuses_what_ours_refuses(exported: tuple[Path, str]) -> None:
    bundle, key = exported
    data = bytearray(bundle.read_bytes())
    start = data.index(b'"leaf":7}') - 40
    data[start] ^= 0x02
    bundle.write_bytes(bytes(data))
    with pytest.raises(Rejected):
        independent_verify(bundle, key)
