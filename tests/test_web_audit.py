"""The audit page: verification on the web, signing a checkpoint, downloading the bundle."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from partnerledger.audit.bundle import verify_bundle
from partnerledger.store import Database, Store
from webkit import World, browser, build_world

AUDIT = "/n/riverside/audit"


@pytest.fixture(autouse=True)
def signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNERLEDGER_SIGNING_KEY", str(tmp_path / "keys" / "signing.key"))


@pytest.fixture
def world(database_url: str) -> World:
    return build_world(database_url)


def test_a_coordinator_signs_a_checkpoint_and_downloads_a_bundle_that_verifies(
    world: World, tmp_path: Path
) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        first = web.get(AUDIT)
        assert first.status_code == 200
        assert "History intact" in first.text and "No checkpoint yet" in first.text
        assert web.get(f"{AUDIT}/bundle").status_code == 422  # nothing signed yet
        signed = web.post(f"{AUDIT}/checkpoint", follow_redirects=True)
        assert signed.status_code == 200
        assert "riverside\n" in signed.text and "Signed checkpoints" in signed.text
        download = web.get(f"{AUDIT}/bundle")
        assert download.status_code == 200
        assert download.headers["content-type"].startswith("application/x-tar")
        assert "riverside.bundle" in download.headers["content-disposition"]
        path = tmp_path / "downloaded.bundle"
        path.write_bytes(download.content)
    report = verify_bundle(path)
    assert report.ok, report.errors
    assert report.network == "riverside" and report.complete


def test_an_auditor_reads_and_downloads_but_cannot_sign(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        web.post(f"{AUDIT}/checkpoint")
    with browser(world, tmp_path, world.auditor) as web:
        page = web.get(AUDIT)
        assert page.status_code == 200 and "Sign a checkpoint now" not in page.text
        assert web.get(f"{AUDIT}/bundle").status_code == 200
        assert web.post(f"{AUDIT}/checkpoint").status_code == 403


def test_members_and_outsiders_are_kept_out(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.member) as web:
        assert web.get(AUDIT).status_code == 403
        assert web.get(f"{AUDIT}/bundle").status_code == 403
    with browser(world, tmp_path, world.outsider) as web:
        assert web.get(AUDIT).status_code == 404
        assert web.get(f"{AUDIT}/bundle").status_code == 404


def test_tampering_shows_on_the_page(tmp_path: Path) -> None:
    # (tampering by hand is tested on both databases in test_audit_verify.py)
    world = build_world(str(tmp_path / "tampered.db"))
    with browser(world, tmp_path, world.coordinator) as web:
        web.post(f"{AUDIT}/checkpoint")
        with Store(Database.parse(world.database_url)) as store:
            position = [p for p, e in store.read() if e.network == "riverside"][2]
        with sqlite3.connect(Database.parse(world.database_url).path) as db:
            db.execute("DELETE FROM stored_events WHERE rowid = ?", (position,))
        page = web.get(AUDIT)
        assert "History does not match its checkpoints" in page.text
        assert "deleted" in page.text and str(position) in page.text
