"""Bucket lifecycle rules and the sweep that enforces them: expiring objects and versions, aborting uploads.

The model follows S3's LifecycleConfiguration
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lifecycle-mgmt.html) for the actions a
store without storage classes can take: `Expiration` (Days or Date, or `ExpiredObjectDeleteMarker`),
`NoncurrentVersionExpiration` (NoncurrentDays, optionally keeping the `NewerNoncurrentVersions`
newest) and `AbortIncompleteMultipartUpload` (DaysAfterInitiation), filtered by key prefix, tags
and object size. In a versioned bucket, expiring the current version adds a delete marker, as
DeleteObject does; noncurrent versions are removed for good; a delete marker with no older
versions left ("expired") is removed by `ExpiredObjectDeleteMarker`.

Timing is AWS's (https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-expire-general-considerations.html):
an object expires at creation time + Days, *rounded up to the next midnight UTC* (created 01-15 10:30
with Days=3 → expires 01-19 00:00). Uploads are aborted by the same arithmetic from their initiation,
and noncurrent versions from the time they became noncurrent. A Date rule expires every matching
object from that midnight on.

The sweep is bounded: keys are read `BATCH` at a time in short read transactions, and each deletion
is one `Store.delete_object` (usage, counts and references change with the row), conditional on the
row still being the one judged expired. Two sweeps running at once (two workers, or `pyblob gc`
beside the server) only repeat work: deletes and aborts of what is already gone are no-ops. The
server still takes `sweep_lock` so that, normally, one process sweeps.
"""

from __future__ import annotations

import fcntl
import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import listing, versions
from .errors import InvalidArgument, NoSuchBucket, NoSuchUpload, StoreError
from .records import BucketRecord, ObjectRecord, UploadRecord

if TYPE_CHECKING:
    from .store import Store

DAY = 86400.0
log = logging.getLogger("pyblob.lifecycle")
MAX_RULES = 1000
MAX_ID_LENGTH = 255
MAX_DAYS = 2**31 - 1  # S3's integer range; keeps day arithmetic finite
MAX_NEWER_NONCURRENT = 100  # S3's bound on NewerNoncurrentVersions
BATCH = 1000  # object rows read per read transaction


@dataclass
class LifecycleRule:
    """One enabled-or-disabled rule; None/empty fields do not filter or act."""

    id: str = ""
    enabled: bool = True
    prefix: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    size_greater_than: int | None = None
    size_less_than: int | None = None
    expiration_days: int | None = None
    expiration_date: float | None = None  # epoch seconds of a midnight UTC
    abort_upload_days: int | None = None
    noncurrent_days: int | None = None
    newer_noncurrent: int | None = None  # noncurrent versions kept whatever their age
    expired_object_delete_marker: bool = False
    # How the filter was written, so it is given back the same way ("" = the Filter form that fits;
    # "prefix-element" = the legacy top-level Prefix; "empty", "prefix", "tag", "and", "size").
    filter_form: str = ""

    def has_action(self) -> bool:
        return (
            self.expires_at(0.0) is not None or self.abort_upload_days is not None
            or self.noncurrent_days is not None or self.expired_object_delete_marker
        )

    def matches(self, obj: ObjectRecord) -> bool:
        """Whether the rule's filter selects this object (prefix, every tag, size bounds)."""
        if not obj.key.startswith(self.prefix):
            return False
        if any(obj.tags.get(k) != v for k, v in self.tags.items()):
            return False
        if self.size_greater_than is not None and not obj.size > self.size_greater_than:
            return False
        return self.size_less_than is None or obj.size < self.size_less_than

    def expires_at(self, created: float) -> float | None:
        """When an object created at `created` expires under this rule (None: never)."""
        if self.expiration_days is not None:
            return next_midnight(created + self.expiration_days * DAY)
        return self.expiration_date

    def is_expired(self, obj: ObjectRecord, now: float) -> bool:
        at = self.expires_at(obj.created)
        return self.enabled and not obj.delete_marker and at is not None and at <= now and self.matches(obj)

    def removes_lone_marker(self, marker: ObjectRecord, now: float) -> bool:
        """Whether this rule removes a delete marker that has no older version left: one of
        ExpiredObjectDeleteMarker's, or of an Expiration the marker is old enough for (AWS does both)."""
        if not self.enabled or not self.matches(marker):
            return False
        at = self.expires_at(marker.created)
        return self.expired_object_delete_marker or (at is not None and at <= now)

    def noncurrent_expired(self, obj: ObjectRecord, rank: int, now: float) -> bool:
        """Whether a noncurrent version, `rank` newer noncurrent ones above it, has expired."""
        if not self.enabled or self.noncurrent_days is None or rank < (self.newer_noncurrent or 0):
            return False
        since = obj.noncurrent_since if obj.noncurrent_since is not None else obj.created
        return next_midnight(since + self.noncurrent_days * DAY) <= now and self.matches(obj)

    def aborts(self, upload: UploadRecord, now: float) -> bool:
        if not self.enabled or self.abort_upload_days is None or not upload.key.startswith(self.prefix):
            return False
        return next_midnight(upload.created + self.abort_upload_days * DAY) <= now


