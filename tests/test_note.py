"""Signed notes and checkpoints: Go's sumdb/note example byte for byte, refusals, key files."""

from __future__ import annotations

import base64
import os
import re
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partnerledger.audit.note import (
    MAX_NOTE_SIZE,
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    load_or_create_signer,
    open_note,
)

# The documented example of golang.org/x/mod/sumdb/note (package doc and note_test.go).
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXg"
    "KvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01"
    "oOTGwnWLox33WWd1RvMc+QQ=\n"
)
NOTE = TEXT + "\n" + PETER_SIG


@pytest.fixture
def peter() -> Verifier:
    return Verifier.from_text(PETER_VKEY)


# --- keys -------------------------------------------------------------------------


def test_go_example_keys_round_trip():
    signer = Signer.from_text(PETER_SKEY)
    verifier = Verifier.from_text(PETER_VKEY)
    assert signer.text() == PETER_SKEY
    assert verifier.text() == PETER_VKEY
    assert signer.name == verifier.name == "PeterNeumann"
    assert signer.key_id == verifier.key_id == 0xC74F20A3
    assert signer.verifier() == verifier
    assert "AYEKFALV" not in repr(signer)  # the private key never shows


def test_generated_keys_are_self_consistent():
    signer = Signer.generate("example.com/log")
    again = Signer.from_text(signer.text())
    assert again.text() == signer.text()
    assert Verifier.from_text(signer.verifier().text()) == signer.verifier()
    assert signer.text().startswith(f"PRIVATE+KEY+example.com/log+{signer.key_id:08x}+")
    message = b"hi"
    raw = base64.b64decode(signer.sign("hi\n").split(" ")[-1])[4:]
    assert signer.verifier().verify(b"hi\n", raw)
    assert not signer.verifier().verify(message, raw)
    assert not Signer.generate("example.com/log").verifier().verify(b"hi\n", raw)


@pytest.mark.parametrize(
    ("vkey", "reason"),
    [
        ("PeterNeumann+c74f20a3", "expected <name>+<key ID>+<key>"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name is empty"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "whitespace"),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "not 8 hex digits"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "not valid base64"),
        # From Go's note_test.go: wrong key length and unknown algorithm, key IDs adjusted.
        (
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "32 bytes",
        ),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "signature type"),
    ],
)
def test_bad_verifier_keys_are_refused(vkey, reason):
    with pytest.raises(NoteError, match="malformed verifier key") as error:
        Verifier.from_text(vkey)
    assert reason in str(error.value)


def test_every_mangling_of_the_keys_is_refused():
    """As Go's TestNewVerifier and TestNewSigner: any substring or changed byte fails."""
    for text, parse in ((PETER_VKEY, Verifier.from_text), (PETER_SKEY, Signer.from_text)):
        for i in range(len(text)):
            for j in range(i + 1, len(text) + 1):
                if (i, j) != (0, len(text)):
                    with pytest.raises(NoteError):
                        parse(text[i:j])
            changed = text[:i] + chr(ord(text[i]) + 1) + text[i + 1 :]
            with pytest.raises(NoteError):
                parse(changed)


@pytest.mark.parametrize("name", ["", "a+b", "a b", "tab\there", "nbsp\u00a0", "bad\udc80"])
def test_bad_key_names_are_refused(name):
    with pytest.raises(NoteError):
        Signer.generate(name)


# --- signing and opening ------------------------------------------------------------


def test_go_example_signs_to_identical_bytes_and_opens(peter):
    assert Signer.from_text(PETER_SKEY).sign(TEXT) == NOTE
    assert open_note(NOTE, [peter]) == TEXT
    assert open_note(NOTE.encode(), [peter]) == TEXT


def test_c2sp_example_opens():
    vkey = Verifier.from_text(
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
    )
    note = (
        "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXp"
        "pzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
    )
    assert open_note(note, [vkey]) == "This is an example message.\n"


def test_signature_by_one_known_key_is_enough(peter):
    enoch = Verifier.from_text(ENOCH_VKEY)
    both = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert open_note(both, [peter]) == TEXT
    assert open_note(both, [enoch]) == TEXT
    assert open_note(both, [peter, enoch]) == TEXT
    # Repeated signatures count once; the same verifier twice is not ambiguous.
    assert open_note(TEXT + "\n" + PETER_SIG * 3 + ENOCH_SIG, [peter, peter]) == TEXT


