"""Several workers on one PostgreSQL database: one follows, the others stand by and take over."""

from __future__ import annotations

import signal
import subprocess

from partnerledger import Database, Store
from partnerledger.projection import Projector
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


def test_a_second_worker_stands_by_and_takes_over_when_the_first_dies(postgres_url: str) -> None:
    lines = demo_lines(5, 8, 4, 2)
    half = len(lines) // 2
    with Store(Database.parse(postgres_url)) as store, Projector(store) as projector:
        worker = [CLI, "--database", postgres_url, "worker", "--poll", "0.05"]
        with running(worker, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as first:
            following(first)
            last = write_history(store, lines[:half])
            poll_until(lambda: projector.lag() == 0)  # the first follows: it holds the lock
            with running(worker, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as second:
                following(second)
                assert "standing by" in read_line(second, stderr=True)
                first.send_signal(signal.SIGKILL)  # dies without a word: its lock goes with it
                first.wait(timeout=30)
                last = write_history(store, lines[half:])
                poll_until(lambda: min(projector.positions().values()) == last)
                assert second.poll() is None
                second.send_signal(signal.SIGINT)
                _, errors = second.communicate(timeout=30)
                assert second.returncode == 0, errors
        assert set(projector.positions().values()) == {store.last_position()}
        assert_same_views(dumps(projector), rebuilt_views(store))
