"""JSON Lines import and export, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from partnerledger import Database, Ledger, Store
from partnerledger.jsonl import REPORT_LIMIT, export_lines, import_lines

HISTORY = Path(__file__).parent / "data" / "riverside.jsonl"


def history_lines() -> list[bytes]:
    return HISTORY.read_bytes().splitlines()


def exported(store: Store, network: str | None = None) -> bytes:
    buffer = io.BytesIO()
    export_lines(store, buffer, network=network)
    return buffer.getvalue()


def test_import_records_every_line_in_order(ledger: Ledger, store: Store) -> None:
    report = import_lines(ledger, history_lines())

    assert report.written
    assert (report.lines, report.recorded, report.duplicates, report.rejected_count) == (
        37,
        37,
        0,
        0,
    )
    types = [event.type for _, event in store.read()]
    assert types == [json.loads(line)["type"] for line in history_lines()]
    positions = [position for position, _ in store.read()]
    assert positions == sorted(positions)


def test_reimporting_the_same_file_records_nothing_twice(ledger: Ledger, store: Store) -> None:
    import_lines(ledger, history_lines())
    before = list(store.read())

    again = import_lines(ledger, history_lines())

    assert (again.recorded, again.duplicates) == (0, 37)
    assert list(store.read()) == before


def test_export_import_export_is_byte_identical(
    ledger: Ledger, store: Store, tmp_path: Path
) -> None:
    import_lines(ledger, history_lines())
    first = exported(store)

    with Store(Database.parse(str(tmp_path / "copy.db"))) as copy:
        report = import_lines(Ledger(copy), first.splitlines())
        assert report.recorded == 37
        second = exported(copy)

    assert second == first
    assert first.count(b"\n") == 37
    # The export of a store is also a no-op when imported back into it.
    assert import_lines(ledger, first.splitlines()).duplicates == 37


def test_round_trip_between_sqlite_and_postgresql(tmp_path: Path, postgres_url: str) -> None:
    with Store(Database.parse(str(tmp_path / "a.db"))) as sqlite_store:
        import_lines(Ledger(sqlite_store), history_lines())
        from_sqlite = exported(sqlite_store)
    with Store(Database.parse(postgres_url)) as pg_store:
        import_lines(Ledger(pg_store), from_sqlite.splitlines())
        from_postgres = exported(pg_store)
    assert from_postgres == from_sqlite


def test_export_of_one_network_leaves_the_others_out(ledger: Ledger, store: Store) -> None:
    import_lines(ledger, history_lines())
    other = (
        b'{"type": "network.created", "network": "harbor", "name": "Harbor BNI", "currency": "EUR",'
        b' "actor": "c@harbor.example", "occurred_at": "2025-01-01T00:00:00Z"}'
    )
    import_lines(ledger, [other])

    riverside = exported(store, network="riverside")
    harbor = exported(store, network="harbor")

    assert riverside.count(b"\n") == 37
    assert b"harbor" not in riverside
    assert harbor.count(b"\n") == 1
    assert b"riverside" not in harbor


def test_a_bad_line_in_the_middle_writes_nothing_and_every_bad_line_is_reported(
    ledger: Ledger, store: Store
) -> None:
    lines = history_lines()
    bad = list(lines)
    bad[9] = bad[9].replace(b'"10000.00"', b'"-10000.00"')  # referral.converted
    bad[20] = b'{"type": "referral.sent", "network": "riverside"'  # truncated JSON
    bad[25] = bad[25].replace(b'"2025-09-01T09:00:00Z"', b'"2025-09-01T09:00:00"')  # no offset

    report = import_lines(ledger, bad)

    assert not report.written
    assert report.recorded == 0
    assert store.last_position() == 0
    found = {(e.line, e.field) for e in report.rejected}
    assert (10, "deal_value") in found
    assert (21, "-") in found
    assert (26, "occurred_at") in found
    # Line 11 reverses the conversion of line 10, which was refused: reported too.
    assert (11, "referral") in found
    reasons = {e.line: e.reason for e in report.rejected}
    assert "greater than zero" in reasons[10]
    assert "JSON" in reasons[21]
    assert "timezone" in reasons[26]


def test_the_report_shows_the_first_fifty_bad_lines_of_many(ledger: Ledger, store: Store) -> None:
    lines = history_lines()[:1] + [b'{"type": "nope"}'] * 70

    report = import_lines(ledger, lines)

    assert report.rejected_count == 70
    assert len(report.shown) == REPORT_LIMIT == 50
    assert report.shown[0].line == 2
    assert report.shown[0].field == "type"
    assert "unknown command type" in report.shown[0].reason
    assert store.last_position() == 0


def test_skip_invalid_imports_the_good_lines(ledger: Ledger, store: Store) -> None:
    lines = history_lines()
    lines.insert(3, b'{"type": "member.joined", "network": "riverside", "member": "x"}')

    report = import_lines(ledger, lines, skip_invalid=True)

    assert report.written
    assert report.recorded == 37
    assert [(e.line, e.field) for e in report.rejected] == [(4, "actor")]
    assert store.last_position() >= 37


def test_unknown_fields_and_wrong_types_name_the_field(ledger: Ledger) -> None:
    lines = history_lines()[:3] + [
        b'{"type": "referral.sent", "network": "riverside", "referral": "r-9",'
        b' "from_member": "lee-law", "to_member": "park-cpa", "customer": "A",'
        b' "actor": "a", "occurred_at": "2025-05-01T00:00:00Z", "valeu": 3}',
        b'{"type": "referral.sent", "network": "riverside", "referral": 12,'
        b' "from_member": "lee-law", "to_member": "park-cpa", "customer": "A",'
        b' "actor": "a", "occurred_at": "2025-05-01T00:00:00Z"}',
        b'{"type": "agreement.proposed", "network": "riverside", "agreement": "a-9",'
        b' "kind": "referral", "parties": ["lee-law", "park-cpa"],'
        b' "terms": {"scope": "x", "targets": {"referrals_per_month": -1}},'
        b' "actor": "a", "occurred_at": "2025-05-01T00:00:00Z"}',
    ]

    report = import_lines(ledger, lines)

    assert [(e.line, e.field) for e in report.rejected] == [
        (4, "valeu"),
        (5, "referral"),
        (6, "terms.targets.referrals_per_month"),
    ]
    assert report.rejected[0].reason == "unknown field"


def test_lines_the_store_could_not_hold_name_the_field(ledger: Ledger) -> None:
    """Times outside 1900 to 2200, a lone surrogate, money beyond the views' integers."""
    start = (
        b'{"type": "member.suspended", "network": "riverside", "member": "lee-law", "actor": "a"'
    )
    lines = [
        *history_lines(),
        start + b', "occurred_at": "0185-03-08T22:08:28Z"}',
        start + b', "occurred_at": "0001-01-01T00:00:00+01:00"}',
        start + b', "occurred_at": "2025-05-01T00:00:00Z", "reason": "x \\udcdb"}',
        b'{"type": "tyfcb.reported", "network": "riverside", "member": "lee-law",'
        b' "thanked_member": "park-cpa", "amount": "1E+40", "currency": "USD",'
        b' "actor": "a", "occurred_at": "2025-05-01T00:00:00Z"}',
    ]

    report = import_lines(ledger, lines)

    assert [(e.field, e.code) for e in report.rejected] == [
        ("occurred_at", "invalid"),
        ("occurred_at", "invalid"),
        ("reason", "invalid"),  # JSON, but no Unicode: msgspec refuses the escape; named
        ("amount", "invalid"),
    ]
    assert "1900" in report.rejected[0].reason
    assert "surrogate" in report.rejected[2].reason
    assert report.written is False


@pytest.mark.parametrize("batch_size", [1, 7])
def test_batches_write_the_same_log(ledger: Ledger, store: Store, batch_size: int) -> None:
    report = import_lines(ledger, history_lines(), batch_size=batch_size)

    assert report.recorded == 37
    assert store.last_position() >= 37
    assert [e.type for _, e in store.read()][:2] == ["network.created", "member.joined"]


def test_a_command_id_reused_for_different_content_is_refused(ledger: Ledger, store: Store) -> None:
    lines = history_lines()[:4]
    first = json.loads(lines[1])
    first["command_id"] = "import-7"
    again = dict(first, name="Lee & Partners")  # same id, same member, other content

    ok = import_lines(ledger, [*lines[:1], json.dumps(first).encode()])
    assert ok.recorded == 2
    same = import_lines(ledger, [json.dumps(first).encode()])
    assert same.duplicates == 1

    report = import_lines(ledger, [json.dumps(again).encode()])

    assert [(e.field, e.reason) for e in report.rejected] == [
        (
            "command_id",
            "'import-7' was already used for a different command; give each command its own id",
        )
    ]
    assert store.last_position() >= 2
    assert not report.written
