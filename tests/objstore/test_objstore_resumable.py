"""Resumable (tus) uploads in the engine: offsets, quota charges, finishing into a link, expiry,
the lease that keeps one writer per upload, the segments' chunks under GC, older versions' files."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest
from clocks import Clock
from objstore_helpers import rand, resumables_with

from objstore import Store
from objstore.errors import EntityTooLarge, NoSuchUpload, QuotaExceeded
from objstore.links import Resumables
from objstore.links.resumable import (
    DONE,
    LEASE_SECONDS,
    TABLE,
    OffsetMismatch,
    TooManySegments,
    TooManyUploads,
    UploadBusy,
    row_key,
)
from objstore.maintenance import collect_garbage, fsck
from objstore.records import ResumableRecord

DATA = rand(300_000)


@pytest.fixture
def resumables(store: Store) -> Resumables:
    store.accounts.create_user("carol", quota=1_000_000, max_object_size=500_000)
    return resumables_with(store, lock_wait=0)


def usage(store: Store) -> int:
    return store.accounts.get_user("carol").usage_bytes


def append(resumables: Resumables, upload_id: str, offset: int, data: bytes) -> int:
    appender = resumables.open_append("carol", upload_id, offset)
    try:
        appender.write(data)
    finally:
        row = appender.close()
    return row.offset


def read_link(store: Store, link_id: str) -> bytes:
    _, record = store.links.resolve(link_id, store.clock())
    return b"".join(store.read_object(record))


def test_upload_in_pieces_becomes_a_linked_file(store: Store, resumables: Resumables) -> None:
    row = resumables.create("carol", len(DATA), "photo.jpg", "image/jpeg")
    assert usage(store) == len(DATA) and fsck(store).ok  # charged at creation
    assert append(resumables, row.id, 0, DATA[:100_000]) == 100_000
    assert append(resumables, row.id, 100_000, DATA[100_000:]) == len(DATA)
    done = resumables.finish("carol", row.id)
    assert done.state == DONE and done.link
    assert read_link(store, done.link) == DATA
    assert store.links.get(done.link).name == "photo.jpg"
    assert usage(store) == len(DATA) and fsck(store).ok  # the object's bytes, not twice (nor its segments)
    assert resumables.finish("carol", row.id) == done  # idempotent


def test_wrong_offset_or_too_many_bytes(resumables: Resumables) -> None:
    row = resumables.create("carol", 10)
    with pytest.raises(OffsetMismatch):
        resumables.open_append("carol", row.id, 5)
    with pytest.raises(EntityTooLarge):
        append(resumables, row.id, 0, b"x" * 11)
    assert resumables.get("carol", row.id).offset == 0


KILLED_WRITER = """
import os, pickle, signal, sys
from objstore import Store
config = pickle.loads(bytes.fromhex(sys.argv[2]))
store = Store(sys.argv[1], config, clock=lambda: float(sys.argv[4]))
appender = store.resumables.open_append("carol", sys.argv[3], 0)
appender.write(bytes(range(256)) * 400)  # 102,400 bytes, acknowledged by the checkpoint
appender.checkpoint()
appender.write(b"lost" * 1000)  # never checkpointed
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_writer_keeps_what_was_acknowledged_and_holds_the_upload_for_one_lease(
    store: Store, resumables: Resumables, clock: Clock
) -> None:
    row = resumables.create("carol", len(DATA))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [str(store.root), pickle.dumps(store.config).hex(), row.id, str(clock())]
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, *args], env=env, check=False)
    assert killed.returncode == -9
    kept = bytes(range(256)) * 400
    assert resumables.get("carol", row.id).offset == len(kept)  # the bytes after the checkpoint are not counted
    with pytest.raises(UploadBusy):
        resumables.open_append("carol", row.id, len(kept))  # the dead writer's lease still holds
    clock.advance(LEASE_SECONDS + 1)
    assert append(resumables, row.id, len(kept), DATA[len(kept) :]) == len(DATA)
    done = resumables.finish("carol", row.id)
    assert read_link(store, done.link) == kept + DATA[len(kept) :]
    collect_garbage(store, scan_orphans=True)
    assert fsck(store).ok


