"""Shared, volatile state of the running server: quota reservations and rate-limit buckets.

A second LMDB environment beside the metadata one (`<data dir>/state`), shared by every worker
process, but opened with `sync=False`: a commit costs a few microseconds instead of an fsync,
because nothing in it needs to survive a crash. Reservations belong to uploads that die with the
process, and a token bucket that forgets its level after a power loss only lets a client start
afresh. Rows that belong to a process carry its pid and start time (`process_tag`) and are dropped
as they are met once that process is gone, even if a later process reuses the pid. Like `db.Database` it is opened lazily in the process that uses it.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import lmdb

from .db import Txn

STATE_TABLES = (
    "reservations",  # user + NUL + reservation id -> "bytes pid:start"
    "buckets",  # rate-limit bucket key -> packed (tokens, updated, full_at), see ratelimit.py
)
STATE_MAP_SIZE = 256 * 1024 * 1024  # bounds the state: buckets are evicted long before this fills


class VolatileState:
    def __init__(self, path: Path):
        self.path = path
        self._env: lmdb.Environment | None = None
        self._pid = 0
        self._dbs: dict[str, lmdb._Database] = {}
        self._open_lock = threading.Lock()

    @property
    def env(self) -> lmdb.Environment:
        if self._env is None or self._pid != os.getpid():
            with self._open_lock:
                if self._env is None or self._pid != os.getpid():
                    self.path.mkdir(parents=True, exist_ok=True)
                    env = lmdb.open(
                        str(self.path), map_size=STATE_MAP_SIZE, max_dbs=len(STATE_TABLES) + 1,
                        max_readers=1024, sync=False, metasync=False, readahead=False,
                    )
                    self._dbs = {name: env.open_db(name.encode()) for name in STATE_TABLES}
                    self._env, self._pid = env, os.getpid()
        assert self._env is not None
        return self._env

    @contextmanager
    def write(self) -> Iterator[Txn]:
        env = self.env
        txn = Txn(env.begin(write=True), self._dbs)
        try:
            yield txn
        except BaseException:
            txn.txn.abort()
            raise
        txn.txn.commit()

    @contextmanager
    def read(self) -> Iterator[Txn]:
        env = self.env
        with env.begin(buffers=False) as raw:
            yield Txn(raw, self._dbs)

    def close(self) -> None:
        if self._env is not None and self._pid == os.getpid():
            self._env.close()
        self._env = None


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), "" where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return ""
    return stat[stat.rindex(b")") + 2 :].split()[19].decode()


def process_tag(pid: int | None = None) -> str:
    """`pid:start time` of a process (this one by default): tells a pid reused after a restart apart."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_start_time(pid)}"


def tag_alive(tag: str) -> bool:
    pid_text, _, started = tag.partition(":")
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not started or _start_time(pid) in ("", started)
