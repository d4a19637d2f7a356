"""Object versions in the engine: S3's rules for each versioning state, delete markers, removal by
id, listing, usage, and a model-based check of random histories against a plain Python model."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from clocks import Clock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from objstore_helpers import SMALL, rand, read

from objstore import Store
from objstore.errors import (
    BucketNotEmpty,
    DeleteMarkerIsCurrent,
    InvalidArgument,
    InvalidRequest,
    NoSuchKey,
    NoSuchVersion,
    VersionIsDeleteMarker,
)
from objstore.maintenance import fsck
from objstore.versions import NULL, NULLS


def versions_of(store: Store, bucket: str, key: str | None = None) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, delete marker?, latest?) of every version listed, in S3 order."""
    page = store.list_object_versions(bucket, max_keys=1000)
    return [
        (v.key, v.version_id, v.delete_marker, v.noncurrent_since is None)
        for v in page.versions
        if key in (None, v.key)
    ]


def usage(store: Store, user: str = "alice") -> tuple[int, int]:
    record = store.accounts.get_user(user)
    return record.usage_bytes, record.object_count


def test_an_unversioned_bucket_keeps_one_null_version(store: Store, bucket: str) -> None:
    store.put_object(bucket, "k", b"one")
    second = store.put_object(bucket, "k", b"two!")
    assert second.version_id == NULL
    assert versions_of(store, bucket) == [("k", NULL, False, True)]
    assert usage(store) == (4, 1)
    done = store.delete_object(bucket, "k")
    assert (done.version_id, done.delete_marker, done.changed) == (None, False, True)
    assert versions_of(store, bucket) == [] and usage(store) == (0, 0)


def test_enabled_keeps_every_version_and_delete_adds_a_marker(store: Store, bucket: str) -> None:
    store.put_object(bucket, "k", b"null")  # written before versioning: the null version
    store.set_bucket_versioning(bucket, "Enabled")
    v1 = store.put_object(bucket, "k", b"v1")
    v2 = store.put_object(bucket, "k", b"v2!")
    assert len({v1.version_id, v2.version_id, NULL}) == 3
    assert read(store, bucket, "k") == b"v2!"
    assert b"".join(store.read_object(store.head_object(bucket, "k", v1.version_id))) == b"v1"
    assert b"".join(store.read_object(store.head_object(bucket, "k", NULL))) == b"null"
    assert usage(store) == (4 + 2 + 3, 3)

    marker = store.delete_object(bucket, "k")
    assert marker.delete_marker and marker.version_id not in (None, NULL)
    with pytest.raises(DeleteMarkerIsCurrent) as e:
        store.head_object(bucket, "k")
    assert e.value.marker_version_id == marker.version_id
    with pytest.raises(VersionIsDeleteMarker):
        store.head_object(bucket, "k", marker.version_id)
    assert [v[1:] for v in versions_of(store, bucket)] == [
        (marker.version_id, True, True),
        (v2.version_id, False, False),
        (v1.version_id, False, False),
        (NULL, False, False),
    ]
    assert usage(store) == (9, 3)  # a marker costs nothing
    assert store.list_objects(bucket).objects == []

    undone = store.delete_object(bucket, "k", marker.version_id)  # undelete
    assert (undone.version_id, undone.delete_marker, undone.changed) == (marker.version_id, True, True)
    assert read(store, bucket, "k") == b"v2!"


def test_removing_the_current_version_promotes_the_next(store: Store, bucket: str) -> None:
    store.set_bucket_versioning(bucket, "Enabled")
    v1 = store.put_object(bucket, "k", b"v1")
    v2 = store.put_object(bucket, "k", b"v2")
    store.delete_object(bucket, "k", v2.version_id)
    assert store.head_object(bucket, "k").version_id == v1.version_id
    assert versions_of(store, bucket) == [("k", v1.version_id, False, True)]
    store.delete_object(bucket, "k", v1.version_id)
    with pytest.raises(NoSuchKey):
        store.head_object(bucket, "k")
    assert usage(store) == (0, 0)
    assert fsck(store).ok


