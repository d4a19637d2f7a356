"""The engine's facade (`objstore.store`): buckets, objects, ranges, limits and concurrent writers."""

from __future__ import annotations

import hashlib
import multiprocessing
import random
import threading
from pathlib import Path

import blake3
import pytest
from clocks import Clock
from objstore_helpers import (
    SMALL,
    chunk_files,
    churn,
    churn_process,
    entries_of,
    listed_usage,
    md5,
    rand,
    read,
    tmp_entries,
)

from objstore import Store, StoreConfig, manifests
from objstore.errors import (
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    EntityTooLarge,
    InvalidArgument,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    NoSuchUser,
    PreconditionFailed,
    QuotaExceeded,
)
from objstore.maintenance import fsck

EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


# buckets ---------------------------------------------------------------------------------------
def test_bucket_lifecycle(store: Store, clock: Clock) -> None:
    store.accounts.create_user("alice")
    store.accounts.create_user("bob")
    rec = store.create_bucket("alice", "my-bucket.1", region="eu-west-3")
    assert (rec.name, rec.owner, rec.region, rec.created) == ("my-bucket.1", "alice", "eu-west-3", clock())
    assert store.get_bucket("my-bucket.1") == rec
    with pytest.raises(BucketAlreadyOwnedByYou):
        store.create_bucket("alice", "my-bucket.1")
    with pytest.raises(BucketAlreadyExists):
        store.create_bucket("bob", "my-bucket.1")
    store.create_bucket("bob", "bobs")
    assert [b.name for b in store.list_buckets("alice")] == ["my-bucket.1"]
    assert {b.name for b in store.list_buckets()} == {"my-bucket.1", "bobs"}
    store.delete_bucket("my-bucket.1")
    with pytest.raises(NoSuchBucket):
        store.get_bucket("my-bucket.1")


@pytest.mark.parametrize("name", ["ab", "UPPER", "-dash", "dash-", "a" * 64, "under_score", "sp ace"])
def test_invalid_bucket_names(store: Store, name: str) -> None:
    store.accounts.create_user("alice")
    with pytest.raises(InvalidArgument):
        store.create_bucket("alice", name)


def test_bucket_needs_an_existing_owner(store: Store) -> None:
    with pytest.raises(NoSuchUser):
        store.create_bucket("ghost", "bucket")


def test_delete_bucket_refuses_objects_and_aborts_uploads(store: Store, bucket: str) -> None:
    """As S3: objects keep a bucket, uploads in progress do not (they are aborted with it)."""
    store.put_object(bucket, "k", b"x")
    with pytest.raises(BucketNotEmpty):
        store.delete_bucket(bucket)
    store.delete_object(bucket, "k")
    upload = store.multipart.create_upload(bucket, "big")
    with store.multipart.open_part_writer(upload.upload_id, 1) as part:
        part.write(rand(100_000))
        part.commit()
    assert store.accounts.get_user("alice").usage_bytes == 100_000
    store.delete_bucket(bucket)
    with pytest.raises(NoSuchUpload):
        store.multipart.get_upload(upload.upload_id)
    assert store.accounts.get_user("alice").usage_bytes == 0
    assert fsck(store).ok


def test_buckets_do_not_see_each_other_s_objects(store: Store, bucket: str) -> None:
    store.create_bucket("alice", "other")
    store.put_object(bucket, "k", b"mine")
    store.put_object("other", "k2", b"theirs")
    assert [o.key for o in store.list_objects(bucket).objects] == ["k"]
    assert [o.key for o in store.list_objects("other").objects] == ["k2"]
    with pytest.raises(NoSuchKey):
        store.head_object("other", "k")


# objects ---------------------------------------------------------------------------------------
def test_put_head_read_delete(store: Store, bucket: str, clock: Clock) -> None:
    data = rand(900_000, seed=5)
    rec = store.put_object(
        bucket, "dir/file.bin", data, content_type="image/png", meta={"a": "b"}, headers={"Cache-Control": "no-cache"}
    )
    head = store.head_object(bucket, "dir/file.bin")
    assert head == rec
    assert (head.size, head.etag, head.owner, head.created) == (len(data), md5(data), "alice", clock())
    assert (head.content_type, head.meta, head.headers) == ("image/png", {"a": "b"}, {"Cache-Control": "no-cache"})
    assert head.blake3 == blake3.blake3(data).hexdigest()
    assert read(store, bucket, "dir/file.bin") == data
    assert store.accounts.get_user("alice").usage_bytes == len(data)
    assert store.delete_object(bucket, "dir/file.bin").changed is True
    assert store.delete_object(bucket, "dir/file.bin").changed is False
    with pytest.raises(NoSuchKey):
        store.head_object(bucket, "dir/file.bin")
    assert store.accounts.get_user("alice").usage_bytes == 0
    with pytest.raises(NoSuchBucket):
        store.put_object("nope", "k", b"")


