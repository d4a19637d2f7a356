"""`pyblob serve` with its chunks in a real SeaweedFS (PYBLOB_CHUNK_STORE=s3://...) and its metadata in
a real PostgreSQL: two servers with data dirs of their own, so nothing they share is local. boto3's
own multipart upload on one is read back on the other; GC removes the chunk objects of deleted
content; fsck re-hashes every chunk over S3; a chunk store that cannot be reached is a clear error."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from ports import free_port
from processes import RunPyblob, StartServer, isolate_from_aws, user_s3_client

MiB = 1024 * 1024
ADMIN = {"access_key": "CHUNKADMIN", "secret_key": "chunk/s3cret="}


@pytest.fixture(autouse=True)
def _no_machine_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


def chunk_keys(swfs_server: Any, prefix: str) -> set[str]:
    pages = swfs_server.client().get_paginator("list_objects_v2").paginate(Bucket="pyblob-chunks", Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def test_two_servers_share_chunks_in_seaweedfs(
    start_server: StartServer, run_pyblob: RunPyblob, pg_database: str, swfs_server: Any, tmp_path: Path
) -> None:
    chunks = swfs_server.chunk_settings()
    prefix = chunks.url.split("/", 3)[3] + "/"
    env = {"PYBLOB_METADATA_URL": pg_database, **swfs_server.env(chunks)}
    env |= {"PYBLOB_ADMIN_ACCESS_KEY": ADMIN["access_key"], "PYBLOB_ADMIN_SECRET_KEY": ADMIN["secret_key"]}
    one = start_server(env=env)
    two = start_server("--data-dir", str(tmp_path / "second"), env=env)
    a, b = user_s3_client(one.url, ADMIN), user_s3_client(two.url, ADMIN)
    a.create_bucket(Bucket="media")

    # boto3's managed upload: multipart above 8 MiB, parts in parallel, checksums by default.
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(21 * MiB + 5))
    a.upload_file(str(big), "media", "big.bin", Config=TransferConfig(multipart_chunksize=8 * MiB))
    fetched = tmp_path / "fetched.bin"
    b.download_file("media", "big.bin", str(fetched))
    assert hashlib.sha256(fetched.read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()
    ranged = b.get_object(Bucket="media", Key="big.bin", Range="bytes=9000000-9000099")["Body"].read()
    assert ranged == big.read_bytes()[9_000_000:9_000_100]
    presigned = b.generate_presigned_url("get_object", Params={"Bucket": "media", "Key": "big.bin"})
    assert len(httpx.get(presigned).content) == 21 * MiB + 5

    # The chunks are objects in SeaweedFS under the prefix, and in neither data dir.
    stored = chunk_keys(swfs_server, prefix)
    stored.remove(prefix + "pyblob-store-id")  # the claim of the store both servers are
    assert len(stored) >= 21 * MiB // (2 * MiB)
    assert all(re.fullmatch(re.escape(prefix) + r"([0-9a-f]{2})/([0-9a-f]{2})/\1\2[0-9a-f]{60}", k) for k in stored)
    local = [p for d in (tmp_path / "data", tmp_path / "second") for p in (d / "chunks").rglob("*") if p.is_file()]
    assert local == []

    # A short link uploaded through one server streams, with Range, from the other.
    token = re.search(r"API token:\s+(\S+)", one.stdout + two.stdout)
    assert token
    video = os.urandom(3 * MiB)
    made = httpx.post(
        f"{two.url}/upload",
        headers={"authorization": f"Bearer {token.group(1)}"},
        files={"file": ("clip.mp4", video, "video/mp4")},
    )
    assert made.status_code == 200, made.text
    got = httpx.get(f"{one.url}/s/{made.json()['file_id']}", headers={"range": "bytes=1000-1999"})
    assert got.status_code == 206 and got.content == video[1000:2000]

    # Deleted content: GC (grace 0) removes its chunk objects; fsck re-hashes what is left.
    a.delete_object(Bucket="media", Key="big.bin")
    gc = run_pyblob("gc", env={**env, "PYBLOB_GC_GRACE_SECONDS": "0"})
    assert gc.returncode == 0, gc.stderr
    removed = re.search(r"chunks removed:?\s+(\d+)", gc.stdout)
    assert removed and int(removed.group(1)) >= len(stored), gc.stdout
    assert chunk_keys(swfs_server, prefix).isdisjoint(stored)
    fsck = run_pyblob("fsck", env=env)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert httpx.get(f"{one.url}/s/{made.json()['file_id']}").content == video


def test_a_chunk_store_that_cannot_be_reached_is_a_clear_error(run_pyblob: RunPyblob, swfs_server: Any) -> None:
    env = swfs_server.env(swfs_server.chunk_settings())
    env["PYBLOB_CHUNK_STORE_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    listed = run_pyblob("user", "list", env=env)
    assert listed.returncode == 2
    assert "ChunkStoreUnavailable" in listed.stderr and "127.0.0.1" in listed.stderr
    assert env["PYBLOB_CHUNK_STORE_SECRET_KEY"] not in listed.stderr


def test_chunk_store_settings_are_checked(run_pyblob: RunPyblob) -> None:
    bad = run_pyblob("user", "list", env={"PYBLOB_CHUNK_STORE": "ftp://somewhere"})
    assert bad.returncode == 2 and "PYBLOB_CHUNK_STORE" in bad.stderr
    half = run_pyblob("user", "list", env={"PYBLOB_CHUNK_STORE": "s3://chunks/p", "PYBLOB_CHUNK_STORE_ACCESS_KEY": "k"})
    assert half.returncode == 2 and "PYBLOB_CHUNK_STORE_SECRET_KEY" in half.stderr
