"""A backup taken while the server writes: `pyblob snapshot` of the metadata, then a copy of the chunks
(README, "Backup and restore"), both while boto3 clients keep uploading. Restored into a fresh data
dir, the store must pass fsck and serve every object acknowledged before the snapshot began, byte for
byte; objects written later may be there or not, never half."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from processes import RunPyblob, StartServer, isolate_from_aws, user_s3_client

BUCKET = "backup"


@pytest.fixture(autouse=True)
def _no_machine_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


def test_a_snapshot_under_write_load_restores_every_acknowledged_object(
    start_server: StartServer, run_pyblob: RunPyblob, data_dir: Path, tmp_path: Path
) -> None:
    made = run_pyblob("user", "add", "alice", "--json")
    assert made.returncode == 0, made.stderr
    creds = json.loads(made.stdout)
    server = start_server()
    user_s3_client(server.url, creds).create_bucket(Bucket=BUCKET)
    acknowledged: dict[str, tuple[float, str]] = {}  # key -> (when acknowledged, sha256)
    lock, stop = threading.Lock(), threading.Event()

    def write(worker: int) -> None:
        s3 = user_s3_client(server.url, creds)
        n = 0
        while not stop.is_set():
            body = os.urandom((1, 3000, 200_000, 1_500_000)[n % 4])  # inline and chunked
            key = f"w{worker}/{n}"
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            with lock:
                acknowledged[key] = (time.monotonic(), hashlib.sha256(body).hexdigest())
            n += 1

    writers = [threading.Thread(target=write, args=(i,)) for i in range(3)]
    for w in writers:
        w.start()
    time.sleep(1.0)
    began = time.monotonic()
    snapshot = run_pyblob("snapshot", str(tmp_path / "backup" / "meta"))
    assert snapshot.returncode == 0, snapshot.stderr
    shutil.copytree(data_dir / "chunks", tmp_path / "backup" / "chunks")  # after the snapshot, as documented
    time.sleep(0.5)  # writes go on after the copy too
    stop.set()
    for w in writers:
        w.join(60)
    server.stop()
    with lock:
        before = {k: digest for k, (when, digest) in acknowledged.items() if when < began}
    assert len(before) >= 6 and len(acknowledged) > len(before)  # writes before, during and after

    restored = tmp_path / "restored"
    restored.mkdir(mode=0o700)
    shutil.copytree(tmp_path / "backup" / "meta", restored / "meta")
    shutil.copytree(tmp_path / "backup" / "chunks", restored / "chunks")
    fsck = run_pyblob("fsck", "--data-dir", str(restored), with_data_dir=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert "0 problems found" in fsck.stdout

    back = start_server("--data-dir", str(restored))
    s3 = user_s3_client(back.url, creds)
    for key, digest in sorted(before.items()):
        assert hashlib.sha256(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).hexdigest() == digest, key
    listed = {
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for o in page.get("Contents", [])
    }
    for key in listed - set(before):  # written during the snapshot: there whole, or not there at all
        assert hashlib.sha256(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).hexdigest() == acknowledged[key][1]
    gc = run_pyblob("gc", "--data-dir", str(restored), with_data_dir=False)
    assert gc.returncode == 0, gc.stderr
