"""Metadata backends side by side: small-object PUTs through the engine with LMDB and with a real
PostgreSQL 15 (started here, durable: fsync on), one user's objects from 1 and 8 threads, so every
commit also changes that user's usage (the "hot row" of a busy user), and 3 processes ("nodes") of
4 threads over one PostgreSQL, all for that one user.

    python bench/metadata.py [--seconds 3] [--size 1024]

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

from objstore import Store, StoreConfig  # noqa: E402


def put_rate(store: Store, threads: int, seconds: float, body: bytes, prefix: str = "") -> float:
    done = [0] * threads
    stop = time.monotonic() + seconds

    def work(n: int) -> None:
        i = 0
        while time.monotonic() < stop:
            store.put_object("hot", f"{prefix}t{n}/{i}", body)
            i += 1
        done[n] = i

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    start = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done) / (time.monotonic() - start)


def measure(config: StoreConfig, threads: int, seconds: float, body: bytes) -> float:
    with tempfile.TemporaryDirectory(dir=ROOT) as d, Store(Path(d) / "data", config) as store:
        store.accounts.create_user("busy")
        store.create_bucket("busy", "hot")
        return put_rate(store, threads, seconds, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--size", type=int, default=1024, help="bytes per object (inline up to 4 KiB)")
    parser.add_argument("--no-fsync", action="store_true", help="PostgreSQL without fsync: what the disk costs")
    args = parser.parse_args()
    body = os.urandom(args.size)
    print(f"# {os.cpu_count()} cpus, {args.size}-byte objects, {args.seconds:.0f} s per figure, durable commits")
    with postgres_server(fast=args.no_fsync) as pg:
        for threads in (1, 8):
            lmdb = measure(StoreConfig(), threads, args.seconds, body)
            config = dataclasses.replace(StoreConfig(), metadata_url=pg.new_database())
            postgres = measure(config, threads, args.seconds, body)
            ratio = postgres / lmdb
            print(f"PUT {threads} thread(s): LMDB {lmdb:,.0f} ops/s, PostgreSQL {postgres:,.0f} ops/s ({ratio:.2f}x)")
        nodes = three_nodes(pg.new_database(), args.seconds, body)
        print(f"PUT 3 nodes x 4 threads, one user, one PostgreSQL: {nodes:,.0f} ops/s")


def three_nodes(url: str, seconds: float, body: bytes) -> float:
    """Three processes (three pyblob nodes) with their own data dirs over one database, 4 threads each,
    all writing for the same user: the commits/s of one busy user across nodes."""
    config = dataclasses.replace(StoreConfig(), metadata_url=url)
    with tempfile.TemporaryDirectory(dir=ROOT) as d, Store(Path(d) / "setup", config) as store:
        store.accounts.create_user("busy")
        store.create_bucket("busy", "hot")
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(3), ctx.Queue()
    nodes = [ctx.Process(target=node, args=(url, n, seconds, body, start, results)) for n in range(3)]
    for p in nodes:
        p.start()
    rates = [results.get(timeout=seconds + 120) for _ in nodes]
    for p in nodes:
        p.join(30)
    return sum(rates)


def node(url: str, n: int, seconds: float, body: bytes, start: Any, results: Any) -> None:
    config = dataclasses.replace(StoreConfig(), metadata_url=url)
    with tempfile.TemporaryDirectory(dir=ROOT) as d, Store(Path(d) / f"node{n}", config) as store:
        store.meta.read(lambda r: r.get("users", b"busy"))  # connected before the clock starts
        start.wait()
        results.put(put_rate(store, 4, seconds, body, prefix=f"n{n}"))


if __name__ == "__main__":
    main()