def test_suspended_writes_and_deletes_replace_the_null_version(store: Store, bucket: str) -> None:
    store.put_object(bucket, "k", b"old-null")
    store.set_bucket_versioning(bucket, "Enabled")
    v1 = store.put_object(bucket, "k", b"v1")
    store.set_bucket_versioning(bucket, "Suspended")
    fresh = store.put_object(bucket, "k", b"new-null")  # removes the noncurrent null version
    assert fresh.version_id == NULL
    assert [v[1] for v in versions_of(store, bucket)] == [NULL, v1.version_id]
    again = store.put_object(bucket, "k", b"newer-null")  # replaces the current null version
    assert [v[1] for v in versions_of(store, bucket)] == [NULL, v1.version_id]
    assert read(store, bucket, "k") == b"newer-null" and again.size == 10
    marker = store.delete_object(bucket, "k")  # a null marker, replacing the null version
    assert (marker.version_id, marker.delete_marker) == (NULL, True)
    assert versions_of(store, bucket) == [("k", NULL, True, True), ("k", v1.version_id, False, False)]
    assert usage(store) == (2, 1)
    assert fsck(store).ok


def test_unknown_and_malformed_version_ids(store: Store, bucket: str) -> None:
    store.set_bucket_versioning(bucket, "Enabled")
    v1 = store.put_object(bucket, "k", b"v1")
    other = v1.version_id[:16] + "0" * 16
    with pytest.raises(NoSuchVersion):
        store.head_object(bucket, "k", other)
    with pytest.raises(NoSuchVersion):
        store.head_object(bucket, "k", NULL)
    for bad in ("", "nope", v1.version_id.upper(), v1.version_id + "0"):
        with pytest.raises(InvalidArgument):
            store.head_object(bucket, "k", bad)
    assert not store.delete_object(bucket, "k", other).changed  # idempotent, as S3's deletes
    with pytest.raises(InvalidArgument):
        store.delete_object(bucket, "k", "nope")
    with pytest.raises(NoSuchVersion):
        store.head_object(bucket, "other-key", v1.version_id)  # ids belong to their key


def test_tags_and_copies_by_version(store: Store, bucket: str) -> None:
    store.set_bucket_versioning(bucket, "Enabled")
    v1 = store.put_object(bucket, "k", rand(70_000, 1))
    store.put_object(bucket, "k", rand(80_000, 2))
    store.set_object_tags(bucket, "k", {"old": "yes"}, v1.version_id)
    assert store.head_object(bucket, "k", v1.version_id).tags == {"old": "yes"}
    assert store.head_object(bucket, "k").tags == {}
    restored, source = store.copy_object(bucket, "k", bucket, "k", src_version=v1.version_id)  # restore v1
    assert source.version_id == v1.version_id and restored.manifest == v1.manifest
    assert read(store, bucket, "k") == rand(70_000, 1)
    assert len(versions_of(store, bucket)) == 3
    marker = store.delete_object(bucket, "k")
    with pytest.raises(InvalidRequest):
        store.copy_object(bucket, "k", bucket, "copy", src_version=marker.version_id)
    with pytest.raises(NoSuchKey):
        store.copy_object(bucket, "k", bucket, "copy")
    assert fsck(store).ok


def test_markers_hide_keys_and_prefixes_from_object_listings(store: Store, bucket: str) -> None:
    store.set_bucket_versioning(bucket, "Enabled")
    for key in ("a/1", "a/2", "b/1", "c"):
        store.put_object(bucket, key, b"x")
    store.delete_object(bucket, "a/1")
    store.delete_object(bucket, "b/1")
    page = store.list_objects(bucket, delimiter="/")
    assert (page.prefixes, [o.key for o in page.objects]) == (["a/"], ["c"])
    assert [o.key for o in store.list_objects(bucket, max_keys=1).objects] == ["a/2"]


