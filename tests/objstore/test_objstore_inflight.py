"""Orphans of writers that died, found without listing the chunk bucket: over an S3 chunk store
(a real SeaweedFS) and PostgreSQL, a writer records an intent before each upload (`inflight.py`);
GC deletes the chunks of a writer killed with kill -9 from its intents alone, keeps a live writer's,
and a writer that committed or gave up leaves no intent behind."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from objstore_helpers import SMALL, rand, read

from objstore import Store, inflight
from objstore.maintenance import collect_garbage, fsck

REPO = Path(__file__).resolve().parents[2]

WRITER = """
import os, sys, json
from objstore import Store, StoreConfig
from objstore.config import S3ChunkSettings
given = json.loads(sys.argv[2])
given["chunk_store"] = S3ChunkSettings(**given["chunk_store"])
store = Store(sys.argv[1], StoreConfig(**given))
with store.open_writer("photos", "big") as w:
    for i in range(4000):
        w.write(os.urandom(64 * 1024))
        if i == 40:
            print("streaming", flush=True)
    w.commit()
"""


@pytest.fixture
def node(tmp_path: Path, pg_database: str, swfs_chunks: Any) -> Iterator[Store]:
    config = dataclasses.replace(SMALL, metadata_url=pg_database, chunk_store=swfs_chunks, gc_grace_seconds=0.0)
    store = Store(tmp_path / "node", config)
    store.accounts.create_user("alice")
    store.create_bucket("alice", "photos")
    yield store
    store.close()


def intents_of(store: Store) -> list[tuple[bytes, str, float, bool]]:
    return store.intents.volatile.read(lambda r: list(inflight.left_behind(r, time.time() + 1)))


def stored_chunks(store: Store) -> set[bytes]:
    return {digest for found, _, _ in store.chunks.iterate() for digest, _ in found}


def no_listing(*args: object) -> None:
    raise AssertionError("GC listed the whole chunk bucket")


def test_a_committed_writer_leaves_no_intent(node: Store) -> None:
    data = rand(600_000)
    node.put_object("photos", "k", data)
    assert intents_of(node) == []
    assert read(node, "photos", "k") == data


def test_the_chunks_of_a_writer_killed_mid_upload_go_without_a_listing(
    node: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node.put_object("photos", "kept", rand(400_000))
    kept = stored_chunks(node)
    given = dataclasses.asdict(node.config)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path / "writer"), json.dumps(given)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "streaming\n", proc.stderr.read()  # type: ignore[union-attr]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = intents_of(node)
    assert left, "the killed writer recorded no intent"
    uploaded = stored_chunks(node) - kept
    assert uploaded <= {digest for digest, *_ in left}  # every chunk it uploaded was announced first

    monkeypatch.setattr(node.chunks, "iterate", no_listing)
    time.sleep(1.1)  # past the second of the last upload: bytes written after GC's cutoff are spared
    report = collect_garbage(node)
    monkeypatch.undo()
    assert report.orphans_removed >= len(uploaded)
    assert report.intents_cleared == len(left)
    assert intents_of(node) == []
    assert stored_chunks(node) == kept
    assert read(node, "photos", "kept") == rand(400_000)
    assert fsck(node).ok


def test_a_live_writers_intents_are_kept(node: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    data = rand(3_000_000, seed=7)
    with node.open_writer("photos", "slow") as w:
        w.write(data[:2_000_000])  # past the chunker's window (4 x the largest chunk): some are cut
        time.sleep(0.5)  # its uploads are done, its commit not
        assert intents_of(node)
        monkeypatch.setattr(node.chunks, "iterate", no_listing)
        assert collect_garbage(node).orphans_removed == 0
        monkeypatch.undo()
        w.write(data[2_000_000:])
        w.commit()
    assert read(node, "photos", "slow") == data
    assert intents_of(node) == []
    assert fsck(node).ok


def test_a_writer_that_fails_takes_its_chunks_back_and_forgets_its_intents(node: Store) -> None:
    with node.open_writer("photos", "failed") as w:
        w.write(rand(2_000_000, seed=9))
        w.content.publish()
    assert intents_of(node) == []
    assert stored_chunks(node) == set()
