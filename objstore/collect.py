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
    done: list[bytes] = []
    deleted = 0
    try:
        for digest in marked:
            deleted += chunks.delete(digest, unless_written_after=cutoff)
            done.append(digest)
    finally:
        # What was deleted (or spared) goes on to `gone` even if a later delete failed; a chunk whose
        # delete failed stays marked (its bytes may be gone) until a GC finishes it.
        removed, freed = meta.transact(lambda w: refcount.forget_deleted(w, done))
    return removed, freed, deleted


def never(row: refcount.ChunkRow) -> bool:
    """For orphans: a digest that has a row by now was committed by some writer, so it stays."""
    return False
