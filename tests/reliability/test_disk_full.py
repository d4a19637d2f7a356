"""Disk full, for real (issue 15): `pyblob serve` whose data dir is a tmpfs of a few MiB, driven by boto3.

The tmpfs is mounted inside a private mount namespace of the server's own (`privatefs.py`), so nothing
stays mounted on the machine: the mount goes away with the server's last process. The test reaches the
data dir as the server sees it through `/proc/<pid>/root` (free space, the staging dir, `pyblob gc`).

What a full disk must do, and what these tests check:

- An upload the disk cannot take fails with HTTP 507 and the S3 code `StorageFull` (MinIO answers 507
  `XMinioStorageFull`; AWS has no such code; Garage answers 500), a message that says the storage is
  full and why, and a request id. The REST API answers 507 JSON with the same words and its request id.
- Nothing of it is visible: HeadObject answers 404 for the refused key and listings do not show it.
- Its staging space is freed: the data dir's `tmp/` holds nothing once the refusal is answered.
- Reads, listings, DELETEs and short-link downloads (`/s/<id>`) keep working while the disk is full.
- Uploads stop while `PYBLOB_MIN_FREE_BYTES` is still free, so that metadata deletes find room to
  commit: LMDB writes new pages for a delete, and on a disk filled to its last byte DELETEs and
  `pyblob gc` fail (`test_a_disk_filled_to_its_last_byte_answers_507_never_500` fills one without the
  floor: every DELETE answered 507). When something else fills the disk anyway, the data dir's 1 MiB
  `reserve` file is freed by the first metadata commit that finds no room, and deletes and gc commit.
- A DELETE does not free chunks at once: they wait out `PYBLOB_GC_GRACE_SECONDS` for `pyblob gc`.
  After deletes and a gc, uploads work again in the same server process, without a restart.
- The LMDB map grows on its own when full (`PYBLOB_LMDB_MAP_SIZE` is where it starts), across worker
  processes; capped by `PYBLOB_LMDB_MAP_MAX_SIZE`, a full map answers the same 507, naming the map.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from ports import free_port
from privatefs import private_tmpfs_command
from processes import Server, StartServer, clean_env, isolate_from_aws, user_s3_client, wait_healthy

KiB = 1024
MiB = 1024 * KiB
DISK = 8 * MiB  # the tmpfs: the metadata's first pages, a few objects, and the floor
FLOOR = 1 * MiB  # PYBLOB_MIN_FREE_BYTES of the servers that keep one
OBJECT = 256 * KiB  # random bytes: no two objects share a chunk
INLINE = 2 * KiB  # small enough to live in the metadata (no chunk file)
MAX_UPLOADS = 200  # far more than DISK holds: a server that never says full fails the test
ADMIN = {"access_key": "DISKFULLADMIN", "secret_key": "disk-full-secret"}
BUCKET = "full"
FULL = re.compile(r"storage is full", re.IGNORECASE)


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


def s3_client(url: str) -> BaseClient:
    """The admin's boto3 client, one attempt per call: each refusal is seen as it was answered."""
    return user_s3_client(url, ADMIN, attempts=1, read_timeout=30)


@dataclass
class Filled:
    """What a fill stored (key -> sha256 of its bytes), and the upload that was refused."""

    stored: dict[str, str] = field(default_factory=dict)
    refused_key: str = ""
    refusal: ClientError | None = None


@dataclass
class TinyDisk:
    """A running server on a tmpfs data dir, the data dir as the server sees it, the admin's clients."""

    server: Server
    data_dir: Path  # the path inside the server's mount namespace
    token: str  # the admin's REST API token (printed at the first start)
    s3: BaseClient

    @property
    def seen(self) -> Path:
        """The data dir as this process reaches it: through the server's root."""
        return Path(f"/proc/{self.server.proc.pid}/root{self.data_dir}")

    def free(self) -> int:
        st = os.statvfs(self.seen)
        return st.f_bavail * st.f_frsize

    def staging(self) -> list[str]:
        """What the chunk store's staging dir holds: uploads in flight, or what one left behind."""
        return sorted(os.listdir(self.seen / "tmp"))

    def fill(self, size: int, prefix: str) -> Filled:
        """Upload objects of `size` random bytes until one is refused."""
        filled = Filled()
        for n in range(MAX_UPLOADS):
            key, body = f"{prefix}-{n:03d}", os.urandom(size)
            try:
                self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            except ClientError as e:
                filled.refused_key, filled.refusal = key, e
                return filled
            filled.stored[key] = hashlib.sha256(body).hexdigest()
        pytest.fail(f"{MAX_UPLOADS} uploads of {size} bytes fit on a {DISK}-byte disk: it never said full")

    def listed(self) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`pyblob ARGS` on the server's data dir (through its root), with no GC grace period."""
        argv = [sys.executable, "-m", "pyblob", *args, "--data-dir", str(self.seen)]
        env = clean_env({"PYBLOB_GC_GRACE_SECONDS": "0"})
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)


