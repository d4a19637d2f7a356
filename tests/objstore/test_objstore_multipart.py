"""Multipart uploads (`objstore.multipart`): S3's validation, quota while pending, joined chunk lists."""

from __future__ import annotations

import hashlib

import pytest
from clocks import Clock
from objstore_helpers import (
    chunk_files,
    chunk_row,
    entries_of,
    md5,
    rand,
    read,
    tmp_entries,
)

from objstore import Store, manifests, multipart
from objstore.errors import (
    EntityTooLarge,
    EntityTooSmall,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    NoSuchKey,
    NoSuchUpload,
    QuotaExceeded,
)
from objstore.maintenance import collect_garbage, fsck
from objstore.multipart import MAX_PART_NUMBER
from objstore.records import PartRecord

MIN = 64 * 1024  # min_part_size for these tests, scaled down with the chunk sizes
DATA = rand(2_600_000, seed=42)


def upload_part(store: Store, upload_id: str, number: int, data: bytes, piece: int = 100_000) -> PartRecord:
    with store.multipart.open_part_writer(upload_id, number) as w:
        for i in range(0, len(data), piece):
            w.write(data[i : i + piece])
        return w.commit()


def multipart_put(store: Store, bucket: str, key: str, data: bytes, part_size: int) -> tuple[str, list[PartRecord]]:
    upload = store.multipart.create_upload(bucket, key, content_type="text/plain", meta={"m": "1"})
    parts = [
        upload_part(store, upload.upload_id, n, data[i : i + part_size])
        for n, i in enumerate(range(0, len(data), part_size), 1)
    ]
    return upload.upload_id, parts


def complete(store: Store, upload_id: str, parts: list[PartRecord]):  # type: ignore[no-untyped-def]
    return store.multipart.complete_upload(upload_id, [(p.number, f'"{p.etag}"') for p in parts], min_part_size=MIN)


def test_same_data_one_stream_or_parts_gives_the_same_chunks(store: Store, bucket: str, clock: Clock) -> None:
    whole = store.put_object(bucket, "whole", DATA)
    expected = entries_of(store, whole)
    for key, part_size in (("five", 320_000), ("eight", 512_000), ("odd", 333_333)):
        upload_id, parts = multipart_put(store, bucket, key, DATA, part_size)
        rec = complete(store, upload_id, parts)
        assert entries_of(store, rec) == expected, key
        assert read(store, bucket, key) == DATA
        assert (rec.size, rec.parts_count, rec.content_type, rec.meta) == (
            len(DATA),
            len(parts),
            "text/plain",
            {"m": "1"},
        )
    # The parts' leftover boundary chunks are garbage; after GC only the shared chunks remain.
    clock.advance(store.config.gc_grace_seconds + 1)
    collect_garbage(store)
    assert chunk_files(store) == {d.hex() for d, _ in expected}
    assert all(chunk_row(store, d).count == 4 * expected.count((d, n)) for d, n in expected)  # type: ignore[union-attr]
    assert fsck(store).ok
    assert store.accounts.get_user("alice").usage_bytes == 4 * len(DATA)


def test_multipart_etag(store: Store, bucket: str) -> None:
    data = DATA[:700_000]
    upload_id, parts = multipart_put(store, bucket, "k", data, 300_000)
    assert [p.etag for p in parts] == [md5(data[i : i + 300_000]) for i in (0, 300_000, 600_000)]
    rec = complete(store, upload_id, parts)
    binary = b"".join(hashlib.md5(data[i : i + 300_000]).digest() for i in (0, 300_000, 600_000))
    assert rec.etag == hashlib.md5(binary).hexdigest() + "-3"
    assert store.head_object(bucket, "k").etag == rec.etag


def test_single_small_part_and_inline_parts(store: Store, bucket: str) -> None:
    upload_id, parts = multipart_put(store, bucket, "tiny", b"hello", 100)
    rec = complete(store, upload_id, parts)
    assert read(store, bucket, "tiny") == b"hello" and rec.size == 5
    assert chunk_files(store) == set()
    upload = store.multipart.create_upload(bucket, "empty")
    p = upload_part(store, upload.upload_id, 1, b"")
    rec = complete(store, upload.upload_id, [p])
    assert (rec.size, read(store, bucket, "empty")) == (0, b"")


