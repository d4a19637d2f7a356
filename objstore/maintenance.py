"""Garbage collection, consistency checks and snapshots of a data dir.

GC removes a chunk only under the LMDB write lock and only once it has been unreferenced for the
grace period; writers install chunks under the same lock, so the two never race (see `writer.py`).
`fsck` recounts every reference from the rows that hold them and re-hashes every chunk file.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from . import manifests, refcount
from .db import Txn
from .hashing import chunk_digest
from .errors import NoSuchUpload
from .records import ObjectRecord, PartRecord, UploadRecord, UserRecord
from .resumable import Resumables, charged_bytes

if TYPE_CHECKING:
    from .store import Store

Progress = Callable[[str, int, int], None]
GC_BATCH = 1000
STAGING_MIN_AGE = 60.0  # a staging dir without its lock file yet may belong to a writer starting up


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


def collect_garbage(store: "Store", progress: Progress | None = None) -> GcReport:
    """Abort abandoned uploads, then remove expired chunks, orphan files and dead staging dirs."""
    progress = progress or _quiet
    report = GcReport()
    report.uploads_aborted = _abort_stale_uploads(store)
    report.completed_uploads_forgotten = store.multipart.prune_completed(store.clock())
    report.resumable_uploads_expired = Resumables(store).collect_expired()
    _remove_expired_chunks(store, report, progress)
    _remove_orphans(store, report, progress)
    for d in store.blobs.iter_stale_staging(STAGING_MIN_AGE):
        shutil.rmtree(d, ignore_errors=True)
        report.staging_removed += 1
    return report


def _abort_stale_uploads(store: "Store") -> int:
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


def _remove_expired_chunks(store: "Store", report: GcReport, progress: Progress) -> None:
    cutoff = store.clock() - store.config.gc_grace_seconds
    with store.db.read() as r:
        candidates = [bytes(k) for k, v in r.cursor("chunks") if _expired(refcount.ChunkRow.decode(v), cutoff)]
    for i in range(0, len(candidates), GC_BATCH):
        with store.db.write() as w:
            for digest in candidates[i : i + GC_BATCH]:
                row = refcount.get(w, digest)
                if row is None or not _expired(row, cutoff):
                    continue  # referenced again since the scan
                # Under the write lock no writer commits a reference meanwhile; a writer that has
                # just renamed the same bytes into place (fresh ctime) keeps its file.
                if (store.blobs.ctime(digest) or 0.0) <= cutoff:
                    store.blobs.remove(digest)
                w.delete("chunks", digest)
                report.chunks_removed += 1
                report.bytes_freed += row.size
        progress("expired chunks", min(i + GC_BATCH, len(candidates)), len(candidates))


def _expired(row: refcount.ChunkRow, cutoff: float) -> bool:
    return row.count == 0 and row.zero_since <= cutoff


def _remove_orphans(store: "Store", report: GcReport, progress: Progress) -> None:
    """Chunk files with no row, unchanged for the grace period: left by a writer that died
    between publishing and committing (a live writer commits within moments of its renames)."""
    cutoff = store.clock() - store.config.gc_grace_seconds
    dirs = list(store.blobs.iter_chunk_dirs())
    for n, leaf in enumerate(dirs, 1):
        names = [p.name for p in leaf.iterdir() if _older(p, cutoff)]
        with store.db.read() as r:
            orphans = [name for name in names if _orphan(r, name)]
        if orphans:
            with store.db.write() as w:
                for name in orphans:
                    if _orphan(w, name) and _older(leaf / name, cutoff):
                        (leaf / name).unlink(missing_ok=True)
                        report.orphans_removed += 1
        progress("orphan scan", n, len(dirs))


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_ctime <= cutoff
    except FileNotFoundError:
        return False


def _orphan(r: Txn, name: str) -> bool:
    try:
        digest = bytes.fromhex(name)
    except ValueError:
        return False  # not ours: leave it alone
    return len(digest) == 32 and r.get("chunks", digest) is None


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


def _expected(r: Txn) -> _Expected:
    exp = _Expected()
    for table in ("objects", "versions"):
        for _, raw in r.cursor(table):
            _count_object(exp, ObjectRecord.decode(raw))
    uploads = {u.upload_id: u for u in (UploadRecord.decode(v) for _, v in r.cursor("uploads"))}
    for key, raw in r.cursor("parts"):
        part = PartRecord.decode(raw)
        upload = uploads.get(bytes(key).split(b"/")[0].decode())
        exp.manifest_refs[bytes.fromhex(part.manifest)] += 1
        if upload is not None:
            exp.usage[upload.owner] += part.size
    exp.usage.update(charged_bytes(r))  # unfinished tus uploads hold their declared length
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


def fsck(store: "Store", repair: bool = False, progress: Progress | None = None) -> FsckReport:
    """Check counts, usage and every chunk file; with `repair`, fix counts and quarantine bad chunks."""
    progress = progress or _quiet
    report = FsckReport()
    with store.db.read() as r:
        exp = _expected(r)
        _check_rows(r, exp, report)
    bad = _check_files(store, exp, report, progress)
    if repair and (report.problems or bad):
        _repair(store, bad, report)
    return report


def _check_rows(r: Txn, exp: _Expected, report: FsckReport) -> None:
    heads = dict(manifests.iter_manifests(r))
    for mid, n in exp.manifest_refs.items():
        head = heads.get(mid)
        if head is None:
            report.problems.append(f"manifest {mid.hex()} is missing (objects: {exp.manifest_users.get(mid, [])})")
        elif head.refs != n:
            report.problems.append(f"manifest {mid.hex()} counts {head.refs} references, rows hold {n}")
    for mid in heads.keys() - exp.manifest_refs.keys():
        report.problems.append(f"manifest {mid.hex()} is referenced by nothing")
    rows = {bytes(k): refcount.ChunkRow.decode(v) for k, v in r.cursor("chunks")}
    for digest, n in exp.chunk_refs.items():
        row = rows.get(digest)
        if row is None or row.count != n:
            report.problems.append(f"chunk {digest.hex()} counts {row.count if row else 'no row'}, manifests hold {n}")
    for digest in rows.keys() - exp.chunk_refs.keys():
        if rows[digest].count != 0:
            report.problems.append(f"chunk {digest.hex()} counts {rows[digest].count}, manifests hold 0")
    for _, raw in r.cursor("users"):
        user = UserRecord.decode(raw)
        if (user.usage_bytes, user.object_count) != (exp.usage[user.name], exp.objects[user.name]):
            report.problems.append(
                f"user {user.name} usage {user.usage_bytes} bytes / {user.object_count} objects, "
                f"rows hold {exp.usage[user.name]} / {exp.objects[user.name]}"
            )


def _check_files(store: "Store", exp: _Expected, report: FsckReport, progress: Progress) -> set[bytes]:
    """Re-hash every referenced chunk; returns the digests that are missing or corrupt."""
    bad: set[bytes] = set()
    total = len(exp.chunk_refs)
    for n, digest in enumerate(exp.chunk_refs, 1):
        path = store.blobs.path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            report.problems.append(f"chunk {digest.hex()} is missing")
            bad.add(digest)
            continue
        if chunk_digest(data) != digest or len(data) != exp.chunk_sizes[digest]:
            report.problems.append(f"chunk {digest.hex()} is corrupt (content does not hash to its name)")
            bad.add(digest)
        report.chunks_checked += 1
        progress("re-hash chunks", n, total)
    return bad


def _repair(store: "Store", bad: set[bytes], report: FsckReport) -> None:
    """Recount from the rows (under the write lock) and move corrupt chunks aside."""
    quarantine = store.root / "quarantine"
    for digest in bad:
        path = store.blobs.path(digest)
        if path.exists():
            quarantine.mkdir(exist_ok=True)
            shutil.move(str(path), quarantine / digest.hex())
            report.repaired += 1
    with store.db.write() as w:
        exp = _expected(w)
        report.repaired += _recount_manifests(w, exp) + _recount_chunks(w, exp, store.clock()) + _recount_usage(w, exp)


def _recount_manifests(w: Txn, exp: _Expected) -> int:
    fixed = 0
    for mid, head in list(manifests.iter_manifests(w)):
        if head.refs != exp.manifest_refs.get(mid, 0):
            head.refs = exp.manifest_refs.get(mid, 0)
            w.put("manifests", mid, head.encode())
            fixed += 1
    return fixed


def _recount_chunks(w: Txn, exp: _Expected, now: float) -> int:
    fixed = 0
    rows = {bytes(k): refcount.ChunkRow.decode(v) for k, v in w.cursor("chunks")}
    for digest in rows.keys() | exp.chunk_refs.keys():
        row = rows.get(digest) or refcount.ChunkRow(-1, 0.0, exp.chunk_sizes.get(digest, 0))
        n = exp.chunk_refs.get(digest, 0)
        if row.count != n:
            row.count, row.zero_since = n, (now if n == 0 else 0.0)
            w.put("chunks", digest, row.encode())
            fixed += 1
    return fixed


def _recount_usage(w: Txn, exp: _Expected) -> int:
    fixed = 0
    for key, raw in list(w.cursor("users")):
        user = UserRecord.decode(raw)
        want = (exp.usage[user.name], exp.objects[user.name])
        if (user.usage_bytes, user.object_count) != want:
            user.usage_bytes, user.object_count = want
            w.put("users", bytes(key), user.encode())
            fixed += 1
    return fixed


def snapshot(store: "Store", dest: Path) -> None:
    """A consistent copy of all metadata into `dest` (an LMDB environment: dest/data.mdb)."""
    store.db.copy_to(Path(dest))
