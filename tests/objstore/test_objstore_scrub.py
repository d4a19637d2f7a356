"""Scrub (`objstore.scrub`): every referenced chunk read back and checked against its name at a bounded
rate, damaged ones quarantined and the objects that need them named, passes resumed where they stopped."""

from __future__ import annotations

import errno
import math
import os
import time
from pathlib import Path

import pytest
from clocks import Clock
from objstore_helpers import chunk_row, entries_of, local_chunks, rand, read

from objstore import Store, manifests, quarantine, refcount, scrub_cursor
from objstore.chunks.s3 import S3ChunkStore
from objstore.errors import ChunkMissing
from objstore.maintenance import collect_garbage, fsck
from objstore.pacing import BytePacer
from objstore.scrub import ScrubReport, scrub, scrub_due

SHARED = rand(300_000, 7)  # several chunks, stored once for every key that holds these bytes


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.asked: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)
        self.now += seconds


def run(store: Store, **kwargs: object) -> ScrubReport:
    report = scrub(store.meta, store.chunks, **kwargs)  # type: ignore[arg-type]
    assert report is not None
    return report


@pytest.fixture
def filled(store: Store, bucket: str) -> dict[str, bytes]:
    """`shared` and `copy` hold the same bytes; `older` held them in a version now noncurrent; `other`
    and `tiny` (inline) hold other bytes; a multipart upload in progress has them as part 1."""
    store.set_bucket_versioning(bucket, "Enabled")
    objects = {"shared": SHARED, "copy": SHARED, "older": SHARED, "other": rand(200_000, 8), "tiny": b"tiny"}
    for key, data in objects.items():
        store.put_object(bucket, key, data)
    objects["older"] = rand(100_000, 9)
    store.put_object(bucket, "older", objects["older"])  # the first version stays, noncurrent
    upload = store.multipart.create_upload(bucket, "pending")
    with store.multipart.open_part_writer(upload.upload_id, 1) as w:
        w.write(SHARED)
        w.commit()
    return objects


def referenced_chunks(store: Store) -> dict[bytes, int]:
    return store.meta.read(lambda r: {d: row.size for d, row in refcount.all_rows(r) if row.count > 0})


def damage(store: Store, bucket: str) -> tuple[bytes, bytes]:
    """Change one byte of a chunk of SHARED where it is stored; (its digest, its right bytes)."""
    digest, _ = entries_of(store, store.head_object(bucket, "shared"))[1]
    good = store.chunks.read_all(digest)
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01
    store.chunks.put(digest, bytes(bad))  # the bytes under the name change
    return digest, good


def quarantined_bytes(store: Store, digest: bytes) -> bytes:
    """What the chunk store moved aside: a file under quarantine/, or an object under the prefix's."""
    if isinstance(store.chunks, S3ChunkStore):
        key = f"{store.chunks.prefix}quarantine/{digest.hex()}"
        body: bytes = store.chunks.client.get_object(Bucket=store.chunks.bucket, Key=key)["Body"].read()
        return body
    return (store.root / "quarantine" / digest.hex()).read_bytes()


def test_a_sound_store_scrubs_clean(store: Store, filled: dict[str, bytes]) -> None:
    chunks = referenced_chunks(store)
    seen: list[tuple[str, int, int]] = []
    report = run(store, progress=lambda *step: seen.append(step))
    assert report.ok and report.finished and not report.stopped
    assert (report.corrupt, report.missing, report.quarantined) == ([], [], [])
    assert report.chunks_checked == report.pass_chunks_checked == len(chunks)
    assert report.bytes_checked == sum(chunks.values())
    assert seen[-1][0] == "scrub" and seen[-1][1] == sum(chunks.values())
    last = store.maintenance_runs()["scrub"]
    assert last.last_findings["chunks_checked"] == len(chunks) and last.last_findings["quarantined"] == 0


