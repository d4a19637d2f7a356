"""Making files and renames durable: one `syncfs(2)` where Linux offers it, else fsync each.

Used by the local chunk store (chunks published before the metadata that names them).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

_LIBC = ctypes.CDLL(None, use_errno=True)
_HAS_SYNCFS = hasattr(_LIBC, "syncfs")


def syncfs(path: Path) -> bool:
    """Flush the whole filesystem holding `path` (data and metadata); False where unsupported."""
    if not _HAS_SYNCFS:
        return False
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _LIBC.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs failed: {os.strerror(err)}")
    finally:
        os.close(fd)
    return True


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
