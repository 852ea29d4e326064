"""A bounded soak on PostgreSQL: mixed reads and writes through the JSON API with a worker.

``partnerledger serve`` leaves the views to one ``partnerledger worker``
(``PARTNERLEDGER_VIEWS=worker``); client threads with API tokens send,
accept and convert referrals and read standings, scorecards, the referrals
list, a statement and the events, all over loopback, for
``PARTNERLEDGER_SOAK_SECONDS`` (60 by default, so that CI runs it; set it
higher to soak by hand). Then:

* no 5xx, and no status other than the ones each call may give;
* the serve process's resident memory after a warm-up grows by less than
  :data:`RSS_BOUND_MIB` (see there);
* once the worker has caught up, the views equal a rebuild of the log;
* every write that got a 2xx is in the log exactly once.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from partnerledger import Database, Ledger, Store
from partnerledger.commands import convert_command
from partnerledger.projection import Projector
from servekit import CLI, rss_kib, serving, stop, tokens
from test_projections import assert_same_views, dumps, poll_until, rebuilt_views, running
from webkit import START, build_world

pytestmark = pytest.mark.slow

NET = "riverside"
SECONDS = float(os.environ.get("PARTNERLEDGER_SOAK_SECONDS", "60"))
CLIENTS = 4
#: The most the serve process's RSS may grow between the end of the warm-up
#: and the end of the soak. A warm process holds its code, its connection
#: pool and its caches (about 85 MiB measured); what may still grow is the
#: heap's high-water mark under this request mix (under 1 MiB measured over
#: 30 s). 50 MiB leaves room for the allocator's noise on a loaded machine,
#: yet a leak of 50 KiB per request fails within the ~1,000 requests of a
#: 60 s run, and a longer soak run by hand makes the bound sharper.
RSS_BOUND_MIB = 50
WARM_UP = min(15.0, SECONDS / 4)


@dataclass
class Tally:
    """What the clients did and saw."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    #: command_id → type of every write answered 2xx.
    written: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _client(base: str, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def _soak(base: str, keys: dict[str, str], number: int, until: float, tally: Tally) -> None:
    """One client: its own referrals through sent → accepted → converted, and reads in between."""
    chance = random.Random(number)  # a test's mix, not a secret
    period = f"{datetime.now(UTC).year}-Q{(datetime.now(UTC).month - 1) // 3 + 1}"
    coordinator, bob, ann = (_client(base, keys[k]) for k in ("coordinator", "bob", "ann"))
    reads = [
        (coordinator, f"/networks/{NET}/standings", {}),
        (coordinator, f"/networks/{NET}/scorecards", {}),
        (coordinator, f"/networks/{NET}/referrals", {"limit": 50}),
        (ann, f"/networks/{NET}/members/ann-law/statements/{period}", {}),
        (coordinator, f"/networks/{NET}/events", {"limit": 50}),
    ]
    waiting: list[tuple[str, str]] = []  # (referral, next step)
    sequence = 0
    try:
        while time.monotonic() < until:
            if chance.random() < 0.5:
                client, path, params = chance.choice(reads)
                response = client.get(path, params=params)
                expected: tuple[int, ...] = (200,)
                written = None
            else:
                sequence += 1
                command_id = f"soak-{number}-{sequence}"
                body: dict[str, Any] = {"command_id": command_id}
                if waiting and chance.random() < 0.7:
                    referral, step = waiting.pop(chance.randrange(len(waiting)))
                    client = bob
                    path = f"/networks/{NET}/referrals/{referral}/{step}"
                    if step == "convert":
                        body["deal_value"] = f"{chance.randint(100, 5000)}.00"
                    else:
                        waiting.append((referral, "convert"))
                else:
                    referral = f"soak-{number}-{sequence}"
                    client = coordinator
                    path = f"/networks/{NET}/referrals"
                    body.update(referral=referral, from_member="ann-law", to_member="bob-tax",
                                customer=f"Customer {number}-{sequence}")  # fmt: skip
                    waiting.append((referral, "accept"))
                response = client.post(path, json=body)
                expected = (201,)
                written = command_id
            with tally.lock:
                tally.requests += 1
                tally.statuses[response.status_code] += 1
                if response.status_code not in expected:
                    tally.unexpected.append(f"{path}: {response.status_code} {response.text[:300]}")
                elif written is not None:
                    tally.written[written] = response.json()["event"]["type"]
    finally:
        for client in (coordinator, bob, ann):
            client.close()


def test_a_bounded_soak_of_mixed_reads_and_writes_with_a_worker(
    postgres_url: str, tmp_path: Path
) -> None:
    world = build_world(postgres_url)
    with Store(Database.parse(postgres_url)) as store:
        Ledger(store).execute(
            *(
                convert_command({"type": t, "network": NET, "actor": "setup",
                                 "occurred_at": START, **fields})
                for t, fields in (
                    ("plugin.enabled", {"plugin": "fees"}),
                    ("agreement.proposed", {"agreement": "a-fee", "kind": "referral",
                                            "parties": ["ann-law", "bob-tax"],
                                            "terms": {"scope": "Legal and tax clients",
                                                      "compensation": {"kind": "referral_fee",
                                                                       "amount": "250"}}}),
                    ("agreement.accepted", {"agreement": "a-fee", "party": "ann-law"}),
                    ("agreement.accepted", {"agreement": "a-fee", "party": "bob-tax"}),
                )
            )
        )  # fmt: skip
    keys = tokens(postgres_url, {"coordinator": world.coordinator, "ann": world.member,
                                 "bob": world.other_member})  # fmt: skip
    worker_args = [CLI, "--database", postgres_url, "worker", "--poll", "0.1"]
    views_worker = {"PARTNERLEDGER_VIEWS": "worker"}
    tally = Tally()
    with (
        running(
            worker_args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        ) as worker,
        serving(postgres_url, tmp_path, workers=1, env=views_worker) as server,
    ):
        [pid] = server.worker_pids()
        start = time.monotonic()
        until = start + SECONDS
        threads = [
            threading.Thread(target=_soak, args=(server.url, keys, n, until, tally))
            for n in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(WARM_UP)
        warm = rss_kib(pid)
        peak = warm
        while any(thread.is_alive() for thread in threads):
            peak = max(peak, rss_kib(pid))
            time.sleep(0.5)
        for thread in threads:
            thread.join()
        final = rss_kib(pid)
        assert worker.poll() is None, "the worker stopped"
        assert server.process.poll() is None, server.errors()
        log = server.errors()
        with Store(Database.parse(postgres_url)) as store, Projector(store) as projector:
            poll_until(lambda: projector.lag() == 0, timeout=120, every=0.1)
            stop(worker)
            built = dumps(projector)
            events = [event for _, event in store.read()]
            rebuilt = rebuilt_views(store)
    elapsed = time.monotonic() - start
    print(  # the measurements, for the report (pytest -s)
        f"\nsoak: {tally.requests} requests in {elapsed:.0f} s by {CLIENTS} clients, "
        f"{len(tally.written)} writes, statuses {dict(tally.statuses)}; serve RSS "
        f"{warm / 1024:.1f} MiB after warm-up, peak {peak / 1024:.1f}, end {final / 1024:.1f}"
    )
    assert tally.unexpected == [], tally.unexpected[:5]
    assert not any(status >= 500 for status in tally.statuses)
    assert "Traceback" not in log, log
    assert tally.requests > 50 * CLIENTS  # it did soak
    assert (final - warm) / 1024 < RSS_BOUND_MIB, (warm, peak, final)
    assert_same_views(built, rebuilt)
    # Every write answered 2xx is in the log, exactly once, with its type.
    recorded = Counter(event.command_id for event in events)
    types = {event.command_id: event.type for event in events}
    for command_id, type_ in tally.written.items():
        assert recorded[command_id] == 1, command_id
        assert types[command_id] == type_
    assert sum(1 for e in events if e.command_id.startswith("soak-")) == len(tally.written)
