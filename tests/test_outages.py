"""The database going away: PostgreSQL restarting under the web app and a worker; SQLite
locked or full.

The PostgreSQL server is shared with other tests and must never be
restarted, so its outage is simulated by a loopback TCP proxy in front of
it: cutting the proxy resets every connection and refuses new ones (what
clients see while the server restarts); restoring it lets them in again.
The app and the worker reach the database through the proxy only; the test
itself writes and checks through the server's own port.
"""

from __future__ import annotations

import resource
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from litestar.testing import TestClient

from partnerledger import Database, Store
from partnerledger.accounts import Accounts
from partnerledger.projection import Projector, follower_key
from partnerledger.web.app import create_app
from test_projections import (
    CLI,
    assert_same_views,
    demo_lines,
    dumps,
    following,
    poll_until,
    read_line,
    rebuilt_views,
    running,
    write_history,
)
from webkit import Browser, World, build_world, events

TIMEOUT = "1"  # PARTNERLEDGER_DB_TIMEOUT: seconds to wait for the database in these tests


class Proxy:
    """A TCP proxy on 127.0.0.1 to a target port that can be cut (all connections reset,
    new ones refused) and restored on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.restore()

    def url(self, url: str) -> str:
        """``url`` with its port replaced by the proxy's."""
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"{parts.hostname}:{self.port}"
        return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) > 1 else host))

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:  # new connections: refused
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:  # open connections: closed on both sides
            # shutdown, not just close: close() leaves a socket that another thread is
            # blocked reading open, and nobody would notice.
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@contextmanager
def proxied(postgres_url: str) -> Iterator[tuple[Proxy, str]]:
    parts = urlsplit(postgres_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    try:
        yield proxy, proxy.url(postgres_url)
    finally:
        proxy.cut()


def token_of(world: World, email: str) -> str:
    with Accounts(Database.parse(world.database_url)) as accounts:
        user = accounts.by_email(email)
        assert user is not None
        return accounts.create_token(user.id, "outage script")[0]


def invite(member: str) -> dict[str, str]:
    return {"member": member, "name": member.title(), "category": "florist"}


def assert_unavailable_page(response: Any, *, cause: str = "") -> None:
    """503 with the error page: a clear message, a Retry-After, no stack trace, no address."""
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"].startswith("text/html")
    body = response.text
    assert "Service unavailable" in body
    assert "the database is not available right now" in body
    assert "nothing was written" in body
    assert cause in body
    assert "Traceback" not in body
    assert "127.0.0.1" not in body


def assert_unavailable_problem(response: Any, *, cause: str = "") -> None:
    """503 as problem+json for the API."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == "5"
    problem = response.json()
    assert problem["status"] == 503
    assert problem["title"] == "Service unavailable"
    assert "the database is not available right now" in problem["detail"]
    assert cause in problem["detail"]
    assert problem["errors"][0]["code"] == "store_unavailable"
    assert "Traceback" not in response.text
    assert "127.0.0.1" not in response.text


def members_recorded(world: World) -> list[str]:
    return [e.command.member for e in events(world) if e.type == "member.invited"]


# ------------------------------------------------------------ PostgreSQL


def test_the_web_app_answers_503_while_postgresql_is_away_and_recovers_by_itself(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARTNERLEDGER_DB_TIMEOUT", TIMEOUT)
    world = build_world(postgres_url)
    api = {"Authorization": f"Bearer {token_of(world, world.coordinator)}"}
    with proxied(postgres_url) as (proxy, through):
        app = create_app(through, secret="test-secret", sessions=tmp_path / "sessions")
        with TestClient(app) as client:
            web = Browser(client)
            web.sign_in(world.coordinator)
            assert web.get("/n/riverside/members").status_code == 200
            before = web.post("/n/riverside/members", invite("before-co"), follow_redirects=False)
            assert before.status_code == 303
            assert client.get("/readyz").status_code == 200

            proxy.cut()  # the server "restarts": connections reset, new ones refused
            took = []
            for _ in range(2):  # the first request finds the dead connections, the next none
                started = time.monotonic()
                assert_unavailable_page(web.get("/n/riverside/members"))
                took.append(time.monotonic() - started)
            assert max(took) < 10, took  # fails fast: no minute of retries
            assert_unavailable_problem(
                client.get("/api/v1/networks/riverside/members", headers=api)
            )
            # Commands sent now fail and are not written.
            assert_unavailable_page(web.post("/n/riverside/members", invite("during-form")))
            during = client.post("/api/v1/networks/riverside/members",
                                 json=invite("during-api"), headers=api)  # fmt: skip
            assert_unavailable_problem(during)
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.headers["content-type"].startswith("application/problem+json")
            assert client.get("/healthz").status_code == 200  # the process itself answers

            proxy.restore()  # the server is back: the same app recovers, no restart
            restored = time.monotonic()
            poll_until(lambda: client.get("/readyz").status_code == 200, timeout=30, every=0.2)
            assert time.monotonic() - restored < 15  # no long back-off (RECONNECT_WINDOW)
            for _ in range(3):
                assert web.get("/n/riverside/members").status_code == 200
                assert client.get("/api/v1/networks/riverside/members", headers=api).is_success
            after = web.post("/n/riverside/members", invite("after-co"), follow_redirects=False)
            assert after.status_code == 303
            by_api = client.post("/api/v1/networks/riverside/members",
                                 json=invite("after-api"), headers=api)  # fmt: skip
            assert by_api.status_code == 201, by_api.text
            assert "after-api" in web.get("/n/riverside/members").text
    # What was sent before and after is there once; nothing of what was sent during it.
    assert members_recorded(world) == ["before-co", "after-co", "after-api"]


def test_a_worker_rides_out_a_postgresql_outage_and_the_views_equal_a_rebuild(
    postgres_url: str,
) -> None:
    lines = demo_lines(11, 6, 3)
    half = len(lines) // 2
    env = {"PARTNERLEDGER_DB_TIMEOUT": TIMEOUT, "PATH": "/usr/bin:/bin"}
    with (
        proxied(postgres_url) as (proxy, through),
        Store(Database.parse(postgres_url)) as store,
        Projector(store) as projector,
    ):
        worker = [CLI, "--database", through, "worker", "--poll", "0.05"]
        with running(worker, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env) as first:
            following(first)
            last = write_history(store, lines[:half])
            poll_until(lambda: min(projector.positions().values()) == last)

            proxy.cut()
            said = read_line(first, timeout=30, stderr=True)
            assert said.startswith("Database unavailable (PostgreSQL postgres@127.0.0.1:"), said
            assert "trying again in" in said
            time.sleep(1.5)  # a few tries while it is away
            assert first.poll() is None  # it did not die

            proxy.restore()
            last = write_history(store, lines[half:])  # written after the outage
            poll_until(lambda: min(projector.positions().values()) == last, timeout=60)
            assert first.poll() is None
            # It took the follower lock again on its new connection: a second worker stands by.
            key = follower_key(Database.parse(postgres_url).schema)
            _, held = projector.db.execute(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = ? AND objid = ? AND objsubid = 2",
                (key[0], key[1] % 2**32),
            )
            assert held[0][0] == 1
            second_cmd = [CLI, "--database", postgres_url, "worker", "--poll", "0.05"]
            with running(second_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=env) as second:  # fmt: skip
                following(second)
                assert "standing by" in read_line(second, stderr=True)
            first.send_signal(2)  # Ctrl-C
            _, errors = first.communicate(timeout=30)
            assert first.returncode == 0, errors
            assert "Database back: following the log again" in errors
            assert "Traceback" not in errors
        # Every command once, in the log and in the views (nothing counted twice).
        assert sum(1 for _ in store.read()) == store.last_position()
        assert set(projector.positions().values()) == {store.last_position()}
        assert_same_views(dumps(projector), rebuilt_views(store))


# ------------------------------------------------------------ SQLite


@contextmanager
def locked(path: str) -> Iterator[None]:
    """Another connection holds the SQLite file's write lock."""
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def cli(database: str, *args: str, limit: int | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess; ``limit``: the largest file offset it may write (RLIMIT_FSIZE)."""

    def no_room() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [CLI, "--database", database, *args],
        capture_output=True, text=True, timeout=60, preexec_fn=no_room,
        env={"PARTNERLEDGER_DB_TIMEOUT": TIMEOUT, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def snapshot(path: str) -> tuple[int, Any]:
    """The log's length and every view's rows."""
    with Store(Database.parse(path)) as store, Projector(store) as projector:
        return store.last_position(), dumps(projector)


def test_a_locked_sqlite_file_gives_a_clear_error_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARTNERLEDGER_DB_TIMEOUT", TIMEOUT)
    path = str(tmp_path / "ledger.db")
    world = build_world(path)
    api = {"Authorization": f"Bearer {token_of(world, world.coordinator)}"}
    add = ("member", "add", "riverside", "cli-co", "--name", "Cli Co", "--category", "x")
    app = create_app(path, secret="test-secret", sessions=tmp_path / "sessions")
    with TestClient(app) as client:
        web = Browser(client)
        web.sign_in(world.coordinator)
        assert web.get("/n/riverside/members").status_code == 200
        before = snapshot(path)
        with locked(path):
            started = time.monotonic()
            refused = cli(path, *add)
            assert time.monotonic() - started < 30
            assert refused.returncode == 1
            assert f"Error: database: SQLite file {path}: database is locked" in refused.stderr
            assert "Traceback" not in refused.stderr
            cause = "database is locked"
            assert_unavailable_page(web.post("/n/riverside/members", invite("web-co")), cause=cause)
            assert_unavailable_problem(
                client.post("/api/v1/networks/riverside/members", json=invite("api-co"),
                            headers=api), cause=cause,
            )  # fmt: skip
        assert snapshot(path) == before  # nothing written, the views unchanged
        # Released: the same app and the CLI write again.
        assert web.post(
            "/n/riverside/members", invite("web-co"), follow_redirects=False
        ).is_redirect
        assert cli(path, *add).returncode == 0
    assert members_recorded(world) == ["web-co"]
    assert [e.command.member for e in events(world, "member.joined")][-1] == "cli-co"


def test_a_full_disk_gives_a_clear_error_naming_the_database_and_writes_nothing(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "ledger.db")
    assert (
        cli(path, "network", "create", "riverside", "--name", "R", "--currency", "USD").returncode
        == 0
    )
    add = ("member", "add", "riverside", "full-co", "--name", "Full Co", "--category", "x")
    before = snapshot(path)
    reader = sqlite3.connect(path)  # keeps the WAL and its index open, as a web process does
    try:
        reader.execute("SELECT COUNT(*) FROM stored_events").fetchone()
        refused = cli(path, *add, limit=0)  # no byte more may be written
        assert refused.returncode == 1, refused.stdout
        assert f"Error: database: SQLite file {path}: disk I/O error" in refused.stderr
        assert "is the disk full?" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert snapshot(path) == before  # the log and the views as they were
        done = cli(path, *add)  # space again: the next command works
        assert done.returncode == 0, done.stderr
        assert "Recorded member.joined" in done.stdout
    finally:
        reader.close()
    after = snapshot(path)
    assert after[0] == before[0] + 1
    assert after[1] != before[1]