def test_parts_may_be_uploaded_in_any_order_and_renumbered_gaps(store: Store, bucket: str) -> None:
    upload = store.multipart.create_upload(bucket, "k")
    p9 = upload_part(store, upload.upload_id, 9, DATA[300_000:600_000])
    p2 = upload_part(store, upload.upload_id, 2, DATA[:300_000])
    assert [p.number for p in store.multipart.list_parts(upload.upload_id)] == [2, 9]
    complete(store, upload.upload_id, [p2, p9])
    assert read(store, bucket, "k") == DATA[:600_000]


def test_reuploading_a_part_number_replaces_it(store: Store, bucket: str) -> None:
    upload = store.multipart.create_upload(bucket, "k")
    upload_part(store, upload.upload_id, 1, rand(300_000, seed=1))
    assert store.accounts.get_user("alice").usage_bytes == 300_000
    p1 = upload_part(store, upload.upload_id, 1, DATA[:200_000])
    assert store.multipart.list_parts(upload.upload_id) == [p1]
    assert store.accounts.get_user("alice").usage_bytes == 200_000
    assert fsck(store).ok
    p2 = upload_part(store, upload.upload_id, 2, DATA[200_000:250_000])
    complete(store, upload.upload_id, [p1, p2])
    assert read(store, bucket, "k") == DATA[:250_000]
    u = store.accounts.get_user("alice")
    assert (u.usage_bytes, u.object_count) == (250_000, 1)


def test_part_list_validation(store: Store, bucket: str) -> None:
    upload_id, parts = multipart_put(store, bucket, "k", DATA[:700_000], 300_000)
    p1, p2, p3 = parts
    mp = store.multipart
    with pytest.raises(InvalidPartOrder):
        mp.complete_upload(upload_id, [(2, p2.etag), (1, p1.etag)], min_part_size=MIN)
    with pytest.raises(InvalidPartOrder):
        mp.complete_upload(upload_id, [(1, p1.etag), (1, p1.etag)], min_part_size=MIN)
    with pytest.raises(InvalidPart):
        mp.complete_upload(upload_id, [(1, p1.etag), (2, p3.etag)], min_part_size=MIN)
    with pytest.raises(InvalidPart):
        mp.complete_upload(upload_id, [(1, p1.etag), (4, p3.etag)], min_part_size=MIN)
    with pytest.raises(InvalidArgument):
        mp.complete_upload(upload_id, [], min_part_size=MIN)
    with pytest.raises(EntityTooSmall):
        mp.complete_upload(upload_id, [(1, p1.etag), (3, p3.etag)])  # the default 5 MiB minimum
    with pytest.raises(NoSuchUpload):
        mp.complete_upload("no-such-upload", [(1, p1.etag)], min_part_size=MIN)
    # Nothing above changed anything: the upload is intact and completes.
    assert store.multipart.list_parts(upload_id) == parts
    with pytest.raises(NoSuchKey):
        store.head_object(bucket, "k")
    complete(store, upload_id, [p1, p3])  # a subset of the parts is fine
    assert read(store, bucket, "k") == DATA[:300_000] + DATA[600_000:700_000]
    with pytest.raises(NoSuchUpload):
        complete(store, upload_id, [p1, p3])
    u = store.accounts.get_user("alice")
    assert (u.usage_bytes, u.object_count) == (400_000, 1)  # the unused part 2 was released
    assert fsck(store).ok


def test_only_the_last_part_may_be_small(store: Store, bucket: str) -> None:
    upload_id, parts = multipart_put(store, bucket, "k", DATA[:300_000], 100_000)
    small = upload_part(store, upload_id, 4, b"x" * 10)
    with pytest.raises(EntityTooSmall):
        store.multipart.complete_upload(
            upload_id, [(p.number, p.etag) for p in parts] + [(4, small.etag)], min_part_size=200_000
        )
    rec = store.multipart.complete_upload(
        upload_id, [(p.number, p.etag) for p in parts] + [(4, small.etag)], min_part_size=100_000
    )
    assert rec.size == 300_010


def test_part_number_range(store: Store, bucket: str) -> None:
    upload = store.multipart.create_upload(bucket, "k")
    for bad in (0, MAX_PART_NUMBER + 1):
        with pytest.raises(InvalidArgument):
            store.multipart.open_part_writer(upload.upload_id, bad)
    with pytest.raises(NoSuchUpload):
        store.multipart.open_part_writer("nope", 1)


