"""Cluster benchmark: the single-node embedded default (`pyblob serve` on a data dir: LMDB and the
data dir's chunks) beside a 3-node deployment (`scripts/cluster up`: PostgreSQL 15 x3 under Patroni,
SeaweedFS, 3 pyblob nodes on one database and one chunk bucket), both on loopback, both started and
stopped by this script, driven by the same boto3 clients in the same run:

- 4 KiB objects PUT, then GET (ops/s), from client processes of a few threads each;
- 32 MiB objects PUT, then GET (MB/s, 10^6 bytes), one stream per client process;
  each for the single node and for the cluster with its first 1, 2 and 3 nodes serving (client
  threads spread over those nodes), with the cluster's figure as a ratio of the single node's;
- the latency the database round trips add: PUT / GET / HEAD / DELETE of 4 KiB objects from one
  thread, median and p95 on the single node and on one cluster node, and the difference;
- one hot user: 4 KiB PUTs by one user from every client thread, through all 3 nodes at once (on the
  single node for reference), with the 503s and the transactions PostgreSQL made re-run (its logs'
  serialization failures); beside it the same PUTs by one user per client process.

    python bench/cluster.py [--seconds 3] [--clients 3] [--threads 4] [--large-mib 32] [--samples 200]

Each client process is its own Python with its own boto3 clients (path style, SigV4, one attempt per
request, no retries), so that one client's GIL is not the limit; a figure runs every process for
`--seconds` at once and counts what completed over the time until the last one finished. Every PUT
sends bytes of its own (nothing deduplicates).

What this cannot show on a small machine: the cluster (PostgreSQL x3, etcd x3, SeaweedFS's masters,
volume servers, filer and gateway, 3 pyblob nodes) and the clients share the machine's cores, so on
2 cores 1, 2 and 3 nodes cannot scale: a second node only takes cores the first one, the database
and the clients were using. The figures say what each operation costs over the database and the
chunk store's network hops, and that more nodes do not make things worse. Results and the machine
are in docs/benchmarks.md ("Cluster").
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from s3 import free_port, info, random_bytes, server, server_env, start_run  # bench/s3.py

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPT = ROOT / "scripts" / "cluster"
KiB, MiB, MB = 1024, 1024 * 1024, 1_000_000
SMALL = 4 * KiB
HOT_BUCKET = "hot"
LATENCY_OPS = ("PUT", "GET", "HEAD", "DELETE")
RERUN_MARKERS = (b"could not serialize access", b"deadlock detected")  # SQLSTATE 40001, 40P01
# A re-run in PostgreSQL's log: its ERROR line, then (log_min_error_statement) the statement that failed.
RERUN_STATEMENT = re.compile(
    rb"\[(\d+)\] ERROR:  (?:could not serialize access|deadlock detected)[^\n]*\n"
    rb"(?:[^\n]*\n){0,8}?[^\n]*\[\1\] STATEMENT:  ([^\n]*)"
)
Creds = tuple[str, str]  # access key, secret key


# the clients: one boto3 client per thread, in processes of their own ---------------------------------
def s3_client(url: str, creds: Creds) -> Any:
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"total_max_attempts": 1},  # `max_attempts: 1` would still retry once
        connect_timeout=10,
        read_timeout=120,
    )
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=creds[0],
        aws_secret_access_key=creds[1],
        config=config,
    )


@dataclass(frozen=True)
class Job:
    """What every thread of one client process does for one figure. Keys are `<tag>/p<process>/t<thread>/<n>`;
    a GET reads back the keys its own thread PUT under the same tag."""

    op: str  # "put" or "get"
    size: int
    tag: str
    urls: tuple[str, ...]  # client thread g of the run (process p, thread t: g = p * threads + t) uses urls[g % k]
    creds: Creds
    bucket: str
    threads: int
    seconds: float


@dataclass
class Tally:
    """What one client process did for one figure, with its clock (CLOCK_MONOTONIC is system-wide)."""

    ops: int = 0
    bytes: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    ended: float = 0.0
    failure: str = ""  # why the process could not run the job: the run stops


WRITTEN: dict[tuple[str, int], int] = {}  # in a client process: (tag, thread) -> keys 0..n-1 that PUT stored
CLIENTS: dict[tuple[str, Creds, int], Any] = {}  # in a client process: (url, creds, thread) -> boto3 client


def client_process(proc: int, jobs: Any, results: Any, start: Any) -> None:
    """Runs the jobs sent to this process until it gets None; all processes start each job together."""
    for job in iter(jobs.get, None):
        try:
            results.put(run_job(proc, job, start))
        except Exception as e:  # say why, and let the other processes stop waiting at the barrier
            start.abort()
            results.put(Tally(failure=f"client process {proc}: {e!r}"))


def run_job(proc: int, job: Job, start: Any) -> Tally:
    clients = [thread_client(proc, job, t) for t in range(job.threads)]
    for client in clients:
        client.head_bucket(Bucket=job.bucket)  # connected before the clock starts
    tallies = [Tally() for _ in clients]
    workers = [
        threading.Thread(target=run_thread, args=(proc, job, t, clients[t], tallies[t])) for t in range(job.threads)
    ]
    start.wait(timeout=120)
    began = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    total = Tally(started=began, ended=max(t.ended for t in tallies))
    for t in tallies:
        total.ops, total.bytes = total.ops + t.ops, total.bytes + t.bytes
        total.errors.update(t.errors)
    return total


def thread_client(proc: int, job: Job, thread: int) -> Any:
    url = job.urls[(proc * job.threads + thread) % len(job.urls)]
    key = (url, job.creds, thread)
    if key not in CLIENTS:
        CLIENTS[key] = s3_client(url, job.creds)
    return CLIENTS[key]


def run_thread(proc: int, job: Job, thread: int, client: Any, tally: Tally) -> None:
    """One thread's requests until the job's time is up; a PUT that failed is tried again on the same key."""
    stop = time.monotonic() + job.seconds
    stored = WRITTEN.get((job.tag, thread), 0)
    if job.op == "get" and not stored:
        tally.errors["nothing was PUT to read"] += 1
        stop = 0.0
    n = 0
    while time.monotonic() < stop:
        key = f"{job.tag}/p{proc}/t{thread}/{n % stored if job.op == 'get' else n}"
        try:
            tally.bytes += put_one(client, job, key) if job.op == "put" else get_one(client, job, key)
        except ClientError as e:
            tally.errors[f"{e.response['ResponseMetadata'].get('HTTPStatusCode')} {e.response['Error']['Code']}"] += 1
            continue
        except BotoCoreError as e:
            tally.errors[type(e).__name__] += 1
            continue
        tally.ops += 1
        n += 1
    if job.op == "put":
        WRITTEN[(job.tag, thread)] = n
    tally.ended = time.monotonic()


def put_one(client: Any, job: Job, key: str) -> int:
    client.put_object(Bucket=job.bucket, Key=key, Body=random_bytes(f"{job.urls[0]}/{key}", job.size))
    return job.size


def get_one(client: Any, job: Job, key: str) -> int:
    body = client.get_object(Bucket=job.bucket, Key=key)["Body"]
    return sum(len(piece) for piece in body.iter_chunks(MiB))


@dataclass
class Figure:
    """Every client process's tally of one figure, summed; `reruns`: PostgreSQL's by where the transaction
    failed, None for LMDB."""

    ops: int
    bytes: int
    seconds: float
    errors: Counter[str]
    reruns: Counter[str] | None = None

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.bytes / MB / self.seconds


class ClientPool:
    """`count` client processes, started once for the whole run, that run each figure's jobs in step."""

    def __init__(self, count: int):
        ctx = multiprocessing.get_context("spawn")  # no sockets, locks or boto3 state copied by a fork
        self.start, self.results = ctx.Barrier(count), ctx.Queue()
        self.queues = [ctx.Queue() for _ in range(count)]
        self.procs = [
            ctx.Process(target=client_process, args=(n, q, self.results, self.start), daemon=True)
            for n, q in enumerate(self.queues)
        ]
        for p in self.procs:
            p.start()

    def run(self, jobs: list[Job]) -> Figure:
        """`jobs[p]` in process p, all at once."""
        for queue, job in zip(self.queues, jobs, strict=True):
            queue.put(job)
        tallies = [self.results.get(timeout=jobs[0].seconds + 300) for _ in self.queues]
        if failed := [t.failure for t in tallies if t.failure]:
            raise SystemExit("; ".join(failed))
        errors: Counter[str] = Counter()
        for t in tallies:
            errors.update(t.errors)
        seconds = max(t.ended for t in tallies) - min(t.started for t in tallies)
        return Figure(sum(t.ops for t in tallies), sum(t.bytes for t in tallies), seconds, errors)

    def close(self) -> None:
        for queue in self.queues:
            queue.put(None)
        for p in self.procs:
            p.join(30)
            if p.is_alive():
                p.terminate()
                p.join()


