"""Reference counts of chunks, changed only inside the write transaction that changes the references.

A chunk row is `version | count | zero_since | size`. When the count drops to zero the row keeps the
time it happened; GC removes the chunk only once `zero_since` is older than the grace period, and
does so under the write lock, so a writer that references the chunk again before then keeps it.

`chunk_totals` keeps how many chunk rows there are and their bytes (the physical size of the store,
for `pyblob stats` and `/metrics`), changed in the transaction that adds or removes a row; a store
written before it existed gets it counted on first use.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import FormatError
from .meta import ReadTxn, WriteTxn

TABLE = "chunks"  # BLAKE3 digest -> ChunkRow
TOTALS = "chunk_totals"  # b"all" -> Totals
TABLES = (TABLE, TOTALS)
_ROW = struct.Struct(">BQdI")
_TOTALS = struct.Struct(">BQQ")
_TOTALS_KEY = b"all"
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


@dataclass
class Totals:
    chunks: int
    nbytes: int


def totals(r: ReadTxn) -> Totals:
    """How many chunk rows there are and the bytes of their chunks (counted when never stored)."""
    raw = r.get(TOTALS, _TOTALS_KEY)
    if raw is None:
        return _count(r)
    version, chunks, nbytes = _TOTALS.unpack(raw)
    if version != _VERSION:
        raise FormatError(f"chunk totals have format version {version}")
    return Totals(chunks, nbytes)


def recount_totals(w: WriteTxn) -> bool:
    """Store the totals counted from the rows (fsck's repair); True if they were wrong or missing."""
    counted = _count(w)
    before = w.get(TOTALS, _TOTALS_KEY)
    _put_totals(w, counted)
    return before != _TOTALS.pack(_VERSION, counted.chunks, counted.nbytes)


def totals_agree(r: ReadTxn) -> bool:
    """Whether the stored totals are what the rows add up to (a store without them agrees)."""
    return r.get(TOTALS, _TOTALS_KEY) is None or totals(r) == _count(r)


def _count(r: ReadTxn) -> Totals:
    found = Totals(0, 0)
    for _, row in all_rows(r):
        found.chunks += 1
        found.nbytes += row.size
    return found


def _put_totals(w: WriteTxn, t: Totals) -> None:
    w.put(TOTALS, _TOTALS_KEY, _TOTALS.pack(_VERSION, t.chunks, t.nbytes))


def _change_totals(w: WriteTxn, chunks: int, nbytes: int) -> None:
    """Called before the rows change: the totals are counted from the rows when never stored."""
    before = totals(w)
    _put_totals(w, Totals(before.chunks + chunks, before.nbytes + nbytes))


def get(r: ReadTxn, digest: bytes) -> ChunkRow | None:
    raw = r.get(TABLE, digest)
    return ChunkRow.decode(raw) if raw is not None else None


def put(w: WriteTxn, digest: bytes, row: ChunkRow) -> None:
    """Write a row; a new one counts in the totals (the callers that change rows use this too)."""
    if get(w, digest) is None:
        _change_totals(w, 1, row.size)
    w.put(TABLE, digest, row.encode())


def remove(w: WriteTxn, digest: bytes) -> None:
    row = get(w, digest)
    if row is not None:
        _change_totals(w, -1, -row.size)
        w.delete(TABLE, digest)


def all_rows(r: ReadTxn) -> Iterator[tuple[bytes, ChunkRow]]:
    for digest, raw in r.range(TABLE):
        yield digest, ChunkRow.decode(raw)


def add_refs(w: WriteTxn, refs: Counter[bytes], sizes: dict[bytes, int]) -> None:
    """Count `refs[digest]` more references to each chunk; new chunks get a row."""
    rows = {digest: get(w, digest) for digest in refs}
    new = [digest for digest, row in rows.items() if row is None]
    if new:  # the totals change only with new rows: no extra read for a write of known chunks
        _change_totals(w, len(new), sum(sizes[digest] for digest in new))
    for digest, n in refs.items():
        row = rows[digest] or ChunkRow(0, 0.0, sizes[digest])
        row.count += n
        row.zero_since = 0.0
        w.put(TABLE, digest, row.encode())


def drop_refs(w: WriteTxn, refs: Counter[bytes], now: float) -> None:
    """Count `refs[digest]` fewer references; a chunk that reaches zero starts its grace period."""
    for digest, n in refs.items():
        row = get(w, digest)
        if row is None:
            continue  # drift; fsck --repair recounts
        row.count = max(0, row.count - n)
        if row.count == 0:
            row.zero_since = now
        w.put(TABLE, digest, row.encode())
