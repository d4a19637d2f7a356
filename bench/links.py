"""Short links (`GET /s/<id>`) served by `pyblob serve` against nginx serving the same files, same run.

    python bench/links.py [--size-mib 256] [--requests 2000] [--concurrency 32] [--ranges 400]
                          [--workers 2] [--runs 3] [--dir DIR] [--profile] [--no-ratelimit]

Both servers run on free 127.0.0.1 ports, started and stopped (by PID) by this script, with their
output in log files in a fresh temp dir under --dir that is removed at the end. nginx is the
reference: a minimal generated config (2 workers, sendfile, access_log off) whose root holds the
very bytes pyblob serves. pyblob gets a user from `pyblob user add --json`, the files through boto3
and one link each through `POST /api/links`. Figures, each the median of --runs runs that alternate
between the servers, with the ratio pyblob / nginx (above 1: pyblob is faster):

  1. one large file downloaded by `curl -o /dev/null` (a C client, so the client is not the limit);
  2. 4 KiB and 100 KiB files, --requests GETs over --concurrency keep-alive connections from a
     small asyncio HTTP/1.1 client (uvloop when installed) in this process; nginx answers
     --ref-scale times as many, so that its runs are not over in a few ticks;
  3. --ranges random 1 MiB Range requests of the large file, same client (nginx: --ref-scale times);
  4. the 4 KiB file through a link with `max_downloads` (one synced LMDB commit per download),
     against the same nginx figure as 2.

The client shares the machine with the server: its CPU use is printed for every figure, and the
servers' CPU per request (per MiB for 1; all their processes, from /proc), which depends less than
throughput on what else the machine is running. pyblob's rate limits stay on (the per-request token
bucket is part of serving a link) with a rate no run can reach; `--no-ratelimit` turns them off.
`--profile` adds a py-spy profile of the pyblob workers during extra 4 KiB requests.
Results and the machine they came from are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Coroutine
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from s3 import (  # bench/s3.py, next to this file
    free_port,
    info,
    random_bytes,
    server,
    server_env,
    start_run,
)

KiB, MiB = 1024, 1024 * 1024
BUCKET = "links"
CLK_TCK = os.sysconf("SC_CLK_TCK")
FILES = {"big.bin": 0, "4k.bin": 4 * KiB, "100k.bin": 100 * KiB}  # size 0: --size-mib


# measuring ------------------------------------------------------------------------------------
@dataclass
class Run:
    rate: float  # MiB/s or req/s
    seconds: float  # of the timed part
    client_cpu: float  # seconds, over the timed part
    server_cpu: float  # seconds, over the timed part (read from /proc just outside it)


@dataclass
class Target:
    name: str
    host: str
    port: int
    pid: int
    paths: dict[str, str] = field(default_factory=dict)  # figure name -> path of the file it reads

    def url(self, figure: str) -> str:
        return f"http://{self.host}:{self.port}{self.paths[figure]}"


@dataclass(frozen=True)
class Timed:
    seconds: float
    amount: float  # MiB or requests
    client_cpu: float
    server_cpu: float


Work = Callable[[], Timed]


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and all its descendants, from /proc."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / CLK_TCK


def children_cpu() -> float:
    """CPU seconds of the child processes waited for so far (curl)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(work: Work) -> Run:
    timed = work()
    return Run(timed.amount / timed.seconds, timed.seconds, timed.client_cpu, timed.server_cpu)


# clients --------------------------------------------------------------------------------------
def curl_download(target: Target, size: int) -> Timed:
    """One GET of the large file written to /dev/null by curl, timed by curl."""
    url = target.url("big")
    argv = ["curl", "-sS", "--fail", "-o", os.devnull, "-w", "%{size_download} %{time_total}", url]
    client, server = children_cpu(), tree_cpu(target.pid)
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300).stdout.split()
    server = tree_cpu(target.pid) - server
    assert int(out[0]) == size, f"curl got {out[0]} of {size} bytes from {url}"
    return Timed(float(out[1]), size / MiB, children_cpu() - client, server)


@dataclass(frozen=True)
class Request:
    raw: bytes
    status: int
    length: int


