"""The 3-node deployment of scripts/cluster as an `Endpoint`: the clients talk to its front (nginx), which
sends each request to the next node.

One cluster for the whole run, however many pytest-xdist workers it has: a cluster costs ~20 s to start
and ~1 GB of memory, and two at once on a 2-core machine slow each other down. The workers share a
directory named after the run (`shared_dir`), guarded by a file lock. Each worker records its pid
there from its first test on pyblob (`begin`) to its session's end (`release`); the first one starts
the cluster in a thread, so it comes up while the tests run on one node, and the last one to finish
(the others' pids gone or released) brings it down. A worker that ended before another began would
stop it and the other start it again: at most one more start.

At the end (after `down`): no node logged a Traceback, and the front spread the requests over all
three nodes (its access log names the node of each request). The directory is removed then, and kept
when a check fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import boto3
import pytest
from processes import cluster_script as cluster
from processes import cluster_up
from s3_server import ADMIN, DOMAIN, Creds, Endpoint, add_users

UP_TIMEOUT = 240  # `up` takes 15-25 s alone; more while other tests load the machine
DOWN_TIMEOUT = 120


def shared_dir() -> Path:
    """The directory every worker of this run sees, named after xdist's id of the run.

    In the system's temp dir, not pytest's: a pytest started anywhere on the machine resets
    `pytest-of-<user>` to mode 0700, which locks the cluster's PostgreSQL (user `postgres`, when run as
    root) out of its data dir."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        return Path(tempfile.mkdtemp(prefix="pyblob-s3clients-"))
    path = Path(tempfile.gettempdir()) / f"pyblob-s3clients-{run}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    with open(directory / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def up_env() -> dict[str, str]:
    """The admin of the suites (its secret holds `/`, `+`, `=`) and their domain; nothing else of PYBLOB_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYBLOB_", "AWS_"))}
    env |= {"PYBLOB_ADMIN_ACCESS_KEY": ADMIN.access_key, "PYBLOB_ADMIN_SECRET_KEY": ADMIN.secret_key}
    env["PYBLOB_DOMAIN"] = DOMAIN
    return env


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class SharedCluster:
    """The run's cluster, in `directory`: `cluster/` (scripts/cluster's DIR), `endpoint.json` (its front,
    the nodes' settings and the users; there while it is up), `holders.json` (the pids of the workers
    using it) and `up-failed.txt` (why it could not start, so no other worker tries again)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.cluster_dir = directory / "cluster"
        self.endpoint_file = directory / "endpoint.json"
        self.holders_file = directory / "holders.json"
        self.failed_file = directory / "up-failed.txt"
        self.starter: threading.Thread | None = None

    def holders(self) -> list[int]:
        try:
            pids: list[int] = json.loads(self.holders_file.read_text())
        except FileNotFoundError:
            return []
        return [pid for pid in pids if running(pid)]

    def begin(self) -> None:
        """This worker uses the cluster from now until `release`; unless it is up, a thread starts it
        meanwhile (the tests on one node run while it comes up)."""
        with locked(self.directory):
            self.holders_file.write_text(json.dumps([*self.holders(), os.getpid()]))
            if self.endpoint_file.exists() or self.failed_file.exists():
                return
        self.starter = threading.Thread(target=self.start_once, name="cluster-up", daemon=True)
        self.starter.start()

    def start_once(self) -> None:
        """Starts the cluster unless another thread or worker did (under the lock: they wait for it)."""
        with locked(self.directory):
            if self.endpoint_file.exists() or self.failed_file.exists():
                return
            try:
                self.start()
            except BaseException as e:  # in the thread: for `acquire` to report
                if not self.failed_file.exists():
                    self.failed_file.write_text(f"starting the cluster failed: {e!r}\n{getattr(e, 'stderr', '')}")

    def start(self) -> None:
        started = time.monotonic()
        up = cluster_up(self.cluster_dir, env=up_env(), timeout=UP_TIMEOUT)
        if up.returncode != 0:
            self.failed_file.write_text(f"scripts/cluster up failed:\n{up.stderr[-6000:]}")
            return
        state = json.loads((self.cluster_dir / "state.json").read_text())
        (self.directory / "cli").mkdir(exist_ok=True)
        endpoint = Endpoint("http", None, self.directory / "cli" / "data", boto3.session.Session(), None)
        endpoint.cli_env = state["node_env"]
        try:
            add_users(endpoint)
        except BaseException:
            cluster("down", "--dir", str(self.cluster_dir), timeout=DOWN_TIMEOUT)
            raise
        users = {name: asdict(creds) for name, creds in endpoint.users.items()}
        self.endpoint_file.write_text(
            json.dumps({"front": state["front"], "node_env": endpoint.cli_env, "users": users})
        )
        print(f"cluster up with its users in {time.monotonic() - started:.1f}s (pid {os.getpid()})")

    def acquire(self, cli_dir: Path, session: boto3.session.Session) -> Endpoint:
        """The cluster as an Endpoint whose CLI runs in `cli_dir`, once it is up."""
        self.start_once()  # waits for a start in progress, or starts it
        if self.failed_file.exists():
            pytest.fail(self.failed_file.read_text(), pytrace=False)
        shared = json.loads(self.endpoint_file.read_text())
        users = {name: Creds(**creds) for name, creds in shared["users"].items()}
        return Endpoint("http", None, cli_dir / "data", session, None, users, shared["front"], shared["node_env"])

    def release(self) -> None:
        """This worker is done with it; the last one brings it down and checks the nodes' logs."""
        if self.starter is not None:
            self.starter.join()
        with locked(self.directory):
            others = [pid for pid in self.holders() if pid != os.getpid()]
            self.holders_file.write_text(json.dumps(others))
            if others or not self.endpoint_file.exists():
                return
            self.endpoint_file.unlink()
            down = cluster("down", "--dir", str(self.cluster_dir), timeout=DOWN_TIMEOUT)
        assert down.returncode == 0, f"scripts/cluster down failed:\n{down.stdout}\n{down.stderr}"
        check_logs(self.cluster_dir)
        shutil.rmtree(self.directory)  # kept when a check fails, for its logs


def check_logs(cluster_dir: Path) -> None:
    """No node logged an internal error, and every node served requests through the front."""
    logs = sorted((cluster_dir / "logs").glob("pyblob-*.log"))
    assert len(logs) == 3, logs
    for log in logs:
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, f"{log}:\n{text[-6000:]}"
    served = upstreams(cluster_dir)
    state: dict[str, Any] = json.loads((cluster_dir / "state.json").read_text())
    nodes = {url.removeprefix("http://") for url in state["nodes"]}
    assert set(served) == nodes, f"requests per node through the front: {served}"
    print(f"requests per node through the front: {dict(served)}")


def upstreams(cluster_dir: Path) -> Counter[str]:
    """Requests per node, from the front's access log (`upstream=` names the node; several when a node
    failed to connect and nginx went on to the next)."""
    found: Counter[str] = Counter()
    for line in (cluster_dir / "front" / "access.log").read_text(errors="replace").splitlines():
        if "upstream=" in line:
            found.update(re.findall(r"127\.0\.0\.1:\d+", line.split("upstream=", 1)[1]))
    return found
