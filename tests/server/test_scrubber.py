"""The server's background scrub (`pyblob.sweeper.Scrubber`): a pass when one is due, none while another
process holds it, and a shutdown that wakes a pass waiting on its rate bound and leaves it to resume."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from objstore import Store, StoreConfig, scrub_cursor
from objstore.scrub import scrub_due
from pyblob.sweeper import Scrubber

FAST = StoreConfig(durable=False, map_size=1 << 30)


def filled_store(path: Path) -> Store:
    store = Store(path, FAST)
    store.accounts.create_user("kim")
    store.create_bucket("kim", "photos")
    for n in range(3):
        store.put_object("photos", f"{n}.jpg", random.Random(n).randbytes(400_000))
    return store


def test_a_pass_runs_when_due_and_not_again_until_the_interval_is_over(tmp_path: Path) -> None:
    with filled_store(tmp_path) as store:
        scrubber = Scrubber(store, every=3600, rate=0)
        report = scrubber.scrub_once()  # never scrubbed: due at once
        assert report is not None and report.finished and report.chunks_checked > 0
        assert scrubber.scrub_once() is None
        assert store.maintenance_runs()["scrub"].runs == 1


def test_a_pass_held_by_another_process_is_left_alone(tmp_path: Path) -> None:
    with filled_store(tmp_path) as store:
        store.meta.transact(lambda w: scrub_cursor.begin(w, "pyblob scrub", time.time(), False, False))
        assert Scrubber(store, every=3600, rate=0).scrub_once() is None


def test_zero_interval_means_no_background_scrub(tmp_path: Path) -> None:
    with filled_store(tmp_path) as store:
        scrubber = Scrubber(store, every=0, rate=0)

        async def start_and_stop() -> None:
            scrubber.start()
            await scrubber.stop()

        asyncio.run(start_and_stop())
        assert scrubber.task is None and "scrub" not in store.maintenance_runs()


def test_shutdown_wakes_a_paced_pass_and_leaves_it_to_resume(tmp_path: Path) -> None:
    with filled_store(tmp_path) as store:
        scrubber = Scrubber(store, every=3600, rate=1)  # one byte a second: it waits from the first chunk
        scrubber.first_delay = 0.0

        async def run_then_stop() -> float:
            scrubber.start()
            while scrubber.running is None:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            began = time.monotonic()
            await asyncio.wait_for(scrubber.stop(), timeout=10)
            return time.monotonic() - began

        assert asyncio.run(run_then_stop()) < 5
        assert scrub_due(store.meta, every=3600)  # the pass is under way, for the next run to resume
        assert store.meta.read(scrub_cursor.get).holder == ""  # and no one holds it