def test_a_changed_chunk_is_quarantined_and_its_objects_named(
    store: Store, bucket: str, filled: dict[str, bytes]
) -> None:
    digest, good = damage(store, bucket)
    bad = store.chunks.read_all(digest)
    report = run(store)
    assert report.corrupt == [digest.hex()] and report.missing == [] and not report.ok
    [found] = report.quarantined
    assert (found.chunk, found.size, found.problem) == (digest.hex(), len(good), "corrupt")
    current = store.head_object(bucket, "older")
    [noncurrent] = [v for v in store.list_object_versions(bucket, prefix="older").versions if v != current]
    named = {(h.bucket, h.key, h.version_id) for h in found.objects if h.upload_id is None}
    assert named == {
        (bucket, "shared", store.head_object(bucket, "shared").version_id),
        (bucket, "copy", store.head_object(bucket, "copy").version_id),
        (bucket, "older", noncurrent.version_id),
    }
    assert [(h.key, h.part_number) for h in found.objects if h.upload_id is not None] == [("pending", 1)]

    # The bytes are moved aside, the row marked; reads of the objects that need it fail, the others work.
    assert quarantined_bytes(store, digest) == bad and not store.chunks.exists(digest)
    row = chunk_row(store, digest)
    assert row is not None and row.quarantined and row.count > 0 and not row.live
    with pytest.raises(ChunkMissing, match=f"{digest.hex()}.*quarantined"):
        read(store, bucket, "copy")
    assert read(store, bucket, "other") == filled["other"]
    assert read(store, bucket, "tiny") == b"tiny"
    assert fsck(store).problems == [f"chunk {digest.hex()} is missing"]  # the counts are right

    again = run(store)  # a later pass: still named, found earlier
    assert again.corrupt == [] and [(q.chunk, q.problem) for q in again.quarantined] == [
        (digest.hex(), "quarantined before")
    ]


def test_a_missing_chunk_is_reported_and_quarantined(store: Store, bucket: str, filled: dict[str, bytes]) -> None:
    digest, _ = entries_of(store, store.head_object(bucket, "other"))[0]
    assert store.chunks.delete(digest, unless_written_after=math.inf)
    report = run(store)
    assert report.missing == [digest.hex()] and report.corrupt == []
    [found] = report.quarantined
    assert found.problem == "missing" and [h.key for h in found.objects] == ["other"]
    with pytest.raises(ChunkMissing, match="damaged"):
        read(store, bucket, "other")


def test_uploading_the_same_bytes_again_heals_the_chunk(store: Store, bucket: str, filled: dict[str, bytes]) -> None:
    digest, good = damage(store, bucket)
    run(store)
    store.put_object(bucket, "again", SHARED)  # the row is not live: the chunk is stored again
    row = chunk_row(store, digest)
    assert row is not None and not row.quarantined and store.chunks.read_all(digest) == good
    assert read(store, bucket, "copy") == SHARED  # the manifest's mark only sends reads to the rows

    report = run(store)
    assert report.ok and report.finished
    mid = bytes.fromhex(store.head_object(bucket, "copy").manifest)
    head = store.meta.read(lambda r: manifests.get_head(r, mid))
    assert head is not None and not head.damaged  # a finished pass clears marks that no longer hold


def test_a_chunk_restored_from_a_backup_is_released(store: Store, bucket: str, filled: dict[str, bytes]) -> None:
    digest, good = damage(store, bucket)
    run(store)
    store.chunks.put(digest, good)  # the admin copies the right bytes back
    report = run(store)
    assert report.restored == [digest.hex()] and report.ok
    assert read(store, bucket, "shared") == SHARED


def test_gc_collects_a_quarantined_chunk_nothing_needs(
    store: Store, bucket: str, clock: Clock, filled: dict[str, bytes]
) -> None:
    digest, _ = entries_of(store, store.head_object(bucket, "other"))[0]
    store.chunks.put(digest, b"not these bytes")
    run(store)
    for version in store.list_object_versions(bucket).versions:
        if version.key == "other":
            store.delete_object(bucket, "other", version_id=version.version_id)
    clock.advance(store.config.gc_grace_seconds + 1)
    collect_garbage(store)
    assert chunk_row(store, digest) is None
    assert run(store).ok


