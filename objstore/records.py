"""Persisted rows. Every row carries a format version (`v`) so later code can migrate it.

Rows are JSON: small, readable with `mdb_dump`, and easy to extend with a default. The one hot,
bulky structure (a manifest's chunk list) is packed binary in `manifests.py` instead.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import orjson

from .errors import FormatError

T = TypeVar("T", bound="Record")
# The largest integer a field may hold that clients set (sizes, limits, counts): `decode` reads an
# integer past 64 bits as a float (orjson), and JavaScript reads one past this inexactly.
MAX_RECORD_INT = 2**53 - 1


@dataclass
class Record:
    VERSION: ClassVar[int] = 1

    def encode(self) -> bytes:
        # Fields hold JSON values only (no nested records): read as they are, not deep-copied by asdict.
        body = {name: getattr(self, name) for name in _field_names(type(self))}
        body["v"] = self.VERSION
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def decode(cls: type[T], raw: bytes) -> T:
        body: dict[str, Any] = orjson.loads(raw)
        version = body.pop("v", None)
        if version != cls.VERSION:
            raise FormatError(f"{cls.__name__} row has format version {version}, expected {cls.VERSION}")
        try:
            return cls(**body)
        except TypeError:  # a field this version does not know (written by a newer one): dropped
            known = _field_names(cls)
            return cls(**{k: v for k, v in body.items() if k in known})


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type[Record]) -> tuple[str, ...]:
    """A record class's field names, in order; looked up on every row read and written."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


@dataclass
class UserRecord(Record):
    name: str
    created: float
    quota: int = 0  # bytes of logical usage allowed; 0 = unlimited
    max_object_size: int = 0  # 0 = unlimited
    usage_bytes: int = 0  # logical bytes of committed objects and pending parts
    object_count: int = 0
    max_objects: int = 0  # 0 = unlimited
    default_bucket: str = ""  # where REST uploads land; created on the first one
    downloads: int = 0  # short-link downloads of this user's files (batched, see linkstats.py)
    bytes_served: int = 0
    last_download: float | None = None
    uploads: int = 0  # files uploaded through the REST API (and tus, WebSocket)
    bytes_uploaded: int = 0
    last_upload: float | None = None


@dataclass
class AccessKeyRecord(Record):
    access_key: str
    secret_key: str  # SigV4 needs the secret itself: kept as it is without a sealing key ("" when sealed)
    user: str
    created: float
    active: bool = True
    sealed: str = ""  # the secret sealed with the store's sealing key (sealing.py)


@dataclass
class TokenRecord(Record):
    user: str
    created: float
    prefix: str = ""  # first characters of the token, to tell tokens apart in listings


@dataclass
class BucketRecord(Record):
    name: str
    id: int
    owner: str
    created: float
    region: str = "us-east-1"
    cors: list[dict[str, Any]] | None = None  # CORS rules as the S3 layer parsed them
    lifecycle: list[dict[str, Any]] | None = None  # lifecycle rules, as `lifecycle.to_rows` writes them
    versioning: str = ""  # "" (never enabled), "Enabled" or "Suspended" (see versions.py)
    tags: dict[str, str] = field(default_factory=dict)  # S3 bucket tags ({}: none, GetBucketTagging's NoSuchTagSet)


@dataclass
class ObjectRecord(Record):
    """One object: what S3 returns on HEAD plus where the bytes are."""

    key: str
    size: int
    etag: str  # quoted-less hex MD5 for single uploads, "<md5>-N" for multipart
    manifest: str  # hex manifest id
    owner: str
    created: float
    content_type: str = "binary/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)  # Cache-Control, Content-Disposition, ...
    meta: dict[str, str] = field(default_factory=dict)  # x-amz-meta-* without the prefix
    checksums: dict[str, str] = field(default_factory=dict)  # algorithm -> base64 value
    checksum_type: str = "FULL_OBJECT"
    blake3: str | None = None  # hex BLAKE3 of the whole content, where known
    parts_count: int = 0
    tags: dict[str, str] = field(default_factory=dict)  # S3 object tags (at most 10)
    version_id: str = "null"  # "null" unless written while the bucket's versioning was Enabled
    seq: int = 0  # write order (see versions.py); 0 for rows older than versioning
    delete_marker: bool = False  # a delete marker: no content, the key reads as deleted
    noncurrent_since: float | None = None  # when a newer version replaced it (lifecycle counts from here)


@dataclass
class UploadRecord(Record):
    """A multipart upload in progress."""

    upload_id: str
    bucket: str
    key: str
    owner: str
    created: float
    content_type: str = "binary/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    checksum_algorithm: str | None = None
    checksum_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    bucket_id: int = 0  # the bucket's id when the upload began: a recreated bucket is another one
    parts_bytes: int | None = None  # bytes of the parts stored so far (None: an upload from before it was kept)


@dataclass
class PartRecord(Record):
    number: int
    size: int
    etag: str
    manifest: str
    created: float
    checksums: dict[str, str] = field(default_factory=dict)


@dataclass
class CompletedUploadRecord(Record):
    """A multipart upload that completed, kept a while so a retried Complete gets the same answer."""

    upload_id: str
    bucket: str
    bucket_id: int
    key: str
    parts_digest: str  # of the part list the Complete request gave (`multipart.parts_digest`)
    etag: str
    version_id: str
    completed: float
    checksums: dict[str, str] = field(default_factory=dict)
    checksum_type: str = "FULL_OBJECT"


@dataclass
class LinkRecord(Record):
    """A short public link (/s/<id>) to bucket/key: its current version, or the one `version_id` names."""

    id: str
    owner: str
    bucket: str
    key: str
    created: float
    expires_at: float | None = None
    max_downloads: int | None = None
    downloads: int = 0
    revoked: bool = False
    name: str = ""  # the file name shown and offered for download ("" = the key's last segment)
    owns_object: bool = False  # uploaded only to back this link: expiring the link deletes it
    seq: int = 0  # creation order, for listing newest first (see `links.owner_index_key`)
    bytes_served: int = 0
    last_download: float | None = None
    expired: bool = False  # swept: kept as a tombstone so the id answers 410, not 404
    version_id: str | None = None  # serve this version of the key, not whatever is current
    imported: float | None = None  # when it was carried over from another server: its idle time starts there


@dataclass
class ResumableRecord(Record):
    """A resumable (tus) upload: its bytes so far are its segments (`links/segments.py`) up to `offset`."""

    id: str
    owner: str
    length: int  # the declared size, charged to the owner's usage while `state` is "receiving"
    created: float
    expires: float  # abandoned after this (moved on by every write); done rows are dropped then too
    offset: int = 0  # bytes durably kept: moved on with the segment that holds them
    filename: str = ""
    filetype: str = ""
    state: str = "receiving"  # "receiving" (charged), "done" ("finishing": older versions, not charged)
    link: str = ""  # the short link id, once done
    writer: str = ""  # the token of the request that holds the upload's lease ("" when none does)
    lease_until: float = 0.0  # when that lease runs out if not renewed (a writer that died)
    segments: int = 0  # how many segments hold its bytes (0 in rows written before it was counted)
