"""Object versions: the `objects` and `versions` tables, their key layouts and S3's versioning rules.

`objects` holds the latest version of every key, an object or a delete marker, under the key
`keys.encode` makes, so listings walk it in S3 order. `versions` holds the older, noncurrent
versions under `bucket id + 16-byte BLAKE3 of the key + (2**64-1 - seq)`: a key's versions sit
together, newest first, whatever the key's length. Whenever a key has versions, its newest one is
in `objects` (a delete or a lifecycle expiry of the current version promotes the next one).

`seq` is a counter bumped by every write, so it orders versions by when they were made; a version
id other than "null" is 16 hex digits of it and 16 random ones, so a lookup by id is one `get`. A key
has at most one "null" version; when it is noncurrent, `null_versions` (bucket id + key hash -> its
seq) finds it with one `get` too, so no request scans a key's versions. Rows written before
versioning existed have seq 0 and version "null", which is what S3 calls them.

Which versions a write keeps follows S3 (https://docs.aws.amazon.com/AmazonS3/latest/userguide/Versioning.html):
- never versioned: the new version replaces the current one; both are "null";
- Enabled: the current version becomes noncurrent; the new one gets a fresh id;
- Suspended: the new version is "null" and replaces the earlier "null" one, current or not.
A delete without a version id adds a delete marker in a versioned bucket (Enabled or Suspended),
and removes the current object in one never versioned. A delete with a version id removes that
version for good.

Functions here change rows only; the caller (`store.py`) gives back the manifests' references and
the owner's usage of the versions they return as removed, in the same transaction.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Iterator

import blake3

from . import keys
from .errors import DeleteMarkerIsCurrent, InvalidArgument, NoSuchKey, NoSuchVersion, VersionIsDeleteMarker
from .meta import ReadTxn, WriteTxn, prefix_end, scan
from .records import BucketRecord, ObjectRecord

OBJECTS, VERSIONS, NULLS = "objects", "versions", "null_versions"
TABLES = (OBJECTS, VERSIONS, NULLS)
NULL = "null"
ENABLED, SUSPENDED = "Enabled", "Suspended"
STATES = (ENABLED, SUSPENDED)
_TOP = 2**64 - 1
_HASH = 16
_VERSION_ID = re.compile(r"^[0-9a-f]{32}$")
_MARKER_FIELD = b'"delete_marker":true'


def new_version_id(seq: int) -> str:
    return f"{seq:016x}{secrets.token_hex(8)}"


def seq_of(version_id: str) -> int | None:
    """The sequence a version id carries (None for "null"); InvalidArgument for a malformed id."""
    if version_id == NULL:
        return None
    if not _VERSION_ID.match(version_id):
        raise InvalidArgument("Invalid version id specified")
    return int(version_id[:16], 16)


def check_version_id(version_id: str | None) -> None:
    if version_id is not None:
        seq_of(version_id)


def versions_prefix(bucket_id: int, raw_key: bytes) -> bytes:
    return keys.bucket_prefix(bucket_id) + blake3.blake3(raw_key).digest(_HASH)


def version_key(bucket_id: int, raw_key: bytes, seq: int) -> bytes:
    return versions_prefix(bucket_id, raw_key) + (_TOP - seq).to_bytes(8, "big")


def is_marker_row(raw: bytes) -> bool:
    """Whether a raw `objects` row is a delete marker, without decoding it.

    Sound because rows are JSON of a flat record: inside a string the quotes would be escaped, and
    no other field is named `delete_marker`.
    """
    return _MARKER_FIELD in raw


# reading ------------------------------------------------------------------------------------------
def current(r: ReadTxn, bucket_id: int, raw_key: bytes) -> ObjectRecord | None:
    """The latest version of the key (maybe a delete marker), or None."""
    raw = r.get(OBJECTS, keys.encode(bucket_id, raw_key))
    return ObjectRecord.decode(raw) if raw is not None else None


def noncurrent(r: ReadTxn, bucket_id: int, raw_key: bytes, below_seq: int | None = None) -> Iterator[ObjectRecord]:
    """The key's older versions, newest first, read one at a time; with `below_seq`, only those
    written before that sequence (one seek, however many newer versions there are)."""
    prefix = versions_prefix(bucket_id, raw_key)
    if below_seq == 0:
        return
    start = prefix if below_seq is None else prefix + (_TOP - (below_seq - 1)).to_bytes(8, "big")
    for _, raw in r.range(VERSIONS, start, prefix_end(prefix)):
        yield ObjectRecord.decode(raw)


def find(r: ReadTxn, bucket_id: int, raw_key: bytes, version_id: str) -> ObjectRecord | None:
    """The version named `version_id` (current or not), or None."""
    latest = current(r, bucket_id, raw_key)
    if latest is not None and latest.version_id == version_id:
        return latest
    seq = seq_of(version_id)
    if seq is None:
        return _noncurrent_null(r, bucket_id, raw_key)
    raw = r.get(VERSIONS, version_key(bucket_id, raw_key, seq))
    found = ObjectRecord.decode(raw) if raw is not None else None
    return found if found is not None and found.version_id == version_id else None


def resolve(r: ReadTxn, bucket_id: int, raw_key: bytes, version_id: str | None = None) -> ObjectRecord:
    """The object a read names: the current version, or the one `version_id` names.

    NoSuchKey when there is none (DeleteMarkerIsCurrent when the latest version is a marker),
    NoSuchVersion for an unknown id, VersionIsDeleteMarker when the id names a marker.
    """
    key = raw_key.decode()
    if version_id is None:
        found = current(r, bucket_id, raw_key)
        if found is None:
            raise NoSuchKey(key)
        if found.delete_marker:
            raise DeleteMarkerIsCurrent(key, found.version_id)
        return found
    found = find(r, bucket_id, raw_key, version_id)
    if found is None:
        raise NoSuchVersion(key, version_id)
    if found.delete_marker:
        raise VersionIsDeleteMarker(key, found.version_id, found.created)
    return found


def all_versions(r: ReadTxn, bucket_id: int, raw_key: bytes) -> list[ObjectRecord]:
    latest = current(r, bucket_id, raw_key)
    return [latest, *noncurrent(r, bucket_id, raw_key)] if latest is not None else []


def replaced_by_write(
    r: ReadTxn, bucket: BucketRecord, raw_key: bytes, latest: ObjectRecord | None
) -> list[ObjectRecord]:
    """The versions a new version of the key would remove for good (see the module docstring);
    `latest` is the key's current version (`current`), read by the caller in this transaction."""
    if bucket.versioning == ENABLED:
        return []
    if bucket.versioning == "":
        return [latest] if latest is not None else []
    if latest is not None and latest.version_id == NULL:
        return [latest]
    null = _noncurrent_null(r, bucket.id, raw_key)
    return [null] if null is not None else []


