"""A process for tests/test_crashes.py to kill: it stops for good at a chosen point.

    python crash_child.py MARK POINT[@N] -- ARGS...

runs ``partnerledger ARGS...`` (or, with ``ARGS`` = ``--execute URL FILE``,
``Ledger.execute`` of every command of FILE as one batch) and, when it
reaches POINT for the N-th time (default 1), writes POINT to the file MARK and
waits forever, so the test kills it there with SIGKILL. Nothing of the
product is changed: the points wrap library calls in this process only.

Points:

* ``inserted``: a batch of events is inserted, its transaction not committed.
* ``closed``: a period close is committed, its checkpoint not signed yet.
* ``event``: an audit export has written events to its temporary events file.
* ``member``: an audit export has written members of its temporary archive.
* ``renaming``: an audit export's archive is whole, not yet renamed into place.
* ``batch``: a projection batch's rows are written, its transaction not committed
  (batches of 250 events in this process).
"""

from __future__ import annotations

import os
import sys
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> None:
    mark, point, rest = argv[0], argv[1], argv[argv.index("--") + 1 :]
    name, _, count = point.partition("@")
    stop_at = int(count or 1)
    calls = [0]

    def reached() -> None:
        calls[0] += 1
        if calls[0] == stop_at:
            Path(mark).write_text(name)
            threading.Event().wait()

    def after(owner: Any, attribute: str) -> None:
        original: Callable[..., Any] = getattr(owner, attribute)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            reached()
            return result

        setattr(owner, attribute, wrapped)

    def before(owner: Any, attribute: str) -> None:
        original: Callable[..., Any] = getattr(owner, attribute)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            reached()
            return original(*args, **kwargs)

        setattr(owner, attribute, wrapped)

    if name == "inserted":
        from eventsourcing.postgres import PostgresApplicationRecorder

        from partnerledger.recorders import BatchPostgresRecorder, BatchSQLiteRecorder

        after(BatchSQLiteRecorder, "_insert_events")
        after(PostgresApplicationRecorder, "_fetch_ids_after_insert_events")
        after(BatchPostgresRecorder, "_last_id")  # ours: binary COPY, then the last id
    elif name == "closed":
        import partnerledger.closing

        before(partnerledger.closing, "record_checkpoint")
    elif name == "event":
        import partnerledger.audit.bundle

        after(partnerledger.audit.bundle, "canonical_event")
    elif name == "member":
        after(tarfile.TarFile, "addfile")
    elif name == "renaming":
        before(os, "replace")
    elif name == "batch":
        from partnerledger.projection import PROJECTIONS, Projector

        defaults = Projector.__init__.__kwdefaults__
        assert defaults is not None
        defaults["batch"] = 250
        import partnerledger.audit.witness
        import partnerledger.views  # every projection registered

        after(PROJECTIONS[list(PROJECTIONS)[-1]], "flush")  # flushed last in each batch
    else:
        raise SystemExit(f"unknown point {name!r}")

    if rest[0] == "--execute":
        from partnerledger import Database, Ledger, Store
        from partnerledger.commands import decode_command

        url, path = rest[1], rest[2]
        with open(path, "rb") as file:
            commands = [decode_command(line) for line in file if line.strip()]
        with Store(Database.parse(url)) as store:
            Ledger(store).execute(*commands)
        return
    from partnerledger.cli.main import cli

    cli.main(rest, prog_name="partnerledger")


if __name__ == "__main__":
    main(sys.argv[1:])
