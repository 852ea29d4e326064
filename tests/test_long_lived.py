"""A long-lived process (the web app, a worker) reads the history once, then only what is new.

Deciding a referral asks the exclusivity rule for the member's agreements,
and bringing the views up to date after it needs every network's settings.
Both used to read the whole log's matching events again for every command,
so a command cost more the longer the history. These tests prove that a
process reads them once and afterwards only the log's new positions, and
that what it decides and projects is still what a fresh reader finds.
"""

from __future__ import annotations

from typing import Any

import pytest

from partnerledger import Ledger, Store
from partnerledger import projection as projection_module
from partnerledger.commands import convert_command, encode_command
from partnerledger.demo import generate
from partnerledger.jsonl import import_lines
from partnerledger.log_index import TOPICS
from partnerledger.projection import NETWORK_TOPICS, Projector
from partnerledger.sql import SqlBackend

LINES = [encode_command(c) for c in generate(seed=3, members=8, months=6)]


class _Reads:
    """Records the ``after`` of every read of the log for the given topics."""

    def __init__(self, store: Store, topics: tuple[str, ...], monkeypatch: pytest.MonkeyPatch):
        self.after: list[int] = []
        original = store.read

        def read(*args: Any, **kwargs: Any) -> Any:
            if tuple(kwargs.get("topics") or ()) == topics:
                self.after.append(int(kwargs.get("after", 0)))
            return original(*args, **kwargs)

        monkeypatch.setattr(store, "read", read)


def _import(store: Store, lines: list[bytes]) -> None:
    report = import_lines(Ledger(store), lines)
    assert report.rejected == [], report.rejected[:3]


def _agreement(network: str, slug: str, parties: list[str]) -> Any:
    return convert_command(
        {
            "type": "agreement.proposed",
            "network": network,
            "agreement": slug,
            "kind": "co-marketing",
            "parties": parties,
            "terms": {"scope": "Joint marketing"},
            "actor": "coordinator@example.com",
            "occurred_at": "2025-07-01T09:00:00+00:00",
        }
    )


def test_a_ledger_reads_its_index_once_then_only_the_new_positions(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _import(store, LINES)
    first = store.last_position()
    reads = _Reads(store, TOPICS, monkeypatch)
    ledger = Ledger(store)
    members = sorted({p for c in generate(seed=3, members=8, months=6) for p in _parties(c)})
    a, b = members[0], members[1]
    before = ledger.unit_of_work().agreements_of("riverside", a)
    assert reads.after == [0]  # the history, once

    other = Ledger(store)  # another process writes an agreement
    other.execute(_agreement("riverside", "long-lived-1", [a, b]))
    seen = ledger.unit_of_work().agreements_of("riverside", a)
    # then only what came after the last of its events read before
    assert len(reads.after) == 2 and 0 < reads.after[1] <= first
    assert [x.slug for x in seen] == [*(x.slug for x in before), "long-lived-1"]
    # What a fresh reader of the whole log finds.
    fresh = Ledger(store).unit_of_work().agreements_of("riverside", a)
    assert [x.slug for x in fresh] == [x.slug for x in seen]


def test_a_unit_of_work_reads_the_index_as_of_its_first_look(store: Store) -> None:
    _import(store, LINES)
    ledger = Ledger(store)
    members = sorted({p for c in generate(seed=3, members=8, months=6) for p in _parties(c)})
    a, b = members[0], members[1]
    work = ledger.unit_of_work()
    before = [x.slug for x in work.agreements_of("riverside", a)]
    ledger.execute(_agreement("riverside", "long-lived-2", [a, b]))
    assert [x.slug for x in work.agreements_of("riverside", a)] == before
    # Its own decisions count at once, before any commit.
    work.decide(_agreement("riverside", "long-lived-3", [a, b]))
    assert [x.slug for x in work.agreements_of("riverside", a)] == [*before, "long-lived-3"]
    assert [x.slug for x in ledger.unit_of_work().agreements_of("riverside", a)] == [
        *before,
        "long-lived-2",
    ]


def test_the_views_keep_the_networks_between_catch_ups_and_equal_a_rebuild(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = projection_module.networks_until

    def counted(store: Store, position: int) -> Any:
        calls.append(position)
        return original(store, position)

    monkeypatch.setattr(projection_module, "networks_until", counted)
    _import(store, LINES[:3])  # the network, before its plugins are enabled
    with Projector(store) as kept, Projector(store) as other:
        kept.catch_up()
        _import(store, LINES[3:200])  # plugins enabled, members, referrals
        other.catch_up()  # another process moves the views on
        _import(store, LINES[200:])
        before = list(calls)
        reads = _Reads(store, tuple(NETWORK_TOPICS), monkeypatch)
        assert kept.catch_up() > 0
        # The first projector did not read the whole log's network events again:
        # only those after the position its last catch-up reached.
        assert calls == before
        assert reads.after and 0 not in reads.after
        kept_rows = _views(kept)
        kept.rebuild()
        assert _views(kept) == kept_rows


def _views(projector: Projector) -> dict[str, list[tuple[Any, ...]]]:
    db: SqlBackend = projector.db
    found = {}
    for view in projector.projections.values():
        if view.evidence:
            continue
        for table in view.tables:
            _, rows = db.execute(f"SELECT * FROM {db.table(table)}")
            found[table] = sorted(tuple(str(v) for v in row) for row in rows)
    return found


def _parties(command: Any) -> list[str]:
    return list(getattr(command, "parties", None) or ())
