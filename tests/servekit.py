"""A real ``partnerledger serve`` on a loopback port, clients in threads, CLI processes at once.

Shared by ``test_concurrency.py`` and ``test_soak.py``: the server runs as a
subprocess in its own session (uvicorn's supervisor and its worker
processes), stopped with SIGINT and, if it does not stop, killed as a group.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from partnerledger import Database
from partnerledger.accounts import Accounts

CLI = str(Path(sys.executable).with_name("partnerledger"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A running ``partnerledger serve``."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def worker_pids(self) -> list[int]:
        """The processes that answer requests: uvicorn's workers, or the server itself."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        found = [int(p) for p in children.read_text().split()] if children.exists() else []
        # With --workers N uvicorn's supervisor also starts a resource tracker: workers only.
        workers = [p for p in found if "multiprocessing.resource_tracker" not in _cmdline(p)]
        return workers or [self.process.pid]

    def errors(self) -> str:
        return self.log.read_text(errors="replace")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def rss_kib(pid: int) -> int:
    """The resident set size of a process (VmRSS, KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@contextmanager
def serving(
    database_url: str, scratch: Path, *, workers: int = 2, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """``partnerledger serve`` over the database until the block ends."""
    port = free_port()
    log = scratch / f"serve-{port}.log"
    environment = {
        **os.environ,
        "PARTNERLEDGER_SECRET": "concurrency-test-secret",
        "PARTNERLEDGER_SESSIONS": str(scratch / "sessions"),
        **(env or {}),
    }
    args = [CLI, "--database", database_url, "serve", "--port", str(port),
            "--workers", str(workers), "--log-level", "warning"]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(
            args, stdout=output, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"serve exited: {server.errors()}"
            with suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"serve did not answer: {server.errors()}"
            time.sleep(0.1)
        if workers > 1:  # every worker up, not only the first
            while len(server.worker_pids()) < workers:
                assert time.monotonic() < deadline, "the workers did not start"
                time.sleep(0.1)
        yield server
    finally:
        stop(process)


def stop(process: subprocess.Popen[Any]) -> None:
    """SIGINT (uvicorn stops its workers), then SIGKILL to the whole group."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def tokens(database_url: str, emails: dict[str, str]) -> dict[str, str]:
    """An API token for each named user: {name: token}."""
    found = {}
    with Accounts(Database.parse(database_url)) as accounts:
        for name, email in emails.items():
            user = accounts.by_email(email)
            assert user is not None, email
            found[name] = accounts.create_token(user.id, f"{name} test")[0]
    return found


def in_threads(count: int, work: Callable[[int], Any], timeout: float = 120) -> list[Any]:
    """``work(i)`` in ``count`` threads released together: each result (or exception)."""
    barrier = threading.Barrier(count, timeout=60)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as error:  # the test looks at each one
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a client hung"
    return results


# A CLI process that imports everything first, waits for the go file, then runs
# the real command line: the processes start their commands within milliseconds.
_LAUNCHER = textwrap.dedent(
    """
    import os, sys, time
    from partnerledger.cli.main import cli
    go = sys.argv[1]
    open(f"{go}.ready.{os.getpid()}", "w").close()
    while not os.path.exists(go):
        time.sleep(0.001)
    cli.main(args=sys.argv[2:], prog_name="partnerledger")
    """
)


@dataclass
class Finished:
    """What one CLI process did."""

    returncode: int
    stdout: str
    stderr: str


def cli_at_once(commands: Sequence[Sequence[str]], scratch: Path) -> list[Finished]:
    """Run several ``partnerledger`` command lines as processes released at the same moment."""
    go = scratch / f"go-{time.monotonic_ns()}"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(go), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(scratch.glob(f"{go.name}.ready.*"))) < len(processes):
            assert all(p.poll() is None for p in processes), "a CLI process died while starting"
            assert time.monotonic() < deadline, "the CLI processes did not start"
            time.sleep(0.01)
        go.touch()
        done = []
        for process in processes:
            out, err = process.communicate(timeout=120)
            done.append(Finished(process.returncode, out, err))
        return done
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