def get(host: str, path: str, status: int, length: int, extra: str = "") -> Request:
    raw = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pyblob-bench\r\n{extra}\r\n".encode()
    return Request(raw, status, length)


class Connection:
    """One keep-alive HTTP/1.1 connection reading answers into a buffer of its own, bodies discarded.

    Lower-level than asyncio streams on purpose: `StreamReader.readexactly` of a 1 MiB body grows
    and copies a buffer, which would make the client, not the server, the limit."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray(256 * KiB)
        self.view = memoryview(self.buf)

    async def exchange(self, req: Request) -> None:
        """Send one request and read its answer whole; the status and Content-Length must be the expected."""
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(self.sock, req.raw)
        got, end = 0, -1
        while end < 0:
            got += await self.recv(got)
            end = self.buf.find(b"\r\n\r\n", 0, got)
        left = check_head(bytes(self.buf[:end]).lower(), req) - (got - end - 4)
        while left > 0:
            left -= await self.recv(0)
        assert left == 0, "more bytes than Content-Length"

    async def recv(self, at: int) -> int:
        n = await asyncio.get_running_loop().sock_recv_into(self.sock, self.view[at:])
        if n == 0:
            raise ConnectionError("server closed the connection")
        return n


def check_head(head: bytes, req: Request) -> int:
    """The Content-Length of a response head (lowercased), checked against what `req` expects."""
    at = head.find(b"\r\ncontent-length:")
    if int(head[9:12]) != req.status or at < 0:
        raise AssertionError(f"expected {req.status} with a Content-Length, got: {head[:400]!r}")
    stop = head.find(b"\r\n", at + 2)
    length = int(head[at + 17 : stop if stop >= 0 else len(head)])
    assert length == req.length, f"Content-Length {length}, expected {req.length}"
    return length


async def connect(host: str, port: int) -> Connection:
    sock = socket.socket()
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    return Connection(sock)


async def load(target: Target, requests: list[Request], concurrency: int) -> Timed:
    """`requests` over `concurrency` keep-alive connections, opened and warmed before the timing."""
    conns = [await connect(target.host, target.port) for _ in range(concurrency)]
    for conn in conns:
        await conn.exchange(requests[0])
    todo = iter(requests)

    async def worker(conn: Connection) -> None:
        for req in todo:  # one iterator shared by all: a free connection takes the next request
            await conn.exchange(req)

    server = tree_cpu(target.pid)
    start, client = time.perf_counter(), time.thread_time()  # the client is this one thread
    await asyncio.gather(*(worker(conn) for conn in conns))
    seconds, client = time.perf_counter() - start, time.thread_time() - client
    timed = Timed(seconds, len(requests), client, tree_cpu(target.pid) - server)
    for conn in conns:
        conn.sock.close()
    return timed


def run_async(coro: Coroutine[Any, Any, Timed]) -> Timed:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def load_work(target: Target, requests: list[Request], concurrency: int) -> Work:
    return lambda: run_async(load(target, requests, concurrency))


# the workload ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Figure:
    key: str
    title: str
    unit: str
    ref: str  # the nginx figure it is compared with


def figures(args: argparse.Namespace) -> list[Figure]:
    return [
        Figure("big", f"1 {args.size_mib} MiB file, curl -o /dev/null", "MiB/s", "big"),
        Figure("4k", f"2 4 KiB file, {args.concurrency} conns keep-alive", "req/s", "4k"),
        Figure("100k", f"2 100 KiB file, {args.concurrency} conns keep-alive", "req/s", "100k"),
        Figure("range", f"3 1 MiB random ranges of {args.size_mib} MiB, {args.concurrency} conns", "req/s", "range"),
        Figure("budget", "4 4 KiB, link with max_downloads (vs nginx 2)", "req/s", "4k"),
    ]


def random_ranges(size: int, count: int, length: int = MiB) -> list[tuple[int, int]]:
    rng = random.Random(1234)  # the same ranges for both servers
    return [(start, start + length - 1) for start in (rng.randrange(0, size - length) for _ in range(count))]


def work_for(target: Target, key: str, args: argparse.Namespace, size: int) -> Work:
    host, path = f"127.0.0.1:{target.port}", target.paths.get(key, "")
    scale = args.ref_scale if target.name == "nginx" else 1  # so that both runs last long enough
    if key == "big":
        return lambda: curl_download(target, size)
    if key == "range":
        ranges = random_ranges(size, args.ranges * scale)
        reqs = [get(host, target.paths["big"], 206, MiB, f"Range: bytes={a}-{b}\r\n") for a, b in ranges]
        return load_work(target, reqs, args.concurrency)
    count = args.requests // 4 if key == "budget" else args.requests * scale
    length = FILES["4k.bin" if key in ("4k", "budget") else "100k.bin"]
    return load_work(target, [get(host, path, 200, length)] * count, args.concurrency)


def measure_all(pyblob: Target, nginx: Target, args: argparse.Namespace, size: int) -> dict[tuple[str, str], list[Run]]:
    """Every figure, `runs` times, alternating the servers within each run."""
    results: dict[tuple[str, str], list[Run]] = {}
    for run in range(args.runs):
        for fig in figures(args):
            for target in (pyblob, nginx):
                if fig.key == "budget" and target is nginx:
                    continue
                result = measured(work_for(target, fig.key, args, size))
                results.setdefault((fig.key, target.name), []).append(result)
        info(f"run {run + 1} of {args.runs}", "done")
    return results


# reporting --------------------------------------------------------------------------------------
def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]


def client_pct(run: Run) -> str:
    return f"{100 * run.client_cpu / run.seconds:.0f}%"


def server_cost(run: Run) -> float:
    """Server CPU µs per request or per MiB."""
    return 1e6 * run.server_cpu / (run.rate * run.seconds)


def report(results: dict[tuple[str, str], list[Run]], args: argparse.Namespace) -> None:
    print(f"\nmedian of {args.runs}; pyblob --workers {args.workers}; client CPU in % of one core over the")
    print("timed part; server CPU in µs per request (per MiB for 1), all its processes, from /proc")
    print(
        f"{'figure':<50} {'pyblob':>9} {'nginx':>9} {'unit':<6} {'ratio':>6}  {'client CPU':>11}"
        f"  {'server CPU µs':>15} {'ratio':>6}"
    )
    for fig in figures(args):
        ours, ref = median_run(results[(fig.key, "pyblob")]), median_run(results[(fig.ref, "nginx")])
        clients = f"{client_pct(ours)} / {client_pct(ref)}"
        costs = f"{server_cost(ours):.0f} / {server_cost(ref):.0f}"
        cost_ratio = f"{server_cost(ours) / server_cost(ref):.1f}" if ref.server_cpu >= 0.05 else "-"
        print(
            f"{fig.title:<50} {ours.rate:>9.1f} {ref.rate:>9.1f} {fig.unit:<6} {ours.rate / ref.rate:>6.3f}"
            f"  {clients:>11}  {costs:>15} {cost_ratio:>6}"
        )
    for fig in figures(args):
        runs = results[(fig.key, "pyblob")]
        info(f"  {fig.key} pyblob, every run", ", ".join(f"{r.rate:.1f}" for r in runs))
        if fig.key == fig.ref:
            info(f"  {fig.key} nginx, every run", ", ".join(f"{r.rate:.1f}" for r in results[(fig.key, "nginx")]))


# servers ----------------------------------------------------------------------------------------
NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 2;
{user}pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path {root}/nginx-tmp/body;
    proxy_temp_path {root}/nginx-tmp/proxy;
    fastcgi_temp_path {root}/nginx-tmp/fastcgi;
    uwsgi_temp_path {root}/nginx-tmp/uwsgi;
    scgi_temp_path {root}/nginx-tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {www};
    }}
}}
"""


