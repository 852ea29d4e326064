"""Our batch recorders pass the ``eventsourcing`` recorder conformance tests."""

from __future__ import annotations

import uuid
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from eventsourcing.tests.persistence import ApplicationRecorderTestCase

from partnerledger import Store
from partnerledger.recorders import BatchPostgresRecorder, BatchSQLiteRecorder
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


class TestBatchPostgresRecorder(ApplicationRecorderTestCase[BatchPostgresRecorder]):
    """The library's own application recorder tests, on the PostgreSQL server."""

    url = ""

    @pytest.fixture(autouse=True)
    def _schema(self, postgres_url: str) -> None:
        type(self).url = postgres_url  # a fresh schema per test (tests/conftest.py)

    def create_recorder(self) -> BatchPostgresRecorder:
        database = Database.parse(self.url)
        self.datastore = PostgresDatastore(
            dbname=database.dbname,
            host=database.host,
            port=database.port,
            user=database.user,
            password=database.password,
            schema=database.schema,
        )
        recorder = BatchPostgresRecorder(self.datastore)
        recorder.create_table()
        return recorder

    def tearDown(self) -> None:
        if getattr(self, "datastore", None) is not None:
            self.datastore.close()
        super().tearDown()

    def test_performance(self) -> None:  # a timing print, not a check: see benchmarks/
        pass

    def test_concurrent_throughput(self) -> None:  # ditto
        pass


def test_the_store_uses_the_batch_recorder_on_postgresql(postgres_url: str) -> None:
    with Store(Database.parse(postgres_url)) as store:
        assert isinstance(store._app.recorder, BatchPostgresRecorder)


def test_select_streams_reads_many_aggregates_in_version_order(database_url: str) -> None:
    with Store(Database.parse(database_url)) as store:
        recorder = store._app.recorder
        assert isinstance(recorder, BatchSQLiteRecorder | BatchPostgresRecorder)
        ids = [uuid.uuid4() for _ in range(3)]
        rows = [
            StoredEvent(originator_id=i, originator_version=v, topic="t", state=f"{n}".encode())
            for v in (1, 2)
            for n, i in enumerate(ids[:2])
        ]
        positions = recorder.insert_events(rows)
        assert positions == [1, 2, 3, 4]
        found = recorder.select_streams([*ids, *(uuid.uuid4() for _ in range(600))])
        by_id = {
            i: [(r.originator_version, r.state) for r in found if r.originator_id == i] for i in ids
        }
        assert by_id[ids[0]] == [(1, b"0"), (2, b"0")]
        assert by_id[ids[1]] == [(1, b"1"), (2, b"1")]
        assert by_id[ids[2]] == []