def start_on_tmpfs(tmp_path: Path, min_free: int) -> Iterator[TinyDisk]:
    """`pyblob serve` on a DISK-byte tmpfs of its own, with the admin's keys and a bucket; stopped after."""
    data_dir, log_dir = tmp_path / "data", tmp_path / "log"
    data_dir.mkdir()
    log_dir.mkdir()
    port = free_port()
    serve = [sys.executable, "-m", "pyblob", "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv = private_tmpfs_command(data_dir, DISK, [*serve, "--data-dir", str(data_dir)])
    settings = {
        "PYBLOB_ADMIN_ACCESS_KEY": ADMIN["access_key"],
        "PYBLOB_ADMIN_SECRET_KEY": ADMIN["secret_key"],
        "PYBLOB_MIN_FREE_BYTES": str(min_free),
        "PYBLOB_GC_GRACE_SECONDS": "0",
    }
    env = {k: v for k, v in clean_env(settings).items() if not k.startswith("AWS_")}
    with open(log_dir / "stdout", "wb") as out, open(log_dir / "stderr", "wb") as err:
        proc = subprocess.Popen(
            argv, cwd=tmp_path, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log_dir)
    try:
        wait_healthy(server)
        token = re.search(r"API token:\s+(\S+)", server.stdout)
        assert token, server.stdout
        disk = TinyDisk(server, data_dir, token.group(1), s3_client(server.url))
        assert disk.free() <= DISK, "the data dir is not on the small tmpfs"
        disk.s3.create_bucket(Bucket=BUCKET)
        yield disk
        disk.s3.close()
    finally:
        server.stop()


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[TinyDisk]:
    """A server that keeps FLOOR bytes free."""
    yield from start_on_tmpfs(tmp_path, FLOOR)


@pytest.fixture
def floorless_disk(tmp_path: Path) -> Iterator[TinyDisk]:
    """A server that keeps nothing free: its uploads fill the disk to the last byte."""
    yield from start_on_tmpfs(tmp_path, 0)


def create_link(disk: TinyDisk, key: str) -> str:
    """A short link to `key`, made through the REST API with the admin's token; its id."""
    made = httpx.post(
        f"{disk.server.url}/api/links",
        json={"bucket": BUCKET, "key": key},
        headers={"authorization": f"Bearer {disk.token}"},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def assert_storage_full(error: ClientError | None, cause: str) -> None:
    """507 StorageFull, with a message that says so and names `cause`, and a request id."""
    assert error is not None
    response = error.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 507, response
    assert response["Error"]["Code"] == "StorageFull", response
    message = response["Error"]["Message"]
    assert FULL.search(message) and cause in message, message
    assert response["ResponseMetadata"]["RequestId"], response


def assert_absent(disk: TinyDisk, key: str) -> None:
    with pytest.raises(ClientError) as head:
        disk.s3.head_object(Bucket=BUCKET, Key=key)
    assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert key not in disk.listed()


def read_back(disk: TinyDisk, stored: dict[str, str]) -> None:
    """Every stored object reads back whole, and the listing shows exactly them."""
    for key, digest in stored.items():
        assert hashlib.sha256(disk.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).hexdigest() == digest
    assert disk.listed() == sorted(stored)


def test_uploads_stop_at_the_floor_with_507_and_leave_nothing(disk: TinyDisk) -> None:
    """Chunked uploads until refused: 507 StorageFull naming the floor kept for deletes; the refused
    key is absent, nothing of it is staged, and FLOOR bytes stay free."""
    filled = disk.fill(OBJECT, "big")
    assert_storage_full(filled.refusal, "kept free")
    assert len(filled.stored) >= 4  # the disk took objects before it was full
    assert_absent(disk, filled.refused_key)
    assert disk.staging() == []
    free = disk.free()
    assert free >= FLOOR // 2, f"uploads went down to {free} bytes free"

    small = disk.fill(INLINE, "small")  # an object that lives in the metadata alone is refused too
    assert_storage_full(small.refusal, "kept free")
    assert_absent(disk, small.refused_key)
    assert disk.staging() == []
    read_back(disk, {**filled.stored, **small.stored})


def test_reads_listing_deletes_and_short_links_work_while_full(disk: TinyDisk) -> None:
    """While uploads are refused: GETs, listings, a short-link download and DELETEs all succeed; the
    REST API refuses an upload with 507 JSON that says why, with its request id."""
    first = disk.fill(OBJECT, "a")
    key = next(iter(first.stored))
    link = create_link(disk, key)  # a small metadata write: the floor keeps room for it
    again = disk.fill(OBJECT, "b")  # still full
    assert_storage_full(again.refusal, "kept free")
    stored = {**first.stored, **again.stored}
    read_back(disk, stored)

    download = httpx.get(f"{disk.server.url}/s/{link}", timeout=30)
    assert download.status_code == 200, download.text
    assert hashlib.sha256(download.content).hexdigest() == stored[key]

    rest = httpx.post(
        f"{disk.server.url}/upload",
        files={"file": ("more.bin", os.urandom(OBJECT), "application/octet-stream")},
        headers={"authorization": f"Bearer {disk.token}"},
        timeout=30,
    )
    assert rest.status_code == 507, rest.text
    assert FULL.search(rest.json()["detail"]) and rest.json()["request_id"], rest.text

    for gone in list(stored)[:3]:
        deleted = disk.s3.delete_object(Bucket=BUCKET, Key=gone)
        assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
        del stored[gone]
    read_back(disk, stored)
    assert disk.staging() == []


def test_uploads_work_again_after_deletes_and_gc_without_a_restart(disk: TinyDisk) -> None:
    """DELETE frees no chunk at once (GC's grace period, here 0, and `pyblob gc`); after a gc the same
    server process takes uploads again."""
    filled = disk.fill(OBJECT, "old")
    assert_storage_full(filled.refusal, "kept free")
    pid = disk.server.proc.pid
    before = disk.free()
    for key in filled.stored:
        disk.s3.delete_object(Bucket=BUCKET, Key=key)
    assert disk.free() < before + OBJECT, "deleting freed chunks at once"
    with pytest.raises(ClientError) as still:
        disk.s3.put_object(Bucket=BUCKET, Key="too-soon", Body=os.urandom(OBJECT))
    assert_storage_full(still.value, "kept free")

    gc = disk.cli("gc")
    assert gc.returncode == 0, gc.stderr
    assert disk.free() >= before + len(filled.stored) * OBJECT // 2, gc.stdout

    after = disk.fill(OBJECT, "new")
    assert len(after.stored) >= len(filled.stored) // 2, "uploads did not come back after gc"
    assert_storage_full(after.refusal, "kept free")
    assert disk.server.proc.poll() is None and disk.server.proc.pid == pid
    read_back(disk, after.stored)


def test_a_disk_filled_to_its_last_byte_answers_507_never_500(floorless_disk: TinyDisk) -> None:
    """With no floor, uploads fill the disk until the filesystem says ENOSPC: chunk writes, then metadata
    commits of inline objects. Each refusal is 507 StorageFull naming the full disk, with nothing left
    staged; reads and listings still work, and a DELETE either commits or says the storage is full."""
    disk = floorless_disk
    chunked = disk.fill(OBJECT, "big")
    assert_storage_full(chunked.refusal, "no space left")
    assert_absent(disk, chunked.refused_key)
    assert disk.staging() == []
    inline = disk.fill(INLINE, "small")
    assert_storage_full(inline.refusal, "no space left")
    assert_absent(disk, inline.refused_key)
    assert disk.free() < 2 * INLINE + 64 * KiB
    stored = {**chunked.stored, **inline.stored}
    read_back(disk, stored)
    for key in list(stored)[:3]:
        try:
            disk.s3.delete_object(Bucket=BUCKET, Key=key)
            del stored[key]
        except ClientError as e:
            assert_storage_full(e, "no space left")
    read_back(disk, stored)


def fill_from_outside(disk: TinyDisk) -> Path:
    """Something else fills the disk to its last byte: a file beside pyblob's, written until ENOSPC."""
    filler = disk.seen / "filler"
    with open(filler, "wb", buffering=0) as f:
        for block in (64 * KiB, 4 * KiB, 512):
            try:
                while True:
                    f.write(bytes(block))
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
    return filler


def big_cors(n: int) -> dict[str, object]:
    """A CORS configuration of about 30 KiB: metadata that is no upload (the floor lets it in)."""
    origins = [f"https://{n}-{i}-" + "o" * 250 + ".example" for i in range(100)]
    return {"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": [origin]} for origin in origins]}