def test_one_writer_at_a_time(resumables: Resumables) -> None:
    row = resumables.create("carol", 10)
    appender = resumables.open_append("carol", row.id, 0)
    with pytest.raises(UploadBusy):
        resumables.open_append("carol", row.id, 0)
    with pytest.raises(UploadBusy):
        resumables.terminate("carol", row.id)
    appender.close()


def test_limits_are_checked_at_creation(store: Store, resumables: Resumables) -> None:
    with pytest.raises(EntityTooLarge):
        resumables.create("carol", 500_001)
    resumables.create("carol", 500_000)
    resumables.create("carol", 400_000)
    with pytest.raises(QuotaExceeded):
        resumables.create("carol", 200_000)
    small = resumables_with(store, max_pending=2)
    with pytest.raises(TooManyUploads):
        small.create("carol", 1)


def test_a_patch_past_the_segment_cap_is_refused_and_keeps_nothing(store: Store) -> None:
    store.accounts.create_user("carol")
    capped = resumables_with(store, lock_wait=0, max_segments=3)
    row = capped.create("carol", 100)
    for n in range(3):  # one segment per PATCH
        assert append(capped, row.id, 10 * n, DATA[10 * n : 10 * n + 10]) == 10 * n + 10
    with pytest.raises(TooManySegments, match="3 segments"):
        capped.open_append("carol", row.id, 30)
    kept = capped.get("carol", row.id)
    assert (kept.offset, kept.segments, kept.writer) == (30, 3, "")  # nothing kept, nothing held
    kept.segments = 0  # as rows written before the count was kept: the segments are counted instead
    store.meta.transact(lambda w: w.put(TABLE, row_key("carol", row.id), kept.encode()))
    with pytest.raises(TooManySegments):
        capped.open_append("carol", row.id, 30)
    assert usage(store) == 100 and fsck(store).ok
    capped.terminate("carol", row.id)  # the way out: the charge comes back
    assert usage(store) == 0 and fsck(store).ok


def test_a_long_patch_keeps_the_last_segment_for_its_end(store: Store, clock: Clock) -> None:
    """Checkpoints within a PATCH (here the lease's, every third of it) make segments while more
    than one is left; the last is the PATCH's end, so an accepted PATCH is never cut short."""
    store.accounts.create_user("carol")
    capped = resumables_with(store, lock_wait=0, max_segments=3)
    data = DATA[:80]
    row = capped.create("carol", len(data))
    appender = capped.open_append("carol", row.id, 0)
    for n in range(8):
        appender.write(data[10 * n : 10 * n + 10])
        clock.advance(LEASE_SECONDS / 3 + 1)
    held = capped.get("carol", row.id)
    assert (held.offset, held.segments) == (30, 2)  # two checkpoints, then only the lease renewed
    assert held.writer == appender.lease.token and held.lease_until > clock()
    done = appender.close()
    assert (done.offset, done.segments) == (80, 3)
    finished = capped.finish("carol", row.id)
    assert read_link(store, finished.link) == data
    assert capped.get("carol", row.id).segments == 0 and fsck(store).ok


def test_another_owner_sees_nothing(store: Store, resumables: Resumables) -> None:
    store.accounts.create_user("dave")
    row = resumables.create("carol", 10)
    for call in (
        lambda: resumables.get("dave", row.id),
        lambda: resumables.open_append("dave", row.id, 0),
        lambda: resumables.terminate("dave", row.id),
        lambda: resumables.get("carol", "../etc"),
    ):
        with pytest.raises(NoSuchUpload):
            call()


def test_termination_gives_the_bytes_back(store: Store, resumables: Resumables) -> None:
    row = resumables.create("carol", 1000)
    append(resumables, row.id, 0, b"x" * 10)
    resumables.terminate("carol", row.id)
    assert usage(store) == 0 and fsck(store).ok
    with pytest.raises(NoSuchUpload):
        resumables.get("carol", row.id)


