"""Reference counts of chunks, changed only inside the write transaction that changes the references.

A chunk row is `version | count | zero_since | size` (and `| deleting` in version 2, `| flags` in
version 3: deleting, quarantined). When the count drops to zero the row keeps the time it happened;
once `zero_since` is older than the grace period GC may remove the chunk, in three steps that need
no lock shared with writers, so they hold with many nodes over one metadata store and one chunk store:

1. live -> deleting: in a transaction, the row of a chunk still unreferenced is marked `deleting`
   (a chunk stored without any row, a dead writer's orphan, gets a `deleting` row first);
2. the chunk's bytes are deleted, after that commit;
3. deleting -> gone: in another transaction, the row goes.

A writer commits a reference only in a transaction that finds the row not `deleting` or, with no
row, finds the bytes stored (`add_refs`): a writer racing GC either conflicts with step 1 (and its
transaction, or GC's, is re-run and sees the other) or finds the mark or the missing bytes and fails
with `ChunkMissing` (a retryable error, nothing committed). A writer that uploaded the same bytes
again meanwhile keeps them: step 2 spares bytes written after the cutoff.

A quarantined chunk (`quarantine.py`: scrub or fsck found its bytes changed or gone, and moved them
aside) keeps its row and counts, marked: it is not `live`, so a writer of the same bytes stores them
again, and `add_refs` then takes the mark off (the bytes are back, written by someone who hashed
them); a writer that found no bytes gets `ChunkMissing`, as for a chunk GC took.

`chunk_totals` keeps how many chunk rows there are and their bytes (the physical size of the store,
for `pyblob stats` and `/metrics`): a base row, and a change row of its own for each transaction that
adds or removes chunk rows, folded into the base now and then (one commit in `FOLD_EVERY`, and GC).
One row rewritten by every commit that stores a new chunk would make concurrent commits on
PostgreSQL conflict and re-run, as the usage row did (`accounts.USAGE_CHANGES`). A store written
before the totals existed gets its base counted on first use.
"""

from __future__ import annotations

import random
import secrets
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .errors import ChunkMissing, FormatError
from .meta import ReadTxn, WriteTxn

TABLE = "chunks"  # BLAKE3 digest -> ChunkRow
TOTALS = "chunk_totals"  # b"all" -> Totals; b"change\0" + random -> a change to add to it
TABLES = (TABLE, TOTALS)
_ROW = struct.Struct(">BQdI")
_ROW_DELETING = struct.Struct(">BQdIB")  # version 2: only rows GC is deleting, so version 1 readers
# meet one only while GC runs (and refuse it rather than misread it); version 3, the same layout with
# flags, only for quarantined rows (which version 2 readers refuse in turn)
_TOTALS = struct.Struct(">BQQ")
_TOTALS_KEY = b"all"
_CHANGE = struct.Struct(">qq")
_CHANGE_PREFIX = b"change\0"
FOLD_EVERY = 64  # one change in this many folds the changes into the base row
_VERSION = 1
_VERSION_DELETING = 2
_VERSION_FLAGS = 3
_DELETING, _QUARANTINED = 1, 2  # version 3's flags


@dataclass
class ChunkRow:
    count: int
    zero_since: float  # 0.0 while referenced
    size: int
    deleting: bool = False  # GC has begun deleting the bytes: no new reference may be taken
    quarantined: bool = False  # its bytes were found changed or gone and moved aside (`quarantine.py`)

    def encode(self) -> bytes:
        if self.quarantined:
            flags = _QUARANTINED | (_DELETING if self.deleting else 0)
            return _ROW_DELETING.pack(_VERSION_FLAGS, self.count, self.zero_since, self.size, flags)
        if self.deleting:
            return _ROW_DELETING.pack(_VERSION_DELETING, self.count, self.zero_since, self.size, 1)
        return _ROW.pack(_VERSION, self.count, self.zero_since, self.size)

    @classmethod
    def decode(cls, raw: bytes) -> ChunkRow:
        if raw[:1] in (bytes([_VERSION_DELETING]), bytes([_VERSION_FLAGS])) and len(raw) == _ROW_DELETING.size:
            version, count, zero_since, size, flags = _ROW_DELETING.unpack(raw)
            if version == _VERSION_DELETING:
                return cls(count, zero_since, size, deleting=True)
            return cls(count, zero_since, size, bool(flags & _DELETING), bool(flags & _QUARANTINED))
        version, count, zero_since, size = _ROW.unpack(raw)
        if version != _VERSION:
            raise FormatError(f"chunk row has format version {version}")
        return cls(count, zero_since, size)

    @property
    def live(self) -> bool:
        """Referenced now, with its bytes in place: a writer of the same bytes need not store them again."""
        return self.count > 0 and not self.deleting and not self.quarantined


@dataclass
class Totals:
    chunks: int
    nbytes: int


def totals(r: ReadTxn) -> Totals:
    """How many chunk rows there are and the bytes of their chunks: the base row and the changes
    since; counted from the rows while there is no base row yet (a store older than the totals),
    whose first fold writes one."""
    raw = r.get(TOTALS, _TOTALS_KEY)
    if raw is None:
        return _count(r)
    version, chunks, nbytes = _TOTALS.unpack(raw)
    if version != _VERSION:
        raise FormatError(f"chunk totals have format version {version}")
    found = Totals(chunks, nbytes)
    for _, (chunks, nbytes) in _changes(r):
        found.chunks += chunks
        found.nbytes += nbytes
    return found


