"""`objstore.migration`: a store moved from LMDB and local chunks onto PostgreSQL and SeaweedFS, a run
that stopped part way finished by the next one, and a finished copy never written over."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from objstore_helpers import SMALL, rand, read

from objstore import Store
from objstore.chunks.s3 import S3ChunkStore
from objstore.maintenance import fsck
from objstore.meta.postgres import PostgresMetadataStore
from objstore.migration import MigrationReport, copy_chunks, migrate
from objstore.store import SCHEMA_VERSION, TABLES


@pytest.fixture
def source(tmp_path: Path) -> Any:
    store = Store(tmp_path / "data", SMALL)
    store.accounts.create_user("alice")
    store.create_bucket("alice", "photos")
    for n in range(6):
        store.put_object("photos", f"k{n}", rand(200_000 + n, seed=n % 4))  # some content twice
    store.put_object("photos", "tiny", b"inline")
    yield store
    store.close()


def test_a_run_stopped_part_way_is_finished_by_the_next(
    source: Store, pg_database: str, swfs_chunks: Any, tmp_path: Path
) -> None:
    target_meta = PostgresMetadataStore(pg_database, TABLES, SCHEMA_VERSION)
    target_chunks = S3ChunkStore(swfs_chunks)
    stored = [digest for batch, _, _ in source.chunks.iterate() for digest, _ in batch]
    for digest in stored[:3]:  # as far as a first run got before it died
        target_chunks.put(digest, source.chunks.read_all(digest))
    report = migrate(source.meta, source.chunks, target_meta, target_chunks, TABLES, jobs=2)
    assert report.chunks_already_there == 3 and report.chunks_copied > 0 and not report.corrupt_chunks
    target_meta.close()
    config = dataclasses.replace(SMALL, metadata_url=pg_database, chunk_store=swfs_chunks)
    with Store(tmp_path / "copy", config) as copy:
        assert fsck(copy).ok
        for n in range(6):
            assert read(copy, "photos", f"k{n}") == rand(200_000 + n, seed=n % 4)
        assert read(copy, "photos", "tiny") == b"inline"
        copy.put_object("photos", "written-after", b"new")
    again = PostgresMetadataStore(pg_database, TABLES, SCHEMA_VERSION)
    report = migrate(source.meta, source.chunks, again, target_chunks, TABLES)
    assert report.already_done and report.rows_copied == 0
    again.close()
    with Store(tmp_path / "copy", config) as copy:
        assert read(copy, "photos", "written-after") == b"new"  # not undone by the second run


def test_a_corrupt_source_chunk_is_reported_not_copied(source: Store, swfs_chunks: Any) -> None:
    digest = next(d for batch, _, _ in source.chunks.iterate() for d, _ in batch)
    source.chunks.put(digest, b"rot")
    target = S3ChunkStore(swfs_chunks)
    report = MigrationReport()
    copy_chunks(source.chunks, target, report)
    assert report.corrupt_chunks == [digest.hex()] and not target.exists(digest)
