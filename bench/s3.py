"""S3 API benchmark: the same boto3 client code against `pyblob serve` and moto's server.

    python bench/s3.py [--size-mib 256] [--small-count 500] [--dir DIR] [--runs 3]

Both servers run on free 127.0.0.1 ports, started and stopped by this script, their output going to
log files in the temp dir. moto (`python -m moto.server`) is the reference: an S3 in Python that keeps
its state in process (objects over ~5 MiB spooled to unlinked temp files, never fsynced). Each figure is
one line: pyblob, moto, and the ratio pyblob / moto (above 1: pyblob is faster). Results and the machine
they came from are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NoReturn

import blake3
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

KiB, MiB = 1024, 1024 * 1024
ACCESS_KEY, SECRET_KEY = "PYBLOBBENCHKEY000001", "pyblob-bench-secret-key-0000000000000000"
BUCKET = "bench"
LIST_PAGE, LIST_REPEATS = 100, 20
Results = dict[str, float]


# reporting and timing ------------------------------------------------------------------------
def row(name: str, unit: str, ours: float, ref: float) -> None:
    print(f"{name:<44} {ours:>10.1f} {ref:>10.1f} {unit:<6} {ours / ref:>7.3f}", flush=True)


def info(name: str, text: str) -> None:
    print(f"{name:<44} {text}", flush=True)


def best_of(runs: int, fn: Callable[[int], object]) -> float:
    """Seconds of the fastest of `runs` calls; each call gets its run number."""
    best = float("inf")
    for run in range(runs):
        start = time.perf_counter()
        fn(run)
        best = min(best, time.perf_counter() - start)
    return best


def random_bytes(seed: str, size: int) -> bytes:
    """Incompressible, reproducible bytes (BLAKE3 in XOF mode, several GB/s)."""
    return blake3.blake3(seed.encode()).digest(length=size)


# servers --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(**extra: str) -> dict[str, str]:
    """The environment without AWS_* (the machine sets AWS_CA_BUNDLE) plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return env | extra


@contextmanager
def server(name: str, argv: list[str], env: dict[str, str], root: Path, port: int) -> Iterator[str]:
    """Run `argv` with output to `root/<name>.log`, yield its URL once it answers, stop it by PID."""
    with open(root / f"{name}.log", "wb") as log:
        proc = subprocess.Popen(argv, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    info(f"{name} server", f"pid {proc.pid}, port {port}, log {root / name}.log")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Any HTTP answer (an S3 error included) means the server is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server pid {proc.pid} exited with {proc.returncode}; see its log")
        try:
            urllib.request.urlopen(url + "/", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def pyblob_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "pyblob", "serve", "--host", "127.0.0.1", "--port", str(port)]


def moto_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def start_servers(stack: ExitStack, root: Path) -> tuple[str, str]:
    """pyblob on a fresh data dir with the admin key imported; moto with its temp files under `root`."""
    pyblob_env = server_env(
        PYBLOB_DATA_DIR=str(root / "pyblob-data"),
        PYBLOB_ADMIN_ACCESS_KEY=ACCESS_KEY,
        PYBLOB_ADMIN_SECRET_KEY=SECRET_KEY,
    )
    (root / "moto-tmp").mkdir()
    moto_env = server_env(TMPDIR=str(root / "moto-tmp"))
    port = free_port()
    pyblob_url = stack.enter_context(server("pyblob", pyblob_argv(port), pyblob_env, root, port))
    port = free_port()
    moto_url = stack.enter_context(server("moto", moto_argv(port), moto_env, root, port))
    return pyblob_url, moto_url


# the client and the figures --------------------------------------------------------------------
def s3_client(url: str) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name="us-east-1"
    )
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, max_pool_connections=16)
    return session.client("s3", endpoint_url=url, config=config)


def bench_large(s3: Any, root: Path, size: int, runs: int) -> Results:
    """(1) put_object of fresh bytes per run, (2) GET read fully, (3) upload_file of a fresh file per run."""
    bodies = [random_bytes(f"put-{run}", size) for run in range(runs)]
    put_s = best_of(runs, lambda run: s3.put_object(Bucket=BUCKET, Key=f"big-{run}", Body=bodies[run]))
    get_s = best_of(runs, lambda run: drain(s3, "big-0", size))
    bodies.clear()  # free the memory before the multipart uploads
    upload_s = min(timed_upload(s3, root / "upload.src", f"mp-{run}", size) for run in range(runs))
    return {"put": size / MiB / put_s, "get": size / MiB / get_s, "upload": size / MiB / upload_s}


def timed_upload(s3: Any, src: Path, key: str, size: int) -> float:
    """Seconds of upload_file (default TransferConfig: 8 MiB parts) of a fresh file written beforehand."""
    src.write_bytes(random_bytes(key, size))
    start = time.perf_counter()
    s3.upload_file(str(src), BUCKET, key, Config=TransferConfig())
    elapsed = time.perf_counter() - start
    src.unlink()
    return elapsed


def drain(s3: Any, key: str, size: int) -> None:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
    got = sum(len(piece) for piece in body.iter_chunks(MiB))
    assert got == size, f"read {got} of {size} bytes"


