"""Storage engine benchmark: throughput against dd/cat, dedup figures, versions and a chunk-size sweep.

    python bench/engine.py [--size-mib 1024] [--dir DIR] [--sweep] [--parts N] [--write-runs 3] [--versions 50]

Every figure is printed as one line with its target and PASS/MISS. The data dir is a fresh temp dir
under --dir (keep it on the disk under test, not tmpfs) and is removed at the end. Results and the
machine they came from are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NoReturn

import blake3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from objstore import ObjectRecord, Store, StoreConfig, manifests
from objstore.chunks import Entry
from objstore.errors import FormatError
from objstore.maintenance import collect_garbage

KiB, MiB = 1024, 1024 * 1024
PIECE = MiB  # how the benchmark feeds writers, as an HTTP body reader would
Layout = list[Entry]
SWEEP_AVGS_KIB = (64, 128, 256, 512, 1024)
SWEEP_HEADER = (
    f"{'avg KiB':>8} {'files/GiB':>10} {'write MiB/s':>12} {'read MiB/s':>11} {'insert %':>9} {'5MiB parts %':>13}"
)


# reporting and timing ------------------------------------------------------------------------
def verdict(name: str, value: float, unit: str, target: str, ok: bool) -> None:
    print(f"{name:<52} {value:>10.3f} {unit:<5} target {target:<8} {'PASS' if ok else 'MISS'}", flush=True)


def info(name: str, text: str) -> None:
    print(f"{name:<52} {text}", flush=True)


def timed(fn: Callable[[], object], runs: int = 1) -> float:
    """Seconds of the fastest of `runs` calls."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def mibps(nbytes: int, seconds: float) -> float:
    return nbytes / MiB / seconds


def random_bytes(seed: str, size: int) -> memoryview:
    """Incompressible, reproducible bytes (BLAKE3 in XOF mode, several GB/s)."""
    return memoryview(blake3.blake3(seed.encode()).digest(length=size))


# the engine ----------------------------------------------------------------------------------
def open_store(root: Path, name: str, config: StoreConfig | None = None) -> Store:
    store = Store(root / name, config or StoreConfig())
    store.accounts.create_user("bench")
    store.create_bucket("bench", "bkt")
    return store


def drop_store(store: Store) -> None:
    store.close()
    shutil.rmtree(store.root, ignore_errors=True)


def put_stream(store: Store, key: str, data: memoryview) -> ObjectRecord:
    writer = store.open_writer("bkt", key)
    for i in range(0, len(data), PIECE):
        writer.write(data[i : i + PIECE])
    return writer.commit()


def split(data: memoryview, size: int) -> Iterator[memoryview]:
    return (data[i : i + size] for i in range(0, len(data), size))


def put_parts(store: Store, key: str, parts: Iterable[memoryview]) -> tuple[ObjectRecord, int, float]:
    """A multipart upload of `parts`: (record, part count, seconds spent in complete_upload)."""
    upload = store.multipart.create_upload("bkt", key)
    etags: list[tuple[int, str]] = []
    for number, part in enumerate(parts, 1):
        writer = store.multipart.open_part_writer(upload.upload_id, number)
        for piece in split(part, PIECE):
            writer.write(piece)
        etags.append((number, writer.commit().etag))
    start = time.perf_counter()
    record = store.multipart.complete_upload(upload.upload_id, etags)
    return record, len(etags), time.perf_counter() - start


def read_plan(store: Store, record: ObjectRecord) -> tuple[list[tuple[int, int]], str]:
    """Ranges covering the object: one if `read_object` can read it whole, else one per manifest page
    (it raises FormatError when a read crosses a page: see docs/benchmarks.md) and the error."""
    try:
        drain(store, record, [(0, record.size)])
        return [(0, record.size)], ""
    except FormatError as e:
        error = str(e)
    ranges, offset, entries = [], 0, layout(store, record)
    for i in range(0, len(entries), manifests.PAGE_ENTRIES):
        size = sum(n for _, n in entries[i : i + manifests.PAGE_ENTRIES])
        ranges.append((offset, offset + size))
        offset += size
    return ranges, error


def drain(store: Store, record: ObjectRecord, ranges: list[tuple[int, int]]) -> None:
    size = sum(len(piece) for start, end in ranges for piece in store.read_object(record, start, end))
    assert size == record.size, f"read {size} of {record.size} bytes"


