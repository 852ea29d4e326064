"""Imports stream: few queries, decided events on disk until written, all or nothing kept.

On SQLite and PostgreSQL. ``import_lines`` reads a chunk of lines, reads the
streams of the chunk's aggregates in one query (none at all when the store
is empty), decides, and spools the decided events to a temporary file; it
writes only when every line is checked.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from partnerledger import Database, Ledger, Store
from partnerledger import jsonl as jsonl_module
from partnerledger import ledger as ledger_module
from partnerledger import spool as spool_module
from partnerledger.commands import encode_command
from partnerledger.demo import generate
from partnerledger.errors import ConcurrencyConflict
from partnerledger.jsonl import import_lines
from partnerledger.privacy import KEYS
from partnerledger.sql import connect

HISTORY = Path(__file__).parent / "data" / "riverside.jsonl"


def demo_lines() -> list[bytes]:
    """140 commands of one small demo network (referrals with customers included)."""
    return [encode_command(c) for c in generate(seed=3, members=6, months=2, networks=1)]


def log_of(store: Store, ledger: Ledger) -> list[tuple[Any, ...]]:
    """The log as comparable data: the personal fields revealed, the store time left out."""
    found = []
    for position, event in store.read():
        (revealed,) = ledger.vault.reveal_events([event])
        found.append(
            (
                position,
                event.originator_id,
                event.originator_version,
                event.command_id,
                encode_command(revealed.command),
            )
        )
    return found


class Counted:
    """Calls of a store's per-aggregate read (``stream``) and batch read (``streams``)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.stream = 0
        self.streams = 0
        monkeypatch.setattr(store, "stream", self._count("stream", store.stream))
        monkeypatch.setattr(store, "streams", self._count("streams", store.streams))

    def _count(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            setattr(self, name, getattr(self, name) + 1)
            return real(*args, **kwargs)

        return counted


@pytest.fixture
def spools(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every temporary file the spool opens."""
    opened: list[Any] = []
    real = tempfile.TemporaryFile

    def tracked(*args: Any, **kwargs: Any) -> Any:
        file = real(*args, **kwargs)
        opened.append(file)
        return file

    monkeypatch.setattr(spool_module.tempfile, "TemporaryFile", tracked)
    return opened


def test_an_import_into_an_empty_store_reads_no_stream_and_writes_what_execute_would(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spools: list[Any]
) -> None:
    lines = demo_lines()
    with Store(Database.parse(database_url)) as store:
        ledger = Ledger(store)
        counted = Counted(store, monkeypatch)

        report = import_lines(ledger, lines, batch_size=40)

        assert (report.recorded, report.rejected_count, report.written) == (len(lines), 0, True)
        assert (counted.stream, counted.streams) == (0, 0)
        assert len(spools) == 1 and spools[0].closed
        imported = log_of(store, ledger)
    # The same commands through the in-memory unit of work, on a SQLite file.
    with Store(Database.parse(str(tmp_path / "executed.db"))) as other:
        other_ledger = Ledger(other)
        from partnerledger.commands import decode_command

        other_ledger.execute_all(decode_command(line) for line in lines)
        executed = log_of(other, other_ledger)
    # Stores have secrets of their own: a customer's subject (and so the identity) differ.
    assert [_without_subject(row) for row in imported] == [_without_subject(r) for r in executed]


def _without_subject(row: tuple[Any, ...]) -> tuple[Any, ...]:
    command = json.loads(row[4])
    command.pop("subject", None)
    return (row[1], row[2], command)


def test_a_reimport_reads_each_chunks_streams_in_one_query(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonl_module, "CHUNK", 25)
    lines = demo_lines()
    with Store(Database.parse(database_url)) as store:
        ledger = Ledger(store)
        import_lines(ledger, lines)
        before = list(store.read())
        counted = Counted(store, monkeypatch)

        again = import_lines(ledger, lines)

        assert (again.recorded, again.duplicates, again.rejected_count) == (0, len(lines), 0)
        assert counted.streams == math.ceil(len(lines) / 25)
        # Per-aggregate reads only for what the chunk's fields did not name.
        assert counted.stream <= 2, counted.stream
        assert list(store.read()) == before


def test_an_import_onto_existing_history_decides_against_it(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonl_module, "CHUNK", 16)
    lines = demo_lines()
    with Store(Database.parse(database_url)) as store:
        ledger = Ledger(store)
        first = import_lines(ledger, lines[:60])
        counted = Counted(store, monkeypatch)
        # A referral from a member nobody recorded is refused against the stored network.
        stranger = json.loads(lines[-1])
        bad = json.dumps(
            {
                "type": "referral.sent",
                "network": stranger["network"],
                "referral": "r-stranger",
                "from_member": "nobody",
                "to_member": "nobody-else",
                "customer": "Pat Doe",
                "actor": "x@example.org",
                "occurred_at": "2024-02-01T10:00:00Z",
            }
        ).encode()

        second = import_lines(ledger, [*lines[40:], bad], skip_invalid=True)

        assert first.recorded == 60
        assert (second.recorded, second.duplicates) == (len(lines) - 60, 20)
        assert [(e.line, e.field) for e in second.rejected] == [(len(lines) - 39, "from_member")]
        assert counted.stream <= 3, counted.stream
        split = log_of(store, ledger)
    with Store(Database.parse(str(tmp_path / "whole.db"))) as whole:
        whole_ledger = Ledger(whole)
        import_lines(whole_ledger, lines)
        assert [_without_subject(r) for r in split] == [
            _without_subject(r) for r in log_of(whole, whole_ledger)
        ]


def test_a_failed_import_writes_no_event_no_key_and_leaves_no_file(
    database_url: str, spools: list[Any]
) -> None:
    lines = demo_lines()
    lines.append(b'{"type": "referral.accepted", "network": "nowhere"}')
    with Store(Database.parse(database_url)) as store:
        report = import_lines(Ledger(store), lines)

        assert not report.written and report.rejected_count == 1
        assert store.last_position() == 0
        db = connect(store.database)
        try:
            _, rows = db.execute(f"SELECT COUNT(*) FROM {db.table(KEYS)}")
        except Exception:  # no table at all: no key either
            rows = [(0,)]
        finally:
            db.close()
        assert rows[0][0] == 0
    assert len(spools) == 1 and spools[0].closed


def test_an_erasure_in_an_import_destroys_the_key_once_its_event_is_written(
    database_url: str,
) -> None:
    lines = HISTORY.read_bytes().splitlines()[:8]  # ... r-0001 sent for Dana Whitfield
    sent = json.loads(lines[-1])
    sent["subject"] = "crm-dana"
    lines[-1] = json.dumps(sent).encode()
    lines.append(
        json.dumps(
            {
                "type": "subject.erased",
                "network": "riverside",
                "subject": "crm-dana",
                "reason": "asked",
                "actor": "dpo@riverside.example",
                "occurred_at": "2025-01-20T09:00:00Z",
            }
        ).encode()
    )
    with Store(Database.parse(database_url)) as store:
        ledger = Ledger(store)

        report = import_lines(ledger, lines, batch_size=3)

        assert report.recorded == 9
        assert ledger.vault.is_erased("riverside", "crm-dana")
        events = [event for _, event in store.read()]
        assert [e.type for e in events[-2:]] == ["referral.sent", "subject.erased"]
        assert ledger.vault.reveal_events([events[-2]])[0].command.customer == "[erased]"


def test_a_writer_racing_an_import_into_an_empty_store_makes_it_conflict(
    database_url: str,
) -> None:
    lines = HISTORY.read_bytes().splitlines()
    with Store(Database.parse(database_url)) as store, Store(store.database) as other:
        raced = []

        def race(_: int) -> None:
            if not raced:  # another process records the network before the import writes
                raced.append(Ledger(other).execute_all([_command(lines[0])]))

        with pytest.raises(ConcurrencyConflict):
            import_lines(Ledger(store), lines, on_line=race)

        assert [(e.type, e.originator_version) for _, e in store.read()] == [("network.created", 1)]


def _command(line: bytes) -> Any:
    from partnerledger.commands import decode_command

    return decode_command(line)


def test_aggregates_dropped_from_memory_are_read_again_from_the_store_and_the_spool(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = demo_lines()
    # A bad line late in the file, judged against state that was dropped and read again:
    # the last line converts a referral; converting it again (another value) is refused.
    assert b'"referral.converted"' in lines[-1]
    refused = lines[-1].replace(b'"deal_value":"', b'"deal_value":"1', 1)
    with Store(Database.parse(str(tmp_path / "kept.db"))) as kept:
        kept_ledger = Ledger(kept)
        import_lines(kept_ledger, lines[:70])
        whole = import_lines(kept_ledger, [*lines[50:], refused], skip_invalid=True)
        expected = [_without_subject(r) for r in log_of(kept, kept_ledger)]
    monkeypatch.setattr(ledger_module, "KEEP", 6)
    monkeypatch.setattr(jsonl_module, "CHUNK", 16)
    with Store(Database.parse(database_url)) as store:
        ledger = Ledger(store)
        first = import_lines(ledger, lines[:70])  # an empty store: from the spool only
        second = import_lines(ledger, [*lines[50:], refused], skip_invalid=True)

        assert first.recorded == 70
        assert [e.field for e in whole.rejected] == ["referral"]
        assert (second.recorded, second.duplicates) == (whole.recorded, whole.duplicates)
        assert [(e.line, e.field) for e in second.rejected] == [
            (e.line, e.field) for e in whole.rejected
        ]
        assert [_without_subject(r) for r in log_of(store, ledger)] == expected
