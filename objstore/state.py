"""Shared, volatile state of the running server: quota reservations and rate-limit buckets.

A second LMDB environment beside the metadata one (`<data dir>/state`), shared by every worker
process, but opened with `sync=False`: a commit costs a few microseconds instead of an fsync,
because nothing in it needs to survive a crash. Reservations belong to uploads that die with the
process, and a token bucket that forgets its level after a power loss only lets a client start
afresh. Rows that belong to a process carry its pid and start time (`process_tag`) and are dropped
as they are met once that process is gone, even if a later process reuses the pid. Like `db.Database` it is opened lazily in the process that uses it.

An unsynced environment survives `kill -9` (its pages are in the OS cache) but may be torn by a
power loss, and reading a torn LMDB file can crash the process. So it is never read across a
reboot: it remembers the boot id it was created under and the first process of a new boot
recreates it (under an flock, so workers starting together agree). One that LMDB refuses to open
(not an LMDB file, corrupt) is recreated too: the server starts with empty state, never refuses to.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import lmdb

from .db import LazyEnvironment, Tables, open_tables

STATE_TABLES = (
    "reservations",  # user + NUL + reservation id -> "bytes pid:start"
    "buckets",  # rate-limit bucket key -> packed (tokens, updated, full_at), see ratelimit.py
)
STATE_MAP_SIZE = 256 * 1024 * 1024  # bounds the state: buckets are evicted long before this fills
BOOT_FILE = "boot"  # the boot id the environment was created under
OPEN_LOCK = "open.lock"
_UNREADABLE = (lmdb.InvalidError, lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.VersionMismatchError)


def boot_id() -> str:
    """This boot of the machine (Linux); "" where unknown, and then only unreadable files are recreated."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


class VolatileState(LazyEnvironment):
    def _open(self) -> tuple[lmdb.Environment, Tables]:
        """Open the environment, first recreating it if it is from another boot or unreadable."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / OPEN_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            boot = boot_id()
            if boot and self._recorded_boot() != boot:
                self._recreate(boot)
            try:
                return self._open_env()
            except _UNREADABLE:
                self._recreate(boot)
                return self._open_env()
        finally:
            os.close(fd)  # drops the flock

    def _open_env(self) -> tuple[lmdb.Environment, Tables]:
        env = lmdb.open(
            str(self.path), map_size=STATE_MAP_SIZE, max_dbs=len(STATE_TABLES) + 1,
            max_readers=1024, sync=False, metasync=False, readahead=False,
        )
        return env, open_tables(env, STATE_TABLES)

    def _recorded_boot(self) -> str | None:
        try:
            return (self.path / BOOT_FILE).read_text().strip()
        except OSError:
            return None

    def _recreate(self, boot: str) -> None:
        for name in ("data.mdb", "lock.mdb"):
            (self.path / name).unlink(missing_ok=True)
        (self.path / BOOT_FILE).write_text(boot + "\n")


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
