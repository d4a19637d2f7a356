"""A smoke test of a whole 3-node deployment (`scripts/cluster`): etcd, PostgreSQL under Patroni,
SeaweedFS with replication 001 and three pyblob nodes, on loopback. Objects written through one node
read back from every node, and still do after the PostgreSQL leader and then a volume server die.

Needs the Debian packages etcd-server, patroni and postgresql-15 (scripts/test installs them as root).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError
from processes import cluster_script as cluster
from processes import cluster_up, isolate_from_aws, user_s3_client

UP_TIMEOUT = 90.0
FAILOVER_TIMEOUT = 60.0
MIB = 1024 * 1024
pytestmark = pytest.mark.xdist_group("cluster")  # one deployment at a time (scripts/test)


@contextlib.contextmanager
def start_deployment(root: Path) -> Iterator[dict[str, Any]]:
    """`scripts/cluster up` in `root`, with no AWS_* of the machine: its JSON; `scripts/cluster down`
    at the end, always."""
    missing = [tool for tool in ("etcd", "patroni") if shutil.which(tool) is None]
    if missing:
        raise AssertionError(f"{', '.join(missing)} missing: scripts/test installs etcd-server and patroni")
    directory = root / "cluster"
    with pytest.MonkeyPatch.context() as mp:
        isolate_from_aws(mp, root)
        try:
            started = time.monotonic()
            up = cluster_up(directory, timeout=UP_TIMEOUT)
            assert up.returncode == 0, f"scripts/cluster up failed:\n{up.stderr[-6000:]}"
            info: dict[str, Any] = json.loads(up.stdout.strip().splitlines()[-1])
            print(f"cluster up in {time.monotonic() - started:.1f}s")
            yield info
        finally:
            down = cluster("down", "--dir", str(directory), timeout=120)
            assert down.returncode == 0, f"scripts/cluster down failed:\n{down.stdout}\n{down.stderr}"


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A deployment of the test's own (the tests of this module kill its parts)."""
    with start_deployment(tmp_path) as info:
        yield info


def client(url: str, info: dict[str, Any]) -> BaseClient:
    return user_s3_client(url, {"access_key": info["access_key"], "secret_key": info["secret_key"]})


def quick_client(url: str, info: dict[str, Any]) -> BaseClient:
    """One attempt per call and short timeouts: for polling while the cluster fails over."""
    keys = {"access_key": info["access_key"], "secret_key": info["secret_key"]}
    return user_s3_client(url, keys, attempts=1, connect_timeout=3, read_timeout=10)


def read_back(clients: list[BaseClient], bucket: str, objects: dict[str, bytes]) -> None:
    for c in clients:
        for key, body in objects.items():
            got = c.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert got == body, f"{key} differs through {c.meta.endpoint_url}"


def test_three_nodes_survive_a_database_failover_and_a_lost_volume_server(deployment: dict[str, Any]) -> None:
    info = deployment
    clients = [client(url, info) for url in info["nodes"]]
    bucket = "smoke"
    clients[0].create_bucket(Bucket=bucket)

    small = os.urandom(3 * MIB)
    clients[0].put_object(Bucket=bucket, Key="small", Body=small)
    big = os.urandom(20 * MIB)
    upload = clients[0].create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    parts = []
    for number, start in enumerate(range(0, len(big), 5 * MIB), 1):
        via = clients[(number - 1) % len(clients)]  # parts through every node
        part = via.upload_part(
            Bucket=bucket, Key="big", UploadId=upload, PartNumber=number, Body=big[start : start + 5 * MIB]
        )
        parts.append({"PartNumber": number, "ETag": part["ETag"]})
    clients[2].complete_multipart_upload(Bucket=bucket, Key="big", UploadId=upload, MultipartUpload={"Parts": parts})
    objects = {"small": small, "big": big}
    read_back(clients, bucket, objects)

    # The PostgreSQL leader dies (Patroni and its postgres): a write through node 2 works again once
    # the synchronous standby took over.
    killed = cluster("kill", "pg-leader", "--dir", info["dir"])
    assert killed.returncode == 0, killed.stderr
    started = time.monotonic()
    poller = quick_client(info["nodes"][1], info)
    last: Exception | None = None
    while True:
        try:
            poller.put_object(Bucket=bucket, Key="after-failover", Body=b"written after the failover")
            break
        except (BotoCoreError, ClientError) as e:
            last = e
        assert time.monotonic() - started < FAILOVER_TIMEOUT, f"no write in {FAILOVER_TIMEOUT}s: {last!r}"
        time.sleep(0.5)
    print(f"writes again {time.monotonic() - started:.1f}s after killing the PostgreSQL leader")
    objects["after-failover"] = b"written after the failover"
    read_back(clients, bucket, objects)

    # A volume server dies: every volume has a second copy elsewhere (replication 001).
    killed = cluster("kill", "swfs-volume-1", "--dir", info["dir"])
    assert killed.returncode == 0, killed.stderr
    read_back(clients, bucket, {"big": big})

    # A pyblob node dies: the front (nginx, each request to the next node) passes over it, and a client
    # with no retries of its own sees no error while every node's turn comes round twice.
    killed = cluster("kill", "pyblob-1", "--dir", info["dir"])
    assert killed.returncode == 0, killed.stderr
    front = quick_client(info["front"], info)
    for _ in range(2 * len(info["nodes"])):
        assert front.get_object(Bucket=bucket, Key="small")["Body"].read() == small


