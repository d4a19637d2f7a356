"""The server's background lifecycle sweep: `objstore.lifecycle.apply_lifecycle` every interval.

One asyncio task per worker; the sweep itself runs in a thread (LMDB work never blocks the event
loop) and checks a stop flag between batches, so shutdown waits at most one batch before the store
closes. Workers share `<data dir>/lifecycle.lock`: a worker that finds it taken skips its turn. Were
two sweeps to overlap anyway, the second would only find nothing left to do (deletes and aborts are
conditional and idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading

from objstore import Store
from objstore.lifecycle import LifecycleReport, apply_lifecycle, sweep_lock

log = logging.getLogger("pyblob.lifecycle")
FIRST_SWEEP_MAX_DELAY = 300.0  # a server restarted often still sweeps; workers start spread out


class LifecycleSweeper:
    def __init__(self, store: Store, interval: float):
        self.store = store
        self.interval = interval
        self.stopping = threading.Event()
        self.task: asyncio.Task[None] | None = None
        self.running: asyncio.Future[LifecycleReport | None] | None = None

    def start(self) -> None:
        if self.interval > 0:
            self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Cancel the timer and wait for a sweep in progress to reach its next batch boundary."""
        self.stopping.set()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.running is not None:
            with contextlib.suppress(Exception):
                await self.running

    async def _loop(self) -> None:
        await asyncio.sleep(random.uniform(0, min(self.interval, FIRST_SWEEP_MAX_DELAY)))
        while True:
            self.running = asyncio.ensure_future(asyncio.to_thread(self.sweep_once))
            try:
                await asyncio.shield(self.running)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lifecycle sweep failed; retrying in %s s", self.interval)
            await asyncio.sleep(self.interval)

    def sweep_once(self) -> LifecycleReport | None:
        """One sweep, unless another process holds the lock (None then)."""
        with sweep_lock(self.store.root) as mine:
            if not mine:
                return None
            report = apply_lifecycle(self.store, self.store.clock(), stop=self.stopping.is_set)
        if report.objects_expired or report.lifecycle_uploads_aborted:
            log.info("lifecycle: %d objects expired (%d bytes), %d uploads aborted",
                     report.objects_expired, report.bytes_expired, report.lifecycle_uploads_aborted)
        return report
