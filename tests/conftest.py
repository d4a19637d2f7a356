"""Fixtures that run pyblob as real processes (see `processes.py`): the CLI and `pyblob serve`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import (
    RunPyblob,
    Server,
    StartServer,
    assert_no_secret_logged,
    clean_env,
    free_port,
    printed_secrets,
    wait_healthy,
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def created_secrets() -> set[str]:
    """Secret keys and tokens the test's `pyblob` commands printed, for the log check of `start_server`."""
    return set()


@pytest.fixture
def run_pyblob(tmp_path: Path, data_dir: Path, created_secrets: set[str]) -> RunPyblob:
    """`run_pyblob("user", "add", "bob", env={...})`: `python -m pyblob ... --data-dir <data_dir>`."""

    def run(
        *args: str, env: dict[str, str] | None = None, with_data_dir: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "pyblob", *args]
        if with_data_dir:
            argv += ["--data-dir", str(data_dir)]
        # check=False: the tests assert on exit codes themselves, failures included.
        result = subprocess.run(
            argv,
            check=False,
            cwd=tmp_path,
            env=clean_env(env),
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        created_secrets.update(printed_secrets(result.stdout))
        return result

    return run


@pytest.fixture
def start_server(tmp_path: Path, data_dir: Path, created_secrets: set[str]) -> Iterator[StartServer]:
    """Starts `pyblob serve` processes on the test's data dir; stops every one at the end, then checks
    that no log line of theirs holds a secret key or token the test's commands or servers made."""
    servers: list[Server] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Server:
        port = free_port()
        log_dir = tmp_path / f"server-{len(servers)}"
        log_dir.mkdir()
        argv = [sys.executable, "-m", "pyblob", "serve", "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--data-dir", str(data_dir), *args]
        with open(log_dir / "stdout", "wb") as out, open(log_dir / "stderr", "wb") as err:
            proc = subprocess.Popen(
                argv,
                cwd=tmp_path,
                env=clean_env(env),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        server = Server(proc, f"http://127.0.0.1:{port}", log_dir)
        servers.append(server)
        wait_healthy(server)
        return server

    yield start
    for server in servers:
        server.stop()
    assert_no_secret_logged(servers, created_secrets)


@pytest.fixture
def server(start_server: StartServer) -> Server:
    return start_server()


@pytest.fixture
def alice(run_pyblob: RunPyblob) -> dict[str, str]:
    """A user made with `pyblob user add alice --json`: `user`, `access_key`, `secret_key`, `token`."""
    made = run_pyblob("user", "add", "alice", "--json")
    assert made.returncode == 0, made.stderr
    creds: dict[str, str] = json.loads(made.stdout)
    return creds


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """One real PostgreSQL 15 server per test process (tests/postgres.py), started on first use."""
    from postgres import postgres_server

    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_database(pg_server: Any) -> str:
    """The URL of a fresh, empty database on that server, the test's own."""
    return str(pg_server.new_database())


@pytest.fixture(scope="session")
def swfs_server() -> Iterator[Any]:
    """One real SeaweedFS with its S3 gateway per test process (tests/seaweedfs.py), started on first use."""
    from seaweedfs import seaweedfs_server

    with seaweedfs_server() as server:
        yield server


@pytest.fixture
def swfs_chunks(swfs_server: Any) -> Any:
    """Settings of a chunk store on that server under the test's own prefix (`S3ChunkSettings`)."""
    return swfs_server.chunk_settings()
