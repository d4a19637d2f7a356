"""The chunk store in an S3-compatible object store (SeaweedFS, Ceph RGW, MinIO, Garage, AWS): one
object per chunk at `<prefix>/ab/cd/<hex digest>`, shared by every pyblob node.

A PUT is atomic and durable once the object store acknowledges it, so a batch needs no staging:
its chunks are uploaded as they come (a few at a time, on a pool of threads, so cutting and hashing
go on meanwhile) and `publish` waits for the last acknowledgement. Chunks uploaded by a writer that
died before its metadata commit are orphans, which GC finds like the local store's. Reads are ranged
GETs; an object's LastModified is when its bytes were last written.

boto3 retries what is worth retrying (its standard mode); a client is made per process, after any
fork, as boto3 clients must not cross one. What fails after that is `ChunkStoreUnavailable` (503,
retry), except an answer that says the object store is full, which is `StorageFull` (507): retrying
would not make room. Which answers say so is `FULL_CODES`; SeaweedFS has none (a full disk or no
writable volume left is a 500 InternalError like any fault), so it stays a 503 there
(tests/reliability/test_disk_full_cluster.py).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from ..config import S3ChunkSettings
from ..errors import ChunkStoreUnavailable, StorageFull
from .interface import StoredChunk

S3Client = Any  # a boto3 client (boto3 ships no types)

READ_BLOCK = 256 * 1024
UPLOAD_THREADS = 8  # uploads in flight per process, whatever the number of writers
READ_THREADS = 16  # GETs in flight per process, whatever the number of readers
READ_AHEAD = 4  # chunks fetched ahead of the one a reader is sending
BATCH_IN_FLIGHT = 4  # uploads in flight per writer: bounds a writer's memory to 4 chunks
LIST_PAGE = 1000
QUARANTINE_PREFIX = "quarantine"
CLAIM_NAME = "pyblob-store-id"  # beside the chunks: which store owns them (`claim`)
# What object stores answer when they have no room, besides any 507 Insufficient Storage (RFC 4918):
# MinIO's 507 XMinioStorageFull (a full drive) and its bucket quota's XMinioAdminBucketQuotaExceeded,
# Ceph RGW's 403 QuotaExceeded (a user or bucket quota), and the names others give a 507. AWS's
# storage does not fill up.
FULL_CODES = frozenset(
    {
        "XMinioStorageFull",
        "XMinioAdminBucketQuotaExceeded",
        "QuotaExceeded",
        "InsufficientStorage",
        "InsufficientCapacity",
        "StorageFull",
    }
)


class S3ChunkStore:
    """Chunks as objects in one bucket under one prefix; implements `ChunkStore`."""

    uploads_before_publish = True

    def __init__(self, settings: S3ChunkSettings):
        self.settings = settings
        self.bucket, self.prefix = settings.bucket_and_prefix()
        self._pid = -1
        self._client: S3Client | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._read_pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._ensure_bucket()

    # the client and the upload pool, per process -----------------------------------------------
    @property
    def client(self) -> S3Client:
        if self._pid != os.getpid() or self._client is None:
            with self._lock:
                if self._pid != os.getpid() or self._client is None:
                    self._client = self._new_client()
                    self._pool = self._read_pool = None
                    self._pid = os.getpid()
        return self._client

    @property
    def pool(self) -> ThreadPoolExecutor:
        self.client  # noqa: B018 (a fork drops the parent's pools with its client)
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="pyblob-chunk-put")
            return self._pool

    @property
    def read_pool(self) -> ThreadPoolExecutor:
        self.client  # noqa: B018
        with self._lock:
            if self._read_pool is None:
                self._read_pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="pyblob-chunk-get")
            return self._read_pool

    def _new_client(self) -> S3Client:
        import boto3  # loaded only by stores that use it
        from botocore.config import Config

        s = self.settings
        config = Config(
            retries={"mode": "standard", "max_attempts": 5},
            max_pool_connections=UPLOAD_THREADS + READ_THREADS + 4,
            s3={"addressing_style": "path"},
            connect_timeout=10,
            read_timeout=60,
        )
        keys = {"aws_access_key_id": s.access_key, "aws_secret_access_key": s.secret_key} if s.access_key else {}
        client: S3Client = boto3.session.Session().client(
            "s3", endpoint_url=s.endpoint or None, region_name=s.region, config=config, **keys
        )
        return client

    def _ensure_bucket(self) -> None:
        """Make the bucket if it is missing; fail clearly here rather than at the first upload."""
        from botocore.exceptions import ClientError

        with _unavailable(None):
            try:
                self.client.head_bucket(Bucket=self.bucket)
                return
            except ClientError as e:
                if _status(e) != 404:
                    raise
            where = {}
            if self.settings.region != "us-east-1":  # AWS wants the region named, except for its first
                where = {"CreateBucketConfiguration": {"LocationConstraint": self.settings.region}}
            try:
                self.client.create_bucket(Bucket=self.bucket, **where)
            except ClientError as e:
                if _code(e) != "BucketAlreadyOwnedByYou":  # another node made it meanwhile
                    raise

    # names -------------------------------------------------------------------------------------
    def key(self, digest: bytes) -> str:
        h = digest.hex()
        return f"{self.prefix}{h[:2]}/{h[2:4]}/{h}"

    # ChunkStore ----------------------------------------------------------------------------------
    def batch(self) -> S3Batch:
        return S3Batch(self)

    def put(self, digest: bytes, data: bytes | memoryview) -> None:
        with _unavailable(digest):
            self.client.put_object(Bucket=self.bucket, Key=self.key(digest), Body=bytes(data))

    def exists(self, digest: bytes) -> bool:
        return self._written(self.key(digest)) is not None

    def read(self, digest: bytes, start: int, length: int) -> Iterator[bytes]:
        if length <= 0:
            return
        body = self._get(digest, f"bytes={start}-{start + length - 1}")
        got = 0
        try:
            with _unavailable(digest):
                for piece in body.iter_chunks(READ_BLOCK):
                    piece = piece[: length - got]
                    got += len(piece)
                    yield piece
                    if got >= length:
                        break
        finally:
            body.close()
        if got < length:
            raise EOFError(f"chunk {digest.hex()} is shorter than its manifest says")

    def read_spans(self, spans: Iterable[tuple[bytes, int, int]]) -> Iterator[bytes]:
        """Up to `READ_AHEAD` spans fetched at once, on the read pool, yielded in order: a chunk's GET
        costs a round trip, which reading one at a time would pay for every chunk. Memory: at most
        `READ_AHEAD` chunks per reader."""
        ahead: deque[Future[bytes]] = deque()
        spans = iter(spans)
        try:
            for digest, start, length in spans:
                ahead.append(self.read_pool.submit(self._read_span, digest, start, length))
                if len(ahead) >= READ_AHEAD:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()
        finally:
            for future in ahead:
                future.cancel()

    def _read_span(self, digest: bytes, start: int, length: int) -> bytes:
        return b"".join(self.read(digest, start, length))

    def read_all(self, digest: bytes) -> bytes:
        body = self._get(digest, None)
        try:
            with _unavailable(digest):
                data: bytes = body.read()
                return data
        finally:
            body.close()

    def region(self, digest: bytes, start: int, length: int) -> None:
        return None

    def delete(self, digest: bytes, unless_written_after: float) -> bool:
        written = self._written(self.key(digest))
        if written is None:
            return True
        # LastModified has whole seconds: a write in the cutoff's second counts as after it.
        if written + 1 > unless_written_after:
            return False
        with _unavailable(digest):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(digest))
        return True

    def iterate(self) -> Iterator[tuple[list[StoredChunk], int, int]]:
        """One batch per listing page (the total is unknown until the end); quarantined chunks and
        names that are no digest are left out."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix, PaginationConfig={"PageSize": LIST_PAGE})
        with _unavailable(None):
            for n, page in enumerate(pages, 1):
                found: list[StoredChunk] = []
                for obj in page.get("Contents", []):
                    digest = _digest_of(obj["Key"][len(self.prefix) :])
                    if digest is not None:
                        found.append((digest, obj["LastModified"].timestamp()))
                yield found, n, 0

    def quarantine(self, digest: bytes) -> bool:
        if not self.exists(digest):
            return False
        source = self.key(digest)
        with _unavailable(digest):
            self.client.copy_object(
                Bucket=self.bucket,
                Key=f"{self.prefix}{QUARANTINE_PREFIX}/{digest.hex()}",
                CopySource={"Bucket": self.bucket, "Key": source},
            )
            self.client.delete_object(Bucket=self.bucket, Key=source)
        return True

    def cleanup(self, min_age: float) -> int:
        """Nothing is staged: a dead writer's uploads are whole chunks, which the orphan scan finds."""
        return 0

    def claim(self, owner: str, replacing: str | None = None) -> str:
        """The owner named in `<prefix>pyblob-store-id` (no digest, so never taken for a chunk), written
        as `owner` if missing (with `If-None-Match: *`, so of two stores claiming at once one wins)
        or if it is `replacing`; read back, so that a claim that lost sees who won."""
        from botocore.exceptions import ClientError

        key = f"{self.prefix}{CLAIM_NAME}"
        with _unavailable(None):
            holder = self._read_claim(key)
            if holder is None or holder == replacing:
                condition = {"IfNoneMatch": "*"} if holder is None else {}
                try:
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=owner.encode(), **condition)
                except ClientError as e:
                    if _status(e) not in (409, 412):  # claimed meanwhile: read below who won
                        raise
                holder = self._read_claim(key)
        return holder or owner

    def _read_claim(self, key: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            return str(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode())
        except ClientError as e:
            if _status(e) == 404:
                return None
            raise

    # helpers -------------------------------------------------------------------------------------
    def _get(self, digest: bytes, byte_range: str | None) -> Any:
        from botocore.exceptions import ClientError

        args = {"Bucket": self.bucket, "Key": self.key(digest)}
        if byte_range is not None:
            args["Range"] = byte_range
        with _unavailable(digest):
            try:
                return self.client.get_object(**args)["Body"]
            except ClientError as e:
                if _status(e) == 404:
                    raise FileNotFoundError(f"chunk {digest.hex()} is not in the chunk store") from e
                if _status(e) == 416:
                    raise EOFError(f"chunk {digest.hex()} is shorter than its manifest says") from e
                raise

    def _written(self, key: str) -> float | None:
        """When the object's bytes were last written; None if there is no such object."""
        from botocore.exceptions import ClientError

        with _unavailable(None):
            try:
                written: float = self.client.head_object(Bucket=self.bucket, Key=key)["LastModified"].timestamp()
                return written
            except ClientError as e:
                if _status(e) == 404:
                    return None
                raise


@contextmanager
def _unavailable(digest: bytes | None) -> Iterator[None]:
    """The object store's failures (after boto3's retries) as `ChunkStoreUnavailable`; an answer that
    says it is full as `StorageFull`."""
    from botocore.exceptions import BotoCoreError, ClientError
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ClientError as e:
        if _status(e) == 507 or _code(e) in FULL_CODES:
            answer = f"it answered {_status(e)} {_code(e)}".strip()
            raise StorageFull(StorageFull.CHUNK_STORE.format(answer=answer)) from e
        about = f" (chunk {digest.hex()})" if digest else ""
        raise ChunkStoreUnavailable(f"the chunk store answered {_describe(e)}{about}") from e
    except (BotoCoreError, HTTPError) as e:
        raise ChunkStoreUnavailable(f"the chunk store failed: {e}") from e


class S3Batch:
    """A writer's uploads: started as chunks arrive, at most `BATCH_IN_FLIGHT` at a time."""

    def __init__(self, store: S3ChunkStore):
        self.store = store
        self.pending: dict[bytes, Future[None]] = {}
        self.published: set[bytes] = set()
        self._slots = threading.BoundedSemaphore(BATCH_IN_FLIGHT)

    def holds(self, digest: bytes) -> bool:
        return digest in self.pending or digest in self.published

    def put(self, digest: bytes, data: bytes | memoryview) -> None:
        if self.holds(digest):
            return
        self._slots.acquire()
        try:
            future = self.store.pool.submit(self.store.put, digest, bytes(data))
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        self.pending[digest] = future

    def publish(self) -> None:
        """Wait for every upload; the first failure is raised (the others are waited for too)."""
        error: BaseException | None = None
        for digest, future in list(self.pending.items()):
            try:
                future.result()
                self.published.add(digest)
            except BaseException as e:  # re-raised below, once all are done
                error = error or e
            del self.pending[digest]
        if error is not None:
            raise error

    def close(self) -> None:
        """Uploads not started are cancelled; those running are waited for (not abandoned mid-flight)."""
        for future in self.pending.values():
            future.cancel()
        for digest, future in self.pending.items():
            if not future.cancelled() and future.exception() is None:
                self.published.add(digest)
        self.pending.clear()

    def exposed(self) -> set[bytes]:
        return set(self.published)

    def __enter__(self) -> S3Batch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _digest_of(name: str) -> bytes | None:
    parts = name.split("/")
    if len(parts) != 3:
        return None
    try:
        digest = bytes.fromhex(parts[2])
    except ValueError:
        return None
    return digest if len(digest) == 32 and parts[0] == parts[2][:2] and parts[1] == parts[2][2:4] else None


def _status(e: Any) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _code(e: Any) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _describe(e: Any) -> str:
    return f"{_code(e) or _status(e)} {e.response.get('Error', {}).get('Message', '')}".strip()
