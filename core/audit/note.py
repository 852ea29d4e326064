"""C2SP signed notes and transparency log checkpoints, Ed25519 keys.

Specifications: https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint.

A *signed note* is UTF-8 text ending in a newline, a blank line, then one or
more signature lines::

    <text, ending in a newline>
    <blank line>
    — <key name> <base64(4-byte key ID || 64-byte Ed25519 signature)>

The signature covers the text including its final newline, not the blank
line. The line starts with an em dash (U+2014) and a space. The format and the
key encodings are those of Go's ``golang.org/x/mod/sumdb/note``, so notes
signed here open there and the other way round (the tests check the package's
documented example byte for byte).

Keys (Ed25519, signature type ``0x01``):

* key ID: the first 4 bytes, read as a big-endian uint32, of
  ``SHA-256(name || 0x0A || 0x01 || 32-byte public key)``;
* verifier key (public, give it to whoever checks):
  ``<name>+<key ID as 8 hex digits>+<base64(0x01 || public key)>``;
* signer key (secret): ``PRIVATE+KEY+<name>+<key ID>+<base64(0x01 || 32-byte seed)>``.

Key names are non-empty, valid UTF-8, without ``+``, whitespace or control
characters; they are conventionally schema-less URLs (``example.com/log``).

:func:`open_note` parses a note and returns its text when at least one
signature by a known key (same name *and* key ID) verifies. It refuses, with
:class:`NoteError` (a ``ValueError``):

* ``malformed note: …`` — over 1 MiB, not UTF-8, a control character other than
  newline, no blank line before the signatures, a line that is not
  ``— <name> <base64>``, a signature of fewer than 5 bytes, more than 100
  signature lines;
* ``invalid signature by <name> …`` — a signature from a known key that does
  not verify (the whole note is refused, even if another signature verifies);
* ``no signature by a known key (signed by: <name>+<key ID>, …)``.

Signatures by unknown keys are ignored (that is how keys rotate and witnesses
cosign); repeated signatures by one key count once.

A *checkpoint* is a note whose text is a log's tree head: origin line, tree
size line (decimal, no leading zeros), root hash line (base64 of 32 bytes),
then optional non-empty extension lines (:class:`Checkpoint`).

:func:`load_or_create_signer` keeps a signer key in a file, mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "ALG_ED25519",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "Checkpoint",
    "NoteError",
    "Signer",
    "Verifier",
    "load_or_create_signer",
    "open_note",
]

#: Signature type byte of Ed25519 keys (the only type supported here).
ALG_ED25519 = 0x01
#: Largest note :func:`open_note` reads, in bytes (1 MiB).
MAX_NOTE_SIZE = 1 << 20
#: Most signature lines :func:`open_note` reads.
MAX_SIGNATURES = 100

_SIG_PREFIX = "\u2014 "  # em dash, space
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_SIZE = re.compile(r"0|[1-9][0-9]*")
_MAX_TREE_SIZE = (1 << 64) - 1


class NoteError(ValueError):
    """A note, key or checkpoint is malformed, unsigned or badly signed; the message says which."""


def _name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid key name, or ``None`` when it is."""
    if not isinstance(name, str):
        return f"key name must be a str, not {type(name).__name__}"
    if not name:
        return "key name is empty"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"key name {name!r} is not valid UTF-8"
    for ch in name:
        if ch == "+":
            return f"key name {name!r} contains '+'"
        if ch.isspace() or unicodedata.category(ch) in ("Zs", "Zl", "Zp", "Cc"):
            return f"key name {name!r} contains whitespace or a control character"
    return None


def _check_name(name: str) -> str:
    problem = _name_problem(name)
    if problem:
        raise NoteError(problem)
    return name


