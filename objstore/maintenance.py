"""Garbage collection, consistency checks and snapshots of a data dir.

GC removes a chunk only once it has been unreferenced for the grace period, marking its row before
it deletes the bytes, so that a writer racing it never commits a reference to deleted bytes (the
protocol is in `refcount.py`); it needs no lock shared with writers, so it runs beside any number of
nodes. `fsck` recounts every reference from the rows that hold them and re-hashes every
chunk. These jobs span every part, so they take the `Store` and sit above it (it never imports them).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from . import accounts, inflight, leases, manifests, multipart, quarantine, refcount, runs, versions
from .collect import delete_unreferenced, never
from .errors import NoSuchUpload, StorageIOError
from .hashing import chunk_digest
from .links.resumable import charged_bytes
from .links.segments import held_manifests
from .meta import ReadTxn, WriteTxn
from .records import ObjectRecord
from .store import Store

Progress = Callable[[str, int, int], None]
GC_BATCH = 1000
STAGING_MIN_AGE = 60.0  # a staging dir without its lock file yet may belong to a writer starting up
ORPHAN_MIN_AGE_STREAMING = 86400.0  # a request may stream chunks into an S3 store for this long


def _quiet(phase: str, done: int, total: int) -> None:
    pass


@dataclass
class GcReport:
    chunks_removed: int = 0
    bytes_freed: int = 0
    orphans_removed: int = 0
    staging_removed: int = 0
    uploads_aborted: int = 0
    completed_uploads_forgotten: int = 0
    resumable_uploads_expired: int = 0
    usage_folded: int = 0  # users whose usage changes were folded into their row
    intents_cleared: int = 0  # upload intents of writers that committed or died (`inflight.py`)


def collect_garbage(store: Store, progress: Progress | None = None, scan_orphans: bool = False) -> GcReport:
    """Abort abandoned uploads, then remove expired chunks, orphans and dead staging dirs.

    Orphans (chunks a writer stored and never committed) are found from the intents writers record
    (`inflight.py`) and, in the local chunk directory, by walking it; a whole listing of an S3 chunk
    store's bucket only with `scan_orphans` (for intents a crash of the volatile store lost)."""
    progress = progress or _quiet
    report = GcReport()
    report.uploads_aborted = _abort_stale_uploads(store)
    report.completed_uploads_forgotten = store.multipart.prune_completed(store.clock())
    report.resumable_uploads_expired = store.resumables.collect_expired()
    report.usage_folded = _fold_usage(store)
    _fold_totals(store)
    _remove_expired_chunks(store, report, progress)
    _remove_intended_orphans(store, report)
    if scan_orphans or not store.chunks.uploads_before_publish:
        _remove_orphans(store, report, progress)
    report.staging_removed = store.chunks.cleanup(STAGING_MIN_AGE)
    _record_run(store, "gc", dataclasses.asdict(report))
    return report


def _fold_usage(store: Store) -> int:
    """Each user's usage changes into their row, one short transaction per user. A user so busy that
    the fold keeps losing to their commits is left for later: commits fold too (see `accounts`)."""
    folded = 0
    for name in store.meta.read(accounts.users_with_changes):
        try:
            store.meta.transact(partial(accounts.fold_usage, name=name))
            folded += 1
        except TimeoutError:
            continue
    return folded


def _fold_totals(store: Store) -> None:
    """The chunk totals' change rows into their base row; left for later if commits keep winning."""
    try:
        store.meta.transact(refcount.fold_totals)
    except TimeoutError:
        pass


def _record_run(store: Store, job: str, findings: dict[str, int]) -> None:
    store.meta.transact(lambda w: runs.record(w, job, store.clock(), findings))


def _abort_stale_uploads(store: Store) -> int:
    cutoff = store.clock() - store.config.upload_max_age_seconds
    stale = [u for u in store.multipart.list_uploads() if u.created < cutoff]
    aborted = 0
    for upload in stale:
        try:
            store.multipart.abort_upload(upload.upload_id)
            aborted += 1
        except NoSuchUpload:
            pass  # completed or aborted by its client meanwhile
    return aborted