def layout(store: Store, record: ObjectRecord) -> Layout:
    return store.meta.read(lambda r: manifests.all_entries(r, bytes.fromhex(record.manifest)))


def shared(ref: Layout, other: Layout) -> float:
    """The fraction of `ref`'s bytes held in chunks that `other` also uses."""
    have = {digest for digest, _ in other}
    return sum(n for d, n in ref if d in have) / max(1, sum(n for _, n in ref))


def chunk_files(store: Store) -> tuple[int, int]:
    """(bytes, files) of the local chunk store's directory."""
    total = files = 0
    for parent, _, names in os.walk(store.root / "chunks"):
        for name in names:
            total += os.stat(os.path.join(parent, name)).st_size
            files += 1
    return total, files


def meta_bytes(store: Store) -> int:
    """Space LMDB occupies (allocated blocks: the map itself is sparse)."""
    return sum(p.stat().st_blocks * 512 for p in (store.root / "meta").iterdir())


def gc_past_grace(store: Store) -> None:
    skew = store.config.gc_grace_seconds + 1
    store.clock = lambda: time.time() + skew
    collect_garbage(store)


# 1 and 2: throughput ----------------------------------------------------------------------------
def write_pair(root: Path, data: memoryview, src: Path, profile: bool) -> tuple[float, float, Store, ObjectRecord]:
    """dd first, then the engine on a fresh data dir: (dd seconds, engine seconds, store, record)."""
    dst = root / "dd.out"
    dd = ["dd", f"if={src}", f"of={dst}", "bs=1M", "conv=fsync"]
    dd_s = timed(lambda: subprocess.run(dd, check=True, stderr=subprocess.DEVNULL))
    dst.unlink()
    store = open_store(root, "throughput")
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    with profiler or contextlib.nullcontext():
        record = put_stream(store, "big", data)
    eng_s = time.perf_counter() - start
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    return dd_s, eng_s, store, record


def bench_write(root: Path, data: memoryview, src: Path, runs: int, profile: bool) -> tuple[Store, ObjectRecord]:
    """`runs` (dd, engine) pairs; the verdict is on the median pair ratio (the disk is noisy)."""
    ratios = []
    for run in range(1, runs + 1):
        dd_s, eng_s, store, record = write_pair(root, data, src, profile and run == 1)
        ratios.append(dd_s / eng_s)
        speeds = f"dd {mibps(len(data), dd_s):.1f} MiB/s, engine {mibps(len(data), eng_s):.1f} MiB/s"
        info(f"1  write run {run}: dd bs=1M conv=fsync, then engine", f"{speeds}, ratio {dd_s / eng_s:.3f}")
        if run < runs:
            drop_store(store)
    median = statistics.median(ratios)
    verdict(f"1  write ratio engine / dd (median of {runs})", median, "x", ">= 0.35", median >= 0.35)
    disk, files = chunk_files(store)
    info("1  on disk", f"{disk / len(data):.4f} x logical, {files} chunk files, LMDB {meta_bytes(store) / MiB:.1f} MiB")
    return store, record


def bench_read(store: Store, record: ObjectRecord, src: Path) -> None:
    def cat() -> None:
        subprocess.run(["cat", str(src)], check=True, stdout=subprocess.DEVNULL)

    cat_s = timed(cat, 3)
    plan, error = read_plan(store, record)
    if error:
        info("2  read_object of the whole object FAILS", f"{error}; timing {len(plan)} page-sized ranges")
    eng_s = timed(lambda: drain(store, record, plan), 3)
    ratio = cat_s / eng_s
    info("2  cat > /dev/null (warm, best of 3)", f"{mibps(record.size, cat_s):.1f} MiB/s")
    info("2  engine read_object (warm, best of 3)", f"{mibps(record.size, eng_s):.1f} MiB/s")
    verdict("2  read ratio engine / cat", ratio, "x", ">= 0.5", ratio >= 0.5)
    check = blake3.blake3()
    for start, end in plan:
        for piece in store.read_object(record, start, end):
            check.update(piece)
    info("2  bytes read back match the BLAKE3 of the write", "yes" if check.hexdigest() == record.blake3 else "NO")


