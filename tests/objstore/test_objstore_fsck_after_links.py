"""Every path added for short links, resumable uploads and reservations, then `fsck`: the counts the
engine keeps as it goes must be the counts fsck recounts from the rows."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest
from clocks import Clock
from objstore_helpers import rand, resumables_with

from objstore import Store
from objstore.errors import LinkExpired, NoSuchKey, NoSuchUpload, QuotaExceeded
from objstore.links import Resumables
from objstore.links.resumable import DONE, LEASE_SECONDS, RECEIVING, UploadBusy, charged_bytes
from objstore.maintenance import collect_garbage, fsck

DAY = 86400.0
PART = 64 * 1024  # min_part_size, scaled down with the test chunk sizes


def upload(store: Store, owner: str, name: str, data: bytes, **options: object) -> str:
    with store.uploads.open(owner, name, "text/plain", len(data), **options) as up:  # type: ignore[arg-type]
        up.write(data)
        return up.commit().id


def tus(resumables: Resumables, owner: str, data: bytes, length: int | None = None) -> str:
    row = resumables.create(owner, len(data) if length is None else length, "t.bin")
    appender = resumables.open_append(owner, row.id, 0)
    try:
        appender.write(data)
    finally:
        appender.close()
    return row.id


def accounted(store: Store, owner: str) -> tuple[int, int]:
    """(bytes, objects) an owner holds as the rows say: live objects, pending parts, receiving tus uploads."""
    objects = [o for b in store.list_buckets(owner) for o in store.list_objects(b.name, max_keys=100_000).objects]
    parts = sum(
        p.size
        for u in store.multipart.list_uploads()
        if u.owner == owner
        for p in store.multipart.list_parts(u.upload_id)
    )
    pending = store.meta.read(charged_bytes)[owner]
    return sum(o.size for o in objects) + parts + pending, len(objects)


def assert_consistent(store: Store, *owners: str) -> None:
    report = fsck(store)
    assert report.problems == []
    for owner in owners:
        user = store.accounts.get_user(owner)
        assert (user.usage_bytes, user.object_count) == accounted(store, owner)
        assert store.admission.held(owner) == 0


def test_fsck_agrees_after_every_link_and_upload_path(store: Store, clock: Clock) -> None:
    store.accounts.create_user("erin", quota=3_000_000, max_object_size=1_000_000)
    store.accounts.create_user("fred", quota=1_000_000)
    store.create_bucket("erin", "erins")
    resumables = resumables_with(store, lock_wait=0)

    # REST/WebSocket-style uploads: a link and the object it owns, in one commit.
    upload(store, "erin", "timed.txt", rand(50_000, 1), expires_in=3 * DAY)
    burn = upload(store, "erin", "burn.txt", b"b" * 3000, max_downloads=1)
    plain = upload(store, "erin", "plain.txt", rand(200_000, 2))
    overwritten = upload(store, "erin", "over.txt", b"o" * 100, expires_in=3 * DAY)
    doomed = upload(store, "erin", "doomed.txt", rand(70_000, 3))
    revoked = upload(store, "erin", "revoked.txt", b"r" * 10)
    assert_consistent(store, "erin")

    # A link to an S3 object it does not own; a failed link upload leaves nothing.
    store.put_object("erins", "shared", rand(30_000, 4))
    store.links.create("erin", "erins", "shared", expires_in=3 * DAY)
    with store.uploads.open("erin", "dropped.bin", None, 500) as up:
        up.write(b"d" * 100)  # closed without commit
    assert_consistent(store, "erin")

    # Downloads: exact for budgeted links, batched for the rest (a failed flush keeps its counts once).
    store.links.count_download(burn, 3000)
    store.stats.add(plain, 1, 200_000)
    real_transact = store.meta.transact
    store.meta.transact = lambda fn: (_ for _ in ()).throw(OSError("disk full"))  # type: ignore[method-assign]
    with pytest.raises(OSError):
        store.stats.flush()
    store.meta.transact = real_transact  # type: ignore[method-assign]
    store.stats.flush()
    assert store.links.get(plain).downloads == 1

    # S3 overwrites the file a link owns: the link follows the key, and so does its expiry.
    link = store.links.get(overwritten)
    store.put_object(link.bucket, link.key, b"O" * 400)

    # Resumable uploads: one expires, one is terminated, one finishes, one stays pending.
    expiring = tus(resumables, "erin", b"e" * 10, length=40_000)
    clock.advance(2 * DAY)
    assert collect_garbage(store).resumable_uploads_expired == 1
    terminated = tus(resumables, "erin", b"t" * 10, length=20_000)
    resumables.terminate("erin", terminated)
    finished = tus(resumables, "erin", rand(120_000, 5))
    assert resumables.finish("erin", finished).state == DONE
    pending = tus(resumables, "erin", b"p" * 1000, length=90_000)
    assert {expiring, terminated} & {finished, pending} == set()
    assert_consistent(store, "erin")

    # Multipart with reservations: one completed, one left pending with a part.
    done_mp = store.multipart.create_upload("erins", "mp")
    etags = []
    for number, data in ((1, rand(PART, 6)), (2, rand(1000, 7))):
        with store.multipart.open_part_writer(done_mp.upload_id, number, (), len(data)) as part:
            part.write(data)
            etags.append((number, part.commit().etag))
    store.multipart.complete_upload(done_mp.upload_id, etags, min_part_size=PART)
    open_mp = store.multipart.create_upload("erins", "mp-pending")
    with store.multipart.open_part_writer(open_mp.upload_id, 1, (), 5000) as part:
        part.write(b"m" * 5000)
        part.commit()
    assert_consistent(store, "erin")

    # Object-count quota: the next new object is refused, by every path, leaving nothing behind.
    count = store.accounts.get_user("erin").object_count
    store.accounts.set_limits("erin", max_objects=count)
    with pytest.raises(QuotaExceeded):
        store.put_object("erins", "one-too-many", b"x")
    with pytest.raises(QuotaExceeded):
        upload(store, "erin", "one-too-many.txt", b"x")
    with pytest.raises(QuotaExceeded):
        resumables.create("erin", 10)
    store.put_object("erins", "shared", b"replacing adds no object")
    store.accounts.set_limits("erin", max_objects=0)
    assert_consistent(store, "erin")

    # Delete, revoke, sweep, delete_links.
    store.links.delete(doomed, "erin")
    store.links.revoke(revoked, "erin")
    assert store.delete_links("erin", only_spent=True) == 1  # burn: out of downloads
    clock.advance(DAY)
    report = store.sweep_links(clock.now)
    assert report.links_expired == 3 and report.objects_deleted == 2  # timed, overwritten; pointer keeps "shared"
    with pytest.raises(LinkExpired):
        store.links.resolve(overwritten, clock.now)
    with pytest.raises(NoSuchKey):
        store.head_object(link.bucket, link.key)  # the S3 overwrite went with the link
    store.head_object("erins", "shared")
    assert_consistent(store, "erin")

    # Another user's links, all deleted at once.
    for i in range(5):
        upload(store, "fred", f"f{i}.txt", rand(10_000, 10 + i))
    assert store.delete_links("fred", only_spent=False) == 5
    assert store.accounts.get_user("fred").usage_bytes == 0

    # GC after the grace period: the pending tus upload expires (its charge goes back), fsck agrees.
    clock.advance(2 * 3600)
    assert collect_garbage(store).resumable_uploads_expired == 2  # pending, and the finished one's row
    assert_consistent(store, "erin", "fred")
    with pytest.raises(NoSuchUpload):
        resumables.get("erin", pending)


def test_a_kill_during_a_resumable_finish_keeps_it_charged(store: Store, clock: Clock) -> None:
    """A process killed while finishing (just before the commit) leaves the upload charged, and its
    room its own: the next finish, once the dead process's lease ran out, completes it."""
    store.accounts.create_user("gina", quota=500_000)
    resumables = resumables_with(store, lock_wait=0)
    upload_id = tus(resumables, "gina", rand(100_000, 20))
    code = (
        "import os, pickle, sys; from objstore import Store; "
        "s = Store(sys.argv[1], pickle.loads(bytes.fromhex(sys.argv[4])), clock=lambda: float(sys.argv[3])); "
        "s.links.add = lambda *a, **k: os._exit(9); "
        "s.resumables.finish('gina', sys.argv[2])"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    config = pickle.dumps(store.config).hex()  # the same metadata and chunk stores: its segments are there
    killed = subprocess.run(
        [sys.executable, "-c", code, str(store.root), upload_id, str(store.clock()), config],
        env=env,
        check=False,
    )
    assert killed.returncode == 9
    assert resumables.get("gina", upload_id).state == RECEIVING
    assert_consistent(store, "gina")
    store.create_bucket("gina", "ginas")
    with pytest.raises(QuotaExceeded):
        store.put_object("ginas", "big", b"x" * 400_001)  # the upload's 100,000 bytes are still held
    with pytest.raises(UploadBusy):
        resumables.finish("gina", upload_id)  # the killed process still holds it, for one lease
    clock.advance(LEASE_SECONDS + 1)
    assert resumables.finish("gina", upload_id).state == DONE
    assert_consistent(store, "gina")