def test_text_may_hold_blank_lines():
    signer = Signer.generate("example.com/log")
    text = "first\n\nthird\n\n"
    note = signer.sign(text)
    assert open_note(note, [signer.verifier()]) == text


def test_sign_refuses_bad_text():
    signer = Signer.from_text(PETER_SKEY)
    with pytest.raises(ValueError, match="must end with a newline"):
        signer.sign("abc")
    with pytest.raises(NoteError, match="control character U\\+0009"):
        signer.sign("a\tb\n")
    with pytest.raises(NoteError, match="exceed"):
        signer.sign("x" * MAX_NOTE_SIZE + "\n")


def test_tampered_text_is_an_invalid_signature(peter):
    tampered = NOTE.replace("cryptography", "Cryptography")
    with pytest.raises(NoteError, match="invalid signature by PeterNeumann"):
        open_note(tampered, [peter])


def test_wrong_key_with_the_same_name_and_id_is_an_invalid_signature():
    impostor = Signer.generate("PeterNeumann")
    forged_id = base64.b64encode(
        (0xC74F20A3).to_bytes(4, "big") + base64.b64decode(impostor.sign(TEXT).split(" ")[-1])[4:]
    ).decode()
    forged = f"{TEXT}\n— PeterNeumann {forged_id}\n"
    with pytest.raises(NoteError, match="invalid signature by PeterNeumann"):
        open_note(forged, [Verifier.from_text(PETER_VKEY)])


def test_unknown_keys_are_named(peter):
    enoch = Verifier.from_text(ENOCH_VKEY)
    with pytest.raises(
        NoteError, match=r"no signature by a known key \(signed by: PeterNeumann\+c74f20a3\)"
    ):
        open_note(NOTE, [enoch])
    with pytest.raises(
        NoteError, match=r"signed by: PeterNeumann\+c74f20a3, EnochRoot\+af0cfe78\)"
    ):
        open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [])
    # Same name, another key: unknown (the key ID differs), not invalid.
    other = Signer.generate("PeterNeumann").verifier()
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(NOTE, [other])


def test_an_invalid_known_signature_refuses_the_note_even_with_a_valid_one(peter):
    enoch = Verifier.from_text(ENOCH_VKEY)
    bad_enoch = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    with pytest.raises(NoteError, match="invalid signature by EnochRoot"):
        open_note(TEXT + "\n" + PETER_SIG + bad_enoch, [peter, enoch])


def test_truncated_signature_is_refused(peter):
    b64 = PETER_SIG.split(" ")[-1].strip()
    raw = base64.b64decode(b64)
    truncated = base64.b64encode(raw[:-1]).decode()
    with pytest.raises(NoteError, match="invalid signature by PeterNeumann"):
        open_note(f"{TEXT}\n— PeterNeumann {truncated}\n", [peter])
    with pytest.raises(NoteError, match="too short"):
        open_note(f"{TEXT}\n— PeterNeumann {base64.b64encode(raw[:4]).decode()}\n", [peter])
    with pytest.raises(NoteError, match="not valid base64"):
        open_note(f"{TEXT}\n— PeterNeumann {b64[:-3]}\n", [peter])


def test_extra_signature_bytes_are_refused(peter):
    raw = base64.b64decode(PETER_SIG.split(" ")[-1])
    longer = base64.b64encode(raw + b"\x00").decode()
    with pytest.raises(NoteError, match="invalid signature by PeterNeumann"):
        open_note(f"{TEXT}\n— PeterNeumann {longer}\n", [peter])


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        (TEXT, "no blank line"),
        (TEXT + "\n", "no signature lines"),
        (NOTE[:-1], "does not end with a newline"),
        (NOTE + "trailing bytes", "does not end with a newline"),
        (NOTE + "Unexpected line.\n", "signature line 2 does not start with"),
        ("\x01" + NOTE, "control character U+0001"),
        (NOTE.replace("\n", "\r\n"), "control character U+000D"),
        (TEXT + "\n— Bad\u00a0Name " + PETER_SIG.split(" ")[-1], "whitespace"),
        (TEXT + "\n— Bad Name " + PETER_SIG.split(" ")[-1], "not valid base64"),
        (TEXT + "\n— PeterNeumann\n", "no signature"),
        (TEXT + "\n- PeterNeumann " + PETER_SIG.split(" ")[-1], "does not start with '— '"),
        (TEXT + "\n" + PETER_SIG * 101, "101 signature lines, more than 100"),
    ],
)
def test_malformed_notes_are_refused(peter, note, reason):
    with pytest.raises(NoteError, match="malformed note") as error:
        open_note(note, [peter])
    assert reason in str(error.value)


