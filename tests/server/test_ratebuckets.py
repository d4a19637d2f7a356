"""Token buckets in the volatile state (pyblob/ratebuckets.py): refill, waits, bounded rows, one
limit across processes, and the Retry-After of a wait."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clocks import Clock

from objstore.meta.lmdb import LmdbVolatileStore
from pyblob.ratebuckets import TABLES, TokenBuckets, retry_after


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[LmdbVolatileStore]:
    s = LmdbVolatileStore(tmp_path / "state", TABLES)
    yield s
    s.close()


@pytest.fixture
def buckets(state: LmdbVolatileStore, clock: Clock) -> TokenBuckets:
    return TokenBuckets(state, clock)


def test_burst_then_refused_with_the_wait(buckets: TokenBuckets) -> None:
    assert [buckets.take("ip 1", rate=1, burst=5) for _ in range(5)] == [0.0] * 5
    assert buckets.take("ip 1", rate=1, burst=5) == pytest.approx(1.0)
    assert buckets.take("ip 2", rate=1, burst=5) == 0.0  # another key, another bucket


def test_refill_by_elapsed_time_capped_at_burst(buckets: TokenBuckets, clock: Clock) -> None:
    for _ in range(4):
        buckets.take("k", rate=2, burst=4)
    assert buckets.take("k", rate=2, burst=4) == pytest.approx(0.5)
    clock.advance(1.0)  # two tokens back
    assert [buckets.take("k", rate=2, burst=4) for _ in range(3)] == [0.0, 0.0, pytest.approx(0.5)]
    clock.advance(3600)  # full again, and no more than full
    assert sum(buckets.take("k", rate=2, burst=4) == 0 for _ in range(10)) == 4


def test_refused_takes_consume_nothing(buckets: TokenBuckets, clock: Clock) -> None:
    buckets.take("k", rate=1, burst=1)
    for _ in range(20):
        assert buckets.take("k", rate=1, burst=1) > 0
    clock.advance(1.0)
    assert buckets.take("k", rate=1, burst=1) == 0.0


def test_cost_and_rate_zero(buckets: TokenBuckets) -> None:
    assert buckets.take("k", rate=0, burst=10, cost=6) == 0.0
    assert buckets.take("k", rate=0, burst=10, cost=6) == math.inf  # a fixed allowance
    assert buckets.take("k", rate=0, burst=10, cost=4) == 0.0


def test_a_clock_going_back_grants_nothing(buckets: TokenBuckets, clock: Clock) -> None:
    buckets.take("k", rate=1, burst=2)
    buckets.take("k", rate=1, burst=2)
    clock.advance(-100)
    assert buckets.take("k", rate=1, burst=2) == pytest.approx(1.0)
    clock.advance(1.0)
    assert buckets.take("k", rate=1, burst=2) == 0.0


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert [retry_after(w) for w in (0.01, 1.0, 1.2, math.inf)] == [1, 1, 2, 3600]


def test_full_buckets_are_swept(buckets: TokenBuckets, clock: Clock) -> None:
    for i in range(300):
        buckets.take(f"ip {i}", rate=1, burst=10)
    buckets.take("busy", rate=1, burst=10, cost=10)
    clock.advance(9.5)  # everyone is full again but "busy", still half a token short
    assert buckets.rows() == 301
    assert buckets.sweep() == 300
    assert buckets.rows() == 1
    assert buckets.take("busy", rate=1, burst=10, cost=10) == pytest.approx(0.5)


def test_takes_sweep_slices_as_they_go(state: LmdbVolatileStore, clock: Clock) -> None:
    buckets = TokenBuckets(state, clock, sweep_every=100, sweep_slice=200)
    for i in range(5000):
        buckets.take(f"ip {i}", rate=1000, burst=1)  # full again a millisecond later
        clock.advance(0.01)
    assert buckets.rows() <= 200


def test_rows_stay_capped_under_many_distinct_keys(state: LmdbVolatileStore, clock: Clock) -> None:
    buckets = TokenBuckets(state, clock, max_rows=1000)
    for i in range(50_000):
        assert buckets.take(f"ip {i}", rate=0.001, burst=5) == 0.0  # nobody refills in this test
        clock.advance(0.0001)
    assert buckets.rows() == 1000


def test_at_the_cap_full_rows_go_before_busy_ones(state: LmdbVolatileStore, clock: Clock) -> None:
    buckets = TokenBuckets(state, clock, max_rows=100)
    buckets.take("busy", rate=0, burst=3, cost=3)  # never refills: never full, but recently used
    for i in range(99):
        buckets.take(f"idle {i:02}", rate=10, burst=1)
    clock.advance(1.0)  # the idle ones are full
    for i in range(500):
        buckets.take(f"new {i:03}", rate=10, burst=1)
        clock.advance(1.0)
    assert buckets.rows() <= 100
    assert buckets.take("busy", rate=0, burst=3) == math.inf  # its row survived


TAKER = """
import os, sys, time
from pathlib import Path
from pyblob.ratebuckets import TABLES, TokenBuckets
from objstore.meta.lmdb import LmdbVolatileStore
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
buckets = TokenBuckets(LmdbVolatileStore(Path(sys.argv[1]), TABLES))
print(sum(buckets.take("shared", rate=0, burst=100) == 0 for _ in range(80)))
"""


def test_two_processes_share_one_bucket_exactly(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    go = tmp_path / "go"
    argv = [sys.executable, "-c", TAKER, str(tmp_path / "state"), str(go)]
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(0.3)  # both interpreters up and waiting
    go.touch()
    allowed = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(allowed) == 100 and min(allowed) >= 20
