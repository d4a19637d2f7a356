"""Batched download statistics: per link and per user downloads, bytes served, last download.

Counting a download with its own synced commit would cost an fsync per request. Instead each
process adds to an in-memory tally under a lock and `flush` applies it in one write transaction.
Increments happen inside that transaction (no read-modify-write across processes), so totals are
exact however many workers count at once; what a crash can lose is the last unflushed interval.
Links with a download budget are not batched (`Links.count_download`): burn-after-N must be exact
at the moment of the download.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass
from typing import TypeVar

from ..meta import MetadataStore, WriteTxn
from .links import add_downloads

Piece = TypeVar("Piece", bound=Sized)

log = logging.getLogger("objstore.linkstats")
FLUSH_AT = 512  # pending links that force a flush without waiting for the timer


@dataclass
class Tally:
    downloads: int = 0
    nbytes: int = 0
    last: float = 0.0


class DownloadStats:
    """This process's download counts not yet written, and the flush that writes them in one transaction."""

    def __init__(self, meta: MetadataStore, clock: Callable[[], float]):
        self.meta = meta
        self.clock = clock
        self._pending: dict[str, Tally] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()

    def add(self, link_id: str, downloads: int, nbytes: int) -> None:
        """Count `downloads` and `nbytes` served for a link (flushed later)."""
        now = self.clock()
        with self._lock:
            tally = self._pending.setdefault(link_id, Tally())
            tally.downloads += downloads
            tally.nbytes += nbytes
            tally.last = max(tally.last, now)
            full = len(self._pending) >= FLUSH_AT
        if full:
            try:
                self.flush()
            except Exception:  # the counts stay pending; the timer's flush retries and logs
                log.warning("download statistics flush failed; %d links pending", len(self._pending))

    def pending(self, link_id: str) -> Tally:
        """What this process counted for the link and has not flushed yet (other workers' is unseen)."""
        with self._lock:
            tally = self._pending.get(link_id)
            return Tally(tally.downloads, tally.nbytes, tally.last) if tally else Tally()

    def counted(self, link_id: str, chunks: Iterator[Piece], download: bool) -> Iterator[Piece]:
        """`chunks` (bytes, or regions of chunk files) passed through, adding the bytes actually sent
        (and the download) when they end."""
        sent = 0
        try:
            for chunk in chunks:
                sent += len(chunk)
                yield chunk
        finally:
            self.add(link_id, 1 if download else 0, sent)

    def flush(self) -> int:
        """Apply every pending tally in one transaction; returns how many links it touched."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            if not pending:
                return 0
            try:
                self._apply(pending)
            except BaseException:
                with self._lock:  # keep the counts for the next try
                    for link_id, tally in pending.items():
                        mine = self._pending.setdefault(link_id, Tally())
                        mine.downloads += tally.downloads
                        mine.nbytes += tally.nbytes
                        mine.last = max(mine.last, tally.last)
                raise
            return len(pending)

    def _apply(self, pending: dict[str, Tally]) -> None:
        def apply(w: WriteTxn) -> None:
            for link_id, tally in pending.items():
                add_downloads(w, link_id, tally.downloads, tally.nbytes, tally.last)  # gone links: nothing to count on

        self.meta.transact(apply)
