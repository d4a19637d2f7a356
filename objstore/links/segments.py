"""The bytes a resumable (tus) upload has received so far: segments of stored content, in order.

Each checkpoint of an upload (see `resumable.py`) turns the bytes that came since the previous one
into content as any object's is (content-defined chunks named by BLAKE3, or inline bytes when
small) under a manifest of its own, and records it here as one segment, in the transaction that
moves the upload's offset on. The segment holds the manifest's one reference, as a multipart part
does, so the chunks it names stay referenced (GC never takes them, fsck counts them) until the
upload is finished, terminated or expired, whichever node its requests reach.

Table `resumable_segments`, owned here: upload key (owner + NUL + upload id, as `resumables`) +
NUL + the segment's first byte in the upload (8 bytes, big-endian) -> version, manifest id, size.
Key order is byte order, so an upload's segments read back in order. The upload's row counts them
(`ResumableRecord.segments`, bounded by `StoreConfig.resumable_max_segments`), so no request walks them
to learn how many there are.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from .. import manifests
from ..chunks import Entry
from ..errors import FormatError
from ..meta import ReadTxn, WriteTxn, scan

TABLE = "resumable_segments"
TABLES = (TABLE,)
_ROW = struct.Struct(">B16sQ")
_VERSION = 1


@dataclass(frozen=True)
class Segment:
    start: int  # where it begins in the upload
    manifest: bytes  # the manifest whose one reference the segment holds
    size: int


def _prefix(upload_key: bytes) -> bytes:
    return upload_key + b"\0"


def _decode(key: bytes, raw: bytes) -> Segment:
    version, mid, size = _ROW.unpack(raw)
    if version != _VERSION:
        raise FormatError(f"resumable segment has format version {version}")
    return Segment(int.from_bytes(key[-8:], "big"), bytes(mid), size)


def add(w: WriteTxn, upload_key: bytes, start: int, manifest: bytes, size: int) -> None:
    """Record a segment whose manifest was just created (its reference is the segment's now)."""
    w.put(TABLE, _prefix(upload_key) + start.to_bytes(8, "big"), _ROW.pack(_VERSION, manifest, size))


def of_upload(r: ReadTxn, upload_key: bytes) -> list[Segment]:
    """An upload's segments, first byte first."""
    return [_decode(key, raw) for key, raw in scan(r, TABLE, _prefix(upload_key))]


def content(r: ReadTxn, segment: Segment) -> bytes | list[Entry]:
    """A segment's bytes when inline in its manifest, else its chunk list."""
    head = manifests.get_head(r, segment.manifest)
    if head is None:
        raise FormatError(f"manifest {segment.manifest.hex()} of a resumable segment is missing")
    return head.inline if head.kind == manifests.KIND_INLINE else manifests.all_entries(r, segment.manifest)


def drop(w: WriteTxn, key_prefix: bytes, now: float) -> int:
    """Delete the segments under `key_prefix` (an upload's key, or an owner's name + NUL for all of
    theirs) and their manifests' references; how many there were."""
    rows = list(scan(w, TABLE, key_prefix))
    for key, raw in rows:
        manifests.drop_ref(w, _decode(key, raw).manifest, now)
        w.delete(TABLE, key)
    return len(rows)


def drop_upload(w: WriteTxn, upload_key: bytes, now: float) -> int:
    return drop(w, _prefix(upload_key), now)


def held_manifests(r: ReadTxn) -> Iterator[bytes]:
    """The manifest every segment holds a reference to (what fsck counts)."""
    for key, raw in r.range(TABLE):
        yield _decode(key, raw).manifest


def count(r: ReadTxn, upload_key: bytes, counted: int, kept: int) -> int:
    """How many segments the upload has: `counted`, as its row keeps it, or walked for a row written
    before rows kept it (`kept` bytes but a count of 0)."""
    if counted or not kept:
        return counted
    return sum(1 for _ in scan(r, TABLE, _prefix(upload_key)))


def exists(r: ReadTxn, upload_key: bytes) -> bool:
    """Whether the upload has any segment."""
    return any(True for _ in scan(r, TABLE, _prefix(upload_key), limit=1))
