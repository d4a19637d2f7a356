"""The chunk store: what the engine asks of the place chunk bytes live, and nothing more.

A chunk is immutable bytes named by their BLAKE3 digest (`hashing.chunk_digest`). The store knows
digests and bytes, nothing of objects, manifests or reference counts: those are metadata
(`refcount.py`), and the rule that binds the two is the engine's, not the store's:

- a chunk is durable before any committed metadata names it: `put` (or a batch's `publish`)
  returns only once the bytes would survive a crash;
- a chunk is deleted only once metadata says nothing names it and has not for a grace period, and
  never one written again since (a writer re-publishing the same bytes keeps them): `delete`
  takes the time after which a write keeps the chunk.

Reads of a chunk that is not there raise `FileNotFoundError`; reads of one shorter than asked raise
`EOFError`. The local directory is the implementation today (`localdir.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

Entry = tuple[bytes, int]  # (chunk digest, length): one step of a manifest
StoredChunk = tuple[bytes, float]  # (chunk digest, when its bytes were last written)


@dataclass(frozen=True, slots=True)
class FileRegion:
    """Bytes of a chunk where they lie in a local file: what a server can send without copying
    them through Python (`sendfile`). `len()` is the number of bytes, as for the bytes it stands for."""

    path: str
    offset: int
    count: int

    def __len__(self) -> int:
        return self.count


class ChunkBatch(Protocol):
    """One writer's new chunks, put in place together: durable and readable once `publish` returns.

    Batching is how the local store makes a whole object durable with one flush instead of one per
    chunk; `close` drops whatever was not published (a failed or abandoned upload). A store without
    private staging (S3) uploads chunks as they come, so they are readable before `publish`.
    """

    def put(self, digest: bytes, data: bytes | memoryview) -> None: ...

    def holds(self, digest: bytes) -> bool:
        """Whether this batch already has the chunk (published or not)."""
        ...

    def publish(self) -> None: ...

    def close(self) -> None: ...

    def exposed(self) -> set[bytes]:
        """After `close`: this batch's chunks that others can read (published; over S3, uploaded),
        which a writer whose commit failed takes back."""
        ...


class ChunkStore(Protocol):
    # Whether a batch's chunks are in the store (readable, without rows) before `publish`: for as long
    # as the writer's request streams. GC waits longer before it calls such chunks orphans.
    uploads_before_publish: bool

    def batch(self) -> ChunkBatch: ...

    def put(self, digest: bytes, data: bytes | memoryview) -> None:
        """Store one chunk, durable when this returns (a batch of one)."""
        ...

    def read(self, digest: bytes, start: int, length: int) -> Iterator[bytes]:
        """`length` bytes of the chunk from `start`, in pieces."""
        ...

    def read_spans(self, spans: Iterable[tuple[bytes, int, int]]) -> Iterator[bytes]:
        """The bytes of consecutive (digest, start, length) spans, in order: an object's read. A remote
        store reads a few spans ahead; the local one reads them one by one."""
        ...

    def read_all(self, digest: bytes) -> bytes: ...

    def region(self, digest: bytes, start: int, length: int) -> FileRegion | None:
        """Where `length` bytes of the chunk from `start` lie in a local file; None for a store whose
        chunks are not local files (its bytes are then read with `read`)."""
        ...

    def exists(self, digest: bytes) -> bool: ...

    def delete(self, digest: bytes, unless_written_after: float) -> bool:
        """Remove the chunk unless its bytes were written after `unless_written_after`; True if gone."""
        ...

    def iterate(self) -> Iterator[tuple[list[StoredChunk], int, int]]:
        """Every stored chunk, in batches: (batch, its position, the number of batches, 0 if unknown)."""
        ...

    def quarantine(self, digest: bytes) -> bool:
        """Move a corrupt chunk out of the way, kept for inspection; False if it is not there."""
        ...

    def cleanup(self, min_age: float) -> int:
        """Drop what writers that died left unpublished (older than `min_age` s); how many batches."""
        ...

    def claim(self, owner: str, replacing: str | None = None) -> str:
        """Mark the store as `owner`'s (a store id) if no one's yet, or if `replacing`'s; the owner it
        has now. A store only one data dir can use (the local directory) is always the caller's."""
        ...
