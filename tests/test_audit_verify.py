"""Tamper evidence on the live store: rows edited, deleted, inserted, reordered by hand.

Each test tampers with the event rows directly in the database (SQLite and
PostgreSQL), the way someone with write access to the database would, and
expects ``audit verify`` to report it, by position.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from partnerledger import Ledger, Store
from partnerledger.audit.canonical import canonical_event, jcs
from partnerledger.audit.checkpoints import (
    checkpoints,
    installation_signer,
    record_checkpoint,
)
from partnerledger.audit.merkle import MerkleTree, leaf_hash
from partnerledger.audit.note import Signer
from partnerledger.audit.verify import Report, verify_network
from partnerledger.audit.witness import recorded_leaves
from partnerledger.cli.main import cli
from partnerledger.demo import generate
from partnerledger.errors import InvalidCommand
from partnerledger.projection import Projector
from partnerledger.testing import NetworkHelper

NET = "riverside"


@pytest.fixture(autouse=True)
def signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "signing.key"
    monkeypatch.setenv("PARTNERLEDGER_SIGNING_KEY", str(path))
    monkeypatch.setenv("PARTNERLEDGER_ORIGIN", "audit.test")
    return path


@pytest.fixture
def history(store: Store) -> Iterator[Projector]:
    """Two networks of demo history, witnessed, with a checkpoint of riverside."""
    Ledger(store).execute_all(generate(members=6, months=2, networks=2))
    with Projector(store, names=["witness"]) as projector:
        record_checkpoint(projector, NET)
        yield projector


class Rows:
    """Direct access to the stored event rows, bypassing the application."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.database = store.database

    def _sqlite(self) -> sqlite3.Connection:
        return sqlite3.connect(self.database.path, isolation_level=None)

    def _pg(self) -> psycopg.Connection[Any]:
        d = self.database
        return psycopg.connect(
            host=d.host,
            port=d.port,
            user=d.user,
            dbname=d.dbname,
            autocommit=True,
            options=f"-c search_path={d.schema or 'public'}",
        )

    @property
    def table(self) -> str:
        name: str = self.store._app.recorder.events_table_name  # type: ignore[attr-defined]
        return name

    def positions(self, network: str) -> list[int]:
        return [p for p, e in self.store.read() if e.network == network]

    def state(self, position: int) -> bytes:
        return dict(self.store.read_stored())[position]

    def set_state(self, position: int, state: bytes) -> None:
        if self.database.kind == "sqlite":
            with self._sqlite() as db:
                db.execute(f"UPDATE {self.table} SET state = ? WHERE rowid = ?", (state, position))
        else:
            with self._pg() as db:
                db.execute(
                    f"UPDATE {self.table} SET state = %s WHERE notification_id = %s",
                    (state, position),
                )

    def delete(self, position: int) -> None:
        if self.database.kind == "sqlite":
            with self._sqlite() as db:
                db.execute(f"DELETE FROM {self.table} WHERE rowid = ?", (position,))
        else:
            with self._pg() as db:
                db.execute(f"DELETE FROM {self.table} WHERE notification_id = %s", (position,))

    def insert_raw(self, at: int, state: bytes) -> None:
        """A stored row put back at another position."""
        event = json.loads(state)
        row = (at, event["originator_id"], event["originator_version"], "moved", state)
        if self.database.kind == "sqlite":
            with self._sqlite() as db:
                db.execute(
                    f"INSERT INTO {self.table} (rowid, originator_id, originator_version, topic, "
                    "state) VALUES (?, ?, ?, ?, ?)",
                    row,
                )
        else:
            with self._pg() as db:
                db.execute(
                    f"INSERT INTO {self.table} (notification_id, originator_id, "
                    "originator_version, topic, state) OVERRIDING SYSTEM VALUE "
                    "VALUES (%s, %s, %s, %s, %s)",
                    row,
                )

    def insert_copy(self, source: int, at: int, **changes: Any) -> None:
        """A forged event, made from another one, stored at position ``at`` (a gap)."""
        event = json.loads(self.state(source))
        event["originator_version"] = 1_000 + at
        event["command"].update(changes)
        state = json.dumps(event).encode()
        if self.database.kind == "sqlite":
            with self._sqlite() as db:
                db.execute(
                    f"INSERT INTO {self.table} (rowid, originator_id, originator_version, topic, "
                    "state) VALUES (?, ?, ?, ?, ?)",
                    (at, event["originator_id"], event["originator_version"], "forged", state),
                )
        else:
            with self._pg() as db:
                db.execute(
                    f"INSERT INTO {self.table} (notification_id, originator_id, "
                    "originator_version, topic, state) OVERRIDING SYSTEM VALUE "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (at, event["originator_id"], event["originator_version"], "forged", state),
                )


