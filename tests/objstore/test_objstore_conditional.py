"""Conditional writes and deletes in the engine (`objstore.conditions`): judged on the key's current
version inside the transaction that changes it, so concurrent writers cannot both pass.

S3's rules: https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html and
https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from objstore_helpers import chunk_files, md5, rand, read, tmp_entries

from objstore import Store
from objstore.conditions import ANY, Precondition
from objstore.errors import InvalidRequest, NoSuchKey, PreconditionFailed
from objstore.maintenance import fsck
from objstore.records import PartRecord

WRITERS = 8
MIN = 64 * 1024  # min_part_size for these tests, scaled down with the chunk sizes


def versioned(store: Store, bucket: str) -> str:
    store.set_bucket_versioning(bucket, "Enabled")
    return bucket


def version_ids(store: Store, bucket: str, key: str) -> list[str]:
    return [v.version_id for v in store.list_object_versions(bucket, prefix=key).versions]


def race(fns: list[Callable[[], object]]) -> list[object]:
    """Run `fns` on threads released together; each result is the value or the exception raised."""
    gate = threading.Barrier(len(fns))

    def run(fn: Callable[[], object]) -> object:
        gate.wait(timeout=30)
        try:
            return fn()
        except Exception as e:  # the race's losers: collected, not raised
            return e

    with ThreadPoolExecutor(len(fns)) as pool:
        return list(pool.map(run, fns, timeout=60))


def upload_part(store: Store, upload_id: str, number: int, data: bytes) -> PartRecord:
    with store.multipart.open_part_writer(upload_id, number) as w:
        w.write(data)
        return w.commit()


def two_part_upload(store: Store, bucket: str, key: str, data: bytes) -> tuple[str, list[tuple[int, str]]]:
    upload = store.multipart.create_upload(bucket, key)
    half = len(data) // 2
    parts = [upload_part(store, upload.upload_id, n, piece) for n, piece in ((1, data[:half]), (2, data[half:]))]
    return upload.upload_id, [(p.number, p.etag) for p in parts]


# PutObject ---------------------------------------------------------------------------------------
def test_if_match_replaces_only_the_object_it_names(store: Store, bucket: str) -> None:
    first = store.put_object(bucket, "k", b"one")
    store.put_object(bucket, "k", b"two", if_match=first.etag)
    with pytest.raises(PreconditionFailed):
        store.put_object(bucket, "k", b"three", if_match=first.etag)
    assert read(store, bucket, "k") == b"two"
    store.put_object(bucket, "k", b"four", if_match=md5(b"two"))
    assert read(store, bucket, "k") == b"four"


def test_if_match_on_a_key_without_an_object_is_no_such_key(store: Store, bucket: str) -> None:
    before = chunk_files(store)
    with pytest.raises(NoSuchKey):
        store.put_object(bucket, "k", rand(500_000, seed=3), if_match=md5(b"anything"))
    assert store.list_objects(bucket).objects == []
    assert chunk_files(store) == before and tmp_entries(store) == []
    assert store.accounts.get_user("alice").usage_bytes == 0


def test_a_current_delete_marker_is_no_object(store: Store, bucket: str) -> None:
    versioned(store, bucket)
    old = store.put_object(bucket, "k", b"old")
    store.delete_object(bucket, "k")
    with pytest.raises(NoSuchKey):
        store.put_object(bucket, "k", b"x", if_match=old.etag)
    created = store.put_object(bucket, "k", b"new", if_none_match=True)
    assert read(store, bucket, "k") == b"new"
    assert version_ids(store, bucket, "k")[0] == created.version_id


def test_in_a_versioned_bucket_only_the_current_version_counts(store: Store, bucket: str) -> None:
    versioned(store, bucket)
    v1 = store.put_object(bucket, "k", b"v1")
    v2 = store.put_object(bucket, "k", b"v2")
    with pytest.raises(PreconditionFailed):
        store.put_object(bucket, "k", b"v3", if_match=v1.etag)  # a noncurrent version's ETag
    with pytest.raises(PreconditionFailed):
        store.put_object(bucket, "k", b"v3", if_none_match=True)
    v3 = store.put_object(bucket, "k", b"v3", if_match=v2.etag)
    assert version_ids(store, bucket, "k") == [v3.version_id, v2.version_id, v1.version_id]


def test_concurrent_create_only_puts_store_exactly_one(store: Store, bucket: str) -> None:
    writers = []
    for i in range(WRITERS):
        w = store.open_writer(bucket, "lock")
        w.write(f"writer {i}".encode())
        writers.append(w)
    outcomes = race([lambda w=w: w.commit(if_none_match=True) for w in writers])  # type: ignore[misc]
    won = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(won) == 1
    assert all(isinstance(o, PreconditionFailed) for o in outcomes if o not in won)
    assert read(store, bucket, "lock") == f"writer {outcomes.index(won[0])}".encode()
    assert store.accounts.get_user("alice").object_count == 1
    assert fsck(store).ok and tmp_entries(store) == []


def test_concurrent_compare_and_swap_puts_replace_exactly_once(store: Store, bucket: str) -> None:
    versioned(store, bucket)
    base = store.put_object(bucket, "state", b"base")
    writers = []
    for i in range(WRITERS):
        w = store.open_writer(bucket, "state")
        w.write(f"update {i}".encode())
        writers.append(w)
    outcomes = race([lambda w=w: w.commit(if_match=base.etag) for w in writers])  # type: ignore[misc]
    won = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(won) == 1
    assert sum(isinstance(o, PreconditionFailed) for o in outcomes) == WRITERS - 1
    assert len(version_ids(store, bucket, "state")) == 2  # the base and the one winner
    assert fsck(store).ok


# CompleteMultipartUpload -------------------------------------------------------------------------
def test_a_conditional_complete_is_judged_when_it_commits(store: Store, bucket: str) -> None:
    data = rand(2_600_000, seed=1)
    upload_id, parts = two_part_upload(store, bucket, "k", data)
    store.put_object(bucket, "k", b"taken")
    before = chunk_files(store)
    with pytest.raises(PreconditionFailed):
        store.multipart.complete_upload(upload_id, parts, MIN, condition=Precondition(if_none_match=True))
    assert chunk_files(store) == before  # refused before the parts were joined and re-cut
    assert len(store.multipart.list_parts(upload_id)) == 2  # the upload is still there
    store.delete_object(bucket, "k")
    done = store.multipart.complete_upload(upload_id, parts, MIN, condition=Precondition(if_none_match=True))
    assert read(store, bucket, "k") == data and done.parts_count == 2
    assert fsck(store).ok


def test_complete_with_if_match(store: Store, bucket: str) -> None:
    upload_id, parts = two_part_upload(store, bucket, "k", rand(300_000, seed=2))
    with pytest.raises(NoSuchKey):
        store.multipart.complete_upload(upload_id, parts, MIN, condition=Precondition(if_match=md5(b"x")))
    current = store.put_object(bucket, "k", b"x")
    with pytest.raises(PreconditionFailed):
        store.multipart.complete_upload(upload_id, parts, MIN, condition=Precondition(if_match=md5(b"y")))
    done = store.multipart.complete_upload(upload_id, parts, MIN, condition=Precondition(if_match=current.etag))
    assert store.head_object(bucket, "k").etag == done.etag


def test_concurrent_create_only_completes_store_exactly_one(store: Store, bucket: str) -> None:
    uploads = [two_part_upload(store, bucket, "k", rand(200_000, seed=i)) for i in range(4)]
    create_only = Precondition(if_none_match=True)
    outcomes = race(
        [
            lambda u=u: store.multipart.complete_upload(u[0], u[1], MIN, condition=create_only)
            for u in uploads  # type: ignore[misc]
        ]
    )
    won = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(won) == 1
    assert sum(isinstance(o, PreconditionFailed) for o in outcomes) == 3
    assert read(store, bucket, "k") == rand(200_000, seed=outcomes.index(won[0]))
    assert fsck(store).ok


# CopyObject --------------------------------------------------------------------------------------
def test_copy_conditions_apply_to_the_destination(store: Store, bucket: str) -> None:
    store.put_object(bucket, "src", b"source")
    with pytest.raises(NoSuchKey):
        store.copy_object(bucket, "src", bucket, "dst", condition=Precondition(if_match=md5(b"source")))
    store.copy_object(bucket, "src", bucket, "dst", condition=Precondition(if_none_match=True))
    with pytest.raises(PreconditionFailed):
        store.copy_object(bucket, "src", bucket, "dst", condition=Precondition(if_none_match=True))
    store.put_object(bucket, "dst", b"changed")
    with pytest.raises(PreconditionFailed):
        store.copy_object(bucket, "src", bucket, "dst", condition=Precondition(if_match=md5(b"source")))
    store.copy_object(bucket, "src", bucket, "dst", condition=Precondition(if_match=md5(b"changed")))
    assert read(store, bucket, "dst") == b"source"
    assert fsck(store).ok  # the refused copies took no manifest reference


# DeleteObject ------------------------------------------------------------------------------------
def test_delete_if_match(store: Store, bucket: str) -> None:
    put = store.put_object(bucket, "k", b"data")
    with pytest.raises(PreconditionFailed):
        store.delete_object(bucket, "k", condition=Precondition(if_match=md5(b"other")))
    assert read(store, bucket, "k") == b"data"
    assert store.delete_object(bucket, "k", condition=Precondition(if_match=put.etag)).changed
    with pytest.raises(NoSuchKey):  # no object: the condition cannot hold
        store.delete_object(bucket, "k", condition=Precondition(if_match=ANY))
    store.put_object(bucket, "k", b"again")
    assert store.delete_object(bucket, "k", condition=Precondition(if_match=ANY)).changed
    assert store.list_objects(bucket).objects == []


def test_delete_if_match_in_a_versioned_bucket(store: Store, bucket: str) -> None:
    versioned(store, bucket)
    v1 = store.put_object(bucket, "k", b"v1")
    v2 = store.put_object(bucket, "k", b"v2")
    with pytest.raises(PreconditionFailed):
        store.delete_object(bucket, "k", condition=Precondition(if_match=v1.etag))
    done = store.delete_object(bucket, "k", condition=Precondition(if_match=v2.etag))
    assert done.delete_marker
    with pytest.raises(NoSuchKey):  # the current version is that marker
        store.delete_object(bucket, "k", condition=Precondition(if_match=v2.etag))
    with pytest.raises(InvalidRequest):  # conditions speak of the current version only
        store.delete_object(bucket, "k", v1.version_id, condition=Precondition(if_match=v1.etag))
    assert version_ids(store, bucket, "k") == [done.version_id, v2.version_id, v1.version_id]


def test_concurrent_conditional_deletes_delete_once(store: Store, bucket: str) -> None:
    versioned(store, bucket)
    put = store.put_object(bucket, "k", b"data")
    outcomes = race(
        [lambda: store.delete_object(bucket, "k", condition=Precondition(if_match=put.etag)) for _ in range(WRITERS)]
    )
    assert sum(not isinstance(o, Exception) for o in outcomes) == 1
    assert sum(isinstance(o, NoSuchKey) for o in outcomes) == WRITERS - 1
    assert len(version_ids(store, bucket, "k")) == 2  # one marker, not eight
