"""Streaming content in (`objstore.content`): digests, inline vs chunks, staging, and crash safety."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import blake3
import pytest
from clocks import Clock
from objstore_crash_writer import payload
from objstore_helpers import (
    SMALL,
    chunk_files,
    chunk_row,
    entries_of,
    listed_usage,
    md5,
    rand,
    read,
    staged_by,
    staged_files,
    tmp_entries,
)

from objstore import Store
from objstore.chunks.localdir import LocalChunkStore
from objstore.content import ContentWriter
from objstore.errors import ChunkMissing, EntityTooLarge, NoSuchKey, QuotaExceeded
from objstore.limits import SizeLimits
from objstore.maintenance import collect_garbage, fsck

HERE = Path(__file__).parent
REPO = HERE.parent.parent


# ContentWriter ---------------------------------------------------------------------------------
def staged_files_are_private(store: Store) -> bool:
    """The local store stages in a private dir; an S3 store uploads each chunk as it comes."""
    return isinstance(store.chunks, LocalChunkStore)


def content_writer(store: Store, checksums: list[str] | None = None) -> ContentWriter:
    return ContentWriter(store.meta, store.chunks, store.config, checksums or ())


def test_digests_of_the_whole_stream(store: Store) -> None:
    data = rand(600_000, seed=1)
    with content_writer(store, ["CRC32C", "sha256"]) as w:
        for i in range(0, len(data), 10_000):
            w.write(memoryview(data)[i : i + 10_000])
        content = w.finish()
        assert w.finish() is content  # finish is idempotent
    assert (content.size, content.md5, content.blake3) == (len(data), md5(data), blake3.blake3(data).hexdigest())
    assert content.checksums["SHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert set(content.checksums) == {"CRC32C", "SHA256"}
    assert content.inline is None and sum(n for _, n in content.entries) == len(data)


def test_inline_threshold(store: Store) -> None:
    for size, inline in ((0, True), (store.config.inline_max, True), (store.config.inline_max + 1, False)):
        with content_writer(store) as w:
            w.write(rand(size))
            content = w.finish()
        assert (content.inline is not None) == inline, size
        assert content.inline in (None, rand(size))


def test_new_chunks_are_staged_and_closing_drops_them(store: Store) -> None:
    w = content_writer(store)
    w.write(rand(500_000, seed=2))
    content = w.finish()
    assert staged_by(w) == {d.hex() for d, _ in content.entries}
    w.close()
    assert tmp_entries(store) == [] and chunk_files(store) == set()


def test_chunks_already_referenced_are_not_written_again(store: Store, bucket: str) -> None:
    data = rand(500_000, seed=3)
    store.put_object(bucket, "first", data)
    before = chunk_files(store)
    with store.open_writer(bucket, "second") as w:
        w.write(data + rand(100_000, seed=4))
        content = w.finish()
        new = {d.hex() for d, _ in content.entries} - before
        assert new and staged_by(w) == new  # only the tail is staged
        w.commit()
    assert read(store, bucket, "second") == data + rand(100_000, seed=4)


def test_unreferenced_chunks_are_staged_again(store: Store, bucket: str) -> None:
    data = rand(300_000, seed=5)
    store.put_object(bucket, "gone", data)
    store.delete_object(bucket, "gone")  # count 0, file still there during the grace period
    with store.open_writer(bucket, "back") as w:
        w.write(data)
        content = w.finish()
        assert staged_by(w) == {d.hex() for d, _ in content.entries}


def test_size_limits() -> None:
    SizeLimits().check(10**15)
    SizeLimits(max_object=10, quota_room=20).check(10)
    with pytest.raises(EntityTooLarge):
        SizeLimits(max_object=10).check(11)
    with pytest.raises(QuotaExceeded):
        SizeLimits(quota_room=5).check(6)


def test_checksums_are_stored_on_the_object(store: Store, bucket: str) -> None:
    with store.open_writer(bucket, "k", checksums=["CRC32"]) as w:
        w.write(b"123456789")
        rec = w.commit()
    assert rec.checksums == {"CRC32": "y/Q5Jg=="}  # base64 of cbf43926


# GC racing a writer ----------------------------------------------------------------------------
@pytest.mark.local_chunks
def test_gc_between_write_and_commit_cannot_take_a_staged_chunk(store: Store, bucket: str, clock: Clock) -> None:
    """The writer's copies wait in its staging dir while GC removes the old files. (Over S3 a chunk
    is uploaded as it is written, so writing is publishing: the next test.)"""
    data = rand(400_000, seed=6)
    old = store.put_object(bucket, "old", data)
    digests = {d for d, _ in entries_of(store, old)}
    store.delete_object(bucket, "old")
    clock.advance(60)  # well within the grace period: the count is 0, the files are still there
    with store.open_writer(bucket, "new") as w:
        w.write(data)
        w.finish()
        assert staged_by(w) == {d.hex() for d in digests}
        clock.advance(store.config.gc_grace_seconds)
        report = collect_garbage(store)
        assert report.chunks_removed == len(digests)
        assert chunk_files(store) == set()
        assert report.staging_removed == 0  # the writer is alive
        rec = w.commit()
    assert read(store, bucket, "new") == data
    assert all(chunk_row(store, d).count == 1 for d in digests)  # type: ignore[union-attr]
    clock.advance(2 * store.config.gc_grace_seconds)
    assert collect_garbage(store).chunks_removed == 0
    assert b"".join(store.read_object(rec)) == data
    assert fsck(store).ok


def test_gc_between_publish_and_commit_keeps_the_freshly_published_file(
    store: Store, bucket: str, clock: Clock
) -> None:
    """The writer has renamed its chunks into place, over files whose rows expired long ago.

    GC may drop the rows but must keep the files (their ctime is fresh), and the commit succeeds.
    """
    data = rand(400_000, seed=8)
    old = store.put_object(bucket, "old", data)
    digests = {d for d, _ in entries_of(store, old)}
    clock.advance(-2 * store.config.gc_grace_seconds)
    store.delete_object(bucket, "old")  # unreferenced for twice the grace period by now
    clock.advance(2 * store.config.gc_grace_seconds)
    with store.open_writer(bucket, "new") as w:
        w.write(data)
        w.content.publish()
        assert staged_by(w) == (set() if staged_files_are_private(store) else {d.hex() for d in digests})
        report = collect_garbage(store)
        assert report.chunks_removed == len(digests)  # the stale rows went
        assert chunk_files(store) == {d.hex() for d in digests}  # the files stayed
        w.commit()
    assert read(store, bucket, "new") == data
    assert all(chunk_row(store, d).count == 1 for d in digests)  # type: ignore[union-attr]
    assert fsck(store).ok


def test_commit_fails_cleanly_when_a_deduplicated_chunk_was_collected(store: Store, bucket: str, clock: Clock) -> None:
    data = rand(400_000, seed=7)
    store.put_object(bucket, "old", data)
    with store.open_writer(bucket, "new") as w:
        w.write(data)
        w.finish()
        assert staged_by(w) == set()  # all deduplicated against "old"
        store.delete_object(bucket, "old")
        clock.advance(store.config.gc_grace_seconds + 1)
        assert collect_garbage(store).chunks_removed > 0
        with pytest.raises(ChunkMissing):
            w.commit()
    with pytest.raises(NoSuchKey):
        store.head_object(bucket, "new")
    u = store.accounts.get_user("alice")
    assert (u.usage_bytes, u.object_count) == (0, 0)
    assert tmp_entries(store) == [] and chunk_files(store) == set()
    assert fsck(store).ok
    store.put_object(bucket, "new", data)  # the retry works
    assert read(store, bucket, "new") == data


# crash safety ----------------------------------------------------------------------------------
CRASH_CONFIG = dataclasses.replace(SMALL, durable=True)


def crash_store(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    store = Store(data_dir, CRASH_CONFIG)
    store.accounts.create_user("alice")
    store.create_bucket("alice", "photos")
    store.close()
    return data_dir


def start_writer(mode: str, data_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
    config = json.dumps(dataclasses.asdict(CRASH_CONFIG))
    return subprocess.Popen(
        [sys.executable, str(HERE / "objstore_crash_writer.py"), mode, str(data_dir), config],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def kill(proc: subprocess.Popen[str]) -> None:
    assert proc.poll() is None, f"the writer exited early:\n{proc.stderr.read()}"  # type: ignore[union-attr]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL


def test_writer_killed_mid_write_leaves_nothing_visible(tmp_path: Path) -> None:
    data_dir = crash_store(tmp_path)
    proc = start_writer("big", data_dir)
    try:
        deadline = time.monotonic() + 30
        while not any(p.name != ".lock" for p in (data_dir / "tmp").rglob("*") if p.is_file()):
            assert time.monotonic() < deadline, "no chunk was ever staged"
            assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.005)
        kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    store = Store(data_dir, CRASH_CONFIG)
    with pytest.raises(NoSuchKey):
        store.head_object("photos", "big")
    assert store.list_objects("photos").objects == []
    assert staged_files(store)  # the dead writer's chunks are still in its staging dir
    report = collect_garbage(store)
    assert report.staging_removed == 1
    assert tmp_entries(store) == []
    assert chunk_files(store) == set()
    assert fsck(store).ok
    u = store.accounts.get_user("alice")
    assert (u.usage_bytes, u.object_count) == (0, 0)
    store.close()


def test_every_acknowledged_write_survives_a_kill(tmp_path: Path) -> None:
    data_dir = crash_store(tmp_path)
    proc = start_writer("many", data_dir)
    acked: list[str] = []
    try:
        while len(acked) < 40:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line, f"the writer stopped:\n{proc.stderr.read()}"  # type: ignore[union-attr]
            acked.append(line.strip())
        kill(proc)
        acked += proc.stdout.read().split()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    store = Store(data_dir, CRASH_CONFIG)
    for i, key in enumerate(acked):
        assert key == f"obj/{i:05d}"
        rec = store.head_object("photos", key)
        assert read(store, "photos", key) == payload(i)
        assert rec.etag == md5(payload(i))
    listed = [o.key for o in store.list_objects("photos").objects]
    assert listed[: len(acked)] == acked
    assert len(listed) <= len(acked) + 1  # at most the one in flight, and then only whole
    if len(listed) > len(acked):
        assert read(store, "photos", listed[-1]) == payload(len(acked))
    collect_garbage(store)
    # A kill between a staging dir's mkdir and its lock leaves a dir gc keeps for STAGING_MIN_AGE (a
    # writer may be about to lock it); once that age is past, it goes too.
    assert all(not (d / ".lock").exists() for d in tmp_entries(store)), tmp_entries(store)
    store.chunks.cleanup(0)
    assert tmp_entries(store) == []
    report = fsck(store)
    assert report.ok, report.problems
    u = store.accounts.get_user("alice")
    assert (u.usage_bytes, u.object_count) == listed_usage(store, "photos")
    store.close()


def test_an_upload_longer_than_the_grace_period_survives_gc(store: Store, bucket: str, clock: Clock) -> None:
    """Over S3 the chunks of an upload in progress are in the store without rows; GC must not take
    them for a dead writer's orphans while the request may still be streaming."""
    data = rand(400_000, seed=11)
    with store.open_writer(bucket, "slow") as w:
        w.write(data)
        w.finish()
        clock.advance(store.config.gc_grace_seconds + 60)
        assert collect_garbage(store).orphans_removed == 0
        w.commit()
    assert read(store, bucket, "slow") == data
    assert fsck(store).ok