def next_midnight(t: float) -> float:
    """`t` rounded up to a midnight UTC (a midnight stays itself), as S3 rounds expiry times."""
    return math.ceil(t / DAY) * DAY


def validate(rules: list[LifecycleRule], require_action: bool = True) -> None:
    """The engine's own checks, whatever layer built the rules (InvalidArgument). Without
    `require_action`, a rule may have none of the engine's actions (its layer checks others)."""
    if not 1 <= len(rules) <= MAX_RULES:
        raise InvalidArgument(f"a lifecycle configuration has 1 to {MAX_RULES} rules")
    ids = [r.id for r in rules if r.id]
    if len(ids) != len(set(ids)):
        raise InvalidArgument("Rule ID must be unique. Found same ID for more than one rule")
    for rule in rules:
        _validate_rule(rule, require_action)


def _validate_rule(rule: LifecycleRule, require_action: bool = True) -> None:
    if len(rule.id) > MAX_ID_LENGTH:
        raise InvalidArgument(f"ID length should not exceed allowed limit of {MAX_ID_LENGTH}")
    for days in (rule.expiration_days, rule.abort_upload_days, rule.noncurrent_days):
        if days is not None and days > MAX_DAYS:
            raise InvalidArgument(f"a number of days must be at most {MAX_DAYS}")
    if rule.expiration_days is not None and rule.expiration_days <= 0:
        raise InvalidArgument("'Days' for Expiration action must be a positive integer")
    if rule.expiration_days is not None and rule.expiration_date is not None:
        raise InvalidArgument("Expiration takes Days or Date, not both")
    if rule.expiration_date is not None and rule.expiration_date % DAY:
        raise InvalidArgument("'Date' must be at midnight GMT")
    if rule.abort_upload_days is not None and rule.abort_upload_days <= 0:
        raise InvalidArgument("'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer")
    sized = rule.size_greater_than is not None or rule.size_less_than is not None
    if rule.abort_upload_days is not None and (rule.tags or sized):
        raise InvalidArgument("AbortIncompleteMultipartUpload cannot be specified with Tags or object size filters")
    _validate_versioned(rule)
    if require_action and not rule.has_action():
        raise InvalidArgument("At least one action needs to be specified in a rule")


def _validate_versioned(rule: LifecycleRule) -> None:
    if rule.noncurrent_days is not None and rule.noncurrent_days <= 0:
        raise InvalidArgument("'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer")
    if rule.newer_noncurrent is not None:
        if rule.noncurrent_days is None:
            raise InvalidArgument("NewerNoncurrentVersions needs NoncurrentDays")
        if not 1 <= rule.newer_noncurrent <= MAX_NEWER_NONCURRENT:
            raise InvalidArgument(f"'NewerNoncurrentVersions' must be an integer from 1 to {MAX_NEWER_NONCURRENT}")
    if rule.expired_object_delete_marker:
        if rule.expires_at(0.0) is not None:
            raise InvalidArgument("ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle Expiration Policy")
        if rule.tags:
            raise InvalidArgument("ExpiredObjectDeleteMarker cannot be specified with a Tag filter")


def to_rows(rules: list[LifecycleRule]) -> list[dict[str, Any]]:
    """Rules as the JSON the bucket row keeps."""
    return [asdict(r) for r in rules]


def from_rows(rows: list[dict[str, Any]] | None) -> list[LifecycleRule]:
    known = set(LifecycleRule.__dataclass_fields__)
    return [LifecycleRule(**{k: v for k, v in row.items() if k in known}) for row in rows or []]


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


def apply_lifecycle(store: "Store", now: float, stop: Stop | None = None) -> LifecycleReport:
    """Expire objects and abort uploads of every bucket's enabled rules, as of `now`.

    `stop` is polled between batches: a server shutting down ends the sweep early, and the next
    sweep picks up where this one left off (nothing is remembered between sweeps).
    """
    stop = stop or (lambda: False)
    report = LifecycleReport()
    uploads = _uploads_by_bucket(store)
    for bucket in store.list_buckets():
        rules = [r for r in from_rows(bucket.lifecycle) if r.enabled]
        if not rules or stop():
            continue
        report.buckets_checked += 1
        try:
            for rule in rules:
                if rule.expires_at(0.0) is not None:
                    _expire(store, bucket, rule, now, report, stop)
            if any(r.noncurrent_days is not None for r in rules):
                _expire_noncurrent(store, bucket, rules, now, report, stop)
            if bucket.versioning and any(r.expired_object_delete_marker or r.expires_at(0.0) is not None for r in rules):
                _expire_markers(store, bucket, rules, now, report, stop)
            _abort(store, uploads.get(bucket.name, []), rules, now, report)
        except (StoreError, ArithmeticError, ValueError) as e:
            # One bucket's bad rules (or a row written by older code) must not stop the others.
            log.warning("lifecycle of bucket %s failed: %s", bucket.name, e)
            report.buckets_failed += 1
    return report


