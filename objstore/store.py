"""The storage engine's facade: one data dir's accounts, buckets, objects, uploads and links.

`Store` builds the two stores under everything (metadata: `meta/`, chunks: `chunks/`) and the
parts over them, each given only what it uses; the web layers and the CLI call it and its parts
(`store.accounts`, `store.multipart`, `store.links`, ...). Bucket operations live here because they
span parts (deleting a bucket aborts its uploads); so does removing a user.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import (
    accounts,
    admission,
    buckets,
    inflight,
    lifecycle,
    limits,
    listing,
    manifests,
    multipart,
    refcount,
    runs,
    scrub_cursor,
    versions,
)
from .accounts import Accounts
from .admission import Admission
from .chunks import ChunkStore, FileRegion
from .chunks.localdir import LocalChunkStore
from .conditions import ALWAYS, Precondition
from .config import StoreConfig
from .diskspace import DiskFloor
from .errors import BucketNotEmpty, InvalidArgument
from .identity import claim_chunks, store_id
from .inflight import Intents
from .leases import LeaseKeeper
from .lifecycle import LifecycleRule
from .lifecycle_sweep import LifecycleReport, apply_lifecycle
from .links import DownloadStats, Links, LinkSweepReport, LinkUploads, Resumables, delete_links, resumable, sweep_links
from .links import links as link_rows
from .meta import MetadataStore, ReadTxn, WriteTxn
from .meta.lmdb import LmdbMetadataStore, LmdbVolatileStore
from .multipart import Multipart
from .objects import Deletion, Objects, ObjectWriter
from .records import BucketRecord, ObjectRecord

# Every table of the metadata store, each declared by the one module that owns it.
TABLES = (
    *accounts.TABLES,
    *buckets.TABLES,
    *versions.TABLES,
    *manifests.TABLES,
    *refcount.TABLES,
    *multipart.TABLES,
    *link_rows.TABLES,
    *resumable.TABLES,
    *runs.TABLES,
    *scrub_cursor.TABLES,
)
# Every table of the volatile store (state lost on a reboot, or on a failover over PostgreSQL).
VOLATILE_TABLES = (*admission.TABLES, *inflight.TABLES)
# 2: object versions (`versions` table, version fields of objects), completed uploads, part layouts.
# Rows of 1 read as they are (new fields have defaults, new tables start empty), so opening a data
# dir of 1 only records 2; a pyblob that knows only 1 then refuses the data dir instead of
# misreading versions it does not know about.
SCHEMA_VERSION = 2

__all__ = ["SCHEMA_VERSION", "TABLES", "Deletion", "StorageTotals", "Store"]


@dataclass
class StorageTotals:
    """What a store holds, for `pyblob stats` and `/metrics`. Logical bytes count every version of
    every object as its owners are charged; physical bytes are the chunk files (objects up to the
    inline limit live in the metadata and are not in them)."""

    users: int
    objects: int
    logical_bytes: int
    chunks: int
    physical_bytes: int
    links: int

    @property
    def dedup_ratio(self) -> float:
        return self.logical_bytes / self.physical_bytes if self.physical_bytes else 1.0


def open_metadata(root: Path, config: StoreConfig, on_disk_full: Callable[[], None] | None = None) -> MetadataStore:
    """The metadata store `config.metadata_url` names: LMDB in the data dir (calling `on_disk_full`
    when a commit finds the disk full), or PostgreSQL."""
    url = config.metadata_url
    if url in ("", "lmdb:"):
        size, cap = config.map_size, config.map_max_size
        return LmdbMetadataStore(root / "meta", TABLES, size, config.durable, SCHEMA_VERSION, cap, on_disk_full)
    if url.startswith(("postgresql://", "postgres://")):
        from .meta.postgres import PostgresMetadataStore  # psycopg is loaded only by stores that use it

        return PostgresMetadataStore(url, TABLES, SCHEMA_VERSION)
    raise ValueError(f"unknown metadata store {url!r}: lmdb: or postgresql://...")


def open_shared_volatile(config: StoreConfig) -> MetadataStore | None:
    """The volatile store the nodes of a cluster share (their quota reservations), when the metadata
    is in PostgreSQL: an unlogged table of the same database. None on one node: `state/` serves."""
    url = config.metadata_url
    if not url.startswith(("postgresql://", "postgres://")):
        return None
    from .meta.postgres import PostgresVolatileStore

    return PostgresVolatileStore(url, VOLATILE_TABLES, SCHEMA_VERSION)


def open_chunks(root: Path, config: StoreConfig, floor: DiskFloor | None = None) -> ChunkStore:
    """The chunk store `config.chunk_store` names: the data dir's chunks/ (writing no chunk under the
    `floor` of free space), or an S3 bucket."""
    if config.chunk_store is None:
        return LocalChunkStore(root, config.durable, floor.check if floor is not None else None)
    from .chunks.s3 import S3ChunkStore  # boto3 is loaded only by stores that use it

    return S3ChunkStore(config.chunk_store)


class Store:
    """One data dir: the metadata and chunk stores, and the parts that keep their rules.

    `volatile_tables` are tables of the caller's in the volatile store (shared by the worker
    processes, lost on reboot), beside the engine's own quota reservations, which go to
    `shared_volatile` instead when the metadata is in PostgreSQL (shared by every node).
    """

    def __init__(
        self,
        data_dir: Path | str,
        config: StoreConfig | None = None,
        clock: Callable[[], float] = time.time,
        volatile_tables: Iterable[str] = (),
    ):
        self.root = Path(data_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self.config = config = config or StoreConfig()
        self.clock = clock
        now = self.now
        floor = DiskFloor(self.root, config.min_free_bytes)  # room kept for deletes on a full disk
        floor.keep_reserve()
        self.meta = meta = open_metadata(self.root, config, floor.release)
        self.volatile = LmdbVolatileStore(self.root / "state", (*VOLATILE_TABLES, *volatile_tables), floor.release)
        self.shared_volatile = open_shared_volatile(config)
        self.chunks = chunks = open_chunks(self.root, config, floor)
        self.id = store_id(meta)
        claim_chunks(chunks, self.id)
        self.accounts = Accounts(meta, config, now)
        self.accounts.seal_secrets()
        shared = self.shared_volatile or self.volatile  # what every node's writers see
        lease = LeaseKeeper(shared, shared=self.shared_volatile is not None)
        self.admission = Admission(meta, shared, lease, floor.before_upload)
        self.intents = Intents(shared, lease)
        self.objects = Objects(meta, chunks, config, now, self.admission, self.intents)
        self.multipart = Multipart(meta, chunks, config, now, self.admission, self.objects)
        self.links = Links(meta, config, now, self.objects)
        self.stats = DownloadStats(meta, now)
        self.uploads = LinkUploads(meta, config, now, self.objects, self.links)
        self.resumables = Resumables(
            meta, chunks, config, now, self.admission, self.uploads, self.intents, self.root / "resumable"
        )

    def now(self) -> float:
        """The engine's clock (replaceable after construction, as tests of the sweeps do)."""
        return self.clock()

    def close(self) -> None:
        try:
            self.stats.flush()
        finally:
            self.meta.close()
            self.volatile.close()
            if self.shared_volatile is not None:
                self.shared_volatile.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # buckets ---------------------------------------------------------------------------------
    def create_bucket(self, owner: str, name: str, region: str = buckets.DEFAULT_REGION) -> BucketRecord:
        def create(w: WriteTxn) -> BucketRecord:
            if not buckets.NAME.match(name):
                raise InvalidArgument(f"invalid bucket name {name!r}")
            accounts.require_user(w, owner)
            return buckets.create(w, owner, name, region, self.clock())

        return self.meta.transact(create)

    def get_bucket(self, name: str) -> BucketRecord:
        return self.meta.read(lambda r: buckets.require(r, name))

    def list_buckets(self, owner: str | None = None) -> list[BucketRecord]:
        found = self.meta.read(buckets.all_buckets)
        return [b for b in found if owner is None or b.owner == owner]

    def set_bucket_cors(self, name: str, rules: list[dict[str, Any]] | None) -> BucketRecord:
        """Replace (or with None remove) a bucket's CORS rules; the engine stores them as given."""
        return self._update_bucket(name, lambda record: setattr(record, "cors", rules))

    def set_bucket_lifecycle(self, name: str, rules: list[LifecycleRule] | None) -> BucketRecord:
        """Replace (or with None remove) a bucket's lifecycle rules, checked by `lifecycle.validate`."""
        if rules is not None:
            lifecycle.validate(rules)
        rows = lifecycle.to_rows(rules) if rules is not None else None
        return self._update_bucket(name, lambda record: setattr(record, "lifecycle", rows))

    def set_bucket_tags(self, name: str, tags: dict[str, str]) -> BucketRecord:
        """Replace a bucket's tags (PutBucketTagging; {} removes them); the S3 layer checks S3's limits."""
        return self._update_bucket(name, lambda record: setattr(record, "tags", dict(tags)))

    def set_bucket_versioning(self, name: str, status: str) -> BucketRecord:
        """PutBucketVersioning: Enabled or Suspended (a bucket never goes back to unversioned)."""
        if status not in versions.STATES:
            raise InvalidArgument(f"versioning status must be one of {', '.join(versions.STATES)}")
        return self._update_bucket(name, lambda record: setattr(record, "versioning", status))

    def _update_bucket(self, name: str, change: Callable[[BucketRecord], None]) -> BucketRecord:
        def update(w: WriteTxn) -> BucketRecord:
            record = buckets.require(w, name)
            change(record)
            buckets.put(w, record)
            return record

        return self.meta.transact(update)

    def delete_bucket(self, name: str) -> None:
        """DeleteBucket: refused while any version or delete marker remains; uploads in progress
        are aborted with it, as S3 does (their parts' chunks are left to GC)."""

        def delete(w: WriteTxn) -> None:
            bucket = buckets.require(w, name)
            if versions.bucket_has_rows(w, bucket.id):
                raise BucketNotEmpty(name)
            self.multipart.abort_all_in(w, name, bucket.id)
            buckets.delete(w, name)

        self.meta.transact(delete)

    # users -----------------------------------------------------------------------------------
    def remove_user(self, name: str) -> None:
        """Remove a user with their keys, tokens, links and unfinished resumable uploads (whose
        segments' chunks GC collects); their buckets must be deleted first."""

        def remove(w: WriteTxn) -> None:
            accounts.require_user(w, name)
            if buckets.any_owned_by(w, name):
                raise BucketNotEmpty(f"user {name!r} still owns buckets; delete them first")
            resumable.drop_owner(w, name, self.clock())  # charged to this user only
            # Their links: the buckets are gone, so every one of them is dead; a later user of the
            # same name must not inherit them.
            link_rows.drop_owner(w, name)
            accounts.remove_user(w, name)

        self.meta.transact(remove)

    # objects (see objects.py) ----------------------------------------------------------------
    def open_writer(
        self,
        bucket: str,
        key: str,
        checksums: Iterable[str] = (),
        size_hint: int | None = None,
        credit: int = 0,
        ceiling: int | None = None,
        ceiling_name: str = limits.S3_CEILING,
    ) -> ObjectWriter:
        return self.objects.open_writer(bucket, key, checksums, size_hint, credit, ceiling, ceiling_name)

    def put_object(self, bucket: str, key: str, data: bytes, **attrs: Any) -> ObjectRecord:
        return self.objects.put(bucket, key, data, **attrs)

    def head_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectRecord:
        return self.objects.head(bucket, key, version_id)

    def read_object(self, record: ObjectRecord, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        return self.objects.read(record, start, end)

    def read_regions(
        self, record: ObjectRecord, start: int = 0, end: int | None = None
    ) -> Iterator[bytes | FileRegion]:
        return self.objects.regions(record, start, end)

    def object_part(self, record: ObjectRecord, number: int) -> manifests.PartInfo:
        return self.objects.part(record, number)

    def object_parts(self, record: ObjectRecord, after: int, limit: int) -> list[manifests.PartInfo]:
        return self.objects.parts(record, after, limit)

    def set_object_tags(
        self, bucket: str, key: str, tags: dict[str, str], version_id: str | None = None
    ) -> ObjectRecord:
        return self.objects.set_tags(bucket, key, tags, version_id)

    def delete_object(
        self,
        bucket: str,
        key: str,
        version_id: str | None = None,
        only_if: Callable[[ObjectRecord], bool] | None = None,
        condition: Precondition = ALWAYS,
    ) -> Deletion:
        return self.objects.delete(bucket, key, version_id, only_if, condition)

    def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        replace: dict[str, Any] | None = None,
        check: Callable[[ObjectRecord], None] | None = None,
        src_version: str | None = None,
        condition: Precondition = ALWAYS,
    ) -> tuple[ObjectRecord, ObjectRecord]:
        return self.objects.copy(src_bucket, src_key, dst_bucket, dst_key, replace, check, src_version, condition)

    def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        after: str = "",
        max_keys: int = 1000,
        inclusive: bool = False,
    ) -> listing.Page:
        return self.objects.list(bucket, prefix, delimiter, after, max_keys, inclusive)

    def list_object_versions(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_marker: str = "",
        max_keys: int = 1000,
    ) -> listing.VersionPage:
        return self.objects.list_versions(bucket, prefix, delimiter, key_marker, version_marker, max_keys)

    def storage_totals(self) -> StorageTotals:
        def read(r: ReadTxn) -> StorageTotals:
            users = accounts.all_users(r)
            chunks = refcount.totals(r)
            objects, logical = sum(u.object_count for u in users), sum(u.usage_bytes for u in users)
            return StorageTotals(len(users), objects, logical, chunks.chunks, chunks.nbytes, link_rows.count(r))

        return self.meta.read(read)

    def maintenance_runs(self) -> dict[str, runs.JobRuns]:
        """What `gc` and `fsck` did, by job: how many runs, when the last ended, what it found."""
        return self.meta.read(runs.all_jobs)

    # sweeps ----------------------------------------------------------------------------------
    def apply_lifecycle(self, now: float, stop: Callable[[], bool] | None = None) -> LifecycleReport:
        """Expire objects and abort uploads as every bucket's lifecycle rules say (see lifecycle_sweep.py)."""
        return apply_lifecycle(self.objects, self.multipart, now, stop)

    def sweep_links(self, now: float, stop: Callable[[], bool] = lambda: False) -> LinkSweepReport:
        """Tombstone spent links and delete the files uploaded for them (see links/sweep.py)."""
        return sweep_links(self.links, now, stop)

    def delete_links(self, owner: str, only_spent: bool) -> int:
        """Delete `owner`'s links (all, or only the spent ones) and the objects they own."""
        return delete_links(self.links, owner, only_spent)