def noncurrent_rank(r: ReadTxn, bucket_id: int, raw_key: bytes, version: ObjectRecord, most: int) -> int:
    """How many noncurrent versions of the key are newer than `version` (counting up to `most`)."""
    rank = 0
    for newer in noncurrent(r, bucket_id, raw_key):
        if newer.seq <= version.seq or rank >= most:
            break
        rank += 1
    return rank


def bucket_noncurrent(r: ReadTxn, bucket_id: int, after: bytes, limit: int) -> list[tuple[bytes, ObjectRecord]]:
    """Up to `limit` noncurrent versions of the bucket with their row keys, after row key `after`
    (b"" from the start), in table order: by key hash, each key's newest first. `same_key` tells
    whether two row keys belong to one key."""
    prefix = keys.bucket_prefix(bucket_id)
    start = max(prefix, after + b"\x00" if after else prefix)
    return [(key, ObjectRecord.decode(raw)) for key, raw in r.range(VERSIONS, start, prefix_end(prefix), limit=limit)]


def same_key(row_key: bytes, other: bytes) -> bool:
    return row_key[:-8] == other[:-8]


# writing ------------------------------------------------------------------------------------------
def stamp(w: WriteTxn, bucket: BucketRecord, record: ObjectRecord) -> ObjectRecord:
    """`record` with the sequence and version id of a new version written to `bucket` now."""
    seq = w.next_id("version")
    version_id = new_version_id(seq) if bucket.versioning == ENABLED else NULL
    return dataclasses.replace(record, seq=seq, version_id=version_id, noncurrent_since=None)