def test_abort_frees_usage_and_chunks(store: Store, bucket: str, clock: Clock) -> None:
    upload_id, parts = multipart_put(store, bucket, "k", DATA[:900_000], 300_000)
    assert store.accounts.get_user("alice").usage_bytes == 900_000
    assert fsck(store).ok
    digests = {d for p in parts for d, _ in entries_of(store, p)}  # type: ignore[arg-type]
    store.multipart.abort_upload(upload_id)
    u = store.accounts.get_user("alice")
    assert (u.usage_bytes, u.object_count) == (0, 0)
    assert all(chunk_row(store, d).count == 0 for d in digests)  # type: ignore[union-attr]
    assert store.multipart.list_uploads() == []
    with pytest.raises(NoSuchUpload):
        store.multipart.list_parts(upload_id)
    with pytest.raises(NoSuchUpload):
        upload_part(store, upload_id, 1, b"late")
    clock.advance(store.config.gc_grace_seconds + 1)
    collect_garbage(store)
    assert chunk_files(store) == set() and tmp_entries(store) == []
    assert fsck(store).ok


def test_part_aborted_while_it_streams_is_refused(store: Store, bucket: str) -> None:
    upload = store.multipart.create_upload(bucket, "k")
    with store.multipart.open_part_writer(upload.upload_id, 1) as w:
        w.write(DATA[:300_000])
        store.multipart.abort_upload(upload.upload_id)
        with pytest.raises(NoSuchUpload):
            w.commit()
    assert chunk_files(store) == set() and tmp_entries(store) == []
    assert store.accounts.get_user("alice").usage_bytes == 0


def test_pending_parts_count_against_the_quota(store: Store) -> None:
    store.accounts.create_user("carol", quota=700_000)
    store.create_bucket("carol", "limited")
    upload = store.multipart.create_upload("limited", "k")
    upload_part(store, upload.upload_id, 1, DATA[:400_000])
    with pytest.raises(QuotaExceeded):
        upload_part(store, upload.upload_id, 2, DATA[400_000:800_000])
    assert store.accounts.get_user("carol").usage_bytes == 400_000
    assert [p.number for p in store.multipart.list_parts(upload.upload_id)] == [1]
    assert tmp_entries(store) == []
    assert fsck(store).ok


def test_overwrite_by_multipart_keeps_usage_right(store: Store, bucket: str) -> None:
    store.put_object(bucket, "k", rand(1000))
    upload_id, parts = multipart_put(store, bucket, "k", DATA[:500_000], 250_000)
    complete(store, upload_id, parts)
    u = store.accounts.get_user("alice")
    assert (u.usage_bytes, u.object_count) == (500_000, 1)
    assert fsck(store).ok


def test_list_uploads_and_stale_uploads_are_aborted_by_gc(store: Store, bucket: str, clock: Clock) -> None:
    old = store.multipart.create_upload(bucket, "b-old")
    upload_part(store, old.upload_id, 1, DATA[:200_000])
    clock.advance(store.config.upload_max_age_seconds - 10)
    new = store.multipart.create_upload(bucket, "a-new")
    assert [u.key for u in store.multipart.list_uploads(bucket)] == ["a-new", "b-old"]
    assert store.multipart.list_uploads("other-bucket") == []
    clock.advance(20)
    report = collect_garbage(store)
    assert report.uploads_aborted == 1
    assert [u.upload_id for u in store.multipart.list_uploads()] == [new.upload_id]
    assert store.accounts.get_user("alice").usage_bytes == 0
    assert fsck(store).ok


def test_part_refused_at_commit_leaves_nothing_behind(store: Store) -> None:
    """Two parts that each fit the room left cannot both be stored, and the loser leaves no files."""
    store.accounts.create_user("carol", quota=700_000)
    store.create_bucket("carol", "limited")
    upload = store.multipart.create_upload("limited", "k")
    with (
        store.multipart.open_part_writer(upload.upload_id, 1) as w1,
        store.multipart.open_part_writer(upload.upload_id, 2) as w2,
    ):
        w1.write(DATA[:400_000])
        w2.write(DATA[400_000:800_000])
        w1.commit()
        before = chunk_files(store)
        with pytest.raises(QuotaExceeded):
            w2.commit()
    assert [p.number for p in store.multipart.list_parts(upload.upload_id)] == [1]
    assert store.accounts.get_user("carol").usage_bytes == 400_000
    assert tmp_entries(store) == []
    assert chunk_files(store) == before
    assert fsck(store).ok


