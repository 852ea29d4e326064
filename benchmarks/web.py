"""The served app under measurement: ``partnerledger serve`` (one uvicorn worker, 127.0.0.1).

* :func:`command_latency` (c): one command through the JSON API, again and
  again, each timed from the request until every view's tracking position
  reflects its event (read from ``partnerledger_projections``, as the
  projections record it); the raw limit is ``/healthz`` timed the same way.
* :func:`load` (d): a page or endpoint under N concurrent clients for a
  bounded time, with ``wrk`` (a Lua script prints its counts and
  percentiles as JSON) or, when wrk is not installed, an asyncio + httpx
  client of ours.

Every request goes to 127.0.0.1 only, to a server this harness started and
stops.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from partnerledger.projection import TRACKING
from partnerledger.store import Database

from .workloads import BenchFailure, pg_connect

HOST = "127.0.0.1"
DEMO_PASSWORD = "partnerledger-demo"  # the demo sign-ins' published password
COORDINATOR = "coordinator@riverside.example"
MEMBER = "member@riverside.example"

WRK_SCRIPT = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(math.ceil(p / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def cli_command() -> list[str]:
    """How to run the `partnerledger` command of this interpreter."""
    script = Path(sys.executable).parent / "partnerledger"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from partnerledger.cli.main import main; main()"]


class Server:
    """``partnerledger serve --demo`` on a store that already holds the history.

    ``--demo`` loads nothing into a store that is not empty: it only creates
    the demo sign-ins (a coordinator and a member of riverside...).
    """

    def __init__(self, url: str, workdir: Path, env: dict[str, str]) -> None:
        self.url = url
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.log_path = workdir / f"serve-{self.port}.log"
        self._env = env
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 180.0) -> None:
        command = [
            *cli_command(),
            "--database",
            self.url,
            "serve",
            "--demo",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self._env
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BenchFailure(f"the server exited: {self.log_tail()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise BenchFailure(f"the server did not answer within {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return " / ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-3:])
        except OSError:
            return ""

    def peak_mb(self) -> float | None:
        """The server process's peak resident memory so far (VmHWM), in MB."""
        if self._process is None:
            return None
        try:
            status = Path(f"/proc/{self._process.pid}/status").read_text()
        except OSError:
            return None
        found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        return int(found.group(1)) / 1024 if found else None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def api_token(url: str, email: str = COORDINATOR) -> str:
    """A new API token for a demo account (as /account/tokens makes one)."""
    from partnerledger.accounts import Accounts

    with Accounts(Database.parse(url)) as accounts:
        user = accounts.by_email(email)
        if user is None:
            raise BenchFailure(f"no account {email}: did serve --demo create the sign-ins?")
        secret, _ = accounts.create_token(user.id, "benchmark")
    return secret


def sign_in(base: str, email: str) -> str:
    """Sign in through the login form; returns the Cookie header of the session."""
    with httpx.Client(base_url=base, timeout=60) as client:
        form = client.get("/login")
        found = re.search(r'name="_csrf_token" value="([^"]+)"', form.text)
        if form.status_code != 200 or found is None:
            raise BenchFailure(f"no sign-in form at {base}/login ({form.status_code})")
        done = client.post(
            "/login",
            data={
                "email": email,
                "password": DEMO_PASSWORD,
                "next": "/",
                "_csrf_token": found.group(1),
            },
        )
        if done.status_code not in (302, 303) or "login" in done.headers.get("location", ""):
            raise BenchFailure(f"signing in as {email} failed ({done.status_code})")
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


# ------------------------------------------------------------ (c) latency


class Positions:
    """The lowest tracking position of the views, read straight from their table."""

    def __init__(self, url: str) -> None:
        self.database = Database.parse(url)
        self._pg: Any = None
        self._sqlite: sqlite3.Connection | None = None
        if self.database.kind == "sqlite":
            self._sqlite = sqlite3.connect(self.database.path, isolation_level=None)
        else:
            self._pg = pg_connect(url)
            self._pg.autocommit = True

    def lowest(self) -> int:
        query = f"SELECT min(position), count(*) FROM {TRACKING}"
        if self._sqlite is not None:
            row = self._sqlite.execute(query).fetchone()
        else:
            row = self._pg.execute(query).fetchone()
        if row is None or not row[1]:
            raise BenchFailure("no views are tracked in this store")
        return int(row[0])

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._pg is not None:
            self._pg.close()


@dataclass
class Latency:
    """Command latencies (ms) and the raw limit's."""

    visible: list[float]
    answered: list[float]
    healthz: list[float]


