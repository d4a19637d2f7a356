"""Reference counts of chunks, changed only inside the write transaction that changes the references.

A chunk row is `version | count | zero_since | size`. When the count drops to zero the row keeps the
time it happened; GC removes the chunk only once `zero_since` is older than the grace period, and
does so under the write lock, so a writer that references the chunk again before then keeps it.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import FormatError
from .meta import ReadTxn, WriteTxn

TABLE = "chunks"  # BLAKE3 digest -> ChunkRow
TABLES = (TABLE,)
_ROW = struct.Struct(">BQdI")
_VERSION = 1


@dataclass
class ChunkRow:
    count: int
    zero_since: float  # 0.0 while referenced
    size: int

    def encode(self) -> bytes:
        return _ROW.pack(_VERSION, self.count, self.zero_since, self.size)

    @classmethod
    def decode(cls, raw: bytes) -> ChunkRow:
        version, count, zero_since, size = _ROW.unpack(raw)
        if version != _VERSION:
            raise FormatError(f"chunk row has format version {version}")
        return cls(count, zero_since, size)


def get(r: ReadTxn, digest: bytes) -> ChunkRow | None:
    raw = r.get(TABLE, digest)
    return ChunkRow.decode(raw) if raw is not None else None


def put(w: WriteTxn, digest: bytes, row: ChunkRow) -> None:
    w.put(TABLE, digest, row.encode())


def remove(w: WriteTxn, digest: bytes) -> None:
    w.delete(TABLE, digest)


def all_rows(r: ReadTxn) -> Iterator[tuple[bytes, ChunkRow]]:
    for digest, raw in r.range(TABLE):
        yield digest, ChunkRow.decode(raw)


def add_refs(w: WriteTxn, refs: Counter[bytes], sizes: dict[bytes, int]) -> None:
    """Count `refs[digest]` more references to each chunk; new chunks get a row."""
    for digest, n in refs.items():
        row = get(w, digest) or ChunkRow(0, 0.0, sizes[digest])
        row.count += n
        row.zero_since = 0.0
        put(w, digest, row)


def drop_refs(w: WriteTxn, refs: Counter[bytes], now: float) -> None:
    """Count `refs[digest]` fewer references; a chunk that reaches zero starts its grace period."""
    for digest, n in refs.items():
        row = get(w, digest)
        if row is None:
            continue  # drift; fsck --repair recounts
        row.count = max(0, row.count - n)
        if row.count == 0:
            row.zero_since = now
        put(w, digest, row)
