"""RFC 9162 Merkle tree hashing, inclusion proofs and consistency proofs (SHA-256).

The tree is the one Certificate Transparency defines (RFC 6962 §2.1, restated
unchanged in RFC 9162 §2.1), so any RFC 6962/9162 tool can check our roots and
proofs:

* a leaf's hash is ``SHA-256(0x00 || data)`` (:func:`leaf_hash`);
* an inner node's hash is ``SHA-256(0x01 || left || right)`` (:func:`node_hash`);
* the Merkle Tree Hash of ``n`` leaves is ``SHA-256()`` (:data:`EMPTY_ROOT`) for
  ``n = 0``, the leaf hash for ``n = 1``, and otherwise ``node_hash(MTH(D[0:k]),
  MTH(D[k:n]))`` where ``k`` is the largest power of two smaller than ``n``.

Everything here works on leaf *hashes* (32 bytes each), never on the leaves'
data: the caller hashes its records with :func:`leaf_hash` once and keeps the
hashes.

Four ways in:

* :func:`root_of` — the root of a list of leaf hashes, in O(n);
* :class:`CompactRange` — the root of a stream, holding O(log n) hashes (verify
  a million events without keeping them);
* :class:`MerkleTree` — hashes the tree once (O(n)), then answers the root at
  any earlier size, inclusion proofs and consistency proofs in O(log² n) each;
* :func:`verify_inclusion` and :func:`verify_consistency` — check a proof
  against a root, following RFC 9162 §2.1.3.2 and §2.1.4.2 step by step. They
  return ``None`` and raise :class:`ProofError` (a ``ValueError``) saying what
  is wrong: a hash of the wrong size, an index or size out of range, a proof of
  the wrong length, a root mismatch.

Proofs are lists of 32-byte hashes, lowest level first, exactly as the RFC's
``inclusion_path`` and ``consistency_path``. Edge cases follow RFC 9162 and the
reference implementation (``transparency-dev/merkle``), and are checked against
its published test vectors:

* a consistency proof between equal sizes is empty, and verifies when the two
  roots are equal (byte for byte);
* a consistency proof *from* size 0 is meaningless (every tree extends the
  empty tree; RFC 9162 requires ``0 < first``): :meth:`MerkleTree.consistency_proof`
  refuses to make one and :func:`verify_consistency` refuses to check one, even
  between two empty trees. A caller holding a checkpoint of size 0 has nothing
  to prove and simply accepts the next one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MerkleTree",
    "ProofError",
    "leaf_hash",
    "node_hash",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

#: Size in bytes of every hash: leaf hashes, node hashes, roots, proof entries.
HASH_SIZE = 32
#: The root of the empty tree: ``SHA-256()`` of nothing.
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class ProofError(ValueError):
    """A proof does not verify; ``reason`` (also the message) says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf: ``SHA-256(0x00 || data)``."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an inner node: ``SHA-256(0x01 || left || right)``.

    The two children are not checked (this is the inner loop of everything
    else); pass 32-byte hashes.
    """
    return _sha256(_NODE_PREFIX + left + right).digest()


def _check_leaf_hashes(leaf_hashes: Iterable[bytes]) -> None:
    if (
        isinstance(leaf_hashes, list | tuple)
        and set(map(type, leaf_hashes)) <= {bytes}
        and set(map(len, leaf_hashes)) <= {HASH_SIZE}
    ):
        return  # (the usual case, checked in C: plain bytes of the right length)
    for index, h in enumerate(leaf_hashes):
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise ValueError(f"leaf hash {index} is not {HASH_SIZE} bytes: {h!r}")


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash (RFC 9162 §2.1.1) of ``leaf_hashes``, in O(n).

    Empty → :data:`EMPTY_ROOT`. Raises ``ValueError`` when a leaf hash is not
    32 bytes.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    _check_leaf_hashes(leaf_hashes)
    # Pair neighbours level by level, carrying an unpaired last node up as is:
    # this builds exactly the RFC's left-heavy tree.
    level = list(leaf_hashes)
    sha, prefix = _sha256, _NODE_PREFIX
    while len(level) > 1:
        pairs = iter(level)
        upper = [
            sha(prefix + left + right).digest() for left, right in zip(pairs, pairs, strict=False)
        ]
        if len(level) % 2:
            upper.append(level[-1])
        level = upper
    return level[0]


class CompactRange:
    """The root of a growing list of leaf hashes, holding O(log n) hashes.

    ``append`` leaf hashes one at a time (or ``extend``); ``root()`` gives the
    Merkle Tree Hash of everything appended so far, at any time. It keeps one
    hash per 1-bit of ``size`` (the perfect subtrees the leaves so far split
    into), so a million leaves cost 20 hashes of memory.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        # Roots of the perfect subtrees covering [0, size), largest (leftmost) first.
        self._stack: list[bytes] = []

    @property
    def size(self) -> int:
        """How many leaf hashes were appended."""
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash (32 bytes; ``ValueError`` otherwise)."""
        if not isinstance(leaf_hash, bytes) or len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash {self._size} is not {HASH_SIZE} bytes: {leaf_hash!r}")
        node, n, stack = leaf_hash, self._size, self._stack
        # Each trailing 1-bit of the old size is a perfect subtree the new leaf completes.
        while n & 1:
            node = _sha256(_NODE_PREFIX + stack.pop() + node).digest()
            n >>= 1
        stack.append(node)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append each of ``leaf_hashes`` in order."""
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """The Merkle Tree Hash of the leaves appended so far (:data:`EMPTY_ROOT` if none)."""
        if not self._stack:
            return EMPTY_ROOT
        acc = self._stack[-1]
        for node in reversed(self._stack[:-1]):
            acc = node_hash(node, acc)
        return acc


