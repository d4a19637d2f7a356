"""Metadata backends side by side: small-object PUTs through the engine with LMDB and with a real
PostgreSQL 15 (started here, durable: fsync on), one user's objects from 1 and 8 threads, so every
commit also updates that user's usage row (the "hot row" of a busy user).

    python bench/metadata.py [--seconds 3] [--size 1024]

Prints ops/s per backend and thread count, and PostgreSQL's as a ratio of LMDB's in the same run.
Results and the machine are in docs/benchmarks.md ("Metadata backends").
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the PostgreSQL server helper the tests use

from postgres import postgres_server  # noqa: E402

from objstore import Store, StoreConfig  # noqa: E402


def put_rate(store: Store, threads: int, seconds: float, body: bytes) -> float:
    done = [0] * threads
    stop = time.monotonic() + seconds

    def work(n: int) -> None:
        i = 0
        while time.monotonic() < stop:
            store.put_object("hot", f"t{n}/{i}", body)
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


if __name__ == "__main__":
    main()
