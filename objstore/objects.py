"""The object write path in one place: stream a new version in, commit it, replace, delete, copy.

`Objects` owns what happens to a key's versions and what that costs: every change to the
`objects`/`versions` rows (through `versions.py`) comes with the manifest references and the owner's
usage of what it adds and removes, in the same transaction, and every new version passes the quota
gate (`admission.admit`). Reads of content (`read`) stream chunk by chunk in short read transactions.

`ObjectWriter` streams one object in; nothing is visible until `commit`, whose transaction
re-checks the condition, the limits and the bucket, and installs the content's manifest with the
object row. S3's PutObject and POST Object, and the uploads behind short links, stream through it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import chain
from typing import Any

from . import buckets, keys, limits, listing, manifests, versions
from .accounts import charge
from .admission import Admission, admit
from .chunks import ChunkStore, FileRegion
from .conditions import ALWAYS, Precondition
from .config import StoreConfig
from .content import Content, ContentWriter
from .errors import (
    ChunkMissing,
    FormatError,
    InvalidPartNumber,
    InvalidRequest,
    NoSuchBucket,
    NoSuchKey,
    VersionIsDeleteMarker,
)
from .inflight import Intents
from .meta import MetadataStore, ReadTxn, WriteTxn
from .records import BucketRecord, ObjectRecord

WRITE_BLOCK = 1024 * 1024
Clock = Callable[[], float]


@dataclass
class Deletion:
    """What a DeleteObject did: the version it removed or the delete marker it added."""

    version_id: str | None  # None: an unversioned delete (or nothing to delete)
    delete_marker: bool  # a marker was added, or the version removed was a marker
    changed: bool


class Objects:
    """Versions of keys in buckets: write, read, replace, delete and copy them, usage kept exact."""

    def __init__(
        self,
        meta: MetadataStore,
        chunks: ChunkStore,
        config: StoreConfig,
        clock: Clock,
        admission: Admission,
        intents: Intents | None = None,
    ):
        self.meta = meta
        self.chunks = chunks
        self.config = config
        self.clock = clock
        self.admission = admission
        self.intents = intents  # where writers record chunks they upload before committing (`inflight.py`)

    # writing ---------------------------------------------------------------------------------
    def open_writer(
        self,
        bucket: str,
        key: str,
        checksums: Iterable[str] = (),
        size_hint: int | None = None,
        credit: int = 0,
        ceiling: int | None = None,
        ceiling_name: str = limits.S3_CEILING,
    ) -> ObjectWriter:
        """A writer for a new version of bucket/key; nothing is visible until `commit`.

        `credit`: bytes already charged to the owner for this very content (a finished resumable
        upload's), counted as room here and at the commit, whose `also` must uncharge them.
        `ceiling`: the most one request may carry (S3's 5 GiB for a PUT), checked as bytes arrive.
        """
        raw_key = keys.validate_key(key)

        def target(r: ReadTxn) -> tuple[BucketRecord, int]:
            record = buckets.require(r, bucket)
            latest = versions.current(r, record.id, raw_key)
            return record, _bytes(versions.replaced_by_write(r, record, raw_key, latest))

        record, replacing = self.meta.read(target)
        room, reservation = self.admission.room(
            record.owner, replacing + credit, size_hint, ceiling=ceiling, ceiling_name=ceiling_name
        )
        release = (lambda: self.admission.release(reservation)) if reservation is not None else None
        try:
            content = ContentWriter(self.meta, self.chunks, self.config, checksums, room, release, self.intents)
        except BaseException:
            if release is not None:
                release()
            raise
        return ObjectWriter(self, record, raw_key, content, credit)

    def put(self, bucket: str, key: str, data: bytes, **attrs: Any) -> ObjectRecord:
        """Store a whole in-memory object (small objects, tests, the CLI)."""
        with self.open_writer(bucket, key) as writer:
            for i in range(0, len(data), WRITE_BLOCK):
                writer.write(data[i : i + WRITE_BLOCK])
            return writer.commit(**attrs)

    def check_replace(
        self,
        r: ReadTxn,
        bucket: BucketRecord,
        raw_key: bytes,
        size: int,
        condition: Precondition = ALWAYS,
        credit: int = 0,
    ) -> list[ObjectRecord]:
        """Whether bucket/key may get a new version of `size` bytes; returns the versions it removes.

        Runs inside the commit's write transaction (see `replace`), and before publishing chunks in a
        read one, so a write that is bound to fail leaves no files behind. `condition`: asked of the
        key's current version (see conditions.py); `credit`: see `open_writer`.
        """
        fresh = self._same_bucket(r, bucket)
        return self._admit(r, fresh, raw_key, size, condition, credit, versions.current(r, fresh.id, raw_key))

    def replace(
        self,
        w: WriteTxn,
        bucket: BucketRecord,
        raw_key: bytes,
        new: ObjectRecord,
        condition: Precondition = ALWAYS,
        credit: int = 0,
    ) -> ObjectRecord:
        """Make `new` the latest version of bucket/key inside `w`, if `condition` holds, with its usage,
        quota and the references of the versions it removes; returns it with its version id. The
        bucket and the key's current version are read once (a small PUT's commit read them four times)."""
        fresh = self._same_bucket(w, bucket)
        latest = versions.current(w, fresh.id, raw_key)
        self._admit(w, fresh, raw_key, new.size, condition, credit, latest)
        new = versions.stamp(w, fresh, new)
        self._account(w, fresh.owner, new, versions.put_latest(w, fresh, raw_key, new, latest))
        return new

    @staticmethod
    def _same_bucket(r: ReadTxn, bucket: BucketRecord) -> BucketRecord:
        """The bucket's row now; NoSuchBucket if it was deleted (or deleted and made again) since."""
        fresh = buckets.require(r, bucket.name)
        if fresh.id != bucket.id:
            raise NoSuchBucket(bucket.name)
        return fresh

    @staticmethod
    def _admit(
        r: ReadTxn,
        fresh: BucketRecord,
        raw_key: bytes,
        size: int,
        condition: Precondition,
        credit: int,
        latest: ObjectRecord | None,
    ) -> list[ObjectRecord]:
        condition.check(raw_key.decode(), latest)
        removed = versions.replaced_by_write(r, fresh, raw_key, latest)
        admit(r, fresh.owner, size, freed_bytes=_bytes(removed) + credit, new_objects=1 - _count(removed))
        return removed

    def copy(
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

        def copy(w: WriteTxn) -> tuple[ObjectRecord, ObjectRecord]:
            try:
                source = versions.resolve(w, buckets.require(w, src_bucket).id, raw_src, src_version)
            except VersionIsDeleteMarker as e:
                raise InvalidRequest(
                    "The source of a copy request may not specifically refer to a delete marker by version id."
                ) from e
            if check is not None:
                check(source)
            dst_rec = buckets.require(w, dst_bucket)
            new = dataclasses.replace(source, key=dst_key, owner=dst_rec.owner, created=self.clock(), **(replace or {}))
            manifests.add_ref(w, bytes.fromhex(source.manifest))
            return self.replace(w, dst_rec, raw_dst, new, condition), source

        return self.meta.transact(copy)

    def set_tags(self, bucket: str, key: str, tags: dict[str, str], version_id: str | None = None) -> ObjectRecord:
        """Replace the tags of the current version, or of `version_id` (PutObjectTagging / DeleteObjectTagging)."""
        raw_key = keys.validate_key(key)
        versions.check_version_id(version_id)

        def retag(w: WriteTxn) -> ObjectRecord:
            record = buckets.require(w, bucket)
            obj = versions.resolve(w, record.id, raw_key, version_id)
            obj.tags = dict(tags)
            versions.rewrite(w, record.id, raw_key, obj)
            return obj

        return self.meta.transact(retag)

    # deleting --------------------------------------------------------------------------------
    def delete(
        self,
        bucket: str,
        key: str,
        version_id: str | None = None,
        only_if: Callable[[ObjectRecord], bool] | None = None,
        condition: Precondition = ALWAYS,
    ) -> Deletion:
        """DeleteObject: a delete marker (versioned buckets) or the object removed (never versioned
        ones); with `version_id`, that version removed for good. Idempotent, as S3's, unless a
        `condition` (If-Match) asks for a current object: then NoSuchKey or PreconditionFailed.

        `only_if` decides on the current version inside the transaction (lifecycle expiry acts only
        on the version it judged expired); when it says no, nothing changes.
        """
        return self.meta.transact(lambda w: self.delete_in(w, bucket, key, version_id, only_if, condition))

    def delete_in(
        self,
        w: WriteTxn,
        bucket: str,
        key: str,
        version_id: str | None = None,
        only_if: Callable[[ObjectRecord], bool] | None = None,
        condition: Precondition = ALWAYS,
    ) -> Deletion:
        """`delete` inside the caller's write transaction."""
        raw_key = keys.validate_key(key)
        versions.check_version_id(version_id)
        record = buckets.require(w, bucket)
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
        self._account(w, record.owner, None, versions.put_latest(w, record, raw_key, marker, latest))
        return Deletion(marker.version_id, True, True)

    def expire_noncurrent(
        self, bucket: str, key: str, version_id: str, still: Callable[[ObjectRecord, int], bool], most: int
    ) -> bool:
        """Remove a noncurrent version for good if `still(version, rank)` holds inside the transaction
        (rank: how many noncurrent versions are newer, counted up to `most`); False if it is gone,
        current again, or no longer wanted (lifecycle, see `lifecycle_sweep.py`)."""
        raw_key = keys.validate_key(key)

        def expire(w: WriteTxn) -> bool:
            record = buckets.require(w, bucket)
            found = versions.find(w, record.id, raw_key, version_id)
            latest = versions.current(w, record.id, raw_key)
            if found is None or latest is None or latest.seq == found.seq:
                return False
            if not still(found, versions.noncurrent_rank(w, record.id, raw_key, found, most)):
                return False
            self._account(w, record.owner, None, [found])
            versions.remove(w, record.id, raw_key, version_id)
            return True

        return self.meta.transact(expire)

    def remove_lone_marker(self, bucket: str, key: str, version_id: str) -> bool:
        """Remove the key's delete marker `version_id` if it is still the latest version and the
        only one left (lifecycle's expired delete markers)."""
        raw_key = keys.validate_key(key)

        def remove(w: WriteTxn) -> bool:
            record = buckets.require(w, bucket)
            latest = versions.current(w, record.id, raw_key)
            if latest is None or not latest.delete_marker or latest.version_id != version_id:
                return False
            if next(versions.noncurrent(w, record.id, raw_key), None) is not None:
                return False
            versions.remove(w, record.id, raw_key, version_id)
            return True

        return self.meta.transact(remove)

    def purge_key_in(self, w: WriteTxn, bucket: str, key: str) -> bool:
        """Remove every version and delete marker of bucket/key for good; True if there were any."""
        record = buckets.require(w, bucket)
        removed = versions.remove_all(w, record.id, keys.validate_key(key))
        self._account(w, record.owner, None, removed)
        return bool(removed)

    def _account(self, w: WriteTxn, owner: str, added: ObjectRecord | None, removed: list[ObjectRecord]) -> None:
        """Usage and manifest references after a write added and removed versions."""
        now = self.clock()
        for old in removed:
            if not old.delete_marker:
                manifests.drop_ref(w, bytes.fromhex(old.manifest), now)
        kept = [added] if added is not None and not added.delete_marker else []
        delta_bytes, delta_count = _bytes(kept) - _bytes(removed), len(kept) - _count(removed)
        if delta_bytes or delta_count:
            charge(w, owner, delta_bytes, delta_count)

    # reading ---------------------------------------------------------------------------------
    def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectRecord:
        """The current version of bucket/key, or the version `version_id` names (see `versions.resolve`)."""
        raw_key = keys.validate_key(key)
        versions.check_version_id(version_id)
        return self.meta.read(lambda r: versions.resolve(r, buckets.require(r, bucket).id, raw_key, version_id))

    def read(self, record: ObjectRecord, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes [start, end) of an object, streamed chunk by chunk; short read txns only."""
        pieces = self.spans(record, start, end)
        for piece in pieces:
            if isinstance(piece, bytes):
                yield piece  # an inline object: one piece
            else:
                try:
                    yield from self.chunks.read_spans(chain([piece], _chunk_spans(pieces)))
                except FileNotFoundError as e:  # not quarantined (yet): gone from under the metadata
                    raise ChunkMissing(f"a chunk of {record.key!r} is missing from the chunk store") from e

    def regions(self, record: ObjectRecord, start: int = 0, end: int | None = None) -> Iterator[bytes | FileRegion]:
        """The bytes [start, end) of an object as inline bytes and regions of local chunk files, for
        a server that sends files without reading them (a store of remote chunks gives bytes)."""
        pieces = self.spans(record, start, end)
        for piece in pieces:
            if isinstance(piece, bytes):
                yield piece
            elif (region := self.chunks.region(*piece)) is not None:
                yield region
            else:  # remote chunks: read with the store's read-ahead
                yield from self.chunks.read_spans(chain([piece], _chunk_spans(pieces)))

    def spans(
        self, record: ObjectRecord, start: int = 0, end: int | None = None
    ) -> Iterator[bytes | tuple[bytes, int, int]]:
        """Where the bytes [start, end) of an object are: its inline bytes, or (chunk digest, offset
        in the chunk, length) for each chunk the range touches."""
        end = record.size if end is None else min(end, record.size)
        mid = bytes.fromhex(record.manifest)
        head = self.meta.read(partial(_readable_head, mid=mid, key=record.key))
        if head is None:
            raise NoSuchKey(record.key)
        if head.kind == manifests.KIND_INLINE:
            if start < end:
                yield head.inline[start:end]
            return
        pos = start
        while pos < end:
            page = self.meta.read(partial(manifests.page_at, mid=mid, pos=pos))
            if page is None:
                raise NoSuchKey(record.key)
            page_start = pos
            offset, entries = page
            for digest, length in entries:
                if offset + length > pos:
                    lo, hi = pos - offset, min(length, end - offset)
                    yield digest, lo, hi - lo
                    pos = offset + hi
                    if pos >= end:
                        return
                offset += length
            if pos == page_start:  # the last page ended before `end`
                raise FormatError(f"manifest of {record.key!r} ends before byte {pos}")

    def part(self, record: ObjectRecord, number: int) -> manifests.PartInfo:
        """Where part `number` of an object lies (GetObject with partNumber); part 1 of an object
        that was not uploaded in parts is all of it. InvalidPartNumber past the last part."""
        if not record.parts_count:
            if number != 1:
                raise InvalidPartNumber("The requested partnumber is not satisfiable")
            return manifests.PartInfo(1, 0, record.size, {})
        part = self.meta.read(lambda r: manifests.part_info(r, bytes.fromhex(record.manifest), number))
        if part is None:
            raise InvalidPartNumber("The requested partnumber is not satisfiable")
        return part

    def parts(self, record: ObjectRecord, after: int, limit: int) -> list[manifests.PartInfo]:
        """Up to `limit` parts of a multipart object after part number `after` (GetObjectAttributes)."""
        return self.meta.read(lambda r: manifests.parts_after(r, bytes.fromhex(record.manifest), after, limit))

    def list(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        after: str = "",
        max_keys: int = 1000,
        inclusive: bool = False,
    ) -> listing.Page:
        """A page of keys under `prefix` after `after` (or from it, when `inclusive`), in S3 order."""
        return self.meta.read(
            lambda r: listing.list_page(r, buckets.require(r, bucket).id, prefix, delimiter, after, max_keys, inclusive)
        )

    def list_versions(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_marker: str = "",
        max_keys: int = 1000,
    ) -> listing.VersionPage:
        """A page of ListObjectVersions: every version and delete marker, by key, newest first."""
        if version_marker and version_marker != versions.NULL:
            versions.check_version_id(version_marker)
        return self.meta.read(
            lambda r: listing.list_versions_page(
                r, buckets.require(r, bucket).id, prefix, delimiter, key_marker, version_marker, max_keys
            )
        )


class ObjectWriter:
    """Streams one object's content; `commit` makes it visible atomically, `close` drops it."""

    def __init__(self, objects: Objects, bucket: BucketRecord, raw_key: bytes, content: ContentWriter, credit: int = 0):
        self.objects = objects
        self.bucket = bucket
        self.raw_key = raw_key
        self.content = content
        self.credit = credit

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self.content.hasher.size

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
        also: Callable[[WriteTxn, ObjectRecord], None] | None = None,
        if_match: str | None = None,
    ) -> ObjectRecord:
        """Make the object visible; `also` adds rows of the caller's in the same transaction.

        `if_none_match` / `if_match`: only if the key has no object / its object has this ETag
        (see conditions.py), judged again inside the transaction that makes the object visible."""
        content = self.finish()
        objects = self.objects
        condition = Precondition(if_none_match, if_match)

        def make_visible(w: WriteTxn) -> ObjectRecord:
            # `replace` refuses a bucket deleted (or deleted and made again) while this writer ran.
            mid = self.content.install(w)
            record = ObjectRecord(
                key=self.raw_key.decode(),
                size=content.size,
                etag=content.md5,
                manifest=mid.hex(),
                owner=self.bucket.owner,
                created=objects.clock(),
                content_type=content_type,
                headers=dict(headers or {}),
                meta=dict(meta or {}),
                checksums=content.checksums,
                checksum_type=checksum_type,
                blake3=content.blake3,
                tags=dict(tags or {}),
            )
            record = objects.replace(w, self.bucket, self.raw_key, record, condition, self.credit)
            if also is not None:
                also(w, record)
            return record

        try:
            if self.content.stages_chunks():  # a write bound to fail must leave no chunk files behind
                objects.meta.read(
                    lambda r: objects.check_replace(r, self.bucket, self.raw_key, content.size, condition, self.credit)
                )
            self.content.publish()
            record = objects.meta.transact(make_visible)
            self.content.committed()
            return record
        finally:
            self.close()

    def close(self) -> None:
        self.content.close()

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _readable_head(r: ReadTxn, mid: bytes, key: str) -> manifests.ManifestHead | None:
    """A manifest's head, refused (`ChunkMissing`, which S3 answers 503) while one of its chunks is
    quarantined: the bytes are known to be wrong or gone, so none are sent (`quarantine.py`)."""
    head = manifests.get_head(r, mid)
    if head is not None and head.damaged and (digest := manifests.quarantined_chunk(r, mid)) is not None:
        raise ChunkMissing(
            f"The content of {key!r} is damaged: its chunk {digest.hex()} was found corrupt or missing by an "
            "integrity check and quarantined (see pyblob scrub). Upload the object again, or restore the chunk."
        )
    return head


def _bytes(records: Iterable[ObjectRecord]) -> int:
    return sum(r.size for r in records if not r.delete_marker)


def _count(records: Iterable[ObjectRecord]) -> int:
    return sum(1 for r in records if not r.delete_marker)


def _chunk_spans(pieces: Iterator[bytes | tuple[bytes, int, int]]) -> Iterator[tuple[bytes, int, int]]:
    """The rest of a chunked object's spans (only an inline object has bytes among them)."""
    for piece in pieces:
        assert not isinstance(piece, bytes)
        yield piece
