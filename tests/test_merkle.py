"""RFC 9162 Merkle trees: published vectors, a naive reference, and tampering.

The published vectors are the inclusion and consistency cases of
``transparency-dev/merkle`` (``testdata/``), read from
``../shared/vectors/merkle`` (or ``$PARTNERLEDGER_MERKLE_VECTORS``): one test
per file, skipped with the path named when the folder is missing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerledger.audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    MerkleTree,
    ProofError,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

# --- a naive reference, straight from RFC 9162 §2.1 -----------------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) over leaf *data*, recursively (§2.1.1)."""
    n = len(leaves)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + leaves[0])
    k = _k(n)
    return _sha(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:]))


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) (§2.1.3.1)."""
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) (§2.1.4.1)."""
    n = len(leaves)
    if m == n:
        return [] if b else [ref_mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], b), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


def ref_proof(m: int, leaves: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) (§2.1.4.1)."""
    return ref_subproof(m, leaves, True)


def data(n: int) -> list[bytes]:
    return [f"event {i}".encode() for i in range(n)]


def flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- hashing and known answers ---------------------------------------------------

# RFC 6962's test leaves and the roots of every prefix (certificate-transparency's
# and transparency-dev/merkle's test data).
KAT_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657"]
    + ["606162636465666768696a6b6c6d6e6f"]
]
KAT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_hashes_are_domain_separated_sha256():
    assert HASH_SIZE == 32
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = leaf_hash(b"l"), leaf_hash(b"r")
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    # A leaf whose data looks like two children does not collide with the node.
    assert leaf_hash(b"\x01" + left + right) != node_hash(left, right)


def test_known_roots_of_every_prefix():
    hashes = [leaf_hash(d) for d in KAT_LEAVES]
    tree = MerkleTree(hashes)
    compact = CompactRange()
    assert compact.root() == EMPTY_ROOT
    for size, want in enumerate(KAT_ROOTS):
        assert root_of(hashes[:size]).hex() == want
        assert tree.root(size).hex() == want
        assert compact.root().hex() == want
        assert compact.size == size
        if size < len(hashes):
            compact.append(hashes[size])


def test_empty_inputs():
    assert root_of([]) == EMPTY_ROOT
    tree = MerkleTree([])
    assert tree.root() == EMPTY_ROOT
    assert len(tree) == tree.size == 0
    with pytest.raises(ValueError, match="out of range"):
        tree.inclusion_proof(0)
    with pytest.raises(ValueError, match="empty tree"):
        tree.consistency_proof(0)


def test_bad_leaf_hashes_are_refused():
    with pytest.raises(ValueError, match="leaf hash 1 is not 32 bytes"):
        root_of([leaf_hash(b"a"), b"short"])
    with pytest.raises(ValueError, match="leaf hash 2 is not 32 bytes"):
        MerkleTree([leaf_hash(b"a"), leaf_hash(b"b"), b"x" * 33])
    compact = CompactRange()
    with pytest.raises(ValueError, match="leaf hash 0 is not 32 bytes"):
        compact.append(b"")
    assert compact.size == 0


def test_tree_refuses_bad_sizes_and_indices():
    tree = MerkleTree([leaf_hash(d) for d in data(5)])
    for bad in (-1, 6):
        with pytest.raises(ValueError, match="out of range"):
            tree.root(bad)
    with pytest.raises(ValueError, match="leaf index 3 is out of range for a tree of size 3"):
        tree.inclusion_proof(3, 3)
    with pytest.raises(ValueError, match="leaf index -1 is out of range"):
        tree.inclusion_proof(-1)
    with pytest.raises(ValueError, match="size 9 is out of range"):
        tree.inclusion_proof(0, 9)
    with pytest.raises(ValueError, match="old_size 4 is larger than new_size 3"):
        tree.consistency_proof(4, 3)
    with pytest.raises(ValueError, match="new_size 6 is out of range"):
        tree.consistency_proof(1, 6)
    with pytest.raises(ValueError, match="empty tree"):
        tree.consistency_proof(0, 5)
    with pytest.raises(TypeError):
        tree.root(2.0)  # type: ignore[arg-type]
    assert tree.consistency_proof(5) == []
    assert tree.consistency_proof(3, 3) == []


# --- every proof of smaller trees, exhaustively --------------------------------


def test_every_proof_up_to_40_leaves_matches_the_reference_and_verifies():
    leaves = data(40)
    tree = MerkleTree([leaf_hash(d) for d in leaves])
    for size in range(1, 41):
        root = tree.root(size)
        assert root == ref_mth(leaves[:size])
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            assert proof == ref_path(index, leaves[:size])
            verify_inclusion(leaf_hash(leaves[index]), index, size, proof, root)
        for old in range(1, size + 1):
            proof = tree.consistency_proof(old, size)
            assert proof == ref_proof(old, leaves[:size])
            verify_consistency(old, size, tree.root(old), root, proof)


def test_every_bit_flip_is_caught():
    leaves = [leaf_hash(d) for d in data(13)]
    tree = MerkleTree(leaves)
    root = tree.root()
    for index in (0, 6, 12):
        proof = tree.inclusion_proof(index)
        for bit in range(HASH_SIZE * 8):
            with pytest.raises(ProofError):
                verify_inclusion(flip(leaves[index], bit), index, 13, proof, root)
            with pytest.raises(ProofError, match="root mismatch"):
                verify_inclusion(leaves[index], index, 13, proof, flip(root, bit))
            for i in range(len(proof)):
                bad = [*proof[:i], flip(proof[i], bit), *proof[i + 1 :]]
                with pytest.raises(ProofError):
                    verify_inclusion(leaves[index], index, 13, bad, root)
    for old in (1, 4, 7, 12):
        proof = tree.consistency_proof(old)
        old_root = tree.root(old)
        for bit in range(HASH_SIZE * 8):
            # (When old is a power of two the old root seeds both chains, so the
            # mismatch shows in the new root.)
            with pytest.raises(ProofError, match="root mismatch"):
                verify_consistency(old, 13, flip(old_root, bit), root, proof)
            with pytest.raises(ProofError, match="new root mismatch"):
                verify_consistency(old, 13, old_root, flip(root, bit), proof)
            for i in range(len(proof)):
                bad = [*proof[:i], flip(proof[i], bit), *proof[i + 1 :]]
                with pytest.raises(ProofError):
                    verify_consistency(old, 13, old_root, root, bad)


# --- random trees (hypothesis) ------------------------------------------------


@st.composite
def trees(draw: st.DrawFn) -> tuple[list[bytes], MerkleTree]:
    size = draw(st.integers(min_value=1, max_value=300))
    seed = draw(st.binary(min_size=0, max_size=8))
    leaves = [seed + i.to_bytes(4, "big") for i in range(size)]
    return leaves, MerkleTree([leaf_hash(d) for d in leaves])


@settings(max_examples=40, deadline=None)
@given(trees(), st.data())
def test_random_trees_roots_and_compact_range(tree_case, draw):
    leaves, tree = tree_case
    hashes = [leaf_hash(d) for d in leaves]
    assert tree.root() == ref_mth(leaves) == root_of(hashes)
    compact = CompactRange()
    for size in range(1, len(hashes) + 1):
        compact.append(hashes[size - 1])
        assert compact.size == size
        assert compact.root() == root_of(hashes[:size]) == tree.root(size)
    size = draw.draw(st.integers(min_value=0, max_value=len(leaves)), label="size")
    assert tree.root(size) == ref_mth(leaves[:size])


@settings(max_examples=60, deadline=None)
@given(trees(), st.data())
def test_random_trees_every_proof_verifies(tree_case, draw):
    leaves, tree = tree_case
    n = len(leaves)
    size = draw.draw(st.integers(min_value=1, max_value=n), label="size")
    root = tree.root(size)
    for index in range(size):
        proof = tree.inclusion_proof(index, size)
        verify_inclusion(leaf_hash(leaves[index]), index, size, proof, root)
    index = draw.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    assert tree.inclusion_proof(index, size) == ref_path(index, leaves[:size])
    for old in range(1, size + 1):
        verify_consistency(old, size, tree.root(old), root, tree.consistency_proof(old, size))
    old = draw.draw(st.integers(min_value=1, max_value=size), label="old")
    assert tree.consistency_proof(old, size) == ref_proof(old, leaves[:size])


@settings(max_examples=200, deadline=None)
@given(trees(), st.data())
def test_random_trees_any_flipped_bit_fails(tree_case, draw):
    leaves, tree = tree_case
    n = len(leaves)
    root = tree.root()
    index = draw.draw(st.integers(min_value=0, max_value=n - 1), label="index")
    leaf = leaf_hash(leaves[index])
    proof = tree.inclusion_proof(index)
    bit = draw.draw(st.integers(min_value=0, max_value=HASH_SIZE * 8 - 1), label="bit")
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, n, proof, flip(root, bit))
    if proof:
        i = draw.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="proof hash")
        bad = [*proof[:i], flip(proof[i], bit), *proof[i + 1 :]]
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, n, bad, root)
    old = draw.draw(st.integers(min_value=1, max_value=n), label="old")
    proof = tree.consistency_proof(old)
    old_root = tree.root(old)
    with pytest.raises(ProofError):
        verify_consistency(old, n, old_root, flip(root, bit), proof)
    with pytest.raises(ProofError):
        verify_consistency(old, n, flip(old_root, bit), root, proof)
    if proof:
        i = draw.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="proof hash")
        bad = [*proof[:i], flip(proof[i], bit), *proof[i + 1 :]]
        with pytest.raises(ProofError):
            verify_consistency(old, n, old_root, root, bad)


# --- verifier's reasons ----------------------------------------------------------


def test_verifiers_say_what_is_wrong():
    hashes = [leaf_hash(d) for d in data(8)]
    tree = MerkleTree(hashes)
    root, proof = tree.root(), tree.inclusion_proof(5)
    with pytest.raises(ProofError, match="leaf index 8 is out of range for a tree of size 8"):
        verify_inclusion(hashes[5], 8, 8, proof, root)
    with pytest.raises(ProofError, match="leaf hash is 31 bytes, expected 32"):
        verify_inclusion(hashes[5][:31], 5, 8, proof, root)
    with pytest.raises(ProofError, match="root is 0 bytes"):
        verify_inclusion(hashes[5], 5, 8, proof, b"")
    with pytest.raises(ProofError, match="proof hash 1 is 33 bytes"):
        verify_inclusion(hashes[5], 5, 8, [proof[0], proof[1] + b"x", proof[2]], root)
    with pytest.raises(ProofError, match=r"wrong proof length: 2 hashes, .* has 3"):
        verify_inclusion(hashes[5], 5, 8, proof[:2], root)
    with pytest.raises(ProofError, match="root mismatch"):
        verify_inclusion(hashes[4], 5, 8, proof, root)
    with pytest.raises(ProofError, match="negative"):
        verify_inclusion(hashes[5], -1, 8, proof, root)

    cproof = tree.consistency_proof(3)
    with pytest.raises(ProofError, match="old size 9 is larger than new size 8"):
        verify_consistency(9, 8, root, root, [])
    with pytest.raises(ProofError, match="old size 0"):
        verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(ProofError, match="proof between equal sizes is empty"):
        verify_consistency(8, 8, root, root, [root])
    with pytest.raises(ProofError, match="roots differ"):
        verify_consistency(8, 8, root, tree.root(7), [])
    with pytest.raises(ProofError, match="empty proof"):
        verify_consistency(3, 8, tree.root(3), root, [])
    assert len(cproof) == 4
    with pytest.raises(ProofError, match=r"wrong proof length: 5 hashes, .* has 4"):
        verify_consistency(3, 8, tree.root(3), root, [*cproof, root])
    with pytest.raises(ProofError, match="new root is 9 bytes"):
        verify_consistency(3, 8, tree.root(3), root[:9], cproof)
    with pytest.raises(ProofError, match="old root mismatch"):
        verify_consistency(3, 8, tree.root(2), root, cproof)
    verify_consistency(3, 8, tree.root(3), root, cproof)


def test_a_million_leaves_build_and_prove():
    """Not a timing test: the O(n) build and O(log² n) proofs finish on a big tree."""
    n = 1_000_000
    hashes = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]
    tree = MerkleTree(hashes)
    compact = CompactRange()
    compact.extend(hashes)
    root = tree.root()
    assert root == compact.root() == root_of(hashes)
    for index in (0, 1, 524_287, 524_288, n - 1):
        verify_inclusion(hashes[index], index, n, tree.inclusion_proof(index), root)
    for old in (1, 2, 3, 524_288, 999_999):
        verify_consistency(old, n, tree.root(old), root, tree.consistency_proof(old))


# --- published vectors ----------------------------------------------------------

VECTORS = Path(
    os.environ.get("PARTNERLEDGER_MERKLE_VECTORS")
    or Path(__file__).resolve().parents[1].parent / "shared/vectors/merkle"
)


def _vector_files() -> list[object]:
    files = sorted(
        p for kind in ("inclusion", "consistency") for p in (VECTORS / kind).rglob("*.json")
    )
    if not files:
        return [pytest.param(None, id="vectors-missing")]
    return [pytest.param(p, id=p.relative_to(VECTORS).as_posix()) for p in files]


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


@pytest.mark.parametrize("path", _vector_files())
def test_published_vector(path: Path | None):
    if path is None:
        pytest.skip(
            f"Merkle test vectors not found at {VECTORS} "
            "(set PARTNERLEDGER_MERKLE_VECTORS to the folder holding inclusion/ and consistency/)"
        )
    case = json.loads(path.read_text())
    proof = [_b64(h) for h in case["proof"] or []]
    kind = path.relative_to(VECTORS).parts[0]
    if kind == "inclusion":

        def check() -> None:
            verify_inclusion(
                _b64(case["leafHash"]), case["leafIdx"], case["treeSize"], proof, _b64(case["root"])
            )

    else:

        def check() -> None:
            verify_consistency(
                case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), proof
            )

    if case["wantErr"]:
        with pytest.raises(ProofError):
            check()
    else:
        check()


def test_the_vectors_cover_both_outcomes():
    """Guards the vector test itself: the folder, when present, holds passing and failing cases."""
    if not (VECTORS / "inclusion").is_dir():
        pytest.skip(f"Merkle test vectors not found at {VECTORS}")
    outcomes = {json.loads(p.read_text())["wantErr"] for p in VECTORS.rglob("*.json")}
    assert outcomes == {True, False}