# the servers ------------------------------------------------------------------------------------------
@dataclass
class Target:
    """A deployment to measure: its node URLs, one user per client process, and a user for the hot phase."""

    name: str
    urls: list[str]
    users: list[Creds]
    admin: Creds
    cluster_dir: Path | None = None  # the cluster's: where its PostgreSQL logs are

    def first(self, k: int) -> Target:
        return Target(f"{k} node{'s' if k > 1 else ''}", self.urls[:k], self.users, self.admin, self.cluster_dir)

    def reruns(self) -> Counter[str] | None:
        """The transactions PostgreSQL has made re-run so far (serialization failures and deadlocks in its
        logs), by the statement that failed: on the volatile store's table, on the metadata's, or COMMIT."""
        if self.cluster_dir is None:
            return None
        found: Counter[str] = Counter()
        for path in (self.cluster_dir / "logs").glob("pg-*.log"):
            log = path.read_bytes()
            kinds = Counter(statement_kind(m.group(2)) for m in RERUN_STATEMENT.finditer(log))
            kinds["statement not found"] = sum(log.count(m) for m in RERUN_MARKERS) - kinds.total()
            found.update(kinds)
        return found


def statement_kind(statement: bytes) -> str:
    if b"pyblob_volatile" in statement:
        return "volatile store"
    return "at COMMIT" if statement.strip() == b"COMMIT" else "metadata"