def test_malformed_bytes_are_refused(peter):
    with pytest.raises(NoteError, match="malformed note: not valid UTF-8"):
        open_note(b"\xff" + NOTE.encode(), [peter])
    with pytest.raises(NoteError, match="more than 1048576"):
        open_note(b"x" * (MAX_NOTE_SIZE + 1), [peter])
    # A hundred signatures are fine.
    assert open_note(TEXT + "\n" + PETER_SIG * 100, [peter]) == TEXT


def test_ambiguous_verifiers_are_refused(peter):
    # Two different keys cannot share a name and key ID by construction of the
    # ID, but a colliding ID is cheap to find for an attacker; simulate one.
    impostor = Signer.generate("PeterNeumann").verifier()
    object.__setattr__(impostor, "_key_id", peter.key_id)
    with pytest.raises(NoteError, match="ambiguous"):
        open_note(NOTE, [peter, impostor])


# --- checkpoints --------------------------------------------------------------------

C2SP_CHECKPOINT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)


def test_c2sp_checkpoint_parses():
    checkpoint = Checkpoint.parse(C2SP_CHECKPOINT)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.extensions == ()
    assert checkpoint.text() == C2SP_CHECKPOINT


def test_signed_checkpoint_round_trip():
    signer = Signer.generate("example.com/log")
    checkpoint = Checkpoint("example.com/log", 0, bytes(32), ("ext one", "— two"))
    note = signer.sign(checkpoint.text())
    assert Checkpoint.parse(open_note(note, [signer.verifier()])) == checkpoint


origins = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
    lambda s: "\n" not in s
)
extension_lines = st.lists(origins, max_size=4).map(tuple)


@given(
    origins,
    st.integers(min_value=0, max_value=2**64 - 1),
    st.binary(min_size=32, max_size=32),
    extension_lines,
)
def test_checkpoint_text_round_trip(origin, size, root, extensions):
    checkpoint = Checkpoint(origin, size, root, extensions)
    text = checkpoint.text()
    assert text.endswith("\n")
    assert Checkpoint.parse(text) == checkpoint
    assert Checkpoint.parse(text).text() == text


ROOT64 = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"log\n1\n{ROOT64}", "does not end with a newline"),
        ("log\n1\n", "2 lines"),
        (f"\n1\n{ROOT64}\n", "line 1 (the origin) is empty"),
        (f"log\n01\n{ROOT64}\n", "line 2 (the tree size)"),
        (f"log\n-1\n{ROOT64}\n", "line 2 (the tree size)"),
        (f"log\n+1\n{ROOT64}\n", "line 2 (the tree size)"),
        (f"log\n 1\n{ROOT64}\n", "line 2 (the tree size)"),
        (f"log\n1_000\n{ROOT64}\n", "line 2 (the tree size)"),
        (f"log\n\u0661\n{ROOT64}\n", "line 2 (the tree size)"),  # Arabic-Indic digit one
        (f"log\n{2**64}\n{ROOT64}\n", "out of range"),
        ("log\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n", "not valid base64"),
        ("log\n1\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n", "not valid base64"),
        ("log\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n", "not canonical"),
        (f"log\n1\n{base64.b64encode(bytes(31)).decode()}\n", "31 bytes, expected 32"),
        (f"log\n1\n{ROOT64}\n\n", "line 4 (an extension line) is empty"),
        (f"log\n1\n{ROOT64}\next\n\nmore\n", "line 5 (an extension line) is empty"),
        (f"log\n1\n{ROOT64}\na\tb\n", "control character"),
    ],
)
def test_checkpoint_parse_is_strict(text, reason):
    with pytest.raises(NoteError, match="malformed checkpoint") as error:
        Checkpoint.parse(text)
    assert reason in str(error.value)


