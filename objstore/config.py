"""Tuning knobs of the storage engine, with the defaults measured in docs/benchmarks.md."""

from __future__ import annotations

from dataclasses import dataclass, field

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB


@dataclass(frozen=True)
class S3ChunkSettings:
    """Where chunks live when not in the data dir: `s3://bucket/prefix` on an S3-compatible store.
    Without keys, boto3's own chain applies (AWS_* variables, ~/.aws, an instance role)."""

    url: str
    endpoint: str = ""
    region: str = "us-east-1"
    access_key: str = ""
    secret_key: str = field(default="", repr=False)

    def bucket_and_prefix(self) -> tuple[str, str]:
        """The bucket, and the prefix with its trailing slash ("" for the bucket's root)."""
        if not self.url.startswith("s3://"):
            raise ValueError(f"chunk store {self.url!r}: expected s3://bucket/prefix")
        bucket, _, prefix = self.url[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"chunk store {self.url!r} names no bucket")
        prefix = prefix.strip("/")
        return bucket, f"{prefix}/" if prefix else ""


@dataclass(frozen=True)
class StoreConfig:
    """How the engine cuts, stores and collects data. The defaults suit one VPS disk."""

    # FastCDC sizes, from the sweep in docs/benchmarks.md: a 512 KiB average writes ~1.5x faster
    # than 256 KiB with half the files, and still shares 98% of a file after a 1 MiB insertion.
    chunk_min: int = 128 * KiB
    chunk_avg: int = 512 * KiB
    chunk_max: int = 2 * MiB
    # Objects up to this size live inline in LMDB: no file, no fsync of their own.
    inline_max: int = 4 * KiB
    # A chunk whose reference count reached zero stays on disk this long before GC may remove it.
    gc_grace_seconds: float = 3600.0
    # Multipart uploads untouched this long are aborted by GC.
    upload_max_age_seconds: float = 7 * 86400.0
    # fsync files and directories before acknowledging a write; LMDB commits are synced too.
    durable: bool = True
    # Room the LMDB map starts with (sparse file: costs nothing until used). A full map grows on its own,
    # doubling, up to `map_max_size` (0: as far as the machine can map it).
    map_size: int = 1 * TiB
    map_max_size: int = 0
    # Uploads are refused while the data dir's disk has less than this free, so deletes still commit (0: none).
    min_free_bytes: int = 0
    # Defaults for new users (0 = unlimited).
    default_quota: int = 0
    default_max_object_size: int = 0
    # Largest file the REST API, tus and WebSocket uploads take, whoever uploads it (0 = no limit).
    upload_max_file_size: int = 0
    # Short links: id length (31-letter alphabet) and how long a link may go undownloaded.
    link_id_length: int = 8
    link_idle_seconds: float = 90 * 86400.0
    # 32 bytes that seal the S3 secret keys at rest (sealing.py); None: they are stored as they are.
    sealing_key: bytes | None = field(default=None, repr=False)
    # Where the metadata lives: "lmdb:" (the data dir's meta/) or a PostgreSQL URL shared by nodes.
    metadata_url: str = "lmdb:"
    # Where the chunks live: None for the data dir's chunks/, else an S3-compatible bucket shared by nodes.
    chunk_store: S3ChunkSettings | None = None
    # Most segments one tus upload may be kept in until it is finished (links/resumable.py): each PATCH
    # ends one, and a long PATCH makes one every 64 MiB or 10 s. Real clients stay below it: tus-js-client
    # and Uppy send a file in one PATCH by default (5 TiB, S3's largest object, is 81,920 segments of
    # 64 MiB), 5 TiB in the 50 MiB PATCHes advised behind Cloudflare is 104,858, tus-java-client's 10 MiB
    # PATCHes reach it at 1.9 TiB, TUSKit's 500 KiB ones (its default) at 97 GiB. S3's 10,000 parts
    # would refuse a 50 GiB file in 5 MiB PATCHes. What it bounds: an upload's rows and manifests (a
    # client of 1-byte PATCHes made one per byte), and the segment list a finish holds in memory.
    resumable_max_segments: int = 200_000