def test_a_failed_finish_keeps_the_upload_and_its_charge(store: Store, resumables: Resumables) -> None:
    row = resumables.create("carol", 100)
    append(resumables, row.id, 0, b"x" * 100)
    store.accounts.set_limits("carol", max_object_size=50)  # the admin lowered the limit meanwhile
    with pytest.raises(EntityTooLarge):
        resumables.finish("carol", row.id)
    assert resumables.get("carol", row.id).state == "receiving"
    assert usage(store) == 100 and fsck(store).ok
    store.accounts.set_limits("carol", max_object_size=500_000)
    assert resumables.finish("carol", row.id).state == DONE


def test_gc_drops_expired_uploads_and_done_rows(store: Store, resumables: Resumables, clock: Clock) -> None:
    abandoned = resumables.create("carol", 1000)
    append(resumables, abandoned.id, 0, b"x" * 10)
    finished = resumables.create("carol", 3)
    append(resumables, finished.id, 0, b"abc")
    link = resumables.finish("carol", finished.id).link
    clock.advance(3600)
    assert collect_garbage(store).resumable_uploads_expired == 0
    clock.advance(24 * 3600)
    assert collect_garbage(store).resumable_uploads_expired == 2
    assert usage(store) == 3 and fsck(store).ok
    assert read_link(store, link) == b"abc"  # the file stays; only the upload's row went


def older_version_upload(store: Store, resumables: Resumables, offset: int, on_disk: bytes) -> ResumableRecord:
    """An upload as an older pyblob left it: its row at `offset`, its bytes in `resumable/<id>`."""
    row = resumables.create("carol", len(DATA))
    row.offset = offset
    store.meta.transact(lambda w: w.put(TABLE, row_key("carol", row.id), row.encode()))
    spool = store.root / "resumable"
    spool.mkdir(exist_ok=True)
    (spool / row.id).write_bytes(on_disk)
    return row


def test_an_older_versions_upload_is_taken_in_and_finishes(store: Store, resumables: Resumables) -> None:
    row = older_version_upload(store, resumables, 100_000, DATA[:100_000] + b"cut off past the offset")
    assert append(resumables, row.id, 100_000, DATA[100_000:200_000]) == 200_000
    assert not (store.root / "resumable" / row.id).exists()  # its bytes are the first segment now
    assert fsck(store).ok
    assert append(resumables, row.id, 200_000, DATA[200_000:]) == len(DATA)
    assert read_link(store, resumables.finish("carol", row.id).link) == DATA
    assert usage(store) == len(DATA) and fsck(store).ok


def test_an_older_versions_finished_upload_is_stored_when_next_asked(store: Store, resumables: Resumables) -> None:
    row = older_version_upload(store, resumables, len(DATA), DATA)
    assert read_link(store, resumables.finish("carol", row.id).link) == DATA
    assert not (store.root / "resumable" / row.id).exists() and fsck(store).ok


def test_an_older_versions_bytes_missing_on_disk_restart_the_upload(store: Store, resumables: Resumables) -> None:
    row = older_version_upload(store, resumables, 10, b"a" * 4)  # lost from a disk that was not synced
    with pytest.raises(OffsetMismatch):
        resumables.open_append("carol", row.id, 10)
    assert resumables.get("carol", row.id).offset == 0  # never padded with zeros
    assert append(resumables, row.id, 0, b"c" * 20) == 20
    assert fsck(store).ok


def test_a_second_writer_is_refused_while_the_lease_holds(store: Store, resumables: Resumables, clock: Clock) -> None:
    row = resumables.create("carol", len(DATA))
    first = resumables.open_append("carol", row.id, 0)
    first.write(DATA[:50_000])
    with pytest.raises(UploadBusy):
        resumables.open_append("carol", row.id, 0)
    with pytest.raises(UploadBusy):
        resumables.terminate("carol", row.id)
    clock.advance(LEASE_SECONDS + 1)  # the first writer stalled past its lease: another may take over
    assert append(resumables, row.id, 0, DATA[:200_000]) == 200_000
    with pytest.raises(UploadBusy):
        first.close()  # it commits nothing: the upload moved on without it
    assert resumables.get("carol", row.id).offset == 200_000
    assert append(resumables, row.id, 200_000, DATA[200_000:]) == len(DATA)
    assert read_link(store, resumables.finish("carol", row.id).link) == DATA
    assert fsck(store).ok


