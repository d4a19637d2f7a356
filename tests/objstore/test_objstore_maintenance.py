"""GC, fsck and snapshots (`objstore.maintenance`)."""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path

import pytest
from clocks import Clock
from objstore_helpers import (
    SMALL,
    chunk_files,
    chunk_row,
    entries_of,
    local_chunks,
    rand,
    read,
    tmp_entries,
)

from objstore import Store, accounts, manifests, refcount
from objstore.chunks.s3 import S3ChunkStore
from objstore.maintenance import ORPHAN_MIN_AGE_STREAMING, STAGING_MIN_AGE, collect_garbage, fsck, snapshot


@pytest.fixture
def filled(store: Store, bucket: str) -> dict[str, bytes]:
    """A few objects: shared chunks, an inline one, a pending multipart part."""
    objects = {"a": rand(500_000, 1), "b": rand(500_000, 1), "c": rand(300_000, 2), "tiny": b"tiny"}
    for k, v in objects.items():
        store.put_object(bucket, k, v)
    upload = store.multipart.create_upload(bucket, "pending")
    with store.multipart.open_part_writer(upload.upload_id, 1) as w:
        w.write(rand(200_000, 3))
        w.commit()
    return objects


def assert_fsck_clean(store: Store) -> None:
    report = fsck(store)
    assert report.ok, report.problems


def test_fsck_of_a_healthy_store(store: Store, filled: dict[str, bytes]) -> None:
    seen: list[str] = []
    report = fsck(store, progress=lambda phase, done, total: seen.append(phase))
    assert report.ok and report.problems == [] and report.repaired == 0
    assert report.chunks_checked == len(chunk_files(store))
    assert "re-hash chunks" in seen


def test_wrong_chunk_count_is_found_and_repaired(store: Store, bucket: str, filled: dict[str, bytes]) -> None:
    digest, size = entries_of(store, store.head_object(bucket, "c"))[0]
    store.meta.transact(lambda w: refcount.put(w, digest, refcount.ChunkRow(99, 0, size)))
    report = fsck(store)
    assert not report.ok
    assert any(digest.hex() in p and "99" in p for p in report.problems)
    assert fsck(store, repair=True).repaired >= 1
    assert chunk_row(store, digest) == refcount.ChunkRow(1, 0.0, size)
    assert_fsck_clean(store)


def test_count_too_low_is_repaired_so_gc_keeps_the_chunk(
    store: Store, bucket: str, clock: Clock, filled: dict[str, bytes]
) -> None:
    digest, size = entries_of(store, store.head_object(bucket, "c"))[0]
    row = refcount.ChunkRow(0, clock() - 10 * store.config.gc_grace_seconds, size)
    store.meta.transact(lambda w: refcount.put(w, digest, row))
    assert not fsck(store).ok
    fsck(store, repair=True)
    assert collect_garbage(store).chunks_removed == 0
    assert read(store, bucket, "c") == filled["c"]
    assert_fsck_clean(store)


def test_missing_chunk_row_is_recreated(store: Store, bucket: str, filled: dict[str, bytes]) -> None:
    digest, size = entries_of(store, store.head_object(bucket, "c"))[0]
    store.meta.transact(lambda w: refcount.remove(w, digest))
    assert any("no row" in p for p in fsck(store).problems)
    fsck(store, repair=True)
    assert chunk_row(store, digest) == refcount.ChunkRow(1, 0.0, size)
    assert_fsck_clean(store)


def test_counted_chunk_nobody_references_is_released(store: Store, clock: Clock, filled: dict[str, bytes]) -> None:
    stray = b"\x07" * 32
    store.meta.transact(lambda w: refcount.put(w, stray, refcount.ChunkRow(3, 0.0, 10)))
    assert any(stray.hex() in p for p in fsck(store).problems)
    fsck(store, repair=True)
    assert chunk_row(store, stray) == refcount.ChunkRow(0, clock(), 10)
    assert_fsck_clean(store)
    clock.advance(store.config.gc_grace_seconds + 1)
    assert collect_garbage(store).chunks_removed == 1
    assert chunk_row(store, stray) is None


