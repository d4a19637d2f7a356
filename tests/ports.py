"""Listening ports for the servers the tests start.

A port the kernel picks with `bind(("127.0.0.1", 0))` comes from its ephemeral range, the same range every
outgoing connection of the machine takes its local port from: between the moment a test chose it and the
moment its server (a SeaweedFS volume server started 10 s later, say) bound it, a client connection of
another test could hold it, and the server died with "address already in use". So the ports here come from
below that range, handed out in turn through one counter that every test process of the machine shares
under a lock: a port comes round again only after the whole range has, and one still bound is skipped.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import tempfile
from pathlib import Path

LOWEST = 10_000
COUNTER = Path(tempfile.gettempdir()) / "pyblob-test-ports"


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: a closed port in TIME_WAIT is free
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise
        return True


def free_ports(count: int) -> list[int]:
    """`count` consecutive loopback ports, none bound now and none handed out since the range last came round."""
    high = _ephemeral_low()
    if high - LOWEST < 2 * count:
        raise RuntimeError(f"no room for {count} ports between {LOWEST} and the ephemeral range at {high}")
    fd = os.open(COUNTER, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        start = int(text) if text.isdigit() else LOWEST + os.getpid() % (high - LOWEST)
        for _ in range((high - LOWEST) // count):
            if start + count > high:
                start = LOWEST
            block = list(range(start, start + count))
            start += count
            if all(_bindable(port) for port in block):
                break
        else:
            raise RuntimeError(f"no {count} free consecutive ports between {LOWEST} and {high}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(start).encode(), 0)
        return block
    finally:
        os.close(fd)  # and with it the lock


def free_port() -> int:
    return free_ports(1)[0]