def bench_small(s3: Any, count: int, runs: int) -> Results:
    """(4) `count` 4 KiB PUTs, fresh bytes per run; (5) ListObjectsV2 paged by 100; (6) `count` HEADs."""
    keys = [f"small/{i:05d}" for i in range(count)]

    def put_all(run: int) -> None:
        for i, key in enumerate(keys):
            s3.put_object(Bucket=BUCKET, Key=key, Body=random_bytes(f"small-{run}-{i}", 4 * KiB))

    put_s = best_of(runs, put_all)
    pages = sum(1 for _ in list_pages(s3))
    list_s = best_of(runs, lambda _: [sum(1 for _ in list_pages(s3)) for _ in range(LIST_REPEATS)])
    head_s = best_of(runs, lambda _: [s3.head_object(Bucket=BUCKET, Key=key) for key in keys])
    return {"small": count / put_s, "list": pages * LIST_REPEATS / list_s, "head": count / head_s}


def list_pages(s3: Any) -> Iterator[int]:
    """The pages of one full listing of small/, each checked for its size."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=BUCKET, Prefix="small/", PaginationConfig={"PageSize": LIST_PAGE}):
        assert page["KeyCount"] <= LIST_PAGE
        yield page["KeyCount"]


def measure(url: str, root: Path, args: argparse.Namespace) -> Results:
    s3 = s3_client(url)
    s3.create_bucket(Bucket=BUCKET)
    return bench_large(s3, root, args.size_mib * MiB, args.runs) | bench_small(s3, args.small_count, args.runs)


def chunk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "pyblob-data" / "chunks").rglob("*") if p.is_file())


def dedup_report(url: str, root: Path, size: int) -> None:
    """Upload big-0's bytes again with upload_file (8 MiB parts): a deduplicating store adds ~nothing."""
    s3 = s3_client(url)
    src = root / "upload.src"
    src.write_bytes(random_bytes("put-0", size))
    before = chunk_bytes(root)
    s3.upload_file(str(src), BUCKET, "copy-of-big-0", Config=TransferConfig())
    src.unlink()
    after = chunk_bytes(root)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    logical = sum(o["Size"] for page in pages for o in page.get("Contents", []))
    info(
        "pyblob: multipart copy of big-0 added",
        f"{(after - before) / MiB:.1f} MiB to chunks/ ({size / MiB:.0f} MiB logical)",
    )
    info(
        "pyblob: chunks/ bytes / distinct content", f"{after / MiB:.1f} / {(logical - size) / MiB:.1f} MiB (before GC)"
    )
    info(
        "pyblob: chunks/ bytes / logical bytes", f"{after / MiB:.1f} / {logical / MiB:.1f} MiB = {after / logical:.3f}"
    )


# driver ---------------------------------------------------------------------------------------
FIGURES = (
    ("put", "1 PUT one large object (put_object)", "MiB/s"),
    ("get", "2 GET it, read fully", "MiB/s"),
    ("upload", "3 upload_file, 8 MiB parts", "MiB/s"),
    ("small", "4 PUT 4 KiB objects, one thread", "req/s"),
    ("list", "5 ListObjectsV2, pages of 100", "page/s"),
    ("head", "6 HEAD the small objects", "req/s"),
)


def report(ours: Results, ref: Results, args: argparse.Namespace) -> None:
    print(f"\n{args.size_mib} MiB large objects, {args.small_count} small ones, best of {args.runs}")
    print(f"{'figure':<44} {'pyblob':>10} {'moto':>10} {'unit':<6} {'ratio':>7}")
    for key, name, unit in FIGURES:
        row(name, unit, ours[key], ref[key])


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-mib", type=int, default=256, help="size of the large object (1-3)")
    p.add_argument("--small-count", type=int, default=500, help="number of 4 KiB objects (4-6)")
    p.add_argument("--runs", type=int, default=3, help="runs per figure; the best counts")
    p.add_argument("--dir", type=Path, default=Path("bench-data"), help="parent of the temp data dir")
    p.add_argument("--budget-s", type=int, default=1200, help="stop after this many seconds")
    return p.parse_args()


def out_of_time(signum: int, frame: object) -> NoReturn:
    raise SystemExit("time budget exceeded; stopping")


def start_run(parent: Path, prefix: str, budget_s: int) -> Path:
    """No AWS_* of the machine, a time budget, and a fresh scratch dir under `parent`."""
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[name]  # botocore reads AWS_CA_BUNDLE, AWS_PROFILE, ... from here
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(budget_s)
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent)).resolve()


def main() -> None:
    args = parse_args()
    root = start_run(args.dir, "s3-", args.budget_s)
    started = time.perf_counter()
    try:
        with ExitStack() as stack:
            pyblob_url, moto_url = start_servers(stack, root)
            ours = measure(pyblob_url, root, args)
            ref = measure(moto_url, root, args)
            report(ours, ref, args)
            dedup_report(pyblob_url, root, args.size_mib * MiB)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    info("\ntotal time", f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
