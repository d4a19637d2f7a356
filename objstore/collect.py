"""Deleting chunks that nothing references, without a lock shared with writers (the protocol is in
`refcount.py`): GC's expired chunks and orphans, and what a writer that failed had already put
where others can read it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from . import refcount
from .chunks import ChunkStore
from .meta import MetadataStore


def delete_unreferenced(
    meta: MetadataStore,
    chunks: ChunkStore,
    digests: list[bytes],
    still_unused: Callable[[refcount.ChunkRow], bool],
    now: float,
    cutoff: float = math.inf,
) -> tuple[int, int, int]:
    """Mark, delete the bytes, forget: (rows dropped, their bytes, chunks whose bytes were deleted).

    Bytes written after `cutoff` stay (a writer that published them again commits them: no row,
    stored); with no cutoff they go whatever their age, and such a writer's commit fails cleanly."""
    marked = meta.transact(lambda w: refcount.mark_deleting(w, digests, still_unused, now))
    deleted = sum(chunks.delete(digest, unless_written_after=cutoff) for digest in marked)
    removed, freed = meta.transact(lambda w: refcount.forget_deleted(w, marked))
    return removed, freed, deleted


def never(row: refcount.ChunkRow) -> bool:
    """For orphans: a digest that has a row by now was committed by some writer, so it stays."""
    return False
