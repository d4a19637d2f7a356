"""The chunk store in a local directory (`objstore.chunks.localdir`): layout, batches (staging,
publish), reads, deletes that spare rewritten chunks, iteration, quarantine, dead-writer cleanup."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

from objstore.chunks.localdir import LocalChunkStore, Staging
from objstore.hashing import chunk_digest
from objstore.maintenance import STAGING_MIN_AGE


@pytest.fixture
def chunks(tmp_path: Path) -> LocalChunkStore:
    return LocalChunkStore(tmp_path, durable=True)


def staged(chunks: LocalChunkStore, data: bytes) -> tuple[Staging, bytes]:
    s = chunks.batch()
    digest = chunk_digest(data)
    s.put(digest, data)
    return s, digest


def ctime(chunks: LocalChunkStore, digest: bytes) -> float:
    return chunks.path(digest).stat().st_ctime


def test_layout_is_two_levels_of_fan_out(chunks: LocalChunkStore) -> None:
    digest = bytes.fromhex("abcdef" + "00" * 29)
    assert chunks.path(digest) == chunks.chunks / "ab" / "cd" / digest.hex()


def test_staged_chunk_is_invisible_until_published(chunks: LocalChunkStore) -> None:
    s, digest = staged(chunks, b"hello world")
    assert not chunks.exists(digest)
    assert s.holds(digest)
    assert (s.dir / digest.hex()).read_bytes() == b"hello world"
    s.publish()
    assert chunks.read_all(digest) == b"hello world"
    assert (s.staged, s.published) == ({}, {digest})
    assert s.holds(digest)
    s.publish()  # nothing left to publish: a no-op
    assert s.published == {digest}
    s.close()
    assert not s.dir.exists()
    assert list(chunks.tmp.iterdir()) == []


def test_put_is_a_batch_of_one(chunks: LocalChunkStore) -> None:
    digest = chunk_digest(b"alone")
    chunks.put(digest, b"alone")
    assert chunks.read_all(digest) == b"alone"
    assert list(chunks.tmp.iterdir()) == []


def test_publishing_over_an_identical_chunk_refreshes_its_ctime(chunks: LocalChunkStore) -> None:
    a, digest = staged(chunks, b"same")
    a.publish()
    old = time.time() - 3600
    os.utime(chunks.path(digest), (old, old))  # mtime only; the ctime is what GC looks at
    before = ctime(chunks, digest)
    time.sleep(0.01)
    b, _ = staged(chunks, b"same")
    b.publish()
    assert chunks.read_all(digest) == b"same"
    assert ctime(chunks, digest) > before
    assert [p.name for p in b.dir.iterdir()] == [".lock"]
    assert not chunks.exists(b"\x00" * 32)
    a.close()
    b.close()


def test_delete_spares_a_chunk_written_after_the_cutoff(chunks: LocalChunkStore) -> None:
    """GC judged the chunk unused at `cutoff`; a writer that published the same bytes since keeps them."""
    s, digest = staged(chunks, b"again")
    cutoff = time.time() - 60
    s.publish()
    assert chunks.delete(digest, unless_written_after=cutoff) is False
    assert chunks.read_all(digest) == b"again"
    assert chunks.delete(digest, unless_written_after=ctime(chunks, digest)) is True
    assert not chunks.exists(digest)
    assert chunks.delete(digest, unless_written_after=cutoff) is True  # already gone
    s.close()


def test_close_drops_what_was_not_published(chunks: LocalChunkStore) -> None:
    s, digest = staged(chunks, b"abandoned")
    s.close()
    s.close()  # idempotent
    assert not chunks.exists(digest)
    assert list(chunks.tmp.iterdir()) == []


def test_ranged_read_in_blocks(chunks: LocalChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import objstore.chunks.localdir as mod

    monkeypatch.setattr(mod, "READ_BLOCK", 7)
    data = bytes(range(100))
    with chunks.batch() as s:
        s.put(chunk_digest(data), data)
        s.publish()
    pieces = list(chunks.read(chunk_digest(data), 10, 50))
    assert b"".join(pieces) == data[10:60] and max(map(len, pieces)) == 7
    with pytest.raises(EOFError):
        list(chunks.read(chunk_digest(data), 90, 20))
    chunks.path(chunk_digest(data)).unlink()
    with pytest.raises(FileNotFoundError):
        list(chunks.read(chunk_digest(data), 0, 1))


def test_iterate_yields_each_leaf_dir_with_ctimes(chunks: LocalChunkStore) -> None:
    digests = []
    for data in (b"one", b"two", b"three"):
        digests.append(chunk_digest(data))
        chunks.put(digests[-1], data)
    (chunks.path(digests[0]).parent / "not-a-digest").write_bytes(b"x")  # not ours: left out
    batches = list(chunks.iterate())
    found = {digest: written for batch, _, _ in batches for digest, written in batch}
    assert found == {d: ctime(chunks, d) for d in digests}
    assert [(n, total) for _, n, total in batches] == [(n, len(batches)) for n in range(1, len(batches) + 1)]


def test_quarantine_moves_a_chunk_aside(chunks: LocalChunkStore, tmp_path: Path) -> None:
    digest = chunk_digest(b"bad")
    chunks.put(digest, b"bad")
    assert chunks.quarantine(digest) is True
    assert not chunks.exists(digest)
    assert (tmp_path / "quarantine" / digest.hex()).read_bytes() == b"bad"
    assert chunks.quarantine(digest) is False


def test_live_writer_is_never_stale_even_if_old(chunks: LocalChunkStore) -> None:
    s, _ = staged(chunks, b"slow upload")
    old = time.time() - 10 * STAGING_MIN_AGE
    os.utime(s.dir, (old, old))
    assert chunks.cleanup(STAGING_MIN_AGE) == 0
    assert s.dir.is_dir()
    s.close()


def test_dead_writer_is_stale_at_once(chunks: LocalChunkStore) -> None:
    """A staging dir whose lock file exists but is not locked belongs to a dead writer, whatever its age."""
    d = chunks.tmp / "dead"
    d.mkdir()
    (d / ".lock").touch()
    (d / ("ab" * 32)).write_bytes(b"x")
    assert chunks.cleanup(STAGING_MIN_AGE) == 1
    assert not d.exists()


def test_dir_without_lock_is_stale_only_after_min_age(chunks: LocalChunkStore) -> None:
    d = chunks.tmp / "starting"
    d.mkdir()
    assert chunks.cleanup(STAGING_MIN_AGE) == 0
    assert d.is_dir()
    old = time.time() - STAGING_MIN_AGE - 1
    os.utime(d, (old, old))
    assert chunks.cleanup(STAGING_MIN_AGE) == 1
    assert not d.exists()


def test_gc_scan_while_a_writer_takes_its_lock_keeps_the_writer_s_dir(
    chunks: LocalChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GC's scan lands between a new writer creating `.lock` and flock()ing it.

    The writer is alive, so its staging dir must survive; otherwise its first `put` fails.
    """
    real_flock = fcntl.flock
    scans: list[int] = []  # staging dirs each simulated GC scan removed

    def flock_after_a_gc_scan(fd: int, op: int) -> None:
        if op == fcntl.LOCK_EX and not scans:  # the writer's blocking lock, not GC's probe
            scans.append(chunks.cleanup(STAGING_MIN_AGE))
        real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock_after_a_gc_scan)
    s = chunks.batch()
    monkeypatch.setattr(fcntl, "flock", real_flock)
    assert scans, "the simulated GC scan did not run"
    assert s.dir.is_dir(), "GC removed the staging dir of a live writer"
    s.put(chunk_digest(b"data"), b"data")
    s.close()