def _key_id(name: str, typed_public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + typed_public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _b64decode(text: str) -> bytes:
    """Strict standard base64 (RFC 4648 §4, padded); ``binascii.Error`` otherwise."""
    return base64.b64decode(text.encode("ascii"), validate=True)


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _parse_typed_key(what: str, key64: str) -> bytes:
    """The 32 key bytes of ``base64(0x01 || key)``."""
    try:
        typed = _b64decode(key64)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"malformed {what}: the key is not valid base64") from None
    if not typed:
        raise NoteError(f"malformed {what}: the key is empty")
    if typed[0] != ALG_ED25519:
        raise NoteError(
            f"malformed {what}: unknown signature type 0x{typed[0]:02x} (only Ed25519, 0x01)"
        )
    if len(typed) != 33:
        raise NoteError(f"malformed {what}: an Ed25519 key is 32 bytes, not {len(typed) - 1}")
    return typed[1:]


def _parse_key_id(what: str, hex8: str) -> int:
    if not _HEX8.fullmatch(hex8):
        raise NoteError(f"malformed {what}: the key ID {hex8!r} is not 8 hex digits")
    return int(hex8, 16)


def _strip_newline(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text


class Verifier:
    """A named Ed25519 public key that checks note signatures."""

    __slots__ = ("_key", "_key_id", "_name", "_raw")

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        self._name = _check_name(name)
        self._key = public_key
        self._raw = _raw_public(public_key)
        self._key_id = _key_id(name, bytes([ALG_ED25519]) + self._raw)

    @classmethod
    def from_text(cls, vkey: str) -> Verifier:
        """Parse a verifier key ``<name>+<8 hex key ID>+<base64(0x01 || public key)>``.

        A final newline is allowed. Raises :class:`NoteError` when the text is
        malformed, the algorithm is not Ed25519, or the key ID is not the one
        the name and key give.
        """
        what = "verifier key"
        parts = _strip_newline(vkey).split("+", 2)
        if len(parts) != 3:
            raise NoteError(f"malformed {what}: expected <name>+<key ID>+<key>")
        name, hex8, key64 = parts
        problem = _name_problem(name)
        if problem:
            raise NoteError(f"malformed {what}: {problem}")
        key_id = _parse_key_id(what, hex8)
        raw = _parse_typed_key(what, key64)
        verifier = cls(name, Ed25519PublicKey.from_public_bytes(raw))
        if verifier.key_id != key_id:
            raise NoteError(
                f"malformed {what}: key ID {key_id:08x} does not match the key "
                f"(it is {verifier.key_id:08x})"
            )
        return verifier

    @property
    def name(self) -> str:
        """The key name signatures by this key carry."""
        return self._name

    @property
    def key_id(self) -> int:
        """The key ID (uint32) that signatures by this key carry."""
        return self._key_id

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return self._raw

    def text(self) -> str:
        """The verifier key: ``<name>+<key ID>+<base64(0x01 || public key)>``."""
        return f"{self._name}+{self.key_id:08x}+{_b64encode(bytes([ALG_ED25519]) + self._raw)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (the raw Ed25519 signature, without key ID) signs ``message``."""
        try:
            self._key.verify(bytes(signature), bytes(message))
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verifier):
            return NotImplemented
        return (self._name, self._raw) == (other._name, other._raw)

    def __hash__(self) -> int:
        return hash((self._name, self._raw))

    def __repr__(self) -> str:
        return f"Verifier({self.text()!r})"