# A mixed workload while kill -9 hits one component after another ---------------------------------
class Workload:
    """PUT, overwrite, copy and DELETE through the live nodes in turn, from one thread, keeping what
    each key must hold: after an acknowledged request, exactly its outcome; after a failed one
    (outcome unknown), either the old or the new content."""

    def __init__(self, info: dict[str, Any], bucket: str):
        self.clients = {url: quick_client(url, info) for url in info["nodes"]}
        self.dead: set[str] = set()
        self.bucket = bucket
        self.sure: dict[str, bytes | None] = {}  # key -> its content (None: deleted)
        self.unsure: dict[str, set[bytes | None]] = {}
        self.acknowledged = self.failed = 0
        self.stop = threading.Event()
        self.rng = random.Random(7)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            live = [url for url in self.clients if url not in self.dead]
            client = self.clients[live[n % len(live)]]
            key, new, op = self.next_op(n)
            old = self.sure.get(key)
            try:
                op(client, key, new)
            except (BotoCoreError, ClientError):
                self.failed += 1
                self.unsure[key] = self.unsure.get(key, {old}) | {old, new}
                self.sure.pop(key, None)
                time.sleep(0.2)
                continue
            self.acknowledged += 1
            self.sure[key] = new
            self.unsure.pop(key, None)

    def next_op(self, n: int) -> tuple[str, bytes | None, Callable[[BaseClient, str, bytes | None], None]]:
        known = [k for k, v in self.sure.items() if v is not None]
        choice = self.rng.random()
        if known and choice < 0.15:
            return self.rng.choice(known), None, lambda c, k, _: c.delete_object(Bucket=self.bucket, Key=k)
        if known and choice < 0.3:
            source = self.rng.choice(known)
            body = self.sure[source]

            def copy(c: BaseClient, k: str, _: bytes | None) -> None:
                c.copy_object(Bucket=self.bucket, Key=k, CopySource={"Bucket": self.bucket, "Key": source})

            return f"copy{n}", body, copy
        key = self.rng.choice(known) if known and choice < 0.5 else f"k{n}"  # overwrite, or a new key
        body = os.urandom(self.rng.choice((100, 5000, 300_000, 1_200_000)))
        return key, body, lambda c, k, b: c.put_object(Bucket=self.bucket, Key=k, Body=b)


def test_acknowledged_writes_survive_kill_9_of_each_component(deployment: dict[str, Any]) -> None:
    info = deployment
    bucket = "mixed"
    client(info["nodes"][0], info).create_bucket(Bucket=bucket)
    load = Workload(info, bucket)
    worker = threading.Thread(target=load.run)
    worker.start()
    try:
        for role in ("pg-leader", "swfs-volume-2", "swfs-master-leader", "pyblob-1"):
            time.sleep(4)
            before = load.acknowledged
            killed = cluster("kill", role, "--dir", info["dir"])
            assert killed.returncode == 0, f"kill {role}: {killed.stderr}"
            if role == "pyblob-1":
                load.dead.add(info["nodes"][0])
            deadline = time.monotonic() + FAILOVER_TIMEOUT
            while load.acknowledged < before + 5:  # the workload goes on after each death
                assert time.monotonic() < deadline, f"no progress {FAILOVER_TIMEOUT}s after killing {role}"
                time.sleep(0.5)
    finally:
        load.stop.set()
        worker.join(60)
    print(f"{load.acknowledged} requests acknowledged, {load.failed} failed (outcome unknown) under the kills")
    assert load.acknowledged > 50, (load.acknowledged, load.failed)
    survivors = [client(url, info) for url in info["nodes"][1:]]
    for c in survivors:
        for key, body in load.sure.items():
            assert stored(c, bucket, key) == digest(body), key
        for key, possible in load.unsure.items():
            assert stored(c, bucket, key) in {digest(b) for b in possible}, key  # old or new, never a mix
    checked = fsck_of(info)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]


def digest(body: bytes | None) -> str | None:
    return None if body is None else hashlib.sha256(body).hexdigest()


def stored(c: BaseClient, bucket: str, key: str) -> str | None:
    try:
        return hashlib.sha256(c.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()
    except ClientError as e:
        if e.response["Error"]["Code"] == "NoSuchKey":
            return None
        raise


def fsck_of(info: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`pyblob fsck` over the cluster's database and chunk store, with a node's settings."""
    state = json.loads((Path(info["dir"]) / "state.json").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYBLOB_"))}
    env |= {k: v for k, v in state["components"]["pyblob-2"]["env"].items() if k.startswith("PYBLOB_")}
    return subprocess.run(
        [sys.executable, "-m", "pyblob", "fsck", "--data-dir", str(Path(info["dir"]) / "fsck-data")],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