def test_gc_past_the_grace_period_keeps_a_half_done_upload(store: Store, resumables: Resumables, clock: Clock) -> None:
    row = resumables.create("carol", len(DATA))
    assert append(resumables, row.id, 0, DATA[:100_000]) == 100_000
    clock.advance(store.config.gc_grace_seconds + 1)
    collect_garbage(store, scan_orphans=True)  # every chunk is older than the cutoff; the segment's are referenced
    appender = resumables.open_append("carol", row.id, 100_000)
    appender.write(DATA[100_000:200_000])
    clock.advance(store.config.gc_grace_seconds + 1)
    collect_garbage(store)  # in the middle of a PATCH
    appender.write(DATA[200_000:])
    assert appender.close().offset == len(DATA)
    clock.advance(store.config.gc_grace_seconds + 1)
    collect_garbage(store, scan_orphans=True)
    assert fsck(store).ok
    assert read_link(store, resumables.finish("carol", row.id).link) == DATA
    assert fsck(store).ok


def test_terminated_and_expired_uploads_leave_their_chunks_to_gc(
    store: Store, resumables: Resumables, clock: Clock
) -> None:
    terminated = resumables.create("carol", len(DATA))
    append(resumables, terminated.id, 0, DATA[:150_000])
    expiring = resumables.create("carol", len(DATA))
    append(resumables, expiring.id, 0, rand(150_000, seed=7))
    assert store.storage_totals().chunks > 0
    resumables.terminate("carol", terminated.id)
    assert fsck(store).ok
    clock.advance(25 * 3600)
    report = collect_garbage(store)
    assert report.resumable_uploads_expired == 1 and report.chunks_removed > 0  # the terminated upload's
    assert fsck(store).ok
    clock.advance(store.config.gc_grace_seconds + 1)
    collect_garbage(store)  # the expired upload's, unreferenced since the last GC
    totals = store.storage_totals()
    assert (totals.chunks, totals.physical_bytes, usage(store)) == (0, 0, 0)
    assert fsck(store).ok


def test_finish_keeps_its_room_from_a_concurrent_upload(
    store: Store, resumables: Resumables, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The declared length stays charged until the commit that stores the file takes it over."""
    store.accounts.set_limits("carol", quota=800_000)
    store.create_bucket("carol", "carols")
    row = resumables.create("carol", 400_000)
    append(resumables, row.id, 0, rand(400_000, seed=1))
    real = store.uploads.default_bucket

    def other_upload_first(owner: str) -> str:  # runs while the finish is under way
        with pytest.raises(QuotaExceeded):
            store.put_object("carols", "other", b"y" * 500_000)  # 400k charged + 500k > 800k
        return real(owner)

    monkeypatch.setattr(store.uploads, "default_bucket", other_upload_first)
    assert resumables.finish("carol", row.id).state == DONE
    assert usage(store) == 400_000 and fsck(store).ok


def test_an_object_count_quota_refuses_at_creation(store: Store, resumables: Resumables) -> None:
    store.accounts.set_limits("carol", max_objects=1)
    store.create_bucket("carol", "carols")
    store.put_object("carols", "a", b"1")
    with pytest.raises(QuotaExceeded):
        resumables.create("carol", 10)  # the finish could never store it


def test_a_removed_user_takes_their_uploads(store: Store, resumables: Resumables, clock: Clock) -> None:
    store.accounts.create_user("dave")
    row = resumables.create("dave", 10)
    append_as = resumables.open_append("dave", row.id, 0)
    append_as.write(b"x" * 5)
    append_as.close()
    store.remove_user("dave")
    store.accounts.create_user("dave")  # the same name again: a new user owing nothing
    assert fsck(store).ok
    with pytest.raises(NoSuchUpload):
        resumables.get("dave", row.id)
    clock.advance(2 * 24 * 3600)
    collect_garbage(store)  # no NoSuchUser from an upload of a user who is gone
    assert store.accounts.get_user("dave").usage_bytes == 0 and fsck(store).ok