class Signer:
    """A named Ed25519 private key that signs notes. Keep its :meth:`text` secret."""

    __slots__ = ("_key", "_name", "_verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._name = _check_name(name)
        self._key = private_key
        self._verifier = Verifier(name, private_key.public_key())

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A new random key named ``name``."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_text(cls, text: str) -> Signer:
        """Parse a signer key ``PRIVATE+KEY+<name>+<key ID>+<base64(0x01 || seed)>``.

        A final newline is allowed. Raises :class:`NoteError` when the text is
        malformed, the algorithm is not Ed25519, or the key ID is not the one
        the name and the derived public key give.
        """
        what = "signer key"
        parts = _strip_newline(text).split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise NoteError(f"malformed {what}: expected PRIVATE+KEY+<name>+<key ID>+<key>")
        _, _, name, hex8, key64 = parts
        problem = _name_problem(name)
        if problem:
            raise NoteError(f"malformed {what}: {problem}")
        key_id = _parse_key_id(what, hex8)
        seed = _parse_typed_key(what, key64)
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(seed))
        if signer.key_id != key_id:
            raise NoteError(
                f"malformed {what}: key ID {key_id:08x} does not match the key "
                f"(it is {signer.key_id:08x})"
            )
        return signer

    @property
    def name(self) -> str:
        """The key name written in signature lines."""
        return self._name

    @property
    def key_id(self) -> int:
        """The key ID (uint32) written in signatures."""
        return self._verifier.key_id

    def verifier(self) -> Verifier:
        """The matching public key."""
        return self._verifier

    def text(self) -> str:
        """The signer key: ``PRIVATE+KEY+<name>+<key ID>+<base64(0x01 || seed)>``. Secret."""
        seed = self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return (
            f"PRIVATE+KEY+{self._name}+{self.key_id:08x}+{_b64encode(bytes([ALG_ED25519]) + seed)}"
        )

    def sign(self, text: str) -> str:
        """The signed note: ``text``, a blank line and this key's signature line.

        ``text`` must end with a newline and be a valid note text (UTF-8, no
        control character but newline, the whole note under 1 MiB); raises
        :class:`NoteError` (a ``ValueError``) otherwise. Ed25519 is
        deterministic: the same key and text always give the same note.
        """
        if not isinstance(text, str):
            raise NoteError(f"note text must be a str, not {type(text).__name__}")
        if not text.endswith("\n"):
            raise NoteError("malformed note text: it must end with a newline")
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise NoteError("malformed note text: not valid UTF-8") from None
        problem = _control_character(text)
        if problem:
            raise NoteError(f"malformed note text: {problem}")
        signature = self._key.sign(data)
        line = (
            f"{_SIG_PREFIX}{self._name} {_b64encode(self.key_id.to_bytes(4, 'big') + signature)}\n"
        )
        note = f"{text}\n{line}"
        if len(note.encode("utf-8")) > MAX_NOTE_SIZE:
            raise NoteError(
                f"malformed note text: the signed note would exceed {MAX_NOTE_SIZE} bytes"
            )
        return note

    def __repr__(self) -> str:
        # Never the private key.
        return f"Signer(name={self._name!r}, key_id={self.key_id:08x})"


def _control_character(text: str) -> str | None:
    for offset, ch in enumerate(text):
        if ch < " " and ch != "\n":
            return f"control character U+{ord(ch):04X} at character {offset}"
    return None


