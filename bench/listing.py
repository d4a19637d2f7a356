"""Cost of one ListObjectsV2 page as a bucket grows: 10,000 keys, then 100,000, then 1,000,000.

    python bench/listing.py [--sizes 10000,100000,1000000] [--pages 40] [--dir DIR]

The bucket is made through S3 by `pyblob serve`, then filled between server runs by the engine
itself (1-byte objects, unsynced, which is only how the bench fills fast; the server runs durable as
by default). For each size the server is started again on that data dir, pinned to one core, and the
script fetches `--pages` presigned pages of 1,000 keys from random places in the key space
(`start-after`), and the top level with a delimiter (100 CommonPrefixes over all the keys), reading
each answer whole without parsing it. It prints the median and p90 time per page and the server's
CPU per page: a page's cost should not grow with the bucket (a B-tree range read of 1,000 rows).
Data lives in a fresh temp dir under --dir, removed at the end.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from links import tree_cpu  # bench/links.py, next to this file
from s3 import start_run  # bench/s3.py
from serving import BUCKET, SERVER_CORE, s3_client, start_pyblob

from objstore.config import StoreConfig
from objstore.store import Store

DIRS = 100


def key_name(i: int) -> str:
    return f"dir{i % DIRS:03d}/key{i:07d}"


def fill(data_dir: Path, start: int, stop: int) -> float:
    """Put keys start..stop-1 through the engine (unsynced); seconds taken."""
    began = time.perf_counter()
    store = Store(data_dir, StoreConfig(durable=False))
    try:
        for i in range(start, stop):
            store.put_object(BUCKET, key_name(i), b"x")
    finally:
        store.close()
    return time.perf_counter() - began


def fetch_pages(urls: list[str], pid: int) -> tuple[list[float], float]:
    """Seconds per page (whole answer read) and the server's CPU seconds over all of them."""
    times = []
    cpu_before = tree_cpu(pid)
    for url in urls:
        began = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as answer:
            body = answer.read()
        times.append(time.perf_counter() - began)
        assert b"<Contents>" in body or b"<CommonPrefixes>" in body, body[:200]
    return times, tree_cpu(pid) - cpu_before


def page_urls(url: str, keys: int, pages: int, delimiter: bool) -> list[str]:
    s3 = s3_client(url)
    rng = random.Random(keys)
    urls = []
    for _ in range(pages):
        params = {"Bucket": BUCKET, "MaxKeys": 1000, "StartAfter": key_name(rng.randrange(keys))}
        if delimiter:
            # The top level: 100 CommonPrefixes, each standing for keys / 100 keys the server skips.
            params = {"Bucket": BUCKET, "MaxKeys": 1000, "Delimiter": "/"}
        urls.append(s3.generate_presigned_url("list_objects_v2", Params=params, ExpiresIn=3600))
    return urls


def report(label: str, times: list[float], cpu: float) -> None:
    ms = sorted(t * 1000 for t in times)
    p90 = ms[int(len(ms) * 0.9) - 1]
    per_page_cpu = cpu / len(times) * 1000
    median = statistics.median(ms)
    print(f"{label:<40} median {median:6.1f} ms  p90 {p90:6.1f} ms  server CPU {per_page_cpu:6.1f} ms/page", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000,1000000", help="bucket sizes, ascending")
    p.add_argument("--pages", type=int, default=40)
    p.add_argument("--dir", type=Path, default=Path("bench-data"), help="parent of the temp dir")
    p.add_argument("--budget-s", type=int, default=1800, help="stop after this many seconds")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    root = start_run(args.dir, "listing-", args.budget_s)
    data_dir = root / "pyblob-data-1"
    try:
        with ExitStack() as stack:
            target = start_pyblob(stack, root)
            s3_client(target.url).create_bucket(Bucket=BUCKET)
        filled = 0
        for keys in sizes:
            took = fill(data_dir, filled, keys)
            print(f"filled {filled:,} -> {keys:,} keys through the engine in {took:.0f} s", flush=True)
            filled = keys
            with ExitStack() as stack:
                target = start_pyblob(stack, root, core=SERVER_CORE)
                for delimiter in (False, True):
                    urls = page_urls(target.url, keys, args.pages, delimiter)
                    fetch_pages(urls[:3], target.pid)  # warm the page cache and the server
                    times, cpu = fetch_pages(urls, target.pid)
                    kind = "top level, delimiter /" if delimiter else "page of 1,000"
                    report(f"{keys:>9,} keys, {kind}", times, cpu)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
