"""The server's background jobs: lifecycle rules, expired short links, download statistics, scrub.

Each job is one asyncio task per worker that runs its work in a thread (LMDB work never blocks the
event loop) every interval. Sweeps check a stop flag between batches, so shutdown waits at most one
batch before the store closes. Workers share `<data dir>/lifecycle.lock` for the sweeps: a worker
that finds it taken skips its turn. Were two sweeps to overlap anyway, the second would only find
nothing left to do (deletes are conditional and idempotent). Scrub passes are long (hours, at a low
rate) and scheduled in the metadata, not by the timer: the timer only asks often whether one is due,
and the pass itself is held by one run at a time, across workers and nodes (`objstore/scrub_cursor.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from objstore import Store
from objstore.lifecycle_sweep import LifecycleReport, sweep_lock
from objstore.links import LinkSweepReport
from objstore.scrub import ScrubReport, scrub, scrub_due

log = logging.getLogger("pyblob.sweeper")
FIRST_SWEEP_MAX_DELAY = 300.0  # a server restarted often still sweeps; workers start spread out
STATS_FLUSH_INTERVAL = 1.0  # what a crash may lose of the download statistics
SCRUB_CHECK_INTERVAL = 600.0  # how often a server asks whether a scrub pass is due (or one to resume)
# Told of every run (job name, whether it succeeded, what it returned): the metrics, when they are on.
run_observer: Callable[[str, bool, Any], None] | None = None


class Periodic:
    """Run `work` in a thread every `interval` seconds (never when the interval is 0)."""

    def __init__(self, name: str, interval: float, work: Callable[[], Any], first_delay: float | None = None):
        self.name = name
        self.interval = interval
        self.work = work
        self.first_delay = first_delay
        self.task: asyncio.Task[None] | None = None
        self.running: asyncio.Future[Any] | None = None

    def start(self) -> None:
        if self.interval > 0:
            self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Cancel the timer and wait for a run in progress to end."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.running is not None:
            with contextlib.suppress(Exception):
                await self.running

    async def _loop(self) -> None:
        delay = self.first_delay
        await asyncio.sleep(random.uniform(0, min(self.interval, FIRST_SWEEP_MAX_DELAY)) if delay is None else delay)
        while True:
            self.running = asyncio.ensure_future(asyncio.to_thread(self.work))
            ok, result = True, None
            try:
                result = await asyncio.shield(self.running)
            except asyncio.CancelledError:
                raise
            except Exception:
                ok = False
                log.exception("%s failed; retrying in %s s", self.name, self.interval)
            if run_observer is not None:
                run_observer(self.name, ok, result)
            await asyncio.sleep(self.interval)


class LifecycleSweeper(Periodic):
    def __init__(self, store: Store, interval: float):
        super().__init__("lifecycle sweep", interval, self.sweep_once)
        self.store = store
        self.stopping = threading.Event()

    async def stop(self) -> None:
        self.stopping.set()
        await super().stop()

    def sweep_once(self) -> LifecycleReport | None:
        """One sweep, unless another process holds the lock (None then)."""
        with sweep_lock(self.store.root) as mine:
            if not mine:
                return None
            report = self.store.apply_lifecycle(self.store.clock(), stop=self.stopping.is_set)
        if report.objects_expired or report.lifecycle_uploads_aborted:
            log.info(
                "lifecycle: %d objects expired (%d bytes), %d uploads aborted",
                report.objects_expired,
                report.bytes_expired,
                report.lifecycle_uploads_aborted,
            )
        return report


class LinkSweeper(LifecycleSweeper):
    """Expired short links: tombstoned, and the files uploaded for them deleted."""

    def __init__(self, store: Store, interval: float):
        super().__init__(store, interval)
        self.name = "link sweep"
        self.work = self.sweep_links_once

    def sweep_links_once(self) -> LinkSweepReport | None:
        with sweep_lock(self.store.root) as mine:
            if not mine:
                return None
            report = self.store.sweep_links(self.store.clock(), stop=self.stopping.is_set)
        if report.links_expired:
            log.info("links: %d expired, %d files deleted", report.links_expired, report.objects_deleted)
        return report


class Scrubber(Periodic):
    """A scrub pass `every` seconds after the last one ended, reading `rate` bytes a second at most; a
    pass under way (cut short by a restart, or by another process that stopped) is resumed."""

    def __init__(self, store: Store, every: float, rate: int):
        super().__init__("scrub", min(every, SCRUB_CHECK_INTERVAL), self.scrub_once)
        self.store = store
        self.every = every
        self.rate = rate
        self.stopping = threading.Event()

    async def stop(self) -> None:
        self.stopping.set()  # wakes the pacing sleep too
        await super().stop()

    def scrub_once(self) -> ScrubReport | None:
        """A run, if one is due and no other process is at it (None otherwise)."""
        if not scrub_due(self.store.meta, self.every):
            return None
        stopping = self.stopping
        report = scrub(
            self.store.meta, self.store.chunks, self.rate, take_over=False, stop=stopping.is_set, sleep=stopping.wait
        )
        if report is None:
            return None
        if report.corrupt or report.missing or report.quarantined:
            log.error(
                "scrub: %d corrupt and %d missing chunks found, %d quarantined in all "
                "(`pyblob scrub` names the objects)",
                len(report.corrupt),
                len(report.missing),
                len(report.quarantined),
            )
        log.info(
            "scrub: %d chunks checked (%d bytes)%s",
            report.chunks_checked,
            report.bytes_checked,
            ", pass finished" if report.finished else "",
        )
        return report


def background_jobs(
    store: Store, lifecycle_interval: float, link_interval: float, scrub_interval: float = 0.0, scrub_rate: int = 0
) -> list[Periodic]:
    return [
        LifecycleSweeper(store, lifecycle_interval),
        LinkSweeper(store, link_interval),
        Periodic("statistics flush", STATS_FLUSH_INTERVAL, store.stats.flush, first_delay=STATS_FLUSH_INTERVAL),
        Scrubber(store, scrub_interval, scrub_rate),
    ]