def test_a_pass_stopped_midway_resumes_after_the_last_chunk_saved(
    store: Store, filled: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("objstore.scrub.SAVE_EVERY", 0.0)  # save after every chunk
    chunks = referenced_chunks(store)
    calls = 0

    def stop_after_three() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3

    first = run(store, stop=stop_after_three)
    assert first.stopped == "stopped" and not first.finished and first.chunks_checked == 3
    assert scrub_due(store.meta, every=math.inf)  # a pass is under way
    second = run(store)
    assert second.resumed_from != "" and second.finished
    assert second.chunks_checked == len(chunks) - 3
    assert second.pass_chunks_checked == len(chunks) and second.pass_bytes_checked == sum(chunks.values())
    assert not scrub_due(store.meta, every=3600) and scrub_due(store.meta, every=0)

    fresh = run(store, restart=True)
    assert fresh.resumed_from == "" and fresh.chunks_checked == len(chunks)


def test_the_rate_bound_asks_for_sleeps(store: Store, filled: dict[str, bytes]) -> None:
    total = sum(referenced_chunks(store).values())
    rate = 10_000  # bytes a second: the whole store would take a minute
    t = FakeTime()  # sleeps are recorded and move a clock of their own, nothing is slept
    report = run(store, rate=rate, sleep=t.sleep, monotonic=lambda: t.now)
    assert report.bytes_checked == total and report.rate_limit == rate
    assert sum(t.asked) == pytest.approx(total / rate)  # every byte paid for, none in advance
    assert len(t.asked) == report.chunks_checked  # one wait before each read
    assert report.throttled_seconds == pytest.approx(total / rate, abs=0.01)


def test_a_held_pass_is_left_alone_or_taken_over(store: Store, filled: dict[str, bytes]) -> None:
    now = time.time()
    held = store.meta.transact(lambda w: scrub_cursor.begin(w, "server", now, restart=False, take_over=False))
    assert held is not None
    assert scrub(store.meta, store.chunks, take_over=False) is None  # the server's job: someone else is at it
    assert run(store).finished  # `pyblob scrub` takes it over
    # The first holder finds at its next save that it lost the pass, and stops.
    assert store.meta.transact(lambda w: scrub_cursor.advance(w, "server", None, 1, 1, now, False, False)) is None


def test_a_holder_gone_silent_leaves_its_pass_to_others(store: Store, filled: dict[str, bytes]) -> None:
    long_ago = time.time() - scrub_cursor.LEASE_SECONDS - 1
    store.meta.transact(lambda w: scrub_cursor.begin(w, "dead", long_ago, restart=False, take_over=False))
    report = scrub(store.meta, store.chunks, take_over=False)
    assert report is not None and report.finished


@pytest.mark.local_chunks
def test_a_flipped_byte_on_disk_is_moved_to_the_quarantine_dir(
    store: Store, bucket: str, filled: dict[str, bytes]
) -> None:
    digest, _ = entries_of(store, store.head_object(bucket, "other"))[0]
    path = local_chunks(store).path(digest)
    data = bytearray(path.read_bytes())
    data[0] ^= 0x80
    path.write_bytes(bytes(data))
    report = run(store)
    assert report.corrupt == [digest.hex()]
    assert not path.exists() and (store.root / "quarantine" / digest.hex()).read_bytes() == bytes(data)


def test_the_marks_of_the_walks_find_every_manifest(store: Store, bucket: str, filled: dict[str, bytes]) -> None:
    digest, _ = entries_of(store, store.head_object(bucket, "shared"))[0]
    found = quarantine.manifests_listing(store.meta, {digest})
    mids = {bytes.fromhex(store.head_object(bucket, key).manifest) for key in ("shared", "copy")}
    assert mids <= set(found) and all(listed == {digest} for listed in found.values())
    assert len(found) == 4  # and the noncurrent version's, and the part's


# The pacer alone, on a clock we drive -------------------------------------------------------------


def test_the_pacer_holds_reads_to_its_rate() -> None:
    t = FakeTime()
    pacer = BytePacer(1000, clock=lambda: t.now, sleep=t.sleep)
    for _ in range(10):
        pacer.take(500)
    assert t.now == pytest.approx(5.0)  # 5000 bytes at 1000 a second
    assert pacer.slept == pytest.approx(5.0)


def test_the_pacer_lets_a_second_of_idle_time_go_in_one_burst() -> None:
    t = FakeTime()
    pacer = BytePacer(1000, clock=lambda: t.now, sleep=t.sleep)
    t.now += 60.0  # idle for a minute: one second's worth saved, not sixty
    pacer.take(1000)
    assert t.asked == []
    pacer.take(1000)
    assert t.asked == [pytest.approx(1.0)]


def test_the_pacer_without_a_rate_never_sleeps() -> None:
    t = FakeTime()
    pacer = BytePacer(0, clock=lambda: t.now, sleep=t.sleep)
    pacer.take(10**12)
    assert t.asked == [] and pacer.slept == 0


def test_fsck_repair_quarantines_as_scrub_does(store: Store, bucket: str, filled: dict[str, bytes]) -> None:
    digest, _ = damage(store, bucket)
    assert fsck(store, repair=True).repaired >= 1
    row = chunk_row(store, digest)
    assert row is not None and row.quarantined
    with pytest.raises(ChunkMissing, match=digest.hex()):
        read(store, bucket, "shared")
    assert [(q.chunk, q.problem) for q in run(store).quarantined] == [(digest.hex(), "quarantined before")]


def fail_reads_of(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """The disk answers EIO to every read of one file (a bad sector under it)."""
    real_read = os.read

    def read(fd: int, size: int) -> bytes:
        if os.readlink(f"/proc/self/fd/{fd}") == str(path):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_read(fd, size)

    monkeypatch.setattr(os, "read", read)


@pytest.mark.local_chunks
def test_a_chunk_the_disk_cannot_read_is_quarantined_as_unreadable(
    store: Store, bucket: str, filled: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """EIO is damage scrub cannot see past: reported unreadable and quarantined (GETs answer 503 naming
    the chunk at once rather than failing mid-body; an upload of the bytes writes a new file), and the
    pass goes on."""
    digest, _ = entries_of(store, store.head_object(bucket, "other"))[0]
    fail_reads_of(monkeypatch, local_chunks(store).path(digest))
    report = run(store)
    assert report.missing == [digest.hex()] and report.corrupt == [] and report.finished
    assert report.chunks_checked == len(referenced_chunks(store))
    [found] = report.quarantined
    assert found.problem == "unreadable: I/O error (EIO)" and [h.key for h in found.objects] == ["other"]
    monkeypatch.undo()
    with pytest.raises(ChunkMissing, match=digest.hex()):
        read(store, bucket, "other")
    store.put_object(bucket, "again", filled["other"])  # the same bytes, written anew: healed
    assert read(store, bucket, "other") == filled["other"]


@pytest.mark.local_chunks
def test_fsck_reports_a_chunk_the_disk_cannot_read_and_repair_quarantines_it(
    store: Store, bucket: str, filled: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    digest, _ = entries_of(store, store.head_object(bucket, "other"))[0]
    fail_reads_of(monkeypatch, local_chunks(store).path(digest))
    assert fsck(store).problems == [f"chunk {digest.hex()} is unreadable (I/O error)"]
    assert fsck(store, repair=True).repaired >= 1
    row = chunk_row(store, digest)
    assert row is not None and row.quarantined
