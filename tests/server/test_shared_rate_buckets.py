"""Rate limits shared by the nodes of a cluster: token buckets in PostgreSQL (`PostgresTokenBuckets`),
and this node's own buckets standing in while the database does not answer (`SharedTokenBuckets`).

Against a real PostgreSQL 15: two bucket objects over one database are two nodes; threads of each
take at once. Then two `pyblob serve` processes over one database, with a client alternating
between them as a round-robin proxy would: the limit holds for the sum, not per server.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from ports import free_port
from processes import StartServer, isolate_from_aws

from objstore.meta.lmdb import LmdbVolatileStore
from objstore.meta.postgres import PostgresTokenBuckets
from pyblob.ratebuckets import STAND_IN_FOR, TABLES, SharedTokenBuckets, TokenBuckets

SLOW = 0.001  # tokens per second: nothing refills during a test


@pytest.fixture(autouse=True)
def _no_machine_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


def nodes(url: str, n: int = 2, max_rows: int = 1000, sweep_every: int = 1024) -> list[PostgresTokenBuckets]:
    return [PostgresTokenBuckets(url, max_rows, sweep_every) for _ in range(n)]


def test_two_nodes_take_from_one_bucket(pg_database: str) -> None:
    one, two = nodes(pg_database)
    granted = [one.take("k", SLOW, 5), two.take("k", SLOW, 5), one.take("k", SLOW, 5)]
    granted += [two.take("k", SLOW, 5), one.take("k", SLOW, 5)]
    assert granted == [0.0] * 5
    wait = two.take("k", SLOW, 5)  # the sixth, on either node
    assert wait == pytest.approx(1 / SLOW, rel=0.01)
    assert one.take("other", SLOW, 5) == 0.0  # keys do not share


def test_refill_at_the_rate_capped_at_burst(pg_database: str) -> None:
    (node,) = nodes(pg_database, 1)
    assert [node.take("k", 20, 2) for _ in range(3)][:2] == [0.0, 0.0]
    time.sleep(0.2)  # 4 tokens' worth of refill, capped at the burst of 2
    assert [node.take("k", 20, 2) == 0.0 for _ in range(3)] == [True, True, False]


def test_a_refused_take_consumes_nothing(pg_database: str) -> None:
    (node,) = nodes(pg_database, 1)
    assert node.take("k", SLOW, 3, cost=2) == 0.0
    first = node.take("k", SLOW, 3, cost=2)  # 1 left: refused, told to wait for one more token
    second = node.take("k", SLOW, 3, cost=2)
    assert first > 0 and second == pytest.approx(first, rel=0.01)
    assert node.take("k", SLOW, 3, cost=1) == 0.0  # the one left was still there


def test_concurrent_takes_from_two_nodes_grant_exactly_the_burst(pg_database: str) -> None:
    buckets = nodes(pg_database)
    granted: list[int] = []
    lock = threading.Lock()

    def take_many(node: PostgresTokenBuckets) -> None:
        mine = sum(node.take("hot", SLOW, 60) == 0.0 for _ in range(50))
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=take_many, args=(node,)) for node in buckets for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(granted) == 8 and sum(granted) == 60  # 400 takes, exactly the burst granted


def test_full_rows_are_swept_and_the_table_is_capped(pg_database: str) -> None:
    (node,) = nodes(pg_database, 1, max_rows=10, sweep_every=1000)
    for i in range(30):
        node.take(f"slow {i}", SLOW, 5)  # not full for hours
    node.take("fast", 1000, 1)  # full again in a millisecond
    assert node.rows() == 31
    time.sleep(0.01)
    node.sweep()
    assert node.rows() == 10  # the full row went, then the oldest past the cap
    with psycopg.connect(pg_database) as conn:
        kept = {bytes(k).decode() for (k,) in conn.execute("SELECT key FROM pyblob_rate_buckets").fetchall()}
    assert kept == {f"slow {i}" for i in range(20, 30)}  # the most recently used


def test_the_sweep_runs_by_itself_every_so_many_takes(pg_database: str) -> None:
    (node,) = nodes(pg_database, 1, max_rows=5, sweep_every=20)
    for i in range(20):
        node.take(f"k{i}", SLOW, 5)
    assert node.rows() == 5


def test_an_unreachable_database_raises_connection_error_quickly() -> None:
    node = PostgresTokenBuckets(f"postgresql://postgres@127.0.0.1:{free_port()}/none", 10, 10)
    start = time.monotonic()
    with pytest.raises(ConnectionError, match="did not answer"):
        node.take("k", 1, 1)
    assert time.monotonic() - start < 10


class Flaky:
    """Shared buckets that do not answer while `down`."""

    def __init__(self) -> None:
        self.down = False
        self.takes = 0

    def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> float:
        if self.down:
            raise ConnectionError("down")
        self.takes += 1
        return 0.0

    def close(self) -> None:
        pass


def test_the_node_stands_in_while_the_shared_buckets_do_not_answer(tmp_path: Path) -> None:
    now = [100.0]
    shared, local = Flaky(), TokenBuckets(LmdbVolatileStore(tmp_path, TABLES))
    buckets = SharedTokenBuckets(shared, local, monotonic=lambda: now[0])
    assert buckets.take("k", SLOW, 2) == 0.0 and shared.takes == 1
    shared.down = True
    assert buckets.take("k", SLOW, 2) == 0.0  # this node's own bucket, full
    assert buckets.take("k", SLOW, 2) == 0.0
    assert buckets.take("k", SLOW, 2) > 0  # the local limit holds meanwhile: not everything passes
    shared.down = False
    now[0] += STAND_IN_FOR - 0.1
    assert buckets.take("other", SLOW, 2) == 0.0 and shared.takes == 1  # still standing in
    now[0] += 0.2
    assert buckets.take("other", SLOW, 2) == 0.0 and shared.takes == 2  # back to the shared rows


def test_two_servers_share_their_limits(start_server: StartServer, pg_database: str, tmp_path: Path) -> None:
    """A client alternating between two nodes, as a round-robin proxy sends it: 6 short-link requests
    pass in all (404: no such link), not 6 per node; then every request is refused on both."""
    env = {
        "PYBLOB_METADATA_URL": pg_database,
        "PYBLOB_RATELIMIT_LINKS_IP_RATE": str(SLOW),
        "PYBLOB_RATELIMIT_LINKS_IP_BURST": "6",
    }
    one = start_server(env=env)
    two = start_server("--data-dir", str(tmp_path / "second"), "--workers", "2", env=env)
    answers = [httpx.get(f"{server.url}/s/NoSuchLnk").status_code for _ in range(5) for server in (one, two)]
    assert answers == [404] * 6 + [429] * 4
    with psycopg.connect(pg_database) as conn:
        row = conn.execute("SELECT granted FROM pyblob_rate_buckets WHERE key = %s", (b"links ip 127.0.0.1",))
        assert row.fetchone() == (False,)
