"""Moving a single-node store (LMDB and the data dir's chunks) onto shared backends (PostgreSQL and an
S3 chunk store), for `pyblob migrate`.

Chunks go first, so the copied metadata never names a chunk the target lacks: each is read, checked
against its name (BLAKE3) and uploaded, unless the target has it already, which makes a second run
resume where a first one stopped. Then every row of every table (the backend's own `meta` table with
its sequences and schema version included) is copied in pages, each page one transaction; writing a
row again writes the same bytes, so this resumes too. A row in the target's `meta` table names the
source (by an id kept in the source's) and whether the copy is done: a target that holds rows and
no such mark is someone else's store, refused rather than mixed with ours, and a finished copy is
never written over. The source must not change meanwhile (stop its server).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from .chunks import ChunkStore
from .errors import InvalidRequest
from .hashing import chunk_digest
from .identity import adopt_id, claim_chunks, store_id
from .meta import MetadataStore, ReadTxn, Row, WriteTxn
from .meta.interface import META

Progress = Callable[[str, int, int], None]
PAGE_ROWS = 500
MIGRATED_FROM = b"migrated-from"  # in the target's: <source store id> + COPYING or DONE
COPYING, DONE = b":copying", b":done"


@dataclass
class MigrationReport:
    chunks_copied: int = 0
    chunks_already_there: int = 0
    bytes_copied: int = 0
    rows_copied: int = 0
    corrupt_chunks: list[str] = field(default_factory=list)
    already_done: bool = False


def _quiet(phase: str, done: int, total: int) -> None:
    pass


def migrate(
    source_meta: MetadataStore,
    source_chunks: ChunkStore,
    target_meta: MetadataStore,
    target_chunks: ChunkStore | None,
    tables: tuple[str, ...],
    jobs: int = 4,
    progress: Progress = _quiet,
) -> MigrationReport:
    """The whole move (`target_chunks` None: the chunks stay where they are). Nothing is copied into a
    target this source was moved into already (`MigrationReport.already_done`): the copy may be in use
    by then, and writing the old rows over it again would undo what was written since."""
    report = MigrationReport()
    origin = store_id(source_meta).encode()
    if _claim(target_meta, tables, origin) == DONE:
        report.already_done = True
        return report
    # The moved store keeps its id, and owns the target chunk store: an empty target opened before
    # (nodes started first) gave both an id of its own, which it hands over.
    unused = adopt_id(target_meta, origin.decode())
    if target_chunks is not None:
        claim_chunks(target_chunks, origin.decode(), replacing=unused)
        copy_chunks(source_chunks, target_chunks, report, jobs, progress)
    if report.corrupt_chunks:
        return report  # no metadata naming a chunk the target lacks
    copy_rows(source_meta, target_meta, tables, report, progress)
    target_meta.transact(lambda w: w.put(META, MIGRATED_FROM, origin + DONE))
    return report


def _claim(target: MetadataStore, tables: tuple[str, ...], origin: bytes) -> bytes:
    """COPYING or DONE for a target this source is being or was moved into; a target that holds any
    row and no such mark is someone else's store: refused rather than mixed with this one."""

    def claim(w: WriteTxn) -> bytes:
        mark = w.get(META, MIGRATED_FROM)
        if mark is not None and mark.startswith(origin):
            return mark[len(origin) :]
        if mark is not None or any(next(iter(w.range(t, limit=1)), None) for t in tables):
            raise InvalidRequest("the target metadata store already holds a store: migrate into an empty one")
        w.put(META, MIGRATED_FROM, origin + COPYING)
        return COPYING

    return target.transact(claim)


def copy_chunks(
    source: ChunkStore, target: ChunkStore, report: MigrationReport, jobs: int = 4, progress: Progress = _quiet
) -> None:
    """Every chunk of `source` into `target`, `jobs` at a time; corrupt ones are reported, not copied."""

    def copy(digest: bytes) -> int | None:
        """Bytes copied; 0 if the target had the chunk, None if the source's copy is corrupt."""
        if target.exists(digest):
            return 0
        data = source.read_all(digest)
        if chunk_digest(data) != digest:
            return None
        target.put(digest, data)
        return len(data)

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for found, n, total in source.iterate():
            digests = [digest for digest, _ in found]
            for digest, copied in zip(digests, pool.map(copy, digests), strict=True):
                if copied is None:
                    report.corrupt_chunks.append(digest.hex())
                elif copied == 0:
                    report.chunks_already_there += 1
                else:
                    report.chunks_copied += 1
                    report.bytes_copied += copied
            progress("copy chunks", n, total)


def copy_rows(
    source: MetadataStore,
    target: MetadataStore,
    tables: tuple[str, ...],
    report: MigrationReport,
    progress: Progress = _quiet,
) -> None:
    """Every row of `tables` and of the backend's `meta` table, in pages of `PAGE_ROWS`."""
    every = (*tables, META)
    for n, table in enumerate(every, 1):
        start = b""
        while True:
            rows = source.read(partial(_page, table, start))
            if not rows:
                break
            target.transact(partial(_put_rows, table, rows))
            report.rows_copied += len(rows)
            start = rows[-1][0] + b"\x00"  # the next key after the last one copied
        progress("copy tables", n, len(every))


def _page(table: str, start: bytes, r: ReadTxn) -> list[Row]:
    return list(r.range(table, start, limit=PAGE_ROWS))


def _put_rows(table: str, rows: list[Row], w: WriteTxn) -> None:
    for key, value in rows:
        w.put(table, key, value)