def _remove_expired_chunks(store: Store, report: GcReport, progress: Progress) -> None:
    """Chunks unreferenced for the grace period, in `refcount`'s three steps (mark, delete the bytes,
    drop the row); rows a GC that died left marked are finished too."""
    cutoff = store.clock() - store.config.gc_grace_seconds
    candidates = store.meta.read(
        lambda r: [d for d, row in refcount.all_rows(r) if row.deleting or _expired(row, cutoff)]
    )
    for i in range(0, len(candidates), GC_BATCH):
        removed, freed, _ = _delete_chunks(
            store, candidates[i : i + GC_BATCH], cutoff, partial(_expired, cutoff=cutoff)
        )
        report.chunks_removed += removed
        report.bytes_freed += freed
        progress("expired chunks", min(i + GC_BATCH, len(candidates)), len(candidates))


def _delete_chunks(
    store: Store, digests: list[bytes], cutoff: float, still_unused: Callable[[refcount.ChunkRow], bool]
) -> tuple[int, int, int]:
    return delete_unreferenced(store.meta, store.chunks, digests, still_unused, store.clock(), cutoff)


def _expired(row: refcount.ChunkRow, cutoff: float) -> bool:
    return row.count == 0 and row.zero_since <= cutoff


def _remove_orphans(store: Store, report: GcReport, progress: Progress) -> None:
    """Stored chunks with no row, unchanged for the grace period: left by a writer that died
    between publishing and committing (a live writer of the local store commits within moments of
    publishing). A store that takes chunks while they stream in (S3) holds a live writer's chunks
    without rows for as long as its request lasts: there, only chunks older than a day are orphans."""
    age = store.config.gc_grace_seconds
    if store.chunks.uploads_before_publish:
        age = max(age, ORPHAN_MIN_AGE_STREAMING)
    cutoff = store.clock() - age
    for found, n, total in store.chunks.iterate():
        old = [digest for digest, written in found if written <= cutoff]
        orphans = store.meta.read(partial(_unreferenced, old))
        if orphans:
            report.orphans_removed += _delete_chunks(store, orphans, cutoff, never)[2]
        progress("orphan scan", n, total)


def _remove_intended_orphans(store: Store, report: GcReport) -> None:
    """Intents left behind (`inflight.py`): dropped where the chunk got a row (some writer committed
    it); where their writer is gone, gave up, or has streamed for longer than any request lasts, the
    chunk goes as an orphan first (bytes written again after the grace period's cutoff stay)."""
    volatile = store.intents.volatile
    now = time.time()  # intents and leases are stamped with the wall clock, as other nodes read them
    left = volatile.read(lambda r: list(inflight.left_behind(r, now)))
    cutoff = store.clock() - store.config.gc_grace_seconds
    for i in range(0, len(left), GC_BATCH):
        batch = left[i : i + GC_BATCH]
        digests = [digest for digest, *_ in batch]
        committed = set(digests) - set(store.meta.read(partial(_unreferenced, digests)))

        orphans = volatile.read(partial(_given_up, batch, committed, now))
        if orphans:
            report.orphans_removed += _delete_chunks(store, sorted({d for d, _ in orphans}), cutoff, never)[2]
        done = [(d, t) for d, t, *_ in batch if d in committed] + orphans
        volatile.transact(partial(inflight.drop, intents=done))
        report.intents_cleared += len(done)


def _given_up(
    intents: list[tuple[bytes, str, float, bool]], committed: set[bytes], now: float, r: ReadTxn
) -> list[tuple[bytes, str]]:
    """The intents whose writer is gone, gave up, or has streamed for longer than any request lasts."""
    return [
        (digest, tag)
        for digest, tag, when, abandoned in intents
        if digest not in committed
        and (abandoned or now - when > ORPHAN_MIN_AGE_STREAMING or not leases.alive(r, tag, now))
    ]


