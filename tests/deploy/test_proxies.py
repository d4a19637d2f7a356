"""The reverse-proxy examples in deploy/ (Caddy and nginx, Debian's packages) in front of a real
pyblob, checked with `pyblob doctor`: what the README tells an admin to use must pass it.

The examples are used as written but for what a test machine cannot have: the site name and TLS
(Caddy gets the same block on an http:// address; nginx loses its `ssl` lines and listens on a free
loopback port), and the upstream's port."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from ports import free_port
from processes import RunPyblob, Server, StartServer, wait_for_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@contextmanager
def running(argv: list[str], port: int, log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)


def tool(name: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if found is None:
        pytest.fail(f"{name} is missing: install the Debian package (scripts/test does, as root)")
    return found


def doctor_through(run_pyblob: RunPyblob, url: str, creds: dict[str, str]) -> str:
    result = run_pyblob(
        "doctor", "--endpoint", url, "--access-key", creds["access_key"], "--secret-key", creds["secret_key"],
        "--token", creds["token"], with_data_dir=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout and "PASS  multipart upload:" in result.stdout
    return result.stdout


@pytest.fixture
def pyblob(start_server: StartServer) -> Server:
    return start_server(env={"PYBLOB_TRUSTED_PROXIES": "127.0.0.1"})


Launch = tuple[list[str], dict[str, str] | None]  # the proxy's command line and environment


def caddy(tmp_path: Path, port: int, upstream: str) -> Launch:
    site = (DEPLOY / "Caddyfile").read_text()
    assert "files.example.org {" in site and "reverse_proxy 127.0.0.1:8000" in site
    site = site.replace("files.example.org {", f"http://127.0.0.1:{port} {{")
    site = site.replace("127.0.0.1:8000", upstream.removeprefix("http://"))
    config = tmp_path / "Caddyfile"
    config.write_text("{\n\tadmin off\n}\n" + site)
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    return [tool("caddy"), "run", "--config", str(config), "--adapter", "caddyfile"], env


def nginx(tmp_path: Path, port: int, upstream: str) -> Launch:
    block = (DEPLOY / "nginx.conf").read_text()
    assert "client_max_body_size 0;" in block and "proxy_set_header Host $http_host;" in block
    block = "\n".join(line for line in block.splitlines() if not re.search(r"\bssl", line))
    block = block.replace("server {", f"server {{\n    listen 127.0.0.1:{port};", 1)
    block = block.replace("http://127.0.0.1:8000", upstream)
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers must read the 0700 temp dir
    temp = tmp_path / "nginx-temp"
    temp.mkdir()
    config = tmp_path / "nginx.conf"
    config.write_text(
        f"{user}worker_processes 1;\ndaemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        f"events {{ worker_connections 256; }}\nhttp {{\n    access_log off;\n"
        f"    client_body_temp_path {temp}/body;\n    proxy_temp_path {temp}/proxy;\n{block}\n}}\n"
    )
    return [tool("nginx"), "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(config)], None


@pytest.mark.parametrize("launch", [caddy, nginx], ids=["caddy", "nginx"])
def test_the_proxy_example_passes_the_doctor(
    launch: Callable[[Path, int, str], Launch],
    pyblob: Server,
    run_pyblob: RunPyblob,
    alice: dict[str, str],
    tmp_path: Path,
) -> None:
    port = free_port()
    argv, env = launch(tmp_path, port, pyblob.url)
    with running(argv, port, tmp_path / "proxy.log", env) as url:
        doctor_through(run_pyblob, url, alice)