def command_latency(
    base: str, url: str, token: str, network: str, pair: tuple[str, str], commands: int, tag: str
) -> Latency:
    """(c) ``commands`` referrals sent through the API, each timed until every view has it."""
    positions = Positions(url)
    visible: list[float] = []
    answered: list[float] = []
    healthz: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            for _ in range(5):  # warm the connection and the handlers
                client.get("/healthz")
            last = ""
            for i in range(commands):
                last = f"bench-{tag}-{i}"
                body = {
                    "from_member": pair[0],
                    "to_member": pair[1],
                    "customer": f"Benchmark Customer {tag} {i}",
                    "referral": last,
                }
                start = time.perf_counter()
                response = client.post(f"/api/v1/networks/{network}/referrals", json=body)
                answered.append((time.perf_counter() - start) * 1000)
                if response.status_code != 201:
                    raise BenchFailure(
                        f"sending a referral answered {response.status_code}: {response.text[:200]}"
                    )
                position = int(response.json()["event"]["position"])
                while positions.lowest() < position:
                    if time.perf_counter() - start > 60:
                        raise BenchFailure(f"the views did not reach position {position} in 60 s")
                    time.sleep(0.0002)
                visible.append((time.perf_counter() - start) * 1000)
            # The last referral, read back through the API from the views.
            found = client.get(f"/api/v1/networks/{network}/referrals/{last}")
            if found.status_code != 200 or "referral.sent" not in found.text:
                raise BenchFailure(f"the API does not show referral {last} ({found.status_code})")
            for _ in range(commands):
                start = time.perf_counter()
                client.get("/healthz")
                healthz.append((time.perf_counter() - start) * 1000)
    finally:
        positions.close()
    return Latency(visible, answered, healthz)


# --------------------------------------------------------------- (d) load


@dataclass
class Load:
    """What one load run measured."""

    requests: int
    seconds: float
    errors: int
    p50: float | None  # ms
    p90: float | None
    p99: float | None
    max: float | None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def load_tool(choice: str) -> str:
    """``wrk`` when it is installed (or asked for), else ``httpx``."""
    if choice == "httpx":
        return "httpx"
    if shutil.which("wrk"):
        return "wrk"
    if choice == "wrk":
        raise BenchFailure("--load-tool wrk: wrk is not installed (apt-get install wrk)")
    return "httpx"


def load(
    tool: str,
    url: str,
    headers: dict[str, str],
    clients: int,
    duration: int,
    workdir: Path,
) -> Load:
    """``clients`` concurrent clients asking ``url`` for ``duration`` seconds."""
    if tool == "wrk":
        return _wrk(url, headers, clients, duration, workdir)
    return asyncio.run(_httpx_load(url, headers, clients, duration))


def _wrk(url: str, headers: dict[str, str], clients: int, duration: int, workdir: Path) -> Load:
    script = workdir / "report.lua"
    script.write_text(WRK_SCRIPT)
    threads = max(1, min(clients, os.cpu_count() or 1))
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{clients}",
        f"-d{duration}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(url)
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
    found = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode != 0 or not found:
        raise BenchFailure(f"wrk failed ({done.returncode}): {(done.stderr or done.stdout)[-300:]}")
    import json

    data = json.loads(found[-1][6:])
    errors = sum(int(data[k]) for k in ("connect", "read", "write", "status", "timeout"))
    requests = int(data["requests"])

    def ms(key: str) -> float | None:
        return data[key] / 1000 if requests else None

    return Load(
        requests=requests,
        seconds=data["duration_us"] / 1e6,
        errors=errors,
        p50=ms("p50"),
        p90=ms("p90"),
        p99=ms("p99"),
        max=ms("max"),
    )


async def _httpx_load(url: str, headers: dict[str, str], clients: int, duration: int) -> Load:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + duration

        async def worker() -> None:
            nonlocal errors
            while loop.time() < deadline:
                began = time.perf_counter()
                try:
                    response = await client.get(url)
                    await response.aread()
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - began) * 1000)
                if response.status_code >= 400:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = loop.time() - start

    def at(p: float) -> float | None:
        return percentile(latencies, p) if latencies else None

    return Load(
        requests=len(latencies),
        seconds=seconds,
        errors=errors,
        p50=at(50),
        p90=at(90),
        p99=at(99),
        max=max(latencies) if latencies else None,
    )


def check_target(base: str, path: str, headers: dict[str, str]) -> int:
    """Ask once before loading: the path must answer 200 with content (not the sign-in page)."""
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        response = client.get(path)
    if response.status_code != 200:
        raise BenchFailure(f"GET {path} answered {response.status_code}")
    if path.startswith("/n/") and 'name="password"' in response.text:
        raise BenchFailure(f"GET {path} shows the sign-in form: the session was not accepted")
    return len(response.content)
