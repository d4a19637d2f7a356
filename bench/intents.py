"""What upload intents cost (`objstore/inflight.py`): the same engine over a real PostgreSQL 15
(durable) and a real SeaweedFS, writing with its writers' intents on and then off, interleaved, so
the machine's load falls on both alike. Through the engine, no HTTP:

- one large object written (MiB/s),
- 1 MiB objects from 4 threads (ops/s): a chunk or three each, so a per-chunk cost shows.

    python bench/intents.py [--rounds 4] [--size-mib 128] [--small-count 120]

Prints each round's figures and the ratio with intents to without. Results and the machine are in
docs/benchmarks.md ("What upload intents cost").
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the PostgreSQL and SeaweedFS helpers the tests use

from postgres import postgres_server  # noqa: E402
from seaweedfs import seaweedfs_server  # noqa: E402

from objstore import Store, StoreConfig  # noqa: E402

MiB = 1024 * 1024
PIECE = 4 * MiB


def write_large(store: Store, name: str, size_mib: int) -> float:
    block = os.urandom(PIECE)
    start = time.perf_counter()
    with store.open_writer("bench", name) as w:
        for i in range(size_mib * MiB // PIECE):
            w.write(bytes([i % 251]) + block[1:])  # no two pieces alike: nothing deduplicates
        w.commit()
    return size_mib / (time.perf_counter() - start)


def put_small(store: Store, name: str, count: int) -> float:
    def put(n: int) -> None:
        store.put_object("bench", f"{name}/{n}", os.urandom(MiB))

    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(put, range(count)))
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--size-mib", type=int, default=128)
    parser.add_argument("--small-count", type=int, default=120)
    args = parser.parse_args()
    with postgres_server() as pg, seaweedfs_server() as swfs, tempfile.TemporaryDirectory() as tmp:
        config = StoreConfig(metadata_url=str(pg.new_database()), chunk_store=swfs.chunk_settings(), durable=True)
        store = Store(Path(tmp) / "data", config)
        store.accounts.create_user("bench")
        store.create_bucket("bench", "bench")
        intents = store.objects.intents
        print("round  large MiB/s (on / off / ratio)   1 MiB PUT ops/s (on / off / ratio)")
        for n in range(args.rounds):
            figures = {}
            for label, recorded in (("on", intents), ("off", None)):
                store.objects.intents = recorded  # multipart writers use the same
                figures[label] = (
                    write_large(store, f"large-{n}-{label}", args.size_mib),
                    put_small(store, f"small-{n}-{label}", args.small_count),
                )
            (large_on, small_on), (large_off, small_off) = figures["on"], figures["off"]
            print(
                f"{n:>5}  {large_on:6.0f} / {large_off:6.0f} / {large_on / large_off:.2f}x"
                f"        {small_on:5.1f} / {small_off:5.1f} / {small_on / small_off:.2f}x",
                flush=True,
            )
        store.objects.intents = intents
        store.close()


if __name__ == "__main__":
    main()