def verify(projector: Projector, network: str = NET) -> Report:
    signer = installation_signer(projector.store.database)
    return verify_network(projector.store, projector.db, network, [signer.verifier()])


def kinds(report: Report) -> list[tuple[str, int | None]]:
    return [(f.kind, f.position) for f in report.findings]


def test_an_untouched_store_verifies(history: Projector) -> None:
    report = verify(history)
    assert report.ok, report.findings
    assert report.checkpoints == 1
    assert report.witnessed == report.events > 0
    assert report.latest is not None and report.latest.size == report.witnessed


def test_the_checkpoint_root_is_the_rfc_9162_root_of_the_canonical_events(
    history: Projector,
) -> None:
    events = [e for _, e in history.store.read() if e.network == NET]
    leaves = [leaf_hash(canonical_event(e)) for e in events]
    (signed,) = checkpoints(history.db, NET)
    assert signed.size == len(events)
    assert signed.root == MerkleTree(leaves).root()
    assert [d for _, d in recorded_leaves(history.db, NET)] == leaves


def test_the_canonical_encoding_is_rfc_8785_of_the_stored_document(history: Projector) -> None:
    for position, data in history.store.read_stored():
        event = next(e for p, e in history.store.read(after=position - 1) if p == position)
        assert canonical_event(event) == jcs(json.loads(data))


def test_an_edited_event_is_reported_by_position(history: Projector) -> None:
    rows = Rows(history.store)
    target = rows.positions(NET)[5]
    event = json.loads(rows.state(target))
    event["command"]["actor"] = "mallory"
    rows.set_state(target, json.dumps(event).encode())
    report = verify(history)
    assert ("edited", target) in kinds(report)
    assert any(f.kind == "history" for f in report.findings)  # and it breaks the signed root


def test_an_event_that_no_longer_decodes_is_reported_as_edited(history: Projector) -> None:
    rows = Rows(history.store)
    target = rows.positions(NET)[3]
    rows.set_state(target, b"garbage")
    assert ("edited", target) in kinds(verify(history))


def test_a_deleted_event_is_reported_by_position(history: Projector) -> None:
    rows = Rows(history.store)
    target = rows.positions(NET)[7]
    rows.delete(target)
    report = verify(history)
    assert ("deleted", target) in kinds(report)
    assert not any(f.kind in ("edited", "inserted") for f in report.findings)


def test_an_inserted_event_is_reported_by_position(history: Projector) -> None:
    rows = Rows(history.store)
    ours, theirs = rows.positions(NET), rows.positions("harbor-bni")
    # a position between two of riverside's events, taken from harbor-bni's
    gap = next(p for p in theirs if ours[5] < p < ours[-1])
    rows.delete(gap)
    rows.insert_copy(ours[5], gap, actor="mallory")
    report = verify(history)
    assert ("inserted", gap) in kinds(report)
    assert not any(f.kind in ("edited", "deleted") for f in report.findings)


def test_an_insertion_hidden_by_renumbering_is_one_insertion(history: Projector) -> None:
    rows = Rows(history.store)
    ours = rows.positions(NET)
    at = ours[6]
    last = history.store.last_position()
    for position in range(last, at - 1, -1):  # move every later row one place up
        state = rows.state(position)
        rows.delete(position)
        rows.insert_raw(position + 1, state)
    rows.insert_copy(ours[5], at, actor="mallory")
    report = verify(history)
    assert kinds(report)[:1] == [("inserted", at)]
    assert not any(f.kind in ("edited", "deleted", "reordered") for f in report.findings)


def test_swapped_events_are_reported_as_reordered(history: Projector) -> None:
    rows = Rows(history.store)
    positions = rows.positions(NET)
    a, b = positions[4], positions[12]
    state_a, state_b = rows.state(a), rows.state(b)
    rows.set_state(a, state_b)
    rows.set_state(b, state_a)
    report = verify(history)
    reordered = [f for f in report.findings if f.kind == "reordered"]
    assert reordered and {f.position for f in reordered} <= {a, b}
    assert not any(f.kind in ("edited", "deleted", "inserted") for f in report.findings)