def start_nginx(stack: ExitStack, root: Path, www: Path) -> Target:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx not found: install it for the benchmark (apt-get install -y nginx)")
    port, root = free_port(), root.resolve()
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers must read the 0700 temp dir
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, root=root, port=port, www=www.resolve()))
    (root / "nginx-tmp").mkdir()
    argv = [nginx, "-p", str(root), "-e", str(root / "nginx-error.log"), "-c", str(conf)]
    stack.enter_context(server("nginx", argv, server_env(), root, port))
    paths = {"big": "/big.bin", "4k": "/4k.bin", "100k": "/100k.bin"}
    return Target("nginx", "127.0.0.1", port, int((root / "nginx.pid").read_text()), paths)


def pyblob_env(root: Path, args: argparse.Namespace) -> dict[str, str]:
    rate = "0" if args.no_ratelimit else "1e9"
    return server_env(
        PYBLOB_DATA_DIR=str(root / "pyblob-data"),
        PYBLOB_RATELIMIT_LINKS_IP_RATE=rate,
        PYBLOB_RATELIMIT_LINKS_IP_BURST="1e9",
    )


def add_user(root: Path, env: dict[str, str]) -> dict[str, str]:
    argv = [sys.executable, "-m", "pyblob", "user", "add", "bench", "--json"]
    out = subprocess.run(argv, env=env, cwd=root, capture_output=True, text=True, check=True, timeout=60)
    return dict(json.loads(out.stdout))


