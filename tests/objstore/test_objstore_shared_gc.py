"""GC without a lock shared with writers: two engines ("nodes") over one PostgreSQL and one SeaweedFS,
one writing the same content again and again while the other deletes it and collects garbage with a
zero grace period. Whatever interleaving happens, a write that succeeded reads back whole, and a
write that failed did so with the retryable `ChunkMissing`, leaving nothing behind."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from objstore_helpers import SMALL, rand, read

from objstore import Store
from objstore.errors import ChunkMissing, NoSuchKey
from objstore.maintenance import collect_garbage, fsck

ROUNDS = 40
DATA = rand(300_000, seed=42)  # a few chunks, the same bytes in every round


def test_same_content_put_against_delete_and_gc_on_another_node(
    tmp_path: Any, pg_database: str, swfs_chunks: Any
) -> None:
    config = dataclasses.replace(SMALL, metadata_url=pg_database, chunk_store=swfs_chunks, gc_grace_seconds=0.0)
    writer_node, collector_node = Store(tmp_path / "a", config), Store(tmp_path / "b", config)
    writer_node.accounts.create_user("alice")
    writer_node.create_bucket("alice", "photos")
    written: list[str] = []
    refused = deleted_first = 0
    done = threading.Event()
    collections = 0

    def collect() -> None:
        nonlocal collections
        while not done.is_set():
            for key in list(written):  # every object goes, so its chunks fall to zero references
                try:
                    collector_node.delete_object("photos", key)
                except NoSuchKey:
                    pass
            collect_garbage(collector_node)
            collections += 1

    collector = threading.Thread(target=collect)
    collector.start()
    try:
        for i in range(ROUNDS):
            try:
                writer_node.put_object("photos", f"k{i}", DATA)
                written.append(f"k{i}")
            except ChunkMissing:
                refused += 1  # GC took a chunk this write counted on: retryable, nothing committed
                continue
            try:
                assert read(writer_node, "photos", f"k{i}") == DATA  # whole, or deleted since
            except NoSuchKey:
                deleted_first += 1
    finally:
        done.set()
        collector.join(60)
    assert collections > 3 and len(written) + refused == ROUNDS and written
    listed = [o.key for o in collector_node.list_objects("photos").objects]
    for key in listed:
        assert read(collector_node, "photos", key) == DATA
    collect_garbage(collector_node)
    report = fsck(collector_node)
    assert report.ok, report.problems
    writer_node.put_object("photos", "after", DATA)  # the content can always be written again
    assert read(collector_node, "photos", "after") == DATA
    writer_node.close()
    collector_node.close()