def _unreferenced(digests: list[bytes], r: ReadTxn) -> list[bytes]:
    return [d for d in digests if refcount.get(r, d) is None]


@dataclass
class FsckReport:
    problems: list[str] = field(default_factory=list)
    repaired: int = 0
    chunks_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Expected:
    """Every count as the rows that hold references imply it."""

    manifest_refs: Counter[bytes] = field(default_factory=Counter)
    chunk_refs: Counter[bytes] = field(default_factory=Counter)
    chunk_sizes: dict[bytes, int] = field(default_factory=dict)
    usage: Counter[str] = field(default_factory=Counter)
    objects: Counter[str] = field(default_factory=Counter)
    manifest_users: dict[bytes, list[str]] = field(default_factory=dict)


def _expected(r: ReadTxn) -> _Expected:
    exp = _Expected()
    for obj in versions.all_rows(r):
        _count_object(exp, obj)
    for upload, part in multipart.part_refs(r):
        exp.manifest_refs[bytes.fromhex(part.manifest)] += 1
        if upload is not None:
            exp.usage[upload.owner] += part.size
    exp.usage.update(charged_bytes(r))  # unfinished tus uploads hold their declared length
    for mid in held_manifests(r):  # and their segments, a manifest reference each
        exp.manifest_refs[mid] += 1
    for mid, head in manifests.iter_manifests(r):
        if head.kind == manifests.KIND_CHUNKS:
            for digest, length in manifests.all_entries(r, mid):
                exp.chunk_refs[digest] += 1
                exp.chunk_sizes[digest] = length
    return exp


def _count_object(exp: _Expected, obj: ObjectRecord) -> None:
    """One version's share: its manifest reference and its owner's usage (delete markers hold none)."""
    if obj.delete_marker:
        return
    mid = bytes.fromhex(obj.manifest)
    exp.manifest_refs[mid] += 1
    exp.usage[obj.owner] += obj.size
    exp.objects[obj.owner] += 1
    exp.manifest_users.setdefault(mid, []).append(obj.key)


def fsck(store: Store, repair: bool = False, progress: Progress | None = None) -> FsckReport:
    """Check counts, usage and every chunk file; with `repair`, fix counts and quarantine bad chunks."""
    progress = progress or _quiet
    report = FsckReport()
    exp = store.meta.read(lambda r: _checked_rows(r, report))
    bad = _check_files(store, exp, report, progress)
    if repair and (report.problems or bad):
        _repair(store, bad, report)
    findings = {"problems": len(report.problems), "repaired": report.repaired, "chunks_checked": report.chunks_checked}
    _record_run(store, "fsck", findings)
    return report


def _checked_rows(r: ReadTxn, report: FsckReport) -> _Expected:
    exp = _expected(r)
    _check_rows(r, exp, report)
    return exp


def _check_rows(r: ReadTxn, exp: _Expected, report: FsckReport) -> None:
    heads = dict(manifests.iter_manifests(r))
    for mid, n in exp.manifest_refs.items():
        head = heads.get(mid)
        if head is None:
            report.problems.append(f"manifest {mid.hex()} is missing (objects: {exp.manifest_users.get(mid, [])})")
        elif head.refs != n:
            report.problems.append(f"manifest {mid.hex()} counts {head.refs} references, rows hold {n}")
    for mid in heads.keys() - exp.manifest_refs.keys():
        report.problems.append(f"manifest {mid.hex()} is referenced by nothing")
    rows = dict(refcount.all_rows(r))
    for digest, n in exp.chunk_refs.items():
        row = rows.get(digest)
        if row is None or row.count != n:
            report.problems.append(f"chunk {digest.hex()} counts {row.count if row else 'no row'}, manifests hold {n}")
    for digest in rows.keys() - exp.chunk_refs.keys():
        if rows[digest].count != 0:
            report.problems.append(f"chunk {digest.hex()} counts {rows[digest].count}, manifests hold 0")
    if not refcount.totals_agree(r):
        stored = refcount.totals(r)
        report.problems.append(
            f"chunk totals say {stored.chunks} chunks / {stored.nbytes} bytes, rows hold {len(rows)} / "
            f"{sum(row.size for row in rows.values())}"
        )
    for user in accounts.all_users(r):
        if (user.usage_bytes, user.object_count) != (exp.usage[user.name], exp.objects[user.name]):
            report.problems.append(
                f"user {user.name} usage {user.usage_bytes} bytes / {user.object_count} objects, "
                f"rows hold {exp.usage[user.name]} / {exp.objects[user.name]}"
            )


