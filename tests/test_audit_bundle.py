"""The audit bundle: exported from SQLite and PostgreSQL, verified offline, and refused when
tampered with in every way the issue lists (a flipped byte, a dropped, reordered or
inserted event, a truncated file, a wrong key, a forged proof, a hostile archive).
"""

from __future__ import annotations

import base64
import json
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from partnerledger import Ledger, Store
from partnerledger.audit.bundle import MEMBERS, export_bundle, verify_bundle
from partnerledger.audit.canonical import canonical_event
from partnerledger.audit.checkpoints import installation_signer
from partnerledger.audit.note import Signer
from partnerledger.cli.main import cli
from partnerledger.closing import close_period
from partnerledger.demo import generate
from partnerledger.projection import Projector
from partnerledger.testing import NetworkHelper

NET = "riverside"
APRIL = datetime(2024, 4, 2, tzinfo=UTC)


@pytest.fixture(autouse=True)
def signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "signing.key"
    monkeypatch.setenv("PARTNERLEDGER_SIGNING_KEY", str(path))
    monkeypatch.setenv("PARTNERLEDGER_ORIGIN", "audit.test")
    return path


@pytest.fixture
def closed(store: Store) -> Iterator[Projector]:
    """Two demo networks over five months, riverside's first quarter closed (and signed)."""
    ledger = Ledger(store)
    ledger.execute_all(generate(members=6, months=5, networks=2))
    with Projector(store) as projector:
        close_period(ledger, projector, NET, "2024-Q1", actor="coordinator", at=APRIL)
        NetworkHelper(ledger).on(NET).member("late-joiner")  # after the close's checkpoint
        yield projector


@pytest.fixture
def bundle(closed: Projector, tmp_path: Path) -> Path:
    path = tmp_path / "riverside.bundle"
    export_bundle(closed, NET, path)
    return path


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()}  # type: ignore[union-attr]


def rewrite(path: Path, changed: dict[str, bytes], order: list[str] | None = None) -> None:
    """Write the archive again with some members changed (as a forger would)."""
    data = members(path) | changed
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as archive:
        for name in order or list(MEMBERS):
            if name not in data:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data[name])
            import io

            archive.addfile(info, io.BytesIO(data[name]))


def event_lines(path: Path) -> list[bytes]:
    return members(path)["events.jsonl"].splitlines(keepends=True)


def errors(path: Path, **kwargs: object) -> list[str]:
    report = verify_bundle(path, **kwargs)  # type: ignore[arg-type]
    return report.errors


def test_a_fresh_bundle_verifies(bundle: Path, closed: Projector) -> None:
    report = verify_bundle(bundle, trusted=[installation_signer(closed.store.database).verifier()])
    assert report.ok, report.errors
    events = [e for _, e in closed.store.read() if e.network == NET]
    assert report.events == report.tree_size == len(events)
    assert report.complete
    assert report.checkpoints == 2  # the close's, and the export's own
    assert {"manifest.json", "events.jsonl"} <= set(members(bundle))


def test_the_bundle_holds_nothing_of_another_network(bundle: Path) -> None:
    content = members(bundle)
    assert b"harbor-bni" not in b"".join(content.values())
    for line in content["events.jsonl"].splitlines():
        assert json.loads(line)["event"]["command"]["network"] == NET


def test_events_are_the_canonical_bytes_of_the_log(bundle: Path, closed: Projector) -> None:
    lines = [json.loads(line) for line in event_lines(bundle)]
    events = [e for _, e in closed.store.read() if e.network == NET]
    assert [line["leaf"] for line in lines] == list(range(len(events)))
    raw = members(bundle)["events.jsonl"].splitlines()
    for line, event in zip(raw, events, strict=True):
        assert (
            line
            == b'{"event":'
            + canonical_event(event)
            + b',"leaf":'
            + str(raw.index(line)).encode()
            + b"}"
        )


def test_recorded_decisions_are_listed_with_their_rules(bundle: Path) -> None:
    decisions = json.loads(members(bundle)["decisions.json"])
    types = {d["type"] for d in decisions}
    assert {"period.closed", "tier.decided"} <= types
    closed = next(d for d in decisions if d["type"] == "period.closed")
    assert closed["command"]["period"] == "2024-Q1"
    assert all({"plugin", "version"} <= set(r) for r in closed["command"]["rules"])
    proofs = json.loads(members(bundle)["proofs.json"])
    assert {p["leaf"] for p in proofs["inclusion"]} == {d["leaf"] for d in decisions}


