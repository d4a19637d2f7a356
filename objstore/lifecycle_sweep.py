"""The lifecycle sweep: expire objects and versions, abort uploads, as the buckets' rules say.

The sweep is bounded: keys are read `BATCH` at a time in short read transactions, and each deletion
is one `Objects.delete` (usage, counts and references change with the row), conditional on the
row still being the one judged expired. Two sweeps running at once (two workers, or `pyblob gc`
beside the server) only repeat work: deletes and aborts of what is already gone are no-ops. The
server still takes `sweep_lock` so that, normally, one process sweeps.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from . import buckets, versions
from .errors import NoSuchBucket, NoSuchUpload, StoreError
from .lifecycle import LifecycleRule, from_rows
from .meta import ReadTxn
from .multipart import Multipart
from .objects import Objects
from .records import BucketRecord, ObjectRecord, UploadRecord

log = logging.getLogger("pyblob.lifecycle")
BATCH = 1000  # object rows read per read transaction


@dataclass
class LifecycleReport:
    buckets_checked: int = 0
    objects_expired: int = 0
    bytes_expired: int = 0
    noncurrent_versions_expired: int = 0
    delete_markers_expired: int = 0
    lifecycle_uploads_aborted: int = 0
    buckets_failed: int = 0


Stop = Callable[[], bool]


def apply_lifecycle(objects: Objects, multipart: Multipart, now: float, stop: Stop | None = None) -> LifecycleReport:
    """Expire objects and abort uploads of every bucket's enabled rules, as of `now`.

    `stop` is polled between batches: a server shutting down ends the sweep early, and the next
    sweep picks up where this one left off (nothing is remembered between sweeps).
    """
    stop = stop or (lambda: False)
    report = LifecycleReport()
    uploads = _uploads_by_bucket(multipart)
    for bucket in objects.meta.read(buckets.all_buckets):
        rules = [r for r in from_rows(bucket.lifecycle) if r.enabled]
        if not rules or stop():
            continue
        report.buckets_checked += 1
        try:
            for rule in rules:
                if rule.expires_at(0.0) is not None:
                    _expire(objects, bucket, rule, now, report, stop)
            if any(r.noncurrent_days is not None for r in rules):
                _expire_noncurrent(objects, bucket, rules, now, report, stop)
            if bucket.versioning and any(
                r.expired_object_delete_marker or r.expires_at(0.0) is not None for r in rules
            ):
                _expire_markers(objects, bucket, rules, now, report, stop)
            _abort(multipart, uploads.get(bucket.name, []), rules, now, report)
        except (StoreError, ArithmeticError, ValueError) as e:
            # One bucket's bad rules (or a row written by older code) must not stop the others.
            log.warning("lifecycle of bucket %s failed: %s", bucket.name, e)
            report.buckets_failed += 1
    return report


def _uploads_by_bucket(multipart: Multipart) -> dict[str, list[UploadRecord]]:
    found: dict[str, list[UploadRecord]] = {}
    for upload in multipart.list_uploads():
        found.setdefault(upload.bucket, []).append(upload)
    return found


def _expire(
    objects: Objects, bucket: BucketRecord, rule: LifecycleRule, now: float, report: LifecycleReport, stop: Stop
) -> None:
    for batch in _batches(objects, bucket, rule.prefix.encode()):
        for obj in batch:
            if rule.is_expired(obj, now) and _delete(objects, bucket, obj, rule, now):
                report.objects_expired += 1
                report.bytes_expired += obj.size
        if stop():
            return


def _delete(objects: Objects, bucket: BucketRecord, obj: ObjectRecord, rule: LifecycleRule, now: float) -> bool:
    """Delete obj if the row is still this expired version (not replaced or re-tagged since the scan)."""
    try:
        return objects.delete(bucket.name, obj.key, only_if=lambda cur: _same_and_expired(cur, obj, rule, now)).changed
    except NoSuchBucket:
        return False  # the bucket went away during the sweep


def _same_and_expired(cur: ObjectRecord, seen: ObjectRecord, rule: LifecycleRule, now: float) -> bool:
    same = (cur.manifest, cur.created, cur.version_id) == (seen.manifest, seen.created, seen.version_id)
    return same and rule.is_expired(cur, now)


def _expire_noncurrent(
    objects: Objects, bucket: BucketRecord, rules: list[LifecycleRule], now: float, report: LifecycleReport, stop: Stop
) -> None:
    """Remove noncurrent versions that a NoncurrentVersionExpiration rule has expired.

    The scan only proposes: each removal checks again inside its transaction that the version is
    still noncurrent, still the row the scan saw, and still expired at its rank then (a user may
    have restored it, or removed newer versions, since the scan).
    """
    most = max(r.newer_noncurrent or 0 for r in rules)
    for batch in _noncurrent_batches(objects, bucket):
        for obj, rank in batch:
            expired = any(rule.noncurrent_expired(obj, rank, now) for rule in rules)
            if expired and _remove_version(objects, bucket, obj, rules, now, most):
                report.noncurrent_versions_expired += 1
        if stop():
            return


def _noncurrent_batches(objects: Objects, bucket: BucketRecord) -> Iterator[list[tuple[ObjectRecord, int]]]:
    """The bucket's noncurrent versions with their rank among their key's (0 = the newest), BATCH
    rows per short read transaction, in the `versions` table's order (by key hash, newest first)."""
    after, rank = b"", 0
    while True:
        rows = objects.meta.read(partial(versions.bucket_noncurrent, bucket_id=bucket.id, after=after, limit=BATCH))
        batch: list[tuple[ObjectRecord, int]] = []
        for row_key, obj in rows:
            rank = rank + 1 if after and versions.same_key(row_key, after) else 0
            batch.append((obj, rank))
            after = row_key
        if batch:
            yield batch
        if len(batch) < BATCH:
            return


