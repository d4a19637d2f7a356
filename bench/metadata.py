"""Metadata backends side by side: small-object PUTs through the engine with LMDB and with a real
PostgreSQL 15 (started here, durable: fsync on), one user's objects from 1 and 8 threads, so every
commit also changes that user's usage (the "hot row" of a busy user), and 3 processes ("nodes") of
4 threads over one PostgreSQL, all for that one user.

    python bench/metadata.py [--seconds 3] [--size 1024] [--prefill-chunks 0] [--same-content]

Objects over 4 KiB are chunked: each commit then also takes references on new chunks. On an empty
database those rows share a few index pages, and PostgreSQL's serializable transactions track
reads by index page, so concurrent commits conflict far more than on a store of real size:
`--prefill-chunks N` first puts N chunk rows in the PostgreSQL databases, as a store in use holds.

Prints ops/s per backend and thread count, and PostgreSQL's as a ratio of LMDB's in the same run.
Results and the machine are in docs/benchmarks.md ("Metadata backends").
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the PostgreSQL server helper the tests use

from postgres import postgres_server  # noqa: E402

from objstore import Store, StoreConfig, refcount  # noqa: E402


def put_rate(store: Store, threads: int, seconds: float, body: bytes, prefix: str = "", same: bool = False) -> float:
    done = [0] * threads
    stop = time.monotonic() + seconds

    def work(n: int) -> None:
        i = 0
        while time.monotonic() < stop:
            # Each object its own content (with `same`, one content for all: one chunk row for every commit).
            content = body if same else f"{prefix}t{n}/{i}:".encode() + body
            store.put_object("hot", f"{prefix}t{n}/{i}", content)
            i += 1
        done[n] = i

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    start = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done) / (time.monotonic() - start)


def prefill(url: str, chunks: int) -> None:
    """`chunks` rows of chunks nothing references, with their totals, straight into the database."""
    if not chunks:
        return
    import psycopg

    row = refcount.ChunkRow(0, 1.0, 1000).encode()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pyblob_rows (tbl, key, value) SELECT 'chunks', "
            "decode(md5(i::text) || md5((-i)::text), 'hex'), %s FROM generate_series(1, %s) AS i",
            (row, chunks),
        )
        conn.execute("ANALYZE pyblob_rows")


def measure(
    config: StoreConfig, threads: int, seconds: float, body: bytes, chunks: int = 0, same: bool = False
) -> tuple[float, float]:
    """(PUTs/s, transactions re-run after a serialization conflict per 100 PUTs: 0 on LMDB)."""
    with tempfile.TemporaryDirectory(dir=ROOT) as d, Store(Path(d) / "data", config) as store:
        store.accounts.create_user("busy")
        store.create_bucket("busy", "hot")
        if config.metadata_url.startswith("postgresql"):
            prefill(config.metadata_url, chunks)
            store.meta.transact(refcount.recount_totals)
        before = getattr(store.meta, "reruns", 0)
        rate = put_rate(store, threads, seconds, body, same=same)
        return rate, 100 * (getattr(store.meta, "reruns", 0) - before) / (rate * seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--size", type=int, default=1024, help="bytes per object (inline up to 4 KiB)")
    parser.add_argument("--no-fsync", action="store_true", help="PostgreSQL without fsync: what the disk costs")
    parser.add_argument("--prefill-chunks", type=int, default=0, help="chunk rows put in PostgreSQL first")
    parser.add_argument("--same-content", action="store_true", help="every PUT the same bytes (one shared chunk)")
    args = parser.parse_args()
    body = os.urandom(args.size)
    print(
        f"# {os.cpu_count()} cpus, {args.size}-byte objects, {args.seconds:.0f} s per figure, durable commits, "
        f"{args.prefill_chunks} chunk rows first"
    )
    with postgres_server(fast=args.no_fsync) as pg:
        for threads in (1, 8):
            lmdb, _ = measure(StoreConfig(), threads, args.seconds, body, same=args.same_content)
            config = dataclasses.replace(StoreConfig(), metadata_url=pg.new_database())
            postgres, reruns = measure(config, threads, args.seconds, body, args.prefill_chunks, args.same_content)
            ratio = postgres / lmdb
            print(
                f"PUT {threads} thread(s): LMDB {lmdb:,.0f} ops/s, PostgreSQL {postgres:,.0f} ops/s ({ratio:.2f}x), "
                f"{reruns:.1f} re-runs per 100 PUTs"
            )
        nodes, reruns = three_nodes(pg.new_database(), args.seconds, body, args.prefill_chunks, args.same_content)
        print(f"PUT 3 nodes x 4 threads, one user, one PostgreSQL: {nodes:,.0f} ops/s, {reruns:.1f} re-runs per 100")


def three_nodes(url: str, seconds: float, body: bytes, chunks: int = 0, same: bool = False) -> tuple[float, float]:
    """Three processes (three pyblob nodes) with their own data dirs over one database, 4 threads each,
    all writing for the same user: the commits/s of one busy user across nodes."""
    config = dataclasses.replace(StoreConfig(), metadata_url=url)
    with tempfile.TemporaryDirectory(dir=ROOT) as d, Store(Path(d) / "setup", config) as store:
        store.accounts.create_user("busy")
        store.create_bucket("busy", "hot")
        prefill(url, chunks)
        store.meta.transact(refcount.recount_totals)
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(3), ctx.Queue()
    nodes = [ctx.Process(target=node, args=(url, n, seconds, body, same, start, results)) for n in range(3)]
    for p in nodes:
        p.start()
    figures = [results.get(timeout=seconds + 120) for _ in nodes]
    for p in nodes:
        p.join(30)
    rate = sum(r for r, _ in figures)
    return rate, 100 * sum(n for _, n in figures) / (rate * seconds)


def node(url: str, n: int, seconds: float, body: bytes, same: bool, start: Any, results: Any) -> None:
    config = dataclasses.replace(StoreConfig(), metadata_url=url)
    with tempfile.TemporaryDirectory(dir=ROOT) as d, Store(Path(d) / f"node{n}", config) as store:
        store.meta.read(lambda r: r.get("users", b"busy"))  # connected before the clock starts
        start.wait()
        rate = put_rate(store, 4, seconds, body, prefix=f"n{n}", same=same)
        results.put((rate, getattr(store.meta, "reruns", 0)))


if __name__ == "__main__":
    main()