def test_zero_byte_object(store: Store, bucket: str) -> None:
    rec = store.put_object(bucket, "empty", b"")
    head = store.head_object(bucket, "empty")
    assert (rec.size, head.size, head.etag) == (0, 0, EMPTY_MD5)
    assert list(store.read_object(head)) == []
    assert read(store, bucket, "empty") == b""
    assert read(store, bucket, "empty", 0, 10) == b""
    assert chunk_files(store) == set()
    u = store.accounts.get_user("alice")
    assert (u.usage_bytes, u.object_count) == (0, 1)


def test_writer_with_no_writes_is_a_zero_byte_object(store: Store, bucket: str) -> None:
    with store.open_writer(bucket, "nothing") as w:
        rec = w.commit()
    assert (rec.size, rec.etag) == (0, EMPTY_MD5)
    assert read(store, bucket, "nothing") == b""


def test_small_objects_are_inline_and_create_no_chunk_files(store: Store, bucket: str) -> None:
    limit = store.config.inline_max
    for n in (1, 100, limit):
        data = rand(n, seed=n)
        store.put_object(bucket, f"small-{n}", data)
        assert read(store, bucket, f"small-{n}") == data
        assert read(store, bucket, f"small-{n}", 1, n - 1 if n > 1 else 1) == data[1 : n - 1 if n > 1 else 1]
    assert chunk_files(store) == set()
    store.put_object(bucket, "just-over", rand(limit + 1))
    assert len(chunk_files(store)) == 1
    assert read(store, bucket, "just-over") == rand(limit + 1)


def test_overwrite_replaces_content_and_usage(store: Store, bucket: str) -> None:
    store.put_object(bucket, "k", rand(300_000, 1))
    store.put_object(bucket, "k", rand(200_000, 2))
    assert read(store, bucket, "k") == rand(200_000, 2)
    u = store.accounts.get_user("alice")
    assert (u.usage_bytes, u.object_count) == (200_000, 1)
    assert fsck(store).ok