def test_version_listing_pages_by_key_and_version_marker(store: Store, bucket: str) -> None:
    store.set_bucket_versioning(bucket, "Enabled")
    for key in ("a", "b/x", "b/y", "c"):
        for n in range(3):
            store.put_object(bucket, key, bytes([n]))
    store.delete_object(bucket, "c")
    everything = store.list_object_versions(bucket).versions
    assert [v.key for v in everything] == ["a"] * 3 + ["b/x"] * 3 + ["b/y"] * 3 + ["c"] * 4
    seen, key_marker, version_marker = [], "", ""
    while True:
        page = store.list_object_versions(bucket, key_marker=key_marker, version_marker=version_marker, max_keys=2)
        seen += [(v.key, v.version_id) for v in page.versions]
        if not page.truncated:
            break
        key_marker, version_marker = page.next_key or "", page.next_version or ""
    assert seen == [(v.key, v.version_id) for v in everything]
    rolled = store.list_object_versions(bucket, delimiter="/")
    assert rolled.prefixes == ["b/"] and [v.key for v in rolled.versions] == ["a"] * 3 + ["c"] * 4
    after_prefix = store.list_object_versions(bucket, delimiter="/", key_marker="b/")
    assert [v.key for v in after_prefix.versions] == ["c"] * 4


def test_long_keys_keep_their_versions_apart(store: Store, bucket: str) -> None:
    store.set_bucket_versioning(bucket, "Enabled")
    stem = "s" * 600
    for suffix in ("b", "a"):
        for n in range(2):
            store.put_object(bucket, stem + suffix, suffix.encode() * (n + 1))
    listed = [(v.key[-1], v.size) for v in store.list_object_versions(bucket).versions]
    assert listed == [("a", 2), ("a", 1), ("b", 2), ("b", 1)]


def test_a_bucket_with_versions_or_markers_is_not_empty(store: Store, bucket: str) -> None:
    store.set_bucket_versioning(bucket, "Enabled")
    v1 = store.put_object(bucket, "k", b"x")
    marker = store.delete_object(bucket, "k")
    with pytest.raises(BucketNotEmpty):
        store.delete_bucket(bucket)
    store.delete_object(bucket, "k", v1.version_id)
    with pytest.raises(BucketNotEmpty):
        store.delete_bucket(bucket)  # the marker alone keeps it
    store.delete_object(bucket, "k", marker.version_id)
    store.delete_bucket(bucket)


def test_a_link_owned_key_is_purged_of_every_version(store: Store) -> None:
    store.accounts.create_user("lou")
    files = store.uploads.default_bucket("lou")
    store.set_bucket_versioning(files, "Enabled")
    with store.uploads.open("lou", "a.txt") as upload:
        upload.write(b"first")
        link = upload.commit()
    store.put_object(files, link.key, b"overwritten by S3")
    store.links.delete(link.id, "lou")
    assert store.list_object_versions(files).versions == []
    assert usage(store, "lou") == (0, 0)


# a model of S3 versioning, and random histories checked against it -----------------------------
@dataclass
class Model:
    """S3's versioning rules in a few lines: per key, versions newest first as (id, data or None)."""

    state: str = ""
    keys: dict[str, list[tuple[str, bytes | None]]] = field(default_factory=dict)

    def put(self, key: str, version_id: str, data: bytes | None) -> None:
        stack = self.keys.setdefault(key, [])
        if self.state != "Enabled":
            stack[:] = [v for v in stack if v[0] != NULL]
        stack.insert(0, (version_id, data))

    def remove(self, key: str, version_id: str) -> None:
        self.keys[key] = [v for v in self.keys.get(key, []) if v[0] != version_id]

    def listing(self) -> list[tuple[str, str, bool]]:
        return [(k, vid, data is None) for k in sorted(self.keys, key=str.encode) for vid, data in self.keys[k]]

    def usage(self) -> tuple[int, int]:
        sizes = [len(d) for stack in self.keys.values() for _, d in stack if d is not None]
        return sum(sizes), len(sizes)


OPS = st.lists(
    st.tuples(
        st.sampled_from(["put", "delete", "remove", "enable", "suspend"]),
        st.sampled_from(["a", "a/b", "b", "é"]),
        st.integers(0, 5),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_random_histories_match_the_model(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, str, int]]
) -> None:
    store = Store(tmp_path_factory.mktemp("versions") / "data", SMALL, clock=Clock())
    try:
        store.accounts.create_user("alice")
        store.create_bucket("alice", "bkt")
        model = Model()
        for op, key, n in ops:
            apply(store, model, op, key, n)
        listed = [(v.key, v.version_id, v.delete_marker) for v in store.list_object_versions("bkt").versions]
        assert listed == model.listing()
        assert usage(store) == model.usage()
        for key, stack in model.keys.items():
            for vid, data in stack:
                if data is not None:
                    assert b"".join(store.read_object(store.head_object("bkt", key, vid))) == data
        assert fsck(store).ok
    finally:
        store.close()


