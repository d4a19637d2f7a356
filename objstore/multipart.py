"""Multipart uploads in the engine: parts are stored content, completion joins their chunk lists.

Parts count against the owner's quota while the upload is pending, and an UploadPart that cannot
fit (the object's size limit with the other parts, the quota, S3's 5 GiB per part) is refused
before its body is kept. Completion never copies data: the object's manifest is the parts' chunks
joined at the boundaries (see `rechunk.py`), the part layout is kept with it for part-wise reads,
and the part manifests are dropped in the same transaction that creates the object.

A completed upload is remembered for `COMPLETED_KEEP` seconds (at most `COMPLETED_MAX` of them):
clients retry CompleteMultipartUpload after a timeout, and S3 answers the retry as it answered the
first call. The record keeps a digest of the part list, so only the same list gets that answer.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from collections.abc import Callable, Iterable

from . import buckets, keys, manifests, versions
from .accounts import charge
from .admission import Admission, admit
from .chunks import ChunkStore, Entry
from .chunks.rechunk import Joiner, Part
from .completion import CompletionChecks, default_checksum_type
from .conditions import ALWAYS, Precondition
from .config import StoreConfig
from .content import ChunkSink, Content, ContentWriter
from .errors import EntityTooSmall, InvalidArgument, InvalidPart, InvalidPartOrder, NoSuchUpload
from .hashing import composite_checksum, full_object_checksum
from .limits import MAX_PART_NUMBER, MAX_PART_SIZE, MIN_PART_SIZE
from .meta import MetadataStore, ReadTxn, WriteTxn, scan
from .objects import Objects
from .records import CompletedUploadRecord, ObjectRecord, PartRecord, UploadRecord

__all__ = ["MAX_PART_NUMBER", "MIN_PART_SIZE", "Multipart", "PartWriter", "default_checksum_type"]

UPLOADS, PARTS = "uploads", "parts"  # upload id -> UploadRecord; upload id + "/" + part number -> PartRecord
COMPLETED = "completed"  # upload id -> CompletedUploadRecord: recently completed uploads (retried Completes)
COMPLETED_ORDER = "completed_order"  # completion time (big-endian) + upload id -> b"": the oldest go first
TABLES = (UPLOADS, PARTS, COMPLETED, COMPLETED_ORDER)
COMPLETED_KEEP = 24 * 3600.0  # a retried Complete within this time gets the first answer again
COMPLETED_MAX = 100_000  # past this many records the oldest go, however young
PRUNE_BATCH = 16  # records pruned per completion: enough to keep up, never a long transaction


def part_key(upload_id: str, number: int) -> bytes:
    return upload_id.encode() + b"/" + number.to_bytes(4, "big")


def parts_digest(wanted: list[tuple[int, str]]) -> str:
    """A digest of a Complete request's part list, ETags without quotes."""
    text = ";".join(f"{n}:{etag.strip().strip(chr(34))}" for n, etag in wanted)
    return hashlib.sha256(text.encode()).hexdigest()


