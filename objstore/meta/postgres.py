"""The metadata store on PostgreSQL: one database shared by any number of pyblob nodes.

Every engine table is the rows of one PostgreSQL table, `pyblob_rows (tbl, key, value)`, keyed by
(tbl, key). `bytea` compares bytewise with a prefix first, as LMDB compares keys, so the engine's key
layouts, ranges and prefixes carry over unchanged; keys keep LMDB's limits (`MAX_KEY_BYTES`), so
both backends answer the same for a key no row can have.

Write transactions are SERIALIZABLE: the rules LMDB's single writer keeps (reference counts, quota,
an object's rows and its owner's usage changing in one commit) hold across nodes. A transaction
that loses a conflict (SQLSTATE 40001 serialization_failure, 40P01 deadlock_detected) is run again
from the start after a short random pause, as the interface allows: its function has no side effect
but those it registers with `on_commit`, which run once, after the commit that counted. A connection
lost before COMMIT is retried the same way on a fresh connection (a failover); one lost during
COMMIT is raised, since whether it committed is unknown. Reads are REPEATABLE READ, READ ONLY: one
snapshot, never a serialization failure. A database with no room on its disk (SQLSTATE 53100
disk_full: a table or index that cannot grow) rolls the transaction back and is StorageFull, raised
at once: retrying would not make room (tests/reliability/test_disk_full_cluster.py).

`PostgresVolatileStore` keeps what the nodes share but need not keep across a crash (quota
reservations) the same way, in an UNLOGGED table `pyblob_volatile`.

Each process has its own connection pool (psycopg_pool), opened lazily in the process that uses it,
so a store made before the server forks its workers is safe, as the LMDB one is.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import StorageFull
from .interface import MAX_KEY_BYTES, META, ReadTxn, Row, WriteTxn, record_schema

T = TypeVar("T")
BATCH = 512  # rows fetched per round trip by `range`
RETRY_FOR = 30.0  # seconds a transaction keeps being retried (conflicts, a failover) before giving up
PAUSE = (0.001, 0.2)  # the first and the longest pause between attempts, in seconds (backoff with jitter)
CONFLICTS = (pgerrors.SerializationFailure, pgerrors.DeadlockDetected)
SCHEMA_LOCK = 0x7079626C6F62  # pg_advisory_xact_lock id while the table is made ("pyblob")
COUNTER = re.compile(r"^[a-z_]{1,40}$")

ROWS = "pyblob_rows"  # the engine's metadata
VOLATILE_ROWS = "pyblob_volatile"  # state shared by the nodes that need not survive a crash (`PostgresVolatileStore`)
CREATE = """
CREATE {unlogged} TABLE IF NOT EXISTS {rows} (
    tbl text NOT NULL,
    key bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (tbl, key)
)
"""


def new_pool(
    url: str, size: int, name: str, configure: Callable[[psycopg.Connection[Any]], None] | None = None
) -> ConnectionPool[psycopg.Connection[Any]]:
    """A pool of this process, not yet open, of connections in autocommit: transactions are begun
    and ended explicitly."""
    return ConnectionPool(
        url, min_size=1, max_size=size, kwargs={"autocommit": True}, configure=configure, open=False, name=name
    )


class PgTxn:
    """A read or write transaction on one connection; implements `ReadTxn` and `WriteTxn`.

    `next_id` draws from a PostgreSQL sequence per counter: a counter kept in a row would be one row
    that every new object version rewrites, and concurrent SERIALIZABLE commits rewriting one row
    conflict and re-run (the hot row the metadata benchmark found). Sequences are not transactional:
    an id drawn by a transaction that is re-run or rolled back is skipped, never given twice.
    """

    def __init__(self, conn: psycopg.Connection[Any], sequences: set[str] | None = None, rows: str = ROWS):
        self.conn = conn
        self.rows = rows  # the PostgreSQL table holding the rows: a constant of this module, never input
        self.after: list[Callable[[], None]] = []
        self.sequences = sequences if sequences is not None else set()  # counters known to exist

    def get(self, table: str, key: bytes) -> bytes | None:
        if not key or len(key) > MAX_KEY_BYTES:
            return None
        row = self.conn.execute(f"SELECT value FROM {self.rows} WHERE tbl = %s AND key = %s", (table, key)).fetchone()
        return bytes(row[0]) if row is not None else None

    def range(
        self,
        table: str,
        start: bytes = b"",
        end: bytes | None = None,
        *,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Iterator[Row]:
        """Keyset pages of BATCH rows: the snapshot is the transaction's, so pages never overlap or skip."""
        left = limit
        low, high = start, end
        while left is None or left > 0:
            want = BATCH if left is None else min(BATCH, left)
            query = f"SELECT key, value FROM {self.rows} WHERE tbl = %s AND key >= %s"
            params: list[Any] = [table, low]
            if high is not None:
                query += " AND key < %s"
                params.append(high)
            query += (" ORDER BY key DESC" if reverse else " ORDER BY key") + " LIMIT %s"
            rows = self.conn.execute(query, (*params, want)).fetchall()
            for key, value in rows:
                yield bytes(key), bytes(value)
            if len(rows) < want:
                return
            if left is not None:
                left -= len(rows)
            last = bytes(rows[-1][0])
            if reverse:
                high = last
            else:
                low = last + b"\x00"  # the smallest key after `last`

    def count(self, table: str) -> int:
        row = self.conn.execute(f"SELECT count(*) FROM {self.rows} WHERE tbl = %s", (table,)).fetchone()
        return int(row[0]) if row is not None else 0

    def put(self, table: str, key: bytes, value: bytes) -> None:
        if not key or len(key) > MAX_KEY_BYTES:
            raise ValueError(f"a key of {len(key)} bytes cannot be stored (1 to {MAX_KEY_BYTES})")
        self.conn.execute(
            f"INSERT INTO {self.rows} (tbl, key, value) VALUES (%s, %s, %s) "
            "ON CONFLICT (tbl, key) DO UPDATE SET value = EXCLUDED.value",
            (table, key, value),
        )

    def delete(self, table: str, key: bytes) -> bool:
        if not key or len(key) > MAX_KEY_BYTES:
            return False
        cur = self.conn.execute(f"DELETE FROM {self.rows} WHERE tbl = %s AND key = %s", (table, key))
        return cur.rowcount > 0

    def next_id(self, counter: str) -> int:
        if not COUNTER.match(counter):
            raise ValueError(f"counter name {counter!r}: lower-case letters and _ only")
        name = f"pyblob_seq_{counter}"
        if counter not in self.sequences:
            self._ensure_sequence(counter, name)
        row = self.conn.execute(sql.SQL("SELECT nextval({})").format(sql.Literal(name))).fetchone()
        assert row is not None
        return int(row[0])

    def _ensure_sequence(self, counter: str, name: str) -> None:
        """Once per process and counter: make the sequence, and move it past the counter's value in
        the `meta` table (where a store of an older pyblob, or one migrated from LMDB, kept it)."""
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        ident = sql.Identifier(name)
        self.conn.execute(sql.SQL("CREATE SEQUENCE IF NOT EXISTS {}").format(ident))
        kept = int(self.get(META, b"seq:" + counter.encode()) or b"0")
        row = self.conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(ident)).fetchone()
        assert row is not None
        if kept > (row[0] if row[1] else 0):
            self.conn.execute("SELECT setval(%s, %s)", (name, kept))
        self.on_commit(lambda: self.sequences.add(counter))

    def on_commit(self, fn: Callable[[], None]) -> None:
        self.after.append(fn)