def open_note(note: str | bytes, verifiers: Sequence[Verifier]) -> str:
    """The text of ``note`` when a signature by one of ``verifiers`` verifies.

    A verifier matches a signature line by key name *and* key ID. Signatures
    by other keys are ignored; any signature by a known key that fails refuses
    the whole note. Returns the text including its final newline (without the
    blank line). Raises :class:`NoteError` as described in the module's notes.
    """
    if isinstance(note, str):
        try:
            data = note.encode("utf-8")
        except UnicodeEncodeError:
            raise NoteError("malformed note: not valid UTF-8") from None
    elif isinstance(note, bytes | bytearray | memoryview):
        data = bytes(note)
    else:
        raise NoteError(f"malformed note: expected str or bytes, not {type(note).__name__}")
    if len(data) > MAX_NOTE_SIZE:
        raise NoteError(f"malformed note: {len(data)} bytes, more than {MAX_NOTE_SIZE}")
    try:
        message = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError(f"malformed note: not valid UTF-8 (at byte {exc.start})") from None
    problem = _control_character(message)
    if problem:
        raise NoteError(f"malformed note: {problem}")

    split = message.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, block = message[: split + 1], message[split + 2 :]
    if not block:
        raise NoteError("malformed note: no signature lines after the blank line")
    if not block.endswith("\n"):
        raise NoteError("malformed note: the last signature line does not end with a newline")

    known: dict[tuple[str, int], list[Verifier]] = {}
    for verifier in verifiers:
        if not isinstance(verifier, Verifier):
            raise TypeError(f"verifiers must be Verifier objects, not {type(verifier).__name__}")
        same = known.setdefault((verifier.name, verifier.key_id), [])
        if verifier not in same:
            same.append(verifier)

    text_bytes = text.encode("utf-8")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"malformed note: {len(lines)} signature lines, more than {MAX_SIGNATURES}")
    verified: list[str] = []
    unknown: list[str] = []
    seen: set[tuple[str, int]] = set()
    for number, line in enumerate(lines, start=1):
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(
                f"malformed note: signature line {number} does not start with '— ' "
                "(expected '— <key name> <base64 signature>')"
            )
        name, space, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        problem = _name_problem(name)
        if not space or problem:
            raise NoteError(f"malformed note: signature line {number}: {problem or 'no signature'}")
        try:
            raw = _b64decode(b64)
        except (binascii.Error, UnicodeEncodeError):
            raise NoteError(
                f"malformed note: signature line {number}: the signature is not valid base64"
            ) from None
        if len(raw) < 5:
            raise NoteError(
                f"malformed note: signature line {number}: the signature is {len(raw)} bytes, "
                "too short for a key ID and a signature"
            )
        key_id = int.from_bytes(raw[:4], "big")
        candidates = known.get((name, key_id))
        if not candidates:
            label = f"{name}+{key_id:08x}"
            if label not in unknown:
                unknown.append(label)
            continue
        if len(candidates) > 1:
            raise NoteError(
                f"ambiguous verifiers: two different keys are named {name}+{key_id:08x}"
            )
        if (name, key_id) in seen:
            continue
        seen.add((name, key_id))
        if not candidates[0].verify(text_bytes, raw[4:]):
            raise NoteError(f"invalid signature by {name} (key {key_id:08x})")
        verified.append(name)
    if not verified:
        raise NoteError(f"no signature by a known key (signed by: {', '.join(unknown)})")
    return text


@dataclass(frozen=True)
class Checkpoint:
    """A transparency log checkpoint: the text of a signed tree head (c2sp.org/tlog-checkpoint).

    ``origin`` names the log (non-empty, one line), ``size`` is the number of
    leaves, ``root`` the 32-byte Merkle Tree Hash at that size, ``extensions``
    optional non-empty lines after the root. Invalid values raise
    :class:`NoteError`.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise NoteError("malformed checkpoint: the origin line is empty")
        if "\n" in self.origin or _control_character(self.origin):
            raise NoteError("malformed checkpoint: the origin contains a control character")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise NoteError(
                f"malformed checkpoint: size must be an int, not {type(self.size).__name__}"
            )
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            raise NoteError(f"malformed checkpoint: size {self.size} is out of range")
        if not isinstance(self.root, bytes) or len(self.root) != 32:
            raise NoteError("malformed checkpoint: the root hash must be 32 bytes")
        if not isinstance(self.extensions, tuple):
            raise NoteError("malformed checkpoint: extensions must be a tuple of lines")
        for number, line in enumerate(self.extensions, start=4):
            if not isinstance(line, str) or not line:
                raise NoteError(f"malformed checkpoint: line {number} (an extension line) is empty")
            if "\n" in line or _control_character(line):
                raise NoteError(
                    f"malformed checkpoint: line {number} (an extension line) "
                    "contains a control character"
                )
        for line in (self.origin, *self.extensions):
            try:
                line.encode("utf-8")
            except UnicodeEncodeError:
                raise NoteError("malformed checkpoint: not valid UTF-8") from None

    def text(self) -> str:
        """The note text: origin, size, base64 root, extension lines, each ending in a newline."""
        lines = [self.origin, str(self.size), _b64encode(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint text (as :func:`open_note` returns it), strictly.

        The text must end with a newline and have at least three lines; the
        size is ASCII decimal without leading zeros (``0`` for the empty tree)
        and at most 2**64 - 1; the root is the canonical standard base64 of
        exactly 32 bytes; extension lines are non-empty. Raises
        :class:`NoteError` naming the line otherwise.
        """
        if not isinstance(text, str):
            raise NoteError(f"malformed checkpoint: expected str, not {type(text).__name__}")
        if not text.endswith("\n"):
            raise NoteError("malformed checkpoint: the text does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError(
                f"malformed checkpoint: {len(lines)} lines, expected origin, size and root hash"
            )
        origin, size_line, root_line, *extensions = lines
        if not origin:
            raise NoteError("malformed checkpoint: line 1 (the origin) is empty")
        if not _SIZE.fullmatch(size_line):
            raise NoteError(
                f"malformed checkpoint: line 2 (the tree size) {size_line!r} is not a decimal "
                "number without leading zeros"
            )
        size = int(size_line)
        if size > _MAX_TREE_SIZE:
            raise NoteError(f"malformed checkpoint: line 2 (the tree size) {size} is out of range")
        try:
            root = _b64decode(root_line)
        except (binascii.Error, UnicodeEncodeError):
            raise NoteError(
                "malformed checkpoint: line 3 (the root hash) is not valid base64"
            ) from None
        if len(root) != 32:
            raise NoteError(
                f"malformed checkpoint: line 3 (the root hash) is {len(root)} bytes, expected 32"
            )
        if _b64encode(root) != root_line:
            raise NoteError("malformed checkpoint: line 3 (the root hash) is not canonical base64")
        return cls(origin, size, root, tuple(extensions))


