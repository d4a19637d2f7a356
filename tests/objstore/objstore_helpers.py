"""Helpers shared by the objstore tests; also the targets of spawned worker processes.

Named `objstore_helpers` (not `helpers`) because test directories here are not packages: the module
name must be unique across the whole test tree.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from pathlib import Path

from objstore import ObjectRecord, Store, StoreConfig, manifests, refcount
from objstore.chunks import Entry
from objstore.chunks.localdir import LocalChunkStore, Staging
from objstore.chunks.s3 import S3Batch
from objstore.config import KiB
from objstore.content import ContentWriter
from objstore.links import Resumables
from objstore.links.resumable import EXPIRES_AFTER, LEASE_SECONDS, LOCK_WAIT, MAX_PENDING_PER_USER
from objstore.objects import ObjectWriter

SMALL = StoreConfig(chunk_min=16 * KiB, chunk_avg=64 * KiB, chunk_max=256 * KiB, durable=False, map_size=1 << 30)


def rand(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def read(store: Store, bucket: str, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(store.read_object(store.head_object(bucket, key), start, end))


def entries_of(store: Store, record: ObjectRecord) -> list[Entry]:
    return store.meta.read(lambda r: manifests.all_entries(r, bytes.fromhex(record.manifest)))


def chunk_row(store: Store, digest: bytes) -> refcount.ChunkRow | None:
    return store.meta.read(lambda r: refcount.get(r, digest))


def chunk_files(store: Store) -> set[str]:
    """Names (hex digests) of every stored chunk: every file under chunks/ (names that are no digest
    included), or every chunk object of an S3 chunk store."""
    if isinstance(store.chunks, LocalChunkStore):
        return {p.name for p in store.chunks.chunks.rglob("*") if p.is_file()}
    return {digest.hex() for batch, _, _ in store.chunks.iterate() for digest, _ in batch}


def local_chunks(store: Store) -> LocalChunkStore:
    """The store's chunks in its data dir, for tests of that layout (marked `local_chunks`)."""
    assert isinstance(store.chunks, LocalChunkStore)
    return store.chunks


def staged_files(store: Store) -> set[str]:
    """Names of the chunk files sitting in any staging dir under tmp/ (lock files excluded)."""
    return {p.name for p in local_chunks(store).tmp.rglob("*") if p.is_file() and p.name != ".lock"}


def staged_by(writer: ContentWriter | ObjectWriter) -> set[str]:
    """Chunks a writer has put in its batch so far: staged in its dir under tmp/, or uploaded (or on
    their way) to an S3 chunk store."""
    content = writer.content if isinstance(writer, ObjectWriter) else writer
    batch = content._sink.batch
    if batch is None:
        return set()
    if isinstance(batch, Staging):
        return {d.hex() for d in batch.staged}
    assert isinstance(batch, S3Batch)
    return {d.hex() for d in (*batch.pending, *batch.published)}


def tmp_entries(store: Store) -> list[Path]:
    """What is in the local store's staging dir; an S3 chunk store stages nothing."""
    if not isinstance(store.chunks, LocalChunkStore):
        return []
    return list(store.chunks.tmp.iterdir())


def resumables_with(
    store: Store,
    expires_after: float = EXPIRES_AFTER,
    max_pending: int = MAX_PENDING_PER_USER,
    lock_wait: float = LOCK_WAIT,
    lease_seconds: float = LEASE_SECONDS,
    max_segments: int | None = None,
) -> Resumables:
    """The store's resumable uploads (same tables and parts) with other options than `store.resumables`
    (`max_segments`: the store's config with another `resumable_max_segments`)."""
    config = store.config if max_segments is None else replace(store.config, resumable_max_segments=max_segments)
    return Resumables(
        store.meta,
        store.chunks,
        config,
        store.now,
        store.admission,
        store.uploads,
        store.intents,
        store.root / "resumable",
        expires_after,
        max_pending,
        lock_wait,
        lease_seconds,
    )


def listed_usage(store: Store, bucket: str) -> tuple[int, int]:
    """(bytes, objects) summed over a full listing of `bucket`."""
    page = store.list_objects(bucket, max_keys=1_000_000)
    return sum(o.size for o in page.objects), len(page.objects)


# Content shared by concurrent workers: the same bytes under several keys keeps chunks shared,
# dropping to zero and coming back while others write.
POOL_SIZES = (0, 100, 4 * KiB, 4 * KiB + 1, 40 * KiB, 150 * KiB, 600 * KiB)


def pool_payload(i: int) -> bytes:
    return rand(POOL_SIZES[i % len(POOL_SIZES)], seed=1000 + i)


def churn(store: Store, bucket: str, seed: int, ops: int, keys: int = 10) -> None:
    """Random puts (overwrites included) and deletes on a small shared key set."""
    rng = random.Random(seed)
    for _ in range(ops):
        key = f"churn/{rng.randrange(keys)}"
        if rng.random() < 0.7:
            store.put_object(bucket, key, pool_payload(rng.randrange(2 * len(POOL_SIZES))))
        else:
            store.delete_object(bucket, key)


def churn_process(data_dir: str, config: StoreConfig, bucket: str, seed: int, ops: int) -> None:
    """Target of a spawned process: its own Store on the shared data dir."""
    store = Store(data_dir, config)
    try:
        churn(store, bucket, seed, ops)
    finally:
        store.close()


def raw_metadata(store: Store) -> bytes:
    """Every byte the metadata backend holds: LMDB's file, or PostgreSQL's rows (closes the store
    first, so everything is in the file; it reopens on next use)."""
    url = store.config.metadata_url
    store.close()
    if not url.startswith("postgresql"):
        return (store.root / "meta" / "data.mdb").read_bytes()
    import psycopg

    with psycopg.connect(url) as conn:
        return b"".join(bytes(k) + bytes(v) for k, v in conn.execute("SELECT key, value FROM pyblob_rows"))