def chunk_file_bytes(store: Store) -> int:
    return sum(len(store.chunks.read_all(bytes.fromhex(name))) for name in chunk_files(store))


def quarantined(store: Store, digest: bytes) -> bytes:
    """The bytes of a chunk fsck moved aside: a file under quarantine/, or an object under the prefix's."""
    if isinstance(store.chunks, S3ChunkStore):
        key = f"{store.chunks.prefix}quarantine/{digest.hex()}"
        body: bytes = store.chunks.client.get_object(Bucket=store.chunks.bucket, Key=key)["Body"].read()
        return body
    return (store.root / "quarantine" / digest.hex()).read_bytes()


def test_storage_totals_follow_writes_deletes_and_gc(
    store: Store, bucket: str, clock: Clock, filled: dict[str, bytes]
) -> None:
    totals = store.storage_totals()
    assert (totals.chunks, totals.physical_bytes) == (len(chunk_files(store)), chunk_file_bytes(store))
    assert totals.objects == len(filled) and totals.logical_bytes >= sum(map(len, filled.values()))
    assert totals.dedup_ratio > 1.0  # "a" and "b" are the same bytes
    for key in ("a", "b", "c"):
        store.delete_object(bucket, key)
    clock.advance(store.config.gc_grace_seconds + 1)
    assert collect_garbage(store).chunks_removed > 0
    after = store.storage_totals()
    assert (after.chunks, after.physical_bytes) == (len(chunk_files(store)), chunk_file_bytes(store))
    assert after.objects == 1 and after.physical_bytes < totals.physical_bytes
    assert_fsck_clean(store)


def test_wrong_chunk_totals_are_found_and_repaired(store: Store, filled: dict[str, bytes]) -> None:
    store.meta.transact(lambda w: refcount._put_totals(w, refcount.Totals(0, 0)))  # changes folded into a wrong base
    assert store.storage_totals().chunks == 0
    assert any("chunk totals" in p for p in fsck(store).problems)
    assert fsck(store, repair=True).repaired >= 1
    assert_fsck_clean(store)
    assert store.storage_totals().physical_bytes == chunk_file_bytes(store)


def test_wrong_manifest_refcount_is_found_and_repaired(store: Store, bucket: str, filled: dict[str, bytes]) -> None:
    mid = bytes.fromhex(store.head_object(bucket, "a").manifest)
    head = store.meta.read(lambda r: manifests.get_head(r, mid))
    assert head is not None
    head.refs = 5
    store.meta.transact(lambda w: manifests.put_head(w, mid, head))
    report = fsck(store)
    assert any(mid.hex() in p and "5" in p for p in report.problems)
    fsck(store, repair=True)
    repaired = store.meta.read(lambda r: manifests.get_head(r, mid))
    assert repaired is not None and repaired.refs == 1
    assert_fsck_clean(store)
    store.delete_object(bucket, "a")  # the repaired count lets the manifest go
    assert store.meta.read(lambda r: manifests.get_head(r, mid)) is None


def test_wrong_user_usage_is_found_and_repaired(store: Store, filled: dict[str, bytes]) -> None:
    user = store.meta.read(lambda r: accounts.require_user(r, "alice"))
    right = (user.usage_bytes, user.object_count)
    user.usage_bytes, user.object_count = 1, 42
    store.meta.transact(lambda w: accounts.put_user(w, user))
    assert any("alice" in p for p in fsck(store).problems)
    assert right == (sum(map(len, filled.values())) + 200_000, len(filled))  # parts count as usage
    fsck(store, repair=True)
    u = store.accounts.get_user("alice")
    assert (u.usage_bytes, u.object_count) == right
    assert_fsck_clean(store)


