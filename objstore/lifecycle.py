"""Bucket lifecycle rules: what expires objects and versions and aborts uploads, and when.

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

The sweep that enforces them is `lifecycle_sweep.py`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import InvalidArgument
from .records import ObjectRecord, UploadRecord

DAY = 86400.0
MAX_RULES = 1000
MAX_ID_LENGTH = 255
MAX_DAYS = 2**31 - 1  # S3's integer range; keeps day arithmetic finite
MAX_NEWER_NONCURRENT = 100  # S3's bound on NewerNoncurrentVersions


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
            self.expires_at(0.0) is not None
            or self.abort_upload_days is not None
            or self.noncurrent_days is not None
            or self.expired_object_delete_marker
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
        raise InvalidArgument(
            "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer"
        )
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
            raise InvalidArgument(
                "ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle Expiration Policy"
            )
        if rule.tags:
            raise InvalidArgument("ExpiredObjectDeleteMarker cannot be specified with a Tag filter")


def to_rows(rules: list[LifecycleRule]) -> list[dict[str, Any]]:
    """Rules as the JSON the bucket row keeps."""
    return [asdict(r) for r in rules]


def from_rows(rows: list[dict[str, Any]] | None) -> list[LifecycleRule]:
    known = set(LifecycleRule.__dataclass_fields__)
    return [LifecycleRule(**{k: v for k, v in row.items() if k in known}) for row in rows or []]