def test_a_disk_filled_by_something_else_still_takes_metadata_deletes_and_gc(disk: TinyDisk) -> None:
    """The floor cannot stop other writers. With the disk at 0 bytes free, the first metadata commit that
    finds no room frees the reserve file and commits in its room: bucket settings, a new short link and
    its download, DELETEs and `pyblob gc` all commit (uploads stay refused). Once the other writer's
    file is gone, uploads resume and the reserve is back."""
    reserve = disk.seen / "reserve"
    assert reserve.stat().st_blocks * 512 >= MiB
    buckets = [f"settings-{n}" for n in range(8)]
    for name in buckets:
        disk.s3.create_bucket(Bucket=name)
    filled = disk.fill(OBJECT, "a")
    assert_storage_full(filled.refusal, "kept free")
    filler = fill_from_outside(disk)
    assert disk.free() == 0

    for n, name in enumerate(buckets):  # more new metadata pages than LMDB has free ones
        disk.s3.put_bucket_cors(Bucket=name, CORSConfiguration=big_cors(n))
    assert not reserve.exists(), "the metadata found room without the reserve: nothing was tested"
    with pytest.raises(ClientError) as refused:
        disk.s3.put_object(Bucket=BUCKET, Key="no room", Body=os.urandom(INLINE))
    assert_storage_full(refused.value, "kept free")
    linked = list(filled.stored)[-1]
    link = create_link(disk, linked)
    download = httpx.get(f"{disk.server.url}/s/{link}", timeout=30)
    assert download.status_code == 200, download.text
    assert hashlib.sha256(download.content).hexdigest() == filled.stored[linked]
    for key in list(filled.stored)[:5]:
        assert disk.s3.delete_object(Bucket=BUCKET, Key=key)["ResponseMetadata"]["HTTPStatusCode"] == 204
        del filled.stored[key]
    read_back(disk, filled.stored)
    gc = disk.cli("gc")
    assert gc.returncode == 0, gc.stderr

    filler.unlink()
    after = disk.fill(OBJECT, "b")
    assert len(after.stored) >= 2  # about the room freed, less the reserve made again
    assert reserve.stat().st_blocks * 512 >= MiB
    assert_storage_full(after.refusal, "kept free")