def test_checkpoint_constructor_validates():
    with pytest.raises(NoteError, match="32 bytes"):
        Checkpoint("log", 1, bytes(31))
    with pytest.raises(NoteError, match="origin"):
        Checkpoint("", 1, bytes(32))
    with pytest.raises(NoteError, match="control character"):
        Checkpoint("two\nlines", 1, bytes(32))
    with pytest.raises(NoteError, match="out of range"):
        Checkpoint("log", -1, bytes(32))
    with pytest.raises(NoteError, match="empty"):
        Checkpoint("log", 1, bytes(32), ("",))


# --- signer key files -----------------------------------------------------------------

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@posix_only
def test_load_or_create_signer_creates_0600_and_reloads(tmp_path):
    path = tmp_path / "keys" / "deep" / "log.key"
    signer = load_or_create_signer(path, "example.com/log")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == signer.text() + "\n"
    again = load_or_create_signer(path, "example.com/log")
    assert again.text() == signer.text()
    assert [p.name for p in path.parent.iterdir()] == ["log.key"]  # no temporary file left


@posix_only
def test_load_or_create_signer_ignores_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "log.key"
        load_or_create_signer(path, "example.com/log")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@posix_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_load_or_create_signer_refuses_a_readable_file(tmp_path, mode):
    path = tmp_path / "log.key"
    path.write_text(Signer.generate("example.com/log").text() + "\n")
    path.chmod(mode)
    with pytest.raises(NoteError, match=f"{path}: .*group or others .*{mode:04o}"):
        load_or_create_signer(path, "example.com/log")
    assert path.read_text().startswith("PRIVATE+KEY+")  # left alone


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage\n",
        b"\xff\xfe",
        PETER_VKEY.encode(),
        PETER_SKEY.replace("c74f", "c74e").encode(),
    ],
)
def test_load_or_create_signer_refuses_garbage(tmp_path, content):
    path = tmp_path / "log.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(NoteError, match=f"{path}: not a"):
        load_or_create_signer(path, "PeterNeumann")
    assert path.read_bytes() == content


def test_load_or_create_signer_refuses_another_name(tmp_path):
    path = tmp_path / "log.key"
    load_or_create_signer(path, "example.com/log")
    with pytest.raises(
        NoteError, match=re.escape("named 'example.com/log', expected 'example.com/other'")
    ):
        load_or_create_signer(path, "example.com/other")


def test_load_or_create_signer_refuses_a_directory(tmp_path):
    with pytest.raises(NoteError, match=str(tmp_path)):
        load_or_create_signer(tmp_path, "example.com/log")


def test_load_or_create_signer_without_hard_links(tmp_path, monkeypatch):
    def no_links(src: object, dst: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "log.key"
    signer = load_or_create_signer(path, "example.com/log")
    assert load_or_create_signer(path, "example.com/log").text() == signer.text()
    assert [p.name for p in tmp_path.iterdir()] == ["log.key"]
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_load_or_create_signer_names_the_path_it_cannot_create(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    path = blocker / "keys" / "log.key"
    with pytest.raises(NoteError, match=f"{path}: cannot"):
        load_or_create_signer(path, "example.com/log")


def test_load_or_create_signer_reads_the_go_key(tmp_path):
    path = tmp_path / "peter.key"
    path.write_text(PETER_SKEY + "\n")
    path.chmod(0o600)
    assert load_or_create_signer(path, "PeterNeumann").sign(TEXT) == NOTE


def test_racing_creators_end_with_one_key(tmp_path):
    path = tmp_path / "race" / "log.key"
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        try:
            results.append(load_or_create_signer(path, "example.com/log").text())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(results)) == 1
    assert path.read_text() == results[0] + "\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["log.key"]


@pytest.mark.slow
def test_racing_processes_end_with_one_key(tmp_path):
    path = tmp_path / "log.key"
    code = (
        "import sys; from pathlib import Path; "
        "from partnerledger.audit.note import load_or_create_signer; "
        "print(load_or_create_signer(Path(sys.argv[1]), 'example.com/log').text())"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert outputs == {Path(path).read_text().strip()}
