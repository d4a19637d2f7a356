"""The server's lifecycle sweeper: runs the engine's sweep on a timer, skips while another holds the lock."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from objstore import Store, StoreConfig
from objstore.lifecycle import DAY, LifecycleRule
from objstore.lifecycle_sweep import sweep_lock
from pyblob.sweeper import LifecycleSweeper

FAST = StoreConfig(durable=False, map_size=1 << 30)


def future_store(path: Path) -> Store:
    """A store whose clock runs two days ahead, with one object its bucket's rule has expired."""
    store = Store(path, FAST)
    store.accounts.create_user("kim")
    store.create_bucket("kim", "logs")
    store.put_object("logs", "old", b"x")
    store.set_bucket_lifecycle("logs", [LifecycleRule(expiration_days=1)])
    store.clock = lambda: time.time() + 2 * DAY
    return store


async def run_until_gone(sweeper: LifecycleSweeper, store: Store, timeout: float) -> bool:
    sweeper.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not store.list_objects("logs").objects:
                return True
            await asyncio.sleep(0.02)
        return False
    finally:
        await sweeper.stop()


def test_sweeper_expires_objects_on_its_timer(tmp_path: Path) -> None:
    with future_store(tmp_path) as store:
        assert asyncio.run(run_until_gone(LifecycleSweeper(store, 0.05), store, 5.0))


def test_sweeper_skips_while_another_process_sweeps(tmp_path: Path) -> None:
    with future_store(tmp_path) as store, sweep_lock(store.root) as mine:
        assert mine
        assert LifecycleSweeper(store, 0.05).sweep_once() is None
        assert not asyncio.run(run_until_gone(LifecycleSweeper(store, 0.05), store, 0.3))


def test_zero_interval_means_no_background_sweep(tmp_path: Path) -> None:
    with future_store(tmp_path) as store:
        sweeper = LifecycleSweeper(store, 0)
        assert not asyncio.run(run_until_gone(sweeper, store, 0.2))
        assert sweeper.task is None