def test_if_none_match_refuses_an_existing_key(store: Store, bucket: str) -> None:
    store.put_object(bucket, "k", b"first", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put_object(bucket, "k", b"second", if_none_match=True)
    assert read(store, bucket, "k") == b"first"


def test_failed_conditional_put_leaves_no_chunk_files(store: Store, bucket: str) -> None:
    """A commit that fails must not leave the chunks it renamed into chunks/ behind (orphans)."""
    store.put_object(bucket, "k", b"small original")
    before = chunk_files(store)
    with pytest.raises(PreconditionFailed):
        store.put_object(bucket, "k", rand(500_000, seed=9), if_none_match=True)
    assert read(store, bucket, "k") == b"small original"
    assert tmp_entries(store) == []
    assert chunk_files(store) == before
    assert fsck(store).ok


def test_commit_after_the_bucket_was_recreated_fails(store: Store, bucket: str) -> None:
    with store.open_writer(bucket, "k") as w:
        w.write(b"data")
        store.delete_bucket(bucket)
        store.create_bucket("alice", bucket)
        with pytest.raises(NoSuchBucket):
            w.commit()
    assert store.list_objects(bucket).objects == []
    assert tmp_entries(store) == []


# ranged reads ----------------------------------------------------------------------------------
def boundaries(store: Store, rec: object) -> list[int]:
    ends, pos = [0], 0
    for _, n in entries_of(store, rec):  # type: ignore[arg-type]
        pos += n
        ends.append(pos)
    return ends


def check_ranges(store: Store, bucket: str, key: str, data: bytes, seed: int, count: int = 200) -> None:
    rec = store.head_object(bucket, key)
    rng = random.Random(seed)
    cuts = boundaries(store, rec)
    points = sorted({max(0, min(len(data), c + d)) for c in cuts for d in (-1, 0, 1)})
    pairs = [(rng.randrange(len(data) + 1), rng.randrange(len(data) + 1)) for _ in range(count)]
    pairs += [(a, b) for a in points[:: max(1, len(points) // 15)] for b in points[-3:]]
    pairs += [(rng.choice(points), rng.choice(points)) for _ in range(count)]
    for start, end in pairs:
        got = b"".join(store.read_object(rec, start, end))
        assert got == data[start:end], (start, end)
    assert b"".join(store.read_object(rec, 0, len(data) + 100)) == data


def test_ranged_reads_across_chunk_boundaries(store: Store, bucket: str) -> None:
    data = rand(1_500_000, seed=21)
    store.put_object(bucket, "big", data)
    assert len(boundaries(store, store.head_object(bucket, "big"))) > 10
    check_ranges(store, bucket, "big", data, seed=1)


def test_ranged_reads_across_manifest_pages(store: Store, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Manifests of more than PAGE_ENTRIES chunks span pages; reads must cross from one to the next."""
    monkeypatch.setattr(manifests, "PAGE_ENTRIES", 4)
    data = rand(1_500_000, seed=22)
    store.put_object(bucket, "paged", data)
    check_ranges(store, bucket, "paged", data, seed=2, count=50)


def test_object_of_more_than_1024_chunks_reads_back(tmp_path: Path) -> None:
    """The same without patching: tiny chunks give a manifest of several real pages."""
    tiny = StoreConfig(chunk_min=64, chunk_avg=256, chunk_max=1024, durable=False, map_size=1 << 30)
    store = Store(tmp_path / "tiny", tiny)
    store.accounts.create_user("u")
    store.create_bucket("u", "bkt")
    data = rand(400_000, seed=23)
    rec = store.put_object("bkt", "k", data)
    assert len(entries_of(store, rec)) > manifests.PAGE_ENTRIES
    assert b"".join(store.read_object(rec)) == data
    store.close()


# quota and size limits -------------------------------------------------------------------------
@pytest.fixture
def limited(store: Store) -> str:
    store.accounts.create_user("carol", quota=1_000_000, max_object_size=600_000)
    store.create_bucket("carol", "limited")
    store.put_object("limited", "existing", rand(300_000, seed=3))
    return "limited"


def assert_unchanged(store: Store, bucket: str) -> None:
    u = store.accounts.get_user("carol")
    assert (u.usage_bytes, u.object_count) == (300_000, 1)
    assert [o.key for o in store.list_objects(bucket).objects] == ["existing"]
    assert tmp_entries(store) == []
    assert fsck(store).ok


@pytest.mark.parametrize("size, error", [(600_001, EntityTooLarge), (700_001, QuotaExceeded)])
def test_limits_up_front_with_size_hint(store: Store, limited: str, size: int, error: type) -> None:
    store.accounts.set_limits("carol", max_object_size=800_000 if error is QuotaExceeded else None)
    with pytest.raises(error):
        store.open_writer(limited, "new", size_hint=size)
    assert_unchanged(store, limited)


@pytest.mark.parametrize("size, error", [(600_001, EntityTooLarge), (700_001, QuotaExceeded)])
def test_limits_while_streaming(store: Store, limited: str, size: int, error: type) -> None:
    store.accounts.set_limits("carol", max_object_size=800_000 if error is QuotaExceeded else None)
    data = rand(size, seed=4)
    with store.open_writer(limited, "new") as w:
        with pytest.raises(error):
            for i in range(0, size, 64 * 1024):
                w.write(data[i : i + 64 * 1024])
        assert i > 0  # it failed mid-stream, not on the first piece
    with pytest.raises(error):
        store.put_object(limited, "new", data)
    with pytest.raises(NoSuchKey):
        store.head_object(limited, "new")
    assert_unchanged(store, limited)


def test_quota_rechecked_at_commit(store: Store, limited: str) -> None:
    """Two writers that each fit the room left cannot both commit."""
    a, b = rand(400_000, seed=5), rand(400_000, seed=6)
    with store.open_writer(limited, "a") as wa, store.open_writer(limited, "b") as wb:
        wa.write(a)
        wb.write(b)
        wa.commit()
        before = chunk_files(store)
        with pytest.raises(QuotaExceeded):
            wb.commit()
    assert read(store, limited, "a") == a
    with pytest.raises(NoSuchKey):
        store.head_object(limited, "b")
    assert store.accounts.get_user("carol").usage_bytes == 700_000
    assert tmp_entries(store) == []
    assert chunk_files(store) == before  # nothing of b's left behind
    assert fsck(store).ok


def test_exactly_at_the_limits_is_allowed(store: Store, limited: str) -> None:
    store.accounts.set_limits("carol", quota=900_000)
    store.put_object(limited, "max", rand(600_000, seed=7))
    assert store.accounts.get_user("carol").usage_bytes == 900_000


# concurrent writers ----------------------------------------------------------------------------
def assert_usage_matches_listing(store: Store, bucket: str, owner: str = "alice") -> None:
    user = store.accounts.get_user(owner)
    assert (user.usage_bytes, user.object_count) == listed_usage(store, bucket)
    report = fsck(store)
    assert report.ok, report.problems
    assert tmp_entries(store) == []


def test_usage_under_concurrent_threads(store: Store, bucket: str) -> None:
    errors: list[BaseException] = []

    def run(seed: int) -> None:
        try:
            churn(store, bucket, seed, ops=25)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert store.list_objects(bucket).objects  # something survived the churn
    assert_usage_matches_listing(store, bucket)
    for obj in store.list_objects(bucket).objects:
        body = b"".join(store.read_object(obj))
        assert hashlib.md5(body).hexdigest() == obj.etag


def test_usage_under_concurrent_processes(tmp_path: Path) -> None:
    data_dir = tmp_path / "shared"
    store = Store(data_dir, SMALL)
    store.accounts.create_user("alice")
    store.create_bucket("alice", "shared")
    store.close()  # no environment carried into the children
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=churn_process, args=(str(data_dir), SMALL, "shared", seed, 25)) for seed in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    store = Store(data_dir, SMALL)
    assert store.list_objects("shared").objects
    assert_usage_matches_listing(store, "shared")
    store.close()


# copies ----------------------------------------------------------------------------------------
def manifest_refs(store: Store, manifest_hex: str) -> int | None:
    head = store.meta.read(lambda r: manifests.get_head(r, bytes.fromhex(manifest_hex)))
    return head.refs if head is not None else None


def test_copy_shares_the_manifest_and_copies_no_bytes(store: Store, bucket: str, clock: Clock) -> None:
    data = rand(700_000, seed=31)
    src = store.put_object(bucket, "src", data, meta={"a": "1"})
    files = chunk_files(store)
    clock.advance(5)
    copy, _ = store.copy_object(bucket, "src", bucket, "dst")
    assert (copy.key, copy.manifest, copy.etag, copy.meta, copy.created) == (
        "dst",
        src.manifest,
        src.etag,
        {"a": "1"},
        clock(),
    )
    assert chunk_files(store) == files
    assert manifest_refs(store, src.manifest) == 2
    u = store.accounts.get_user("alice")
    assert (u.usage_bytes, u.object_count) == (2 * len(data), 2)  # logical usage counts both
    assert fsck(store).ok
    store.delete_object(bucket, "src")
    assert read(store, bucket, "dst") == data
    assert manifest_refs(store, src.manifest) == 1
    store.delete_object(bucket, "dst")
    assert manifest_refs(store, src.manifest) is None
    assert fsck(store).ok


def test_copy_with_replaced_metadata_and_onto_itself(store: Store, bucket: str) -> None:
    src = store.put_object(bucket, "k", rand(50_000, seed=32), content_type="text/plain")
    new, _ = store.copy_object(bucket, "k", bucket, "k", replace={"content_type": "image/png", "meta": {"m": "2"}})
    assert (new.content_type, new.meta, new.manifest) == ("image/png", {"m": "2"}, src.manifest)
    assert store.head_object(bucket, "k").content_type == "image/png"
    assert manifest_refs(store, src.manifest) == 1
    u = store.accounts.get_user("alice")
    assert (u.usage_bytes, u.object_count) == (50_000, 1)
    assert read(store, bucket, "k") == rand(50_000, seed=32)
    assert fsck(store).ok


def test_copy_to_another_owner_charges_them_and_checks_their_quota(store: Store, bucket: str) -> None:
    store.accounts.create_user("bob", quota=100_000)
    store.create_bucket("bob", "bobs")
    store.put_object(bucket, "small", rand(60_000, seed=33))
    store.put_object(bucket, "large", rand(200_000, seed=34))
    copy, _ = store.copy_object(bucket, "small", "bobs", "mine")
    assert copy.owner == "bob" and store.accounts.get_user("bob").usage_bytes == 60_000
    with pytest.raises(QuotaExceeded):
        store.copy_object(bucket, "large", "bobs", "too-big")
    with pytest.raises(NoSuchKey):
        store.head_object("bobs", "too-big")
    assert store.accounts.get_user("bob").usage_bytes == 60_000
    assert fsck(store).ok


def test_copy_errors_change_nothing(store: Store, bucket: str) -> None:
    src = store.put_object(bucket, "src", rand(10_000, seed=35))

    def refuse(record: object) -> None:
        raise PreconditionFailed("copy-source-if-match")

    with pytest.raises(PreconditionFailed):
        store.copy_object(bucket, "src", bucket, "dst", check=refuse)
    with pytest.raises(NoSuchKey):
        store.copy_object(bucket, "missing", bucket, "dst")
    with pytest.raises(NoSuchBucket):
        store.copy_object(bucket, "src", "no-such-bucket", "dst")
    assert [o.key for o in store.list_objects(bucket).objects] == ["src"]
    assert manifest_refs(store, src.manifest) == 1
    assert fsck(store).ok
