"""Manifests: the ordered chunk list of an object's content, shared by copies and reference-counted.

A manifest head (`manifests` table) holds its reference count, size and, for tiny content, the
bytes themselves. Its chunk list lives in pages (`mpages`) keyed by `manifest id + start offset`, so a
ranged read seeks straight to the page holding its first byte and huge objects never make huge rows.
Chunk reference counts change in the same transaction as the manifests that hold them.

Content that a multipart upload made also keeps its part layout (`manifest_parts`: manifest id +
part number -> offset, size and the part's checksums), for GetObject with `partNumber` and
GetObjectAttributes. It belongs to the content, so copies share it, and it goes with the manifest.
"""

from __future__ import annotations

import json
import secrets
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from . import refcount
from .db import Txn
from .errors import FormatError

PAGE_ENTRIES = 1024
_HEAD = struct.Struct(">BIQB")
_ENTRY = struct.Struct(">32sI")
_VERSION = 1
KIND_CHUNKS, KIND_INLINE = 0, 1

Entry = tuple[bytes, int]  # (chunk digest, length)


@dataclass
class ManifestHead:
    refs: int
    size: int
    kind: int
    inline: bytes = b""

    def encode(self) -> bytes:
        return _HEAD.pack(_VERSION, self.refs, self.size, self.kind) + self.inline

    @classmethod
    def decode(cls, raw: bytes) -> "ManifestHead":
        version, refs, size, kind = _HEAD.unpack_from(raw)
        if version != _VERSION:
            raise FormatError(f"manifest head has format version {version}")
        return cls(refs, size, kind, bytes(raw[_HEAD.size:]))


@dataclass
class PartInfo:
    """One part of content made by a multipart upload."""

    number: int
    offset: int
    size: int
    checksums: dict[str, str] = field(default_factory=dict)


def new_id() -> bytes:
    return secrets.token_bytes(16)


def get_head(r: Txn, mid: bytes) -> ManifestHead | None:
    raw = r.get("manifests", mid)
    return ManifestHead.decode(raw) if raw is not None else None


def create_inline(w: Txn, data: bytes) -> bytes:
    mid = new_id()
    w.put("manifests", mid, ManifestHead(1, len(data), KIND_INLINE, data).encode())
    return mid


def create_chunked(w: Txn, entries: list[Entry]) -> bytes:
    """A new manifest with one reference, counting one reference per entry on each chunk."""
    mid = new_id()
    offset = 0
    for i in range(0, len(entries), PAGE_ENTRIES):
        page = entries[i : i + PAGE_ENTRIES]
        w.put("mpages", mid + offset.to_bytes(8, "big"), _pack(page))
        offset += sum(length for _, length in page)
    w.put("manifests", mid, ManifestHead(1, offset, KIND_CHUNKS).encode())
    refs, sizes = _counts(entries)
    refcount.add_refs(w, refs, sizes)
    return mid


def add_ref(w: Txn, mid: bytes) -> None:
    head = _require(w, mid)
    head.refs += 1
    w.put("manifests", mid, head.encode())


def drop_ref(w: Txn, mid: bytes, now: float) -> None:
    """One reference fewer; at zero the manifest goes and its chunks lose their references."""
    head = _require(w, mid)
    head.refs -= 1
    if head.refs > 0:
        w.put("manifests", mid, head.encode())
        return
    w.delete("manifests", mid)
    _delete_parts(w, mid)
    if head.kind == KIND_CHUNKS:
        refs, _ = _counts(_delete_pages(w, mid))
        refcount.drop_refs(w, refs, now)


def set_parts(w: Txn, mid: bytes, parts: list[tuple[int, int, dict[str, str]]]) -> None:
    """Record the part layout of a new manifest: (part number, size, checksums) in order."""
    offset = 0
    for number, size, checksums in parts:
        w.put("manifest_parts", _part_key(mid, number), json.dumps([offset, size, checksums]).encode())
        offset += size