@pytest.mark.parametrize("offset", [100, 700, 5_000, -2_000, -600, -10])
def test_a_flipped_byte_anywhere_is_refused(bundle: Path, offset: int) -> None:
    data = bytearray(bundle.read_bytes())
    data[offset] ^= 0x01
    bundle.write_bytes(bytes(data))
    assert errors(bundle)


def test_every_single_byte_flip_in_a_small_bundle_is_refused(
    closed: Projector, tmp_path: Path
) -> None:
    path = tmp_path / "small.bundle"
    export_bundle(
        closed,
        NET,
        path,
        start=datetime(2024, 1, 1, tzinfo=UTC),
        end=datetime(2024, 1, 2, tzinfo=UTC),
    )
    original = path.read_bytes()
    # every 97th byte, so every member, header and padding is hit, in a few seconds
    for offset in range(0, len(original), 97):
        flipped = bytearray(original)
        flipped[offset] ^= 0x80
        path.write_bytes(bytes(flipped))
        assert verify_bundle(path).errors, f"a flipped byte at {offset} went unnoticed"


def test_a_dropped_event_is_refused(bundle: Path) -> None:
    lines = event_lines(bundle)
    rewrite(bundle, {"events.jsonl": b"".join(lines[:10] + lines[11:])})
    found = errors(bundle)
    assert any("leaf 10 is missing" in e for e in found), found


def test_reordered_events_are_refused(bundle: Path) -> None:
    lines = event_lines(bundle)
    lines[5], lines[6] = lines[6], lines[5]
    rewrite(bundle, {"events.jsonl": b"".join(lines)})
    found = errors(bundle)
    assert any("reordered" in e for e in found), found


def test_swapped_event_bodies_are_refused(bundle: Path) -> None:
    lines = [json.loads(line) for line in event_lines(bundle)]
    lines[5]["event"], lines[6]["event"] = lines[6]["event"], lines[5]["event"]
    raw = members(bundle)["events.jsonl"].splitlines()
    body = lambda line: raw[line["leaf"]][len(b'{"event":') : raw[line["leaf"]].rindex(b',"leaf"')]  # noqa: E731
    forged = [
        b'{"event":'
        + body({"leaf": 6 if i == 5 else 5 if i == 6 else i})
        + b',"leaf":'
        + str(i).encode()
        + b"}\n"
        for i in range(len(raw))
    ]
    rewrite(bundle, {"events.jsonl": b"".join(forged)})
    found = errors(bundle)
    assert any("does not hash to leaf 5" in e for e in found), found


def test_an_inserted_event_is_refused(bundle: Path) -> None:
    lines = event_lines(bundle)
    forged = json.loads(lines[3])
    forged["event"]["command"]["actor"] = "mallory"
    line = json.dumps(forged, separators=(",", ":"), sort_keys=True).encode() + b"\n"
    rewrite(bundle, {"events.jsonl": b"".join([*lines[:4], line, *lines[4:]])})
    found = errors(bundle)
    assert any("leaf 3" in e for e in found), found