def test_a_part_that_takes_the_object_past_the_size_limit_is_refused_before_it_is_kept(store: Store) -> None:
    """Each part fits the per-object limit, the two together do not: the second UploadPart is refused
    from its declared size (and, without one, while it streams), and nothing of it is kept."""
    store.accounts.create_user("carol", max_object_size=500_000)
    store.create_bucket("carol", "limited")
    upload = store.multipart.create_upload("limited", "k")
    first = upload_part(store, upload.upload_id, 1, DATA[:300_000])
    with pytest.raises(EntityTooLarge, match="per-object limit of carol"):
        store.multipart.open_part_writer(upload.upload_id, 2, (), 300_000)
    with pytest.raises(EntityTooLarge):
        upload_part(store, upload.upload_id, 2, DATA[300_000:600_000])
    assert store.multipart.list_parts(upload.upload_id) == [first]
    assert store.accounts.get_user("carol").usage_bytes == 300_000
    replaced = upload_part(store, upload.upload_id, 1, DATA[:450_000])  # replacing part 1 frees its size
    assert store.multipart.list_parts(upload.upload_id) == [replaced]
    assert tmp_entries(store) == []
    assert fsck(store).ok


def test_complete_refuses_an_object_over_a_limit_lowered_meanwhile(store: Store) -> None:
    """The limit is checked again at Complete: nothing changes, nothing is left."""
    store.accounts.create_user("carol", max_object_size=700_000)
    store.create_bucket("carol", "limited")
    upload = store.multipart.create_upload("limited", "k")
    parts = [upload_part(store, upload.upload_id, n, DATA[i : i + 300_000]) for n, i in ((1, 0), (2, 300_000))]
    store.accounts.set_limits("carol", max_object_size=500_000)
    before = chunk_files(store)
    with pytest.raises(EntityTooLarge):
        complete(store, upload.upload_id, parts)
    with pytest.raises(NoSuchKey):
        store.head_object("limited", "k")
    assert store.multipart.list_parts(upload.upload_id) == parts
    assert store.accounts.get_user("carol").usage_bytes == 600_000
    assert tmp_entries(store) == []
    assert chunk_files(store) == before  # the re-cut boundary chunks were not left behind
    assert fsck(store).ok


def test_a_completed_upload_answers_a_retried_complete_with_the_same_part_list(store: Store, bucket: str) -> None:
    upload_id, parts = multipart_put(store, bucket, "k", DATA[:300_000], 200_000)
    record = complete(store, upload_id, parts)
    wanted = [(p.number, f'"{p.etag}"') for p in parts]
    again = store.multipart.completed(upload_id, bucket, "k", wanted)
    assert (again.etag, again.version_id, again.checksums) == (record.etag, record.version_id, record.checksums)
    with pytest.raises(NoSuchUpload):
        store.multipart.completed(upload_id, bucket, "k", wanted[:1])  # another part list
    with pytest.raises(NoSuchUpload):
        store.multipart.completed(upload_id, bucket, "other-key", wanted)
    with pytest.raises(NoSuchUpload):
        complete(store, upload_id, parts)  # the upload itself is gone


