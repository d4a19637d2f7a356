"""Whether the process that wrote a volatile row is still alive, even if its pid was reused, and
whether this process can tell at all.

Rows that belong to a process (quota reservations of its uploads in flight) carry its `process_tag`:
the pid space it runs in, its pid and its start time. Once that process is gone, `tag_alive` says so
and the row is dropped as it is met, even if a later process got the same pid.

A pid means something only in its own pid space: one boot of one machine, one pid namespace (two
containers on one host share the boot but not the pids). When the rows are shared by several nodes
(`PostgresVolatileStore`), a row written in another pid space cannot be checked here: `is_local`
says so, and the owner of such rows keeps a lease instead (`reservations.py`).
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), "" where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return ""
    return stat[stat.rindex(b")") + 2 :].split()[19].decode()


@cache
def pid_space() -> str:
    """Names this boot of this machine and this process's pid namespace: 16 hex digits, the same for
    every process whose pids this one can check."""
    parts = []
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    except OSError:
        parts.append("")
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        parts.append("")
    if not any(parts):  # not Linux: nothing tells machines apart, so name this one at random
        parts.append(os.urandom(16).hex())
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=8).hexdigest()


def process_tag(pid: int | None = None) -> str:
    """`space/pid:start time` of a process (this one by default): tells a pid reused after a restart
    apart, and a pid of another machine or container from one of ours."""
    pid = os.getpid() if pid is None else pid
    return f"{pid_space()}/{pid}:{_start_time(pid)}"


def is_local(tag: str) -> bool:
    """Whether `tag` names a process of this pid space, which `tag_alive` can check (tags written
    before pid spaces were recorded, `pid:start`, came from a store only one machine used)."""
    space, slash, _ = tag.partition("/")
    return not slash or space == pid_space()


def tag_alive(tag: str) -> bool:
    """Whether the local process `tag` names still runs (see `is_local`)."""
    pid_text, _, started = tag.rpartition("/")[2].partition(":")
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not started or _start_time(pid) in ("", started)
