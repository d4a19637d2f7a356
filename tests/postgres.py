"""A real PostgreSQL 15 server for the tests, on a free loopback port (Debian's `postgresql-15`,
installed by scripts/test): `initdb` into a fresh directory, `postgres` started directly, stopped
with SIGTERM (a smart shutdown) at the end.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user the package
made, in a directory under /tmp that user owns. Its durability settings (fsync, full pages) are off:
these tests check transactions and their conflicts, not the disk; crash tests that need a durable
server turn them back on.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from ports import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
START_TIMEOUT = 30.0


@dataclass
class PgServer:
    proc: subprocess.Popen[bytes]
    port: int
    root: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database's URL: each test gets one, so tests share the server, not rows."""
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@contextmanager
def postgres_server(
    fast: bool = True, wrap: Callable[[Path, list[str]], list[str]] | None = None
) -> Iterator[PgServer]:
    """A running server; `wrap(root, argv)` may change how `postgres` runs (on a small disk of its own:
    tests/reliability/test_disk_full_cluster.py)."""
    if not (BIN / "postgres").exists():
        raise AssertionError(f"PostgreSQL 15 is not installed ({BIN}): scripts/test installs postgresql-15")
    root = Path(tempfile.mkdtemp(prefix="pyblob-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    subprocess.run(
        [*_as_postgres(), str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    options = ["-c", f"unix_socket_directories={root}", "-c", "listen_addresses=127.0.0.1", "-p", str(port)]
    options += ["-c", "max_connections=200", "-c", "shared_buffers=64MB"]
    if fast:
        options += ["-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]
    argv = [*_as_postgres(), str(BIN / "postgres"), "-D", str(data), *options]
    log = open(root / "server.log", "wb")  # noqa: SIM115 (closed below, after the server)
    proc = subprocess.Popen(
        wrap(root, argv) if wrap else argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = PgServer(proc, port, root)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"postgres exited with {proc.returncode}:\n{(root / 'server.log').read_text()}")
            try:
                psycopg.connect(server.url(), connect_timeout=1).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield server
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
