"""The chunk store in a local directory: one file per chunk, batches published with one flush.

Layout: `chunks/ab/cd/<hex digest>`. A batch's chunks are written into its own staging dir
(`tmp/<id>/`, held by an flock while the writer lives, so cleanup can tell a crashed writer from a
slow one). Publishing follows the classic order for the whole batch: make the staged data durable,
rename each file into place, make the renames durable. "Durable" is one `syncfs(2)` of the data
filesystem where Linux offers it (one flush instead of one fsync per chunk and per directory), else
an fsync of every file (through the descriptor it was written with) and every touched directory. The
descriptor `syncfs` flushes through is opened when the batch begins, before its first write, so that
a writeback error of its chunks is reported to it even if another flush saw it first
(`durability.BatchFlush`, which says what is and is not guaranteed).

A file's ctime is when its bytes were last written: rename refreshes it, so a chunk published again
over an identical file counts as new, and `delete` leaves it alone.

A full disk (ENOSPC, EDQUOT) is StorageFull, and so is a chunk that would take the disk under the
floor of free space kept for deletes (`room`, see objstore/diskspace.py); either way the batch's
staging dir goes with it on close, so a refused upload leaves nothing behind. An EIO from a write,
a flush or a rename is StorageIOError the same way; a flush that failed is never tried again (see
StorageIOError: the next writer of the bytes stages and flushes its own copy).

A read that meets EIO (`read`, `read_all`) is StorageIOError naming the chunk, logged in one line
with the chunk's path, so a GET answers 503 before its head and the administrator knows which file
the disk could not read; scrub reports such a chunk unreadable and quarantines it.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..durability import BatchFlush, fsync_dir
from ..errors import StorageIOError, disk_errors
from .interface import FileRegion, StoredChunk

READ_BLOCK = 256 * 1024
CHUNK_DIR = "chunks"
STAGING_DIR = "tmp"
QUARANTINE_DIR = "quarantine"
log = logging.getLogger("objstore.chunks")


class LocalChunkStore:
    """The `chunks/` and `tmp/` trees under a data dir; implements `ChunkStore`."""

    uploads_before_publish = False

    def __init__(self, root: Path, durable: bool = True, room: Callable[[int], None] | None = None):
        self.root = root
        self.chunks = root / CHUNK_DIR
        self.tmp = root / STAGING_DIR
        self.durable = durable
        self.room = room  # raises StorageFull when a chunk of that many bytes would not leave the floor free
        self._chunks_prefix = f"{self.chunks}{os.sep}"
        for d in (self.chunks, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    def path(self, digest: bytes) -> Path:
        return Path(self._file(digest))

    def _file(self, digest: bytes) -> str:
        """`path` as a string, for the read path: pathlib's joins cost ~20 µs of a small GET."""
        h = digest.hex()
        return f"{self._chunks_prefix}{h[:2]}{os.sep}{h[2:4]}{os.sep}{h}"

    def batch(self) -> Staging:
        return Staging(self)

    def put(self, digest: bytes, data: bytes | memoryview) -> None:
        with self.batch() as staging:
            staging.put(digest, data)
            staging.publish()

    def exists(self, digest: bytes) -> bool:
        return os.path.exists(self._file(digest))

    def read(self, digest: bytes, start: int, length: int) -> Iterator[bytes]:
        """Pieces stay below glibc's mmap threshold, which keeps large reads at memcpy speed."""
        path = self._file(digest)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            raise unreadable(digest, path) from e
        try:
            while length > 0:
                try:
                    piece = os.pread(fd, min(length, READ_BLOCK), start)
                except OSError as e:
                    if e.errno != errno.EIO:
                        raise
                    raise unreadable(digest, path) from e
                if not piece:
                    raise EOFError(f"chunk {digest.hex()} is shorter than its manifest says")
                yield piece
                start += len(piece)
                length -= len(piece)
        finally:
            os.close(fd)

    def read_spans(self, spans: Iterable[tuple[bytes, int, int]]) -> Iterator[bytes]:
        for digest, start, length in spans:
            yield from self.read(digest, start, length)

    def region(self, digest: bytes, start: int, length: int) -> FileRegion:
        return FileRegion(self._file(digest), start, length)

    def read_all(self, digest: bytes) -> bytes:
        path = self._file(digest)
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                data = os.read(fd, os.fstat(fd).st_size + 1)  # all of it in one read, as open().read() does
                while more := os.read(fd, READ_BLOCK):  # a read cut short
                    data += more
                return data
            finally:
                os.close(fd)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            raise unreadable(digest, path) from e

    def delete(self, digest: bytes, unless_written_after: float) -> bool:
        path = self.path(digest)
        try:
            if path.stat().st_ctime > unless_written_after:
                return False  # written again (published by a writer) since it was judged unused
            path.unlink()
            return True
        except FileNotFoundError:
            return True

    def iterate(self) -> Iterator[tuple[list[StoredChunk], int, int]]:
        """One batch per leaf directory of the fan-out, in name order; names that are no digest
        (not ours) are left out."""
        leaves = list(self._leaf_dirs())
        for n, leaf in enumerate(leaves, 1):
            found: list[StoredChunk] = []
            for entry in os.scandir(leaf):
                digest = _digest_of(entry.name)
                if digest is None:
                    continue
                try:
                    found.append((digest, entry.stat().st_ctime))
                except FileNotFoundError:
                    continue
            yield found, n, len(leaves)

    def quarantine(self, digest: bytes) -> bool:
        path = self.path(digest)
        if not path.exists():
            return False
        dest = self.root / QUARANTINE_DIR
        dest.mkdir(exist_ok=True)
        shutil.move(str(path), dest / digest.hex())
        return True

    def claim(self, owner: str, replacing: str | None = None) -> str:
        """The data dir's own chunks: no other store reaches them."""
        return owner

    def cleanup(self, min_age: float) -> int:
        removed = 0
        for d in self._stale_staging(min_age):
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
        return removed

    def _leaf_dirs(self) -> Iterator[Path]:
        for top in sorted(self.chunks.iterdir()):
            if top.is_dir():
                yield from sorted(p for p in top.iterdir() if p.is_dir())

    def _stale_staging(self, min_age: float) -> Iterator[Path]:
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

    def _install(self, staged: Path, digest: bytes) -> set[Path]:
        """Rename a staged chunk into place (over an identical one, refreshing its ctime); returns
        the directories whose entries changed."""
        final = self.path(digest)
        touched = {final.parent}
        if not final.parent.exists():
            touched |= {final.parent.parent, self.chunks}
            final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staged, final)
        return touched

    def _sync_files(self, files: Iterable[Path], flush: BatchFlush | None) -> None:
        """Staged files durable: the batch's syncfs (without it, each was fsynced as it was written)."""
        if flush is not None and flush.whole_filesystem:
            flush.sync()

    def _sync_dirs(self, dirs: Iterable[Path], flush: BatchFlush | None) -> None:
        if flush is None:
            return
        if flush.whole_filesystem:
            flush.sync()
            return
        for d in sorted(set(dirs), key=lambda p: len(p.parts), reverse=True):
            fsync_dir(d)


