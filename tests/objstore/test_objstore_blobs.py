"""Content-addressed chunk files (`objstore.blobs`): layout, staging, install, dead-writer detection."""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from pathlib import Path

import pytest

from objstore.blobs import BlobDir, Staging
from objstore.hashing import chunk_digest
from objstore.maintenance import STAGING_MIN_AGE


@pytest.fixture
def blobs(tmp_path: Path) -> BlobDir:
    return BlobDir(tmp_path, durable=True)


def staged(blobs: BlobDir, data: bytes) -> tuple[Staging, bytes]:
    s = blobs.open_staging()
    digest = chunk_digest(data)
    s.put(digest, data)
    return s, digest


def test_layout_is_two_levels_of_fan_out(blobs: BlobDir) -> None:
    digest = bytes.fromhex("abcdef" + "00" * 29)
    assert blobs.path(digest) == blobs.chunks / "ab" / "cd" / digest.hex()


def test_staged_chunk_is_invisible_until_published(blobs: BlobDir) -> None:
    s, digest = staged(blobs, b"hello world")
    assert not blobs.exists(digest)
    assert (s.dir / digest.hex()).read_bytes() == b"hello world"
    s.publish()
    assert blobs.read_all(digest) == b"hello world"
    assert (s.staged, s.published) == ({}, [digest])
    s.publish()  # nothing left to publish: a no-op
    assert s.published == [digest]
    s.close()
    assert not s.dir.exists()
    assert list(blobs.tmp.iterdir()) == []


def test_publishing_over_an_identical_chunk_refreshes_its_ctime(blobs: BlobDir) -> None:
    a, digest = staged(blobs, b"same")
    a.publish()
    old = time.time() - 3600
    os.utime(blobs.path(digest), (old, old))  # mtime only; the ctime is what GC looks at
    before = blobs.ctime(digest)
    time.sleep(0.01)
    b, _ = staged(blobs, b"same")
    b.publish()
    assert blobs.read_all(digest) == b"same"
    assert blobs.ctime(digest) > before  # type: ignore[operator]
    assert [p.name for p in b.dir.iterdir()] == [".lock"]
    assert blobs.ctime(b"\x00" * 32) is None
    a.close()
    b.close()


def test_close_drops_what_was_not_published(blobs: BlobDir) -> None:
    s, digest = staged(blobs, b"abandoned")
    s.close()
    s.close()  # idempotent
    assert not blobs.exists(digest)
    assert list(blobs.tmp.iterdir()) == []


def test_ranged_read_in_blocks(blobs: BlobDir, monkeypatch: pytest.MonkeyPatch) -> None:
    import objstore.blobs as mod

    monkeypatch.setattr(mod, "READ_BLOCK", 7)
    data = bytes(range(100))
    with blobs.open_staging() as s:
        s.put(chunk_digest(data), data)
        s.publish()
    pieces = list(blobs.read(chunk_digest(data), 10, 50))
    assert b"".join(pieces) == data[10:60] and max(map(len, pieces)) == 7
    with pytest.raises(EOFError):
        list(blobs.read(chunk_digest(data), 90, 20))
    assert blobs.remove(chunk_digest(data)) is True
    assert blobs.remove(chunk_digest(data)) is False


def test_live_writer_is_never_stale_even_if_old(blobs: BlobDir) -> None:
    s, _ = staged(blobs, b"slow upload")
    old = time.time() - 10 * STAGING_MIN_AGE
    os.utime(s.dir, (old, old))
    assert list(blobs.iter_stale_staging(STAGING_MIN_AGE)) == []
    s.close()


def test_dead_writer_is_stale_at_once(blobs: BlobDir) -> None:
    """A staging dir whose lock file exists but is not locked belongs to a dead writer, whatever its age."""
    d = blobs.tmp / "dead"
    d.mkdir()
    (d / ".lock").touch()
    (d / ("ab" * 32)).write_bytes(b"x")
    assert list(blobs.iter_stale_staging(STAGING_MIN_AGE)) == [d]


def test_dir_without_lock_is_stale_only_after_min_age(blobs: BlobDir) -> None:
    d = blobs.tmp / "starting"
    d.mkdir()
    assert list(blobs.iter_stale_staging(STAGING_MIN_AGE)) == []
    old = time.time() - STAGING_MIN_AGE - 1
    os.utime(d, (old, old))
    assert list(blobs.iter_stale_staging(STAGING_MIN_AGE)) == [d]


def test_gc_scan_while_a_writer_takes_its_lock_keeps_the_writer_s_dir(blobs: BlobDir, monkeypatch: pytest.MonkeyPatch) -> None:
    """GC's scan lands between a new writer creating `.lock` and flock()ing it.

    The writer is alive, so its staging dir must survive; otherwise its first `put` fails.
    """
    real_flock = fcntl.flock
    removed: list[Path] = []  # dirs GC removed, then a marker that the scan ran

    def flock_after_a_gc_scan(fd: int, op: int) -> None:
        if op == fcntl.LOCK_EX and not removed:  # the writer's blocking lock, not GC's probe
            for d in blobs.iter_stale_staging(STAGING_MIN_AGE):
                shutil.rmtree(d)
                removed.append(d)
            removed.append(Path("scanned"))
        real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock_after_a_gc_scan)
    s = blobs.open_staging()
    monkeypatch.setattr(fcntl, "flock", real_flock)
    assert removed, "the simulated GC scan did not run"
    assert s.dir.is_dir(), "GC removed the staging dir of a live writer"
    s.put(chunk_digest(b"data"), b"data")
    s.close()


def test_publish_without_syncfs_falls_back_to_fsync(blobs: BlobDir, monkeypatch: pytest.MonkeyPatch) -> None:
    import objstore.blobs as mod

    synced: list[Path] = []
    monkeypatch.setattr(mod, "_HAS_SYNCFS", False)
    monkeypatch.setattr(mod, "fsync_path", lambda p: synced.append(p))
    monkeypatch.setattr(mod, "fsync_dir", lambda p: synced.append(p))
    s, digest = staged(blobs, b"fallback")
    s.publish()
    assert synced[0] == s.dir / digest.hex()  # the data first, while still staged
    assert set(synced[1:]) == {blobs.path(digest).parent, blobs.path(digest).parent.parent, blobs.chunks}
    assert blobs.read_all(digest) == b"fallback"
    s.close()
