"""The files in which versions before segments (see `resumable.py`) kept each tus upload's bytes:
`<data dir>/resumable/<id>`, appended to, fsynced before the offset that counts them was committed.

Nothing writes them any more. An upload that still has one takes its bytes up to the committed
offset in as its first segment when it is next opened; files whose upload is gone are removed
once nobody has touched them for `ORPHAN_MIN_AGE` (an older process may still be finishing one).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from ..config import MiB

READ_BLOCK = 1 * MiB
ORPHAN_MIN_AGE = 3600.0


class Sink(Protocol):
    def write(self, data: bytes | memoryview) -> None: ...

    def close(self) -> None: ...


S = TypeVar("S", bound=Sink)


def path(spool: Path, upload_id: str) -> Path:
    return spool / upload_id


def read_prefix(file: Path, size: int, open_sink: Callable[[], S]) -> S | None:
    """The first `size` bytes of `file` written into a new sink; None when the file is missing or
    shorter (lost from a disk that was not synced: the caller must not pad)."""
    try:
        fd = os.open(file, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if os.fstat(fd).st_size < size:
            return None
        sink = open_sink()
        try:
            for pos in range(0, size, READ_BLOCK):
                sink.write(os.pread(fd, min(READ_BLOCK, size - pos), pos))
        except BaseException:
            sink.close()
            raise
        return sink
    finally:
        os.close(fd)


def remove_orphans(spool: Path, known: set[str]) -> None:
    """Files whose upload is not `known` and that nobody touched for a while."""
    if not spool.is_dir():
        return
    cutoff = time.time() - ORPHAN_MIN_AGE
    for file in spool.iterdir():
        try:
            if file.name not in known and file.stat().st_mtime <= cutoff:
                file.unlink()
        except FileNotFoundError:
            pass
