"""Link lifecycle in the engine: listing pages, idle expiry, the sweep, deletion, batched statistics."""

from __future__ import annotations

import threading

import pytest
from clocks import Clock

from objstore import Store
from objstore.errors import LinkExpired, NoSuchKey, NoSuchLink
from objstore.links import DownloadStats

DAY = 86400.0


def upload(store: Store, owner: str, name: str, data: bytes, **options: object) -> str:
    with store.uploads.open(owner, name, "text/plain", len(data), **options) as up:  # type: ignore[arg-type]
        up.write(data)
        return up.commit().id


@pytest.fixture
def alice(store: Store) -> str:
    store.accounts.create_user("alice", quota=1000)
    return "alice"


def test_list_pages_newest_first(store: Store, alice: str) -> None:
    ids = [upload(store, alice, f"f{i}.txt", b"x") for i in range(7)]
    seen, before = [], None
    while True:
        page = store.links.list(alice, limit=3, before=before)
        seen += [link.id for link in page.links]
        if page.next_cursor is None:
            break
        before = page.next_cursor
    assert seen == ids[::-1]


def test_idle_links_expire_and_downloads_keep_them_alive(store: Store, alice: str, clock: Clock) -> None:
    idle, busy = upload(store, alice, "idle.txt", b"a"), upload(store, alice, "busy.txt", b"b")
    clock.advance(60 * DAY)
    store.stats.add(busy, 1, 1)
    store.stats.flush()
    clock.advance(31 * DAY)
    with pytest.raises(LinkExpired):
        store.links.resolve(idle, clock.now)
    assert store.links.resolve(busy, clock.now)[0].downloads == 1


def test_sweep_deletes_owned_objects_keeps_tombstones_and_frees_quota(store: Store, alice: str, clock: Clock) -> None:
    gone = upload(store, alice, "gone.txt", b"x" * 300, expires_in=60)
    kept = upload(store, alice, "kept.txt", b"y" * 300)
    assert store.accounts.get_user(alice).usage_bytes == 600
    clock.advance(61)
    report = store.sweep_links(clock.now)
    assert (report.links_expired, report.objects_deleted) == (1, 1)
    assert store.accounts.get_user(alice).usage_bytes == 300
    with pytest.raises(LinkExpired):  # a tombstone: still 410, never 404 or re-issued
        store.links.resolve(gone, clock.now)
    assert [link.id for link in store.links.list(alice).links] == [kept]
    assert store.sweep_links(clock.now).links_expired == 0


def test_sweep_leaves_objects_that_links_only_point_at(store: Store, alice: str, clock: Clock) -> None:
    store.create_bucket(alice, "mine")
    store.put_object("mine", "k", b"data")
    store.links.create(alice, "mine", "k", expires_in=1)
    clock.advance(2)
    assert store.sweep_links(clock.now).links_expired == 1
    assert store.head_object("mine", "k").size == 4


def test_delete_removes_link_and_object(store: Store, alice: str, clock: Clock) -> None:
    link_id = upload(store, alice, "a.txt", b"abc")
    link = store.links.get(link_id)
    store.accounts.create_user("bob")
    with pytest.raises(NoSuchLink):
        store.links.delete(link_id, "bob")
    store.links.delete(link_id, alice)
    with pytest.raises(NoSuchLink):
        store.links.get(link_id)
    with pytest.raises(NoSuchKey):
        store.head_object(link.bucket, link.key)
    assert store.accounts.get_user(alice).usage_bytes == 0


def test_delete_links_all_or_only_spent(store: Store, alice: str, clock: Clock) -> None:
    spent = upload(store, alice, "s.txt", b"1", max_downloads=1)
    live = upload(store, alice, "l.txt", b"2")
    store.links.count_download(spent)
    assert store.delete_links(alice, only_spent=True) == 1
    assert [link.id for link in store.links.list(alice).links] == [live]
    assert store.delete_links(alice, only_spent=False) == 1
    assert store.links.list(alice).links == []
    assert store.accounts.get_user(alice).usage_bytes == 0


def test_batched_stats_are_exact_across_threads_and_stores(store: Store, alice: str) -> None:
    link_id = upload(store, alice, "hot.txt", b"z" * 10)
    other = DownloadStats(store.meta, store.now)  # another worker's tally

    def serve(stats: DownloadStats) -> None:
        for _ in range(250):
            stats.add(link_id, 1, 10)
            if _ % 50 == 0:
                stats.flush()

    threads = [threading.Thread(target=serve, args=(s,)) for s in (store.stats, other) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.stats.flush()
    other.flush()
    link = store.links.get(link_id)
    user = store.accounts.get_user(alice)
    assert (link.downloads, link.bytes_served) == (2000, 20000)
    assert (user.downloads, user.bytes_served) == (2000, 20000)
    assert link.last_download is not None and user.last_download == link.last_download


def test_stats_are_flushed_when_the_store_closes(store: Store, alice: str) -> None:
    link_id = upload(store, alice, "x.txt", b"x")
    store.stats.add(link_id, 3, 3)
    store.close()
    reopened = Store(store.root, store.config, clock=store.clock)
    try:
        assert reopened.links.get(link_id).downloads == 3
    finally:
        reopened.close()


def test_revoking_a_link_that_owns_its_file_deletes_the_file(store: Store, alice: str) -> None:
    link_id = upload(store, alice, "r.txt", b"revoked")
    link = store.links.get(link_id)
    store.links.revoke(link_id, alice)
    with pytest.raises(NoSuchKey):
        store.head_object(link.bucket, link.key)
    assert store.accounts.get_user(alice).usage_bytes == 0


def test_a_removed_user_takes_their_links(store: Store, alice: str) -> None:
    link_id = upload(store, alice, "gone.txt", b"x")
    store.links.delete(link_id, alice)
    kept = upload(store, alice, "kept.txt", b"y")
    bucket = store.links.get(kept).bucket
    store.links.delete(kept, alice)
    store.create_bucket(alice, "extra")
    store.put_object("extra", "k", b"z")
    store.links.create(alice, "extra", "k")
    store.delete_object("extra", "k")
    store.delete_bucket("extra")
    store.delete_bucket(bucket)
    store.remove_user(alice)
    store.accounts.create_user(alice)
    assert store.links.list(alice).links == []


def test_a_failing_flush_keeps_the_counts_and_does_not_raise(
    store: Store, alice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from objstore.links import stats as linkstats

    link_id = upload(store, alice, "f.txt", b"f")
    monkeypatch.setattr(linkstats, "FLUSH_AT", 1)
    real_apply = store.stats._apply
    monkeypatch.setattr(store.stats, "_apply", lambda pending: (_ for _ in ()).throw(OSError("disk full")))
    store.stats.add(link_id, 1, 1)  # would flush at once, fails, keeps the count
    monkeypatch.setattr(store.stats, "_apply", real_apply)
    store.stats.flush()
    assert store.links.get(link_id).downloads == 1
