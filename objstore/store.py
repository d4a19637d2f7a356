"""The storage engine's facade: buckets and objects over LMDB rows and content-addressed chunks."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from . import keys, lifecycle, limits, listing, manifests, versions
from .accounts import Accounts
from .blobs import BlobDir
from .conditions import ALWAYS, Precondition
from .config import StoreConfig
from .db import Database, Txn
from .errors import (
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    FormatError,
    InvalidArgument,
    InvalidPartNumber,
    InvalidRequest,
    NoSuchBucket,
    NoSuchKey,
    VersionIsDeleteMarker,
)
from .lifecycle import LifecycleRule
from .records import BucketRecord, ObjectRecord
from .objectwriter import ObjectWriter
from .writer import ContentWriter
from .multipart import Multipart
from .links import Links
from .linkstats import DownloadStats
from .reservations import Reservations
from .state import VolatileState

BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
WRITE_BLOCK = 1024 * 1024


class Store:
    def __init__(self, data_dir: Path | str, config: StoreConfig | None = None, clock: Callable[[], float] = time.time):
        self.root = Path(data_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self.config = config or StoreConfig()
        self.clock = clock
        self.db = Database(self.root / "meta", self.config.map_size, self.config.durable)
        self.blobs = BlobDir(self.root, self.config.durable)
        self.accounts = Accounts(self.db, self.config, lambda: self.clock())
        self.multipart = Multipart(self)
        self.state = VolatileState(self.root / "state")
        self.reservations = Reservations(self.state, self.accounts)
        self.links = Links(self, self.config.link_id_length)
        self.stats = DownloadStats(self)

    def close(self) -> None:
        try:
            self.stats.flush()
        finally:
            self.db.close()
            self.state.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # buckets ---------------------------------------------------------------------------------
    def create_bucket(self, owner: str, name: str, region: str = "us-east-1") -> BucketRecord:
        with self.db.write() as w:
            return self.create_bucket_in(w, owner, name, region)

    def create_bucket_in(self, w: Txn, owner: str, name: str, region: str = "us-east-1") -> BucketRecord:
        """`create_bucket` inside the caller's write transaction."""
        if not BUCKET_NAME.match(name):
            raise InvalidArgument(f"invalid bucket name {name!r}")
        self.accounts.user_in(w, owner)
        raw = w.get("buckets", name.encode())
        if raw is not None:
            if BucketRecord.decode(raw).owner == owner:
                raise BucketAlreadyOwnedByYou(name)
            raise BucketAlreadyExists(name)
        record = BucketRecord(name, self.db.next_id(w, "bucket"), owner, self.clock(), region)
        w.put("buckets", name.encode(), record.encode())
        return record

    def get_bucket(self, name: str) -> BucketRecord:
        with self.db.read() as r:
            return self._bucket(r, name)

    def list_buckets(self, owner: str | None = None) -> list[BucketRecord]:
        with self.db.read() as r:
            found = [BucketRecord.decode(v) for _, v in r.cursor("buckets")]
        return [b for b in found if owner is None or b.owner == owner]

    def set_bucket_cors(self, name: str, rules: list[dict[str, Any]] | None) -> BucketRecord:
        """Replace (or with None remove) a bucket's CORS rules; the engine stores them as given."""
        with self.db.write() as w:
            record = self._bucket(w, name)
            record.cors = rules
            w.put("buckets", name.encode(), record.encode())
        return record

    def set_bucket_lifecycle(self, name: str, rules: list[LifecycleRule] | None) -> BucketRecord:
        """Replace (or with None remove) a bucket's lifecycle rules, checked by `lifecycle.validate`."""
        if rules is not None:
            lifecycle.validate(rules)
        with self.db.write() as w:
            record = self._bucket(w, name)
            record.lifecycle = lifecycle.to_rows(rules) if rules is not None else None
            w.put("buckets", name.encode(), record.encode())
        return record

    def set_bucket_tags(self, name: str, tags: dict[str, str]) -> BucketRecord:
        """Replace a bucket's tags (PutBucketTagging; {} removes them); the S3 layer checks S3's limits."""
        with self.db.write() as w:
            record = self._bucket(w, name)
            record.tags = dict(tags)
            w.put("buckets", name.encode(), record.encode())
        return record

    def set_bucket_versioning(self, name: str, status: str) -> BucketRecord:
        """PutBucketVersioning: Enabled or Suspended (a bucket never goes back to unversioned)."""
        if status not in versions.STATES:
            raise InvalidArgument(f"versioning status must be one of {', '.join(versions.STATES)}")
        with self.db.write() as w:
            record = self._bucket(w, name)
            record.versioning = status
            w.put("buckets", name.encode(), record.encode())
        return record

    def delete_bucket(self, name: str) -> None:
        """DeleteBucket: refused while any version or delete marker remains; uploads in progress
        are aborted with it, as S3 does (their parts' chunks are left to GC)."""
        with self.db.write() as w:
            bucket = self._bucket(w, name)
            if versions.bucket_has_rows(w, bucket.id):
                raise BucketNotEmpty(name)
            self.multipart.abort_all_in(w, name, bucket.id)
            w.delete("buckets", name.encode())

    def _bucket(self, r: Txn, name: str) -> BucketRecord:
        raw = r.get("buckets", name.encode())
        if raw is None:
            raise NoSuchBucket(name)
        return BucketRecord.decode(raw)

    # objects ---------------------------------------------------------------------------------
    def open_writer(
        self, bucket: str, key: str, checksums: Iterable[str] = (), size_hint: int | None = None, credit: int = 0,
        ceiling: int | None = None, ceiling_name: str = limits.S3_CEILING,
    ) -> ObjectWriter:
        """A writer for a new version of bucket/key; nothing is visible until `commit`.

        `credit`: bytes already charged to the owner for this very content (a finished resumable
        upload's), counted as room here and at the commit, whose `also` must uncharge them.
        `ceiling`: the most one request may carry (S3's 5 GiB for a PUT), checked as bytes arrive.
        """
        raw_key = keys.validate_key(key)
        with self.db.read() as r:
            record = self._bucket(r, bucket)
            replacing = _bytes(versions.replaced_by_write(r, record, raw_key))
        room, reservation = self.reservations.room(
            record.owner, replacing + credit, size_hint, ceiling=ceiling, ceiling_name=ceiling_name
        )
        try:
            content = ContentWriter(self, checksums, room, reservation)
        except BaseException:
            if reservation is not None:  # else held until this process exits
                self.reservations.release(reservation)
            raise
        return ObjectWriter(self, record, raw_key, checksums, content, credit)

    def put_object(self, bucket: str, key: str, data: bytes, **attrs: object) -> ObjectRecord:
        """Store a whole in-memory object (small objects, tests, the CLI)."""
        with self.open_writer(bucket, key) as writer:
            for i in range(0, len(data), WRITE_BLOCK):
                writer.write(data[i : i + WRITE_BLOCK])
            return writer.commit(**attrs)  # type: ignore[arg-type]

    def head_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectRecord:
        """The current version of bucket/key, or the version `version_id` names (see `versions.resolve`)."""
        raw_key = keys.validate_key(key)
        versions.check_version_id(version_id)
        with self.db.read() as r:
            record = self._bucket(r, bucket)
            return versions.resolve(r, record.id, raw_key, version_id)

    def read_object(self, record: ObjectRecord, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes [start, end) of an object, streamed chunk by chunk; short read txns only."""
        end = record.size if end is None else min(end, record.size)
        mid = bytes.fromhex(record.manifest)
        with self.db.read() as r:
            head = manifests.get_head(r, mid)
        if head is None:
            raise NoSuchKey(record.key)
        if head.kind == manifests.KIND_INLINE:
            if start < end:
                yield head.inline[start:end]
            return
        pos = start
        while pos < end:
            with self.db.read() as r:
                page = manifests.page_at(r, mid, pos)
            if page is None:
                raise NoSuchKey(record.key)
            page_start = pos
            offset, entries = page
            for digest, length in entries:
                if offset + length > pos:
                    lo, hi = pos - offset, min(length, end - offset)
                    yield from self.blobs.read(digest, lo, hi - lo)
                    pos = offset + hi
                    if pos >= end:
                        return
                offset += length
            if pos == page_start:  # the last page ended before `end`
                raise FormatError(f"manifest of {record.key!r} ends before byte {pos}")

    def object_part(self, record: ObjectRecord, number: int) -> manifests.PartInfo:
        """Where part `number` of an object lies (GetObject with partNumber); part 1 of an object
        that was not uploaded in parts is all of it. InvalidPartNumber past the last part."""
        if not record.parts_count:
            if number != 1:
                raise InvalidPartNumber("The requested partnumber is not satisfiable")
            return manifests.PartInfo(1, 0, record.size, {})
        with self.db.read() as r:
            part = manifests.part_info(r, bytes.fromhex(record.manifest), number)
        if part is None:
            raise InvalidPartNumber("The requested partnumber is not satisfiable")
        return part

    def object_parts(self, record: ObjectRecord, after: int, limit: int) -> list[manifests.PartInfo]:
        """Up to `limit` parts of a multipart object after part number `after` (GetObjectAttributes)."""
        with self.db.read() as r:
            return manifests.parts_after(r, bytes.fromhex(record.manifest), after, limit)

    def set_object_tags(self, bucket: str, key: str, tags: dict[str, str], version_id: str | None = None) -> ObjectRecord:
        """Replace the tags of the current version, or of `version_id` (PutObjectTagging / DeleteObjectTagging)."""
        raw_key = keys.validate_key(key)
        versions.check_version_id(version_id)
        with self.db.write() as w:
            record = self._bucket(w, bucket)
            obj = versions.resolve(w, record.id, raw_key, version_id)
            obj.tags = dict(tags)
            versions.rewrite(w, record.id, raw_key, obj)
        return obj

    def delete_object(
        self, bucket: str, key: str, version_id: str | None = None, only_if: Callable[[ObjectRecord], bool] | None = None,
        condition: Precondition = ALWAYS,
    ) -> Deletion:
        """DeleteObject: a delete marker (versioned buckets) or the object removed (never versioned
        ones); with `version_id`, that version removed for good. Idempotent, as S3's, unless a
        `condition` (If-Match) asks for a current object: then NoSuchKey or PreconditionFailed.

        `only_if` decides on the current version inside the transaction (lifecycle expiry acts only
        on the version it judged expired); when it says no, nothing changes.
        """
        with self.db.write() as w:
            return self.delete_in(w, bucket, key, version_id, only_if, condition)

    def delete_in(
        self, w: Txn, bucket: str, key: str, version_id: str | None = None, only_if: Callable[[ObjectRecord], bool] | None = None,
        condition: Precondition = ALWAYS,
    ) -> Deletion:
        """`delete_object` inside the caller's write transaction."""
        raw_key = keys.validate_key(key)
        versions.check_version_id(version_id)
        record = self._bucket(w, bucket)
        if version_id is not None and condition != ALWAYS:
            raise InvalidRequest("A conditional delete applies to the current version; it cannot name a version.")
        if version_id is not None:
            gone = versions.remove(w, record.id, raw_key, version_id)
            self._account(w, record.owner, None, [gone] if gone is not None else [])
            return Deletion(version_id, gone is not None and gone.delete_marker, gone is not None)
        latest = versions.current(w, record.id, raw_key)
        condition.check(key, latest)
        if only_if is not None and (latest is None or latest.delete_marker or not only_if(latest)):
            return Deletion(None, False, False)
        if not record.versioning:
            changed = self.delete_in(w, bucket, key, versions.NULL).changed if latest is not None else False
            return Deletion(None, False, changed)
        marker = versions.stamp(w, record, versions.delete_marker(raw_key, record.owner, self.clock()))
        self._account(w, record.owner, None, versions.put_latest(w, record, raw_key, marker))
        return Deletion(marker.version_id, True, True)

    def expire_noncurrent(
        self, bucket: str, key: str, version_id: str, still: Callable[[ObjectRecord, int], bool], most: int
    ) -> bool:
        """Remove a noncurrent version for good if `still(version, rank)` holds inside the transaction
        (rank: how many noncurrent versions are newer, counted up to `most`); False if it is gone,
        current again, or no longer wanted (lifecycle, see `lifecycle.py`)."""
        raw_key = keys.validate_key(key)
        with self.db.write() as w:
            record = self._bucket(w, bucket)
            found = versions.find(w, record.id, raw_key, version_id)
            latest = versions.current(w, record.id, raw_key)
            if found is None or latest is None or latest.seq == found.seq:
                return False
            if not still(found, versions.noncurrent_rank(w, record.id, raw_key, found, most)):
                return False
            self._account(w, record.owner, None, [found])
            versions.remove(w, record.id, raw_key, version_id)
            return True

    def remove_lone_marker(self, bucket: str, key: str, version_id: str) -> bool:
        """Remove the key's delete marker `version_id` if it is still the latest version and the
        only one left (lifecycle's expired delete markers)."""
        raw_key = keys.validate_key(key)
        with self.db.write() as w:
            record = self._bucket(w, bucket)
            latest = versions.current(w, record.id, raw_key)
            if latest is None or not latest.delete_marker or latest.version_id != version_id:
                return False
            if next(versions.noncurrent(w, record.id, raw_key), None) is not None:
                return False
            versions.remove(w, record.id, raw_key, version_id)
            return True

    def purge_key_in(self, w: Txn, bucket: str, key: str) -> bool:
        """Remove every version and delete marker of bucket/key for good; True if there were any."""
        record = self._bucket(w, bucket)
        removed = versions.remove_all(w, record.id, keys.validate_key(key))
        self._account(w, record.owner, None, removed)
        return bool(removed)

    def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        replace: dict[str, Any] | None = None,
        check: Callable[[ObjectRecord], None] | None = None,
        src_version: str | None = None,
        condition: Precondition = ALWAYS,
    ) -> tuple[ObjectRecord, ObjectRecord]:
        """A new version of dst sharing the source's manifest (no byte is copied); (new, source).

        `replace` gives new attributes (content_type, headers, meta, tags) instead of the source's;
        `check` may raise on the source record (copy-source conditions) and `condition` is asked of
        the destination, both inside the transaction.
        """
        raw_src, raw_dst = keys.validate_key(src_key), keys.validate_key(dst_key)
        versions.check_version_id(src_version)
        with self.db.write() as w:
            try:
                source = versions.resolve(w, self._bucket(w, src_bucket).id, raw_src, src_version)
            except VersionIsDeleteMarker as e:
                raise InvalidRequest("The source of a copy request may not specifically refer to a delete marker by version id.") from e
            if check is not None:
                check(source)
            dst_rec = self._bucket(w, dst_bucket)
            new = dataclasses.replace(source, key=dst_key, owner=dst_rec.owner, created=self.clock(), **(replace or {}))
            manifests.add_ref(w, bytes.fromhex(source.manifest))
            new = self.replace_object(w, dst_rec, raw_dst, new, condition)
        return new, source

    def list_objects(
        self, bucket: str, prefix: str = "", delimiter: str = "", after: str = "", max_keys: int = 1000, inclusive: bool = False
    ) -> listing.Page:
        """A page of keys under `prefix` after `after` (or from it, when `inclusive`), in S3 order."""
        with self.db.read() as r:
            record = self._bucket(r, bucket)
            return listing.list_page(r, record.id, prefix, delimiter, after, max_keys, inclusive)

    def list_object_versions(
        self, bucket: str, prefix: str = "", delimiter: str = "", key_marker: str = "", version_marker: str = "", max_keys: int = 1000
    ) -> listing.VersionPage:
        """A page of ListObjectVersions: every version and delete marker, by key, newest first."""
        if version_marker and version_marker != versions.NULL:
            versions.check_version_id(version_marker)
        with self.db.read() as r:
            record = self._bucket(r, bucket)
            return listing.list_versions_page(r, record.id, prefix, delimiter, key_marker, version_marker, max_keys)

    def check_replace(
        self, r: Txn, bucket: BucketRecord, raw_key: bytes, size: int, condition: Precondition = ALWAYS, credit: int = 0
    ) -> list[ObjectRecord]:
        """Whether bucket/key may get a new version of `size` bytes; returns the versions it removes.

        Runs inside the commit's write transaction, and before publishing chunks in a read one, so a
        write that is bound to fail leaves no files behind. `condition`: asked of the key's current
        version (see conditions.py); `credit`: see `open_writer`.
        """
        fresh = self._bucket(r, bucket.name)
        if fresh.id != bucket.id:
            raise NoSuchBucket(bucket.name)
        condition.check(raw_key.decode(), versions.current(r, bucket.id, raw_key))
        removed = versions.replaced_by_write(r, fresh, raw_key)
        user = self.accounts.user_in(r, bucket.owner)
        limits.check_object_size(user, size)
        limits.check_quota(user, size - _bytes(removed) - credit)
        limits.check_object_count(user, 1 - _count(removed))
        return removed

    def replace_object(
        self, w: Txn, bucket: BucketRecord, raw_key: bytes, new: ObjectRecord, condition: Precondition = ALWAYS, credit: int = 0
    ) -> ObjectRecord:
        """Make `new` the latest version of bucket/key inside `w`, if `condition` holds, with its usage,
        quota and the references of the versions it removes; returns it with its version id."""
        self.check_replace(w, bucket, raw_key, new.size, condition, credit)
        fresh = self._bucket(w, bucket.name)
        new = versions.stamp(w, fresh, new)
        self._account(w, fresh.owner, new, versions.put_latest(w, fresh, raw_key, new))
        return new

    def _account(self, w: Txn, owner: str, added: ObjectRecord | None, removed: list[ObjectRecord]) -> None:
        """Usage and manifest references after a write added and removed versions."""
        now = self.clock()
        for old in removed:
            if not old.delete_marker:
                manifests.drop_ref(w, bytes.fromhex(old.manifest), now)
        kept = [added] if added is not None and not added.delete_marker else []
        delta_bytes, delta_count = _bytes(kept) - _bytes(removed), len(kept) - _count(removed)
        if delta_bytes or delta_count:
            self.accounts.charge(w, owner, delta_bytes, delta_count)


@dataclass
class Deletion:
    """What a DeleteObject did: the version it removed or the delete marker it added."""

    version_id: str | None  # None: an unversioned delete (or nothing to delete)
    delete_marker: bool  # a marker was added, or the version removed was a marker
    changed: bool


def _bytes(records: Iterable[ObjectRecord]) -> int:
    return sum(r.size for r in records if not r.delete_marker)


def _count(records: Iterable[ObjectRecord]) -> int:
    return sum(1 for r in records if not r.delete_marker)