# The LMDB map ------------------------------------------------------------------------------------------
MAP_START = 256 * KiB  # PYBLOB_LMDB_MAP_SIZE: a handful of objects' metadata


def put_inline_until_refused(s3: BaseClient, count: int) -> tuple[int, ClientError | None]:
    """Up to `count` small objects (metadata only); how many were stored, and the refusal if any."""
    for n in range(count):
        try:
            s3.put_object(Bucket=BUCKET, Key=f"meta-{n:04d}", Body=os.urandom(INLINE))
        except ClientError as e:
            return n, e
    return count, None


def test_the_metadata_map_grows_on_its_own(start_server: StartServer, data_dir: Path) -> None:
    """From a map of MAP_START bytes, two workers take 600 small objects from 8 clients at once, several
    times the map's size in metadata: the map grows (in whichever worker fills it, while the others'
    transactions wait; the other worker adopts the new size) and nothing is refused."""
    server = start_server("--workers", "2", env={**map_env(MAP_START, 0), "PYBLOB_MIN_FREE_BYTES": "0"})
    s3 = s3_client(server.url)
    s3.create_bucket(Bucket=BUCKET)

    def put(n: int) -> int:
        s3.put_object(Bucket=BUCKET, Key=f"meta-{n:04d}", Body=os.urandom(INLINE))
        return n

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(put, range(600))) == list(range(600))
    assert (data_dir / "meta" / "data.mdb").stat().st_size > 2 * MAP_START
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    assert sum(len(page.get("Contents", [])) for page in pages) == 600
    s3.close()


def test_a_full_metadata_map_answers_507_naming_the_map(start_server: StartServer) -> None:
    """Capped at twice MAP_START, the map fills: 507 StorageFull naming the metadata map, the refused key
    absent; reads, listings and deletes go on."""
    server = start_server(env=map_env(MAP_START, 2 * MAP_START))
    s3 = s3_client(server.url)
    s3.create_bucket(Bucket=BUCKET)
    stored, refusal = put_inline_until_refused(s3, 2000)
    assert_storage_full(refusal, "metadata map")
    assert stored > 10
    with pytest.raises(ClientError) as head:
        s3.head_object(Bucket=BUCKET, Key=f"meta-{stored:04d}")
    assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert len(s3.get_object(Bucket=BUCKET, Key="meta-0000")["Body"].read()) == INLINE
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    assert [item["Key"] for page in pages for item in page.get("Contents", [])] == [
        f"meta-{n:04d}" for n in range(stored)
    ]
    for n in range(3):
        assert s3.delete_object(Bucket=BUCKET, Key=f"meta-{n:04d}")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as gone:
        s3.head_object(Bucket=BUCKET, Key="meta-0000")
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    s3.close()


def map_env(start: int, cap: int) -> dict[str, str]:
    return {
        "PYBLOB_ADMIN_ACCESS_KEY": ADMIN["access_key"],
        "PYBLOB_ADMIN_SECRET_KEY": ADMIN["secret_key"],
        "PYBLOB_LMDB_MAP_SIZE": str(start),
        "PYBLOB_LMDB_MAP_MAX_SIZE": str(cap),
    }
