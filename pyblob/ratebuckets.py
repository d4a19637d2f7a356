"""Token buckets shared by every worker process, kept in the volatile state environment, or by every
node of a cluster, in PostgreSQL; and the Retry-After a refusal tells.

The limits belong to the layer that answers 429 / SlowDown (`ratelimits.py`); this module owns the
`rate_buckets` table of the engine's volatile store (`Store.volatile`, opened with it by `app.py`).

A bucket holds up to `burst` tokens and refills at `rate` tokens per second; a request takes
`cost` tokens or, when too few are left, is told how long to wait. Each `take` is one short
write transaction on the `rate_buckets` table of the volatile store (no fsync): LMDB's writer lock
serialises the workers, so N processes share one limit exactly. The row is
`(tokens, updated, full_at)`, `full_at` being when refilling makes the bucket full again.

Bounded state: a bucket that has refilled to `burst` tells nothing a missing row does not, so
rows past their `full_at` are deleted, a slice at a time (`sweep_slice` rows every `sweep_every`
takes, from where the last sweep of this process stopped). The table never grows past
`max_rows`: a new key at the cap first frees full rows among a small sample and, if none is full,
evicts the least recently updated row of the sample (sampled LRU, as Redis evicts). An evicted
client starts afresh with a full bucket: under a flood of distinct addresses the limit fails
open for a few, it never locks out newcomers.

A cluster (metadata in PostgreSQL) takes from one shared row per key instead (`SharedTokenBuckets`
over `PostgresTokenBuckets`, an UNLOGGED table): a limit holds for the sum of the nodes behind a
round-robin proxy, not per node. A take is then a network round trip, so it runs in a thread
(`blocking`); while the database does not answer (a failover), each node takes from its own
buckets for `STAND_IN_FOR` seconds: the limits fall back to per node, they neither vanish nor lock
everyone out.

Why not a library: `limits` shares state between processes only through Redis, Memcached or
MongoDB, a service pyblob does not want to need. `pyrate-limiter`'s SQLite bucket is a sliding
window log (one row per admitted request, one table per limit, not per key), shares across
processes only with an extra file lock, and took 300-700 µs per call here; its GCRA state stores
are in-memory or a `multiprocessing.Manager` made before the fork, which uvicorn's workers lack.
"""

from __future__ import annotations

import logging
import math
import struct
import time
from collections.abc import Callable
from typing import Protocol

from objstore.meta import MetadataStore, ReadTxn, WriteTxn

log = logging.getLogger("pyblob.ratelimits")

TABLE = "rate_buckets"
TABLES = (TABLE,)
ROW = struct.Struct("<ddd")  # tokens, updated, full_at (seconds of the clock given)
MAX_ROWS = 100_000  # ~100 bytes each in LMDB: about 10 MB of state at the cap
SWEEP_EVERY = 1024
SWEEP_SLICE = 256
CAP_SAMPLE = 16
STAND_IN_FOR = 5.0  # seconds a node uses its own buckets after the shared ones did not answer
MAX_RETRY_AFTER = 3600  # seconds: a Retry-After past an hour is no advice a client can use


def retry_after(wait: float) -> int:
    """Whole seconds for a `Retry-After` header: at least 1, at most an hour."""
    return max(1, math.ceil(min(float(MAX_RETRY_AFTER), wait)))


def _full_at(now: float, tokens: float, rate: float, burst: float) -> float:
    if tokens >= burst:
        return now
    return now + (burst - tokens) / rate if rate > 0 else math.inf


class Buckets(Protocol):
    """`take(key, rate, burst)`: 0 when allowed, else the seconds until `cost` tokens are back.
    `blocking`: a take waits on the network, so callers on an event loop run it in a thread."""

    blocking: bool

    def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> float: ...


class SharedBuckets(Protocol):
    """The cluster's buckets (`objstore.meta.postgres.PostgresTokenBuckets`): `take` raises
    `ConnectionError` when the database does not answer."""

    def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> float: ...

    def close(self) -> None: ...


