"""Fixtures shared by the test suite.

``database`` is parametrized over SQLite (a real file) and PostgreSQL (the
server on 127.0.0.1:5432, a fresh schema per test). Without a reachable
PostgreSQL the PostgreSQL cases skip with the reason, except under
``CI=true``, where they fail: CI must run them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from partnerledger import Database, Ledger, Store
from partnerledger.projection import Projector

PG_URL = os.environ.get("PARTNERLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_unavailable() -> str | None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("select 1")
    except psycopg.Error as error:
        return f"PostgreSQL not reachable at {PG_URL}: {error}".strip()
    return None


_PG_PROBLEM = _postgres_unavailable()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose ``schema`` is fresh, dropped after the test."""
    if _PG_PROBLEM:
        if IN_CI:
            pytest.fail(f"CI=true and {_PG_PROBLEM}")
        pytest.skip(_PG_PROBLEM)
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"create schema {schema}")
    try:
        yield f"{PG_URL}?schema={schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"drop schema {schema} cascade")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL (or path) of an empty event store, on each database."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """An empty event store on each database."""
    with Store(Database.parse(database_url)) as opened:
        yield opened


@pytest.fixture
def ledger(store: Store) -> Ledger:
    """The application service over an empty store, on each database."""
    return Ledger(store)


@pytest.fixture
def projector(store: Store) -> Iterator[Projector]:
    """The views of the store, on each database."""
    with Projector(store) as opened:
        yield opened
