"""`pyblob migrate`: a data dir filled through a real server (LMDB, local chunks) moved into a real
PostgreSQL and a real SeaweedFS; a server over the copy, with a data dir of its own, serves every
object, version and short link to boto3 as the original did; a second run copies nothing; a
database holding another store is refused. (Resuming a run that stopped part way:
tests/objstore/test_objstore_migration.py.)"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from processes import RunPyblob, StartServer, isolate_from_aws, user_s3_client

MiB = 1024 * 1024
ADMIN = {"access_key": "MIGRATEADMIN", "secret_key": "migr/ate+secret="}
ADMIN_ENV = {"PYBLOB_ADMIN_ACCESS_KEY": ADMIN["access_key"], "PYBLOB_ADMIN_SECRET_KEY": ADMIN["secret_key"]}


@pytest.fixture(autouse=True)
def _no_machine_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


def fill(url: str, token: str) -> dict[str, Any]:
    """Objects of every kind through boto3 and a short link through the REST API; what to expect back."""
    s3 = user_s3_client(url, ADMIN)
    s3.create_bucket(Bucket="old")
    bodies = {"tiny.txt": b"tiny", "photo.jpg": os.urandom(3 * MiB), "copy.jpg": b""}
    for key, body in bodies.items():
        if body:
            s3.put_object(Bucket="old", Key=key, Body=body, Metadata={"k": key})
    s3.copy_object(Bucket="old", Key="copy.jpg", CopySource={"Bucket": "old", "Key": "photo.jpg"})
    bodies["copy.jpg"] = bodies["photo.jpg"]
    upload = s3.create_multipart_upload(Bucket="old", Key="big.bin")["UploadId"]
    pieces = [os.urandom(5 * MiB), os.urandom(MiB)]
    parts = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(Bucket="old", Key="big.bin", UploadId=upload, PartNumber=n, Body=p)["ETag"],
        }
        for n, p in enumerate(pieces, 1)
    ]
    s3.complete_multipart_upload(Bucket="old", Key="big.bin", UploadId=upload, MultipartUpload={"Parts": parts})
    bodies["big.bin"] = b"".join(pieces)
    s3.put_bucket_versioning(Bucket="old", VersioningConfiguration={"Status": "Enabled"})
    for n in range(3):
        s3.put_object(Bucket="old", Key="doc.txt", Body=f"v{n}".encode())
    s3.delete_object(Bucket="old", Key="doc.txt")
    made = httpx.post(
        f"{url}/upload", headers={"authorization": f"Bearer {token}"}, files={"file": ("a.bin", b"linked bytes")}
    )
    assert made.status_code == 200, made.text
    return {
        "bodies": bodies,
        "etags": {k: s3.head_object(Bucket="old", Key=k)["ETag"] for k in bodies},
        "versions": s3.list_object_versions(Bucket="old", Prefix="doc.txt"),
        "link": made.json()["file_id"],
    }


def test_migrate_moves_a_data_dir_into_postgresql_and_seaweedfs(
    start_server: StartServer, run_pyblob: RunPyblob, pg_database: str, swfs_server: Any, tmp_path: Path
) -> None:
    server = start_server(env=ADMIN_ENV)
    token = re.search(r"API token:\s+(\S+)", server.stdout)
    assert token
    expected = fill(server.url, token.group(1))
    server.stop()

    target = {"PYBLOB_METADATA_URL": pg_database, **swfs_server.env(swfs_server.chunk_settings())}
    moved = run_pyblob("migrate", env=target)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert re.search(r"chunks copied:\s+[1-9]", moved.stdout) and "fsck of the copy: 0 problems" in moved.stdout
    again = run_pyblob("migrate", "--jobs", "2", env=target)  # done already: the copy is left alone
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing copied" in again.stdout and re.search(r"rows copied:\s+0\b", again.stdout)

    # A server over the copy only: a fresh data dir, nothing local of the original.
    copy = start_server("--data-dir", str(tmp_path / "elsewhere"), env={**target, **ADMIN_ENV})
    s3 = user_s3_client(copy.url, ADMIN)
    for key, body in expected["bodies"].items():
        got = s3.get_object(Bucket="old", Key=key)
        assert got["Body"].read() == body and got["ETag"] == expected["etags"][key], key
    assert s3.head_object(Bucket="old", Key="photo.jpg")["Metadata"] == {"k": "photo.jpg"}
    versions = s3.list_object_versions(Bucket="old", Prefix="doc.txt")
    for kind in ("Versions", "DeleteMarkers"):
        assert [v["VersionId"] for v in versions[kind]] == [v["VersionId"] for v in expected["versions"][kind]]
    assert httpx.get(f"{copy.url}/s/{expected['link']}").content == b"linked bytes"
    s3.create_bucket(Bucket="new")  # the sequences came along: new ids do not collide with old ones
    s3.put_object(Bucket="new", Key="n", Body=b"after")
    assert s3.get_object(Bucket="new", Key="n")["Body"].read() == b"after"
    assert {"new", "old"} <= {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_migrate_refuses_a_database_holding_another_store(
    run_pyblob: RunPyblob, pg_database: str, tmp_path: Path
) -> None:
    assert run_pyblob("user", "add", "alice", env={"PYBLOB_METADATA_URL": pg_database}).returncode == 0
    assert run_pyblob("user", "add", "bob").returncode == 0  # the data dir to move
    refused = run_pyblob("migrate", "--to-metadata", pg_database, "--to-chunks", "local")
    assert refused.returncode == 2 and "already holds a store" in refused.stderr


def test_migrate_needs_a_postgresql_target(run_pyblob: RunPyblob) -> None:
    assert run_pyblob("user", "add", "bob").returncode == 0
    refused = run_pyblob("migrate")
    assert refused.returncode == 2 and "--to-metadata" in refused.stderr
