"""Lifecycle rules in the engine: AWS's expiry arithmetic, filters, aborting uploads, conditional deletes."""

from __future__ import annotations

import calendar
import threading

import pytest
from clocks import Clock
from objstore_helpers import rand, read

from objstore import Store
from objstore.errors import InvalidArgument, NoSuchKey, NoSuchUpload
from objstore.lifecycle import DAY, LifecycleRule, from_rows, next_midnight
from objstore.lifecycle_sweep import sweep_lock


def utc(*args: int) -> float:
    return float(calendar.timegm((*args, 0, 0, 0, 0)[:9]))


def keys_of(store: Store, bucket: str) -> list[str]:
    return [o.key for o in store.list_objects(bucket).objects]


def test_days_round_up_to_the_next_midnight_utc_as_aws_documents() -> None:
    # AWS's example: created 2014-01-15 10:30 UTC, Days=3 -> expires 2014-01-19 00:00 UTC.
    rule = LifecycleRule(expiration_days=3)
    assert rule.expires_at(utc(2014, 1, 15, 10, 30)) == utc(2014, 1, 19)
    assert next_midnight(utc(2014, 1, 19)) == utc(2014, 1, 19)  # a midnight stays itself


def test_rules_are_kept_on_the_bucket_and_removed(store: Store, bucket: str) -> None:
    rules = [LifecycleRule(id="logs", prefix="logs/", expiration_days=30), LifecycleRule(id="mp", abort_upload_days=7)]
    store.set_bucket_lifecycle(bucket, rules)
    assert from_rows(store.get_bucket(bucket).lifecycle) == rules
    store.set_bucket_lifecycle(bucket, None)
    assert store.get_bucket(bucket).lifecycle is None


@pytest.mark.parametrize(
    "rules",
    [
        [],
        [LifecycleRule(id="a", expiration_days=1), LifecycleRule(id="a", expiration_days=2)],
        [LifecycleRule(expiration_days=0)],
        [LifecycleRule(expiration_date=utc(2030, 1, 1) + 3600)],
        [LifecycleRule(expiration_days=1, expiration_date=utc(2030, 1, 1))],
        [LifecycleRule(abort_upload_days=1, tags={"k": "v"})],
        [LifecycleRule(id="x" * 256, expiration_days=1)],
        [LifecycleRule(prefix="nothing-to-do/")],
        [LifecycleRule(id=str(i), expiration_days=1) for i in range(1001)],
    ],
)
def test_invalid_rules_are_refused(store: Store, bucket: str, rules: list[LifecycleRule]) -> None:
    with pytest.raises(InvalidArgument):
        store.set_bucket_lifecycle(bucket, rules)
    assert store.get_bucket(bucket).lifecycle is None


def test_expiry_by_days_follows_the_clock(store: Store, bucket: str, clock: Clock) -> None:
    store.set_bucket_lifecycle(bucket, [LifecycleRule(prefix="tmp/", expiration_days=1)])
    store.put_object(bucket, "tmp/a", rand(300_000))
    store.put_object(bucket, "keep/b", b"b")
    before = store.accounts.get_user("alice")
    assert store.apply_lifecycle(clock()).objects_expired == 0
    report = store.apply_lifecycle(next_midnight(clock() + DAY))
    assert (report.objects_expired, report.bytes_expired) == (1, 300_000)
    assert keys_of(store, bucket) == ["keep/b"]
    after = store.accounts.get_user("alice")
    assert (before.usage_bytes - after.usage_bytes, before.object_count - after.object_count) == (300_000, 1)


def test_expiry_by_date_tag_and_size_filters(store: Store, bucket: str, clock: Clock) -> None:
    date = next_midnight(clock() + DAY)
    store.set_bucket_lifecycle(
        bucket,
        [
            LifecycleRule(id="tagged", tags={"temp": "yes"}, expiration_date=date),
            LifecycleRule(id="big", prefix="v/", size_greater_than=10, expiration_date=date),
        ],
    )
    store.put_object(bucket, "t1", b"x", tags={"temp": "yes", "other": "1"})
    store.put_object(bucket, "t2", b"x", tags={"temp": "no"})
    store.put_object(bucket, "v/small", b"x" * 10)
    store.put_object(bucket, "v/large", b"x" * 11)
    assert store.apply_lifecycle(date - 1).objects_expired == 0
    assert store.apply_lifecycle(date).objects_expired == 2
    assert keys_of(store, bucket) == ["t2", "v/small"]


def test_disabled_rules_do_nothing(store: Store, bucket: str, clock: Clock) -> None:
    store.set_bucket_lifecycle(bucket, [LifecycleRule(enabled=False, expiration_days=1, abort_upload_days=1)])
    store.put_object(bucket, "a", b"a")
    store.multipart.create_upload(bucket, "u")
    report = store.apply_lifecycle(clock() + 10 * DAY)
    assert (report.objects_expired, report.lifecycle_uploads_aborted) == (0, 0)


