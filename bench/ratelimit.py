"""Cost of one `TokenBuckets.take`, the check every request pays: one process, then several at once.

    python bench/ratelimit.py [--takes 20000] [--processes 2] [--keys 1000] [--dir DIR]

Each process takes from `--keys` keys in turn with limits that never refuse (the allowed path
writes a row; a refused one only reads). Prints µs per call: median of 5 runs for one process,
then each concurrent process's figure. The state dir is a fresh temp dir, removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from objstore.meta.lmdb import LmdbVolatileStore
from pyblob.ratebuckets import TABLES, TokenBuckets


def run(state_dir: Path, takes: int, keys: int) -> float:
    """µs per take over `takes` calls."""
    buckets = TokenBuckets(LmdbVolatileStore(state_dir, TABLES))
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
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(f"{run(args.child, args.takes, args.keys):.2f}")
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        single = statistics.median(run(Path(tmp) / "one", args.takes, args.keys) for _ in range(5))
        print(f"1 process: {single:.2f} µs per take")
        argv = [sys.executable, __file__, "--takes", str(args.takes), "--keys", str(args.keys), "--child"]
        procs = [
            subprocess.Popen([*argv, str(Path(tmp) / "shared")], stdout=subprocess.PIPE, text=True)
            for _ in range(args.processes)
        ]
        figures = [p.communicate()[0].strip() for p in procs]
        print(f"{args.processes} processes at once: {', '.join(figures)} µs per take each")


if __name__ == "__main__":
    main()