class Multipart:
    """Multipart uploads: create, stream parts, complete (joining the parts' chunks), abort, list."""

    def __init__(
        self,
        meta: MetadataStore,
        chunks: ChunkStore,
        config: StoreConfig,
        clock: Callable[[], float],
        admission: Admission,
        objects: Objects,
    ):
        self.meta = meta
        self.chunks = chunks
        self.config = config
        self.clock = clock
        self.admission = admission
        self.objects = objects

    def create_upload(self, bucket: str, key: str, **attrs: object) -> UploadRecord:
        """CreateMultipartUpload: remember where the object goes and its attributes."""
        keys.validate_key(key)

        def create(w: WriteTxn) -> UploadRecord:  # one transaction: the bucket cannot go (or change hands) between
            record = buckets.require(w, bucket)
            upload = UploadRecord(
                secrets.token_hex(16),
                bucket,
                key,
                record.owner,
                self.clock(),
                bucket_id=record.id,
                parts_bytes=0,
                **attrs,  # type: ignore[arg-type]
            )
            _put_upload(w, upload)
            return upload

        return self.meta.transact(create)

    def get_upload(self, upload_id: str) -> UploadRecord:
        return self.meta.read(lambda r: _upload(r, upload_id))

    def list_uploads(self, bucket: str | None = None) -> list[UploadRecord]:
        found = self.meta.read(_all_uploads)
        return sorted((u for u in found if bucket is None or u.bucket == bucket), key=lambda u: (u.key, u.created))

    def list_parts(self, upload_id: str) -> list[PartRecord]:
        def parts(r: ReadTxn) -> list[PartRecord]:
            _upload(r, upload_id)
            return _parts(r, upload_id)

        return self.meta.read(parts)

    def open_part_writer(
        self, upload_id: str, number: int, checksums: Iterable[str] = (), size_hint: int | None = None
    ) -> PartWriter:
        """A writer for part `number`; refused up front (EntityTooLarge, QuotaExceeded) when a part
        of `size_hint` bytes cannot fit beside the parts already stored, as it is while streaming."""
        if not 1 <= number <= MAX_PART_NUMBER:
            raise InvalidArgument(f"part number must be 1-{MAX_PART_NUMBER}")

        def target(r: ReadTxn) -> tuple[UploadRecord, int, int]:
            upload = _upload(r, upload_id)
            return (upload, *_room_taken(r, upload, number))

        upload, replaced, others = self.meta.read(target)
        limits, reservation = self.admission.room(
            upload.owner, replaced, size_hint, already=others, ceiling=MAX_PART_SIZE, what="a part"
        )
        release = (lambda: self.admission.release(reservation)) if reservation is not None else None
        try:
            content = ContentWriter(
                self.meta, self.chunks, self.config, checksums, limits, release, self.objects.intents
            )
        except BaseException:
            if release is not None:
                release()
            raise
        return PartWriter(self, upload, number, content)

    def abort_upload(self, upload_id: str) -> None:
        """AbortMultipartUpload: drop the parts and give their bytes back to the quota."""

        def abort(w: WriteTxn) -> None:
            upload = _upload(w, upload_id)
            self._drop(w, upload, _parts(w, upload_id))

        self.meta.transact(abort)

    def abort_all_in(self, w: WriteTxn, bucket: str, bucket_id: int) -> int:
        """Abort every upload into `bucket` (this one, not an earlier namesake) inside `w`."""
        doomed = [u for u in _all_uploads(w) if u.bucket == bucket and u.bucket_id in (0, bucket_id)]
        for upload in doomed:
            self._drop(w, upload, _parts(w, upload.upload_id))
        return len(doomed)

    def complete_upload(
        self,
        upload_id: str,
        wanted: list[tuple[int, str]],
        min_part_size: int = MIN_PART_SIZE,
        checks: CompletionChecks | None = None,
        condition: Precondition = ALWAYS,
    ) -> ObjectRecord:
        """CompleteMultipartUpload: validate the part list (and `checks`) as S3 does, then join the parts.

        `condition` (If-None-Match / If-Match) is asked of the key as it is when the object is made
        visible, in that transaction; it is asked once before the join too, so a Complete bound to
        fail re-cuts nothing. When it fails the upload stays, as S3 keeps it, to be completed later.
        """
        upload = self.get_upload(upload_id)
        chosen = self._validate(upload_id, wanted)
        size = sum(p.size for p in chosen)
        # The owner's size limit before the part sizes: an object past it could never be stored,
        # and a limit under 5 MiB would otherwise always answer EntityTooSmall. (The parts' bytes
        # are charged already: the object takes their place.)
        self.meta.read(lambda r: admit(r, upload.owner, size, freed_bytes=size))
        for part in chosen[:-1]:
            if part.size < min_part_size:
                raise EntityTooSmall(f"part {part.number} is {part.size} bytes; all but the last need {min_part_size}")
        object_checksums = object_checksums_of(upload, chosen)
        (checks or CompletionChecks()).verify(upload, chosen, object_checksums)
        if condition != ALWAYS:
            self.meta.read(
                lambda r: condition.check(
                    upload.key, versions.current(r, buckets.require(r, upload.bucket).id, upload.key.encode())
                )
            )
        sink = ChunkSink(self.meta, self.chunks, self.objects.intents)

        def make_visible(w: WriteTxn, joined: list[Entry] | bytes) -> ObjectRecord:
            fresh = _upload(w, upload_id)
            current = {p.number: p for p in _parts(w, upload_id)}
            if any(current.get(p.number) != p for p in chosen):
                raise InvalidPart("a part changed while the upload completed")
            bucket = buckets.require(w, fresh.bucket)
            if fresh.bucket_id and bucket.id != fresh.bucket_id:
                raise NoSuchUpload(f"{upload_id}: its bucket was deleted")
            record = self._commit(w, sink, fresh, chosen, joined, object_checksums)
            self._drop(w, fresh, list(current.values()))
            record = self.objects.replace(w, bucket, fresh.key.encode(), record, condition)
            self._remember(w, fresh, bucket.id, wanted, record)
            return record

        try:
            joined = self._join(sink, chosen)
            sink.publish()
            record = self.meta.transact(lambda w: make_visible(w, joined))
            sink.committed = True
            return record
        finally:
            sink.close()

    def completed(self, upload_id: str, bucket: str, key: str, wanted: list[tuple[int, str]]) -> CompletedUploadRecord:
        """The answer of an upload completed recently into this bucket and key with the same part
        list (a retried Complete); NoSuchUpload otherwise, as for any unknown upload."""

        def lookup(r: ReadTxn) -> tuple[bytes | None, int | None]:
            current = buckets.get(r, bucket)
            return r.get(COMPLETED, upload_id.encode()), current.id if current is not None else None

        raw, bucket_id = self.meta.read(lookup)
        done = CompletedUploadRecord.decode(raw) if raw is not None else None
        if done is None or bucket_id != done.bucket_id or done.key != key or done.parts_digest != parts_digest(wanted):
            raise NoSuchUpload(upload_id)
        return done

    def prune_completed(self, now: float, limit: int | None = None) -> int:
        """Forget completions older than COMPLETED_KEEP (GC runs this without a limit)."""
        return self.meta.transact(lambda w: _prune(w, now, limit))

    def _remember(
        self, w: WriteTxn, upload: UploadRecord, bucket_id: int, wanted: list[tuple[int, str]], record: ObjectRecord
    ) -> None:
        done = CompletedUploadRecord(
            upload.upload_id,
            upload.bucket,
            bucket_id,
            upload.key,
            parts_digest(wanted),
            record.etag,
            record.version_id,
            record.created,
            record.checksums,
            record.checksum_type,
        )
        w.put(COMPLETED, upload.upload_id.encode(), done.encode())
        w.put(COMPLETED_ORDER, _order_key(done.completed, upload.upload_id), b"")
        _prune(w, record.created, PRUNE_BATCH)

    def _validate(self, upload_id: str, wanted: list[tuple[int, str]]) -> list[PartRecord]:
        """The listed parts, in ascending order and with matching ETags, as S3 requires."""
        if not wanted:
            raise InvalidArgument("the part list is empty")
        numbers = [n for n, _ in wanted]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise InvalidPartOrder("parts must be listed in ascending order")
        have = {p.number: p for p in self.list_parts(upload_id)}
        chosen = []
        for number, etag in wanted:
            part = have.get(number)
            if part is None or etag.strip().strip('"') != part.etag:
                raise InvalidPart(f"part {number} was not uploaded or its ETag does not match")
            chosen.append(part)
        return chosen

    def _join(self, sink: ChunkSink, parts: list[PartRecord]) -> list[Entry] | bytes:
        def pieces_of(r: ReadTxn) -> list[Part]:
            pieces: list[Part] = []
            for part in parts:
                mid = bytes.fromhex(part.manifest)
                head = manifests.get_head(r, mid)
                if head is None:
                    raise InvalidPart(f"part {part.number} is gone")
                pieces.append(head.inline if head.kind == manifests.KIND_INLINE else manifests.all_entries(r, mid))
            return pieces

        pieces = self.meta.read(pieces_of)
        inline = [p for p in pieces if isinstance(p, bytes)]
        if len(inline) == len(pieces) and sum(len(p) for p in inline) <= self.config.inline_max:
            return b"".join(inline)
        try:
            return Joiner(self.config, self.chunks.read_all, sink.add).join(pieces)
        except (FileNotFoundError, EOFError) as e:  # a part replaced and collected meanwhile
            raise InvalidPart("a part changed while the upload completed") from e

    def _commit(
        self,
        w: WriteTxn,
        sink: ChunkSink,
        upload: UploadRecord,
        parts: list[PartRecord],
        joined: list[Entry] | bytes,
        checksums: dict[str, str],
    ) -> ObjectRecord:
        mid = manifests.create_inline(w, joined) if isinstance(joined, bytes) else sink.install(w, joined)
        manifests.set_parts(w, mid, [(p.number, p.size, p.checksums) for p in parts])
        md5s = b"".join(bytes.fromhex(p.etag) for p in parts)
        return ObjectRecord(
            key=upload.key,
            size=sum(p.size for p in parts),
            etag=f"{hashlib.md5(md5s).hexdigest()}-{len(parts)}",
            manifest=mid.hex(),
            owner=upload.owner,
            created=self.clock(),
            content_type=upload.content_type,
            headers=upload.headers,
            meta=upload.meta,
            checksums=checksums,
            checksum_type=upload.checksum_type or default_checksum_type(upload.checksum_algorithm),
            parts_count=len(parts),
            tags=dict(upload.tags),
        )

    def _drop(self, w: WriteTxn, upload: UploadRecord, parts: list[PartRecord]) -> None:
        now = self.clock()
        for part in parts:
            manifests.drop_ref(w, bytes.fromhex(part.manifest), now)
            w.delete(PARTS, part_key(upload.upload_id, part.number))
        charge(w, upload.owner, -sum(p.size for p in parts), 0)
        w.delete(UPLOADS, upload.upload_id.encode())


