"""`pyblob serve` with its metadata in a real PostgreSQL (PYBLOB_METADATA_URL): two server processes
on one database (and one chunk dir) answer for each other's writes, a multipart upload's parts go
to both, a server killed with SIGKILL loses nothing it acknowledged, and the admin commands (fsck,
gc, stats, user add) work on the same database; `pyblob snapshot` points at pg_dump instead."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
from pathlib import Path

import httpx
import pytest
from processes import RunPyblob, StartServer, isolate_from_aws, user_s3_client

MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _no_machine_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


def test_two_servers_over_one_database_serve_each_others_writes(
    start_server: StartServer, run_pyblob: RunPyblob, pg_database: str
) -> None:
    env = {
        "PYBLOB_METADATA_URL": pg_database,
        "PYBLOB_ADMIN_ACCESS_KEY": "PGADMIN",
        "PYBLOB_ADMIN_SECRET_KEY": "pg/s+cret=",
    }
    one, two = start_server(env=env), start_server("--workers", "2", env=env)
    assert "These credentials are shown only this once" in one.stdout + two.stdout  # one admin, made once
    a, b = (user_s3_client(s.url, {"access_key": "PGADMIN", "secret_key": "pg/s+cret="}) for s in (one, two))

    a.create_bucket(Bucket="shared")
    assert [x["Name"] for x in b.list_buckets()["Buckets"]] == ["shared"]
    body = os.urandom(3 * MiB + 17)
    a.put_object(Bucket="shared", Key="one.bin", Body=body, Metadata={"from": "one"})
    got = b.get_object(Bucket="shared", Key="one.bin")
    assert got["Body"].read() == body and got["Metadata"] == {"from": "one"}

    # A multipart upload begun on one server, its parts sent to both, completed on the other.
    upload = a.create_multipart_upload(Bucket="shared", Key="big.bin")["UploadId"]
    parts, whole = [], b""
    for number, client in enumerate((a, b, a), 1):
        piece = os.urandom(5 * MiB if number < 3 else MiB)
        whole += piece
        etag = client.upload_part(Bucket="shared", Key="big.bin", UploadId=upload, PartNumber=number, Body=piece)
        parts.append({"PartNumber": number, "ETag": etag["ETag"]})
    b.complete_multipart_upload(Bucket="shared", Key="big.bin", UploadId=upload, MultipartUpload={"Parts": parts})
    assert (
        hashlib.sha256(a.get_object(Bucket="shared", Key="big.bin")["Body"].read()).digest()
        == hashlib.sha256(whole).digest()
    )

    # Versions written on both, listed the same on both.
    b.put_bucket_versioning(Bucket="shared", VersioningConfiguration={"Status": "Enabled"})
    for n, client in enumerate((a, b, a)):
        client.put_object(Bucket="shared", Key="doc.txt", Body=f"v{n}".encode())
    listed = [v["VersionId"] for v in a.list_object_versions(Bucket="shared", Prefix="doc.txt")["Versions"]]
    assert len(listed) == 3
    assert listed == [v["VersionId"] for v in b.list_object_versions(Bucket="shared", Prefix="doc.txt")["Versions"]]

    # A short link made through one server answers on the other.
    token = re.search(r"API token:\s+(\S+)", one.stdout + two.stdout)
    assert token
    made = httpx.post(
        f"{one.url}/upload", headers={"authorization": f"Bearer {token.group(1)}"}, files={"file": ("hi.txt", b"hi")}
    )
    assert made.status_code == 200, made.text
    link = made.json()["file_id"]
    assert httpx.get(f"{two.url}/s/{link}").content == b"hi"

    # SIGKILL: nothing acknowledged is lost.
    os.killpg(one.proc.pid, signal.SIGKILL)
    one.proc.wait(10)
    one.stopped = True
    assert b.get_object(Bucket="shared", Key="one.bin")["Body"].read() == body
    two.stop()

    fsck = run_pyblob("fsck", env={"PYBLOB_METADATA_URL": pg_database})
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    gc = run_pyblob("gc", env={"PYBLOB_METADATA_URL": pg_database})
    assert gc.returncode == 0, gc.stderr
    stats = json.loads(run_pyblob("stats", "--json", env={"PYBLOB_METADATA_URL": pg_database}).stdout)
    assert stats["objects"] == 2 + 3 + 1 and stats["users"] == 1


def test_snapshot_points_at_pg_dump(run_pyblob: RunPyblob, pg_database: str, tmp_path: Path) -> None:
    made = run_pyblob("user", "add", "alice", env={"PYBLOB_METADATA_URL": pg_database})
    assert made.returncode == 0, made.stderr
    snap = run_pyblob("snapshot", str(tmp_path / "snap"), env={"PYBLOB_METADATA_URL": pg_database})
    assert snap.returncode == 2 and "pg_dump" in snap.stderr
    listed = run_pyblob("user", "list", "--json", env={"PYBLOB_METADATA_URL": pg_database})
    assert [u["user"] for u in json.loads(listed.stdout)] == ["alice"]


def test_a_metadata_url_of_no_known_kind_is_refused(run_pyblob: RunPyblob) -> None:
    bad = run_pyblob("user", "list", env={"PYBLOB_METADATA_URL": "mysql://db/pyblob"})
    assert bad.returncode == 2 and "PYBLOB_METADATA_URL" in bad.stderr