class PostgresMetadataStore:
    """The engine's metadata in a PostgreSQL database given by a libpq URL (several hosts and
    `target_session_attrs=read-write` for a cluster whose primary may move)."""

    rows = ROWS
    begin_write = "BEGIN ISOLATION LEVEL SERIALIZABLE"
    pool_name = "pyblob-meta"

    def __init__(self, url: str, tables: tuple[str, ...], schema: int, pool_size: int = 8):
        self.url = url
        self.tables = (META, *sorted(set(tables) - {META}))
        self.schema = schema
        self.pool_size = pool_size
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pid = 0
        self._open_lock = threading.Lock()
        self._sequences: set[str] = set()
        self.reruns = 0  # write transactions this process ran again after losing a conflict

    @property
    def pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        if self._pool is None or self._pid != os.getpid():
            with self._open_lock:
                if self._pool is None or self._pid != os.getpid():
                    pool = new_pool(self.url, self.pool_size, self.pool_name)
                    pool.open(wait=True, timeout=RETRY_FOR)
                    # The table before anyone else uses the pool: threads racing to the first
                    # transaction of a process wait on the lock, then find it made.
                    self._run(self.begin_write, self._make_schema, pool)
                    self._pool, self._pid = pool, os.getpid()
        return self._pool

    def transact(self, fn: Callable[[WriteTxn], T]) -> T:
        return self._run(self.begin_write, fn)

    def read(self, fn: Callable[[ReadTxn], T]) -> T:
        return self._run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", fn)

    def _run(
        self, begin: str, fn: Callable[[PgTxn], T], pool: ConnectionPool[psycopg.Connection[Any]] | None = None
    ) -> T:
        deadline = time.monotonic() + RETRY_FOR
        pause = PAUSE[0]
        while True:
            committing = False
            try:
                with (pool or self.pool).connection() as conn:
                    txn = PgTxn(conn, self._sequences, self.rows)
                    conn.execute(begin)
                    try:
                        result = fn(txn)
                        committing = True
                        conn.execute("COMMIT")
                    except BaseException:
                        if not conn.closed and not committing:
                            conn.execute("ROLLBACK")
                        raise
            except CONFLICTS:
                self.reruns += 1  # lost to a concurrent transaction: run it again
            except pgerrors.DiskFull as e:  # an OperationalError, but no failover will make room
                raise StorageFull(StorageFull.DATABASE) from e
            except psycopg.OperationalError:
                if committing:
                    raise  # the commit may or may not have happened: not ours to guess
            else:
                for after in txn.after:
                    after()
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"a metadata transaction could not commit in {RETRY_FOR:.0f}s of retries")
            time.sleep(random.uniform(0, pause))
            pause = min(pause * 2, PAUSE[1])

    def _make_schema(self, w: WriteTxn) -> None:
        """The table (once, whichever node starts first), then the schema version, as LMDB's store checks it."""
        conn = w.conn  # type: ignore[attr-defined]
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute(CREATE.format(unlogged="UNLOGGED" if self.rows == VOLATILE_ROWS else "", rows=self.rows))
        record_schema(w, self.schema)

    def copy_to(self, dest: Path) -> None:
        raise NotImplementedError(
            "the metadata is in PostgreSQL: back it up with pg_dump or pg_basebackup (see the README)"
        )

    def close(self) -> None:
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        self._pool = None