def test_a_truncated_file_is_refused(bundle: Path) -> None:
    data = bundle.read_bytes()
    for cut in (len(data) // 3, len(data) - 2_000, 600):
        bundle.write_bytes(data[:cut])
        found = errors(bundle)
        assert any("truncated" in e for e in found), (cut, found)


def test_a_wrong_key_is_refused(bundle: Path) -> None:
    mallory = Signer.generate("audit.test")
    found = errors(bundle, trusted=[mallory.verifier()])
    assert any("not a key you trust" in e for e in found), found


def test_a_bundle_re_signed_by_another_key_is_refused_against_the_published_key(
    bundle: Path, closed: Projector
) -> None:
    mallory = Signer.generate("audit.test")
    content = members(bundle)
    rewrite(bundle, {"public-key.txt": (mallory.verifier().text() + "\n").encode()})
    assert content["public-key.txt"] != members(bundle)["public-key.txt"]
    found = errors(bundle, trusted=[installation_signer(closed.store.database).verifier()])
    assert found


def test_a_forged_proof_is_refused(bundle: Path) -> None:
    proofs = json.loads(members(bundle)["proofs.json"])
    digest = bytearray(base64.b64decode(proofs["inclusion"][0]["proof"][0]))
    digest[0] ^= 0xFF
    proofs["inclusion"][0]["proof"][0] = base64.b64encode(bytes(digest)).decode()
    rewrite(bundle, {"proofs.json": json.dumps(proofs).encode()})
    found = errors(bundle)
    assert any("inclusion proof" in e for e in found), found


def test_a_hostile_archive_writes_nothing_and_names_the_member(
    bundle: Path, tmp_path: Path
) -> None:
    content = members(bundle)
    evil = tmp_path / "evil.bundle"
    with tarfile.open(evil, "w", format=tarfile.USTAR_FORMAT) as archive:
        import io

        for name in ("../escape.txt", "/etc/partnerledger-escape", *content):
            data = content.get(name, b"owned")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    found = errors(evil)
    assert any("unexpected archive member '../escape.txt'" in e for e in found), found
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
    assert not Path("/etc/partnerledger-escape").exists()


def test_a_symlink_member_is_refused(bundle: Path, tmp_path: Path) -> None:
    evil = tmp_path / "link.bundle"
    with tarfile.open(evil, "w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo("manifest.json")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        archive.addfile(info)
    found = errors(evil)
    assert any("only plain files" in e for e in found), found


def test_an_oversized_member_is_refused_before_it_is_read(tmp_path: Path) -> None:
    evil = tmp_path / "big.bundle"
    header = tarfile.TarInfo("manifest.json")
    header.size = 7 * 1024**3  # claims 7 GiB; the file holds a few bytes
    evil.write_bytes(header.tobuf(format=tarfile.USTAR_FORMAT) + b"{}")
    found = errors(evil)
    assert any("over its limit" in e for e in found), found


def test_an_export_is_written_whole_or_not_at_all(
    closed: Projector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.bundle"
    import partnerledger.audit.bundle as module

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(module.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        export_bundle(closed, NET, target)
    assert not target.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".bundle-")] == []


def test_a_ranged_bundle_verifies_and_says_it_is_not_complete(
    closed: Projector, tmp_path: Path
) -> None:
    path = tmp_path / "march.bundle"
    report = export_bundle(
        closed,
        NET,
        path,
        start=datetime(2024, 3, 1, tzinfo=UTC),
        end=datetime(2024, 4, 1, tzinfo=UTC),
    )
    checked = verify_bundle(path)
    assert checked.ok, checked.errors
    assert not checked.complete
    assert 0 < checked.events == report.events < checked.tree_size
    for line in members(path)["events.jsonl"].splitlines():
        occurred = json.loads(line)["event"]["command"]["occurred_at"]
        assert "2024-03" in occurred


def test_audit_export_and_verify_bundle_commands(
    closed: Projector, database_url: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    path = tmp_path / "cli.bundle"
    exported = runner.invoke(
        cli, ["--database", database_url, "audit", "export", "--network", NET, "-o", str(path)]
    )
    assert exported.exit_code == 0, exported.output
    key = runner.invoke(cli, ["--database", database_url, "audit", "key"]).output.strip()
    verified = runner.invoke(cli, ["audit", "verify-bundle", str(path), "--key", key])
    assert verified.exit_code == 0, verified.output
    assert "The bundle verifies" in verified.output
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    refused = runner.invoke(cli, ["audit", "verify-bundle", str(path), "--json"])
    assert refused.exit_code == 1
    assert json.loads(refused.output)["errors"]
    bad_range = runner.invoke(
        cli,
        [
            "--database",
            database_url,
            "audit",
            "export",
            "--network",
            NET,
            "-o",
            str(path),
            "--from",
            "2024-05-01",
            "--to",
            "2024-04-01",
        ],
    )
    assert bad_range.exit_code != 0 and "--to" in bad_range.output


def test_the_bundle_recomputes_every_recorded_decision_offline(bundle: Path) -> None:
    from partnerledger.audit.recheck import recheck_decisions

    report = verify_bundle(bundle, recheck=recheck_decisions)
    assert report.ok, report.errors
    statuses = {d["status"] for d in report.decisions}
    assert report.decisions and statuses == {"match"}, statuses
    assert report.unavailable_rules == []


def _line(event: dict[str, object], leaf: int) -> bytes:
    """A line as the export writes it (the event's members sorted, no spaces)."""
    document = {"event": event, "leaf": leaf}
    return (
        json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
        + b"\n"
    )


def _one_by_one(monkeypatch: pytest.MonkeyPatch, path: Path, **kwargs: object) -> object:
    """The report when every line goes through the checks of one event (no batch decoding)."""
    from partnerledger.audit import bundle as module

    with monkeypatch.context() as patch:
        patch.setattr(module, "_decoded", lambda block: None)
        return verify_bundle(path, **kwargs)  # type: ignore[arg-type]


def test_decoding_in_batches_finds_what_one_by_one_finds(
    bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """events.jsonl is decoded a run of lines at a time when every line is canonical; any
    other run is checked line by line. Both ways give the same report, error for error."""
    from partnerledger.audit import bundle as module
    from partnerledger.audit.recheck import recheck_decisions

    batches: list[bool] = []
    decoded = module._decoded

    def counted(block: bytes) -> object:
        found = decoded(block)
        batches.append(found is not None)
        return found

    for recheck in (None, recheck_decisions):
        with monkeypatch.context() as patch:
            patch.setattr(module, "_decoded", counted)
            fast = verify_bundle(bundle, recheck=recheck)
        slow = _one_by_one(monkeypatch, bundle, recheck=recheck)
        assert fast.as_dict() == slow.as_dict()  # type: ignore[attr-defined]
        assert fast.ok
    assert batches and all(batches)  # a bundle as exported is decoded in batches only
    lines = event_lines(bundle)
    documents = [json.loads(line) for line in lines]
    elsewhere = json.loads(lines[7])["event"]
    elsewhere["command"]["network"] = "harbor-bni"
    invalid = json.loads(lines[8])["event"]
    invalid["command"]["actor"] = ""  # a Name is at least one character
    spaced = json.loads(lines[9])["event"]
    settings = next(
        d["event"] for d in documents if d["event"]["command"]["type"] == "plugin.enabled"
    )
    settings["command"]["settings"] = {"rate": 1e-07}  # msgspec's form; RFC 8785 writes 1e-7
    canonical_float = dict(settings, command=dict(settings["command"], plugin="fees"))
    canonical_float["command"]["settings"] = {"rate": 1e-07}
    forged = [
        *lines[:7],
        _line(elsewhere, 7),
        _line(invalid, 8),
        b'{"event":' + json.dumps(spaced, separators=(", ", ":")).encode() + b',"leaf":9}\n',
        _line(settings, 10),
        _line(canonical_float, 11).replace(b"1e-07", b"1e-7"),
        b"\n",
        b"not json\n",
        *lines[12:],
    ]
    rewrite(bundle, {"events.jsonl": b"".join(forged)})
    for recheck in (None, recheck_decisions):
        fast, slow = (
            verify_bundle(bundle, recheck=recheck),
            _one_by_one(monkeypatch, bundle, recheck=recheck),
        )
        assert fast.as_dict() == slow.as_dict()  # type: ignore[attr-defined]
    found = fast.errors
    assert "the event of leaf 7 belongs to network 'harbor-bni'" in found, found
    assert any(e.startswith("the event of leaf 8 is not a valid event") for e in found), found
    assert "the event of leaf 9 is not in canonical form" in found, found
    assert "the event of leaf 10 is not in canonical form" in found, found
    assert not any(e.startswith("the event of leaf 11") for e in found), found
    # a bundle whose every line is canonical but of another network: the batch path says so
    other = [
        _line(dict(d["event"], command=dict(d["event"]["command"], network="elsewhere")), i)
        for i, d in enumerate(documents)
    ]
    rewrite(bundle, {"events.jsonl": b"".join(other)})
    fast, slow = verify_bundle(bundle), _one_by_one(monkeypatch, bundle)
    assert fast.as_dict() == slow.as_dict()  # type: ignore[attr-defined]
    assert "the event of leaf 0 belongs to network 'elsewhere'" in fast.errors


def test_runs_of_lines_are_the_lines_whatever_the_chunks() -> None:
    from partnerledger.audit.bundle import BundleError, _blocks, _lines

    data = b"".join(b"x" * (i % 7) + b"\n" for i in range(200))
    for size in (1, 2, 3, 5, 64, 1000, len(data)):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert list(_lines(iter(chunks), 100)) == data.split(b"\n")[:-1]
        assert b"".join(_blocks(iter(chunks), 100)) == data
        assert all(block.endswith(b"\n") for block in _blocks(iter(chunks), 100))
    with pytest.raises(BundleError, match="longer than"):
        list(_lines(iter([b"a\n", b"b" * 50, b"c" * 60]), 100))
    with pytest.raises(BundleError, match="does not end with a newline"):
        list(_lines(iter([b"a\nb"]), 100))


def test_the_export_reads_the_events_of_its_network_as_store_read_does(
    closed: Projector,
) -> None:
    from partnerledger.audit.bundle import _events_of

    store = closed.store
    for network in (NET, "harbor-bni", "nowhere"):
        expected = [(p, e) for p, e in store.read() if e.network == network]
        assert list(_events_of(store, network)) == expected
        assert expected or network == "nowhere"
