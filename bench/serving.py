"""Serving benchmark: pyblob against nginx (the limit), moto (a Python S3) and s3rver (a Node S3), same run.

    python bench/serving.py [--seconds 5] [--connections 32] [--big-mib 1024] [--list-keys 10000]
                            [--workers-check] [--no-s3rver] [--rss-gib 10] [--dir DIR]

Each server runs pinned to core 0 (`taskset -c 0`), the load generator to core 1, so a figure is what
one core of server gives. The servers are started and stopped (by PID) by this script on free
127.0.0.1 ports, with their logs in a fresh temp dir under --dir, removed at the end:

- pyblob: `pyblob serve` with its defaults (durable, one worker, rate limits off as by default for
  S3), the bench user's key imported;
- nginx: one worker, `sendfile`, `access_log off`; static GET/HEAD of the same files, WebDAV PUT
  (`dav_methods PUT`) for uploads;
- moto: `python -m moto.server`, state in memory;
- s3rver (Node, the issue's third reference): installed with npm into the temp dir at the start
  (it needs npm; `--no-s3rver` skips it), files under the temp dir, no fsync.

Small requests are driven by bench/loadgen.c (a C epoll client, built with gcc at the start; wrk
cannot send HEAD), 1 GiB transfers by `curl`.
The S3 requests are presigned SigV4 URLs, so the client signs nothing and the server verifies a
signature on every request. Every figure line gives each server's result and pyblob's ratio to each
reference; CPU per request is the server's CPU time (all its processes, from /proc) over the run
divided by the requests answered. Results and the machine are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from links import tree_cpu  # bench/links.py, next to this file
from s3 import free_port, random_bytes, server, server_env, start_run  # bench/s3.py

KiB, MiB = 1024, 1024 * 1024
ACCESS_KEY, SECRET_KEY = "PYBLOBSERVINGBENCH01", "pyblob-serving-bench-secret-000000000000"
S3RVER_KEYS = ("S3RVER", "S3RVER")  # the only credentials s3rver accepts
S3RVER_PACKAGE = "s3rver@3.7.1"
BUCKET = "bench"
SERVER_CORE, CLIENT_CORE = "0", "1"
SMALL = {"4k": 4 * KiB, "64k": 64 * KiB}


# what a run measured ------------------------------------------------------------------------------
@dataclass
class Load:
    """A load run: requests per second, latency percentiles (ms), server CPU per request (µs)."""

    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    errors: int = 0


@dataclass
class Target:
    name: str
    url: str
    pid: int
    urls: dict[str, str] = field(default_factory=dict)  # figure -> URL (presigned for S3)
    keys: tuple[str, str] = (ACCESS_KEY, SECRET_KEY)


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv]


# the load generator -----------------------------------------------------------------------------------
def build_loadgen(root: Path) -> Path:
    """Compile bench/loadgen.c (a small epoll client that, unlike wrk, can send HEAD) into `root`."""
    exe = root / "loadgen"
    source = Path(__file__).resolve().parent / "loadgen.c"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(source)], check=True, timeout=120)
    return exe


def load(target: Target, url: str, method: str, connections: int, seconds: float, size: int = 0) -> Load:
    argv = [str(LOADGEN), "-c", str(connections), "-d", str(seconds), "-m", method, "-b", str(size), url]
    cpu_before = tree_cpu(target.pid)
    out = subprocess.run(pinned(CLIENT_CORE, argv), capture_output=True, text=True, check=True, timeout=seconds + 60)
    cpu = tree_cpu(target.pid) - cpu_before
    got = json.loads(out.stdout)
    if got["errors"]:
        print(f"    ({target.name}: {got['errors']} connection errors)", flush=True)
    per_request = cpu / max(got["requests"], 1) * 1e6
    return Load(got["rps"], got["p50_ms"], got["p99_ms"], per_request, got["non2xx"])


LOADGEN = Path("loadgen")  # set by main() once built


# servers --------------------------------------------------------------------------------------------
NGINX_CONF = """\
{user}worker_processes 1;
daemon off;
pid {root}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {root}/nginx-tmp;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location /put/ {{ dav_methods PUT; create_full_put_path on; }}
    }}
}}
"""


def start_nginx(stack: ExitStack, root: Path, www: Path) -> Target:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    user = "user root root;\n" if os.geteuid() == 0 else ""  # the worker must read the 0700 temp dir
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, root=root, port=port, www=www))
    (root / "nginx-tmp").mkdir()
    argv = pinned(SERVER_CORE, [nginx, "-p", str(root), "-e", str(root / "nginx-error.log"), "-c", str(conf)])
    url = stack.enter_context(server("nginx", argv, server_env(), root, port))
    return Target("nginx", url, int((root / "nginx.pid").read_text()))


def start_pyblob(stack: ExitStack, root: Path, workers: int = 1, core: str = SERVER_CORE) -> Target:
    env = server_env(
        PYBLOB_DATA_DIR=str(root / f"pyblob-data-{workers}"),
        PYBLOB_ADMIN_ACCESS_KEY=ACCESS_KEY,
        PYBLOB_ADMIN_SECRET_KEY=SECRET_KEY,
        PYBLOB_WORKERS=str(workers),
        # /s/ is limited per client address by default; one load generator is one address. The
        # bucket is still taken on every request, as in a deployment.
        PYBLOB_RATELIMIT_LINKS_IP_RATE="1e9",
        PYBLOB_RATELIMIT_LINKS_IP_BURST="1e9",
    )
    port = free_port()
    argv = pinned(core, [sys.executable, "-m", "pyblob", "serve", "--host", "127.0.0.1", "--port", str(port)])
    proc_url = stack.enter_context(server(f"pyblob-{workers}", argv, env, root, port))
    return Target("pyblob", proc_url, pid_listening(port))


def start_moto(stack: ExitStack, root: Path) -> Target:
    (root / "moto-tmp").mkdir()
    port = free_port()
    argv = pinned(SERVER_CORE, [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
    url = stack.enter_context(server("moto", argv, server_env(TMPDIR=str(root / "moto-tmp")), root, port))
    return Target("moto", url, pid_listening(port))


def install_s3rver(root: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm not found: install Node.js and npm, or pass --no-s3rver")
    prefix = root / "s3rver"
    argv = [npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(prefix), S3RVER_PACKAGE]
    subprocess.run(argv, check=True, timeout=600)
    return prefix / "node_modules" / ".bin" / "s3rver"


def start_s3rver(stack: ExitStack, root: Path, exe: Path) -> Target:
    data = root / "s3rver-data"
    data.mkdir()
    port = free_port()
    argv = [str(exe), "--directory", str(data), "--address", "127.0.0.1", "--port", str(port), "--silent"]
    url = stack.enter_context(server("s3rver", pinned(SERVER_CORE, argv), server_env(), root, port))
    return Target("s3rver", url, pid_listening(port), keys=S3RVER_KEYS)


def pid_listening(port: int) -> int:
    """The PID of the process whose command line ends in `--port PORT` / `-p PORT` (the supervisor)."""
    for name in (str(port).encode(),):
        for proc in Path("/proc").iterdir():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\x00")
            except OSError:
                continue
            if proc.name.isdigit() and name in argv and argv[0] != b"taskset":
                return int(proc.name)
    raise SystemExit(f"no process found for port {port}")


def tree(pid: int) -> list[int]:
    """A process and its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def allow_cores(pid: int, cores: str) -> None:
    """Set the CPU affinity of every thread of a process tree (threads made later inherit it)."""
    for proc in tree(pid):
        subprocess.run(["taskset", "-a", "-cp", cores, str(proc)], capture_output=True, check=False)


