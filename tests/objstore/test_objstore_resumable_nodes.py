"""tus uploads any node can resume: two engines ("nodes", data dirs of their own) over one PostgreSQL
and one SeaweedFS. An upload written on one is resumed and finished on the other; one writer per
upload across them (a lease that runs out when its holder stalls or dies); GC with a zero grace
period run by the other node while an upload is half done takes none of its bytes; a terminated or
expired upload leaves fsck clean and its chunks to GC."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clocks import Clock
from objstore_helpers import SMALL, rand, resumables_with
from test_objstore_resumable import append, read_link

from objstore import Store, refcount
from objstore.links import Resumables
from objstore.links.resumable import LEASE_SECONDS, Appender, UploadBusy
from objstore.maintenance import collect_garbage, fsck

DATA = rand(600_000, seed=11)  # a few dozen chunks of SMALL's sizes
HALF = 250_001


@pytest.fixture
def nodes(tmp_path: Path, pg_database: str, swfs_chunks: Any) -> Iterator[tuple[Store, Store]]:
    config = dataclasses.replace(SMALL, metadata_url=pg_database, chunk_store=swfs_chunks, gc_grace_seconds=0.0)
    clock = Clock(ahead=60)  # one time for both, moved on by the tests
    one, two = Store(tmp_path / "one", config, clock=clock), Store(tmp_path / "two", config, clock=clock)
    one.accounts.create_user("carol", quota=10_000_000)
    yield one, two
    one.close()
    two.close()


def tus(store: Store) -> Resumables:
    return resumables_with(store, lock_wait=0)


def orphans(store: Store) -> set[bytes]:
    """Chunks in the chunk store that no row knows of."""
    stored = {digest for found, _, _ in store.chunks.iterate() for digest, _ in found}
    return store.meta.read(lambda r: {digest for digest in stored if refcount.get(r, digest) is None})


def test_an_upload_begun_on_one_node_is_resumed_and_finished_on_the_other(nodes: tuple[Store, Store]) -> None:
    one, two = nodes
    row = tus(one).create("carol", len(DATA), "film.bin")
    assert append(tus(one), row.id, 0, DATA[:HALF]) == HALF
    assert tus(two).get("carol", row.id).offset == HALF  # a HEAD on the other node
    assert append(tus(two), row.id, HALF, DATA[HALF:]) == len(DATA)
    done = tus(two).finish("carol", row.id)
    assert read_link(one, done.link) == DATA and read_link(two, done.link) == DATA
    assert tus(one).finish("carol", row.id) == done  # a retry on the first node learns the same link
    assert one.accounts.get_user("carol").usage_bytes == len(DATA)
    collect_garbage(two)
    assert read_link(one, done.link) == DATA
    report = fsck(one)
    assert report.ok, report.problems


def test_one_writer_across_nodes_until_its_lease_runs_out(nodes: tuple[Store, Store]) -> None:
    one, two = nodes
    row = tus(one).create("carol", len(DATA))
    stalled = tus(one).open_append("carol", row.id, 0)
    stalled.write(DATA[:100_000])
    with pytest.raises(UploadBusy):
        tus(two).open_append("carol", row.id, 0)
    with pytest.raises(UploadBusy):
        tus(two).terminate("carol", row.id)
    assert isinstance(two.clock, Clock)
    two.clock.advance(LEASE_SECONDS + 1)  # the first node's request stalled (or the node died)
    assert append(tus(two), row.id, 0, DATA[:HALF]) == HALF
    with pytest.raises(UploadBusy):
        stalled.close()  # it lost the upload: nothing of it is committed, its chunks are taken back
    assert orphans(one) == set()
    assert append(tus(one), row.id, HALF, DATA[HALF:]) == len(DATA)
    assert read_link(two, tus(one).finish("carol", row.id).link) == DATA
    collect_garbage(two, scan_orphans=True)
    report = fsck(two)
    assert report.ok, report.problems


def race_for(nodes: tuple[Store, Store], upload_id: str) -> tuple[list[Appender], int]:
    """Both nodes open the upload at the same moment: (the appenders they got, how many were refused)."""
    start = threading.Barrier(2)
    won: list[Appender] = []
    refused: list[Store] = []

    def claim(node: Store) -> None:
        offset = tus(node).get("carol", upload_id).offset
        start.wait()
        try:
            won.append(tus(node).open_append("carol", upload_id, offset))
        except UploadBusy:
            refused.append(node)

    threads = [threading.Thread(target=claim, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return won, len(refused)


def test_two_nodes_racing_for_an_upload_one_wins(nodes: tuple[Store, Store]) -> None:
    """Both read the lease free and claim it at once: the serializable commit lets one through."""
    row = tus(nodes[0]).create("carol", len(DATA))
    for _ in range(5):
        won, refused = race_for(nodes, row.id)
        assert (len(won), refused) == (1, 1)
        won[0].write(DATA[won[0].written : won[0].written + 10_000])
        won[0].close()
    assert tus(nodes[1]).get("carol", row.id).offset == 50_000


def test_gc_with_no_grace_on_the_other_node_keeps_a_half_done_upload(nodes: tuple[Store, Store]) -> None:
    one, two = nodes
    row = tus(one).create("carol", len(DATA))
    assert append(tus(one), row.id, 0, DATA[:HALF]) == HALF
    collect_garbage(two, scan_orphans=True)  # every chunk is past the cutoff: only references keep them
    appender = tus(two).open_append("carol", row.id, HALF)
    appender.write(DATA[HALF : HALF + 100_000])
    collect_garbage(one)  # while a PATCH is under way on the other node
    appender.write(DATA[HALF + 100_000 :])
    assert appender.close().offset == len(DATA)
    collect_garbage(one, scan_orphans=True)
    report = fsck(one)
    assert report.ok, report.problems
    assert read_link(one, tus(one).finish("carol", row.id).link) == DATA


def test_terminated_and_expired_uploads_give_everything_back(nodes: tuple[Store, Store]) -> None:
    one, two = nodes
    terminated = tus(one).create("carol", len(DATA))
    append(tus(one), terminated.id, 0, DATA[:HALF])
    expiring = tus(one).create("carol", len(DATA))
    append(tus(two), expiring.id, 0, rand(HALF, seed=12))
    tus(two).terminate("carol", terminated.id)
    assert fsck(one).ok
    assert isinstance(one.clock, Clock)
    one.clock.advance(25 * 3600)
    assert collect_garbage(two).resumable_uploads_expired == 1
    collect_garbage(one)  # with no grace period, the chunks of both go
    totals = one.storage_totals()
    assert (totals.chunks, totals.physical_bytes, one.accounts.get_user("carol").usage_bytes) == (0, 0, 0)
    assert orphans(two) == set()
    report = fsck(two)
    assert report.ok, report.problems
