"""Scrub: read every chunk back at a bounded rate and check it against its name, so that bytes that
changed on disk (bit rot, a bad sector, a stray write) are found before anyone needs them.

A pass walks the chunk rows in digest order (`refcount.rows_after`) and reads each referenced chunk
whole from the chunk store, local or S3 (`ChunkStore.read_all`), as stored: a chunk is its raw
bytes, named by their BLAKE3 digest, so it is sound when its bytes hash to its name and have the
length its row records (what fsck checks, and what every writer computed before naming it). A
chunk that is gone, unreadable or wrong is quarantined (`quarantine.py`): moved aside, its row and
the manifests that list it marked, so reads of its objects fail with a clear error and the next
upload of the same bytes heals it. Unreadable (the disk answers EIO) is treated as damaged: its bytes
cannot be served either, a GET that met the EIO mid-body could only cut the response short, and the
next upload writes the bytes to a new file; the file moved aside stays for the administrator.
A quarantined chunk whose bytes are back (restored from a backup) and right is released.
Unreferenced chunks (count 0, GC's to take) are passed over.

Reads are paced by a token bucket (`pacing.BytePacer`) at `rate` bytes a second. Progress is saved
in the metadata (`scrub_cursor.py`) every `SAVE_EVERY` seconds, so a pass cut short resumes after
the last chunk saved; each run ends with a report naming every chunk quarantined now and the object
versions (bucket, key, version id) and upload parts that need it, and a record in `runs.py`
(`pyblob stats`, `/metrics`).
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from . import quarantine, refcount, runs, scrub_cursor
from .chunks import ChunkStore
from .errors import ChunkStoreUnavailable, StorageIOError
from .hashing import chunk_digest
from .meta import MetadataStore
from .pacing import BytePacer
from .quarantine import Holder

BATCH = 256  # chunk rows read per read transaction
SAVE_EVERY = 10.0  # seconds between saves of the cursor (and heartbeats of the hold)
JOB = "scrub"  # its name in `runs.py`
Progress = Callable[[str, int, int], None]


@dataclass
class DamagedChunk:
    chunk: str  # hex digest
    size: int
    problem: str  # "corrupt", "missing", "unreadable: <why>", or "quarantined before" (by an earlier run)
    objects: list[Holder] = field(default_factory=list)  # object versions and upload parts that need it


@dataclass
class ScrubReport:
    chunks_checked: int = 0  # by this run
    bytes_checked: int = 0
    seconds: float = 0.0
    throttled_seconds: float = 0.0  # of sleep the rate bound asked for
    rate_limit: int = 0  # bytes a second; 0: none
    pass_started: float = 0.0
    resumed_from: str = ""  # the chunk after which this run took up a pass under way ("": from the start)
    pass_chunks_checked: int = 0  # by the whole pass so far, over all its runs
    pass_bytes_checked: int = 0
    finished: bool = False  # the pass reached the last chunk
    stopped: str = ""  # why the run ended before the pass did, if it did
    corrupt: list[str] = field(default_factory=list)  # chunks this run found wrong (hex)
    missing: list[str] = field(default_factory=list)  # ... or gone, or unreadable
    restored: list[str] = field(default_factory=list)  # quarantined chunks found back and right, released
    quarantined: list[DamagedChunk] = field(default_factory=list)  # every chunk quarantined now

    @property
    def ok(self) -> bool:
        """No chunk is quarantined: every referenced chunk checked so far is sound."""
        return not self.quarantined


def scrub_due(meta: MetadataStore, every: float, now: float | None = None) -> bool:
    """Whether the schedule of a pass every `every` seconds has work now."""
    when = time.time() if now is None else now
    due: bool = meta.read(partial(scrub_cursor.due, every=every, now=when))
    return due


def scrub(
    meta: MetadataStore,
    chunks: ChunkStore,
    rate: float = 0,
    *,
    restart: bool = False,
    take_over: bool = True,
    stop: Callable[[], bool] | None = None,
    sleep: Callable[[float], object] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
) -> ScrubReport | None:
    """Check chunks until the pass under way (or a new one; a new one with `restart`) ends or `stop`
    says so. None if another run holds the pass and `take_over` is not given (the server's job).
    `sleep` and `monotonic` pace the reads (a server's job passes a sleep it can wake to stop);
    `clock` (wall time) stamps the cursor."""
    pacer = BytePacer(rate, clock=monotonic, sleep=sleep)
    run = _Run(meta, chunks, pacer, stop or (lambda: False), progress, clock)
    if not run.begin(restart, take_over):
        return None
    try:
        run.walk()
    finally:
        run.save(release=True)
    return run.finish()


class _Run:
    """One run of a pass: its position, what it found, and the saves of its progress."""

    def __init__(
        self,
        meta: MetadataStore,
        chunks: ChunkStore,
        pacer: BytePacer,
        stop: Callable[[], bool],
        progress: Progress | None,
        clock: Callable[[], float],
    ):
        self.meta, self.chunks, self.pacer, self.stop, self.progress, self.clock = (
            meta,
            chunks,
            pacer,
            stop,
            progress,
            clock,
        )
        self.me = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.report = ScrubReport(rate_limit=int(pacer.rate))
        self.problems: dict[bytes, str] = {}  # this run's finds
        self.unmarked: set[bytes] = set()  # quarantined chunks whose manifests are not marked yet
        self.position: bytes | None = None
        self.unsaved = (0, 0)  # chunks and bytes checked since the last save
        self.saved_at = self.started = time.monotonic()
        self.total = self.done_before = 0

    def begin(self, restart: bool, take_over: bool) -> bool:
        cursor = self.meta.transact(
            partial(scrub_cursor.begin, me=self.me, now=self.clock(), restart=restart, take_over=take_over)
        )
        if cursor is None:
            return False
        self.report.pass_started, self.report.resumed_from = cursor.started, cursor.position
        self.report.pass_chunks_checked, self.report.pass_bytes_checked = cursor.chunks_checked, cursor.bytes_checked
        self.done_before = cursor.bytes_checked  # by earlier runs of the pass: where the progress starts
        self.position = bytes.fromhex(cursor.position) if cursor.position else None
        self.total = self.meta.read(refcount.totals).nbytes
        return True

    def walk(self) -> None:
        while not self.report.stopped:
            rows = self.meta.read(partial(refcount.rows_after, after=self.position, limit=BATCH))
            for digest, row in rows:
                if self.stop() or self.report.stopped:
                    self.report.stopped = self.report.stopped or "stopped"
                    return
                self.check(digest, row)
                self.position = digest
                if time.monotonic() - self.saved_at >= SAVE_EVERY:
                    self.save()
            if len(rows) < BATCH:
                self.report.finished = True
                return

    def check(self, digest: bytes, row: refcount.ChunkRow) -> None:
        if row.deleting or row.count == 0:
            return  # nothing reads it; GC takes it
        if row.quarantined and not self.chunks.exists(digest):
            return  # still gone: listed in the report
        self.pacer.take(row.size)
        problem = _problem(self.chunks, digest, row.size)
        self.unsaved = (self.unsaved[0] + 1, self.unsaved[1] + row.size)
        self.report.chunks_checked += 1
        self.report.bytes_checked += row.size
        if self.progress is not None:
            self.progress("scrub", self.done_before + self.report.bytes_checked, self.total)
        if problem is None and row.quarantined and quarantine.release(self.meta, digest):
            self.report.restored.append(digest.hex())
        elif problem is not None and quarantine.quarantine(self.meta, self.chunks, digest):
            self.problems[digest] = problem
            (self.report.corrupt if problem == "corrupt" else self.report.missing).append(digest.hex())
            self.unmarked.add(digest)

    def save(self, release: bool = False) -> None:
        """Mark the manifests of what was quarantined since the last save, then the cursor."""
        if self.unmarked:
            quarantine.mark_manifests(self.meta, self.unmarked)
            self.unmarked = set()
        chunks, nbytes = self.unsaved
        finished = self.report.finished
        seen = self.meta.transact(
            partial(
                scrub_cursor.advance,
                me=self.me,
                position=self.position,
                chunks=chunks,
                nbytes=nbytes,
                now=self.clock(),
                finished=finished,
                release=release,
            )
        )
        self.unsaved, self.saved_at = (0, 0), time.monotonic()
        if seen is None:
            self.report.stopped = self.report.stopped or "taken over by another scrub"
            self.report.finished = False
            return
        self.report.pass_chunks_checked, self.report.pass_bytes_checked = seen.chunks_checked, seen.bytes_checked

    def finish(self) -> ScrubReport:
        """The report: every chunk quarantined now, with what needs it; the run recorded."""
        report = self.report
        if report.finished:
            quarantine.clear_healed(self.meta)
        held = quarantine.quarantined(self.meta)
        needed = quarantine.holders(self.meta, {digest for digest, _ in held}) if held else {}
        report.quarantined = [
            DamagedChunk(digest.hex(), row.size, self.problems.get(digest, "quarantined before"), needed[digest])
            for digest, row in held
        ]
        report.seconds = round(time.monotonic() - self.started, 3)
        report.throttled_seconds = round(self.pacer.slept, 3)
        findings = {
            "chunks_checked": report.chunks_checked,
            "bytes_checked": report.bytes_checked,
            "corrupt": len(report.corrupt),
            "missing": len(report.missing),
            "restored": len(report.restored),
            "quarantined": len(report.quarantined),
        }
        self.meta.transact(lambda w: runs.record(w, JOB, self.clock(), findings))
        return report


def _problem(chunks: ChunkStore, digest: bytes, size: int) -> str | None:
    """What is wrong with a chunk's bytes, or None when they hash to its name at the right length."""
    try:
        data = chunks.read_all(digest)
    except FileNotFoundError:
        return "missing"
    except ChunkStoreUnavailable:
        raise  # the store, not the chunk: the run ends, and the pass resumes next time
    except StorageIOError:  # EIO: the disk could not read it (the local store logged which file)
        return "unreadable: I/O error (EIO)"
    except OSError as e:
        return f"unreadable: {e.strerror or e}"
    if len(data) != size or chunk_digest(data) != digest:
        return "corrupt"
    return None
