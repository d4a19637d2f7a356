"""glibc's malloc, told to give large buffers back to the system.

An upload moves its body through buffers of up to a few MiB (a 1 MiB batch for the engine, chunk
pieces). glibc serves buffers above its mmap threshold (128 KiB) with mmap and unmaps them when
freed, but each such free raises the threshold up to the freed size, after which MiB buffers come
from the heap arenas of the worker threads, where freed space stays resident. During a 10 GiB
multipart upload (boto3's 10 parts at once) the server sat at 160-256 MiB with a 285 MiB peak;
with the threshold fixed at `MMAP_THRESHOLD`, at 124-173 MiB with a 207 MiB peak (docs/benchmarks.md,
"Serving").
Reads of chunk files stay below it (256 KiB pieces), so they keep their memcpy speed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("pyblob.memory")

M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h
MMAP_THRESHOLD = 512 * 1024


def keep_large_buffers_unmapped() -> bool:
    """Fix glibc's mmap threshold (which also stops its dynamic adjustment); False off glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    if not done:
        log.warning("mallopt(M_MMAP_THRESHOLD) refused; large buffers may stay resident after uploads")
    return done
