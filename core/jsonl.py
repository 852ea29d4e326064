"""Import and export of a network's history as JSON Lines, one command per line.

Import checks the whole file before writing anything: any bad line and
nothing is written, and every bad line is reported (line number, field,
reason). With ``skip_invalid`` the good lines are written and the rejected
ones are returned for the caller to save. Commands already in the store
(same identity) are skipped, so importing the same file twice records it
once.

Export writes the recorded commands in log order, in the same format, so
export → import into an empty store → export gives a byte-identical file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, TypeVar, runtime_checkable

import msgspec

from .commands import Command, decode_command, encode_command, unencodable
from .errors import DomainError, InvalidCommand, from_validation_error
from .ledger import Ledger
from .store import Store

#: Events appended per transaction during an import (each batch holds whole commands).
IMPORT_BATCH = 1000
#: Bad lines kept in the report.
REPORT_LIMIT = 50
#: The longest line an import reads (1 MiB); a longer one is refused, naming it.
MAX_LINE_BYTES = 1024 * 1024
#: How much of an over-long line the report keeps.
_SHOWN_OF_LONG = 1000

Progress = Callable[[int], None]


@dataclass(frozen=True)
class LineError:
    """One refused line."""

    line: int
    field: str
    reason: str
    code: str
    text: str

    def as_dict(self) -> dict[str, object]:
        """Plain data for JSON output and rejected-lines files."""
        return {
            "line": self.line,
            "field": self.field,
            "reason": self.reason,
            "code": self.code,
            "text": self.text,
        }


@dataclass
class ImportReport:
    """What an import found and did."""

    lines: int = 0
    recorded: int = 0
    duplicates: int = 0
    rejected_count: int = 0
    rejected: list[LineError] = field(default_factory=list)  # every rejected line
    written: bool = False

    @property
    def shown(self) -> list[LineError]:
        """The first bad lines, as many as a report shows."""
        return self.rejected[:REPORT_LIMIT]

    def as_dict(self) -> dict[str, object]:
        """Plain data for ``--json``."""
        return {
            "lines": self.lines,
            "recorded": self.recorded,
            "duplicates": self.duplicates,
            "rejected": self.rejected_count,
            "written": self.written,
            "errors": [e.as_dict() for e in self.shown],
        }


@runtime_checkable
class _Readable(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


def bounded_lines(file: _Readable, limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of a binary file, never holding more than ``limit`` bytes of one.

    An over-long line comes out as its first ``limit + 1`` bytes (so it is
    recognised as too long); the rest of it is read and dropped.
    """
    while True:
        line = file.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while True:  # skip to the end of the line, a chunk at a time
                rest = file.readline(limit + 1)
                if not rest or rest.endswith(b"\n"):
                    break
        yield line


def import_lines(
    ledger: Ledger,
    lines: Iterable[bytes] | _Readable,
    *,
    skip_invalid: bool = False,
    on_line: Progress | None = None,
    on_write: Progress | None = None,
    batch_size: int = IMPORT_BATCH,
) -> ImportReport:
    """Validate every line, then (if all are good, or ``skip_invalid``) record them.

    Streams: lines are read, decoded and decided a chunk at a time (the
    streams of a chunk's aggregates read in one query, none at all when the
    store is empty), and the decided events wait in a temporary file, not in
    memory, until every line is checked. ``on_line(n)`` is called as lines
    are checked and ``on_write(n)`` as events are written, with the number
    done since the last call. A file is read a line at a time; a line longer
    than :data:`MAX_LINE_BYTES` is refused (field ``-``) without being read
    into memory whole.
    """
    report = ImportReport()
    work = ledger.unit_of_work()
    work.spool_to_disk()
    work.assume_empty()
    source = bounded_lines(lines) if isinstance(lines, _Readable) else lines
    try:
        for chunk in _chunks(enumerate(source, start=1), CHUNK):
            decoded: list[tuple[int, bytes, Command | LineError]] = []
            for number, raw in chunk:
                if len(raw) > MAX_LINE_BYTES:
                    reason = (
                        f"the line is longer than {MAX_LINE_BYTES:,} bytes (1 MiB), "
                        "the most a line may have"
                    )
                    shown = _text(raw[:_SHOWN_OF_LONG]) + "…"
                    decoded.append((number, b"", LineError(number, "-", reason, "invalid", shown)))
                    continue
                text = raw.strip()
                if not text:
                    decoded.append((number, text, _BLANK))
                    continue
                try:
                    decoded.append((number, text, decode_command(text)))
                except (msgspec.ValidationError, msgspec.DecodeError) as error:
                    problem = _problem(error, text)
                    decoded.append(
                        (
                            number,
                            text,
                            LineError(
                                number, problem.field, problem.reason, problem.code, _text(text)
                            ),
                        )
                    )
            work.prefetch(c for _, _, c in decoded if not isinstance(c, LineError))
            for number, text, command in decoded:
                report.lines = number
                if on_line is not None:
                    on_line(1)
                if isinstance(command, LineError):
                    if command is not _BLANK:
                        report.rejected.append(command)
                    continue
                try:
                    event = work.decide(command, checked=True)
                except DomainError as error:
                    report.rejected.append(
                        LineError(number, error.field, error.reason, error.code, _text(text))
                    )
                    continue
                if event is None:
                    report.duplicates += 1
                else:
                    report.recorded += 1
        work.prefetch(())
        report.rejected_count = len(report.rejected)
        if report.rejected and not skip_invalid:
            report.recorded = 0
            return report
        # Seals personal fields (keys written first), then appends in transactions of batch_size.
        work.commit(batch_size, on_write=on_write)
    finally:
        work.discard()
    report.written = True
    return report


#: Lines decoded and their streams read ahead at a time.
CHUNK = 1000
_BLANK = LineError(0, "", "", "", "")
T = TypeVar("T")


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _problem(error: msgspec.DecodeError, text: bytes) -> InvalidCommand:
    """The field and reason of a line that does not decode.

    JSON that only msgspec refuses (an escaped lone surrogate, ``"\\ud800"``,
    is JSON but no Unicode) is read again to name the field that holds it.
    """
    if not isinstance(error, msgspec.ValidationError):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        found = unencodable(data) if data is not None else None
        if found is not None:
            return InvalidCommand(*found)
    return from_validation_error(error)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def export_lines(
    store: Store,
    out: BinaryIO,
    *,
    network: str | None = None,
    on_event: Progress | None = None,
) -> int:
    """Write the recorded commands in log order, one per line; returns the count."""
    count = 0
    buffer: list[bytes] = []
    for _, event in store.read():
        if on_event is not None:
            on_event(1)
        if network is not None and event.command.network != network:
            continue
        buffer.append(encode_command(event.command))
        count += 1
        if len(buffer) >= IMPORT_BATCH:
            out.write(b"\n".join(buffer) + b"\n")
            buffer.clear()
    if buffer:
        out.write(b"\n".join(buffer) + b"\n")
    return count