def pyblob_user(name: str, env: dict[str, str], root: Path, *data_dir: str) -> Creds:
    argv = [sys.executable, "-m", "pyblob", "user", "add", name, "--json", *data_dir]
    out = subprocess.run(argv, env=env, cwd=root, capture_output=True, text=True, check=True, timeout=120)
    made = json.loads(out.stdout)
    return str(made["access_key"]), str(made["secret_key"])


@contextmanager
def single_node(root: Path, clients: int) -> Iterator[Target]:
    """`pyblob serve` on a fresh data dir, its defaults (LMDB, local chunks, durable), one user per client."""
    admin = ("AK" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30))
    env = server_env(
        PYBLOB_DATA_DIR=str(root / "single-data"), PYBLOB_ADMIN_ACCESS_KEY=admin[0], PYBLOB_ADMIN_SECRET_KEY=admin[1]
    )
    port = free_port()
    argv = [sys.executable, "-m", "pyblob", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with server("pyblob-single", argv, env, root, port) as url:  # its first start makes the admin
        users = [pyblob_user(f"bench{p}", env, root) for p in range(clients)]
        yield Target("single node", [url], users, admin)


def cluster_command(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(CLUSTER_SCRIPT), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


@contextmanager
def cluster(root: Path, clients: int) -> Iterator[Target]:
    """`scripts/cluster up` in `root/cluster`, one user per client made with the nodes' settings;
    `scripts/cluster down` at the end, always."""
    directory = root / "cluster"
    started = time.monotonic()
    try:
        up = cluster_command("up", "--dir", str(directory), timeout=240)
        if up.returncode != 0:
            raise SystemExit(f"scripts/cluster up failed ({up.returncode}):\n{up.stderr[-4000:]}")
        summary = json.loads(up.stdout.strip().splitlines()[-1])
        info("cluster", f"up in {time.monotonic() - started:.0f} s, nodes {' '.join(summary['nodes'])}")
        state = json.loads((directory / "state.json").read_text())
        env = server_env() | {k: v for k, v in state["node_env"].items() if k.startswith("PYBLOB_")}
        data_dir = ("--data-dir", str(root / "cluster-cli-data"))
        users = [pyblob_user(f"bench{p}", env, root, *data_dir) for p in range(clients)]
        admin = (summary["access_key"], summary["secret_key"])
        yield Target("cluster", list(summary["nodes"]), users, admin, directory)
    finally:
        down = cluster_command("down", "--dir", str(directory), timeout=180)
        info("cluster", f"down ({down.returncode}): {down.stdout.strip()[-300:]}")


def make_buckets(target: Target) -> list[str]:
    """A bucket per client process's user, and the hot bucket of the admin; their names, by process."""
    names = [f"bench{p}" for p in range(len(target.users))]
    for creds, name in zip(target.users, names, strict=True):
        s3_client(target.urls[0], creds).create_bucket(Bucket=name)
    s3_client(target.urls[0], target.admin).create_bucket(Bucket=HOT_BUCKET)
    return names


# the figures --------------------------------------------------------------------------------------------
THROUGHPUT = (  # (label, op, size key, unit)
    ("4 KiB PUT", "put", "small", "ops/s"),
    ("4 KiB GET", "get", "small", "ops/s"),
    ("{large} MiB PUT", "put", "large", "MB/s"),
    ("{large} MiB GET", "get", "large", "MB/s"),
)


def throughput(pool: ClientPool, targets: list[Target], args: argparse.Namespace) -> dict[str, list[Figure]]:
    """Each figure on every target in turn, so the machine's load drifts over all of them alike."""
    figures: dict[str, list[Figure]] = {}
    for label, op, size, _ in THROUGHPUT:
        nbytes, threads = (SMALL, args.threads) if size == "small" else (args.large_mib * MiB, 1)
        figures[label] = []
        for target in targets:
            tag = f"{target.name.replace(' ', '-')}-{size}"
            job = Job(op, nbytes, tag, tuple(target.urls), target.admin, "", threads, args.seconds)
            jobs = [replace(job, creds=target.users[p], bucket=f"bench{p}") for p in range(args.clients)]
            figures[label].append(with_reruns(target, functools.partial(pool.run, jobs)))
    return figures


def hot_user(pool: ClientPool, target: Target, args: argparse.Namespace) -> Figure:
    """4 KiB PUTs by one user (the admin) into one bucket from every client thread, over all of `target`'s nodes."""
    job = Job("put", SMALL, "hot", tuple(target.urls), target.admin, HOT_BUCKET, args.threads, args.seconds)
    return with_reruns(target, functools.partial(pool.run, [job] * args.clients))


def with_reruns(target: Target, run: Callable[[], Figure]) -> Figure:
    """`run()`'s figure with the transactions PostgreSQL made re-run meanwhile (for a cluster)."""
    before = target.reruns()
    figure = run()
    after = target.reruns()
    if before is not None and after is not None:
        figure.reruns = after - before
    return figure


def latencies(targets: list[Target], samples: int) -> list[dict[str, list[float]]]:
    """Seconds of each PUT, then GET, HEAD and DELETE of `samples` 4 KiB objects, one request at a time
    through each target's first node, alternating between the targets request by request so that the
    machine's load falls on all alike."""
    clients = [s3_client(t.urls[0], t.users[0]) for t in targets]
    for s3 in clients:
        for _ in range(10):
            s3.head_bucket(Bucket="bench0")  # connected, and each server's first-request work done
    times: list[dict[str, list[float]]] = [{op: [] for op in LATENCY_OPS} for _ in targets]
    for op in LATENCY_OPS:
        for i in range(samples):
            for s3, target, mine in zip(clients, targets, times, strict=True):
                body = random_bytes(f"{target.name}/latency/{i}", SMALL) if op == "PUT" else b""
                start = time.perf_counter()
                one_request(s3, op, f"latency/{i}", body)
                mine[op].append(time.perf_counter() - start)
    return times


def one_request(s3: Any, op: str, key: str, body: bytes) -> None:
    if op == "PUT":
        s3.put_object(Bucket="bench0", Key=key, Body=body)
    elif op == "GET":
        s3.get_object(Bucket="bench0", Key=key)["Body"].read()
    elif op == "HEAD":
        s3.head_object(Bucket="bench0", Key=key)
    else:
        s3.delete_object(Bucket="bench0", Key=key)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


# the report --------------------------------------------------------------------------------------------
def report_throughput(figures: dict[str, list[Figure]], targets: list[Target], args: argparse.Namespace) -> None:
    print(f"\n{'figure':<22}" + "".join(f"{t.name:>22}" for t in targets))
    for label, _, _, unit in THROUGHPUT:
        rates = [f.ops_per_s if unit == "ops/s" else f.mb_per_s for f in figures[label]]
        cells = [f"{rates[0]:,.1f}"] + [f"{r:,.1f} ({r / rates[0]:.2f}x)" for r in rates[1:]]
        name = f"{label.format(large=args.large_mib)} {unit}"
        print(f"{name:<22}" + "".join(f"{c:>22}" for c in cells))
    for label, row in figures.items():
        for target, figure in zip(targets, row, strict=True):
            if figure.errors:
                info(f"  errors, {label.format(large=args.large_mib)}, {target.name}", repr(dict(figure.errors)))
            if figure.reruns and figure.ops:
                info(f"  re-runs, {label.format(large=args.large_mib)}, {target.name}", per_100(figure))


def per_100(figure: Figure) -> str:
    total = figure.reruns.total() if figure.reruns else 0
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted((figure.reruns or Counter()).items()))
    return f"{total} database re-runs ({kinds or 'none'}), {100 * total / max(figure.ops, 1):.1f} per 100 requests"


def report_latency(single: dict[str, list[float]], node: dict[str, list[float]], samples: int) -> None:
    print(f"\n4 KiB, one thread, {samples} requests each, ms: single node, one cluster node, added by the cluster")
    print(f"{'':8}{'median':>10}{'p95':>10}{'median':>12}{'p95':>10}{'+median':>12}{'+p95':>10}")
    for op in LATENCY_OPS:
        ours = (statistics.median(single[op]) * 1e3, p95(single[op]) * 1e3)
        theirs = (statistics.median(node[op]) * 1e3, p95(node[op]) * 1e3)
        cells = [*ours, *theirs, theirs[0] - ours[0], theirs[1] - ours[1]]
        print(f"{op:<8}" + "".join(f"{c:>{w}.2f}" for c, w in zip(cells, (10, 10, 12, 10, 12, 10), strict=True)))


def report_hot(single: Figure, hot: Figure, spread: Figure, args: argparse.Namespace) -> None:
    writers = f"{args.clients} processes x {args.threads} threads"
    print(f"\none user, 4 KiB PUTs from {writers}, one bucket:")
    info("  single node", f"{single.ops_per_s:,.1f} ops/s, errors {dict(single.errors)}")
    info(
        "  3 cluster nodes at once",
        f"{hot.ops_per_s:,.1f} ops/s ({hot.ops_per_s / single.ops_per_s:.2f}x), "
        f"503s {sum(n for e, n in hot.errors.items() if e.startswith('503'))}, errors {dict(hot.errors)}, "
        f"{per_100(hot)}",
    )
    info(
        "  beside: one user per process",
        f"{spread.ops_per_s:,.1f} ops/s, {per_100(spread)}; one user / one per process "
        f"{hot.ops_per_s / spread.ops_per_s:.2f}x",
    )


# driver --------------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=3.0, help="time per throughput figure")
    p.add_argument("--clients", type=int, default=3, help="client processes")
    p.add_argument("--threads", type=int, default=4, help="threads per client process for 4 KiB objects")
    p.add_argument("--large-mib", type=int, default=32, help="size of the large objects (one stream per process)")
    p.add_argument("--samples", type=int, default=200, help="requests of each kind for the latencies")
    p.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="parent of the run's temp dir (as root, the cluster's postgres user must be able to reach it)",
    )
    p.add_argument("--budget-s", type=int, default=600, help="stop after this many seconds")
    args = p.parse_args()
    if not (1 <= args.clients <= 16 and 1 <= args.threads <= 16 and 0 < args.seconds <= 60):
        p.error("keep it bounded: 1-16 clients, 1-16 threads, up to 60 seconds per figure")
    if not (1 <= args.large_mib <= 256 and 2 <= args.samples <= 2000):
        p.error("keep it bounded: 1-256 MiB large objects, 2-2000 latency samples")
    return args