def _check_files(store: Store, exp: _Expected, report: FsckReport, progress: Progress) -> set[bytes]:
    """Re-hash every referenced chunk; returns the digests that are missing, unreadable or corrupt."""
    bad: set[bytes] = set()
    total = len(exp.chunk_refs)
    for n, digest in enumerate(exp.chunk_refs, 1):
        try:
            data = store.chunks.read_all(digest)
        except FileNotFoundError:
            report.problems.append(f"chunk {digest.hex()} is missing")
            bad.add(digest)
            continue
        except StorageIOError:  # EIO: the disk cannot read it (the chunk store logged its path); as scrub
            report.problems.append(f"chunk {digest.hex()} is unreadable (I/O error)")
            bad.add(digest)
            continue
        if chunk_digest(data) != digest or len(data) != exp.chunk_sizes[digest]:
            report.problems.append(f"chunk {digest.hex()} is corrupt (content does not hash to its name)")
            bad.add(digest)
        report.chunks_checked += 1
        progress("re-hash chunks", n, total)
    return bad


def _repair(store: Store, bad: set[bytes], report: FsckReport) -> None:
    """Recount from the rows (in one write transaction) and quarantine corrupt and missing chunks
    (`quarantine.py`: bytes moved aside, rows and manifests marked, so reads of them fail clearly)."""
    for digest in bad:
        if store.chunks.quarantine(digest):
            report.repaired += 1
        quarantine.mark(store.meta, digest)
    if bad:
        quarantine.mark_manifests(store.meta, bad)

    def recount(w: WriteTxn) -> int:
        exp = _expected(w)
        fixed = _recount_manifests(w, exp) + _recount_chunks(w, exp, store.clock()) + _recount_usage(w, exp)
        return fixed + int(refcount.recount_totals(w))

    report.repaired += store.meta.transact(recount)


def _recount_manifests(w: WriteTxn, exp: _Expected) -> int:
    fixed = 0
    for mid, head in list(manifests.iter_manifests(w)):
        if head.refs != exp.manifest_refs.get(mid, 0):
            head.refs = exp.manifest_refs.get(mid, 0)
            manifests.put_head(w, mid, head)
            fixed += 1
    return fixed


def _recount_chunks(w: WriteTxn, exp: _Expected, now: float) -> int:
    fixed = 0
    rows = dict(refcount.all_rows(w))
    for digest in rows.keys() | exp.chunk_refs.keys():
        row = rows.get(digest) or refcount.ChunkRow(-1, 0.0, exp.chunk_sizes.get(digest, 0))
        n = exp.chunk_refs.get(digest, 0)
        if row.count != n:
            row.count, row.zero_since = n, (now if n == 0 else 0.0)
            refcount.put(w, digest, row)
            fixed += 1
    return fixed


def _recount_usage(w: WriteTxn, exp: _Expected) -> int:
    fixed = 0
    for user in accounts.all_users(w):
        want = (exp.usage[user.name], exp.objects[user.name])
        if (user.usage_bytes, user.object_count) != want:
            user.usage_bytes, user.object_count = want
            accounts.put_user(w, user)
            fixed += 1
    return fixed


def snapshot(store: Store, dest: Path) -> None:
    """A consistent copy of all metadata into `dest` (for LMDB, an environment: dest/data.mdb)."""
    store.meta.copy_to(Path(dest))
