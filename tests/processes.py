"""Helpers to run pyblob as real processes: the CLI and `pyblob serve` on a free loopback port.

Every process gets a scrubbed environment (no PYBLOB_* from the developer's shell) and runs in a
temporary directory, so no `.env` file of the checkout leaks into a test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from ports import free_port, free_ports

START_TIMEOUT = 30.0
MOTO_START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def isolate_from_aws(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """No AWS_* variable of the machine reaches boto3 (AWS_CA_BUNDLE, AWS_PROFILE, ~/.aws/config would
    change what it sends); config and credential files point nowhere under `home`."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "absent" / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "absent" / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYBLOB_")}
    env["PYTHONUNBUFFERED"] = "1"
    # Link sweeps only where a test asks for them: a server with a shifted clock must not race it.
    env["PYBLOB_LINK_SWEEP_INTERVAL_SECONDS"] = "0"
    # Nor background scrubs, whose records would appear in the metadata at a time of their choosing.
    env["PYBLOB_SCRUB_INTERVAL_SECONDS"] = "0"
    env.update(extra or {})
    return env


RunPyblob = Callable[..., subprocess.CompletedProcess[str]]


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log_dir: Path
    stopped: bool = field(default=False)

    @property
    def stdout(self) -> str:
        return (self.log_dir / "stdout").read_text()

    @property
    def stderr(self) -> str:
        return (self.log_dir / "stderr").read_text()

    def stop(self) -> None:
        """SIGTERM to the server's process group (uvicorn and its workers), SIGKILL if it lingers."""
        if self.stopped:
            return
        self.stopped = True
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)
        except ProcessLookupError:
            pass


def wait_healthy(server: Server, verify: ssl.SSLContext | bool = True) -> None:
    """Until /health answers 200; `verify`: the trust for an https:// server's certificate."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"pyblob serve exited with {server.proc.returncode}:\n{server.stderr}")
        try:
            if httpx.get(server.url + "/health", timeout=1.0, verify=verify).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"pyblob serve did not become healthy in {START_TIMEOUT}s:\n{server.stderr}")


StartServer = Callable[..., Server]


def user_s3_client(
    url: str,
    creds: dict[str, str],
    *,
    attempts: int | None = None,
    connect_timeout: float = 60,
    read_timeout: float = 60,
) -> BaseClient:
    """boto3 for a user made by `pyblob user add --json` (its `access_key` and `secret_key`): SigV4,
    path-style, as the tests of one server address it. `attempts` bounds the tries of each call (1: the
    test sees the server's first answer, no retry hides it); None keeps botocore's retries."""
    retries: dict[str, Any] = {} if attempts is None else {"total_max_attempts": attempts}
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=creds["access_key"],
        aws_secret_access_key=creds["secret_key"],
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries=retries,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        ),
    )


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until something accepts connections on 127.0.0.1:`port`; fails with the log if `proc` exits."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args!r} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listened on port {port} in {START_TIMEOUT}s:\n{log.read_text()[-3000:]}")


@contextmanager
def moto_server(log: Path) -> Iterator[str]:
    """`python -m moto.server` on a free loopback port: its URL while the block runs."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + MOTO_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"moto_server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                httpx.get(url + "/moto-api/", timeout=1.0, trust_env=False)
                break
            except httpx.TransportError as e:
                if time.monotonic() > deadline:
                    raise AssertionError(f"moto did not answer in {MOTO_START_TIMEOUT}s:\n{log.read_text()}") from e
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(STOP_TIMEOUT)


CLUSTER_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "cluster"


def cluster_script(
    *args: str, timeout: float = 60.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`scripts/cluster ARGS` (a 3-node deployment on loopback), its output captured; never raises on failure."""
    return subprocess.run(
        [sys.executable, str(CLUSTER_SCRIPT), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


CLUSTER_PORTS = 48  # scripts/cluster takes 35 of them; should it need more, `up` says so and fails


def cluster_up(
    directory: Path, *, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`scripts/cluster up` in `directory` on ports of tests/ports.py (none an outgoing connection can take)."""
    ports = free_ports(CLUSTER_PORTS)
    span = f"{ports[0]}-{ports[-1]}"
    return cluster_script("up", "--dir", str(directory), "--ports", span, timeout=timeout, env=env)


SECRET_FIELDS = ("secret_key", "token")
BANNER_SECRET = re.compile(r"^\s+(?:secret key|API token):\s+(\S+)$", re.MULTILINE)


def printed_secrets(stdout: str) -> set[str]:
    """The secret keys and tokens in a `pyblob ... --json` command's output."""
    try:
        printed = json.loads(stdout)
    except ValueError:
        return set()
    found = set()
    for item in printed if isinstance(printed, list) else [printed]:
        if isinstance(item, dict):
            found |= {str(item[f]) for f in SECRET_FIELDS if isinstance(item.get(f), str) and len(item[f]) >= 8}
    return found


def assert_no_secret_logged(servers: list[Server], created: set[str]) -> None:
    """No line a server logged holds a secret key or token: neither those the test's commands made nor
    those a first start made and showed once in its banner (the one place a secret is printed)."""
    secrets = set(created)
    for server in servers:
        secrets |= {s for s in BANNER_SECRET.findall(server.stdout) if not s.startswith("(")}
    for server in servers:
        logged = BANNER_SECRET.sub("", server.stdout) + server.stderr
        leaked = sorted(s[:6] + "..." for s in secrets if s in logged)
        assert not leaked, f"secrets logged by the server in {server.log_dir}: {leaked}"


def serve_argv(port: int, data_dir: Path) -> list[str]:
    """`pyblob serve` on 127.0.0.1:`port` over `data_dir`, as the tests start it."""
    argv = [sys.executable, "-m", "pyblob", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return [*argv, "--data-dir", str(data_dir)]