def apply(store: Store, model: Model, op: str, key: str, n: int) -> None:
    if op in ("enable", "suspend"):
        model.state = "Enabled" if op == "enable" else "Suspended"
        store.set_bucket_versioning("bkt", model.state)
    elif op == "put":
        data = bytes([n]) * (n * 1000 + 1)
        model.put(key, store.put_object("bkt", key, data).version_id, data)
    elif op == "delete":
        done = store.delete_object("bkt", key)
        if model.state:
            model.put(key, done.version_id or "", None)
        elif done.changed:
            model.remove(key, NULL)
    else:
        stack = model.keys.get(key, [])
        if stack:
            version_id = stack[n % len(stack)][0]
            assert store.delete_object("bkt", key, version_id).changed
            model.remove(key, version_id)


def test_rows_written_before_versions_existed_are_the_null_version(store: Store, bucket: str) -> None:
    """An object row of the previous format (no version fields) reads as the null version, and
    becomes a noncurrent version like any other when versioning is enabled."""
    import json

    from objstore import keys, versions
    from objstore.meta import WriteTxn

    store.put_object(bucket, "old", b"from an earlier release")
    record = store.get_bucket(bucket)

    def downgrade(w: WriteTxn) -> None:
        lkey = keys.encode(record.id, b"old")
        row = json.loads(w.get(versions.OBJECTS, lkey))  # type: ignore[arg-type]
        for name in ("version_id", "seq", "delete_marker", "noncurrent_since"):
            del row[name]
        w.put(versions.OBJECTS, lkey, json.dumps(row).encode())

    store.meta.transact(downgrade)
    assert store.head_object(bucket, "old").version_id == NULL
    store.set_bucket_versioning(bucket, "Enabled")
    new = store.put_object(bucket, "old", b"new")
    assert versions_of(store, bucket) == [("old", new.version_id, False, True), ("old", NULL, False, False)]
    assert b"".join(store.read_object(store.head_object(bucket, "old", NULL))) == b"from an earlier release"
    assert fsck(store).ok


def test_emptying_a_bucket_page_by_page_leaves_nothing(store: Store, bucket: str) -> None:
    """List a page, delete what it lists, go on from its markers: every version is met even when the
    marker version (a "null" one included) was deleted meanwhile, and the bucket can then go."""
    store.set_bucket_versioning(bucket, "Enabled")
    for n in range(3):
        store.put_object(bucket, "k", bytes([n]))
    store.set_bucket_versioning(bucket, "Suspended")
    store.put_object(bucket, "k", b"null")
    store.put_object(bucket, "z", b"z")
    key_marker = version_marker = ""
    for _ in range(20):
        page = store.list_object_versions(bucket, key_marker=key_marker, version_marker=version_marker, max_keys=1)
        for version in page.versions:
            store.delete_object(bucket, version.key, version.version_id)
        if not page.truncated:
            break
        key_marker, version_marker = page.next_key or "", page.next_version or ""
    leftover = store.list_object_versions(bucket).versions
    assert leftover == []
    store.delete_bucket(bucket)


def test_the_noncurrent_null_version_is_found_without_a_scan(store: Store, bucket: str) -> None:
    """Its index row follows it: made when a null version becomes noncurrent, gone when it is removed
    or becomes current again."""
    store.put_object(bucket, "k", b"null")
    store.set_bucket_versioning(bucket, "Enabled")
    v1 = store.put_object(bucket, "k", b"v1")
    assert store.meta.read(lambda r: r.count(NULLS)) == 1
    assert b"".join(store.read_object(store.head_object(bucket, "k", NULL))) == b"null"
    store.delete_object(bucket, "k", v1.version_id)  # the null version is current again
    assert store.meta.read(lambda r: r.count(NULLS)) == 0
    store.put_object(bucket, "k", b"v2")
    store.set_bucket_versioning(bucket, "Suspended")
    store.put_object(bucket, "k", b"new null")  # replaces the noncurrent null version
    assert store.meta.read(lambda r: r.count(NULLS)) == 0
    assert [v.version_id == NULL for v in store.list_object_versions(bucket).versions] == [True, False]
    assert fsck(store).ok
