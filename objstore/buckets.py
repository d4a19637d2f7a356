"""The `buckets` table: bucket name -> BucketRecord (numeric id, owner, region and the bucket's settings).

The one module that reads and writes it; others call these functions inside their transaction.
A bucket's numeric id (a sequence, never reused) prefixes its objects' keys, so a bucket deleted
and made again under the same name is another bucket.
"""

from __future__ import annotations

import re

from .errors import BucketAlreadyExists, BucketAlreadyOwnedByYou, InvalidArgument, NoSuchBucket
from .meta import ReadTxn, WriteTxn
from .records import BucketRecord

TABLE = "buckets"
TABLES = (TABLE,)
DEFAULT_REGION = "us-east-1"
NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def get(r: ReadTxn, name: str) -> BucketRecord | None:
    raw = r.get(TABLE, name.encode())
    return BucketRecord.decode(raw) if raw is not None else None


def require(r: ReadTxn, name: str) -> BucketRecord:
    """The bucket, or NoSuchBucket."""
    record = get(r, name)
    if record is None:
        raise NoSuchBucket(name)
    return record


def owned(r: ReadTxn, owner: str, name: str) -> BucketRecord | None:
    """The bucket if `owner` owns it (another owner's bucket looks the same as none)."""
    record = get(r, name)
    return record if record is not None and record.owner == owner else None


def create(w: WriteTxn, owner: str, name: str, region: str, now: float) -> BucketRecord:
    """A new bucket; InvalidArgument, BucketAlreadyOwnedByYou or BucketAlreadyExists otherwise."""
    if not NAME.match(name):
        raise InvalidArgument(f"invalid bucket name {name!r}")
    found = get(w, name)
    if found is not None:
        raise BucketAlreadyOwnedByYou(name) if found.owner == owner else BucketAlreadyExists(name)
    record = BucketRecord(name, w.next_id("bucket"), owner, now, region)
    put(w, record)
    return record


def put(w: WriteTxn, record: BucketRecord) -> None:
    w.put(TABLE, record.name.encode(), record.encode())


def delete(w: WriteTxn, name: str) -> None:
    w.delete(TABLE, name.encode())


def all_buckets(r: ReadTxn) -> list[BucketRecord]:
    return [BucketRecord.decode(raw) for _, raw in r.range(TABLE)]


def any_owned_by(r: ReadTxn, owner: str) -> bool:
    return any(b.owner == owner for b in all_buckets(r))