# 3: dedup -------------------------------------------------------------------------------------
def bench_copies(root: Path, data: memoryview, copies: int = 20) -> None:
    store = open_store(root, "copies")
    put_stream(store, "copy-0", data)
    one, _ = chunk_files(store)
    for i in range(1, copies):
        put_stream(store, f"copy-{i}", data)
    gc_past_grace(store)
    total, _ = chunk_files(store)
    name = f"3a {copies} copies of {len(data) // MiB} MiB: disk / one copy"
    verdict(name, total / one, "x", "<= 1.05", total / one <= 1.05)
    info("3a   disk / logical", f"{total / (copies * len(data)):.4f}, LMDB {meta_bytes(store) / MiB:.2f} MiB")
    drop_store(store)


def bench_parts(root: Path, data: memoryview) -> None:
    """Parts first, so the 5 MiB completion is timed with none of its boundary chunks stored yet."""
    store = open_store(root, "parts")
    layouts: dict[int, Layout] = {}
    for part_mib in (5, 8):
        record, count, secs = put_parts(store, f"parts-{part_mib}", split(data, part_mib * MiB))
        layouts[part_mib] = layout(store, record)
        note = "" if part_mib == 5 else " (most boundary chunks already stored by 5 MiB)"
        info(f"3d   complete_upload, {count} x {part_mib} MiB parts", f"{secs:.3f} s{note}")
    single = layout(store, put_stream(store, "single", data))
    for part_mib, other in layouts.items():
        frac = shared(single, other)
        verdict(f"3b single-stream bytes shared with {part_mib} MiB parts", 100 * frac, "%", ">= 90", frac >= 0.9)
    before, _ = chunk_files(store)
    gc_past_grace(store)
    after, _ = chunk_files(store)
    info(
        "3b disk / logical, all three layouts stored",
        f"{before / len(data):.4f} before GC, {after / len(data):.4f} after",
    )
    drop_store(store)


def insert_shared(store: Store, data: memoryview) -> float:
    """Store `data` and a copy with 1 MiB of new bytes in the middle: the copy's shared fraction."""
    original = layout(store, put_stream(store, "original", data))
    mid = len(data) // 2
    edited = memoryview(b"".join((data[:mid], random_bytes("insert", MiB), data[mid:])))
    return shared(layout(store, put_stream(store, "edited", edited)), original)


def bench_insert(root: Path, data: memoryview) -> None:
    store = open_store(root, "insert")
    frac = insert_shared(store, data)
    verdict("3c bytes shared after a 1 MiB insertion", 100 * frac, "%", ">= 90", frac >= 0.9)
    drop_store(store)


def bench_many_parts(root: Path, count: int) -> None:
    store = open_store(root, "many-parts")
    parts = (random_bytes(f"part-{n}", 5 * MiB) for n in range(count))
    start = time.perf_counter()
    _, _, secs = put_parts(store, "many", parts)
    total = time.perf_counter() - start
    info(f"3d complete_upload, {count} x 5 MiB parts", f"{secs:.3f} s (whole upload {total:.1f} s)")
    drop_store(store)


def bench_versions(root: Path, data: memoryview, count: int) -> None:
    """`count` versions of one file in a versioned bucket, each the previous one with 4 KiB
    rewritten in one place: what the versions cost on disk beyond the first."""
    store = open_store(root, "versions")
    store.set_bucket_versioning("bkt", "Enabled")
    current = bytearray(data)
    put_stream(store, "doc", memoryview(current))
    first, _ = chunk_files(store)
    meta_first = meta_bytes(store)
    for n in range(1, count):
        at = (n * 7919 * 4096) % (len(current) - 4096)
        current[at : at + 4096] = random_bytes(f"edit-{n}", 4096)
        put_stream(store, "doc", memoryview(current))
    total, files = chunk_files(store)
    listed = len(store.list_object_versions("bkt").versions)
    per_version = (total - first) / (count - 1)
    budget = 2 * store.config.chunk_avg  # an edit rewrites the chunk it falls in, at worst a neighbour too
    name = f"3e {count} versions of {len(data) // MiB} MiB, 4 KiB edits: MiB/version"
    verdict(name, per_version / MiB, "MiB", f"<= {budget // MiB}", per_version <= budget)
    info(
        "3e   disk / one version",
        f"{total / first:.3f} x (full copies: {count} x); "
        f"LMDB {(meta_bytes(store) - meta_first) / (count - 1) / KiB:.1f} KiB/version; "
        f"{files} chunk files, {listed} versions listed",
    )
    drop_store(store)


