"""Manifests: the ordered chunk list of an object's content, shared by copies and reference-counted.

A manifest head (`manifests` table) holds its reference count, size and, for tiny content, the
bytes themselves. Its chunk list lives in pages (`mpages`) keyed by `manifest id + start offset`, so a
ranged read seeks straight to the page holding its first byte and huge objects never make huge rows.
Chunk reference counts change in the same transaction as the manifests that hold them.

Content that a multipart upload made also keeps its part layout (`manifest_parts`: manifest id +
part number -> offset, size and the part's checksums), for GetObject with `partNumber` and
GetObjectAttributes. It belongs to the content, so copies share it, and it goes with the manifest.

A head may be marked `damaged` (version 2 of the head; only such heads have it): one of its chunks
was quarantined (`quarantine.py`). Reads of a damaged manifest look at its chunks' rows first and
refuse the content while one is still quarantined; the mark is a hint, cleared by scrub once every
chunk is healthy again, so healthy content costs reads nothing.
"""

from __future__ import annotations

import json
import secrets
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from . import refcount
from .chunks import Entry
from .errors import FormatError
from .meta import ReadTxn, WriteTxn, scan

HEADS, PAGES, PARTS = "manifests", "mpages", "manifest_parts"
TABLES = (HEADS, PAGES, PARTS)
PAGE_ENTRIES = 1024
_HEAD = struct.Struct(">BIQB")
_DAMAGED_HEAD = struct.Struct(">BIQBB")  # version 2: a damaged head, with its flags (1: damaged)
_ENTRY = struct.Struct(">32sI")
_VERSION = 1
_VERSION_DAMAGED = 2
KIND_CHUNKS, KIND_INLINE = 0, 1


@dataclass
class ManifestHead:
    refs: int
    size: int
    kind: int
    inline: bytes = b""
    damaged: bool = False  # a chunk of it was quarantined: reads check its chunks' rows first

    def encode(self) -> bytes:
        if self.damaged:
            return _DAMAGED_HEAD.pack(_VERSION_DAMAGED, self.refs, self.size, self.kind, 1) + self.inline
        return _HEAD.pack(_VERSION, self.refs, self.size, self.kind) + self.inline

    @classmethod
    def decode(cls, raw: bytes) -> ManifestHead:
        if raw[:1] == bytes([_VERSION_DAMAGED]):
            _, refs, size, kind, flags = _DAMAGED_HEAD.unpack_from(raw)
            return cls(refs, size, kind, bytes(raw[_DAMAGED_HEAD.size :]), damaged=bool(flags & 1))
        version, refs, size, kind = _HEAD.unpack_from(raw)
        if version != _VERSION:
            raise FormatError(f"manifest head has format version {version}")
        return cls(refs, size, kind, bytes(raw[_HEAD.size :]))


@dataclass
class PartInfo:
    """One part of content made by a multipart upload."""

    number: int
    offset: int
    size: int
    checksums: dict[str, str] = field(default_factory=dict)


def new_id() -> bytes:
    return secrets.token_bytes(16)


def get_head(r: ReadTxn, mid: bytes) -> ManifestHead | None:
    raw = r.get(HEADS, mid)
    return ManifestHead.decode(raw) if raw is not None else None


def create_inline(w: WriteTxn, data: bytes) -> bytes:
    mid = new_id()
    w.put(HEADS, mid, ManifestHead(1, len(data), KIND_INLINE, data).encode())
    return mid


def create_chunked(w: WriteTxn, entries: list[Entry], stored: Callable[[bytes], bool]) -> bytes:
    """A new manifest with one reference, counting one reference per entry on each chunk (`stored`
    tells whether a chunk without a row has its bytes in the chunk store: see `refcount.add_refs`)."""
    mid = new_id()
    offset = 0
    for i in range(0, len(entries), PAGE_ENTRIES):
        page = entries[i : i + PAGE_ENTRIES]
        w.put(PAGES, mid + offset.to_bytes(8, "big"), _pack(page))
        offset += sum(length for _, length in page)
    w.put(HEADS, mid, ManifestHead(1, offset, KIND_CHUNKS).encode())
    refs, sizes = _counts(entries)
    refcount.add_refs(w, refs, sizes, stored)
    return mid


def add_ref(w: WriteTxn, mid: bytes) -> None:
    head = _require(w, mid)
    head.refs += 1
    w.put(HEADS, mid, head.encode())


def drop_ref(w: WriteTxn, mid: bytes, now: float) -> None:
    """One reference fewer; at zero the manifest goes and its chunks lose their references."""
    head = _require(w, mid)
    head.refs -= 1
    if head.refs > 0:
        w.put(HEADS, mid, head.encode())
        return
    w.delete(HEADS, mid)
    _delete_parts(w, mid)
    if head.kind == KIND_CHUNKS:
        refs, _ = _counts(_delete_pages(w, mid))
        refcount.drop_refs(w, refs, now)


