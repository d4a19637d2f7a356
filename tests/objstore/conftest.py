"""Fixtures for the storage engine's tests: a small, fast `Store` on tmp_path with a clock we drive."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from clocks import Clock
from objstore_helpers import SMALL

from objstore import Store, StoreConfig


@pytest.fixture
def clock() -> Clock:
    """A minute ahead of the real time: a test that moves it one grace period (+1 s) on then finds
    every chunk it wrote older than the cutoff, even over S3 (whole-second LastModified, seconds of
    round trips)."""
    return Clock(ahead=60)


@pytest.fixture
def config() -> StoreConfig:
    """Chunks of 16/64/256 KiB and no fsync: the same code paths as production, much faster."""
    return SMALL


@pytest.fixture(params=["lmdb", "postgresql", "postgresql+seaweedfs"])
def store(tmp_path: Path, config: StoreConfig, clock: Clock, request: pytest.FixtureRequest) -> Iterator[Store]:
    """The engine over each backend: LMDB and chunks in the data dir (the default), a real PostgreSQL
    with chunks in the data dir, and PostgreSQL with chunks in a real SeaweedFS (a cluster's setup)."""
    if request.param.startswith("postgresql"):
        config = dataclasses.replace(config, metadata_url=request.getfixturevalue("pg_database"))
    if request.param.endswith("seaweedfs"):
        config = dataclasses.replace(config, chunk_store=request.getfixturevalue("swfs_chunks"))
    s = Store(tmp_path / "data", config, clock=clock)
    yield s
    s.close()


@pytest.fixture
def bucket(store: Store) -> str:
    """A bucket owned by the user `alice` (no quota)."""
    store.accounts.create_user("alice")
    store.create_bucket("alice", "photos")
    return "photos"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `local_chunks` look at the data dir's chunk files and staging dirs, which an S3
    chunk store does not have: they run on the local chunk store only (deselected, not skipped).
    Tests marked `shared_state` are about what nodes share through PostgreSQL: they run there only."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_s3 = callspec is not None and "seaweedfs" in callspec.id
        on_lmdb = callspec is not None and callspec.params.get("store") == "lmdb"
        drop = (on_s3 and item.get_closest_marker("local_chunks")) or (
            on_lmdb and item.get_closest_marker("shared_state")
        )
        (dropped if drop else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