def peak_rss_mib(pid: int) -> float:
    """VmHWM of the process and its descendants, summed (MiB)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1024


# S3 setup ---------------------------------------------------------------------------------------------
def s3_client(url: str, keys: tuple[str, str] = (ACCESS_KEY, SECRET_KEY)) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=keys[0],
        aws_secret_access_key=keys[1],
        region_name="us-east-1",
        config=Config(
            signature_version="s3v4",  # presigned URLs too: SigV4, which signs the host and no body header
            s3={"addressing_style": "path"},
            retries={"max_attempts": 10, "mode": "standard"},
        ),
    )


def prepare_s3(target: Target, files: dict[str, bytes]) -> None:
    s3 = s3_client(target.url, target.keys)
    s3.create_bucket(Bucket=BUCKET)
    for name, data in files.items():
        s3.put_object(Bucket=BUCKET, Key=f"{name}.bin", Body=data)
        for method, op in (("GET", "get_object"), ("HEAD", "head_object")):
            params = {"Bucket": BUCKET, "Key": f"{name}.bin"}
            target.urls[f"{method} {name}"] = s3.generate_presigned_url(op, Params=params, ExpiresIn=3600)
    put = {"Bucket": BUCKET, "Key": "put.bin"}
    target.urls["PUT"] = s3.generate_presigned_url("put_object", Params=put, ExpiresIn=3600)


def prepare_nginx(target: Target, www: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (www / f"{name}.bin").write_bytes(data)
        for method in ("GET", "HEAD"):
            target.urls[f"{method} {name}"] = f"{target.url}/{name}.bin"
    target.urls["PUT"] = f"{target.url}/put/put.bin"


def prepare_links(target: Target, files: dict[str, bytes]) -> dict[str, str]:
    """A short link to each small object of pyblob's bench bucket (the admin's token from the CLI)."""
    token = admin_token(target)
    urls = {}
    for name in files:
        body = json.dumps({"bucket": BUCKET, "key": f"{name}.bin"}).encode()
        req = urllib.request.Request(
            f"{target.url}/api/links",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as answer:
            urls[name] = f"{target.url}/s/{json.loads(answer.read())['id']}"
    return urls


def admin_token(target: Target) -> str:
    data_dir = next(Path(f"/proc/{target.pid}/cwd").resolve().glob("pyblob-data-1"))
    argv = [sys.executable, "-m", "pyblob", "token", "create", "admin", "--json", "--data-dir", str(data_dir)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    return str(json.loads(out.stdout)["token"])


# large transfers, listing ------------------------------------------------------------------------------
def curl(argv: list[str], seconds_field: str) -> float:
    """Run curl on the client core; the transfer's speed in MB/s (10^6 bytes, as curl reports it)."""
    out = subprocess.run(
        pinned(CLIENT_CORE, ["curl", "-sS", "-f", "-o", "/dev/null", "-w", f"%{{{seconds_field}}}", *argv]),
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(out.stdout) / 1e6


def big_put_url(target: Target) -> str:
    if target.name == "nginx":
        return f"{target.url}/put/big-put.bin"
    params = {"Bucket": BUCKET, "Key": "big.bin"}
    return str(s3_client(target.url, target.keys).generate_presigned_url("put_object", Params=params, ExpiresIn=3600))


def big_get_url(target: Target) -> str:
    if target.name == "nginx":
        return f"{target.url}/big.bin"
    params = {"Bucket": BUCKET, "Key": "big.bin"}
    return str(s3_client(target.url, target.keys).generate_presigned_url("get_object", Params=params, ExpiresIn=3600))


def boto3_download(target: Target, root: Path, size: int) -> float:
    """MB/s of boto3's `download_file` (its defaults: 8 MiB ranged parts, 10 threads) on the client core."""
    code = (
        "import sys, time, boto3; from botocore.config import Config; "
        "s3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id=sys.argv[2], "
        "aws_secret_access_key=sys.argv[3], region_name='us-east-1', "
        "config=Config(s3={'addressing_style': 'path'})); "
        "t = time.perf_counter(); s3.download_file(sys.argv[4], 'big.bin', sys.argv[5]); "
        "print(time.perf_counter() - t)"
    )
    dest = root / "download.bin"
    argv = [sys.executable, "-c", code, target.url, *target.keys, BUCKET, str(dest)]
    out = subprocess.run(pinned(CLIENT_CORE, argv), capture_output=True, text=True, check=True, timeout=900)
    dest.unlink()
    return size / float(out.stdout) / 1e6


def fill_keys(target: Target, count: int) -> None:
    s3 = s3_client(target.url, target.keys)
    s3.create_bucket(Bucket="listing")
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        keys = (f"dir{i % 100:03d}/key{i:07d}" for i in range(count))
        list(pool.map(lambda key: s3.put_object(Bucket="listing", Key=key, Body=b"x"), keys))


def list_all(target: Target, page: int) -> tuple[float, int]:
    """Seconds to list the `listing` bucket in pages of `page` keys with ListObjectsV2; the key count."""
    s3 = s3_client(target.url, target.keys)
    start, seen, token = time.perf_counter(), 0, None
    while True:
        kwargs = {"Bucket": "listing", "MaxKeys": page} | ({"ContinuationToken": token} if token else {})
        answer = s3.list_objects_v2(**kwargs)
        seen += answer.get("KeyCount", 0)
        token = answer.get("NextContinuationToken")
        if not token:
            return time.perf_counter() - start, seen


# the report ---------------------------------------------------------------------------------------------
def ratio(ours: float, ref: float | None, higher_is_better: bool = True) -> str:
    if not ref or not ours:
        return "—"
    return f"{(ours / ref if higher_is_better else ref / ours):.2f}"


def show(figure: str, unit: str, values: Mapping[str, float | None], higher_is_better: bool = True) -> None:
    cells = [f"{values.get(n):>10,.1f}" if values.get(n) is not None else f"{'—':>10}" for n in NAMES]
    ours = values.get("pyblob") or 0.0
    vs = "  ".join(f"×{n} {ratio(ours, values.get(n), higher_is_better):>6}" for n in REFERENCES)
    print(f"{figure:<40} {unit:<6} {' '.join(cells)}   {vs}", flush=True)


def show_load(figure: str, loads: dict[str, Load]) -> None:
    show(figure, "req/s", {n: loads[n].rps for n in loads})
    details = "; ".join(
        f"{n} p50 {ld.p50_ms:.2f} p99 {ld.p99_ms:.2f} ms, {ld.cpu_us:,.0f} µs CPU/req"
        + (f", {ld.errors} non-2xx" if ld.errors else "")
        for n, ld in loads.items()
    )
    print(f"{'':<47}{details}", flush=True)


NAMES = ("nginx", "moto", "s3rver", "pyblob")
REFERENCES = ("nginx", "moto", "s3rver")
S3_REFERENCES = ("moto", "s3rver")  # the S3 servers besides pyblob (nginx serves files)


# the run ---------------------------------------------------------------------------------------------------
def measure(targets: dict[str, Target], links: dict[str, str], root: Path, args: argparse.Namespace) -> None:
    c, secs = args.connections, args.seconds
    print(f"{'figure':<40} {'unit':<6} {' '.join(f'{n:>10}' for n in NAMES)}   pyblob's ratios", flush=True)
    for method in ("GET", "HEAD"):
        for name in SMALL:
            loads = {n: load(t, t.urls[f"{method} {name}"], method, c, secs) for n, t in targets.items()}
            show_load(f"{name} {method}, {c} connections", loads)
    for name in SMALL:
        loads = {"pyblob": load(targets["pyblob"], links[name], "GET", c, secs)}
        loads["nginx"] = load(targets["nginx"], targets["nginx"].urls[f"GET {name}"], "GET", c, secs)
        show_load(f"{name} GET /s/<id>, {c} connections", loads)
    loads = {n: load(t, t.urls["PUT"], "PUT", c, secs, 4 * KiB) for n, t in targets.items()}
    show_load(f"4k PUT, {c} connections (others: no fsync)", loads)
    loads = {n: load(t, t.urls["PUT"], "PUT", 1, secs, 4 * KiB) for n, t in targets.items()}
    show_load("4k PUT, 1 connection", loads)
    show("4k PUT, 1 connection, p50", "ms", {n: ld.p50_ms for n, ld in loads.items()}, higher_is_better=False)

    big = root / "www" / "big.bin"
    size = big.stat().st_size
    # The servers may hash on both cores for the large PUT (the terms); curl takes little CPU.
    for t in targets.values():
        allow_cores(t.pid, "0,1")
    put = {n: curl(["-T", str(big), big_put_url(t)], "speed_upload") for n, t in targets.items()}
    for t in targets.values():
        allow_cores(t.pid, SERVER_CORE)
    show(f"{size // MiB} MiB PUT (curl), servers on both cores", "MB/s", put)
    get = {n: curl([big_get_url(t)], "speed_download") for n, t in targets.items()}
    show(f"{size // MiB} MiB GET (curl)", "MB/s", get)
    down: dict[str, float] = {n: boto3_download(t, root, size) for n, t in targets.items() if n in ("s3rver", "pyblob")}
    if args.moto_download:
        down["moto"] = boto3_download(targets["moto"], root, size)
    show(f"boto3 download_file {size // MiB} MiB", "MB/s", down)

    if args.list_keys:
        listed = [n for n in (*S3_REFERENCES, "pyblob") if n in targets]
        for n in listed:
            fill_keys(targets[n], args.list_keys)
        page = max(1, args.list_keys // 10)
        listing, server_cpu = {}, {}
        for n in listed:
            cpu_before = tree_cpu(targets[n].pid)
            try:
                listing[n] = list_all(targets[n], page)
            except ClientError as e:
                if n == "pyblob":
                    raise
                # s3rver 3.7.1 answers InternalError to boto3's ListObjectsV2 (even a first page of 5 keys): a
                # reference's failure is reported, not fatal.
                print(f"    ({n}: ListObjectsV2 failed: {e})", flush=True)
                continue
            server_cpu[n] = tree_cpu(targets[n].pid) - cpu_before
        assert all(seen == args.list_keys for _, seen in listing.values()), listing
        show(f"ListObjectsV2, {args.list_keys:,} keys in 10 pages", "s", {n: s for n, (s, _) in listing.items()}, False)
        # boto3 parses each page's XML on the client core: the server's own CPU shows what it costs.
        show("  of which server CPU", "s", server_cpu, higher_is_better=False)
    show("peak server RSS", "MiB", {n: peak_rss_mib(t.pid) for n, t in targets.items()}, higher_is_better=False)


def workers_check(stack: ExitStack, root: Path, files: dict[str, bytes], args: argparse.Namespace) -> None:
    """4 KiB GETs against one pyblob worker and two, each on both cores (the client shares them)."""
    for workers in (1, 2):
        (root / f"w{workers}").mkdir()
        target = start_pyblob(stack, root / f"w{workers}", workers, core="0,1")
        prepare_s3(target, files)
        argv = [str(LOADGEN), "-c", str(args.connections), "-d", str(args.seconds), target.urls["GET 4k"]]
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=args.seconds + 60)
        rps = float(json.loads(out.stdout)["rps"])
        print(f"{'4k GET, --workers ' + str(workers) + ', both cores':<40} req/s  {rps:>10,.1f}", flush=True)


def rss_through_upload(stack: ExitStack, root: Path, gib: int) -> None:
    """pyblob's memory through one boto3 `upload_file` of `gib` GiB (multipart, its defaults): the
    resident size of the server's processes at each GiB sent, and their peak."""
    (root / "rss").mkdir()
    target = start_pyblob(stack, root / "rss", core="0,1")
    s3 = s3_client(target.url, target.keys)
    s3.create_bucket(Bucket=BUCKET)
    source = root / "rss" / "huge.bin"
    with open(source, "wb") as f:
        for i in range(gib * 1024):
            f.write(random_bytes(f"huge{i}", MiB))
    sent, marks, lock = 0, list[float](), threading.Lock()

    def progress(count: int) -> None:  # boto3 calls this from its transfer threads
        nonlocal sent
        with lock:
            sent += count
            while len(marks) < sent // (1024 * MiB):
                marks.append(current_rss_mib(target.pid))

    started = time.perf_counter()
    s3.upload_file(str(source), BUCKET, "huge.bin", Callback=progress)
    speed = gib * 1024 * MiB / (time.perf_counter() - started) / 1e6
    source.unlink()
    print(f"{gib} GiB upload_file (multipart, boto3 defaults): {speed:,.0f} MB/s", flush=True)
    print(f"  server RSS at each GiB sent, MiB: {', '.join(f'{m:.0f}' for m in marks)}", flush=True)
    print(f"  server peak RSS (VmHWM), MiB: {peak_rss_mib(target.pid):.0f}", flush=True)


def current_rss_mib(pid: int) -> float:
    """VmRSS of the process and its descendants, summed (MiB)."""
    total = 0
    for proc in tree(pid):
        try:
            status = Path(f"/proc/{proc}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(found.group(1)) if found else 0
    return total / 1024


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5, help="length of each load run")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--big-mib", type=int, default=1024, help="size of the large transfers")
    p.add_argument("--list-keys", type=int, default=10_000, help="keys listed in 10 pages (0: skip)")
    p.add_argument("--moto-download", action="store_true", help="also boto3 download_file from moto (slow)")
    p.add_argument("--no-s3rver", action="store_true", help="without s3rver (no npm install)")
    p.add_argument("--rss-gib", type=int, default=0, help="also pyblob's memory through an upload of this many GiB")
    p.add_argument("--workers-check", action="store_true", help="also 1 vs 2 workers on both cores")
    p.add_argument("--dir", type=Path, default=Path("bench-data"), help="parent of the temp dir")
    p.add_argument("--budget-s", type=int, default=1800, help="stop after this many seconds")
    return p.parse_args()


def require_tools() -> None:
    tools = ("gcc", "nginx", "curl", "taskset")
    missing = [t for t in tools if not (shutil.which(t) or Path(f"/usr/sbin/{t}").exists())]
    if missing:
        raise SystemExit(f"missing {' '.join(missing)}: apt-get install -y gcc nginx-light curl util-linux")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs two cores: one for the servers, one for the load generator")


def main() -> None:
    args = parse_args()
    require_tools()
    started = time.perf_counter()
    root = start_run(args.dir, "serving-", args.budget_s)
    global LOADGEN
    LOADGEN = build_loadgen(root)
    www = root / "www"
    www.mkdir()
    files = {name: random_bytes(name, size) for name, size in SMALL.items()}
    with open(www / "big.bin", "wb") as f:
        for i in range(args.big_mib):
            f.write(random_bytes(f"big{i}", MiB))
    try:
        with ExitStack() as stack:
            targets = {"nginx": start_nginx(stack, root, www), "moto": start_moto(stack, root)}
            if not args.no_s3rver:
                targets["s3rver"] = start_s3rver(stack, root, install_s3rver(root))
            targets["pyblob"] = start_pyblob(stack, root)
            prepare_nginx(targets["nginx"], www, files)
            for n in (*S3_REFERENCES, "pyblob"):
                if n in targets:
                    prepare_s3(targets[n], files)
            links = prepare_links(targets["pyblob"], files)
            measure(targets, links, root, args)
        if args.workers_check:
            with ExitStack() as stack:
                workers_check(stack, root, files, args)
        if args.rss_gib:
            with ExitStack() as stack:
                rss_through_upload(stack, root, args.rss_gib)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"total time {time.perf_counter() - started:.0f} s", flush=True)


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    main()
