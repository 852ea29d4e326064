"""Our batch SQLite recorder passes the ``eventsourcing`` recorder conformance tests."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

from eventsourcing.sqlite import SQLiteDatastore
from eventsourcing.tests.persistence import ApplicationRecorderTestCase

from partnerledger import Store
from partnerledger.recorders import BatchSQLiteRecorder
from partnerledger.store import Database


class TestBatchSQLiteRecorder(ApplicationRecorderTestCase[BatchSQLiteRecorder]):
    """The library's own application recorder tests, on a real SQLite file."""

    def setUp(self) -> None:
        super().setUp()
        self.folder = TemporaryDirectory()
        self.path = str(Path(self.folder.name) / "recorder.db")

    def tearDown(self) -> None:
        self.folder.cleanup()
        super().tearDown()

    def create_recorder(self) -> BatchSQLiteRecorder:
        recorder = BatchSQLiteRecorder(SQLiteDatastore(db_name=self.path))
        recorder.create_table()
        return recorder

    def test_performance(self) -> None:  # a timing print, not a check: see benchmarks/
        pass

    def test_concurrent_throughput(self) -> None:  # ditto
        pass


def test_the_store_uses_the_batch_recorder(tmp_path: Path) -> None:
    with Store(Database.parse(str(tmp_path / "s.db"))) as store:
        assert isinstance(store._app.recorder, BatchSQLiteRecorder)
