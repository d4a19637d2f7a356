"""Chunk stores side by side: the data dir's `chunks/` (durable: syncfs) and an S3 bucket on a real
SeaweedFS (`weed server` with its S3 gateway, started here on loopback, on the same disk), both under
LMDB metadata, so the difference is the chunk store alone. Through the engine, no HTTP:

- a large object written and read back (MiB/s),
- 1 MiB objects from 4 threads (ops/s): one to three chunks each, so per-chunk round trips show,
- fsck's re-hash of every chunk (MiB/s),
- and, as SeaweedFS's own ceiling, boto3 GETting the same chunk objects 4 at a time (MiB/s).

    python bench/chunkstore.py [--size-mib 256] [--small-count 200]

Prints each figure per store and SeaweedFS's as a ratio of the local directory's in the same run.
Results and the machine are in docs/benchmarks.md ("Chunk stores").
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the SeaweedFS helper the tests use

from seaweedfs import seaweedfs_server  # noqa: E402

from objstore import Store, StoreConfig  # noqa: E402
from objstore.chunks.s3 import READ_AHEAD, S3ChunkStore  # noqa: E402
from objstore.maintenance import fsck  # noqa: E402

MiB = 1024 * 1024
PIECE = 4 * MiB


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def write_large(store: Store, size: int) -> None:
    block = os.urandom(PIECE)
    with store.open_writer("bench", "large") as w:
        for i in range(0, size, PIECE):
            w.write(bytes([i // PIECE % 251]) + block[1:])  # no two pieces alike: nothing deduplicates
        w.commit()


def read_large(store: Store) -> None:
    for _ in store.read_object(store.head_object("bench", "large")):
        pass


def put_small(store: Store, count: int, threads: int) -> None:
    def work(n: int) -> None:
        for i in range(n, count, threads):
            store.put_object("bench", f"small/{i}", os.urandom(MiB))

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()


def measure(config: StoreConfig, size: int, small: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=ROOT) as d, Store(Path(d) / "data", config) as store:
        store.accounts.create_user("bench")
        store.create_bucket("bench", "bench")
        figures = {"write MiB/s": size / MiB / timed(lambda: write_large(store, size))}
        figures["read MiB/s"] = size / MiB / timed(lambda: read_large(store))
        figures["1 MiB PUT ops/s"] = small / timed(lambda: put_small(store, small, 4))
        total = (size + small * MiB) / MiB
        figures["fsck MiB/s"] = total / timed(lambda: fsck(store))
        if isinstance(store.chunks, S3ChunkStore):
            figures["raw GET MiB/s"] = total / timed(lambda: get_every_chunk(store.chunks))
        return figures


def get_every_chunk(chunks: S3ChunkStore) -> None:
    """The reference: boto3 alone GETting the same chunk objects, READ_AHEAD at a time."""
    digests = [digest for batch, _, _ in chunks.iterate() for digest, _ in batch]
    with ThreadPoolExecutor(READ_AHEAD) as pool:
        for _ in pool.map(chunks.read_all, digests):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--small-count", type=int, default=200)
    args = parser.parse_args()
    local = StoreConfig(durable=True)
    with seaweedfs_server() as swfs:
        s3 = dataclasses.replace(local, chunk_store=swfs.chunk_settings("bench"))
        results = {
            "local dir": measure(local, args.size_mib * MiB, args.small_count),
            "SeaweedFS (S3)": measure(s3, args.size_mib * MiB, args.small_count),
        }
    names = list(results["local dir"])
    print(f"{'':18}" + "".join(f"{n:>18}" for n in names))
    for store, figures in results.items():
        print(f"{store:18}" + "".join(f"{figures[n]:>18.1f}" for n in names))
    ratios = [results["SeaweedFS (S3)"][n] / results["local dir"][n] for n in names]
    print(f"{'ratio':18}" + "".join(f"{r:>17.2f}x" for r in ratios))
    s3 = results["SeaweedFS (S3)"]
    ceiling = s3["read MiB/s"] / s3["raw GET MiB/s"]
    print(f"raw GET {s3['raw GET MiB/s']:.1f} MiB/s; pyblob's read over SeaweedFS is {ceiling:.2f}x of it")


if __name__ == "__main__":
    main()