def _changes(r: ReadTxn) -> Iterator[tuple[bytes, tuple[int, int]]]:
    for key, raw in r.range(TOTALS, _CHANGE_PREFIX, _CHANGE_PREFIX[:-1] + b"\x01"):
        yield key, _CHANGE.unpack(raw)


def recount_totals(w: WriteTxn) -> bool:
    """Store the totals counted from the rows (fsck's repair); True if they were wrong or missing."""
    counted = _count(w)
    wrong = totals(w) != counted  # a store without a base row yet is not wrong: it is counted
    _put_totals(w, counted)
    return wrong


def fold_totals(w: WriteTxn) -> None:
    """The change rows into the base row (GC's; one commit in `FOLD_EVERY` does it too)."""
    _put_totals(w, totals(w))


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
    """The base row, with every change row folded into it."""
    for key, _ in list(_changes(w)):
        w.delete(TOTALS, key)
    w.put(TOTALS, _TOTALS_KEY, _TOTALS.pack(_VERSION, t.chunks, t.nbytes))


def _change_totals(w: WriteTxn, chunks: int, nbytes: int) -> None:
    """Called as the rows change: a change row of its own, and no read (a read of a row that others
    write would make concurrent commits conflict as surely as writing it)."""
    w.put(TOTALS, _CHANGE_PREFIX + secrets.token_bytes(12), _CHANGE.pack(chunks, nbytes))
    # Keeps the change rows few, whoever reads them; not in a store without a base row yet, whose
    # count from the rows would miss the row this change is about (GC's fold, in a transaction of
    # its own, writes that base).
    if random.random() < 1 / FOLD_EVERY and w.get(TOTALS, _TOTALS_KEY) is not None:
        fold_totals(w)


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


def add_refs(w: WriteTxn, refs: Counter[bytes], sizes: dict[bytes, int], stored: Callable[[bytes], bool]) -> None:
    """Count `refs[digest]` more references to each chunk; new chunks get a row. A chunk GC is
    deleting, or one without a row whose bytes are not `stored`, cannot be referenced: `ChunkMissing`.
    A quarantined chunk whose bytes are `stored` again (by this writer, which saw it was not live, or
    restored by an admin) is healed: its mark goes; without its bytes it is `ChunkMissing` too."""
    rows = {digest: get(w, digest) for digest in refs}
    for digest, row in rows.items():
        if row.deleting if row is not None else not stored(digest):
            raise ChunkMissing("a chunk was collected while this upload ran; please retry")
        if row is not None and row.quarantined:
            if not stored(digest):
                raise ChunkMissing("a chunk of this content was quarantined while this upload ran; please retry")
            row.quarantined = False
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


def mark_deleting(
    w: WriteTxn, digests: list[bytes], still_unused: Callable[[ChunkRow], bool], now: float
) -> list[bytes]:
    """GC's step 1: mark the rows of the chunks that are `still_unused` (and those already marked by a
    GC that did not finish); a digest without a row (an orphan) gets a marked row. Returns the marked."""
    marked = []
    for digest in digests:
        row = get(w, digest)
        if row is None:
            put(w, digest, ChunkRow(0, now, 0, deleting=True))
        elif not row.deleting:
            if not still_unused(row):
                continue  # referenced again since it was judged unused
            row.deleting = True
            w.put(TABLE, digest, row.encode())
        marked.append(digest)
    return marked


def quarantine(w: WriteTxn, digest: bytes) -> bool:
    """Mark a chunk quarantined (its bytes were moved aside): True if it has a row that GC is not
    deleting (a chunk GC is taking needs no mark)."""
    row = get(w, digest)
    if row is None or row.deleting:
        return False
    if not row.quarantined:
        row.quarantined = True
        w.put(TABLE, digest, row.encode())
    return True


def release(w: WriteTxn, digest: bytes) -> bool:
    """Take the quarantine mark off a chunk whose right bytes are back; True if it had one."""
    row = get(w, digest)
    if row is None or not row.quarantined:
        return False
    row.quarantined = False
    w.put(TABLE, digest, row.encode())
    return True


def rows_after(r: ReadTxn, after: bytes | None, limit: int) -> list[tuple[bytes, ChunkRow]]:
    """Up to `limit` chunk rows in digest order, from the first past `after` (from the start: None)."""
    start = b"" if after is None else after + b"\x00"
    return [(digest, ChunkRow.decode(raw)) for digest, raw in r.range(TABLE, start, limit=limit)]


def forget_deleted(w: WriteTxn, digests: list[bytes]) -> tuple[int, int]:
    """GC's step 3, once the bytes are deleted: drop the marked rows; (rows dropped, their bytes)."""
    removed = freed = 0
    for digest in digests:
        row = get(w, digest)
        if row is not None and row.deleting:
            remove(w, digest)
            removed, freed = removed + 1, freed + row.size
    return removed, freed
