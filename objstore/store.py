"""The storage engine's facade: buckets and objects over LMDB rows and content-addressed chunks."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from . import keys, lifecycle, listing, manifests
from .accounts import Accounts
from .blobs import BlobDir
from .config import StoreConfig
from .db import Database, Txn
from .errors import (
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    InvalidArgument,
    NoSuchBucket,
    NoSuchKey,
    PreconditionFailed,
    QuotaExceeded,
    EntityTooLarge,
    FormatError,
)
from .lifecycle import LifecycleRule
from .records import BucketRecord, ObjectRecord, UploadRecord
from .writer import Content, ContentWriter
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

    def delete_bucket(self, name: str) -> None:
        with self.db.write() as w:
            bucket = self._bucket(w, name)
            cur = w.cursor("objects")
            prefix = keys.bucket_prefix(bucket.id)
            if cur.set_range(prefix) and cur.key().startswith(prefix):
                raise BucketNotEmpty(name)
            if any(u.bucket == name for u in self._uploads(w)):
                raise BucketNotEmpty(f"{name} has multipart uploads in progress")
            w.delete("buckets", name.encode())

    def _bucket(self, r: Txn, name: str) -> BucketRecord:
        raw = r.get("buckets", name.encode())
        if raw is None:
            raise NoSuchBucket(name)
        return BucketRecord.decode(raw)

    def _uploads(self, r: Txn) -> Iterator[UploadRecord]:
        return (UploadRecord.decode(v) for _, v in r.cursor("uploads"))

    # objects ---------------------------------------------------------------------------------
    def open_writer(
        self, bucket: str, key: str, checksums: Iterable[str] = (), size_hint: int | None = None, credit: int = 0
    ) -> "ObjectWriter":
        """A writer for a new version of bucket/key; nothing is visible until `commit`.

        `credit`: bytes already charged to the owner for this very content (a finished resumable
        upload's), counted as room here and at the commit, whose `also` must uncharge them.
        """
        raw_key = keys.validate_key(key)
        record = self.get_bucket(bucket)
        with self.db.read() as r:
            raw = r.get("objects", keys.encode(record.id, raw_key))
        replacing = ObjectRecord.decode(raw).size if raw is not None else 0
        limits, reservation = self.reservations.room(record.owner, replacing + credit, size_hint)
        try:
            if size_hint is not None:
                limits.check(size_hint)
            content = ContentWriter(self, checksums, limits, reservation)
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

    def head_object(self, bucket: str, key: str) -> ObjectRecord:
        with self.db.read() as r:
            _, _, obj = self._object(r, bucket, key)
        if obj is None:
            raise NoSuchKey(key)
        return obj

    def _object(self, r: Txn, bucket: str, key: str) -> tuple[BucketRecord, bytes, ObjectRecord | None]:
        """The bucket, the object's LMDB key and its row (None if absent), within `r`."""
        raw_key = keys.validate_key(key)
        record = self._bucket(r, bucket)
        lkey = keys.encode(record.id, raw_key)
        raw = r.get("objects", lkey)
        return record, lkey, ObjectRecord.decode(raw) if raw is not None else None

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

    def set_object_tags(self, bucket: str, key: str, tags: dict[str, str]) -> ObjectRecord:
        """Replace an object's tags (PutObjectTagging / DeleteObjectTagging with {})."""
        with self.db.write() as w:
            _, lkey, obj = self._object(w, bucket, key)
            if obj is None:
                raise NoSuchKey(key)
            obj.tags = dict(tags)
            w.put("objects", lkey, obj.encode())
        return obj

    def delete_object(self, bucket: str, key: str, only_if: Callable[[ObjectRecord], bool] | None = None) -> bool:
        """Remove bucket/key; True if it existed. Idempotent, as S3's DeleteObject.

        `only_if` decides on the current row inside the transaction (lifecycle expiry deletes only
        the version it judged expired); when it says no, nothing changes and the answer is False.
        """
        with self.db.write() as w:
            return self.delete_in(w, bucket, key, only_if)

    def delete_in(self, w: Txn, bucket: str, key: str, only_if: Callable[[ObjectRecord], bool] | None = None) -> bool:
        """`delete_object` inside the caller's write transaction."""
        record, lkey, old = self._object(w, bucket, key)
        if old is None or (only_if is not None and not only_if(old)):
            return False
        w.delete("objects", lkey)
        manifests.drop_ref(w, bytes.fromhex(old.manifest), self.clock())
        self.accounts.charge(w, record.owner, -old.size, -1)
        return True

    def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        replace: dict[str, Any] | None = None,
        check: Callable[[ObjectRecord], None] | None = None,
    ) -> ObjectRecord:
        """A new object sharing the source's manifest: no byte is copied.

        `replace` gives new attributes (content_type, headers, meta) instead of the source's;
        `check` may raise on the source record (copy-source conditions) inside the transaction.
        """
        raw_dst = keys.validate_key(dst_key)
        with self.db.write() as w:
            _, _, source = self._object(w, src_bucket, src_key)
            if source is None:
                raise NoSuchKey(src_key)
            if check is not None:
                check(source)
            dst_rec = self._bucket(w, dst_bucket)
            new = dataclasses.replace(source, key=dst_key, owner=dst_rec.owner, created=self.clock(), **(replace or {}))
            manifests.add_ref(w, bytes.fromhex(source.manifest))
            self.replace_object(w, dst_rec, raw_dst, new)
        return new

    def list_objects(
        self, bucket: str, prefix: str = "", delimiter: str = "", after: str = "", max_keys: int = 1000, inclusive: bool = False
    ) -> listing.Page:
        """A page of keys under `prefix` after `after` (or from it, when `inclusive`), in S3 order."""
        with self.db.read() as r:
            record = self._bucket(r, bucket)
            return listing.list_page(r, record.id, prefix, delimiter, after, max_keys, inclusive)

    def check_replace(
        self, r: Txn, bucket: BucketRecord, raw_key: bytes, size: int, if_none_match: bool = False, credit: int = 0
    ) -> ObjectRecord | None:
        """Whether bucket/key may become an object of `size` bytes; returns the object it replaces.

        Runs inside the commit's write transaction, and before publishing chunks in a read one, so a
        write that is bound to fail leaves no files behind. `credit`: see `open_writer`.
        """
        current = self._bucket(r, bucket.name)
        if current.id != bucket.id:
            raise NoSuchBucket(bucket.name)
        raw = r.get("objects", keys.encode(bucket.id, raw_key))
        old = ObjectRecord.decode(raw) if raw is not None else None
        if old is not None and if_none_match:
            raise PreconditionFailed(f"{raw_key.decode()} exists")
        user = self.accounts.user_in(r, bucket.owner)
        delta = size - (old.size if old else 0)
        if user.max_object_size and size > user.max_object_size:
            raise EntityTooLarge(f"object of {size} bytes exceeds the limit of {user.max_object_size}")
        if user.quota and delta > 0 and user.usage_bytes - credit + delta > user.quota:
            raise QuotaExceeded(f"storing {size} bytes would exceed the quota of {user.quota}")
        if user.max_objects and old is None and user.object_count >= user.max_objects:
            raise QuotaExceeded(f"the quota of {user.max_objects} objects is reached")
        return old

    def replace_object(
        self, w: Txn, bucket: BucketRecord, raw_key: bytes, new: ObjectRecord, if_none_match: bool = False, credit: int = 0
    ) -> None:
        """Point bucket/key at `new` inside `w`: usage, quota and the old manifest's reference."""
        old = self.check_replace(w, bucket, raw_key, new.size, if_none_match, credit)
        w.put("objects", keys.encode(bucket.id, raw_key), new.encode())
        if old is not None:
            manifests.drop_ref(w, bytes.fromhex(old.manifest), self.clock())
        self.accounts.charge(w, bucket.owner, new.size - (old.size if old else 0), 0 if old else 1)


