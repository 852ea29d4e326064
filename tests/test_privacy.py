"""Personal data in referrals: sealed per data subject, erasable, on SQLite and PostgreSQL.

The stored events hold only boxes; views, the CLI, the web pages and the API
show the name, then ``[erased]`` once the subject's key is destroyed; a
rebuild brings nothing back; the raw database (every table, the SQLite file
itself) no longer holds the name; the proofs' input (the stored rows) never
changes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from click.testing import CliRunner, Result
from litestar.testing import TestClient

from partnerledger import (
    ConcurrencyConflict,
    Database,
    DomainError,
    InvalidCommand,
    InvalidTransition,
    Ledger,
    NotFound,
    Store,
)
from partnerledger.accounts import Accounts
from partnerledger.cli.main import cli
from partnerledger.commands import ReferralSent, convert_command, derived_command_id
from partnerledger.delivery import Deliveries
from partnerledger.jsonl import export_lines, import_lines
from partnerledger.privacy import (
    ERASED,
    KEYS,
    SECRET_ROW,
    Sealed,
    Vault,
    erase_subject,
    pseudonym,
    seal_with,
    subjects,
)
from partnerledger.projection import Projector
from partnerledger.replay import attributions
from partnerledger.views.trail import trail
from partnerledger.web.app import create_app
from webkit import World, browser, build_world, events

NET = "riverside"
NAME = "Dana Whitfield"
CONTACT = "dana.whitfield@example.com"
T0 = datetime(2025, 1, 6, 9, tzinfo=UTC)


def c(kind: str, minute: int = 0, **fields: Any) -> Any:
    fields.setdefault("network", NET)
    fields.setdefault("actor", "coord@riverside.example")
    fields.setdefault("occurred_at", (T0 + timedelta(minutes=minute)).isoformat())
    return convert_command({"type": kind, **fields})


def network(ledger: Ledger, *plugins: str) -> None:
    ledger.execute(
        c("network.created", name="Riverside", currency="USD"),
        *(c("plugin.enabled", plugin=p) for p in plugins),
        c("member.joined", 1, member="lee-law", name="Lee Law", category="lawyer"),
        c("member.joined", 2, member="park-cpa", name="Park CPA", category="accountant"),
        c("member.joined", 3, member="kim-fin", name="Kim Finance", category="finance"),
    )


def send(
    ledger: Ledger, referral: str, minute: int, customer: str = NAME, **fields: Any
) -> ReferralSent:
    fields.setdefault("from_member", "lee-law")
    fields.setdefault("to_member", "park-cpa")
    ledger.execute(c("referral.sent", minute, referral=referral, customer=customer, **fields))
    return stored_sent(ledger.store, referral)


def stored_sent(store: Store, referral: str) -> ReferralSent:
    for _, event in store.read(topics=["referral.sent"]):
        command = event.command
        if isinstance(command, ReferralSent) and command.referral == referral:
            return command
    raise AssertionError(f"no referral.sent of {referral}")


def raw_tables(database_url: str) -> dict[str, bytes]:
    """Every table of the store's database, every row, as bytes: what a disk holds."""
    database = Database.parse(database_url)
    found: dict[str, bytes] = {}

    def text(value: Any) -> bytes:
        if isinstance(value, bytes | memoryview | bytearray):
            return bytes(value)
        return str(value).encode("utf-8")

    if database.kind == "sqlite":
        with sqlite3.connect(database.path) as conn:
            names = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for name in names:
                rows = conn.execute(f'SELECT * FROM "{name}"').fetchall()
                found[name] = b"\n".join(b"|".join(text(v) for v in row) for row in rows)
        conn.close()
        return found
    with psycopg.connect(
        host=database.host, port=database.port, user=database.user, dbname=database.dbname
    ) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (database.schema,),
            )
        ]
        for name in names:
            rows = conn.execute(f'SELECT * FROM "{database.schema}"."{name}"').fetchall()
            found[name] = b"\n".join(b"|".join(text(v) for v in row) for row in rows)
    return found


def events_table_of(database_url: str) -> str:
    """The log's table (eventsourcing names it differently on each database)."""
    kind = Database.parse(database_url).kind
    return "stored_events" if kind == "sqlite" else "partnerledger_events"


def key_of(ledger: Ledger, subject: str) -> bytes:
    """A subject's key, read from its table."""
    with ledger.vault.connection() as db:
        _, rows = db.execute(
            f"SELECT key FROM {db.table(KEYS)} WHERE network = ? AND subject = ?",
            (NET, subject),
        )
    assert rows, f"no key for {subject}"
    return base64.b64decode(str(rows[0][0]))


