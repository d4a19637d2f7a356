"""Streaming content into the store: cut, hash, stage and fsync chunks, then install in one transaction.

`ContentWriter` turns a byte stream into a manifest. It knows nothing of objects or parts: callers
(`objects.ObjectWriter`, `multipart.PartWriter`) wrap it and add their own rows in the same transaction.
Memory stays bounded by the chunker's window whatever the stream's size.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import manifests, refcount
from .chunks import ChunkBatch, ChunkStore, Entry
from .chunks.cdc import Chunker
from .collect import delete_unreferenced, never
from .config import StoreConfig
from .hashing import StreamHasher, chunk_digest
from .inflight import Intents
from .limits import SizeLimits
from .meta import MetadataStore, WriteTxn


@dataclass
class Content:
    """What a finished stream produced."""

    size: int
    md5: str
    blake3: str
    checksums: dict[str, str]
    entries: list[Entry] = field(default_factory=list)
    inline: bytes | None = None


class ChunkSink:
    """Stages the chunks of new content that the store does not already hold, then installs them.

    A chunk that is referenced right now is not written again; one that is unreferenced (waiting
    out its grace period), being deleted or unknown is staged, so GC racing with this writer can
    never leave it without the bytes. `publish` puts staged chunks in place durably before the
    transaction; `install` runs inside it and refuses chunks GC took meanwhile (see `refcount`).
    """

    def __init__(self, meta: MetadataStore, chunks: ChunkStore, intents: Intents | None = None):
        self.meta = meta
        self.chunks = chunks
        # Over a store that others read before `publish` (S3), what this writer is about to upload is
        # recorded first, so GC finds it if the writer dies before committing (`inflight.py`).
        self.intents = intents if chunks.uploads_before_publish else None
        self.intended: list[bytes] = []
        # Opened at the first chunk to stage: content small enough to live inline in the metadata
        # (most small PUTs) never touches the chunk store's staging.
        self.batch: ChunkBatch | None = None
        self.committed = False  # set by the caller once the transaction that installed this committed

    def add(self, chunk: bytes) -> Entry:
        digest = chunk_digest(chunk)
        if (self.batch is None or not self.batch.holds(digest)) and not self._is_live(digest):
            if self.batch is None:
                self.batch = self.chunks.batch()
            if self.intents is not None:
                self.intents.record(self, [digest])
                self.intended.append(digest)
            self.batch.put(digest, chunk)
        return digest, len(chunk)

    def publish(self) -> None:
        """Staged chunks durable and in place; call before opening the write transaction."""
        if self.batch is not None:
            self.batch.publish()

    def install(self, w: WriteTxn, entries: list[Entry]) -> bytes:
        """Create a manifest of `entries` (inside `w`), refusing chunks GC took meanwhile: a chunk
        whose row GC marked, or one without a row whose bytes are gone (`refcount.add_refs`)."""
        return manifests.create_chunked(w, entries, stored=self.chunks.exists)

    def close(self) -> None:
        """Drop what was staged; without a commit, also take back what others could already read
        (published chunks; over S3, every chunk uploaded) unless some writer committed it meanwhile."""
        if self.batch is None:
            return
        batch, self.batch = self.batch, None
        intended, self.intended = self.intended, []
        taken_back = True
        try:
            batch.close()
            exposed = sorted(batch.exposed()) if not self.committed else []
            if exposed:
                delete_unreferenced(self.meta, self.chunks, exposed, never, time.time())
        except Exception:  # cleanup after a failure: that failure is what the caller sees
            taken_back = False  # left as orphans (or marked), for GC
        if self.intents is not None and intended:
            try:
                (self.intents.forget if taken_back else self.intents.abandon)(self, intended)
            except Exception:
                pass  # intents left for GC, which finds them once this process is gone

    def _is_live(self, digest: bytes) -> bool:
        row = self.meta.read(lambda r: refcount.get(r, digest))
        return row is not None and row.live


class ContentWriter:
    """One stream in: limits checked as bytes arrive, digests computed, chunks cut and staged.

    `on_close` runs once when the writer is closed, committed or not (it gives back the quota
    reserved for the stream).
    """

    def __init__(
        self,
        meta: MetadataStore,
        chunks: ChunkStore,
        config: StoreConfig,
        checksums: Iterable[str] = (),
        limits: SizeLimits | None = None,
        on_close: Callable[[], None] | None = None,
        intents: Intents | None = None,
    ):
        self.config = config
        self.on_close = on_close
        self.hasher = StreamHasher(checksums)
        self.limits = limits or SizeLimits()
        self._chunker = Chunker(config)
        self._sink = ChunkSink(meta, chunks, intents)
        self._entries: list[Entry] = []
        self._content: Content | None = None

    def write(self, data: bytes | memoryview) -> None:
        """Append to the stream. `data` is hashed on another thread: pass bytes, or don't reuse it."""
        self.limits.check(self.hasher.size + len(data))
        self.hasher.update(data)
        for chunk in self._chunker.push(data):
            self._add_chunk(chunk)

    def finish(self) -> Content:
        """End of stream: flush the last chunks and return the digests (before any commit)."""
        if self._content is None:
            tail = list(self._chunker.finish())
            size = self.hasher.size
            inline = None
            if not self._entries and size <= self.config.inline_max:
                inline = b"".join(tail)
            else:
                for chunk in tail:
                    self._add_chunk(chunk)
            self._content = Content(
                size=size,
                md5=self.hasher.md5_hex(),
                blake3=self.hasher.blake3.hexdigest(),
                checksums=self.hasher.checksum_values(),
                entries=self._entries,
                inline=inline,
            )
        return self._content

    def stages_chunks(self) -> bool:
        """Whether `publish` has chunk files to put in place (not for inline or deduplicated content)."""
        self.finish()
        return self._sink.batch is not None

    def publish(self) -> None:
        """Before the write transaction: make this content's new chunks durable and in place."""
        self.finish()
        self._sink.publish()

    def committed(self) -> None:
        """After the transaction that called `install` committed: the chunks are the object's now."""
        self._sink.committed = True

    def install(self, w: WriteTxn) -> bytes:
        """Inside the write transaction: create the manifest of the published content."""
        content = self.finish()
        if content.inline is not None:
            return manifests.create_inline(w, content.inline)
        return self._sink.install(w, content.entries)

    def close(self) -> None:
        """Drop whatever was staged and not installed; safe to call more than once."""
        try:
            self.hasher.md5_hex()  # stop the MD5 thread
            self._sink.close()
        finally:
            if self.on_close is not None:
                on_close, self.on_close = self.on_close, None
                on_close()

    def _add_chunk(self, chunk: bytes) -> None:
        self._entries.append(self._sink.add(chunk))

    def __enter__(self) -> ContentWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