# 4: chunk-size sweep --------------------------------------------------------------------------
def sweep_row(root: Path, data: memoryview, avg_kib: int) -> str:
    avg = avg_kib * KiB
    store = open_store(root, f"sweep-{avg_kib}", StoreConfig(chunk_min=avg // 4, chunk_avg=avg, chunk_max=avg * 4))
    start = time.perf_counter()
    record = put_stream(store, "stream", data)
    write_s = time.perf_counter() - start
    _, files = chunk_files(store)
    plan, _ = read_plan(store, record)
    read_s = timed(lambda: drain(store, record, plan), 3)
    single = layout(store, record)
    parts, _, _ = put_parts(store, "parts", split(data, 5 * MiB))
    parts_frac = shared(single, layout(store, parts))
    insert_frac = insert_shared(store, data)
    drop_store(store)
    per_gib = files * 1024 * MiB / len(data)
    return (
        f"{avg_kib:>8} {per_gib:>10.0f} {mibps(len(data), write_s):>12.1f} {mibps(len(data), read_s):>11.1f}"
        f" {100 * insert_frac:>9.1f} {100 * parts_frac:>13.1f}"
    )


def bench_sweep(root: Path, data: memoryview) -> None:
    print(f"\n4  chunk-size sweep on {len(data) // MiB} MiB (min = avg/4, max = avg*4)", flush=True)
    print(SWEEP_HEADER)
    for avg_kib in SWEEP_AVGS_KIB:
        print(sweep_row(root, data, avg_kib), flush=True)


# driver ---------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-mib", type=int, default=1024, help="stream size for throughput (1, 2)")
    p.add_argument("--write-runs", type=int, default=3, help="(dd, engine) write pairs; median ratio counts")
    p.add_argument("--profile", action="store_true", help="cProfile the first engine write (adds overhead)")
    p.add_argument("--dedup-mib", type=int, default=256, help="file size for parts/insertion (3b-3d)")
    p.add_argument("--copy-mib", type=int, default=64, help="size of each of the 20 copies (3a)")
    p.add_argument("--version-mib", type=int, default=64, help="size of the versioned file (3e)")
    p.add_argument("--versions", type=int, default=50, help="versions of it (3e)")
    p.add_argument("--dir", type=Path, default=Path("bench-data"), help="parent of the temp data dir")
    p.add_argument("--parts", type=int, default=0, help="also time an upload of N x 5 MiB parts (3d)")
    p.add_argument("--sweep", action="store_true", help="run the chunk-size sweep (4)")
    p.add_argument("--sweep-mib", type=int, default=256, help="file size for the sweep")
    p.add_argument("--only-sweep", action="store_true", help="skip 1-3")
    p.add_argument("--budget-s", type=int, default=3600, help="stop after this many seconds")
    return p.parse_args()


def out_of_time(signum: int, frame: object) -> NoReturn:
    raise SystemExit("time budget exceeded; stopping")


def run(args: argparse.Namespace, root: Path) -> None:
    size = (
        max(args.size_mib, args.dedup_mib, args.copy_mib, args.version_mib, args.sweep_mib if args.sweep else 0) * MiB
    )
    data = random_bytes("pyblob-bench", size)
    if not args.only_sweep:
        src = root / "src"
        with open(src, "wb") as f:
            f.write(data[: args.size_mib * MiB])
            os.fsync(f.fileno())  # no writeback of SRC may overlap the dd run
        store, record = bench_write(root, data[: args.size_mib * MiB], src, args.write_runs, args.profile)
        bench_read(store, record, src)
        drop_store(store)
        src.unlink()
        bench_copies(root, data[: args.copy_mib * MiB])
        bench_parts(root, data[: args.dedup_mib * MiB])
        bench_insert(root, data[: args.dedup_mib * MiB])
        bench_versions(root, data[: args.version_mib * MiB], args.versions)
        if args.parts:
            bench_many_parts(root, args.parts)
    if args.sweep or args.only_sweep:
        bench_sweep(root, data[: args.sweep_mib * MiB])


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(args.budget_s)
    args.dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="engine-", dir=args.dir))
    started = time.perf_counter()
    try:
        run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    info("\ntotal time", f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