def holding(database_url: str, needle: str) -> list[str]:
    """The tables whose raw rows contain the text."""
    return sorted(n for n, data in raw_tables(database_url).items() if needle.encode() in data)


# ----------------------------------------------------------------- the store


def test_the_stored_event_holds_only_boxes(ledger: Ledger, database_url: str) -> None:
    network(ledger)
    sent = send(ledger, "r-1", 10, customer_contact=CONTACT)

    assert isinstance(sent.customer, Sealed) and isinstance(sent.customer_contact, Sealed)
    assert sent.subject == sent.customer.subject == sent.customer_contact.subject
    assert sent.subject.startswith("s-") and len(sent.subject) == 34
    # The raw events table holds neither the name, nor the contact, nor their digests.
    events_table = raw_tables(database_url)[events_table_of(database_url)]
    for secret in (NAME, CONTACT, "Whitfield"):
        assert secret.encode() not in events_table
    assert holding(database_url, NAME) == []
    # A box: 12-byte nonce, then AES-256-GCM ciphertext and 16-byte tag; it opens.
    raw = base64.b64decode(sent.customer.box)
    assert len(raw) == 12 + len(NAME.encode()) + 16
    assert ledger.vault.open(NET, "customer", sent.customer) == NAME
    assert ledger.vault.open(NET, "customer_contact", sent.customer_contact) == CONTACT
    # The identity covers the subject, never the name: no digest of it is stored.
    plain = c("referral.sent", 10, referral="r-1", from_member="lee-law", to_member="park-cpa",
              customer=NAME, customer_contact=CONTACT)  # fmt: skip
    assert derived_command_id(ledger.prepare(plain)) == derived_command_id(sent)
    naive = msgspec.json.encode(plain, order="sorted")
    assert "sha256:" + hashlib.sha256(naive).hexdigest()[:32] != derived_command_id(sent)


def test_same_customer_same_subject_explicit_subject_and_mismatch(ledger: Ledger) -> None:
    network(ledger)
    first = send(ledger, "r-1", 10)
    again = send(ledger, "r-2", 11, customer="  dana   WHITFIELD ", to_member="kim-fin")
    other = send(ledger, "r-3", 12, customer="Sam Ortiz")
    crm = send(ledger, "r-4", 13, customer="Kim Nakamura", subject="crm-4711")

    assert first.subject == again.subject != other.subject
    assert crm.subject == "crm-4711"
    assert ledger.vault.find_subject(NET, NAME) == first.subject
    # A subject given that disagrees with the box it comes with is refused, naming it.
    before = ledger.store.last_position()
    assert isinstance(first.customer, Sealed)
    clash = c("referral.sent", 14, referral="r-5", from_member="lee-law", to_member="park-cpa",
              customer=msgspec.to_builtins(first.customer), subject="crm-1")  # fmt: skip
    with pytest.raises(InvalidCommand) as refused:
        ledger.execute(clash)
    assert refused.value.field == "subject"
    assert ledger.store.last_position() == before


def test_a_box_does_not_open_for_another_subject_field_or_network(ledger: Ledger) -> None:
    network(ledger)
    dana = send(ledger, "r-1", 10, customer_contact=CONTACT)
    sam = send(ledger, "r-2", 11, customer="Sam Ortiz")
    assert isinstance(dana.customer, Sealed) and isinstance(sam.customer, Sealed)
    assert dana.subject is not None and sam.subject is not None
    vault = ledger.vault

    moved = Sealed(subject=sam.subject, box=dana.customer.box)  # Sam's key exists
    assert vault.open(NET, "customer", moved) is None
    assert vault.reveal(NET, "customer", moved) == ERASED
    assert vault.open(NET, "customer_contact", dana.customer) is None  # another field
    assert vault.open("harbor", "customer", dana.customer) is None  # another network
    raw = bytearray(base64.b64decode(dana.customer.box))
    raw[-1] ^= 1  # one bit of the tag
    tampered = Sealed(subject=dana.subject, box=base64.b64encode(bytes(raw)).decode())
    assert vault.open(NET, "customer", tampered) is None
    # The key itself: 32 random bytes; the box opens with it and nothing else.
    key = key_of(ledger, dana.subject)
    assert len(key) == 32
    box = seal_with(key, NET, dana.subject, "customer", "x")
    assert vault.open(NET, "customer", box) == "x"


# ----------------------------------------------------------------- erasure