def load_or_create_signer(path: Path, name: str) -> Signer:
    """The signer key kept in ``path``, created with a new random key when missing.

    Creation makes the parent directories, writes the key to a temporary file
    of mode 0600 in the same directory and links it into place only if
    ``path`` still does not exist, so the key file never appears half written
    and two processes racing both end up with the key that won. An existing
    file must hold a valid signer key named ``name`` and, on POSIX, must not
    be accessible to group or others; otherwise :class:`NoteError` naming the
    path.
    """
    path = Path(path)
    _check_name(name)
    try:
        return _load_signer(path, name)
    except FileNotFoundError:
        pass
    signer = Signer.generate(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        created = _create_exclusive(path, (signer.text() + "\n").encode("ascii"))
    except OSError as exc:
        raise NoteError(f"{path}: cannot create the signer key: {exc.strerror or exc}") from None
    if created:
        return signer
    # Another process created it first: use theirs.
    return _load_signer(path, name)


def _load_signer(path: Path, name: str) -> Signer:
    """Read the key file; ``FileNotFoundError`` when missing, :class:`NoteError` when unusable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise NoteError(f"{path}: cannot read the signer key: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NoteError(f"{path}: the signer key is not a regular file")
        if os.name == "posix" and info.st_mode & 0o077:
            raise NoteError(
                f"{path}: the signer key file is accessible to group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); make it 0600"
            )
        data = os.read(fd, 4096)  # a key is under 100 bytes; more is not a key
    except OSError as exc:
        raise NoteError(f"{path}: cannot read the signer key: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise NoteError(f"{path}: not a signer key (not ASCII text)") from None
    try:
        signer = Signer.from_text(text)
    except NoteError as exc:
        raise NoteError(f"{path}: not a valid signer key: {exc}") from None
    if signer.name != name:
        raise NoteError(f"{path}: the signer key is named {signer.name!r}, expected {name!r}")
    return signer


def _create_exclusive(path: Path, content: bytes) -> bool:
    """Write ``content`` to ``path`` (mode 0600) unless it exists; whether we created it."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            if os.name == "posix":
                os.fchmod(file.fileno(), 0o600)  # exactly 0600, whatever the umask
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails if path exists (O_EXCL semantics)
        except FileExistsError:
            return False
        except OSError:
            # No hard links here (some filesystems): exclusive create in place.
            try:
                fd2 = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return False
            with os.fdopen(fd2, "wb") as file:
                if os.name == "posix":
                    os.fchmod(file.fileno(), 0o600)
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
        _fsync_directory(path.parent)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
