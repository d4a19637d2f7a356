"""Disk full on a cluster's backends (issue 15), driven with boto3 through `pyblob serve`: the metadata
in a real PostgreSQL 15 whose tables live on a small tmpfs; the chunks in a real SeaweedFS whose
volumes live on one; and the chunks in a store that says it is full as MinIO and Ceph do (`fullstore.py`).

PostgreSQL runs in a private mount namespace of its own (`privatefs.py`) with a tmpfs owned by its
user, made the tablespace of the test's database (`default_tablespace`): pyblob's tables, indexes and
TOAST fill the tmpfs, while the catalogs and the write-ahead log stay on the machine's disk. A full
table space is what a growing store meets, and PostgreSQL answers it with an ERROR, SQLSTATE 53100
disk_full ("could not extend file ...: No space left on device"), the transaction rolled back, the
server up. A full pg_wal is not tested here because it is not survivable: tried by hand (pg_wal on a
40 MiB tmpfs), the backend writing the WAL answered 53100 and then PANICked, the server restarted for
crash recovery, recovery could not write WAL either, and PostgreSQL shut down until room was made.
A deployment keeps pg_wal on a volume of its own, watched.

What a full metadata database must do, and what the test checks:

- An upload it cannot take fails at once with HTTP 507 `StorageFull`, a message naming the metadata
  database, and a request id (before: each transaction was retried as if the database were away, for
  30 s, then 500 `InternalError`); the refused key is absent.
- Reads and listings go on; a DELETE commits, or answers the same 507 when PostgreSQL itself needs a
  new page to record it (an index split), never a 500.
- Once there is room again (here a filler file on the tmpfs, put there before, is removed), the same
  server process takes uploads again.

A full chunk store: SeaweedFS (4.48) on a full disk, or with no writable volume left, answers the
PUT 500 InternalError "We encountered an internal error, please try again.", the words of any fault;
only its log says "no space left on device". pyblob cannot tell that from a store that failed, so it
answers 503 ServiceUnavailable (retry) naming the chunk store and its answer. A store that says it is
full (MinIO's 507 XMinioStorageFull and its bucket quota's XMinioAdminBucketQuotaExceeded, Ceph RGW's
403 QuotaExceeded, any 507) is 507 StorageFull naming the chunk store and the answer. Either way the
refused key is absent, reads, listings, deletes and small objects (kept in the metadata) go on, and
uploads come back in the same process once the store has room.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from fullstore import ANY_507, CEPH_QUOTA, MINIO_BUCKET_QUOTA, MINIO_DRIVE_FULL, FullAnswer, RunningStore, full_store
from fullstore import BUCKET as FULLSTORE_BUCKET
from postgres import PgServer, postgres_server
from privatefs import private_tmpfs_command
from processes import StartServer, isolate_from_aws
from seaweedfs import SeaweedFs, seaweedfs_server
from test_disk_full import ADMIN, BUCKET, assert_storage_full, s3_client

from objstore import S3ChunkSettings
from objstore.chunks.s3 import S3ChunkStore
from objstore.errors import ChunkStoreUnavailable, StorageFull
from objstore.hashing import chunk_digest

KiB = 1024
MiB = 1024 * KiB
PG_DISK = 2 * MiB  # the tablespace's tmpfs
PG_FILLER = 256 * KiB  # put on it first, removed to make room
INLINE = 3 * KiB  # random bytes kept in the metadata (pyblob's inline_max is 4 KiB): no chunk
MAX_UPLOADS = 3000  # far more than PG_DISK holds: a server that never says full fails the test


@pytest.fixture(autouse=True)
def _no_machine_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


@dataclass
class SmallTablespace:
    """A PostgreSQL whose test database keeps its tables on a PG_DISK tmpfs, with a filler file on it."""

    server: PgServer
    url: str

    @property
    def disk(self) -> Path:
        """The tmpfs as this process reaches it: through the root of the server's mount namespace."""
        return Path(f"/proc/{self.server.proc.pid}/root{self.server.root / 'small'}")

    def free(self) -> int:
        st = os.statvfs(self.disk)
        return st.f_bavail * st.f_frsize


def on_small_disk(root: Path, argv: list[str]) -> list[str]:
    """`postgres` with a tmpfs of its own on `<root>/small`, owned by the user it runs as."""
    small = root / "small"
    small.mkdir()
    owner = None
    if os.geteuid() == 0:  # tests/postgres.py runs it as the postgres user
        user = pwd.getpwnam("postgres")
        owner = (user.pw_uid, user.pw_gid)
    return private_tmpfs_command(small, PG_DISK, argv, owner)


@pytest.fixture
def small_tablespace() -> Iterator[SmallTablespace]:
    with postgres_server(wrap=on_small_disk) as server:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE small LOCATION '{server.root / 'small'}'")
            conn.execute("CREATE DATABASE full_meta")
            conn.execute("ALTER DATABASE full_meta SET default_tablespace = small")
        space = SmallTablespace(server, server.url("full_meta"))
        (space.disk / "filler").write_bytes(os.urandom(PG_FILLER))
        assert space.free() < PG_DISK, "the tablespace is not on the small tmpfs"
        yield space


