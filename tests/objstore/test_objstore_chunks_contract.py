"""The `ChunkStore` contract, on each implementation: the data dir's `chunks/`, and an S3 bucket on a
real SeaweedFS (what a cluster of pyblob nodes shares)."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from objstore_helpers import SMALL

from objstore import Store
from objstore.chunks import ChunkStore
from objstore.chunks.localdir import LocalChunkStore
from objstore.chunks.s3 import S3ChunkStore
from objstore.errors import ChunkStoreClaimed, ChunkStoreUnavailable
from objstore.hashing import chunk_digest


@pytest.fixture(params=["local", "seaweedfs"])
def chunks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChunkStore]:
    if request.param == "local":
        yield LocalChunkStore(tmp_path / "data", durable=False)
    else:
        yield S3ChunkStore(request.getfixturevalue("swfs_chunks"))


def chunk(n: int, size: int = 3000) -> tuple[bytes, bytes]:
    data = os.urandom(size - 4) + n.to_bytes(4, "big")
    return chunk_digest(data), data


def test_put_then_read_whole_and_ranges(chunks: ChunkStore) -> None:
    digest, data = chunk(1, 700_000)
    chunks.put(digest, data)
    assert chunks.exists(digest)
    assert chunks.read_all(digest) == data
    assert b"".join(chunks.read(digest, 0, len(data))) == data
    assert b"".join(chunks.read(digest, 123_456, 300_001)) == data[123_456:423_457]
    assert b"".join(chunks.read(digest, len(data) - 1, 1)) == data[-1:]
    assert b"".join(chunks.read(digest, 5, 0)) == b""


def test_missing_chunk_reads_as_file_not_found(chunks: ChunkStore) -> None:
    digest, _ = chunk(2)
    assert not chunks.exists(digest)
    with pytest.raises(FileNotFoundError):
        chunks.read_all(digest)
    with pytest.raises(FileNotFoundError):
        b"".join(chunks.read(digest, 0, 10))


def test_reading_past_the_end_is_eof(chunks: ChunkStore) -> None:
    digest, data = chunk(3, 1000)
    chunks.put(digest, data)
    with pytest.raises(EOFError):
        b"".join(chunks.read(digest, 900, 200))
    with pytest.raises(EOFError):
        b"".join(chunks.read(digest, 2000, 10))


def test_batch_is_readable_once_published_and_holds_what_it_took(chunks: ChunkStore) -> None:
    made = [chunk(10 + i, 50_000) for i in range(9)]
    batch = chunks.batch()
    try:
        for digest, data in made:
            batch.put(digest, data)
            batch.put(digest, data)  # the same chunk twice in one object: stored once
            assert batch.holds(digest)
        batch.publish()
    finally:
        batch.close()
    for digest, data in made:
        assert chunks.read_all(digest) == data
        assert batch.holds(digest)


def test_delete_spares_a_chunk_written_after_the_cutoff(chunks: ChunkStore) -> None:
    digest, data = chunk(4)
    chunks.put(digest, data)
    assert not chunks.delete(digest, unless_written_after=time.time() - 60)
    assert chunks.exists(digest)
    assert chunks.delete(digest, unless_written_after=time.time() + 5)
    assert not chunks.exists(digest)
    assert chunks.delete(digest, unless_written_after=time.time())  # gone already: done


def test_iterate_lists_every_chunk_with_when_it_was_written(chunks: ChunkStore) -> None:
    made = dict(chunk(20 + i, 100) for i in range(5))
    before = time.time() - 2
    for digest, data in made.items():
        chunks.put(digest, data)
    listed = {digest: written for batch, _, _ in chunks.iterate() for digest, written in batch}
    assert listed.keys() == made.keys()
    assert all(before <= written <= time.time() + 1 for written in listed.values())


def test_quarantine_takes_a_chunk_out_of_reach(chunks: ChunkStore) -> None:
    digest, data = chunk(5)
    chunks.put(digest, data)
    assert chunks.quarantine(digest)
    assert not chunks.exists(digest)
    assert not chunks.quarantine(digest)
    listed = [d for batch, _, _ in chunks.iterate() for d, _ in batch]
    assert digest not in listed


def test_region_is_a_local_file_or_nothing(chunks: ChunkStore) -> None:
    digest, data = chunk(6)
    chunks.put(digest, data)
    region = chunks.region(digest, 10, 20)
    if isinstance(chunks, LocalChunkStore):
        assert region is not None and Path(region.path).read_bytes()[10:30] == data[10:30]
    else:
        assert region is None


def test_s3_layout_is_two_levels_of_fan_out_under_the_prefix(swfs_server: Any) -> None:
    settings = swfs_server.chunk_settings("fanout/deeper")
    store = S3ChunkStore(settings)
    digest, data = chunk(7)
    store.put(digest, data)
    h = digest.hex()
    got = swfs_server.client().get_object(Bucket=store.bucket, Key=f"fanout/deeper/{h[:2]}/{h[2:4]}/{h}")
    assert got["Body"].read() == data


def test_s3_store_makes_its_bucket(swfs_server: Any) -> None:
    settings = swfs_server.chunk_settings()
    import dataclasses

    settings = dataclasses.replace(settings, url="s3://made-by-pyblob/x")
    store = S3ChunkStore(settings)
    digest, data = chunk(8)
    store.put(digest, data)
    assert store.read_all(digest) == data
    S3ChunkStore(settings)  # opening it again finds it


def test_s3_store_with_wrong_keys_fails_clearly_when_opened(swfs_server: Any) -> None:
    import dataclasses

    settings = dataclasses.replace(swfs_server.chunk_settings(), secret_key="not-the-secret")
    with pytest.raises(ChunkStoreUnavailable, match=r"SignatureDoesNotMatch|AccessDenied|403"):
        S3ChunkStore(settings)


def test_s3_store_that_cannot_be_reached_fails_clearly(swfs_server: Any) -> None:
    import dataclasses

    from ports import free_port

    settings = dataclasses.replace(swfs_server.chunk_settings(), endpoint=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ChunkStoreUnavailable, match="chunk store"):
        S3ChunkStore(settings)


def test_read_spans_gives_the_spans_in_order(chunks: ChunkStore) -> None:
    made = [chunk(30 + i, 20_000 + i) for i in range(9)]
    for digest, data in made:
        chunks.put(digest, data)
    spans = [(digest, i * 100, len(data) - i * 200) for i, (digest, data) in enumerate(made)]
    expected = b"".join(data[i * 100 : len(data) - i * 100] for i, (_, data) in enumerate(made))
    assert b"".join(chunks.read_spans(spans)) == expected
    reader = chunks.read_spans(iter(spans))
    next(reader)
    reader.close()  # a client gone mid-object: the read-ahead stops


def test_read_spans_of_a_missing_chunk_fails_in_place(chunks: ChunkStore) -> None:
    first, data = chunk(40)
    chunks.put(first, data)
    missing, _ = chunk(41)
    reader = chunks.read_spans([(first, 0, len(data)), (missing, 0, 10)])
    assert next(reader) == data
    with pytest.raises(FileNotFoundError):
        next(reader)


def test_s3_store_makes_its_bucket_in_the_region_it_is_given(swfs_server: Any) -> None:
    import dataclasses

    settings = dataclasses.replace(swfs_server.chunk_settings(), url="s3://made-in-eu/x", region="eu-west-1")
    store = S3ChunkStore(settings)  # CreateBucket with its LocationConstraint, as AWS wants outside us-east-1
    digest, data = chunk(9)
    store.put(digest, data)
    assert store.read_all(digest) == data


def test_a_chunk_store_is_claimed_by_one_store(chunks: ChunkStore) -> None:
    """Over S3 the first store to claim the bucket and prefix keeps it; the local directory belongs
    to its data dir's store whatever it is asked."""
    assert chunks.claim("store-a") == "store-a"
    if isinstance(chunks, LocalChunkStore):
        assert chunks.claim("store-b") == "store-b"
        return
    assert chunks.claim("store-b") == "store-a"  # another store is refused
    assert chunks.claim("store-a") == "store-a"
    assert chunks.claim("store-b", replacing="store-c") == "store-a"  # only the holder is replaced
    assert chunks.claim("store-b", replacing="store-a") == "store-b"
    assert [found for found, _, _ in chunks.iterate()] in ([], [[]])  # the claim is no chunk


def test_a_second_store_over_the_same_prefix_is_refused(tmp_path: Path, swfs_chunks: Any) -> None:
    """Two deployments pointed at one bucket and prefix would take each other's chunks for garbage:
    the second one stops when it opens, naming the reason."""
    first = Store(tmp_path / "a", dataclasses.replace(SMALL, chunk_store=swfs_chunks))
    first.close()
    with pytest.raises(ChunkStoreClaimed, match="belongs to another pyblob store"):
        Store(tmp_path / "b", dataclasses.replace(SMALL, chunk_store=swfs_chunks))
    Store(tmp_path / "a", dataclasses.replace(SMALL, chunk_store=swfs_chunks)).close()  # its owner opens it