def test_another_network_is_unaffected_by_tampering(history: Projector) -> None:
    rows = Rows(history.store)
    rows.delete(rows.positions(NET)[2])
    record_checkpoint(history, "harbor-bni")
    assert verify(history, "harbor-bni").ok


def test_a_rewritten_witness_is_caught_by_the_signed_checkpoint(history: Projector) -> None:
    rows = Rows(history.store)
    target = rows.positions(NET)[5]
    event = json.loads(rows.state(target))
    event["command"]["actor"] = "mallory"
    forged = json.dumps(event).encode()
    rows.set_state(target, forged)
    # the attacker also rewrites the witness so that it agrees with the forgery
    history.db.execute(
        f"UPDATE {history.db.table('partnerledger_leaves')} SET leaf_hash = ? "
        "WHERE network = ? AND position = ?",
        (leaf_hash(jcs(json.loads(forged))), NET, target),
    )
    report = verify(history)
    found = {f.kind for f in report.findings}
    assert {"witness", "history"} <= found


def test_a_forged_checkpoint_signature_is_reported(history: Projector) -> None:
    mallory = Signer.generate("audit.test")
    report = verify_network(history.store, history.db, NET, [mallory.verifier()])
    assert [f.kind for f in report.findings] == ["checkpoint"]
    assert "known key" in report.findings[0].message or "signature" in report.findings[0].message


def test_events_after_the_witness_are_counted_not_judged(history: Projector) -> None:
    NetworkHelper(Ledger(history.store)).on(NET).member("newcomer")  # not witnessed yet
    report = verify(history)
    assert report.ok and report.unwitnessed == 1


def test_the_witness_is_never_rebuilt(history: Projector) -> None:
    with pytest.raises(InvalidCommand, match="evidence"):
        history.rebuild(["witness"])
    with Projector(history.store) as everything:
        everything.rebuild()  # every view, but not the witness
        assert everything.positions()["witness"] == history.store.last_position()
    assert verify(history).ok


def test_audit_verify_command(history: Projector, database_url: str) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["--database", database_url, "audit", "verify", "--network", NET])
    assert ok.exit_code == 0, ok.output
    assert "OK" in ok.output
    Rows(history.store).delete(Rows(history.store).positions(NET)[1])
    bad = runner.invoke(
        cli, ["--database", database_url, "audit", "verify", "--network", NET, "--json"]
    )
    assert bad.exit_code == 1
    report = json.loads(bad.output)
    assert not report["ok"]
    assert "deleted" in {f["kind"] for f in report["findings"]}


def test_audit_checkpoint_and_key_commands(history: Projector, database_url: str) -> None:
    runner = CliRunner()
    key = runner.invoke(cli, ["--database", database_url, "audit", "key"])
    assert key.exit_code == 0 and key.output.startswith("audit.test+")
    note = runner.invoke(
        cli, ["--database", database_url, "audit", "checkpoint", "--network", "harbor-bni"]
    )
    assert note.exit_code == 0, note.output
    assert note.output.startswith("audit.test/harbor-bni\n")
    assert "\n\n\u2014 audit.test " in note.output
    missing = runner.invoke(
        cli, ["--database", database_url, "audit", "checkpoint", "--network", "nowhere"]
    )
    assert missing.exit_code != 0 and "network" in missing.output


def test_jcs_strings_escape_exactly_the_quote_the_backslash_and_controls() -> None:
    """The shortcut for a string with nothing to escape writes what escaping writes."""
    short = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    for code in [*range(0x80), 0xE9, 0x2028, 0xFEFF, 0x1F600]:
        ch = chr(code)
        if ch in ('"', "\\"):
            expected = "\\" + ch
        elif ch in short:
            expected = short[ch]
        elif code < 0x20:
            expected = f"\\u{code:04x}"
        else:
            expected = ch
        for text in (ch, f"a{ch}b", f"{ch}{ch}"):
            assert jcs(text) == ('"' + text.replace(ch, expected) + '"').encode(), repr(text)
            assert json.loads(jcs(text)) == text