def set_parts(w: WriteTxn, mid: bytes, parts: list[tuple[int, int, dict[str, str]]]) -> None:
    """Record the part layout of a new manifest: (part number, size, checksums) in order."""
    offset = 0
    for number, size, checksums in parts:
        w.put(PARTS, _part_key(mid, number), json.dumps([offset, size, checksums]).encode())
        offset += size


def part_info(r: ReadTxn, mid: bytes, number: int) -> PartInfo | None:
    raw = r.get(PARTS, _part_key(mid, number))
    return _part(number, raw) if raw is not None else None


def parts_after(r: ReadTxn, mid: bytes, after: int, limit: int) -> list[PartInfo]:
    """Up to `limit` parts with numbers above `after`, in order."""
    rows = r.range(PARTS, _part_key(mid, after + 1), _part_key(mid, MAX_PART_KEY), limit=limit)
    return [_part(int.from_bytes(key[16:], "big"), raw) for key, raw in rows]


MAX_PART_KEY = 2**32 - 1


def _part_key(mid: bytes, number: int) -> bytes:
    return mid + number.to_bytes(4, "big")


def _part(number: int, raw: bytes) -> PartInfo:
    offset, size, checksums = json.loads(raw)
    return PartInfo(number, offset, size, checksums)


def _delete_parts(w: WriteTxn, mid: bytes) -> None:
    for key in [key for key, _ in scan(w, PARTS, mid)]:
        w.delete(PARTS, key)


def page_at(r: ReadTxn, mid: bytes, pos: int) -> tuple[int, list[Entry]] | None:
    """(start offset, entries) of the page holding byte `pos` of a chunked manifest."""
    target = mid + pos.to_bytes(8, "big")
    for key, raw in r.range(PAGES, mid, target + b"\x00", reverse=True, limit=1):  # the last page starting at or before
        return int.from_bytes(key[16:], "big"), _unpack(raw)
    return None


def iter_entries(r: ReadTxn, mid: bytes, start: int = 0) -> Iterator[tuple[int, bytes, int]]:
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


def all_entries(r: ReadTxn, mid: bytes) -> list[Entry]:
    return [(d, n) for _, d, n in iter_entries(r, mid)]


def iter_manifests(r: ReadTxn) -> Iterator[tuple[bytes, ManifestHead]]:
    for mid, raw in r.range(HEADS):
        yield mid, ManifestHead.decode(raw)


def holding(r: ReadTxn, digests: set[bytes], after: bytes, limit: int) -> tuple[dict[bytes, set[bytes]], bytes | None]:
    """Among up to `limit` pages past the page key `after` (b"": from the start), the manifests that list
    any of `digests`, with those they list; and the key of the last page read (None past the last). No
    index maps chunks to manifests: finding them takes a walk of every page, in such steps."""
    found: dict[bytes, set[bytes]] = {}
    last = None
    for key, raw in r.range(PAGES, after + b"\x00" if after else b"", limit=limit):
        last = key
        listed = {digest for digest, _ in _unpack(raw)} & digests
        if listed:
            found.setdefault(key[:16], set()).update(listed)
    return found, last


def mark_damaged(w: WriteTxn, mid: bytes, damaged: bool = True) -> bool:
    """Set (or clear) the damaged mark of a manifest; True if it changed."""
    head = get_head(w, mid)
    if head is None or head.damaged == damaged:
        return False
    head.damaged = damaged
    w.put(HEADS, mid, head.encode())
    return True


def damaged_after(r: ReadTxn, after: bytes, limit: int) -> tuple[list[bytes], bytes | None]:
    """The damaged manifests among up to `limit` heads past `after` (b"": from the start), and the last
    id read (None once past the last head)."""
    found, last = [], None
    for mid, raw in r.range(HEADS, after + b"\x00" if after else b"", limit=limit):
        last = mid
        if raw[:1] == bytes([_VERSION_DAMAGED]) and ManifestHead.decode(raw).damaged:
            found.append(mid)
    return found, last


def quarantined_chunk(r: ReadTxn, mid: bytes) -> bytes | None:
    """The first chunk of a manifest that is quarantined now, if any (read of a damaged manifest)."""
    for _, digest, _ in iter_entries(r, mid):
        row = refcount.get(r, digest)
        if row is not None and row.quarantined:
            return digest
    return None


def put_head(w: WriteTxn, mid: bytes, head: ManifestHead) -> None:
    """Store a head as it is (fsck's recount)."""
    w.put(HEADS, mid, head.encode())


def _require(r: ReadTxn, mid: bytes) -> ManifestHead:
    head = get_head(r, mid)
    if head is None:
        raise FormatError(f"manifest {mid.hex()} is missing")
    return head


def _delete_pages(w: WriteTxn, mid: bytes) -> list[Entry]:
    rows = list(scan(w, PAGES, mid))
    for key, _ in rows:
        w.delete(PAGES, key)
    return [entry for _, raw in rows for entry in _unpack(raw)]


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