def test_completion_records_are_forgotten_after_a_day_and_bounded(
    store: Store, bucket: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = []
    for n in range(3):
        upload_id, parts = multipart_put(store, bucket, f"k{n}", DATA[:1000], 1000)
        complete(store, upload_id, parts)
        done.append((upload_id, f"k{n}", [(p.number, p.etag) for p in parts]))
        clock.advance(1)
    assert store.multipart.prune_completed(clock()) == 0
    monkeypatch.setattr(multipart, "COMPLETED_MAX", 2)
    assert store.multipart.prune_completed(clock()) == 1  # the oldest goes past the bound
    with pytest.raises(NoSuchUpload):
        store.multipart.completed(done[0][0], bucket, done[0][1], done[0][2])
    clock.advance(multipart.COMPLETED_KEEP + 1)
    assert collect_garbage(store).completed_uploads_forgotten == 2


def test_parts_of_a_completed_object_can_be_read_one_by_one(store: Store, bucket: str) -> None:
    upload_id, parts = multipart_put(store, bucket, "k", DATA[:700_000], 300_000)
    record = complete(store, upload_id, parts)
    assert record.parts_count == 3
    layout = [(p.number, p.offset, p.size) for p in store.object_parts(record, 0, 10)]
    assert layout == [(1, 0, 300_000), (2, 300_000, 300_000), (3, 600_000, 100_000)]
    second = store.object_part(record, 2)
    assert b"".join(store.read_object(record, second.offset, second.offset + second.size)) == DATA[300_000:600_000]
    assert [p.number for p in store.object_parts(record, 1, 1)] == [2]
    from objstore.errors import InvalidPartNumber

    with pytest.raises(InvalidPartNumber):
        store.object_part(record, 4)
    single = store.put_object(bucket, "single", b"abc")
    assert (store.object_part(single, 1).size, store.object_part(single, 1).offset) == (3, 0)
    with pytest.raises(InvalidPartNumber):
        store.object_part(single, 2)
    store.delete_object(bucket, "k")  # the layout goes with the content
    assert store.meta.read(lambda r: r.count(manifests.PARTS)) == 0


def test_complete_checks_what_the_request_asserts(store: Store, bucket: str) -> None:
    from objstore.completion import CompletionChecks
    from objstore.errors import BadDigest, InvalidRequest

    upload = store.multipart.create_upload(bucket, "k", checksum_algorithm="CRC32", checksum_type="FULL_OBJECT")
    parts = []
    for number, piece in ((1, DATA[:100_000]), (2, DATA[100_000:150_000])):
        with store.multipart.open_part_writer(upload.upload_id, number, ["CRC32"]) as w:
            w.write(piece)
            parts.append(w.commit())
    wanted = [(p.number, p.etag) for p in parts]

    def attempt(**checks: object) -> None:
        store.multipart.complete_upload(upload.upload_id, wanted, MIN, CompletionChecks(**checks))  # type: ignore[arg-type]

    with pytest.raises(InvalidPart):
        attempt(part_checksums={1: {"CRC32": "AAAAAA=="}})
    with pytest.raises(InvalidRequest):
        attempt(part_checksums={1: {"SHA1": "AAAAAA=="}})
    with pytest.raises(InvalidRequest):
        attempt(checksum_type="COMPOSITE")
    with pytest.raises(InvalidRequest):
        attempt(object_size=1)
    with pytest.raises(BadDigest):
        attempt(object_checksums={"CRC32": "AAAAAA=="})
    with pytest.raises(InvalidRequest):
        attempt(object_checksums={"SHA256": "AAAAAA=="})
    import base64
    import zlib

    whole = base64.b64encode(zlib.crc32(DATA[:150_000]).to_bytes(4, "big")).decode()
    record = store.multipart.complete_upload(
        upload.upload_id,
        wanted,
        MIN,
        CompletionChecks(
            part_checksums={p.number: dict(p.checksums) for p in parts},
            object_checksums={"CRC32": whole},
            checksum_type="FULL_OBJECT",
            object_size=150_000,
        ),
    )
    assert record.checksums == {"CRC32": whole}


def test_the_upload_keeps_a_running_total_of_its_parts(store: Store) -> None:
    """UploadPart checks the object limit against the other parts' total without reading every part
    (uploads have up to 10,000); an upload from before the total was kept is summed once."""
    store.accounts.create_user("carol", max_object_size=500_000)
    store.create_bucket("carol", "limited")
    upload = store.multipart.create_upload("limited", "k")
    upload_part(store, upload.upload_id, 1, DATA[:200_000])
    upload_part(store, upload.upload_id, 2, DATA[:200_000])
    upload_part(store, upload.upload_id, 1, DATA[:100_000])  # replaced: 300,000 in all now
    assert store.multipart.get_upload(upload.upload_id).parts_bytes == 300_000
    with pytest.raises(EntityTooLarge):
        store.multipart.open_part_writer(upload.upload_id, 3, (), 200_001)
    legacy = store.multipart.get_upload(upload.upload_id)  # as an upload made by the previous release left it
    legacy.parts_bytes = None
    store.meta.transact(lambda w: w.put(multipart.UPLOADS, legacy.upload_id.encode(), legacy.encode()))
    with pytest.raises(EntityTooLarge):
        store.multipart.open_part_writer(upload.upload_id, 3, (), 200_001)
    upload_part(store, upload.upload_id, 3, DATA[:200_000])
    assert store.multipart.get_upload(upload.upload_id).parts_bytes == 500_000