def fill(s3: BaseClient, prefix: str, size: int, most: int) -> tuple[dict[str, str], str, ClientError | None]:
    """Objects of `size` random bytes until one is refused: what was stored (key -> sha256), the refused
    key, the refusal. More than `most` stored fails the test: the store never said full."""
    stored: dict[str, str] = {}
    for n in range(most + 1):
        key, body = f"{prefix}-{n:04d}", os.urandom(size)
        try:
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        except ClientError as e:
            return stored, key, e
        stored[key] = hashlib.sha256(body).hexdigest()
    pytest.fail(f"{most + 1} uploads of {size} bytes were taken: the store never said full")


def listed(s3: BaseClient) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def fill_inline(s3: BaseClient, prefix: str) -> tuple[dict[str, str], str, ClientError | None]:
    return fill(s3, prefix, INLINE, MAX_UPLOADS)


def test_a_full_metadata_database_answers_507_and_recovers(
    small_tablespace: SmallTablespace, start_server: StartServer
) -> None:
    """Small objects fill the tablespace: 507 naming the metadata database, at once; reads, listings
    and deletes go on; uploads come back once the filler is gone."""
    env = {"PYBLOB_METADATA_URL": small_tablespace.url, "PYBLOB_MIN_FREE_BYTES": "0"}
    env |= {"PYBLOB_ADMIN_ACCESS_KEY": ADMIN["access_key"], "PYBLOB_ADMIN_SECRET_KEY": ADMIN["secret_key"]}
    server = start_server(env=env)
    s3 = s3_client(server.url)
    s3.create_bucket(Bucket=BUCKET)

    stored, refused, refusal = fill_inline(s3, "small")
    assert_storage_full(refusal, "metadata database")
    assert len(stored) > 50, "the tablespace took almost nothing before it was full"
    assert small_tablespace.free() < 64 * KiB
    with pytest.raises(ClientError) as head:
        s3.head_object(Bucket=BUCKET, Key=refused)
    assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    started = time.monotonic()
    with pytest.raises(ClientError) as still:
        s3.put_object(Bucket=BUCKET, Key="one-more", Body=os.urandom(INLINE))
    assert_storage_full(still.value, "metadata database")
    assert time.monotonic() - started < 5, "the refusal was retried as if the database were away"

    for key in list(stored)[:: max(1, len(stored) // 20)]:  # reads and listings go on
        assert hashlib.sha256(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).hexdigest() == stored[key]
    assert listed(s3) == sorted(stored)
    for key in list(stored)[:5]:
        try:
            s3.delete_object(Bucket=BUCKET, Key=key)
            del stored[key]
        except ClientError as e:
            assert_storage_full(e, "metadata database")
    assert listed(s3) == sorted(stored)

    (small_tablespace.disk / "filler").unlink()  # room again: the same process takes uploads
    again, _, refusal = fill_inline(s3, "again")
    assert len(again) > 20, "uploads did not come back once the database had room"
    assert_storage_full(refusal, "metadata database")
    assert server.proc.poll() is None
    s3.close()


# The chunk store -------------------------------------------------------------------------------------
SWFS_DISK = 24 * MiB  # SeaweedFS's volumes, filer and master on one tmpfs
SWFS_FILLER = 4 * MiB
OBJECT = MiB  # random bytes: chunks in the chunk store


@pytest.fixture
def small_seaweedfs() -> Iterator[SeaweedFs]:
    """`weed server` on a SWFS_DISK tmpfs of its own, with a SWFS_FILLER file on it."""
    with seaweedfs_server(wrap=lambda data, argv: private_tmpfs_command(data, SWFS_DISK, argv)) as server:
        disk = Path(f"/proc/{server.proc.pid}/root{server.root / 'data'}")
        (disk / "filler").write_bytes(os.urandom(SWFS_FILLER))
        yield server


def fill_chunks(s3: BaseClient, prefix: str) -> tuple[dict[str, str], str, ClientError | None]:
    return fill(s3, prefix, OBJECT, SWFS_DISK // OBJECT)


def test_a_full_seaweedfs_is_a_503_naming_the_chunk_store_and_recovers(
    small_seaweedfs: SeaweedFs, start_server: StartServer
) -> None:
    """Chunked objects fill SeaweedFS's disk: its 500 is a 503 naming the chunk store and its answer;
    reads, listings and deletes go on; uploads come back once the filler is gone."""
    env = small_seaweedfs.env(small_seaweedfs.chunk_settings())
    env |= {"PYBLOB_ADMIN_ACCESS_KEY": ADMIN["access_key"], "PYBLOB_ADMIN_SECRET_KEY": ADMIN["secret_key"]}
    server = start_server(env=env)
    s3 = s3_client(server.url)
    s3.create_bucket(Bucket=BUCKET)

    stored, refused, refusal = fill_chunks(s3, "big")
    assert refusal is not None and len(stored) >= 5
    answer = refusal.response
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 503, answer  # SeaweedFS does not say full
    assert answer["Error"]["Code"] == "ServiceUnavailable", answer
    assert "chunk store answered InternalError" in answer["Error"]["Message"], answer
    assert answer["ResponseMetadata"]["RequestId"], answer
    with pytest.raises(ClientError) as head:
        s3.head_object(Bucket=BUCKET, Key=refused)
    assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    for key, digest in stored.items():  # reads, listings, deletes and small objects go on
        assert hashlib.sha256(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).hexdigest() == digest
    assert listed(s3) == sorted(stored)
    for key in list(stored)[:3]:
        assert s3.delete_object(Bucket=BUCKET, Key=key)["ResponseMetadata"]["HTTPStatusCode"] == 204
        del stored[key]
    s3.put_object(Bucket=BUCKET, Key="small", Body=os.urandom(INLINE))  # kept in the metadata: no chunk
    assert listed(s3) == sorted([*stored, "small"])

    disk = Path(f"/proc/{small_seaweedfs.proc.pid}/root{small_seaweedfs.root / 'data'}")
    (disk / "filler").unlink()  # room again: the same pyblob process takes uploads
    again, _, refusal = fill_chunks(s3, "again")
    assert len(again) >= 2 and refusal is not None, "uploads did not come back once SeaweedFS had room"
    assert server.proc.poll() is None
    s3.close()


# A store that says it is full ---------------------------------------------------------------------------
FULL_ANSWERS = [MINIO_DRIVE_FULL, MINIO_BUCKET_QUOTA, CEPH_QUOTA, ANY_507]


def settings_of(store: RunningStore) -> S3ChunkSettings:
    return S3ChunkSettings(url=f"s3://{FULLSTORE_BUCKET}/p", endpoint=store.endpoint, access_key="k", secret_key="s")


@pytest.mark.parametrize("answer", FULL_ANSWERS, ids=lambda a: f"{a.status}-{a.code}")
def test_a_store_that_says_full_is_storage_full(answer: FullAnswer) -> None:
    """Each way a store says it is full is StorageFull naming the chunk store and its answer, at once
    (no retry); another refusal stays ChunkStoreUnavailable."""
    data = os.urandom(1000)
    with full_store(answer, capacity=0) as store:
        chunks = S3ChunkStore(settings_of(store))
        with pytest.raises(StorageFull, match=f"chunk store .*{answer.status} {answer.code}"):
            chunks.put(chunk_digest(data), data)
        with chunks.batch() as batch, pytest.raises(StorageFull, match="chunk store"):
            batch.put(chunk_digest(data), data)
            batch.publish()
        assert store.refused == 2, "a full store's answer was retried"
    with full_store(FullAnswer(403, "AccessDenied", "Access Denied"), capacity=0) as store:
        chunks = S3ChunkStore(settings_of(store))
        with pytest.raises(ChunkStoreUnavailable, match="AccessDenied"):
            chunks.put(chunk_digest(data), data)


def test_a_full_chunk_store_answers_507_and_recovers(start_server: StartServer) -> None:
    """pyblob over a store that answers as MinIO does when its drive is full: uploads that need a chunk
    answer 507 StorageFull naming the chunk store; small objects, kept in the metadata, reads, listings
    and deletes go on; once the store has room again, the same process takes uploads."""
    with full_store(MINIO_DRIVE_FULL, capacity=4 * MiB) as store:
        settings = settings_of(store)
        env = {"PYBLOB_CHUNK_STORE": settings.url, "PYBLOB_CHUNK_STORE_ENDPOINT": store.endpoint}
        env |= {"PYBLOB_CHUNK_STORE_ACCESS_KEY": "k", "PYBLOB_CHUNK_STORE_SECRET_KEY": "s"}
        env |= {"PYBLOB_ADMIN_ACCESS_KEY": ADMIN["access_key"], "PYBLOB_ADMIN_SECRET_KEY": ADMIN["secret_key"]}
        server = start_server(env=env)
        s3 = s3_client(server.url)
        s3.create_bucket(Bucket=BUCKET)

        stored, refused, refusal = fill_chunks(s3, "big")
        assert_storage_full(refusal, "chunk store")
        assert "507 XMinioStorageFull" in refusal.response["Error"]["Message"]  # type: ignore[union-attr]
        assert len(stored) >= 2
        with pytest.raises(ClientError) as head:
            s3.head_object(Bucket=BUCKET, Key=refused)
        assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        small = os.urandom(INLINE)
        s3.put_object(Bucket=BUCKET, Key="small", Body=small)  # no chunk: the metadata has room
        assert s3.get_object(Bucket=BUCKET, Key="small")["Body"].read() == small
        for key, digest in stored.items():
            assert hashlib.sha256(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).hexdigest() == digest
        assert listed(s3) == sorted([*stored, "small"])
        assert s3.delete_object(Bucket=BUCKET, Key="small")["ResponseMetadata"]["HTTPStatusCode"] == 204

        store.set_capacity(store.capacity * 2)  # the store's admin gives it room
        again, _, refusal = fill_chunks(s3, "again")
        assert len(again) >= 2
        assert_storage_full(refusal, "chunk store")
        assert server.proc.poll() is None
        s3.close()