def test_publish_without_syncfs_falls_back_to_fsync(chunks: LocalChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each chunk fsynced through the descriptor that wrote it, before it is closed; then each dir."""
    import objstore.chunks.localdir as mod
    import objstore.durability as durability

    synced: list[object] = []
    written: dict[int, Path] = {}
    real_open = os.open

    def recording_open(path: object, flags: int, mode: int = 0o777) -> int:
        fd = real_open(path, flags, mode)  # type: ignore[arg-type]
        if flags & os.O_WRONLY:
            written[fd] = Path(str(path))
        return fd

    monkeypatch.setattr(durability, "_HAS_SYNCFS", False)
    monkeypatch.setattr(os, "open", recording_open)
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(written[fd]))
    monkeypatch.setattr(mod, "fsync_dir", lambda p: synced.append(p))
    s, digest = staged(chunks, b"fallback")
    assert synced == [s.dir / digest.hex()]  # the data, through the write's own descriptor
    s.publish()
    assert set(synced[1:]) == {chunks.path(digest).parent, chunks.path(digest).parent.parent, chunks.chunks}
    assert chunks.read_all(digest) == b"fallback"
    s.close()


def test_the_batch_syncfs_descriptor_is_opened_before_its_first_write(
    chunks: LocalChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """syncfs reports a writeback error already seen by another flush only to descriptors opened before
    it (errseq_t): the batch flushes through one it opened before writing anything, and closes it."""
    import objstore.durability as durability

    events: list[tuple[str, object, int]] = []
    real_open, real_close = os.open, os.close

    def recording_open(path: object, flags: int, mode: int = 0o777) -> int:
        fd = real_open(path, flags, mode)  # type: ignore[arg-type]
        events.append(("open", Path(str(path)), fd))
        return fd

    def recording_close(fd: int) -> None:
        events.append(("close", None, fd))
        real_close(fd)

    class Libc:
        def syncfs(self, fd: int) -> int:
            events.append(("syncfs", None, fd))
            return 0

    monkeypatch.setattr(os, "open", recording_open)
    monkeypatch.setattr(os, "close", recording_close)
    monkeypatch.setattr(durability, "_LIBC", Libc())
    s = chunks.batch()
    digests = [chunk_digest(data) for data in (b"one", b"two")]
    for digest, data in zip(digests, (b"one", b"two"), strict=True):
        s.put(digest, data)
    s.publish()
    s.close()
    flushes = [fd for kind, _, fd in events if kind == "syncfs"]
    assert len(flushes) == 2 and len(set(flushes)) == 1  # the data, then the renames: one descriptor
    fd = flushes[0]
    opened = next(i for i, (kind, path, n) in enumerate(events) if kind == "open" and n == fd)
    assert events[opened][1] == chunks.root
    first_chunk = s.dir / digests[0].hex()
    first_write = next(i for i, (kind, path, _) in enumerate(events) if kind == "open" and path == first_chunk)
    assert opened < first_write
    closed = [i for i, (kind, _, n) in enumerate(events) if kind == "close" and n == fd]
    assert len(closed) == 1 and closed[0] > max(i for i, e in enumerate(events) if e[0] == "syncfs")
    assert [chunks.read_all(d) for d in digests] == [b"one", b"two"]


def test_a_failed_syncfs_fails_the_publish_and_the_batch_leaves_nothing(
    chunks: LocalChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ctypes
    import errno

    import objstore.durability as durability
    from objstore.errors import StorageIOError

    class Libc:
        def syncfs(self, fd: int) -> int:
            ctypes.set_errno(errno.EIO)
            return -1

    monkeypatch.setattr(durability, "_LIBC", Libc())
    s, digest = staged(chunks, b"lost")
    with pytest.raises(StorageIOError):
        s.publish()
    s.close()
    assert not chunks.exists(digest) and not s.dir.exists() and s.flush is None


def test_a_read_the_disk_fails_is_storage_io_error_naming_the_chunk(
    chunks: LocalChunkStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """EIO from pread (ranged reads) and read (whole chunks): StorageIOError naming the chunk, logged once
    with its path; a chunk that is gone stays FileNotFoundError (the engine's ChunkMissing)."""
    import errno

    from objstore.errors import StorageIOError

    digest = chunk_digest(b"unreadable")
    chunks.put(digest, b"unreadable")

    def eio(*args: object) -> bytes:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "pread", eio)
    monkeypatch.setattr(os, "read", eio)

    def ranged() -> bytes:
        return b"".join(chunks.read(digest, 2, 4))

    def whole() -> bytes:
        return chunks.read_all(digest)

    for attempt in (ranged, whole):
        caplog.clear()
        with pytest.raises(StorageIOError, match=f"I/O error .*reading chunk {digest.hex()}"):
            attempt()
        assert [r.getMessage() for r in caplog.records] == [
            f"chunk {digest.hex()}: I/O error (EIO) reading {chunks.path(digest)}"
        ]
    gone = chunk_digest(b"gone")
    with pytest.raises(FileNotFoundError):
        chunks.read_all(gone)
