"""Decided events kept on disk, not in memory, until an import writes them.

An import decides every line before it writes anything (all or nothing).
Instead of holding every decided event, the unit of work appends each one,
already in its stored form (``EventMapper``: topic and msgspec JSON), to an
anonymous temporary file; writing reads them back a batch at a time. Only
events whose personal fields are still in the clear (they are sealed when
written, docs/privacy.md) and erasures are decoded again.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from .events import Event, encode_event

#: The event has personal fields in the clear: sealed before it is written.
SEAL = 1
#: The event is a ``subject.erased``: its key is destroyed once it is written.
ERASURE = 2

# originator id, version, topic length, flags, state length
_HEAD = struct.Struct("<16sqHBI")


class Spool:
    """An append-only file of stored events with their flags; read back in batches."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="partnerledger-import-")  # noqa: SIM115
        self.count = 0

    def add(self, event: Event, flags: int = 0) -> None:
        """Append one event (encoded here)."""
        state = encode_event(event)
        topic = event.type.encode()
        self._file.write(
            _HEAD.pack(
                event.originator_id.bytes, event.originator_version, len(topic), flags, len(state)
            )
        )
        self._file.write(topic)
        self._file.write(state)
        self.count += 1

    def batches(self, size: int) -> Iterator[list[tuple[StoredEvent, int]]]:
        """The events in the order added, ``size`` at a time, with their flags."""
        self._file.flush()
        self._file.seek(0)
        read = self._file.read
        batch: list[tuple[StoredEvent, int]] = []
        for _ in range(self.count):
            raw_id, version, topic_length, flags, state_length = _HEAD.unpack(read(_HEAD.size))
            topic = read(topic_length).decode()
            state = read(state_length)
            batch.append(
                (
                    StoredEvent(
                        originator_id=UUID(bytes=raw_id),
                        originator_version=version,
                        topic=topic,
                        state=state,
                    ),
                    flags,
                )
            )
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def close(self) -> None:
        """Delete the file."""
        self._file.close()
