"""The shortcuts of the import path give what the general code gives.

Command identities without personal fields skip the placeholder step; the
spool makes one UUID per aggregate and batch; validation hooks are called
without a generator (and not at all when no plugin is enabled); the unit of
work decides commands without personal fields without preparing them.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from partnerledger import Ledger, Store
from partnerledger import spool as spool_module
from partnerledger.commands import (
    PERSONAL_PLACEHOLDER,
    Command,
    decode_command,
    derived_command_id,
    encode_command,
    identity_form,
)
from partnerledger.demo import generate
from partnerledger.events import Event, encode_event
from partnerledger.hookspecs import hookimpl
from partnerledger.identity import aggregate_id
from partnerledger.pluginmanager import load_rules
from partnerledger.plugins import BUILTIN_PLUGINS
from partnerledger.rules import Veto
from partnerledger.spool import Spool


def commands() -> list[Command]:
    """A small demo network's commands, as an import decodes them (with and without customers)."""
    return [
        decode_command(encode_command(c)) for c in generate(seed=3, members=6, months=2, networks=1)
    ]


def test_command_ids_are_the_sorted_digest_of_the_identity_form() -> None:
    found = commands()
    assert any(c.personal for c in found) and any(not c.personal for c in found)
    for command in found:
        changes = {
            name: PERSONAL_PLACEHOLDER
            for name in type(command).personal
            if getattr(command, name) is not None
        }
        general = msgspec.structs.replace(command, **changes)
        assert identity_form(command) == general
        canonical = msgspec.json.encode(general, order="sorted")
        expected = command.command_id or "sha256:" + hashlib.sha256(canonical).hexdigest()[:32]
        assert derived_command_id(command) == expected


def test_spool_batches_give_back_each_event_as_stored_across_batch_boundaries() -> None:
    when = datetime(2025, 1, 1, tzinfo=UTC)
    events = [
        Event(
            originator_id=aggregate_id("member", "n", f"m{i % 3}"),
            originator_version=i // 3 + 1,
            recorded_at=when,
            command_id=f"c{i}",
            command=command,  # type: ignore[arg-type]
        )
        for i, command in enumerate(commands()[:10])
    ]
    spool = Spool()
    try:
        for event in events:
            spool.add(event)
        rows = [row for batch in spool.batches(4) for row, _ in batch]
    finally:
        spool.close()
    assert [(r.originator_id, r.originator_version, r.topic, r.state) for r in rows] == [
        (e.originator_id, e.originator_version, e.type, encode_event(e)) for e in events
    ]


class Recording:
    """A validation plugin that records its calls and vetoes one member."""

    NAME = "recording"
    VERSION = "1.0"

    def __init__(self) -> None:
        self.calls: list[Any] = []

    @hookimpl
    def partnerledger_validate(self, command: Command, settings: Any) -> Veto | None:
        self.calls.append((command, settings))
        if getattr(command, "to_member", None) == "bloom":
            return Veto(field="to_member", reason="no")
        return None


def test_validate_calls_the_enabled_plugins_as_the_generic_calls_do() -> None:
    plugin = Recording()
    rules = load_rules(builtins=(*BUILTIN_PLUGINS, plugin), env={"PARTNERLEDGER_PLUGINS": ""})
    command = next(c for c in commands() if getattr(c, "to_member", None))
    bloom = msgspec.structs.replace(command, to_member="bloom")  # type: ignore[type-var]
    hook = "partnerledger_validate"
    for enabled in ({}, {"tiers": None}, {"recording": None}, {"recording": None, "x": 1}):
        expected = [name for name, _, _ in rules._calls(hook, enabled)]
        plugin.calls.clear()
        assert rules.validate(command, None, enabled) == []  # type: ignore[arg-type]
        assert len(plugin.calls) == expected.count("recording")
        vetoes = rules.validate(bloom, None, enabled)  # type: ignore[arg-type]
        assert [d.plugin for d in vetoes] == (["recording"] if "recording" in expected else [])


def test_commands_without_personal_fields_are_decided_as_prepared(store: Store) -> None:
    ledger = Ledger(store)
    work = ledger.unit_of_work()
    for command in commands():
        event = work.decide(command, checked=True)
        assert event is not None
        if not command.personal:
            assert ledger.prepare(command) is command
            assert event.command is command
        else:
            assert event.command == ledger.prepare(command)


@pytest.mark.parametrize("buffer", [1, 700, spool_module.BUFFER])
def test_spool_reads_back_what_it_gathered_between_adds(
    buffer: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records gathered and not written yet are read back by stream() and batches()."""
    monkeypatch.setattr(spool_module, "BUFFER", buffer)
    when = datetime(2025, 1, 1, tzinfo=UTC)
    spool = Spool()
    last: dict[Any, int] = {}
    added: list[Event] = []
    try:
        for i, command in enumerate(commands()[:40]):
            aggregate = aggregate_id("member", "n", f"m{i % 4}")
            event = Event(
                originator_id=aggregate,
                originator_version=i // 4 + 1,
                recorded_at=when,
                command_id=f"c{i}",
                command=command,  # type: ignore[arg-type]
            )
            last[aggregate] = spool.add(event, i % 3, last.get(aggregate, -1))
            added.append(event)
            if i % 7 == 0:  # read between adds: the next add goes on at the end
                assert spool.stream(last[aggregate]) == [
                    e for e in added if e.originator_id == aggregate
                ]
        for aggregate, offset in last.items():
            assert spool.stream(offset) == [e for e in added if e.originator_id == aggregate]
        read = [(row.state, flags) for batch in spool.batches(6) for row, flags in batch]
    finally:
        spool.close()
    assert read == [(encode_event(e), i % 3) for i, e in enumerate(added)]
