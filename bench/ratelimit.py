"""Cost of one take from the rate-limit buckets, the check every request pays: one process, then
several at once; this machine's buckets (LMDB) and a cluster's (PostgreSQL 15, started here).

    python bench/ratelimit.py [--takes 20000] [--processes 2] [--keys 1000] [--dir DIR] [--no-postgres]
                              [--seconds 3] [--rounds 3]

Each process takes from `--keys` keys in turn with limits that never refuse (the allowed path
writes a row; a refused one only reads). Prints µs per call: median of 5 runs for one process,
then each concurrent process's figure. With PostgreSQL, a tenth of `--takes` (a take is a round
trip), then the same processes all taking from one key (a client's address on every node); then
what a shared take costs a request: short-link GETs per second of a node over PostgreSQL with the
default link limit and with it off, in turn.
The state dir is a fresh temp dir, removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the PostgreSQL server helper the tests use

from postgres import postgres_server  # noqa: E402
from s3 import free_port, pyblob_argv, server, server_env  # noqa: E402 (bench/s3.py)

from objstore.meta.lmdb import LmdbVolatileStore  # noqa: E402
from objstore.meta.postgres import PostgresTokenBuckets  # noqa: E402
from pyblob.ratebuckets import MAX_ROWS, SWEEP_EVERY, TABLES, TokenBuckets  # noqa: E402


def open_buckets(where: str) -> TokenBuckets | PostgresTokenBuckets:
    if where.startswith("postgresql://"):
        return PostgresTokenBuckets(where, MAX_ROWS, SWEEP_EVERY)
    return TokenBuckets(LmdbVolatileStore(Path(where), TABLES))


def run(where: str, takes: int, keys: int) -> float:
    """µs per take over `takes` calls."""
    buckets = open_buckets(where)
    names = [f"ip 10.0.{i // 256}.{i % 256}" for i in range(keys)]
    buckets.take(names[0], 1e9, 1e9)  # open the environment outside the timing
    start = time.perf_counter()
    for i in range(takes):
        buckets.take(names[i % keys], 1e9, 1e9)
    return (time.perf_counter() - start) / takes * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--takes", type=int, default=20000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temp state dir")
    parser.add_argument("--no-postgres", action="store_true", help="only this machine's buckets")
    parser.add_argument("--seconds", type=float, default=3.0, help="per server figure")
    parser.add_argument("--rounds", type=int, default=3, help="server figures, limits on and off in turn")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(f"{run(args.child, args.takes, args.keys):.2f}")
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print("LMDB (one machine):")
        measure(str(Path(tmp) / "one"), str(Path(tmp) / "shared"), args.takes, args.keys, args.processes)
    if not args.no_postgres:
        with postgres_server(fast=False) as pg:
            print("PostgreSQL (a cluster's shared buckets):")
            url = pg.new_database()
            measure(url, url, args.takes // 10, args.keys, args.processes)
            concurrent(url, args.takes // 10, 1, args.processes, "on one key")
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                per_request(pg.new_database(), Path(tmp), args.seconds, args.rounds)


def per_request(database: str, root: Path, seconds: float, rounds: int) -> None:
    """Short-link requests per second of one `pyblob serve` over PostgreSQL, 2 client threads: with
    the default link limit (a shared take per request) and with it off, in turn, `rounds` times."""
    print(f"  requests/s of GET /s/<missing id> (a link lookup), 2 client threads, {seconds:.0f} s, {rounds} rounds:")
    ratios = []
    for round_ in range(rounds):
        rates = {}
        for label, rate in (("limited", "20"), ("not limited", "0")):
            env = server_env(
                PYBLOB_DATA_DIR=str(root / f"{label}-{round_}"),
                PYBLOB_METADATA_URL=database,
                PYBLOB_RATELIMIT_LINKS_IP_RATE=rate,
                PYBLOB_RATELIMIT_LINKS_IP_BURST="1000000000",
            )
            port = free_port()
            with server(label, pyblob_argv(port), env, root, port) as base:
                rates[label] = link_rate(base, seconds)
        ratios.append(rates["limited"] / rates["not limited"])
        print(f"    limited {rates['limited']:,.0f}, not limited {rates['not limited']:,.0f} ({ratios[-1]:.2f}x)")
    print(f"  median ratio, limited / not limited: {statistics.median(ratios):.2f}x")


def link_rate(base: str, seconds: float) -> float:
    done = [0, 0]
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        with httpx.Client() as http:
            http.get(f"{base}/s/NoSuchLnk")  # the connection and the server's first request
            start = time.monotonic()
            while time.monotonic() < stop:
                assert http.get(f"{base}/s/NoSuchLnk").status_code == 404
                done[i] += 1
            done[i] = int(done[i] / (time.monotonic() - start) * seconds)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / seconds


def measure(one: str, shared: str, takes: int, keys: int, processes: int) -> None:
    single = statistics.median(run(one, takes, keys) for _ in range(5))
    print(f"  1 process: {single:.2f} µs per take")
    concurrent(shared, takes, keys, processes, "")


def concurrent(where: str, takes: int, keys: int, processes: int, label: str) -> None:
    argv = [sys.executable, __file__, "--takes", str(takes), "--keys", str(keys), "--child", where]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    figures = [p.communicate()[0].strip() for p in procs]
    print(f"  {processes} processes at once{' ' + label if label else ''}: {', '.join(figures)} µs per take each")


if __name__ == "__main__":
    main()