def part_info(r: Txn, mid: bytes, number: int) -> PartInfo | None:
    raw = r.get("manifest_parts", _part_key(mid, number))
    return _part(number, raw) if raw is not None else None


def parts_after(r: Txn, mid: bytes, after: int, limit: int) -> list[PartInfo]:
    """Up to `limit` parts with numbers above `after`, in order."""
    found: list[PartInfo] = []
    cursor = r.cursor("manifest_parts")
    if limit <= 0 or not cursor.set_range(_part_key(mid, after + 1)):
        return found
    while bytes(cursor.key())[:16] == mid and len(found) < limit:
        found.append(_part(int.from_bytes(bytes(cursor.key())[16:], "big"), bytes(cursor.value())))
        if not cursor.next():
            break
    return found


def _part_key(mid: bytes, number: int) -> bytes:
    return mid + number.to_bytes(4, "big")


def _part(number: int, raw: bytes) -> PartInfo:
    offset, size, checksums = json.loads(raw)
    return PartInfo(number, offset, size, checksums)


def _delete_parts(w: Txn, mid: bytes) -> None:
    cursor = w.cursor("manifest_parts")
    if not cursor.set_range(mid):
        return
    while bytes(cursor.key())[:16] == mid:
        if not cursor.delete():
            break


def page_at(r: Txn, mid: bytes, pos: int) -> tuple[int, list[Entry]] | None:
    """(start offset, entries) of the page holding byte `pos` of a chunked manifest."""
    cur = r.cursor("mpages")
    target = mid + pos.to_bytes(8, "big")
    if not cur.set_range(target) or cur.key() != target:
        if not (cur.prev() if cur.key() else cur.last()):
            return None
    key = cur.key()
    if key[:16] != mid:
        return None
    return int.from_bytes(key[16:], "big"), _unpack(cur.value())


def iter_entries(r: Txn, mid: bytes, start: int = 0) -> Iterator[tuple[int, bytes, int]]:
    """(offset, digest, length) of each chunk from the one holding byte `start` to the end."""
    pos = start
    while True:
        page = page_at(r, mid, pos)
        if page is None:
            return
        offset, entries = page
        for digest, length in entries:
            if offset + length > pos:
                yield offset, digest, length
            offset += length
        if offset <= pos:
            return
        pos = offset


def all_entries(r: Txn, mid: bytes) -> list[Entry]:
    return [(d, n) for _, d, n in iter_entries(r, mid)]


def iter_manifests(r: Txn) -> Iterator[tuple[bytes, ManifestHead]]:
    for mid, raw in r.cursor("manifests"):
        yield bytes(mid), ManifestHead.decode(raw)


def _require(r: Txn, mid: bytes) -> ManifestHead:
    head = get_head(r, mid)
    if head is None:
        raise FormatError(f"manifest {mid.hex()} is missing")
    return head


def _delete_pages(w: Txn, mid: bytes) -> list[Entry]:
    cur = w.cursor("mpages")
    entries: list[Entry] = []
    if not cur.set_range(mid):
        return entries
    while cur.key()[:16] == mid:
        entries.extend(_unpack(cur.value()))
        if not cur.delete():
            break
    return entries


def _counts(entries: Iterable[Entry]) -> tuple[Counter[bytes], dict[bytes, int]]:
    refs: Counter[bytes] = Counter()
    sizes: dict[bytes, int] = {}
    for digest, length in entries:
        refs[digest] += 1
        sizes[digest] = length
    return refs, sizes


def _pack(entries: list[Entry]) -> bytes:
    return bytes([_VERSION]) + b"".join(_ENTRY.pack(d, n) for d, n in entries)


def _unpack(raw: bytes) -> list[Entry]:
    if raw[0] != _VERSION:
        raise FormatError(f"manifest page has format version {raw[0]}")
    return [(bytes(d), n) for d, n in _ENTRY.iter_unpack(memoryview(raw)[1:])]
