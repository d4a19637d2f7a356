"""Whether the process that wrote a volatile row is still alive, even if its pid was reused.

Rows that belong to a process (quota reservations of its uploads in flight) carry its `process_tag`:
pid and start time. Once that process is gone, `tag_alive` says so and the row is dropped as it is
met, even if a later process got the same pid.
"""

from __future__ import annotations

import os


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