def test_many_objects_are_expired_across_batches(
    store: Store, bucket: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("objstore.lifecycle_sweep.BATCH", 7)
    for i in range(30):
        store.put_object(bucket, f"p/{i:02}", b"x")
    store.put_object(bucket, "q", b"x")
    store.set_bucket_lifecycle(bucket, [LifecycleRule(prefix="p/", expiration_days=1)])
    assert store.apply_lifecycle(clock() + 2 * DAY).objects_expired == 30
    assert keys_of(store, bucket) == ["q"]


def test_a_replaced_object_is_not_expired_by_a_stale_judgement(store: Store, bucket: str, clock: Clock) -> None:
    """The delete is conditional on the row the sweep judged: a newer upload of the key survives."""
    rule = LifecycleRule(expiration_days=1)
    old = store.put_object(bucket, "k", b"old")
    clock.advance(3 * DAY)
    store.put_object(bucket, "k", b"new")
    assert rule.is_expired(old, clock())
    assert not store.delete_object(bucket, "k", only_if=lambda cur: cur.manifest == old.manifest).changed
    assert store.head_object(bucket, "k").size == 3
    assert store.delete_object(bucket, "k", only_if=lambda cur: True).changed
    with pytest.raises(NoSuchKey):
        store.head_object(bucket, "k")


def test_stale_uploads_are_aborted_and_their_quota_freed(store: Store, bucket: str, clock: Clock) -> None:
    store.set_bucket_lifecycle(bucket, [LifecycleRule(prefix="big/", abort_upload_days=2)])
    stale = store.multipart.create_upload(bucket, "big/file")
    other = store.multipart.create_upload(bucket, "small/file")
    with store.multipart.open_part_writer(stale.upload_id, 1) as part:
        part.write(rand(200_000))
        part.commit()
    assert store.accounts.get_user("alice").usage_bytes == 200_000
    assert store.apply_lifecycle(clock() + DAY).lifecycle_uploads_aborted == 0
    assert store.apply_lifecycle(next_midnight(clock() + 2 * DAY)).lifecycle_uploads_aborted == 1
    with pytest.raises(NoSuchUpload):
        store.multipart.get_upload(stale.upload_id)
    assert store.multipart.get_upload(other.upload_id).key == "small/file"
    assert store.accounts.get_user("alice").usage_bytes == 0


def test_stop_ends_the_sweep_between_batches(
    store: Store, bucket: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("objstore.lifecycle_sweep.BATCH", 5)
    for i in range(20):
        store.put_object(bucket, f"k{i:02}", b"x")
    store.set_bucket_lifecycle(bucket, [LifecycleRule(expiration_days=1)])
    answers = iter([False] + [True] * 10)  # asked before the bucket, then after each batch
    assert store.apply_lifecycle(clock() + 2 * DAY, stop=lambda: next(answers)).objects_expired == 5
    assert store.apply_lifecycle(clock() + 2 * DAY).objects_expired == 15


def test_a_second_sweep_finds_nothing_left(store: Store, bucket: str, clock: Clock) -> None:
    store.set_bucket_lifecycle(bucket, [LifecycleRule(expiration_days=1, abort_upload_days=1)])
    store.put_object(bucket, "a", rand(100_000))
    store.multipart.create_upload(bucket, "u")
    first = store.apply_lifecycle(clock() + 3 * DAY)
    second = store.apply_lifecycle(clock() + 3 * DAY)
    assert (first.objects_expired, first.lifecycle_uploads_aborted) == (1, 1)
    assert (second.objects_expired, second.lifecycle_uploads_aborted) == (0, 0)


def test_sweep_lock_admits_one_holder(store: Store) -> None:
    held = threading.Event()
    release = threading.Event()
    seen: list[bool] = []

    def holder() -> None:
        with sweep_lock(store.root) as mine:
            seen.append(mine)
            held.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    with sweep_lock(store.root) as second:
        seen.append(second)
    release.set()
    t.join()
    with sweep_lock(store.root) as again:
        seen.append(again)
    assert seen == [True, False, True]


def test_noncurrent_versions_expire_from_when_they_became_noncurrent(store: Store, bucket: str, clock: Clock) -> None:
    """NoncurrentDays counts from the moment a newer version replaced it (rounded up to midnight),
    not from its creation; NewerNoncurrentVersions keeps the newest ones whatever their age."""
    store.set_bucket_versioning(bucket, "Enabled")
    store.set_bucket_lifecycle(bucket, [LifecycleRule(noncurrent_days=2, newer_noncurrent=1)])
    store.put_object(bucket, "k", b"v1")
    clock.advance(10 * DAY)
    store.put_object(bucket, "k", b"v2")  # v1 noncurrent from now
    store.put_object(bucket, "k", b"v3")  # v2 noncurrent from now, and the newest noncurrent one
    assert store.apply_lifecycle(next_midnight(clock() + DAY)).noncurrent_versions_expired == 0
    report = store.apply_lifecycle(next_midnight(clock() + 2 * DAY))
    assert report.noncurrent_versions_expired == 1
    assert [v.size for v in store.list_object_versions(bucket).versions] == [2, 2]
    assert store.accounts.get_user("alice").usage_bytes == 4


def test_expiry_in_a_versioned_bucket_adds_a_marker_and_markers_alone_expire(
    store: Store, bucket: str, clock: Clock
) -> None:
    store.set_bucket_versioning(bucket, "Enabled")
    store.set_bucket_lifecycle(
        bucket, [LifecycleRule(id="x", expiration_days=1), LifecycleRule(id="m", expired_object_delete_marker=True)]
    )
    store.put_object(bucket, "k", b"data")
    report = store.apply_lifecycle(next_midnight(clock() + DAY))
    assert (report.objects_expired, report.delete_markers_expired) == (1, 0)  # the version below keeps the marker
    assert [v.delete_marker for v in store.list_object_versions(bucket).versions] == [True, False]
    version = store.list_object_versions(bucket).versions[1]
    store.delete_object(bucket, "k", version.version_id)
    assert store.apply_lifecycle(next_midnight(clock() + DAY)).delete_markers_expired == 1
    assert store.list_object_versions(bucket).versions == []


def racing_sweep(monkeypatch: pytest.MonkeyPatch, meanwhile: object) -> None:
    """Make the noncurrent sweep's scan run `meanwhile()` (a user's request) before it acts."""
    from objstore import lifecycle_sweep

    real = lifecycle_sweep._noncurrent_batches

    def scanned_then_raced(objects: object, bucket: object) -> object:
        for batch in real(objects, bucket):  # type: ignore[arg-type]
            meanwhile()  # type: ignore[operator]
            yield batch

    monkeypatch.setattr(lifecycle_sweep, "_noncurrent_batches", scanned_then_raced)


def test_a_version_restored_while_the_sweep_runs_is_kept(
    store: Store, bucket: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan saw the version noncurrent; the user undeleted it before the sweep acted: it stays."""
    store.set_bucket_versioning(bucket, "Enabled")
    store.set_bucket_lifecycle(bucket, [LifecycleRule(noncurrent_days=30)])
    store.put_object(bucket, "report.pdf", b"precious")
    marker = store.delete_object(bucket, "report.pdf")
    clock.advance(31 * DAY)
    racing_sweep(monkeypatch, lambda: store.delete_object(bucket, "report.pdf", marker.version_id))
    assert store.apply_lifecycle(clock()).noncurrent_versions_expired == 0
    assert read(store, bucket, "report.pdf") == b"precious"


def test_newer_noncurrent_versions_are_counted_again_when_the_sweep_acts(
    store: Store, bucket: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep one noncurrent version: the scan ranks v1 second and would remove it, but the user removed
    v2 meanwhile, so v1 is now the newest noncurrent version and is kept."""
    store.set_bucket_versioning(bucket, "Enabled")
    store.set_bucket_lifecycle(bucket, [LifecycleRule(noncurrent_days=1, newer_noncurrent=1)])
    store.put_object(bucket, "k", b"v1")
    v2 = store.put_object(bucket, "k", b"v2")
    store.put_object(bucket, "k", b"v3")
    clock.advance(10 * DAY)
    racing_sweep(monkeypatch, lambda: store.delete_object(bucket, "k", v2.version_id))
    assert store.apply_lifecycle(clock()).noncurrent_versions_expired == 0
    assert [v.size for v in store.list_object_versions(bucket).versions] == [2, 2]


def test_expiration_days_also_removes_lone_delete_markers(store: Store, bucket: str, clock: Clock) -> None:
    """As AWS: with Days set, a delete marker left with no version below it goes when old enough."""
    store.set_bucket_versioning(bucket, "Enabled")
    store.set_bucket_lifecycle(bucket, [LifecycleRule(expiration_days=1, noncurrent_days=1)])
    store.put_object(bucket, "k", b"data")
    store.delete_object(bucket, "k")
    young = store.apply_lifecycle(clock())
    assert (young.noncurrent_versions_expired, young.delete_markers_expired) == (0, 0)
    later = store.apply_lifecycle(next_midnight(clock() + 2 * DAY))
    assert (later.noncurrent_versions_expired, later.delete_markers_expired) == (1, 1)
    assert store.list_object_versions(bucket).versions == []
    store.delete_bucket(bucket)
