"""Multipart uploads in the engine: parts are stored content, completion joins their chunk lists.

Parts count against the owner's quota while the upload is pending. Completion never copies data:
the object's manifest is the parts' chunks joined at the boundaries (see `rechunk.py`), and the part
manifests are dropped in the same transaction that creates the object.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING, Iterable

from . import keys, manifests
from .errors import EntityTooLarge, EntityTooSmall, InvalidArgument, InvalidPart, InvalidPartOrder, NoSuchUpload, QuotaExceeded
from .records import ObjectRecord, PartRecord, UploadRecord
from .hashing import composite_checksum, full_object_checksum
from .rechunk import Joiner, Part
from .writer import ChunkSink, Content, ContentWriter

if TYPE_CHECKING:
    from .db import Txn
    from .store import Store

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_NUMBER = 10000


def part_key(upload_id: str, number: int) -> bytes:
    return upload_id.encode() + b"/" + number.to_bytes(4, "big")


class Multipart:
    def __init__(self, store: "Store"):
        self.store = store

    def create_upload(self, bucket: str, key: str, **attrs: object) -> UploadRecord:
        """CreateMultipartUpload: remember where the object goes and its attributes."""
        keys.validate_key(key)
        with self.store.db.write() as w:  # one transaction: the bucket cannot go (or change hands) between
            record = self.store._bucket(w, bucket)
            upload = UploadRecord(secrets.token_hex(16), bucket, key, record.owner, self.store.clock(), bucket_id=record.id, **attrs)  # type: ignore[arg-type]
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

    def open_part_writer(self, upload_id: str, number: int, checksums: Iterable[str] = (), size_hint: int | None = None) -> "PartWriter":
        if not 1 <= number <= MAX_PART_NUMBER:
            raise InvalidArgument(f"part number must be 1-{MAX_PART_NUMBER}")
        upload = self.get_upload(upload_id)
        limits, reservation = self.store.reservations.room(upload.owner, 0, size_hint)
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

    def complete_upload(self, upload_id: str, wanted: list[tuple[int, str]], min_part_size: int = MIN_PART_SIZE) -> ObjectRecord:
        """CompleteMultipartUpload: validate the part list as S3 does, then join the parts."""
        upload = self.get_upload(upload_id)
        chosen = self._validate(upload_id, wanted)
        # The owner's size limit before the part sizes: an object past it could never be stored,
        # and a limit under 5 MiB would otherwise always answer EntityTooSmall.
        size = sum(p.size for p in chosen)
        limit = self.store.accounts.get_user(upload.owner).max_object_size
        if limit and size > limit:
            raise EntityTooLarge(f"object of {size} bytes exceeds the limit of {limit}")
        for part in chosen[:-1]:
            if part.size < min_part_size:
                raise EntityTooSmall(f"part {part.number} is {part.size} bytes; all but the last need {min_part_size}")
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
                record = self._commit(w, sink, upload, chosen, joined)
                self._drop(w, upload, list(current.values()))
                self.store.replace_object(w, bucket, upload.key.encode(), record)
        finally:
            sink.close()
        return record

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
            if part is None or etag.strip('"') != part.etag:
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

    def _commit(self, w: "Txn", sink: ChunkSink, upload: UploadRecord, parts: list[PartRecord], joined: list[manifests.Entry] | bytes) -> ObjectRecord:
        mid = manifests.create_inline(w, joined) if isinstance(joined, bytes) else sink.install(w, joined)
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
            checksums=object_checksums(upload, parts),
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
                _upload(r, self.upload.upload_id)
                self._check_quota(r, content.size)
            self.content.publish()
            with self.store.db.write() as w:
                _upload(w, self.upload.upload_id)
                mid = self.content.install(w)
                part = PartRecord(self.number, content.size, content.md5, mid.hex(), self.store.clock(), content.checksums)
                self._replace(w, part)
        finally:
            self.content.close()
        return part

    def _check_quota(self, r: "Txn", size: int) -> PartRecord | None:
        """The part this one replaces; QuotaExceeded if the owner has no room for the difference."""
        raw = r.get("parts", part_key(self.upload.upload_id, self.number))
        old = PartRecord.decode(raw) if raw is not None else None
        delta = size - (old.size if old else 0)
        user = self.store.accounts.user_in(r, self.upload.owner)
        if user.quota and delta > 0 and user.usage_bytes + delta > user.quota:
            raise QuotaExceeded(f"part of {size} bytes would exceed the quota of {user.quota}")
        return old

    def _replace(self, w: "Txn", part: PartRecord) -> None:
        key = part_key(self.upload.upload_id, self.number)
        old = self._check_quota(w, part.size)
        delta = part.size - (old.size if old else 0)
        if old is not None:
            manifests.drop_ref(w, bytes.fromhex(old.manifest), self.store.clock())
        w.put("parts", key, part.encode())
        self.store.accounts.charge(w, self.upload.owner, delta, 0)

    def close(self) -> None:
        self.content.close()

    def __enter__(self) -> "PartWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def default_checksum_type(algorithm: str | None) -> str:
    """S3's default: FULL_OBJECT for CRC64NVME (the only type it supports), COMPOSITE otherwise."""
    return "FULL_OBJECT" if algorithm in (None, "CRC64NVME") else "COMPOSITE"


def object_checksums(upload: UploadRecord, parts: list[PartRecord]) -> dict[str, str]:
    """The completed object's checksum from its parts' checksums, as S3 computes it."""
    alg = upload.checksum_algorithm
    if alg is None or any(alg not in p.checksums for p in parts):
        return {}
    if (upload.checksum_type or default_checksum_type(alg)) == "COMPOSITE":
        return {alg: composite_checksum(alg, [p.checksums[alg] for p in parts])}
    value = full_object_checksum(alg, [(p.checksums[alg], p.size) for p in parts])
    return {alg: value} if value is not None else {}


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
