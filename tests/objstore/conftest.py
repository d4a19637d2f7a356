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
    return Clock()


@pytest.fixture
def config() -> StoreConfig:
    """Chunks of 16/64/256 KiB and no fsync: the same code paths as production, much faster."""
    return SMALL


@pytest.fixture(params=["lmdb", "postgresql"])
def store(tmp_path: Path, config: StoreConfig, clock: Clock, request: pytest.FixtureRequest) -> Iterator[Store]:
    """The engine over each metadata backend: LMDB in the data dir, and a real PostgreSQL."""
    if request.param == "postgresql":
        config = dataclasses.replace(config, metadata_url=request.getfixturevalue("pg_database"))
    s = Store(tmp_path / "data", config, clock=clock)
    yield s
    s.close()


@pytest.fixture
def bucket(store: Store) -> str:
    """A bucket owned by the user `alice` (no quota)."""
    store.accounts.create_user("alice")
    store.create_bucket("alice", "photos")
    return "photos"
