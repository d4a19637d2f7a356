"""Races with exact outcomes across the nodes of a 3-node deployment (`scripts/cluster`): uploads against
one quota from three nodes, a `max_downloads` link fetched at once through three nodes, and the same
content written on one node while another deletes it and collects garbage with no grace period.

The engine's own version of the third race runs without a cluster in
tests/objstore/test_objstore_shared_gc.py; here it goes through HTTP, the nodes and `pyblob gc`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from processes import user_s3_client
from test_cluster import cluster, fsck_of, start_deployment

MIB = 1024 * 1024
pytestmark = pytest.mark.xdist_group("cluster")  # one deployment at a time (scripts/test)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One deployment for the races of this module (each uses its own user and bucket)."""
    with start_deployment(tmp_path_factory.mktemp("races")) as info:
        yield info


def pyblob_cli(info: dict[str, Any], *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """A pyblob command over the cluster's database and chunk store, with a node's settings and `settings`."""
    state = json.loads((Path(info["dir"]) / "state.json").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYBLOB_"))}
    env |= {k: v for k, v in state["components"]["pyblob-2"]["env"].items() if k.startswith("PYBLOB_")}
    env |= settings
    return subprocess.run(
        [sys.executable, "-m", "pyblob", *args, "--data-dir", str(Path(info["dir"]) / "cli-data")],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def new_user(info: dict[str, Any], name: str, *options: str) -> dict[str, str]:
    made: dict[str, str] = json.loads(pyblob_cli(info, "user", "add", name, *options, "--json").stdout)
    return made


def usage(info: dict[str, Any], name: str) -> tuple[int, int]:
    shown = json.loads(pyblob_cli(info, "user", "show", name, "--json").stdout)
    return int(shown["usage_bytes"]), int(shown["object_count"])


def clients_of(info: dict[str, Any], user: dict[str, str]) -> list[BaseClient]:
    return [user_s3_client(url, user) for url in info["nodes"]]


def error_code(e: ClientError) -> str:
    return str(e.response["Error"]["Code"])


def test_uploads_against_one_quota_from_three_nodes_never_pass_it(deployment: dict[str, Any]) -> None:
    """30 uploads of 1 MiB at once, 10 through each node, for a user with room for 10: none is kept
    past the quota, each refusal is QuotaExceeded, usage is exactly what was acknowledged, and the
    room left takes exactly the uploads that fit, then no more."""
    info = deployment
    user = new_user(info, "quota-user", "--quota", "10MiB")
    clients = clients_of(info, user)
    clients[0].create_bucket(Bucket="quota")
    start = threading.Barrier(30)

    def upload(n: int) -> str:
        body = os.urandom(MIB)  # distinct content: no upload is cheaper through dedup
        start.wait()
        try:
            clients[n % 3].put_object(Bucket="quota", Key=f"k{n}", Body=body)
            return "ok"
        except ClientError as e:
            return error_code(e)

    with ThreadPoolExecutor(30) as pool:
        outcomes = list(pool.map(upload, range(30)))
    kept = outcomes.count("ok")
    assert set(outcomes) <= {"ok", "QuotaExceeded"}, outcomes
    assert 1 <= kept <= 10, outcomes
    print(f"{kept} of 30 concurrent uploads kept for a quota of 10 (reservations refused the rest up front)")
    assert usage(info, "quota-user") == (kept * MIB, kept)
    for n in range(30, 30 + 10 - kept):  # whatever room is left fits exactly that many, through any node
        clients[n % 3].put_object(Bucket="quota", Key=f"k{n}", Body=os.urandom(MIB))
    with pytest.raises(ClientError) as refused:
        clients[1].put_object(Bucket="quota", Key="one-too-many", Body=os.urandom(MIB))
    assert error_code(refused.value) == "QuotaExceeded"
    assert usage(info, "quota-user") == (10 * MIB, 10)
    listed = {o["Key"] for c in clients for o in c.list_objects_v2(Bucket="quota")["Contents"]}
    assert len(listed) == 10


def test_a_link_with_max_downloads_serves_exactly_that_many_across_nodes(deployment: dict[str, Any]) -> None:
    """A link good for 5 downloads, fetched by 30 clients at once through three nodes: 5 get every
    byte, the other 25 are told it is gone, and the link counts 5."""
    info = deployment
    body = os.urandom(256 * 1024)
    auth = {"authorization": f"Bearer {info['token']}"}
    made = httpx.post(
        f"{info['nodes'][0]}/upload",
        params={"max_downloads": 5},
        files={"file": ("burn.bin", body)},
        headers=auth,
        timeout=30,
        trust_env=False,
    )
    assert made.status_code == 200, made.text
    path = urlsplit(made.json()["file_url"]).path
    start = threading.Barrier(30)

    def fetch(n: int) -> tuple[int, bytes]:
        with httpx.Client(timeout=30, trust_env=False) as http:
            start.wait()
            got = http.get(info["nodes"][n % 3] + path)
            return got.status_code, got.content

    with ThreadPoolExecutor(30) as pool:
        results = list(pool.map(fetch, range(30)))
    served = [content for status, content in results if status == 200]
    assert len(served) == 5, sorted(status for status, _ in results)
    assert all(content == body for content in served)
    assert sorted({status for status, _ in results}) == [200, 410]
    listed = httpx.get(f"{info['nodes'][2]}/list", headers=auth, timeout=30, trust_env=False)
    assert listed.status_code == 200, listed.text
    [shown] = [f for f in listed.json() if f["file_id"] == made.json()["file_id"]]
    assert shown["download_times"] == 5


def test_same_content_put_races_delete_and_gc_on_other_nodes(deployment: dict[str, Any]) -> None:
    """Node 1 writes one content under new keys while node 2 deletes each key as it appears and
    `pyblob gc` with no grace period runs over and over: every write is acknowledged whole (or refused with a
    503 to retry), every key still there reads back exactly, and fsck is clean at the end."""
    info = deployment
    user = new_user(info, "gc-user")
    writer, deleter, reader = clients_of(info, user)
    writer.create_bucket(Bucket="gc-race")
    content = os.urandom(3 * MIB)  # several chunks
    stop = threading.Event()
    written: list[str] = []
    refused = 0

    def write() -> None:
        nonlocal refused
        n = 0
        while not stop.is_set():
            key = f"k{n}"
            n += 1
            try:
                writer.put_object(Bucket="gc-race", Key=key, Body=content)
                written.append(key)
            except ClientError as e:
                assert error_code(e) in ("ServiceUnavailable", "SlowDown"), e.response
                refused += 1

    def delete() -> None:
        while not stop.is_set():
            for key in list(written[:-2]):  # the two newest stay, to read back
                deleter.delete_object(Bucket="gc-race", Key=key)
                written.remove(key)
            time.sleep(0.05)

    threads = [threading.Thread(target=write), threading.Thread(target=delete)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            pyblob_cli(info, "gc", PYBLOB_GC_GRACE_SECONDS="0")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert written, "nothing was written"
    for key in written:
        assert reader.get_object(Bucket="gc-race", Key=key)["Body"].read() == content, key
    pyblob_cli(info, "gc", PYBLOB_GC_GRACE_SECONDS="0")
    for key in written:
        assert reader.get_object(Bucket="gc-race", Key=key)["Body"].read() == content, key
    checked = fsck_of(info)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    print(f"{len(written)} keys kept, {refused} writes refused with 503 while gc ran")
    assert cluster("status", "--dir", info["dir"]).returncode == 0