class PostgresVolatileStore(PostgresMetadataStore):
    """What the nodes share that need not survive a crash (quota reservations of uploads in flight), in
    an UNLOGGED table of the same database: no write-ahead log, commits that wait for no flush
    (`synchronous_commit = off`), emptied by PostgreSQL's crash recovery and not copied to standbys,
    so a failover starts it empty, as a reboot starts LMDB's `state/`. The cluster's counterpart of
    `LmdbVolatileStore`: same interface, same SERIALIZABLE rules, so reservers on different nodes
    serialise as LMDB's writer lock serialises the workers of one."""

    rows = VOLATILE_ROWS
    begin_write = "BEGIN ISOLATION LEVEL SERIALIZABLE; SET LOCAL synchronous_commit = off"
    pool_name = "pyblob-volatile"

    def __init__(self, url: str, tables: tuple[str, ...], schema: int, pool_size: int = 4):
        super().__init__(url, tables, schema, pool_size)


RATE_BUCKETS = "pyblob_rate_buckets"
CREATE_RATE_BUCKETS = f"""
CREATE UNLOGGED TABLE IF NOT EXISTS {RATE_BUCKETS} (
    key bytea PRIMARY KEY,
    tokens double precision NOT NULL,
    updated double precision NOT NULL,
    full_at double precision NOT NULL,
    granted boolean NOT NULL
) WITH (fillfactor = 70)
"""
# The bucket refilled to the database's clock (`excluded.updated`), capped at `burst`.
_REFILLED = "least(%(burst)s, b.tokens + greatest(0, excluded.updated - b.updated) * %(rate)s)"
_LEFT = f"CASE WHEN {_REFILLED} >= %(cost)s THEN {_REFILLED} - %(cost)s ELSE {_REFILLED} END"
TAKE = f"""
INSERT INTO {RATE_BUCKETS} AS b (key, tokens, updated, full_at, granted)
SELECT %(key)s, %(fresh)s, t, t + %(fresh_full_in)s, %(burst)s >= %(cost)s
FROM (SELECT extract(epoch FROM clock_timestamp())::float8 AS t) AS now
ON CONFLICT (key) DO UPDATE SET
    tokens = {_LEFT},
    granted = {_REFILLED} >= %(cost)s,
    updated = greatest(b.updated, excluded.updated),
    full_at = greatest(b.updated, excluded.updated) + (%(burst)s - ({_LEFT})) / %(rate)s
RETURNING tokens, granted
"""
SWEEP_FULL = f"DELETE FROM {RATE_BUCKETS} WHERE full_at <= extract(epoch FROM clock_timestamp())"
EVICT_OLDEST = f"""
DELETE FROM {RATE_BUCKETS} WHERE key IN (
    SELECT key FROM {RATE_BUCKETS} ORDER BY updated
    LIMIT greatest(0, (SELECT count(*) FROM {RATE_BUCKETS}) - %(max_rows)s))
"""
# What a take meets while the database is away, restarting or failing over (a standby is read-only).
UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError, pgerrors.ReadOnlySqlTransaction, PoolTimeout)
BUCKET_TIMEOUT = 2.0  # seconds a take waits for a connection or an answer before the caller stands in


