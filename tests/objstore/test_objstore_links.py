"""Short links in the engine (`objstore.links`): ids, ownership, expiry, download budgets, revocation."""

from __future__ import annotations

import threading

import pytest
from clocks import Clock

from objstore import Store
from objstore.errors import InvalidArgument, LinkExpired, NoSuchBucket, NoSuchKey, NoSuchLink
from objstore.links import links
from objstore.records import LinkRecord


@pytest.fixture
def obj(store: Store, bucket: str) -> str:
    store.put_object(bucket, "cat.jpg", b"meow", content_type="image/jpeg")
    return "cat.jpg"


def test_create_gives_an_unambiguous_id_and_a_persisted_record(
    store: Store, bucket: str, obj: str, clock: Clock
) -> None:
    link = store.links.create("alice", bucket, obj)
    assert len(link.id) == links.ID_LENGTH and set(link.id) <= set(links.ALPHABET)
    assert not set("01ilo") & set(links.ALPHABET)
    assert (link.owner, link.bucket, link.key, link.created) == ("alice", bucket, obj, clock.now)
    assert (link.expires_at, link.max_downloads, link.downloads, link.revoked) == (None, None, 0, False)
    assert store.links.get(link.id) == link
    assert LinkRecord.decode(link.encode()) == link


def test_ids_are_distinct(store: Store, bucket: str, obj: str) -> None:
    ids = {store.links.create("alice", bucket, obj).id for _ in range(50)}
    assert len(ids) == 50


def test_id_collision_is_retried(store: Store, bucket: str, obj: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = store.links.create("alice", bucket, obj)
    proposals = iter([first.id, first.id, "zzzzzzzz"])
    monkeypatch.setattr(links, "new_link_id", lambda length: next(proposals))
    assert store.links.create("alice", bucket, obj).id == "zzzzzzzz"


def test_create_needs_an_existing_object_in_an_owned_bucket(store: Store, bucket: str, obj: str) -> None:
    store.accounts.create_user("bob")
    store.create_bucket("bob", "bobs")
    store.put_object("bobs", "b.txt", b"b")
    with pytest.raises(NoSuchKey):
        store.links.create("alice", bucket, "missing")
    with pytest.raises(NoSuchBucket):
        store.links.create("alice", "nope-bucket", obj)
    with pytest.raises(NoSuchBucket):
        store.links.create("alice", "bobs", "b.txt")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"expires_in": 0},
        {"expires_in": -5},
        {"expires_in": float("inf")},
        {"expires_in": float("nan")},
        {"expires_in": 1e308},
        {"max_downloads": 0},
        {"max_downloads": True},
    ],
)
def test_create_rejects_bad_limits(store: Store, bucket: str, obj: str, kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidArgument):
        store.links.create("alice", bucket, obj, **kwargs)  # type: ignore[arg-type]


def test_resolve_returns_the_current_object(store: Store, bucket: str, obj: str, clock: Clock) -> None:
    link = store.links.create("alice", bucket, obj)
    _, record = store.links.resolve(link.id, clock.now)
    assert (record.key, record.size) == (obj, 4)
    store.put_object(bucket, obj, b"purr!")
    assert store.links.resolve(link.id, clock.now)[1].size == 5


def test_resolve_unknown_or_revoked_is_no_such_link(store: Store, bucket: str, obj: str, clock: Clock) -> None:
    with pytest.raises(NoSuchLink):
        store.links.resolve("23456789", clock.now)
    link = store.links.create("alice", bucket, obj)
    store.links.revoke(link.id, "alice")
    with pytest.raises(NoSuchLink):
        store.links.resolve(link.id, clock.now)
    with pytest.raises(NoSuchLink):
        store.links.get(link.id)
    with pytest.raises(NoSuchLink):
        store.links.revoke(link.id, "alice")


def test_expiry(store: Store, bucket: str, obj: str, clock: Clock) -> None:
    link = store.links.create("alice", bucket, obj, expires_in=60)
    assert link.expires_at == clock.now + 60
    store.links.resolve(link.id, clock.now + 59.9)
    with pytest.raises(LinkExpired):
        store.links.resolve(link.id, clock.now + 60)


def test_download_budget_is_exact(store: Store, bucket: str, obj: str, clock: Clock) -> None:
    link = store.links.create("alice", bucket, obj, max_downloads=2)
    assert store.links.count_download(link.id).downloads == 1
    store.links.resolve(link.id, clock.now)
    assert store.links.count_download(link.id).downloads == 2
    with pytest.raises(LinkExpired):
        store.links.resolve(link.id, clock.now)
    with pytest.raises(LinkExpired):
        store.links.count_download(link.id)
    assert store.links.get(link.id).downloads == 2


def test_concurrent_downloads_are_all_counted(store: Store, bucket: str, obj: str) -> None:
    link = store.links.create("alice", bucket, obj, max_downloads=25)
    spent: list[LinkExpired] = []

    def download() -> None:
        for _ in range(5):
            try:
                store.links.count_download(link.id)
            except LinkExpired as exc:
                spent.append(exc)

    threads = [threading.Thread(target=download) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.links.get(link.id).downloads == 25
    assert len(spent) == 40 - 25


def test_deleted_object_or_bucket_is_no_such_key(store: Store, bucket: str, obj: str, clock: Clock) -> None:
    link = store.links.create("alice", bucket, obj)
    store.delete_object(bucket, obj)
    with pytest.raises(NoSuchKey):
        store.links.resolve(link.id, clock.now)
    store.delete_bucket(bucket)
    with pytest.raises(NoSuchKey):
        store.links.resolve(link.id, clock.now)


def test_bucket_recreated_by_another_owner_is_not_served(store: Store, bucket: str, obj: str, clock: Clock) -> None:
    link = store.links.create("alice", bucket, obj)
    store.delete_object(bucket, obj)
    store.delete_bucket(bucket)
    store.accounts.create_user("mallory")
    store.create_bucket("mallory", bucket)
    store.put_object(bucket, obj, b"not alice's")
    with pytest.raises(NoSuchKey):
        store.links.resolve(link.id, clock.now)


def test_revoke_and_list_are_per_owner(store: Store, bucket: str, obj: str) -> None:
    store.accounts.create_user("bob")
    first = store.links.create("alice", bucket, obj)
    second = store.links.create("alice", bucket, obj)
    with pytest.raises(NoSuchLink):
        store.links.revoke(first.id, "bob")
    assert [x.id for x in store.links.list("alice").links] == [second.id, first.id]  # newest first
    assert store.links.list("bob").links == []
    assert store.links.revoke(first.id, "alice").revoked
    assert [x.id for x in store.links.list("alice").links] == [second.id]


def test_links_survive_reopening(store: Store, bucket: str, obj: str, tmp_path: object) -> None:
    link = store.links.create("alice", bucket, obj, max_downloads=3)
    store.links.count_download(link.id)
    store.close()
    reopened = Store(store.root, store.config)
    try:
        assert reopened.links.get(link.id).downloads == 1
    finally:
        reopened.close()