def start_pyblob(stack: ExitStack, root: Path, args: argparse.Namespace) -> tuple[Target, dict[str, str]]:
    env = pyblob_env(root, args)
    creds = add_user(root, env)
    port = free_port()
    argv = [sys.executable, "-m", "pyblob", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc_env = env | {"PYBLOB_WORKERS": str(args.workers)}
    stack.enter_context(server("pyblob", argv, proc_env, root, port))
    return Target("pyblob", "127.0.0.1", port, pyblob_pid(root, port)), creds


def pyblob_pid(root: Path, port: int) -> int:
    """PID of the `pyblob serve --port PORT` started in `root` (the supervisor when there are workers)."""
    needle = b"\x00".join([b"serve", b"--host", b"127.0.0.1", b"--port", str(port).encode(), b""])
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and needle in (proc / "cmdline").read_bytes() and (proc / "cwd").resolve() == root:
                return int(proc.name)
        except OSError:
            continue
    raise SystemExit(f"no process found for pyblob on port {port}")


def publish(target: Target, creds: dict[str, str], www: Path) -> None:
    """Upload each file with boto3 and make a link to it with POST /api/links (plus a budgeted one)."""
    s3 = boto3.session.Session(
        aws_access_key_id=creds["access_key"], aws_secret_access_key=creds["secret_key"], region_name="us-east-1"
    ).client("s3", endpoint_url=f"http://127.0.0.1:{target.port}", config=Config(s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket=BUCKET)
    for name in FILES:
        s3.upload_file(str(www / name), BUCKET, name)
    names = {"big": "big.bin", "4k": "4k.bin", "100k": "100k.bin"}
    for key, name in names.items():
        target.paths[key] = "/s/" + create_link(target, creds["token"], name)["id"]
    target.paths["budget"] = "/s/" + create_link(target, creds["token"], "4k.bin", 10**9)["id"]


def create_link(target: Target, token: str, key: str, max_downloads: int | None = None) -> dict[str, Any]:
    body = json.dumps({"bucket": BUCKET, "key": key, "max_downloads": max_downloads}).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    req = urllib.request.Request(f"http://127.0.0.1:{target.port}/api/links", body, headers, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return dict(json.load(resp))


def write_files(www: Path, size: int) -> None:
    www.mkdir()
    for name, length in FILES.items():
        (www / name).write_bytes(random_bytes(name, length or size))


# profile ----------------------------------------------------------------------------------------
def profile(target: Target, root: Path, args: argparse.Namespace) -> None:
    """py-spy over the pyblob workers during extra 4 KiB requests: samples of threads holding the GIL
    (`--gil`), so waiting threads and the event loop's epoll are not counted; non-blocking, so the
    workers are not paused to be sampled."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    raw = root / "profile.txt"
    argv = [pyspy, "record", "--pid", str(target.pid), "--subprocesses", "--nonblocking", "--gil", "--rate", "250",
            "--format", "raw", "--output", str(raw)]  # fmt: skip
    with open(root / "py-spy.log", "wb") as log:
        spy = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(2)  # attach
        work_for(target, "4k", argparse.Namespace(**{**vars(args), "requests": args.requests * 3}), 0)()
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        spy.wait(timeout=60)
    summarize_profile(raw)


def frame_site(frame: str) -> str:
    """`func (path:line)` shortened to `func (module path:line)`, without the machine's directories."""
    path = frame.rsplit(" (", 1)[-1]
    for marker in ("site-packages/", str(Path(__file__).resolve().parent.parent) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return frame.rsplit(" (", 1)[0] + " (" + path


# Where a sample's time goes: the innermost frame naming one of these decides (first match wins).
COSTS = (
    ("access log", ("logging/", "uvicorn/logging")),
    ("rate limit (token bucket take)", ("RateLimiter.ip_wait",)),
    ("thread pool hand-offs", ("to_thread", "WorkerThread", "queue.py", "threading.py", "CapacityLimiter")),
    ("link and object lookup (LMDB)", ("Links.resolve",)),
    ("read_object and download stats", ("Store.read_object", "DownloadStats")),
    ("StreamingResponse", ("StreamingResponse",)),
    ("uvicorn HTTP (parse, send)", ("uvicorn/protocols",)),
    ("starlette and fastapi middleware, routing", ("starlette/", "fastapi/")),
    ("event loop (uvloop, asyncio)", ("Runner.run", "asyncio/")),
)


def cost_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, marks in COSTS:
            if any(mark in frame for mark in marks):
                return name
    return "other"


def summarize_profile(raw: Path) -> None:
    """Shares of the samples by leaf function and by cost (`COSTS`)."""
    leaves, costs = Counter[str](), Counter[str]()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [frame_site(f) for f in stack.split(";") if f.endswith(")") and ":" in f]
        if frames:
            leaves[frames[-1]] += int(count)
            costs[cost_of(frames)] += int(count)
    total = sum(leaves.values()) or 1
    for title, counter in (("by leaf function", leaves), ("by cost", costs)):
        print(f"\nprofile {title} (% of {total} samples holding the GIL, all workers):")
        for name, n in counter.most_common(12):
            print(f"  {100 * n / total:5.1f}%  {name}")


# driver -----------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-mib", type=int, default=256, help="size of the large file (1, 3)")
    p.add_argument("--requests", type=int, default=2000, help="GETs per small-file run (2); a quarter for 4")
    p.add_argument("--concurrency", type=int, default=32, help="keep-alive connections (2-4)")
    p.add_argument("--ranges", type=int, default=400, help="1 MiB Range requests per run (3)")
    p.add_argument("--ref-scale", type=int, default=10, help="nginx makes this many times the requests (2, 3)")
    p.add_argument("--workers", type=int, default=2, help="pyblob serve --workers")
    p.add_argument("--runs", type=int, default=3, help="runs per figure; the median counts")
    p.add_argument("--no-ratelimit", action="store_true", help="run pyblob with its rate limits off")
    p.add_argument("--profile", action="store_true", help="py-spy profile of the 4 KiB case at the end")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, nginx.conf, profile.txt)")
    p.add_argument("--dir", type=Path, default=Path("bench-data"), help="parent of the temp dir")
    p.add_argument("--budget-s", type=int, default=300, help="stop after this many seconds")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    root = start_run(args.dir, "links-", args.budget_s)
    started, size = time.perf_counter(), args.size_mib * MiB
    try:
        with ExitStack() as stack:
            write_files(root / "www", size)
            pyblob, creds = start_pyblob(stack, root, args)
            publish(pyblob, creds, root / "www")
            nginx = start_nginx(stack, root, root / "www")
            info("load average before", " ".join(f"{x:.2f}" for x in os.getloadavg()))
            results = measure_all(pyblob, nginx, args, size)
            info("load average after", " ".join(f"{x:.2f}" for x in os.getloadavg()))
            report(results, args)
            if args.profile:
                profile(pyblob, root, args)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    info("\ntotal time", f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