def _remove_version(
    objects: Objects, bucket: BucketRecord, seen: ObjectRecord, rules: list[LifecycleRule], now: float, most: int
) -> bool:
    def still_expired(version: ObjectRecord, rank: int) -> bool:
        same = (version.seq, version.noncurrent_since) == (seen.seq, seen.noncurrent_since)
        return same and any(rule.noncurrent_expired(version, rank, now) for rule in rules)

    try:
        return objects.expire_noncurrent(bucket.name, seen.key, seen.version_id, still_expired, most)
    except NoSuchBucket:
        return False


def _expire_markers(
    objects: Objects, bucket: BucketRecord, rules: list[LifecycleRule], now: float, report: LifecycleReport, stop: Stop
) -> None:
    """Remove delete markers left with no version below them: ExpiredObjectDeleteMarker, and, as at
    AWS, an Expiration by Days or Date of the marker's age."""
    for batch in _batches(objects, bucket, b"", markers=True):
        for marker in batch:
            if any(rule.removes_lone_marker(marker, now) for rule in rules) and _lone_marker_removed(
                objects, bucket, marker
            ):
                report.delete_markers_expired += 1
        if stop():
            return


def _lone_marker_removed(objects: Objects, bucket: BucketRecord, marker: ObjectRecord) -> bool:
    try:
        return objects.remove_lone_marker(bucket.name, marker.key, marker.version_id)
    except NoSuchBucket:
        return False


def _batches(
    objects: Objects, bucket: BucketRecord, prefix: bytes, markers: bool = False
) -> Iterator[list[ObjectRecord]]:
    """The current objects under `prefix` (or with `markers`, the delete markers), BATCH rows read
    per short read transaction."""
    start = prefix
    while True:
        rows = objects.meta.read(partial(_rows_from, bucket_id=bucket.id, start=start, prefix=prefix))
        if not rows:
            return
        start = rows[-1][0] + b"\x00"  # the next key after the last one read
        yield [ObjectRecord.decode(value) for _, value in rows if versions.is_marker_row(value) == markers]
        if len(rows) < BATCH:
            return


def _rows_from(r: ReadTxn, bucket_id: int, start: bytes, prefix: bytes) -> list[tuple[bytes, bytes]]:
    """Up to BATCH latest-version rows (encoded key, row) of the bucket from `start`, under `prefix`."""
    rows: list[tuple[bytes, bytes]] = []
    for raw_key, value in versions.latest_rows(r, bucket_id, start):
        if not raw_key.startswith(prefix) or len(rows) == BATCH:
            break
        rows.append((raw_key, value))
    return rows


def _abort(
    multipart: Multipart, uploads: list[UploadRecord], rules: list[LifecycleRule], now: float, report: LifecycleReport
) -> None:
    for upload in uploads:
        if any(rule.aborts(upload, now) for rule in rules):
            try:
                multipart.abort_upload(upload.upload_id)
            except NoSuchUpload:
                continue  # completed or aborted meanwhile
            report.lifecycle_uploads_aborted += 1


@contextmanager
def sweep_lock(root: Path) -> Iterator[bool]:
    """A non-blocking lock on `<data dir>/lifecycle.lock`: True if this process may sweep now."""
    with open(root / "lifecycle.lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