class TokenBuckets:
    """`take(key, rate, burst)`: 0 when allowed, else the seconds until `cost` tokens are back."""

    blocking = False  # one LMDB write without fsync, ~15 µs: less than a hop to a thread

    def __init__(
        self,
        state: MetadataStore,
        clock: Callable[[], float] = time.time,
        max_rows: int = MAX_ROWS,
        sweep_every: int = SWEEP_EVERY,
        sweep_slice: int = SWEEP_SLICE,
    ):
        self.state = state
        self.clock = clock
        self.max_rows = max_rows
        self.sweep_every = sweep_every
        self.sweep_slice = sweep_slice
        self._takes = 0
        self._sweep_from = b""  # where this process's next sweep starts (key order, wrapping)

    def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> float:
        """Take `cost` tokens from `key`'s bucket; `rate` 0 never refills (a fixed allowance)."""
        now, name = self.clock(), key.encode()

        def take(w: WriteTxn) -> float:
            raw = w.get(TABLE, name)
            if raw is None:
                tokens, updated = burst, now
                if w.count(TABLE) >= self.max_rows:
                    self._make_room(w, now)
            else:
                tokens, updated, _ = ROW.unpack(raw)
                tokens = min(burst, tokens + max(0.0, now - updated) * rate)
            if tokens < cost:
                if now < updated:  # the clock went back: refill from now on, not from then
                    w.put(TABLE, name, ROW.pack(tokens, now, _full_at(now, tokens, rate, burst)))
                return (cost - tokens) / rate if rate > 0 else math.inf
            tokens -= cost
            w.put(TABLE, name, ROW.pack(tokens, now, _full_at(now, tokens, rate, burst)))
            self._takes += 1
            if self._takes % self.sweep_every == 0:
                self._sweep(w, now, self.sweep_slice)
            return 0.0

        return self.state.transact(take)

    def rows(self) -> int:
        return self.state.read(_count)

    def sweep(self, limit: int | None = None) -> int:
        """Delete full buckets among the next `limit` rows (all rows with None); how many went."""

        def sweep(w: WriteTxn) -> int:
            nonlocal limit
            if limit is None:
                self._sweep_from, limit = b"", w.count(TABLE)
            return self._sweep(w, self.clock(), limit)[0]

        return self.state.transact(sweep)

    def _sweep(self, w: WriteTxn, now: float, limit: int) -> tuple[int, bytes | None]:
        """(rows deleted, the least recently updated key kept) among `limit` rows from `_sweep_from`
        (from the first row once past the last)."""
        rows = list(w.range(TABLE, self._sweep_from, limit=limit + 1))
        if not rows and self._sweep_from:
            rows = list(w.range(TABLE, limit=limit + 1))
        self._sweep_from = rows[limit][0] if len(rows) > limit else b""
        full, oldest, oldest_at = [], None, math.inf
        for key, value in rows[:limit]:
            _, updated, full_at = ROW.unpack(value)
            if full_at <= now:
                full.append(key)
            elif updated < oldest_at:
                oldest, oldest_at = key, updated
        for key in full:
            w.delete(TABLE, key)
        return len(full), oldest

    def _make_room(self, w: WriteTxn, now: float) -> None:
        deleted, oldest = self._sweep(w, now, CAP_SAMPLE)
        if not deleted and oldest is not None:
            w.delete(TABLE, oldest)


def _count(r: ReadTxn) -> int:
    return r.count(TABLE)


class SharedTokenBuckets:
    """The buckets of every node (`shared`), and this node's own (`local`) standing in for
    `STAND_IN_FOR` seconds each time the shared ones do not answer."""

    blocking = True

    def __init__(self, shared: SharedBuckets, local: TokenBuckets, monotonic: Callable[[], float] = time.monotonic):
        self.shared = shared
        self.local = local
        self.monotonic = monotonic
        self._stand_in_until = 0.0

    def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> float:
        if self.monotonic() >= self._stand_in_until:
            try:
                return self.shared.take(key, rate, burst, cost)
            except ConnectionError as e:
                log.warning("rate limits per node for %.0fs: %s", STAND_IN_FOR, e)
                self._stand_in_until = self.monotonic() + STAND_IN_FOR
        return self.local.take(key, rate, burst, cost)

    def close(self) -> None:
        self.shared.close()


def open_buckets(state: MetadataStore, metadata_url: str, clock: Callable[[], float] = time.time) -> Buckets:
    """The buckets of a server whose volatile state is `state`: shared by the nodes when the metadata
    is in PostgreSQL (`metadata_url`), else by this machine's worker processes."""
    local = TokenBuckets(state, clock)
    if not metadata_url.startswith(("postgresql://", "postgres://")):
        return local
    from objstore.meta.postgres import PostgresTokenBuckets  # psycopg is loaded only by clusters

    return SharedTokenBuckets(PostgresTokenBuckets(metadata_url, MAX_ROWS, SWEEP_EVERY), local)