class PartWriter:
    """UploadPart: streams one part; `commit` replaces any earlier part with the same number."""

    def __init__(self, multipart: Multipart, upload: UploadRecord, number: int, content: ContentWriter):
        self.multipart, self.upload, self.number, self.content = multipart, upload, number, content

    def write(self, data: bytes | memoryview) -> None:
        self.content.write(data)

    def finish(self) -> Content:
        return self.content.finish()

    def commit(self) -> PartRecord:
        content = self.finish()
        meta, clock = self.multipart.meta, self.multipart.clock

        def keep(w: WriteTxn) -> PartRecord:
            _upload(w, self.upload.upload_id)
            mid = self.content.install(w)
            part = PartRecord(self.number, content.size, content.md5, mid.hex(), clock(), content.checksums)
            self._replace(w, part)
            return part

        try:
            meta.read(lambda r: self._check_room(r, content.size))  # refuse before publishing what could not be kept
            self.content.publish()
            part = meta.transact(keep)
            self.content.committed()
            return part
        finally:
            self.content.close()

    def _check_room(self, r: ReadTxn, size: int) -> tuple[UploadRecord, PartRecord | None, int]:
        """(the upload, the part this one replaces, the other parts' bytes); EntityTooLarge /
        QuotaExceeded if the upload cannot hold a part of `size` bytes."""
        upload = _upload(r, self.upload.upload_id)
        raw = r.get(PARTS, part_key(upload.upload_id, self.number))
        old = PartRecord.decode(raw) if raw is not None else None
        replaced, others = _room_taken(r, upload, self.number)
        admit(r, upload.owner, size, already=others, freed_bytes=replaced)
        return upload, old, others

    def _replace(self, w: WriteTxn, part: PartRecord) -> None:
        upload, old, others = self._check_room(w, part.size)
        delta = part.size - (old.size if old else 0)
        if old is not None:
            manifests.drop_ref(w, bytes.fromhex(old.manifest), self.multipart.clock())
        w.put(PARTS, part_key(upload.upload_id, self.number), part.encode())
        upload.parts_bytes = others + part.size
        _put_upload(w, upload)
        charge(w, upload.owner, delta, 0)

    def close(self) -> None:
        self.content.close()

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def object_checksums_of(upload: UploadRecord, parts: list[PartRecord]) -> dict[str, str]:
    """The completed object's checksum from its parts' checksums, as S3 computes it."""
    alg = upload.checksum_algorithm
    if alg is None or any(alg not in p.checksums for p in parts):
        return {}
    if (upload.checksum_type or default_checksum_type(alg)) == "COMPOSITE":
        return {alg: composite_checksum(alg, [p.checksums[alg] for p in parts])}
    value = full_object_checksum(alg, [(p.checksums[alg], p.size) for p in parts])
    return {alg: value} if value is not None else {}