class ObjectWriter:
    """Streams one object's content; `commit` makes it visible atomically, `close` drops it."""

    def __init__(
        self, store: Store, bucket: BucketRecord, raw_key: bytes, checksums: Iterable[str], content: ContentWriter, credit: int = 0
    ):
        self.store = store
        self.bucket = bucket
        self.raw_key = raw_key
        self.content = content
        self.credit = credit

    def write(self, data: bytes | memoryview) -> None:
        self.content.write(data)

    def finish(self) -> Content:
        """Digests of the whole stream, to verify client checksums before committing."""
        return self.content.finish()

    def commit(
        self,
        content_type: str = "binary/octet-stream",
        headers: dict[str, str] | None = None,
        meta: dict[str, str] | None = None,
        if_none_match: bool = False,
        checksum_type: str = "FULL_OBJECT",
        tags: dict[str, str] | None = None,
        also: Callable[[Txn, ObjectRecord], None] | None = None,
    ) -> ObjectRecord:
        """Make the object visible; `also` adds rows of the caller's in the same transaction."""
        content = self.finish()
        store = self.store
        try:
            with store.db.read() as r:
                store.check_replace(r, self.bucket, self.raw_key, content.size, if_none_match, self.credit)
            self.content.publish()
            with store.db.write() as w:
                bucket = store._bucket(w, self.bucket.name)
                mid = self.content.install(w)
                record = ObjectRecord(
                    key=self.raw_key.decode(),
                    size=content.size,
                    etag=content.md5,
                    manifest=mid.hex(),
                    owner=bucket.owner,
                    created=store.clock(),
                    content_type=content_type,
                    headers=dict(headers or {}),
                    meta=dict(meta or {}),
                    checksums=content.checksums,
                    checksum_type=checksum_type,
                    blake3=content.blake3,
                    tags=dict(tags or {}),
                )
                store.replace_object(w, bucket, self.raw_key, record, if_none_match, self.credit)
                if also is not None:
                    also(w, record)
        finally:
            self.close()
        return record

    def close(self) -> None:
        self.content.close()

    def __enter__(self) -> "ObjectWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
