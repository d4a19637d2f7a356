"""A tus upload that moves between nodes: two `pyblob serve` processes with data dirs of their own,
sharing one PostgreSQL (metadata) and one SeaweedFS (chunks), as behind a load balancer or after a
failover. A real tus client (tuspy) creates the upload and sends the first half on one server, then
asks the other where to resume (HEAD) and sends the rest there; the link serves the file from both,
and fsck finds the store clean. Spec: https://tus.io/protocols/resumable-upload"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from processes import RunPyblob, StartServer, isolate_from_aws
from tusclient.client import TusClient

MiB = 1024 * 1024
TUS = {"tus-resumable": "1.0.0"}


@pytest.fixture(autouse=True)
def _no_machine_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


def test_a_tus_upload_begun_on_one_server_is_finished_on_the_other(
    start_server: StartServer, run_pyblob: RunPyblob, pg_database: str, swfs_server: Any, tmp_path: Path
) -> None:
    env = {"PYBLOB_METADATA_URL": pg_database, **swfs_server.env(swfs_server.chunk_settings())}
    one = start_server(env=env)
    two = start_server("--data-dir", str(tmp_path / "second"), env=env)
    token = re.search(r"API token:\s+(\S+)", one.stdout + two.stdout)
    assert token
    auth = {"authorization": f"Bearer {token.group(1)}"}
    data = os.urandom(3 * MiB + 12345)
    half = 3 * MiB // 2

    first = TusClient(f"{one.url}/upload_tus/", headers=auth).uploader(
        file_stream=io.BytesIO(data), chunk_size=MiB, metadata={"filename": "across.bin"}
    )
    first.upload(stop_at=half)  # creation, then PATCHes of 1 MiB until past the half
    sent = first.offset
    assert half <= sent < len(data)
    assert first.url is not None
    upload_id = first.url.rsplit("/", 1)[1]

    # The client comes back through the other server: a HEAD there, then PATCHes from that offset.
    second = TusClient(f"{two.url}/upload_tus/", headers=auth).uploader(
        file_stream=io.BytesIO(data), url=f"{two.url}/upload_tus/{upload_id}", chunk_size=MiB
    )
    assert second.offset == sent
    second.upload()
    assert second.offset == len(data) and second.request is not None
    link = second.request.response_headers["upload-link"]
    link_id = link.rsplit("/", 1)[1]

    for server in (one, two):
        got = httpx.get(f"{server.url}/s/{link_id}", timeout=30)
        assert got.status_code == 200, got.text
        assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
        ranged = httpx.get(f"{server.url}/s/{link_id}", headers={"range": f"bytes={half - 10}-{half + 9}"})
        assert ranged.status_code == 206 and ranged.content == data[half - 10 : half + 10]
    again = httpx.head(f"{one.url}/upload_tus/{upload_id}", headers={**TUS, **auth})
    assert again.status_code == 200 and again.headers["upload-offset"] == str(len(data))
    assert again.headers["upload-link"].endswith(f"/s/{link_id}")  # a client that lost the answer learns it

    gc = run_pyblob("gc", env={**env, "PYBLOB_GC_GRACE_SECONDS": "0"})
    assert gc.returncode == 0, gc.stderr
    fsck = run_pyblob("fsck", env=env)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert httpx.get(f"{two.url}/s/{link_id}", timeout=30).content == data
