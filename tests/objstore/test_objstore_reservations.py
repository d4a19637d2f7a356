"""Quota reservations and uploads for links: refused before data is kept, released on every path."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from objstore import Store, leases, liveness, reservations
from objstore.errors import EntityTooLarge, QuotaExceeded
from objstore.links.uploads import safe_name
from objstore.meta import WriteTxn


@pytest.fixture
def carol(store: Store) -> str:
    store.accounts.create_user("carol", quota=1000, max_object_size=600)
    store.create_bucket("carol", "carols")
    return "carol"


def test_declared_sizes_are_held_until_the_writer_closes(store: Store, carol: str) -> None:
    first = store.open_writer("carols", "a", size_hint=600)
    with pytest.raises(QuotaExceeded):
        store.open_writer("carols", "b", size_hint=500)  # 600 held + 500 > 1000: refused up front
    assert store.admission.held(carol) == 600
    first.write(b"x" * 600)
    first.commit()
    assert store.admission.held(carol) == 0
    assert store.accounts.get_user(carol).usage_bytes == 600
    with pytest.raises(QuotaExceeded):
        store.open_writer("carols", "b", size_hint=500)
    store.open_writer("carols", "b", size_hint=400).close()
    assert store.admission.held(carol) == 0


def test_overwrite_counts_the_bytes_it_frees(store: Store, carol: str) -> None:
    store.put_object("carols", "a", b"x" * 600)
    with store.open_writer("carols", "a", size_hint=600) as w:
        w.write(b"y" * 600)
        w.commit()
    assert store.accounts.get_user(carol).usage_bytes == 600


def test_size_limit_refuses_before_any_byte(store: Store, carol: str) -> None:
    with pytest.raises(EntityTooLarge):
        store.open_writer("carols", "big", size_hint=601)
    assert store.admission.held(carol) == 0


def test_parts_reserve_too(store: Store, carol: str) -> None:
    upload = store.multipart.create_upload("carols", "mp")
    part = store.multipart.open_part_writer(upload.upload_id, 1, (), 500)
    with pytest.raises(QuotaExceeded):
        store.multipart.open_part_writer(upload.upload_id, 2, (), 501)
    part.close()
    assert store.admission.held(carol) == 0


def test_reservations_of_dead_processes_are_dropped(store: Store, carol: str) -> None:
    code = (
        "import os, sys; from objstore import Store, StoreConfig; "
        "s = Store(sys.argv[1], StoreConfig(metadata_url=sys.argv[2])); "
        "s.open_writer('carols', 'a', size_hint=550); os._exit(0)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code, str(store.root), store.config.metadata_url], check=True, env=env)
    assert store.admission.held(carol) == 0  # the process that held 550 bytes is gone
    store.open_writer("carols", "b", size_hint=550).close()


def test_link_upload_lands_in_the_default_bucket_with_its_link(store: Store, carol: str) -> None:
    with store.uploads.open(carol, "../../etc/pass\x00wd", "text/plain", 5) as up:
        up.write(b"hello")
        link = up.commit()
    assert link.name == "passwd" and link.owns_object
    assert link.bucket == store.uploads.default_bucket(carol) == "carol-files"
    assert link.key == f"{link.id}/passwd"
    assert b"".join(store.read_object(store.head_object(link.bucket, link.key))) == b"hello"
    user = store.accounts.get_user(carol)
    assert (user.uploads, user.usage_bytes) == (1, 5)


def test_failed_link_upload_leaves_no_link_and_no_reservation(store: Store, carol: str) -> None:
    with store.uploads.open(carol, "a.bin", None, 10) as up:
        up.write(b"x" * 10)
    assert store.links.list(carol).links == []
    assert store.admission.held(carol) == 0
    with pytest.raises(EntityTooLarge):
        store.uploads.open(carol, "b.bin", None, 601)


@pytest.mark.parametrize(
    ("given", "kept"),
    [("a.txt", "a.txt"), ("C:\\x\\y.png", "y.png"), ("", "file"), ("..", "file"), ("é" * 200, "é" * 127)],
)
def test_safe_name(given: str, kept: str) -> None:
    assert safe_name(given) == kept


def test_object_count_quota(store: Store, carol: str) -> None:
    store.accounts.set_limits(carol, max_objects=2)
    store.put_object("carols", "a", b"1")
    store.put_object("carols", "b", b"2")
    store.put_object("carols", "a", b"3")  # replacing adds no object
    with pytest.raises(QuotaExceeded):
        store.put_object("carols", "c", b"4")
    store.delete_object("carols", "a")
    store.put_object("carols", "c", b"4")


def test_a_writer_that_fails_to_open_releases_its_reservation(
    store: Store, carol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("objstore.objects.ContentWriter", no_space)  # the step after the reservation
    monkeypatch.setattr("objstore.multipart.ContentWriter", no_space)
    upload = store.multipart.create_upload("carols", "mp")
    for opening in (
        lambda: store.open_writer("carols", "a", size_hint=500),
        lambda: store.multipart.open_part_writer(upload.upload_id, 1, (), 500),
    ):
        with pytest.raises(OSError):
            opening()
        assert store.admission.held(carol) == 0  # not held until the process exits


def test_concurrent_first_uploads_share_one_default_bucket(store: Store, carol: str) -> None:
    store.accounts.create_user("mallory")
    store.create_bucket("mallory", "carol-files")  # the obvious name is taken: random suffixes
    start, found = threading.Barrier(8), []

    def first_upload() -> None:
        start.wait()
        found.append(store.uploads.default_bucket(carol))

    threads = [threading.Thread(target=first_upload) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(found)) == 1
    assert sorted(b.name for b in store.list_buckets(carol)) == sorted(["carols", found[0]])


@pytest.mark.shared_state
def test_a_reservation_on_another_node_counts_here(store: Store, carol: str, tmp_path: Path) -> None:
    """Two engines over one PostgreSQL are two nodes: what one reserves, the other counts."""
    other = Store(tmp_path / "other", store.config)
    try:
        held = other.open_writer("carols", "a", size_hint=600)
        with pytest.raises(QuotaExceeded):
            store.open_writer("carols", "b", size_hint=500)
        held.close()
        store.open_writer("carols", "b", size_hint=500).close()
    finally:
        other.close()


@pytest.mark.shared_state
def test_reservations_of_a_node_whose_lease_ran_out_are_dropped(store: Store, carol: str) -> None:
    """A process of another machine cannot be checked by pid: its reservations count while its lease
    is in the future, and go once it has run out (a dead node renews nothing)."""
    volatile = store.shared_volatile
    assert volatile is not None
    foreign = "0123456789abcdef/4242:777"
    now = time.time()

    def other_node(until: float) -> Callable[[WriteTxn], None]:
        def write(w: WriteTxn) -> None:
            w.put(reservations.TABLE, b"carol\0rid-1", f"700 {foreign}".encode())
            w.put(leases.TABLE, foreign.encode(), repr(until).encode())

        return write

    volatile.transact(other_node(now + 60))
    assert store.admission.held(carol) == 700
    with pytest.raises(QuotaExceeded):
        store.open_writer("carols", "a", size_hint=400)
    volatile.transact(other_node(now - 1))
    assert store.admission.held(carol) == 0
    assert volatile.read(lambda r: r.get(reservations.TABLE, b"carol\0rid-1")) is None
    store.open_writer("carols", "a", size_hint=400).close()
    volatile.transact(lambda w: leases.sweep(w, time.time()))  # what the renewing thread does
    assert volatile.read(lambda r: r.get(leases.TABLE, foreign.encode())) is None


@pytest.mark.shared_state
def test_a_process_renews_its_lease_while_it_holds_reservations(
    store: Store, carol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    volatile = store.shared_volatile
    assert volatile is not None
    monkeypatch.setattr("objstore.leases.RENEW_EVERY", 0.05)
    mine = liveness.process_tag().encode()
    writer = store.open_writer("carols", "a", size_hint=100)
    first = float(volatile.read(lambda r: r.get(leases.TABLE, mine)) or 0)
    deadline = time.monotonic() + 10
    while float(volatile.read(lambda r: r.get(leases.TABLE, mine)) or 0) <= first:
        assert time.monotonic() < deadline, "the lease was not renewed"
        time.sleep(0.05)
    writer.close()