def _order_key(when: float, upload_id: str) -> bytes:
    return struct.pack(">d", when) + upload_id.encode()


def _prune(w: WriteTxn, now: float, limit: int | None) -> int:
    """Drop the oldest completion records: those past COMPLETED_KEEP, and any past COMPLETED_MAX."""
    excess = max(0, w.count(COMPLETED) - COMPLETED_MAX)
    doomed: list[bytes] = []
    for key, _ in w.range(COMPLETED_ORDER):
        if limit is not None and len(doomed) >= limit:
            break
        (when,) = struct.unpack(">d", key[:8])
        if when > now - COMPLETED_KEEP and len(doomed) >= excess:
            break
        doomed.append(key)
    for key in doomed:
        w.delete(COMPLETED_ORDER, key)
        w.delete(COMPLETED, key[8:])
    return len(doomed)


def _room_taken(r: ReadTxn, upload: UploadRecord, number: int) -> tuple[int, int]:
    """(bytes of part `number`, bytes of the other parts): two gets, not a scan of the parts (an
    upload may have 10,000); uploads from before `parts_bytes` was kept are summed once."""
    raw = r.get(PARTS, part_key(upload.upload_id, number))
    replaced = PartRecord.decode(raw).size if raw is not None else 0
    total = upload.parts_bytes if upload.parts_bytes is not None else sum(p.size for p in _parts(r, upload.upload_id))
    return replaced, total - replaced


def _upload(r: ReadTxn, upload_id: str) -> UploadRecord:
    raw = r.get(UPLOADS, upload_id.encode())
    if raw is None:
        raise NoSuchUpload(upload_id)
    return UploadRecord.decode(raw)


def _put_upload(w: WriteTxn, upload: UploadRecord) -> None:
    w.put(UPLOADS, upload.upload_id.encode(), upload.encode())


def _all_uploads(r: ReadTxn) -> list[UploadRecord]:
    return [UploadRecord.decode(v) for _, v in r.range(UPLOADS)]


def _parts(r: ReadTxn, upload_id: str) -> list[PartRecord]:
    return [PartRecord.decode(v) for _, v in scan(r, PARTS, upload_id.encode() + b"/")]


def part_refs(r: ReadTxn) -> list[tuple[UploadRecord | None, PartRecord]]:
    """Every stored part with its upload (None if that is gone): what fsck counts."""
    uploads = {u.upload_id: u for u in _all_uploads(r)}
    return [(uploads.get(key.split(b"/")[0].decode()), PartRecord.decode(v)) for key, v in r.range(PARTS)]
