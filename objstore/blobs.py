"""Content-addressed chunk files. This layer knows digests and bytes, nothing of objects.

Layout: `chunks/ab/cd/<hex digest>`. New chunks are written into a per-writer staging dir
(`tmp/<id>/`, held by an flock while the writer lives, so GC can tell a crashed writer from a slow
one). Publishing them follows the classic order, batched for the whole object: make the staged data
durable, rename each file into place, make the renames durable. "Durable" is one `syncfs(2)` of the
data filesystem where Linux offers it (one flush instead of one fsync per chunk and per directory),
else an fsync of every file and every touched directory. Only then does the caller commit the LMDB
rows that reference the chunks, so a committed row never points at bytes that could be lost.

A published file without a row (its writer died before committing) is an orphan; GC removes it once
its ctime, which rename refreshes, is older than the grace period.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Iterable, Iterator

READ_BLOCK = 256 * 1024


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


class BlobDir:
    """The `chunks/` and `tmp/` trees under a data dir."""

    def __init__(self, root: Path, durable: bool = True):
        self.root = root
        self.chunks = root / "chunks"
        self.tmp = root / "tmp"
        self.durable = durable
        for d in (self.chunks, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    def path(self, digest: bytes) -> Path:
        h = digest.hex()
        return self.chunks / h[:2] / h[2:4] / h

    def exists(self, digest: bytes) -> bool:
        return self.path(digest).exists()

    def read(self, digest: bytes, start: int, length: int) -> Iterator[bytes]:
        """`length` bytes of a chunk from `start`, in pieces of at most READ_BLOCK bytes.

        Pieces stay below glibc's mmap threshold, which keeps large reads at memcpy speed.
        """
        fd = os.open(self.path(digest), os.O_RDONLY)
        try:
            while length > 0:
                piece = os.pread(fd, min(length, READ_BLOCK), start)
                if not piece:
                    raise EOFError(f"chunk {digest.hex()} is shorter than its manifest says")
                yield piece
                start += len(piece)
                length -= len(piece)
        finally:
            os.close(fd)

    def read_all(self, digest: bytes) -> bytes:
        with open(self.path(digest), "rb") as f:
            return f.read()

    def open_staging(self) -> "Staging":
        return Staging(self)

    def install(self, staged: Path, digest: bytes) -> set[Path]:
        """Rename a staged chunk into place (over an identical one, refreshing its ctime).

        Returns the directories whose entries changed.
        """
        final = self.path(digest)
        touched = {final.parent}
        if not final.parent.exists():
            touched |= {final.parent.parent, self.chunks}
            final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staged, final)
        return touched

    def sync_files(self, files: Iterable[Path]) -> None:
        """Make the data of `files` durable: one syncfs, or an fsync each."""
        if self.durable and not syncfs(self.root):
            for f in files:
                fsync_path(f)

    def sync_dirs(self, dirs: Iterable[Path]) -> None:
        """Make renames in `dirs` durable: one syncfs, or an fsync of each directory."""
        if self.durable and not syncfs(self.root):
            for d in sorted(set(dirs), key=lambda p: len(p.parts), reverse=True):
                fsync_dir(d)

    def ctime(self, digest: bytes) -> float | None:
        try:
            return self.path(digest).stat().st_ctime
        except FileNotFoundError:
            return None

    def remove(self, digest: bytes) -> bool:
        try:
            self.path(digest).unlink()
            return True
        except FileNotFoundError:
            return False

    def iter_chunk_dirs(self) -> Iterator[Path]:
        """Each leaf directory of the fan-out, in name order."""
        for top in sorted(self.chunks.iterdir()):
            if top.is_dir():
                yield from sorted(p for p in top.iterdir() if p.is_dir())

    def iter_stale_staging(self, min_age: float) -> Iterator[Path]:
        """Staging dirs whose writer is gone: its flock is free, or it never took one in `min_age` s."""
        now = time.time()
        for d in self.tmp.iterdir():
            lock = d / ".lock"
            try:
                if not lock.exists() and now - d.stat().st_mtime < min_age:
                    continue  # a writer between mkdir and flock
            except FileNotFoundError:
                continue
            if d.is_dir() and _lock_is_free(lock):
                yield d


def _lock_is_free(lock_path: Path) -> bool:
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return True  # the writer died before taking its lock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    finally:
        os.close(fd)  # closing drops the probe lock


class Staging:
    """A writer's private dir of chunks not yet in place; removed on close."""

    def __init__(self, blobs: BlobDir):
        self.blobs = blobs
        self.dir = blobs.tmp / secrets.token_hex(12)
        self.dir.mkdir()
        # The lock file appears under its real name already locked, so GC never sees it free.
        self._lock_fd = os.open(self.dir / ".lock.new", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        os.rename(self.dir / ".lock.new", self.dir / ".lock")
        self.staged: dict[bytes, Path] = {}
        self.published: list[bytes] = []

    def put(self, digest: bytes, data: bytes | memoryview) -> None:
        """Write a chunk to the staging dir (once per distinct digest); `publish` makes it durable."""
        if digest in self.staged:
            return
        path = self.dir / digest.hex()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        self.staged[digest] = path

    def publish(self) -> None:
        """Staged data durable, renamed into place, renames durable. Before the metadata commit."""
        if not self.staged:
            return
        self.blobs.sync_files(self.staged.values())
        touched: set[Path] = set()
        for digest, path in self.staged.items():
            touched |= self.blobs.install(path, digest)
        self.blobs.sync_dirs(touched)
        self.published = list(self.staged)
        self.staged.clear()

    def close(self) -> None:
        if self._lock_fd >= 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