def test_corrupt_chunk_is_found_and_quarantined(store: Store, bucket: str, filled: dict[str, bytes]) -> None:
    digest, _ = entries_of(store, store.head_object(bucket, "c"))[1]
    data = bytearray(store.chunks.read_all(digest))
    data[len(data) // 2] ^= 0x01
    store.chunks.put(digest, bytes(data))  # the bytes under the name change
    report = fsck(store)
    assert [p for p in report.problems if "corrupt" in p] == [
        f"chunk {digest.hex()} is corrupt (content does not hash to its name)"
    ]
    repaired = fsck(store, repair=True)
    assert repaired.repaired >= 1
    assert quarantined(store, digest) == bytes(data)
    assert not store.chunks.exists(digest)
    # The bytes are gone; fsck keeps saying so, and the objects not using the chunk are fine.
    assert fsck(store).problems == [f"chunk {digest.hex()} is missing"]
    assert read(store, bucket, "a") == filled["a"]


def test_truncated_chunk_is_corrupt(store: Store, bucket: str, filled: dict[str, bytes]) -> None:
    digest, n = entries_of(store, store.head_object(bucket, "a"))[0]
    store.chunks.put(digest, store.chunks.read_all(digest)[: n - 1])
    assert any("corrupt" in p and digest.hex() in p for p in fsck(store).problems)


def test_missing_chunk_is_found(store: Store, bucket: str, filled: dict[str, bytes]) -> None:
    digest, _ = entries_of(store, store.head_object(bucket, "c"))[0]
    assert store.chunks.delete(digest, unless_written_after=math.inf)
    report = fsck(store)
    assert report.problems == [f"chunk {digest.hex()} is missing"]
    assert fsck(store, repair=True).repaired == 0  # nothing to quarantine, counts are right


# GC ---------------------------------------------------------------------------------------------
def test_gc_racing_a_reupload_keeps_the_content(store: Store, bucket: str, clock: Clock) -> None:
    data = rand(600_000, seed=8)
    rec = store.put_object(bucket, "k", data)
    digests = {d for d, _ in entries_of(store, rec)}
    store.delete_object(bucket, "k")
    assert all(chunk_row(store, d).count == 0 for d in digests)  # type: ignore[union-attr]
    clock.advance(store.config.gc_grace_seconds / 2)
    store.put_object(bucket, "again", data)  # within the grace period
    assert all(chunk_row(store, d) == refcount.ChunkRow(1, 0.0, chunk_row(store, d).size) for d in digests)  # type: ignore[union-attr]
    clock.advance(store.config.gc_grace_seconds)
    assert collect_garbage(store).chunks_removed == 0
    assert chunk_files(store) == {d.hex() for d in digests}
    assert read(store, bucket, "again") == data
    assert_fsck_clean(store)


def test_gc_removes_orphan_files_after_the_grace_period(store: Store, bucket: str, clock: Clock) -> None:
    """A chunk file without a row is either a live writer's (published, about to commit) or a dead
    one's: GC tells them apart by age."""
    store.put_object(bucket, "k", rand(100_000))
    kept = chunk_files(store)
    orphan = b"\x05" * 32
    store.chunks.put(orphan, b"left by a writer that died after publishing")
    assert collect_garbage(store).orphans_removed == 0
    assert store.chunks.exists(orphan)
    clock.advance(store.config.gc_grace_seconds + 1)
    scan = False
    if store.chunks.uploads_before_publish:  # found from writers' intents (this one recorded none),
        assert collect_garbage(store, scan_orphans=True).orphans_removed == 0  # or a listing: kept a day
        clock.advance(ORPHAN_MIN_AGE_STREAMING)
        assert collect_garbage(store).orphans_removed == 0
        scan = True
    report = collect_garbage(store, scan_orphans=scan)
    assert report.orphans_removed == 1
    assert not store.chunks.exists(orphan)
    assert chunk_files(store) == kept
    assert read(store, bucket, "k") == rand(100_000)


@pytest.mark.local_chunks
def test_gc_leaves_files_that_are_no_chunks(store: Store, bucket: str, clock: Clock) -> None:
    store.put_object(bucket, "k", rand(100_000))
    kept = chunk_files(store)
    some_dir = local_chunks(store).path(b"\x05" * 32).parent
    some_dir.mkdir(parents=True, exist_ok=True)
    (some_dir / "README").write_text("not a chunk")
    clock.advance(store.config.gc_grace_seconds + 1)
    assert collect_garbage(store).orphans_removed == 0
    assert chunk_files(store) == kept | {"README"}


@pytest.mark.local_chunks
def test_gc_staging_dirs(store: Store) -> None:
    live = local_chunks(store).batch()
    dead = local_chunks(store).tmp / "dead"
    dead.mkdir()
    (dead / ".lock").touch()  # its writer took the lock and died
    young = local_chunks(store).tmp / "young"
    young.mkdir()  # its writer has not taken the lock yet
    old = local_chunks(store).tmp / "old"
    old.mkdir()
    past = time.time() - STAGING_MIN_AGE - 5
    os.utime(old, (past, past))
    os.utime(live.dir, (past, past))
    assert collect_garbage(store).staging_removed == 2
    assert sorted(p.name for p in tmp_entries(store)) == sorted([live.dir.name, "young"])
    live.close()


def test_gc_on_an_empty_store(store: Store) -> None:
    report = collect_garbage(store)
    assert (report.chunks_removed, report.orphans_removed, report.staging_removed, report.uploads_aborted) == (
        0,
        0,
        0,
        0,
    )


# snapshots ------------------------------------------------------------------------------------
def test_snapshot_restores_into_a_new_data_dir(
    store: Store, bucket: str, tmp_path: Path, filled: dict[str, bytes]
) -> None:
    snap = tmp_path / "snap"
    if store.config.metadata_url.startswith("postgresql"):
        with pytest.raises(NotImplementedError, match="pg_dump"):  # PostgreSQL has its own backups
            snapshot(store, snap)
        return
    snapshot(store, snap)
    store.put_object(bucket, "after-snapshot", b"later")
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copytree(snap, restored / "meta")
    shutil.copytree(local_chunks(store).chunks, restored / "chunks")
    copy = Store(restored, SMALL)
    for key, data in filled.items():
        assert read(copy, bucket, key) == data
    assert [o.key for o in copy.list_objects(bucket).objects] == sorted(filled)
    assert len(copy.multipart.list_uploads()) == 1
    assert_fsck_clean(copy)
    copy.close()
    with pytest.raises(FileExistsError):
        snapshot(store, snap)


def test_gc_and_fsck_runs_are_recorded(store: Store, clock: Clock, filled: dict[str, bytes]) -> None:
    assert store.maintenance_runs() == {}
    collect_garbage(store)
    clock.advance(10)
    collect_garbage(store)
    report = fsck(store)
    jobs = store.maintenance_runs()
    assert (jobs["gc"].runs, jobs["fsck"].runs) == (2, 1)
    assert jobs["gc"].last_finished == clock() and "chunks_removed" in jobs["gc"].last_findings
    assert jobs["fsck"].last_findings == {"problems": 0, "repaired": 0, "chunks_checked": report.chunks_checked}


def test_a_failed_chunk_delete_leaves_only_that_chunk_marked(
    store: Store, bucket: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from objstore.errors import ChunkStoreUnavailable

    for n in range(3):
        store.put_object(bucket, f"k{n}", rand(100_000, seed=20 + n))
        store.delete_object(bucket, f"k{n}")
    clock.advance(store.config.gc_grace_seconds + 1)
    digests = store.meta.read(lambda r: [d for d, _ in refcount.all_rows(r)])
    failing = digests[len(digests) // 2]
    real_delete = store.chunks.delete

    def flaky(digest: bytes, unless_written_after: float) -> bool:
        if digest == failing:
            raise ChunkStoreUnavailable("the chunk store failed: test")
        return real_delete(digest, unless_written_after)

    monkeypatch.setattr(store.chunks, "delete", flaky)
    with pytest.raises(ChunkStoreUnavailable):
        collect_garbage(store)
    rows = store.meta.read(lambda r: dict(refcount.all_rows(r)))
    assert rows[failing].deleting  # its bytes may be gone: no writer may reference it
    assert all(d not in rows for d in digests[: digests.index(failing)])  # those before it went on to gone
    monkeypatch.setattr(store.chunks, "delete", real_delete)
    collect_garbage(store)  # the next GC finishes the marked ones
    assert store.meta.read(lambda r: list(refcount.all_rows(r))) == []
    assert_fsck_clean(store)