def test_erasure_records_an_event_destroys_the_key_and_shows_erased(
    ledger: Ledger, store: Store, database_url: str
) -> None:
    network(ledger)
    dana = send(ledger, "r-1", 10, customer_contact=CONTACT)
    send(ledger, "r-2", 11, customer="dana whitfield", to_member="kim-fin")
    sam = send(ledger, "r-3", 12, customer="Sam Ortiz")
    assert dana.subject is not None
    rows_before = [(p, e) for p, e in store.read()]
    stored_before = raw_tables(database_url)[events_table_of(database_url)]

    outcome = erase_subject(ledger, NET, dana.subject, actor="dpo@riverside.example",
                            reason="The customer asked to be forgotten")  # fmt: skip

    assert [e.type for e in outcome.recorded] == ["subject.erased"]
    assert ledger.vault.is_erased(NET, dana.subject)
    assert not ledger.vault.is_erased(NET, sam.subject or "")
    revealed = {
        c.referral: (c.customer, c.customer_contact)
        for c in ledger.vault.reveal_commands(
            [stored_sent(store, r) for r in ("r-1", "r-2", "r-3")]
        )
    }
    assert revealed == {"r-1": (ERASED, ERASED), "r-2": (ERASED, None), "r-3": ("Sam Ortiz", None)}
    # The log is append-only: every earlier row is byte for byte what it was.
    assert list(store.read())[: len(rows_before)] == rows_before
    assert raw_tables(database_url)[events_table_of(database_url)].startswith(stored_before)
    # The key's row is gone from the database.
    keys = raw_tables(database_url)[KEYS]
    assert dana.subject.encode() not in keys and (sam.subject or "").encode() in keys
    # The trail shows it erased, and its search no longer finds the name.
    with Projector(store) as views:
        views.catch_up()
        shown = trail(views.db, NET, "referral:r-1")
        assert shown[0].command["customer"] == ERASED
        assert shown[0].command["customer_contact"] == ERASED
        assert trail(views.db, NET, "member:lee-law", search="whitfield") == []
        assert len(trail(views.db, NET, "member:lee-law", search="Ortiz")) == 1
        subject_trail = trail(views.db, NET, f"subject:{dana.subject}")
        assert [e.type for e in subject_trail] == [
            "referral.sent",
            "referral.sent",
            "subject.erased",
        ]
    # Listing subjects never shows an erased name.
    listed = {s.subject: s for s in subjects(ledger, NET)}
    assert listed[dana.subject].customer == ERASED and listed[dana.subject].erased
    assert listed[dana.subject].referrals == ["r-1", "r-2"]
    assert listed[sam.subject or ""].customer == "Sam Ortiz"


def test_erasing_an_unknown_or_erased_subject_is_refused_and_writes_nothing(
    ledger: Ledger, store: Store
) -> None:
    network(ledger)
    dana = send(ledger, "r-1", 10)
    assert dana.subject is not None
    before = store.last_position()

    with pytest.raises(NotFound) as unknown:
        erase_subject(ledger, NET, "s-0000", actor="dpo", reason="asked")
    assert unknown.value.field == "subject" and "s-0000" in unknown.value.reason
    with pytest.raises(NotFound) as no_network:
        erase_subject(ledger, "nowhere", dana.subject, actor="dpo", reason="asked")
    assert no_network.value.field == "network"
    with pytest.raises(InvalidCommand) as no_reason:
        erase_subject(ledger, NET, dana.subject, actor="dpo", reason="")
    assert no_reason.value.field == "reason"
    assert store.last_position() == before
    assert not ledger.vault.is_erased(NET, dana.subject)

    erase_subject(ledger, NET, dana.subject, actor="dpo", reason="asked")
    after = store.last_position()
    with pytest.raises(InvalidTransition) as twice:
        erase_subject(ledger, NET, dana.subject, actor="dpo", reason="asked again")
    assert twice.value.field == "subject" and "already erased" in twice.value.reason
    assert store.last_position() == after


def test_a_customer_who_comes_back_after_erasure_gets_a_new_key(ledger: Ledger) -> None:
    network(ledger)
    old = send(ledger, "r-1", 10)
    assert old.subject is not None
    erase_subject(ledger, NET, old.subject, actor="dpo", reason="asked")

    new = send(ledger, "r-2", 20)

    assert new.subject == old.subject
    assert ledger.vault.reveal_commands([old, new])[0].customer == ERASED
    assert ledger.vault.reveal_commands([old, new])[1].customer == NAME
    # ...and may be erased again, since there is something new to erase.
    erase_subject(ledger, NET, new.subject or "", actor="dpo", reason="asked again")
    assert ledger.vault.reveal_commands([new])[0].customer == ERASED