class PostgresTokenBuckets:
    """Token buckets every node takes from, one row per key in an UNLOGGED table: a take is one
    `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`, a single statement in its own transaction, so
    takes of one key from any number of nodes queue on its row lock and none is lost or re-run
    (no SERIALIZABLE transaction to conflict). The refill runs on the database's clock, one clock for
    every node. No write-ahead log and no flush: a crash or a failover starts the buckets full.

    Full rows are deleted every `sweep_every` takes of this process, and the table is kept under
    `max_rows` by evicting the least recently updated rows then (a client evicted starts full again).
    A take that cannot reach the database within `BUCKET_TIMEOUT` raises `ConnectionError`."""

    def __init__(self, url: str, max_rows: int, sweep_every: int, pool_size: int = 4):
        self.url = url
        self.max_rows = max_rows
        self.sweep_every = sweep_every
        self.pool_size = pool_size
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pid = 0
        self._open_lock = threading.Lock()
        self._takes = 0

    @property
    def pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        if self._pool is None or self._pid != os.getpid():
            with self._open_lock:
                if self._pool is None or self._pid != os.getpid():
                    pool = new_pool(self.url, self.pool_size, "pyblob-rate-buckets", _configure_bucket_connection)
                    try:
                        pool.open(wait=True, timeout=BUCKET_TIMEOUT)
                        with pool.connection() as conn, conn.transaction():
                            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                            conn.execute(CREATE_RATE_BUCKETS)
                    except BaseException:
                        pool.close()  # its threads would go on trying to connect
                        raise
                    self._pool, self._pid = pool, os.getpid()
        return self._pool

    def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> float:
        """0 when `cost` tokens were taken from `key`'s bucket, else the seconds until they are back."""
        if rate <= 0:
            raise ValueError("a shared bucket needs a refill rate above 0 (0 means no limit to the caller)")
        fresh = burst - cost if burst >= cost else burst
        params = {
            "key": key.encode(),
            "rate": rate,
            "burst": burst,
            "cost": cost,
            "fresh": fresh,
            "fresh_full_in": (burst - fresh) / rate,
        }
        try:
            with self.pool.connection(timeout=BUCKET_TIMEOUT) as conn:
                row = conn.execute(TAKE, params).fetchone()
                self._takes += 1
                if self._takes % self.sweep_every == 0:
                    self._sweep(conn)
        except UNREACHABLE as e:
            raise ConnectionError(f"the rate buckets in PostgreSQL did not answer: {e}") from e
        assert row is not None
        tokens, granted = row
        return 0.0 if granted else (cost - float(tokens)) / rate

    def sweep(self) -> None:
        """Delete the full rows, then the oldest ones past `max_rows`."""
        with self.pool.connection(timeout=BUCKET_TIMEOUT) as conn:
            self._sweep(conn)

    def rows(self) -> int:
        with self.pool.connection(timeout=BUCKET_TIMEOUT) as conn:
            row = conn.execute(f"SELECT count(*) FROM {RATE_BUCKETS}").fetchone()
        return int(row[0]) if row is not None else 0

    def _sweep(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(SWEEP_FULL)
        conn.execute(EVICT_OLDEST, {"max_rows": self.max_rows})

    def close(self) -> None:
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        self._pool = None


def _configure_bucket_connection(conn: psycopg.Connection[Any]) -> None:
    """A take waits for no flush (the table has no log to flush) and never for long."""
    conn.execute("SET synchronous_commit = off")
    conn.execute(f"SET statement_timeout = {int(BUCKET_TIMEOUT * 1000)}")