def _uploads_by_bucket(store: "Store") -> dict[str, list[UploadRecord]]:
    found: dict[str, list[UploadRecord]] = {}
    for upload in store.multipart.list_uploads():
        found.setdefault(upload.bucket, []).append(upload)
    return found


def _expire(store: "Store", bucket: BucketRecord, rule: LifecycleRule, now: float, report: LifecycleReport, stop: Stop) -> None:
    for batch in _batches(store, bucket, rule.prefix.encode()):
        for obj in batch:
            if rule.is_expired(obj, now) and _delete(store, bucket, obj, rule, now):
                report.objects_expired += 1
                report.bytes_expired += obj.size
        if stop():
            return


def _delete(store: "Store", bucket: BucketRecord, obj: ObjectRecord, rule: LifecycleRule, now: float) -> bool:
    """Delete obj if the row is still this expired version (not replaced or re-tagged since the scan)."""
    try:
        return store.delete_object(bucket.name, obj.key, only_if=lambda cur: _same_and_expired(cur, obj, rule, now)).changed
    except NoSuchBucket:
        return False  # the bucket went away during the sweep


def _same_and_expired(cur: ObjectRecord, seen: ObjectRecord, rule: LifecycleRule, now: float) -> bool:
    same = (cur.manifest, cur.created, cur.version_id) == (seen.manifest, seen.created, seen.version_id)
    return same and rule.is_expired(cur, now)


def _expire_noncurrent(
    store: "Store", bucket: BucketRecord, rules: list[LifecycleRule], now: float, report: LifecycleReport, stop: Stop
) -> None:
    """Remove noncurrent versions that a NoncurrentVersionExpiration rule has expired.

    The scan only proposes: each removal checks again inside its transaction that the version is
    still noncurrent, still the row the scan saw, and still expired at its rank then (a user may
    have restored it, or removed newer versions, since the scan).
    """
    most = max(r.newer_noncurrent or 0 for r in rules)
    for batch in _noncurrent_batches(store, bucket):
        for obj, rank in batch:
            if any(rule.noncurrent_expired(obj, rank, now) for rule in rules):
                if _remove_version(store, bucket, obj, rules, now, most):
                    report.noncurrent_versions_expired += 1
        if stop():
            return


def _noncurrent_batches(store: "Store", bucket: BucketRecord) -> Iterator[list[tuple[ObjectRecord, int]]]:
    """The bucket's noncurrent versions with their rank among their key's (0 = the newest), BATCH
    rows per short read transaction, in the `versions` table's order (by key hash, newest first)."""
    after, rank = b"", 0
    while True:
        with store.db.read() as r:
            rows = versions.bucket_noncurrent(r, bucket.id, after, BATCH)
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
    store: "Store", bucket: BucketRecord, seen: ObjectRecord, rules: list[LifecycleRule], now: float, most: int
) -> bool:
    def still_expired(version: ObjectRecord, rank: int) -> bool:
        same = (version.seq, version.noncurrent_since) == (seen.seq, seen.noncurrent_since)
        return same and any(rule.noncurrent_expired(version, rank, now) for rule in rules)

    try:
        return store.expire_noncurrent(bucket.name, seen.key, seen.version_id, still_expired, most)
    except NoSuchBucket:
        return False


def _expire_markers(
    store: "Store", bucket: BucketRecord, rules: list[LifecycleRule], now: float, report: LifecycleReport, stop: Stop
) -> None:
    """Remove delete markers left with no version below them: ExpiredObjectDeleteMarker, and, as at
    AWS, an Expiration by Days or Date of the marker's age."""
    for batch in _batches(store, bucket, b"", markers=True):
        for marker in batch:
            if any(rule.removes_lone_marker(marker, now) for rule in rules) and _lone_marker_removed(store, bucket, marker):
                report.delete_markers_expired += 1
        if stop():
            return


def _lone_marker_removed(store: "Store", bucket: BucketRecord, marker: ObjectRecord) -> bool:
    try:
        return store.remove_lone_marker(bucket.name, marker.key, marker.version_id)
    except NoSuchBucket:
        return False


def _batches(store: "Store", bucket: BucketRecord, prefix: bytes, markers: bool = False) -> Iterator[list[ObjectRecord]]:
    """The current objects under `prefix` (or with `markers`, the delete markers), BATCH rows read
    per short read transaction."""
    start = prefix
    while True:
        batch: list[ObjectRecord] = []
        read = 0
        with store.db.read() as r:
            for raw_key, value in listing.iter_from(r, bucket.id, start):
                if not raw_key.startswith(prefix) or read == BATCH:
                    break
                read += 1
                start = raw_key + b"\x00"  # the next key after the last one read
                if versions.is_marker_row(value) == markers:
                    batch.append(ObjectRecord.decode(value))
        if not read:
            return
        yield batch
        if read < BATCH:
            return


def _abort(store: "Store", uploads: list[UploadRecord], rules: list[LifecycleRule], now: float, report: LifecycleReport) -> None:
    for upload in uploads:
        if any(rule.aborts(upload, now) for rule in rules):
            try:
                store.multipart.abort_upload(upload.upload_id)
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