def put_latest(
    w: WriteTxn,
    bucket: BucketRecord,
    raw_key: bytes,
    new: ObjectRecord,
    latest: ObjectRecord | None,
) -> list[ObjectRecord]:
    """Make `new` (stamped) the latest version; returns the versions removed for good. `latest`: the
    key's current version, read by the caller in this transaction (nothing of the key written since)."""
    removed = replaced_by_write(w, bucket, raw_key, latest)
    gone = {v.seq for v in removed}
    for old in removed:
        if latest is None or old.seq != latest.seq:
            _delete_noncurrent(w, bucket.id, raw_key, old)
    if latest is not None and latest.seq not in gone:
        latest.noncurrent_since = new.created
        _put_noncurrent(w, bucket.id, raw_key, latest)
    w.put(OBJECTS, keys.encode(bucket.id, raw_key), new.encode())
    return removed


def remove(w: WriteTxn, bucket_id: int, raw_key: bytes, version_id: str) -> ObjectRecord | None:
    """Remove one version for good (the next one becomes current if it was); None if unknown."""
    found = find(w, bucket_id, raw_key, version_id)
    if found is None:
        return None
    latest = current(w, bucket_id, raw_key)
    if latest is not None and latest.seq == found.seq and latest.version_id == found.version_id:
        _promote_next(w, bucket_id, raw_key)
    else:
        _delete_noncurrent(w, bucket_id, raw_key, found)
    return found


def remove_all(w: WriteTxn, bucket_id: int, raw_key: bytes) -> list[ObjectRecord]:
    """Every version of the key, removed for good (a key owned by a short link)."""
    found = all_versions(w, bucket_id, raw_key)
    for version in found[1:]:
        _delete_noncurrent(w, bucket_id, raw_key, version)
    if found:
        w.delete(OBJECTS, keys.encode(bucket_id, raw_key))
    return found


def _promote_next(w: WriteTxn, bucket_id: int, raw_key: bytes) -> None:
    """The current version is going: the newest noncurrent one (if any) takes its place."""
    following = next(noncurrent(w, bucket_id, raw_key), None)
    lkey = keys.encode(bucket_id, raw_key)
    if following is None:
        w.delete(OBJECTS, lkey)
        return
    _delete_noncurrent(w, bucket_id, raw_key, following)
    following.noncurrent_since = None
    w.put(OBJECTS, lkey, following.encode())


def rewrite(w: WriteTxn, bucket_id: int, raw_key: bytes, record: ObjectRecord) -> None:
    """Store a changed row (new tags) of an existing version where it lives."""
    latest = current(w, bucket_id, raw_key)
    if latest is not None and (latest.seq, latest.version_id) == (record.seq, record.version_id):
        w.put(OBJECTS, keys.encode(bucket_id, raw_key), record.encode())
    else:
        _put_noncurrent(w, bucket_id, raw_key, record)


def _put_noncurrent(w: WriteTxn, bucket_id: int, raw_key: bytes, record: ObjectRecord) -> None:
    """Every row written to `versions` goes through here and `_delete_noncurrent` (the null index)."""
    w.put(VERSIONS, version_key(bucket_id, raw_key, record.seq), record.encode())
    if record.version_id == NULL:
        w.put(NULLS, versions_prefix(bucket_id, raw_key), record.seq.to_bytes(8, "big"))


