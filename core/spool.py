"""Decided events kept on disk, not in memory, until an import writes them.

An import decides every line before it writes anything (all or nothing).
Instead of holding every decided event, the unit of work appends each one,
already in its stored form (``EventMapper``: topic and msgspec JSON), to an
anonymous temporary file (gathered and written :data:`BUFFER` bytes at a
time); writing reads them back a batch at a time. Only
events whose personal fields are still in the clear (they are sealed when
written, docs/privacy.md) and erasures are decoded again.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from .events import Event, decode_event, encode_event

#: The event has personal fields in the clear: sealed before it is written.
SEAL = 1
#: The event is a ``subject.erased``: its key is destroyed once it is written.
ERASURE = 2

# originator id, version, offset of the same aggregate's previous event (-1: none),
# topic length, flags, state length
_HEAD = struct.Struct("<16sqqHBI")


#: Bytes of records :meth:`Spool.add` gathers before it writes them.
BUFFER = 1 << 18
#: Event type → its topic as stored (a few dozen types).
_TOPICS: dict[str, bytes] = {}


class Spool:
    """An append-only file of stored events with their flags; read back in batches."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="partnerledger-import-")  # noqa: SIM115
        self.count = 0
        self._end = 0
        self._reading = False
        #: Parts of records added and not written yet (written BUFFER bytes at a time).
        self._parts: list[bytes] = []
        self._buffered = 0

    def add(self, event: Event, flags: int = 0, previous: int = -1) -> int:
        """Append one event (encoded here); returns where it starts.

        ``previous`` is where the same aggregate's previous event starts, so
        that :meth:`stream` can read an aggregate's events back.
        """
        state = encode_event(event)
        kind = event.command.type
        topic = _TOPICS.get(kind)
        if topic is None:
            topic = _TOPICS[kind] = kind.encode()
        offset = self._end
        head = _HEAD.pack(
            event.originator_id.bytes,
            event.originator_version,
            previous,
            len(topic),
            flags,
            len(state),
        )
        self._parts += (head, topic, state)
        length = len(head) + len(topic) + len(state)
        self._end += length
        self._buffered += length
        if self._buffered >= BUFFER:
            self._write()
        self.count += 1
        return offset

    def _write(self) -> None:
        """Write the records added since the last write, at the end of the file."""
        if not self._parts:
            return
        if self._reading:
            self._file.seek(self._end - self._buffered)
            self._reading = False
        self._file.write(b"".join(self._parts))
        self._parts = []
        self._buffered = 0

    def stream(self, last: int) -> list[Event]:
        """The events of one aggregate, oldest first, given where its last one starts."""
        self._write()
        self._file.flush()
        self._reading = True
        found: list[Event] = []
        offset = last
        while offset >= 0:
            self._file.seek(offset)
            _, _, previous, topic_length, _, state_length = _HEAD.unpack(
                self._file.read(_HEAD.size)
            )
            self._file.seek(topic_length, 1)
            found.append(decode_event(self._file.read(state_length)))
            offset = previous
        found.reverse()
        return found

    def batches(self, size: int) -> Iterator[list[tuple[StoredEvent, int]]]:
        """The events in the order added, ``size`` at a time, with their flags."""
        self._write()
        self._file.flush()
        self._file.seek(0)
        self._reading = True
        read = self._file.read
        batch: list[tuple[StoredEvent, int]] = []
        ids: dict[bytes, UUID] = {}  # one UUID per aggregate and batch, not per event
        for _ in range(self.count):
            raw_id, version, _, topic_length, flags, state_length = _HEAD.unpack(read(_HEAD.size))
            topic = read(topic_length).decode()
            state = read(state_length)
            originator_id = ids.get(raw_id)
            if originator_id is None:
                originator_id = ids[raw_id] = UUID(bytes=raw_id)
            batch.append(
                (
                    StoredEvent(
                        originator_id=originator_id,
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
                ids = {}
        if batch:
            yield batch

    def close(self) -> None:
        """Delete the file."""
        self._file.close()