def test_a_referral_after_its_subjects_erasure_in_the_same_batch_is_refused(
    ledger: Ledger, store: Store
) -> None:
    network(ledger)
    dana = send(ledger, "r-1", 10)
    before = store.last_position()
    with pytest.raises(InvalidCommand) as refused:
        ledger.execute(
            c("subject.erased", 11, subject=dana.subject, reason="asked"),
            c("referral.sent", 12, referral="r-2", from_member="lee-law", to_member="kim-fin",
              customer=NAME),
        )  # fmt: skip
    assert refused.value.field == "subject"
    assert store.last_position() == before
    assert not ledger.vault.is_erased(NET, dana.subject or "")


def test_the_key_stays_when_the_erasure_is_not_recorded_and_a_rerun_completes_it(
    ledger: Ledger, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    network(ledger)
    dana = send(ledger, "r-1", 10)
    subject = dana.subject or ""
    before = store.last_position()

    def conflict(_events: Any) -> list[int]:
        raise ConcurrencyConflict("command", "another command changed the same record")

    with monkeypatch.context() as patch:
        patch.setattr(store, "append", conflict)
        with pytest.raises(ConcurrencyConflict):
            erase_subject(ledger, NET, subject, actor="dpo", reason="asked")
    assert store.last_position() == before
    assert not ledger.vault.is_erased(NET, subject)  # the append failed: the key stays

    # The event is recorded but the process stops before the key goes...
    def stop(*_: Any) -> bool:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("partnerledger.ledger.complete_erasure", stop)
        with pytest.raises(KeyboardInterrupt):
            erase_subject(ledger, NET, subject, actor="dpo", reason="asked")
    assert store.last_position() == before + 1
    assert not ledger.vault.is_erased(NET, subject)
    # ...and running the erasure again completes it without a second event.
    outcome = erase_subject(ledger, NET, subject, actor="dpo", reason="asked")
    assert outcome.recorded == []
    assert store.last_position() == before + 1
    assert ledger.vault.is_erased(NET, subject)


def test_two_processes_making_up_a_networks_secret_at_once(store: Store) -> None:
    first, second = Ledger(store), Ledger(store)
    network(first)
    # Both derive a subject before either has stored the network's secret.
    early = first.prepare(c("referral.sent", 10, referral="r-1", from_member="lee-law",
                            to_member="park-cpa", customer=NAME))  # fmt: skip
    send(second, "r-2", 11)  # stores the second process's secret
    before = store.last_position()
    with pytest.raises(ConcurrencyConflict) as conflict:
        first.execute(early)
    assert conflict.value.field == "subject"
    assert store.last_position() == before
    # Trying again works, with the stored secret: the same customer, the same subject.
    again = send(first, "r-1", 10)
    assert again.subject == stored_sent(store, "r-2").subject


# ------------------------------------------------------------ rebuild, files


def test_a_rebuild_after_erasure_brings_nothing_back(database_url: str, tmp_path: Path) -> None:
    with Store(Database.parse(database_url)) as store:
        ledger = Ledger(store)
        network(ledger, "notifications")
        dana = send(ledger, "r-1", 10, customer_contact=CONTACT)
        send(ledger, "r-2", 11, customer="Sam Ortiz")
        ledger.execute(c("referral.accepted", 12, referral="r-1"))
        with Projector(store) as views:
            views.catch_up()
        with Deliveries(store.database) as deliveries:
            deliveries.collect(ledger)
            deliveries.deliver()
            inbox = deliveries.inbox(NET, "park-cpa")
            assert any(NAME in m.subject for m in inbox)
            assert any(CONTACT in m.body for m in inbox)
        key = base64.b64encode(key_of(ledger, dana.subject or ""))
        assert holding(database_url, NAME) == sorted(
            ["partnerledger_deliveries", "partnerledger_inbox"]
        )

        erase_subject(ledger, NET, dana.subject or "", actor="dpo", reason="asked")
        with Projector(store) as views:
            views.rebuild()
            entries = trail(views.db, NET, "referral:r-1")
            assert entries[0].command["customer"] == ERASED
        with Deliveries(store.database) as deliveries:
            texts = [m.subject + m.body for m in deliveries.inbox(NET, "park-cpa")]
        assert any(ERASED in t for t in texts) and any("Sam Ortiz" in t for t in texts)

    # No table holds the name, the contact or the key any more; Sam is still there.
    for gone in (NAME, CONTACT, key.decode()):
        assert holding(database_url, gone) == [], gone
    assert holding(database_url, "Sam Ortiz") == sorted(
        ["partnerledger_deliveries", "partnerledger_inbox"]
    )
    database = Database.parse(database_url)
    if database.kind == "sqlite":
        with sqlite3.connect(database.path) as conn:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        files = [Path(database.path), *Path(database.path).parent.glob("*.db-wal")]
        data = b"".join(f.read_bytes() for f in files if f.exists())
        for gone in (NAME.encode(), CONTACT.encode(), key, base64.b64decode(key)):
            assert gone not in data


def test_reimporting_the_same_file_and_the_export_records_nothing(
    ledger: Ledger, store: Store, tmp_path: Path
) -> None:
    lines = [
        msgspec.json.encode(cmd)
        for cmd in (
            c("network.created", name="Riverside", currency="USD"),
            c("member.joined", 1, member="lee-law", name="Lee Law", category="lawyer"),
            c("member.joined", 2, member="park-cpa", name="Park CPA", category="accountant"),
            *(
                c("referral.sent", 10 + n, referral=f"r-{n}", from_member="lee-law",
                  to_member="park-cpa", customer=f"Customer {n}",
                  customer_contact=f"+1 555 {n:04d}")
                for n in range(30)
            ),
        )
    ]  # fmt: skip
    first = import_lines(ledger, lines)
    assert (first.recorded, first.duplicates) == (33, 0)

    again = import_lines(ledger, lines)
    assert (again.recorded, again.duplicates) == (0, 33)

    buffer = io.BytesIO()
    export_lines(store, buffer)
    exported = buffer.getvalue()
    assert b"Customer 1" not in exported and b"+1 555" not in exported
    assert exported.count(b'"box":') == 60
    assert import_lines(ledger, exported.splitlines()).duplicates == 33
    # Into another store, the sealed lines are accepted as they are: the boxes do
    # not open there (no keys), and the export is byte for byte the same.
    with Store(Database.parse(str(tmp_path / "copy.db"))) as copy:
        copied = Ledger(copy)
        assert import_lines(copied, exported.splitlines()).recorded == 33
        out = io.BytesIO()
        export_lines(copy, out)
        assert out.getvalue() == exported
        assert copied.vault.reveal_commands([stored_sent(copy, "r-1")])[0].customer == ERASED


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The options of every connection opened from now on (``partnerledger.sql.connect``)."""
    import partnerledger.sql

    found: list[dict[str, Any]] = []
    real = partnerledger.sql.connect

    def counting(database: Database, **options: Any) -> Any:
        found.append(options)
        return real(database, **options)

    monkeypatch.setattr(partnerledger.sql, "connect", counting)
    return found


def test_an_import_seals_with_one_batch_of_keys(
    ledger: Ledger, opened: list[dict[str, Any]]
) -> None:
    network(ledger)
    opened.clear()
    lines = [
        msgspec.json.encode(
            c("referral.sent", 10 + n, referral=f"r-{n}", from_member="lee-law",
              to_member="park-cpa", customer=f"Customer {n}")
        )
        for n in range(600)
    ]  # fmt: skip
    report = import_lines(ledger, lines)
    assert report.recorded == 600
    # The vault's own connection, opened once (or earlier): not one per referral.
    assert len(opened) <= 1
    assert len({stored_sent(ledger.store, f"r-{n}").subject for n in range(600)}) == 600


def test_the_vault_keeps_one_connection_for_every_command_and_thread(
    ledger: Ledger, opened: list[dict[str, Any]]
) -> None:
    network(ledger)
    ledger.vault.close()
    opened.clear()

    def send(n: int) -> None:
        ledger.execute(
            c("referral.sent", 10 + n, referral=f"t-{n}", from_member="lee-law",
              to_member="park-cpa", customer=f"Threaded {n}")
        )  # fmt: skip

    send(0)
    worker = threading.Thread(target=lambda: [send(n) for n in range(1, 4)])
    worker.start()
    worker.join()
    send(4)
    assert opened == [{"shared": True}]  # one connection, shared by both threads
    ledger.vault.close()  # the next use opens another
    send(5)
    assert len(opened) == 2
    subjects = {stored_sent(ledger.store, f"t-{n}").subject for n in range(6)}
    assert len(subjects) == 6
    work = ledger.unit_of_work()
    assert work.reveal("riverside", work.referral("riverside", "t-2", "referral").customer) == (
        "Threaded 2"
    )


def test_a_commands_new_keys_are_stored_in_its_own_transaction(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    network(ledger)
    store = ledger.store
    before = len(list(store.read()))
    ledger.execute(
        c("referral.sent", 10, referral="k-1", from_member="lee-law", to_member="park-cpa",
          customer="Key Owner")
    )  # fmt: skip
    subject = stored_sent(store, "k-1").subject
    assert subject is not None and ledger.vault.has_key(NET, subject)

    # A command refused at the store (a version conflict) leaves no key behind.
    from partnerledger.store import Store as StoreClass

    real_append = StoreClass.append

    def conflicting(self: Store, events: Any, **kwargs: Any) -> Any:
        raise ConcurrencyConflict("command", "another command changed the same record")

    monkeypatch.setattr(StoreClass, "append", conflicting)
    with pytest.raises(ConcurrencyConflict):
        ledger.execute(
            c("referral.sent", 11, referral="k-2", from_member="lee-law", to_member="park-cpa",
              customer="Never Stored")
        )  # fmt: skip
    monkeypatch.setattr(StoreClass, "append", real_append)
    with ledger.vault.connection() as db:
        _, rows = db.execute(f"SELECT subject FROM {db.table(KEYS)} WHERE network = ?", (NET,))
    assert len(list(store.read())) == before + 1
    # The first referral's subject has a key (and the network its secret); the refused one none.
    assert {str(r[0]) for r in rows} - {SECRET_ROW} == {subject}


def test_a_key_stored_meanwhile_by_another_writer_is_the_one_used(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    network(ledger)
    vault = ledger.vault
    real = vault.keys_for
    theirs = base64.b64encode(b"\x07" * 32).decode()
    calls: list[int] = []

    def racing(wanted: Any) -> Any:
        found = real(wanted)
        calls.append(1)
        if len(calls) == 1:  # another process stores its key for the subject just now
            ((network_, subjects),) = wanted.items()
            with vault.connection() as db:
                db.execute(
                    f"INSERT INTO {db.table(KEYS)} (network, subject, key, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (network_, next(iter(subjects)), theirs, db.ts(datetime.now(UTC))),
                )
        return found

    monkeypatch.setattr(vault, "keys_for", racing)
    ledger.execute(
        c("referral.sent", 10, referral="race-1", from_member="lee-law", to_member="park-cpa",
          customer="Raced Customer")
    )  # fmt: skip
    assert len(calls) == 2  # refused once (nothing written), sealed again with their key
    sent = stored_sent(ledger.store, "race-1")
    assert isinstance(sent.customer, Sealed)
    assert sent.subject is not None
    assert seal_with(base64.b64decode(theirs), NET, sent.subject, "customer", "x") is not None
    work = ledger.unit_of_work()
    assert work.reveal(NET, sent.customer) == "Raced Customer"
    assert len([e for _, e in ledger.store.read(topics=["referral.sent"])]) == 1


def test_keys_taken_again_and_again_end_in_a_conflict_naming_the_subject(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    network(ledger)
    vault = ledger.vault
    before = len(list(ledger.store.read()))

    def always_raced(wanted: Any) -> Any:
        # Another process stores its own key for the subject first, every time.
        ((network_, subjects),) = wanted.items()
        subject = next(iter(subjects))
        mine = os.urandom(32)
        with vault.connection() as db:
            table, now = db.table(KEYS), db.ts(datetime.now(UTC))
            db.execute(
                f"DELETE FROM {table} WHERE network = ? AND subject = ?", (network_, subject)
            )
            db.execute(
                f"INSERT INTO {table} (network, subject, key, created_at) VALUES (?, ?, ?, ?)",
                (network_, subject, base64.b64encode(os.urandom(32)).decode(), now),
            )
        new_keys = (table, [(network_, subject, base64.b64encode(mine).decode(), now)])
        return {network_: {subject: mine}}, new_keys

    monkeypatch.setattr(vault, "keys_for", always_raced)
    with pytest.raises(ConcurrencyConflict) as refused:
        ledger.execute(
            c("referral.sent", 10, referral="never", from_member="lee-law",
              to_member="park-cpa", customer="Always Raced")
        )  # fmt: skip
    assert refused.value.field == "subject" and "try again" in refused.value.reason
    assert len(list(ledger.store.read())) == before  # nothing written


# ------------------------------------------------------------ attribution


def test_attribution_groups_one_customer_by_subject_even_after_erasure(ledger: Ledger) -> None:
    network(ledger, "attribution")
    dana = send(ledger, "r-1", 10)
    send(ledger, "r-2", 11, customer="DANA  whitfield", from_member="kim-fin")
    send(ledger, "r-3", 12, customer="Sam Ortiz")

    def credits() -> list[tuple[str, str, str]]:
        return [
            (j.decision.value.referral, j.decision.value.member, str(j.decision.value.share))  # type: ignore[union-attr]
            for j in attributions(ledger, NET)
        ]

    before = credits()
    # The two referrals of Dana (written differently) compete; Sam's does not.
    assert before == [("r-1", "lee-law", "1"), ("r-2", "kim-fin", "0")]
    erase_subject(ledger, NET, dana.subject or "", actor="dpo", reason="asked")
    assert credits() == before


# ------------------------------------------------------------------ CLI


Run = Callable[..., Result]


@pytest.fixture
def run(database_url: str) -> Run:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(
            cli,
            ["--database", database_url, *args],
            env={"PARTNERLEDGER_ACTOR": "coord@riverside.example"},
            catch_exceptions=False,
        )

    return invoke


def test_the_command_line_shows_then_erases(run: Run, database_url: str) -> None:
    for args in (
        ["network", "create", NET, "--name", "Riverside", "--currency", "USD"],
        ["member", "add", NET, "lee-law", "--name", "Lee Law", "--category", "lawyer"],
        ["member", "add", NET, "park-cpa", "--name", "Park CPA", "--category", "accountant"],
        ["referral", "send", NET, "r-1", "--from", "lee-law", "--to", "park-cpa",
         "--customer", NAME, "--contact", CONTACT],
        ["referral", "send", NET, "r-2", "--from", "park-cpa", "--to", "lee-law",
         "--customer", "Sam Ortiz", "--subject", "crm-7"],
    ):  # fmt: skip
        result = run(*args)
        assert result.exit_code == 0, result.output
    assert "customer=Sam Ortiz" in result.output  # echoes what was sent, not the box

    listed = [
        json.loads(line) for line in run("subjects", "--network", NET, "--json").stdout.splitlines()
    ]
    assert [(s["customer"], s["referrals"], s["erased"]) for s in listed] == [
        (NAME, ["r-1"], False),
        ("Sam Ortiz", ["r-2"], False),
    ]
    subject = listed[0]["subject"]
    one = run("subjects", "--network", NET, "--referral", "r-1", "--json").stdout
    assert json.loads(one)["subject"] == subject
    by_name = run("subjects", "--network", NET, "--customer", "dana whitfield", "--json").stdout
    assert json.loads(by_name)["subject"] == subject
    shown = run("events", "--network", NET, "--type", "referral.sent", "--json").stdout
    assert NAME in shown and CONTACT in shown and '"box"' not in shown
    assert NAME in run("trail", "--network", NET, "--entity", "referral:r-1").stdout

    refused = run("erase-subject", "--network", NET, "--subject", "s-nobody", "--reason", "x")
    assert refused.exit_code == 1
    assert "subject" in refused.output and "s-nobody" in refused.output

    erased = run("erase-subject", "--network", NET, "--subject", subject, "--reason", "asked")
    assert erased.exit_code == 0, erased.output
    again = run("erase-subject", "--network", NET, "--subject", subject, "--reason", "asked")
    assert again.exit_code == 1 and "already erased" in again.output

    for args in (
        ("events", "--network", NET, "--json"),
        ("trail", "--network", NET, "--entity", "referral:r-1", "--json"),
        ("trail", "--network", NET, "--entity", "member:lee-law"),
        ("subjects", "--network", NET, "--json"),
        ("export", "--network", NET),
    ):
        output = run(*args).stdout
        assert NAME not in output and CONTACT not in output, args
    trail_json = run("trail", "--network", NET, "--entity", "referral:r-1", "--json").stdout
    assert json.loads(trail_json.splitlines()[0])["command"]["customer"] == ERASED
    assert run("projections", "rebuild").exit_code == 0
    assert holding(database_url, NAME) == []
    assert "Sam Ortiz" in run("trail", "--network", NET, "--entity", "referral:r-2").stdout


# ------------------------------------------------------------ web and API


@pytest.fixture
def world(database_url: str) -> World:
    return build_world(database_url)


def card(html: str, referral: str) -> str:
    start = html.index(f'id="card-{referral}"')
    return html[start : html.index("</li>", start)]


def test_a_coordinator_erases_a_customer_from_the_pipeline(world: World, tmp_path: Path) -> None:
    pipeline = "/n/riverside/referrals"
    erase = f"{pipeline}/r-1/erase"
    with browser(world, tmp_path, world.auditor) as web:
        assert "Erase customer data" not in card(web.get(pipeline).text, "r-1")
        assert web.post(erase, {"reason": "asked"}).status_code == 403
    with browser(world, tmp_path, world.member) as web:
        assert "Erase customer data" not in card(web.get(pipeline).text, "r-1")
        assert web.post(erase, {"reason": "asked"}).status_code == 403
    with browser(world, tmp_path, world.outsider) as web:
        assert web.post(erase, {"reason": "asked"}).status_code == 404
    before = len(events(world))
    with browser(world, tmp_path, world.coordinator) as web:
        html = card(web.get(pipeline).text, "r-1")
        assert NAME in html and "Erase customer data" in html
        # Without the CSRF token: refused, nothing written.
        assert web.client.post(erase, data={"reason": "asked"}).status_code == 403
        refused = web.htmx(erase, {"reason": ""})
        assert refused.status_code == 422
        assert "reason" in card(refused.text, "r-1")
        assert len(events(world)) == before

        done = web.post(erase, {"reason": "The customer asked"}, follow_redirects=False)
        assert done.status_code == 303
        html = web.get(pipeline).text
        assert NAME not in html and ERASED in card(html, "r-1")
        assert "Erase customer data" not in card(html, "r-1")
        assert "Harbor Customer" not in html
        trail_page = web.get("/n/riverside/trail?entity=referral:r-1").text
        assert NAME not in trail_page and ERASED in trail_page
    erased = events(world, "subject.erased")
    assert len(erased) == 1 and erased[0].actor == world.coordinator
    assert erased[0].command.reason == "The customer asked"


def test_the_api_shows_the_customer_then_erased(world: World, tmp_path: Path) -> None:
    with Accounts(Database.parse(world.database_url)) as accounts:
        user = accounts.by_email(world.coordinator)
        assert user is not None
        token = accounts.create_token(user.id, "script")[0]
    app = create_app(world.database_url, secret="test-secret", sessions=tmp_path / "s", inline=True)
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        base = "/api/v1/networks/riverside/referrals"
        sent = client.post(base, json={"from_member": "ann-law", "to_member": "bob-tax",
                                       "customer": "Eve Stone", "customer_contact": "+1 555 0101",
                                       "command_id": "crm-eve"}, headers=headers)  # fmt: skip
        assert sent.status_code == 201, sent.text
        command = sent.json()["event"]["command"]
        assert command["customer"] == "Eve Stone" and command["customer_contact"] == "+1 555 0101"
        slug = command["referral"]
        found = client.get(f"{base}/{slug}", headers=headers).json()
        assert (found["customer"], found["customer_contact"]) == ("Eve Stone", "+1 555 0101")
        assert found["events"][0]["command"]["customer"] == "Eve Stone"

        with Store(Database.parse(world.database_url)) as store:  # another process erases
            erase_subject(Ledger(store), "riverside", found["subject"], actor="dpo", reason="x")

        found = client.get(f"{base}/{slug}", headers=headers).json()
        assert (found["customer"], found["customer_contact"]) == (ERASED, ERASED)
        assert found["events"][0]["command"]["customer"] == ERASED
        listed = client.get(base, headers=headers).json()["items"]
        assert {i["referral"]: i["customer"] for i in listed} == {
            "r-1": NAME,
            slug: ERASED,
        }
        # A retry of the same write answers with the event as recorded: erased now.
        repeat = client.post(base, json={"from_member": "ann-law", "to_member": "bob-tax",
                                         "customer": "Eve Stone", "customer_contact": "+1 555 0101",
                                         "command_id": "crm-eve"}, headers=headers)  # fmt: skip
        assert repeat.status_code == 200
        assert repeat.json()["event"]["command"]["customer"] == ERASED
    assert holding(world.database_url, "Eve Stone") == []


def test_pseudonyms_are_keyed_and_normalized() -> None:
    secret, other = b"\x01" * 32, b"\x02" * 32
    assert pseudonym(secret, "Dana Whitfield") == pseudonym(secret, "  dana\tWHITFIELD ")
    assert pseudonym(secret, "Dana Whitfield") != pseudonym(other, "Dana Whitfield")
    assert pseudonym(secret, "Dana Whitfield") != pseudonym(secret, "Dana Whitfeld")


def test_a_vault_on_another_connection_never_serves_a_destroyed_key(ledger: Ledger) -> None:
    network(ledger)
    dana = send(ledger, "r-1", 10)
    assert isinstance(dana.customer, Sealed)
    other = Vault(ledger.store.database)  # another process's vault
    assert other.open(NET, "customer", dana.customer) == NAME
    erase_subject(ledger, NET, dana.subject or "", actor="dpo", reason="asked")
    assert other.open(NET, "customer", dana.customer) is None


def test_a_subject_that_is_not_a_slug_is_refused_naming_it(ledger: Ledger) -> None:
    network(ledger)
    built = msgspec.structs.replace(
        c("referral.sent", 10, referral="r-1", from_member="lee-law", to_member="park-cpa",
          customer=NAME),
        subject="not a slug",
    )  # fmt: skip
    with pytest.raises(DomainError) as refused:
        ledger.execute(built)
    assert refused.value.field == "subject"
    assert ledger.store.last_position() == 4
