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
from typing import TYPE_CHECKING, Iterable

from . import keys, manifests, versions
from .conditions import ALWAYS, Precondition
from .errors import EntityTooSmall, InvalidArgument, InvalidPart, InvalidPartOrder, NoSuchUpload
from .hashing import composite_checksum, full_object_checksum
from .completion import CompletionChecks, default_checksum_type
from .limits import MAX_PART_NUMBER, MAX_PART_SIZE, MIN_PART_SIZE, check_object_size, check_quota
from .records import BucketRecord, CompletedUploadRecord, ObjectRecord, PartRecord, UploadRecord
from .rechunk import Joiner, Part
from .writer import ChunkSink, Content, ContentWriter

if TYPE_CHECKING:
    from .db import Txn
    from .store import Store

__all__ = ["MAX_PART_NUMBER", "MIN_PART_SIZE", "Multipart", "PartWriter", "default_checksum_type"]

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
    def __init__(self, store: "Store"):
        self.store = store

    def create_upload(self, bucket: str, key: str, **attrs: object) -> UploadRecord:
        """CreateMultipartUpload: remember where the object goes and its attributes."""
        keys.validate_key(key)
        with self.store.db.write() as w:  # one transaction: the bucket cannot go (or change hands) between
            record = self.store._bucket(w, bucket)
            upload = UploadRecord(
                secrets.token_hex(16), bucket, key, record.owner, self.store.clock(), bucket_id=record.id, parts_bytes=0,
                **attrs,  # type: ignore[arg-type]
            )
            w.put("uploads", upload.upload_id.encode(), upload.encode())
        return upload

    def get_upload(self, upload_id: str) -> UploadRecord:
        with self.store.db.read() as r:
            return _upload(r, upload_id)

    def list_uploads(self, bucket: str | None = None) -> list[UploadRecord]:
        with self.store.db.read() as r:
            found = [UploadRecord.decode(v) for _, v in r.cursor("uploads")]
        return sorted((u for u in found if bucket is None or u.bucket == bucket), key=lambda u: (u.key, u.created))

    def list_parts(self, upload_id: str) -> list[PartRecord]:
        with self.store.db.read() as r:
            _upload(r, upload_id)
            return _parts(r, upload_id)

    def open_part_writer(
        self, upload_id: str, number: int, checksums: Iterable[str] = (), size_hint: int | None = None
    ) -> "PartWriter":
        """A writer for part `number`; refused up front (EntityTooLarge, QuotaExceeded) when a part
        of `size_hint` bytes cannot fit beside the parts already stored, as it is while streaming."""
        if not 1 <= number <= MAX_PART_NUMBER:
            raise InvalidArgument(f"part number must be 1-{MAX_PART_NUMBER}")
        with self.store.db.read() as r:
            upload = _upload(r, upload_id)
            replaced, others = _room_taken(r, upload, number)
        limits, reservation = self.store.reservations.room(
            upload.owner, replaced, size_hint, already=others, ceiling=MAX_PART_SIZE, what="a part"
        )
        try:
            content = ContentWriter(self.store, checksums, limits, reservation)
        except BaseException:
            if reservation is not None:  # else held until this process exits
                self.store.reservations.release(reservation)
            raise
        return PartWriter(self.store, upload, number, content)

    def abort_upload(self, upload_id: str) -> None:
        """AbortMultipartUpload: drop the parts and give their bytes back to the quota."""
        with self.store.db.write() as w:
            upload = _upload(w, upload_id)
            self._drop(w, upload, _parts(w, upload_id))

    def abort_all_in(self, w: "Txn", bucket: str, bucket_id: int) -> int:
        """Abort every upload into `bucket` (this one, not an earlier namesake) inside `w`."""
        doomed = [
            u for u in (UploadRecord.decode(v) for _, v in w.cursor("uploads"))
            if u.bucket == bucket and u.bucket_id in (0, bucket_id)
        ]
        for upload in doomed:
            self._drop(w, upload, _parts(w, upload.upload_id))
        return len(doomed)

    def complete_upload(
        self, upload_id: str, wanted: list[tuple[int, str]], min_part_size: int = MIN_PART_SIZE,
        checks: CompletionChecks | None = None, condition: Precondition = ALWAYS,
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
        # and a limit under 5 MiB would otherwise always answer EntityTooSmall.
        check_object_size(self.store.accounts.get_user(upload.owner), size)
        for part in chosen[:-1]:
            if part.size < min_part_size:
                raise EntityTooSmall(f"part {part.number} is {part.size} bytes; all but the last need {min_part_size}")
        object_checksums = object_checksums_of(upload, chosen)
        (checks or CompletionChecks()).verify(upload, chosen, object_checksums)
        if condition != ALWAYS:
            with self.store.db.read() as r:
                bucket_id = self.store._bucket(r, upload.bucket).id
                condition.check(upload.key, versions.current(r, bucket_id, upload.key.encode()))
        sink = ChunkSink(self.store)
        try:
            joined = self._join(sink, chosen)
            sink.publish()
            with self.store.db.write() as w:
                upload = _upload(w, upload_id)
                current = {p.number: p for p in _parts(w, upload_id)}
                if any(current.get(p.number) != p for p in chosen):
                    raise InvalidPart("a part changed while the upload completed")
                bucket = self.store._bucket(w, upload.bucket)
                if upload.bucket_id and bucket.id != upload.bucket_id:
                    raise NoSuchUpload(f"{upload_id}: its bucket was deleted")
                record = self._commit(w, sink, upload, chosen, joined, object_checksums)
                self._drop(w, upload, list(current.values()))
                record = self.store.replace_object(w, bucket, upload.key.encode(), record, condition)
                self._remember(w, upload, bucket.id, wanted, record)
        finally:
            sink.close()
        return record

    def completed(self, upload_id: str, bucket: str, key: str, wanted: list[tuple[int, str]]) -> CompletedUploadRecord:
        """The answer of an upload completed recently into this bucket and key with the same part
        list (a retried Complete); NoSuchUpload otherwise, as for any unknown upload."""
        with self.store.db.read() as r:
            raw = r.get("completed", upload_id.encode())
            current = r.get("buckets", bucket.encode())
        done = CompletedUploadRecord.decode(raw) if raw is not None else None
        same_bucket = done is not None and current is not None and BucketRecord.decode(current).id == done.bucket_id
        if done is None or not same_bucket or done.key != key or done.parts_digest != parts_digest(wanted):
            raise NoSuchUpload(upload_id)
        return done

    def prune_completed(self, now: float, limit: int | None = None) -> int:
        """Forget completions older than COMPLETED_KEEP (GC runs this without a limit)."""
        with self.store.db.write() as w:
            return _prune(w, now, limit)

    def _remember(self, w: "Txn", upload: UploadRecord, bucket_id: int, wanted: list[tuple[int, str]], record: ObjectRecord) -> None:
        done = CompletedUploadRecord(
            upload.upload_id, upload.bucket, bucket_id, upload.key, parts_digest(wanted), record.etag,
            record.version_id, record.created, record.checksums, record.checksum_type,
        )
        w.put("completed", upload.upload_id.encode(), done.encode())
        w.put("completed_order", _order_key(done.completed, upload.upload_id), b"")
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

    def _join(self, sink: ChunkSink, parts: list[PartRecord]) -> list[manifests.Entry] | bytes:
        pieces: list[Part] = []
        with self.store.db.read() as r:
            for part in parts:
                mid = bytes.fromhex(part.manifest)
                head = manifests.get_head(r, mid)
                if head is None:
                    raise InvalidPart(f"part {part.number} is gone")
                pieces.append(head.inline if head.kind == manifests.KIND_INLINE else manifests.all_entries(r, mid))
        if all(isinstance(p, bytes) for p in pieces) and sum(len(p) for p in pieces) <= self.store.config.inline_max:
            return b"".join(pieces)  # type: ignore[arg-type]
        try:
            return Joiner(self.store.config, self.store.blobs.read_all, sink.add).join(pieces)
        except (FileNotFoundError, EOFError) as e:  # a part replaced and collected meanwhile
            raise InvalidPart("a part changed while the upload completed") from e

    def _commit(
        self, w: "Txn", sink: ChunkSink, upload: UploadRecord, parts: list[PartRecord],
        joined: list[manifests.Entry] | bytes, checksums: dict[str, str],
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
            created=self.store.clock(),
            content_type=upload.content_type,
            headers=upload.headers,
            meta=upload.meta,
            checksums=checksums,
            checksum_type=upload.checksum_type or default_checksum_type(upload.checksum_algorithm),
            parts_count=len(parts),
            tags=dict(upload.tags),
        )

    def _drop(self, w: "Txn", upload: UploadRecord, parts: list[PartRecord]) -> None:
        now = self.store.clock()
        for part in parts:
            manifests.drop_ref(w, bytes.fromhex(part.manifest), now)
            w.delete("parts", part_key(upload.upload_id, part.number))
        self.store.accounts.charge(w, upload.owner, -sum(p.size for p in parts), 0)
        w.delete("uploads", upload.upload_id.encode())


class PartWriter:
    """UploadPart: streams one part; `commit` replaces any earlier part with the same number."""

    def __init__(self, store: "Store", upload: UploadRecord, number: int, content: ContentWriter):
        self.store, self.upload, self.number, self.content = store, upload, number, content

    def write(self, data: bytes | memoryview) -> None:
        self.content.write(data)

    def finish(self) -> Content:
        return self.content.finish()

    def commit(self) -> PartRecord:
        content = self.finish()
        try:
            with self.store.db.read() as r:  # refuse before publishing what could not be kept
                self._check_room(r, content.size)
            self.content.publish()
            with self.store.db.write() as w:
                _upload(w, self.upload.upload_id)
                mid = self.content.install(w)
                part = PartRecord(self.number, content.size, content.md5, mid.hex(), self.store.clock(), content.checksums)
                self._replace(w, part)
        finally:
            self.content.close()
        return part

    def _check_room(self, r: "Txn", size: int) -> tuple[UploadRecord, PartRecord | None, int]:
        """(the upload, the part this one replaces, the other parts' bytes); EntityTooLarge /
        QuotaExceeded if the upload cannot hold a part of `size` bytes."""
        upload = _upload(r, self.upload.upload_id)
        raw = r.get("parts", part_key(upload.upload_id, self.number))
        old = PartRecord.decode(raw) if raw is not None else None
        replaced, others = _room_taken(r, upload, self.number)
        user = self.store.accounts.user_in(r, upload.owner)
        check_object_size(user, others + size)
        check_quota(user, size - replaced)
        return upload, old, others

    def _replace(self, w: "Txn", part: PartRecord) -> None:
        upload, old, others = self._check_room(w, part.size)
        delta = part.size - (old.size if old else 0)
        if old is not None:
            manifests.drop_ref(w, bytes.fromhex(old.manifest), self.store.clock())
        w.put("parts", part_key(upload.upload_id, self.number), part.encode())
        upload.parts_bytes = others + part.size
        w.put("uploads", upload.upload_id.encode(), upload.encode())
        self.store.accounts.charge(w, upload.owner, delta, 0)

    def close(self) -> None:
        self.content.close()

    def __enter__(self) -> "PartWriter":
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


def _prune(w: "Txn", now: float, limit: int | None) -> int:
    """Drop the oldest completion records: those past COMPLETED_KEEP, and any past COMPLETED_MAX."""
    cursor = w.cursor("completed_order")
    excess = max(0, w.count("completed") - COMPLETED_MAX)
    doomed: list[bytes] = []
    for key, _ in cursor:
        if limit is not None and len(doomed) >= limit:
            break
        (when,) = struct.unpack(">d", bytes(key)[:8])
        if when > now - COMPLETED_KEEP and len(doomed) >= excess:
            break
        doomed.append(bytes(key))
    for key in doomed:
        w.delete("completed_order", key)
        w.delete("completed", key[8:])
    return len(doomed)


def _room_taken(r: "Txn", upload: UploadRecord, number: int) -> tuple[int, int]:
    """(bytes of part `number`, bytes of the other parts): two gets, not a scan of the parts (an
    upload may have 10,000); uploads from before `parts_bytes` was kept are summed once."""
    raw = r.get("parts", part_key(upload.upload_id, number))
    replaced = PartRecord.decode(raw).size if raw is not None else 0
    total = upload.parts_bytes if upload.parts_bytes is not None else sum(p.size for p in _parts(r, upload.upload_id))
    return replaced, total - replaced


def _upload(r: "Txn", upload_id: str) -> UploadRecord:
    raw = r.get("uploads", upload_id.encode())
    if raw is None:
        raise NoSuchUpload(upload_id)
    return UploadRecord.decode(raw)


def _parts(r: "Txn", upload_id: str) -> list[PartRecord]:
    prefix = upload_id.encode() + b"/"
    cur = r.cursor("parts")
    found = []
    if cur.set_range(prefix):
        while cur.key().startswith(prefix):
            found.append(PartRecord.decode(cur.value()))
            if not cur.next():
                break
    return found