class MerkleTree:
    """A tree over a fixed list of leaf hashes, for roots and proofs at any size.

    Building hashes every perfect subtree once (O(n) hashes, about 32 bytes of
    memory per leaf on top of the leaf hashes). After that, ``root(size)``
    costs O(log n) and each proof O(log² n) hashes, for any ``size`` up to the
    number of leaves, so many proofs can be asked of one tree.

    Raises ``ValueError`` when a leaf hash is not 32 bytes.
    """

    __slots__ = ("_leaves", "_levels")

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        leaves = tuple(leaf_hashes)
        _check_leaf_hashes(leaves)
        self._leaves = leaves
        # _levels[h - 1] holds, back to back, the hashes of the perfect subtrees
        # of 2**h leaves: node i covers leaves [i * 2**h, (i + 1) * 2**h).
        self._levels: list[bytes] = []
        sha, prefix = _sha256, _NODE_PREFIX
        if len(leaves) >= 2:
            pairs = iter(leaves)
            level = b"".join(
                sha(prefix + left + right).digest()
                for left, right in zip(pairs, pairs, strict=False)
            )
            self._levels.append(level)
            width = 2 * HASH_SIZE
            while len(level) >= width:
                level = b"".join(
                    sha(prefix + level[i : i + width]).digest()
                    for i in range(0, len(level) - width + 1, width)
                )
                self._levels.append(level)

    def __len__(self) -> int:
        return len(self._leaves)

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._leaves)

    def _node(self, height: int, index: int) -> bytes:
        if height == 0:
            return self._leaves[index]
        start = index * HASH_SIZE
        return self._levels[height - 1][start : start + HASH_SIZE]

    def _range_hash(self, start: int, count: int) -> bytes:
        """MTH of leaves [start, start + count), ``count >= 1``, ``start`` a
        multiple of the smallest power of two >= ``count`` (every subtree the
        RFC's recursions visit is one of these)."""
        nodes = []
        pos = start
        for height in range(count.bit_length() - 1, -1, -1):
            if count >> height & 1:
                nodes.append(self._node(height, pos >> height))
                pos += 1 << height
        acc = nodes.pop()
        while nodes:
            acc = node_hash(nodes.pop(), acc)
        return acc

    def _size_arg(self, size: int | None, what: str = "size") -> int:
        if size is None:
            return len(self._leaves)
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"{what} must be an int, not {type(size).__name__}")
        if not 0 <= size <= len(self._leaves):
            raise ValueError(
                f"{what} {size} is out of range: the tree has {len(self._leaves)} leaves"
            )
        return size

    def root(self, size: int | None = None) -> bytes:
        """The Merkle Tree Hash of the first ``size`` leaves (default: all).

        ``size`` 0 → :data:`EMPTY_ROOT`; ``ValueError`` when ``size`` is negative
        or larger than the tree.
        """
        n = self._size_arg(size)
        return EMPTY_ROOT if n == 0 else self._range_hash(0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path ``PATH(index, D[0:size])`` of RFC 9162 §2.1.3.1.

        Proves that leaf ``index`` is in the tree of the first ``size`` leaves
        (default: all); verify it with :func:`verify_inclusion`. ``ValueError``
        unless ``0 <= index < size <= len(tree)``.
        """
        n = self._size_arg(size)
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"index must be an int, not {type(index).__name__}")
        if not 0 <= index < n:
            raise ValueError(f"leaf index {index} is out of range for a tree of size {n}")
        # Walk down from the root; the RFC lists the siblings bottom-up.
        proof: list[bytes] = []
        start, m = 0, index
        while n > 1:
            k = _split(n)
            if m < k:
                proof.append(self._range_hash(start + k, n - k))
                n = k
            else:
                proof.append(self._range_hash(start, k))
                start, m, n = start + k, m - k, n - k
        proof.reverse()
        return proof

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The proof ``PROOF(old_size, D[0:new_size])`` of RFC 9162 §2.1.4.1.

        Proves that the tree of the first ``old_size`` leaves is a prefix of the
        tree of the first ``new_size`` (default: all); verify it with
        :func:`verify_consistency`. Empty when the sizes are equal.
        ``ValueError`` unless ``0 < old_size <= new_size <= len(tree)`` (a proof
        from the empty tree is meaningless: see the module's notes).
        """
        n = self._size_arg(new_size, "new_size")
        m = self._size_arg(old_size, "old_size")
        if m > n:
            raise ValueError(f"old_size {m} is larger than new_size {n}")
        if m == 0:
            raise ValueError(
                "old_size 0: a consistency proof from the empty tree is meaningless "
                "(every tree extends it)"
            )
        # SUBPROOF(m, D[n], true), unrolled: walk down while m is inside the
        # current subtree, then (unless m is a whole left subtree the verifier
        # already knows) add the root of D[0:m]'s last piece.
        proof: list[bytes] = []
        start, whole = 0, True
        while m != n:
            k = _split(n)
            if m <= k:
                proof.append(self._range_hash(start + k, n - k))
                n = k
            else:
                proof.append(self._range_hash(start, k))
                start, m, n, whole = start + k, m - k, n - k, False
        if not whole:
            proof.append(self._range_hash(start, m))
        proof.reverse()
        return proof


# --- verification -------------------------------------------------------------


def _inclusion_proof_length(index: int, size: int) -> int:
    """How many hashes PATH(index, D[size]) holds (0 <= index < size)."""
    inner = (
        index ^ (size - 1)
    ).bit_length()  # levels below where the paths to index and size-1 meet
    return inner + (index >> inner).bit_count()


def _consistency_proof_length(old_size: int, new_size: int) -> int:
    """How many hashes PROOF(old_size, D[new_size]) holds (0 < old_size < new_size)."""
    length, m, n, whole = 0, old_size, new_size, True
    while m != n:
        k = _split(n)
        if m <= k:
            n = k
        else:
            m, n, whole = m - k, n - k, False
        length += 1
    return length + (0 if whole else 1)


def _check_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProofError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ProofError(f"{name} {value} is negative")
    return value


def _check_hash(name: str, value: object) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ProofError(f"{name} must be bytes, not {type(value).__name__}")
    value = bytes(value)
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} is {len(value)} bytes, expected {HASH_SIZE}")
    return value


