"""Reference counts of chunks, changed only inside the write transaction that changes the references.

A chunk row is `version | count | zero_since | size`. When the count drops to zero the row keeps the
time it happened; GC removes the chunk only once `zero_since` is older than the grace period, and
does so under the write lock, so a writer that references the chunk again before then keeps it.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass

from .db import Txn
from .errors import FormatError

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
    def decode(cls, raw: bytes) -> "ChunkRow":
        version, count, zero_since, size = _ROW.unpack(raw)
        if version != _VERSION:
            raise FormatError(f"chunk row has format version {version}")
        return cls(count, zero_since, size)


def get(w: Txn, digest: bytes) -> ChunkRow | None:
    raw = w.get("chunks", digest)
    return ChunkRow.decode(raw) if raw is not None else None


def add_refs(w: Txn, refs: Counter[bytes], sizes: dict[bytes, int]) -> None:
    """Count `refs[digest]` more references to each chunk; new chunks get a row."""
    for digest, n in refs.items():
        row = get(w, digest) or ChunkRow(0, 0.0, sizes[digest])
        row.count += n
        row.zero_since = 0.0
        w.put("chunks", digest, row.encode())


def drop_refs(w: Txn, refs: Counter[bytes], now: float) -> None:
    """Count `refs[digest]` fewer references; a chunk that reaches zero starts its grace period."""
    for digest, n in refs.items():
        row = get(w, digest)
        if row is None:
            continue  # drift; fsck --repair recounts
        row.count = max(0, row.count - n)
        if row.count == 0:
            row.zero_since = now
        w.put("chunks", digest, row.encode())