def unreadable(digest: bytes, path: str) -> StorageIOError:
    """What a read of a chunk that met EIO raises: StorageIOError naming the chunk, logged once with its
    path. (Any other OSError passes as it is: FileNotFoundError is a chunk gone.)"""
    log.error("chunk %s: I/O error (EIO) reading %s", digest.hex(), path)
    return StorageIOError.reading(f"chunk {digest.hex()}")


def _digest_of(name: str) -> bytes | None:
    try:
        digest = bytes.fromhex(name)
    except ValueError:
        return None
    return digest if len(digest) == 32 else None


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
    """A batch: the writer's private dir of chunks not yet in place; removed on close."""

    def __init__(self, store: LocalChunkStore):
        self.store = store
        self.dir = store.tmp / secrets.token_hex(12)
        self.staged: dict[bytes, Path] = {}
        self.published: set[bytes] = set()
        self._lock_fd = -1
        with disk_errors():
            # Opened before anything of the batch is written: see durability.py (errseq_t).
            self.flush = BatchFlush(store.root) if store.durable else None
            try:
                self.dir.mkdir()
            except BaseException:
                self._close_flush()
                raise
            try:
                # The lock file appears under its real name already locked, so cleanup never sees it free.
                self._lock_fd = os.open(self.dir / ".lock.new", os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
                os.rename(self.dir / ".lock.new", self.dir / ".lock")
            except BaseException:
                self._remove()
                raise

    def holds(self, digest: bytes) -> bool:
        return digest in self.staged or digest in self.published

    def put(self, digest: bytes, data: bytes | memoryview) -> None:
        """Write a chunk to the staging dir (once per distinct digest); `publish` makes it durable."""
        if digest in self.staged:
            return
        if self.store.room is not None:
            self.store.room(len(data))
        path = self.dir / digest.hex()
        with disk_errors():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self.flush is not None and not self.flush.whole_filesystem:
                    os.fsync(fd)  # through the descriptor that wrote it (durability.py)
            finally:
                os.close(fd)
        self.staged[digest] = path

    def publish(self) -> None:
        """Staged data durable, renamed into place, renames durable. Before the metadata commit."""
        if not self.staged:
            return
        with disk_errors():
            self.store._sync_files(self.staged.values(), self.flush)
            touched: set[Path] = set()
            for digest, path in self.staged.items():
                touched |= self.store._install(path, digest)
                self.published.add(digest)  # in place: readable by others from now on
            self.store._sync_dirs(touched, self.flush)
        self.staged.clear()

    def exposed(self) -> set[bytes]:
        return set(self.published)

    def close(self) -> None:
        if self._lock_fd >= 0:
            self._remove()

    def _remove(self) -> None:
        """The staging dir and what it holds gone (the space of a failed write with it), the lock
        dropped, the batch's flush descriptor closed."""
        shutil.rmtree(self.dir, ignore_errors=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        self._close_flush()

    def _close_flush(self) -> None:
        if self.flush is not None:
            self.flush.close()
            self.flush = None

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