def _check_proof(proof: Sequence[bytes]) -> list[bytes]:
    if isinstance(proof, bytes | bytearray | str):
        raise ProofError("proof must be a list of hashes, not a single byte string")
    return [_check_hash(f"proof hash {i}", h) for i, h in enumerate(proof)]


def _hashes(count: int) -> str:
    return f"{count} hash" if count == 1 else f"{count} hashes"


def _short(h: bytes) -> str:
    return h.hex()[:16] + "…"


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    ``proof`` is the audit path (:meth:`MerkleTree.inclusion_proof`). Follows
    RFC 9162 §2.1.3.2, after checking that the index is in range, that every
    hash is 32 bytes and that the proof has exactly the length the index and
    size call for. Returns ``None``; raises :class:`ProofError` otherwise.
    """
    index = _check_size("leaf index", index)
    size = _check_size("tree size", size)
    if index >= size:
        raise ProofError(f"leaf index {index} is out of range for a tree of size {size}")
    leaf = _check_hash("leaf hash", leaf_hash)
    expected_root = _check_hash("root", root)
    path = _check_proof(proof)
    want = _inclusion_proof_length(index, size)
    if len(path) != want:
        raise ProofError(
            f"wrong proof length: {_hashes(len(path))}, a proof for leaf {index} "
            f"of a tree of size {size} has {want}"
        )
    # RFC 9162 §2.1.3.2, steps 2-5.
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise ProofError("proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is shorter than the tree is deep")
    if r != expected_root:
        raise ProofError(
            f"root mismatch: the proof leads to {_short(r)}, expected {_short(expected_root)}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (``old_size``, ``old_root``) is a prefix of (``new_size``, ``new_root``).

    ``proof`` is the consistency proof (:meth:`MerkleTree.consistency_proof`).
    Follows RFC 9162 §2.1.4.2 for ``0 < old_size < new_size``, after checking
    that every hash is 32 bytes and that the proof has exactly the length the
    two sizes call for. Edge cases, as the reference implementation:
    ``old_size > new_size`` and ``old_size == 0`` are refused; equal sizes need
    an empty proof and equal roots. Returns ``None``; raises
    :class:`ProofError` otherwise.
    """
    old_size = _check_size("old size", old_size)
    new_size = _check_size("new size", new_size)
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == 0:
        raise ProofError(
            "old size 0: a consistency proof from the empty tree is meaningless "
            "(every tree extends it)"
        )
    if old_size == new_size:
        if len(proof):
            raise ProofError(
                f"wrong proof length: {_hashes(len(proof))}, a proof between equal sizes is empty"
            )
        if bytes(old_root) != bytes(new_root):
            raise ProofError(
                f"root mismatch: both trees have size {old_size} but their roots differ"
            )
        return
    first_hash = _check_hash("old root", old_root)
    second_hash = _check_hash("new root", new_root)
    path = _check_proof(proof)
    if not path:
        raise ProofError("empty proof: trees of different sizes need a consistency proof")
    want = _consistency_proof_length(old_size, new_size)
    if len(path) != want:
        raise ProofError(
            f"wrong proof length: {_hashes(len(path))}, a proof from size {old_size} "
            f"to size {new_size} has {want}"
        )
    # RFC 9162 §2.1.4.2, steps 2-7.
    if old_size & (old_size - 1) == 0:
        path.insert(0, first_hash)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("proof is longer than the new tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is shorter than the new tree is deep")
    if fr != first_hash:
        raise ProofError(
            f"old root mismatch: the proof leads to {_short(fr)}, expected {_short(first_hash)}"
        )
    if sr != second_hash:
        raise ProofError(
            f"new root mismatch: the proof leads to {_short(sr)}, expected {_short(second_hash)}"
        )