def _delete_noncurrent(w: WriteTxn, bucket_id: int, raw_key: bytes, record: ObjectRecord) -> None:
    w.delete(VERSIONS, version_key(bucket_id, raw_key, record.seq))
    if record.version_id == NULL:
        w.delete(NULLS, versions_prefix(bucket_id, raw_key))


def _noncurrent_null(r: ReadTxn, bucket_id: int, raw_key: bytes) -> ObjectRecord | None:
    """The key's noncurrent "null" version, found through `null_versions`."""
    seq = r.get(NULLS, versions_prefix(bucket_id, raw_key))
    if seq is None:
        return None
    raw = r.get(VERSIONS, version_key(bucket_id, raw_key, int.from_bytes(seq, "big")))
    return ObjectRecord.decode(raw) if raw is not None else None


def delete_marker(raw_key: bytes, owner: str, now: float) -> ObjectRecord:
    """A new (unstamped) delete marker for the key."""
    return ObjectRecord(
        key=raw_key.decode(), size=0, etag="", manifest="", owner=owner, created=now, delete_marker=True
    )


def bucket_has_rows(r: ReadTxn, bucket_id: int) -> bool:
    """Whether the bucket holds any version or delete marker (every versioned key has a latest row)."""
    return any(True for _ in scan(r, OBJECTS, keys.bucket_prefix(bucket_id), limit=1))


def latest_rows(r: ReadTxn, bucket_id: int, start: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(object key, raw row) of each key's latest version from `start` on, in binary UTF-8 order.

    Rows stay raw (decoding is left to the caller, who may skip them: see `is_marker_row`). Long
    keys (see `keys.py`) that share their first bytes come as a group, sorted by the full key.
    """
    rows = r.range(OBJECTS, keys.seek_position(bucket_id, start), prefix_end(keys.bucket_prefix(bucket_id)))
    pending: tuple[bytes, bytes] | None = None
    while True:
        row = pending or next(rows, None)
        pending = None
        if row is None:
            return
        lkey, raw = row
        if not keys.is_long_form(lkey):
            if keys.short_key(lkey) >= start:
                yield keys.short_key(lkey), raw
            continue
        group, pending = _long_group(rows, lkey, raw)
        yield from ((k, v) for k, v in group if k >= start)


def _long_group(
    rows: Iterator[tuple[bytes, bytes]], first: bytes, raw: bytes
) -> tuple[list[tuple[bytes, bytes]], tuple[bytes, bytes] | None]:
    """The long-form rows sharing `first`'s group, sorted by full key, and the row after them."""
    group = keys.group_of(first)
    members = [(ObjectRecord.decode(raw).key.encode(), raw)]
    for lkey, value in rows:
        if not (lkey.startswith(group) and keys.is_long_form(lkey)):
            return sorted(members), (lkey, value)
        members.append((ObjectRecord.decode(value).key.encode(), value))
    return sorted(members), None


def with_content(r: ReadTxn, manifest_ids: set[str]) -> Iterator[tuple[int, ObjectRecord]]:
    """(bucket id, version) of every version, current or not, whose content is one of `manifest_ids`
    (hex): a walk of every row, for scrub's report of the objects a damaged chunk belongs to."""
    needles = [mid.encode() for mid in manifest_ids]
    for table in (OBJECTS, VERSIONS):
        for key, raw in r.range(table):
            if any(needle in raw for needle in needles):  # most rows are passed over undecoded
                record = ObjectRecord.decode(raw)
                if record.manifest in manifest_ids:
                    yield int.from_bytes(key[: keys.BUCKET_ID_BYTES], "big"), record


def all_rows(r: ReadTxn) -> Iterator[ObjectRecord]:
    """Every version of every key of every bucket, markers included (fsck)."""
    for table in (OBJECTS, VERSIONS):
        for _, raw in r.range(table):
            yield ObjectRecord.decode(raw)