def main() -> None:
    args = parse_args()
    root = start_run(args.dir, "pyblob-bench-cluster-", args.budget_s)
    os.environ["AWS_CONFIG_FILE"] = str(root / "absent" / "config")  # no profile of the machine in the clients
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(root / "absent" / "credentials")
    started = time.perf_counter()
    print(
        f"# {os.cpu_count()} cpus shared by the servers and the clients; {args.clients} client processes x "
        f"{args.threads} threads (4 KiB), x 1 ({args.large_mib} MiB); {args.seconds:.0f} s per figure",
        flush=True,
    )
    try:
        with ExitStack() as stack:
            whole = stack.enter_context(cluster(root, args.clients))
            single = stack.enter_context(single_node(root, args.clients))
            for target in (single, whole):
                make_buckets(target)
            pool = ClientPool(args.clients)
            stack.callback(pool.close)
            alone, over_cluster = latencies([single, whole], args.samples)
            report_latency(alone, over_cluster, args.samples)
            targets = [single, *(whole.first(k) for k in (1, 2, 3))]
            figures = throughput(pool, targets, args)
            report_throughput(figures, targets, args)
            spread = figures["4 KiB PUT"][-1]  # 3 nodes, one user per client process
            report_hot(hot_user(pool, single, args), hot_user(pool, whole, args), spread, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    info("\ntotal time", f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
