"""The rig of the fault-injection tests (test_fault_injection.py, test_read_faults.py): one `pyblob serve`
run through `tests/faultrun.py` on one data dir, the control file of its faults, and what was
acknowledged so far; a case, and the refusal every failed request must be."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from botocore.exceptions import ClientError
from click.testing import CliRunner, Result
from faults import CONTROL_ENV, Control, Fault
from ports import free_port
from processes import Server, assert_no_secret_logged, clean_env, serve_argv, user_s3_client, wait_healthy

from pyblob.cli import cli as pyblob_cli

KiB = 1024
TESTS = Path(__file__).resolve().parent.parent
FAULTRUN = TESTS / "faultrun.py"
ADMIN = {"access_key": "FAULTSADMIN", "secret_key": "faults-admin-secret"}
BUCKET, EXPIRING = "faults", "expiring"  # EXPIRING's rule expires everything under "old/" at once
CHUNKED, INLINE = 300 * KiB, 1 * KiB
PERSISTENT = 1_000_000  # a full disk stays full until disarmed; an EIO or a crash comes once
REFUSALS = {
    "ENOSPC": (507, "StorageFull", "no space left"),
    "EDQUOT": (507, "StorageFull", "disk quota"),
    "EIO": (503, "StorageIOError", "i/o error|input/output error"),
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Rig:
    """One server on one data dir, the control file of its faults, what was acknowledged so far."""

    root: Path
    server: Server | None = None
    servers: list[Server] = field(default_factory=list)  # every start, for the log check at the end
    s3: Any = None
    token: str = ""
    acked: dict[tuple[str, str], str] = field(default_factory=dict)  # (bucket, key) -> sha256
    etags: dict[str, str] = field(default_factory=dict)  # BUCKET's acknowledged keys -> their ETag
    starts: int = 0

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def control(self) -> Control:
        return Control(self.root / "faults.json")

    def env(self, **extra: str) -> dict[str, str]:
        settings = {
            "PYBLOB_ADMIN_ACCESS_KEY": ADMIN["access_key"],
            "PYBLOB_ADMIN_SECRET_KEY": ADMIN["secret_key"],
            "PYBLOB_LIFECYCLE_INTERVAL_SECONDS": "0",
            CONTROL_ENV: str(self.control.path),
            **extra,
        }
        return {k: v for k, v in clean_env(settings).items() if not k.startswith("AWS_")}

    def start(self) -> None:
        port, log = free_port(), self.root / f"server-{self.starts}"
        self.starts += 1
        log.mkdir()
        argv = [sys.executable, str(FAULTRUN), *serve_argv(port, self.data)[3:], "--workers", "1"]
        with open(log / "stdout", "wb") as out, open(log / "stderr", "wb") as err:
            proc = subprocess.Popen(
                argv,
                cwd=self.root,
                env=self.env(),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.server = Server(proc, f"http://127.0.0.1:{port}", log)
        self.servers.append(self.server)
        wait_healthy(self.server)
        found = re.search(r"API token:\s+(\S+)", self.server.stdout)
        self.token = found.group(1) if found else self.token
        self.s3 = user_s3_client(self.server.url, ADMIN, attempts=1, read_timeout=20)

    def restart(self) -> None:
        assert self.server is not None
        self.server.proc.wait(10)  # killed by the fault
        self.start()

    def faulty(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`pyblob ARGS` on the data dir in a process of its own with the injector, no GC grace period."""
        argv = [sys.executable, str(FAULTRUN), *args, "--data-dir", str(self.data)]
        env = self.env(PYBLOB_GC_GRACE_SECONDS="0")
        return subprocess.run(
            argv, cwd=self.root, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )

    def cli(self, *args: str) -> Result:
        """`pyblob ARGS` on the data dir, no GC grace period: the same command line, run in this process
        (a process start costs a second or two on a loaded CI machine; the matrix runs 100 of these).
        It runs in the rig's directory, as the processes do, so no `.env` of the checkout applies."""
        env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("PYBLOB_")}
        env["PYBLOB_GC_GRACE_SECONDS"] = "0"
        mask, cwd = os.umask(0o077), os.getcwd()  # the command sets the umask: this process's is put back
        os.umask(mask)
        os.chdir(self.root)
        try:
            return CliRunner().invoke(pyblob_cli, [*args, "--data-dir", str(self.data)], env=env)
        finally:
            os.umask(mask)
            os.chdir(cwd)

    def put(self, bucket: str, key: str, body: bytes) -> None:
        etag = self.s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]
        self.acknowledged(bucket, key, body, etag)

    def acknowledged(self, bucket: str, key: str, body: bytes, etag: str) -> None:
        self.acked[(bucket, key)] = sha(body)
        if bucket == BUCKET:
            self.etags[key] = etag

    def forget(self, bucket: str, key: str) -> None:
        del self.acked[(bucket, key)]
        self.etags.pop(key, None)

    def read(self, bucket: str, key: str) -> str | None:
        """The sha256 of the key's bytes, None if absent."""
        try:
            return sha(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except ClientError as e:
            assert e.response["Error"]["Code"] == "NoSuchKey", e.response
            return None

    def files(self) -> tuple[set[str], list[str]]:
        """The chunk files and the staging dirs."""
        chunks = {p.name for p in (self.data / "chunks").rglob("*") if p.is_file()}
        return chunks, sorted(os.listdir(self.data / "tmp"))

    def check_acknowledged(self, *keys: str, full: bool = False) -> None:
        """The listing shows exactly the acknowledged objects with their ETags; `keys` (or, when `full`,
        every acknowledged object) read back byte for byte. The bytes of the others are fsck's to check:
        it re-hashes every chunk an object references."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        listed = {item["Key"]: item["ETag"] for page in pages for item in page.get("Contents", [])}
        assert listed == self.etags
        for (bucket, key), digest in self.acked.items():
            if full or key in keys:
                assert self.read(bucket, key) == digest, f"acknowledged {bucket}/{key} lost or changed"

    def rest(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A REST API call with the admin's token."""
        assert self.server is not None
        headers = {"authorization": f"Bearer {self.token}"}
        return httpx.request(method, f"{self.server.url}{path}", headers=headers, timeout=20, **kwargs)

    def fsck_clean(self) -> None:
        checked = self.cli("fsck")
        assert checked.exit_code == 0, checked.output


def serve(rig: Rig) -> Iterator[Rig]:
    try:
        rig.start()
        rig.s3.create_bucket(Bucket=BUCKET)
        rig.s3.create_bucket(Bucket=EXPIRING)
        rule = {"ID": "all-old", "Filter": {"Prefix": "old/"}, "Status": "Enabled"}
        rule["Expiration"] = {"Date": datetime(2020, 1, 1, tzinfo=UTC)}
        rig.s3.put_bucket_lifecycle_configuration(Bucket=EXPIRING, LifecycleConfiguration={"Rules": [rule]})
        yield rig
        rig.check_acknowledged(full=True)
    finally:
        for server in rig.servers:
            server.stop()
    assert_no_secret_logged(rig.servers, {ADMIN["secret_key"], rig.token})


@dataclass
class Case:
    op: str
    step: str
    fault: str
    expected: str
    key: str

    @property
    def tag(self) -> str:
        """Names the arming in the fired log."""
        return self.key

    def arm(self, rig: Rig, path: str, nth: int = 1, during: str = "", command: str = "serve") -> None:
        times = PERSISTENT if self.fault in ("ENOSPC", "EDQUOT") else 1
        fault = Fault(self.step, self.fault, path, nth, times, during, command, self.tag)
        rig.control.arm(fault)


class RestRefusal(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(response.text)
        self.response = response


def assert_refused(error: BaseException, fault: str) -> None:
    status, code, words = REFUSALS[fault]
    if isinstance(error, RestRefusal):  # the REST API's JSON error: {"detail": ..., "request_id": ...}
        body = error.response.json()
        assert error.response.status_code == status, body
        assert re.search(words, body["detail"].lower()) and body["request_id"], body
        return
    assert isinstance(error, ClientError), repr(error)
    response = error.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status, response
    assert response["Error"]["Code"] == code, response
    assert re.search(words, response["Error"]["Message"].lower()), response
    assert response["ResponseMetadata"].get("RequestId"), response
