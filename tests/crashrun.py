"""A crash run: `pyblob serve --workers N` killed with SIGKILL, round after round, in the middle of
real-client traffic (boto3: PUTs small and chunked, overwrites, multipart uploads, copies, deletes),
then started again on the same data dir and checked.

Each client thread owns its keys, so the operations on a key happen in order and its possible states
are known exactly: an acknowledged write leaves one state (the bytes written, or deleted); one that
failed because the server died leaves two (the old state or the new one, never anything else). After
every restart each key reads back whole as one of its possible states (BLAKE3 of the bytes), the
listing shows exactly the keys that exist, and the round's new states become certain. At the end:
`pyblob fsck` (must find nothing), then `pyblob gc` with no grace period (the orphan chunks and
staging that the kills left), then fsck again.

Used by tests/reliability/test_crash_run.py (a short run in CI) and scripts/crashrun (long runs),
which print `CrashRunResult` as the figures of docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import botocore.exceptions
import httpx
from botocore.exceptions import BotoCoreError, ClientError
from ports import free_port
from processes import user_s3_client

BUCKET = "crash"
KiB, MiB = 1024, 1024 * 1024
START_TIMEOUT = 60.0
DELETED = "deleted"  # the state of a key that does not exist


@dataclass
class CrashRunResult:
    rounds: int = 0
    operations: int = 0  # requests sent
    acknowledged: int = 0  # writes (PUT, multipart, copy, DELETE) the server acknowledged
    interrupted: int = 0  # writes cut by a kill: either outcome allowed
    keys_checked: int = 0  # key reads after restarts
    lost: list[str] = field(default_factory=list)  # acknowledged writes not found (must stay empty)
    errors: list[str] = field(default_factory=list)  # client errors that were not the kill (must stay empty)
    wrong: list[str] = field(default_factory=list)  # keys in a state no operation made (must stay empty)
    fsck_problems: int = -1
    orphans_removed: int = 0  # gc after the run: chunks the kills left unreferenced
    staging_removed: int = 0
    chunks_removed: int = 0
    fsck_after_gc: int = -1
    seconds: float = 0.0

    def summary(self) -> str:
        return json.dumps({k: (len(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()})


def digest(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


class Ledger:
    """The possible states of each key (a BLAKE3 hex digest, or DELETED)."""

    def __init__(self) -> None:
        self.possible: dict[str, set[str]] = {}
        self.content: dict[str, bytes] = {}  # digest -> bytes, for copies and checks

    def acknowledged(self, key: str, state: str) -> None:
        self.possible[key] = {state}

    def interrupted(self, key: str, state: str) -> None:
        self.possible.setdefault(key, {DELETED}).add(state)

    def current(self, key: str) -> str | None:
        """The one state of `key` when it is certain."""
        states = self.possible.get(key, {DELETED})
        return next(iter(states)) if len(states) == 1 else None


class Client(threading.Thread):
    """One client thread: random operations on its own keys until `stop` is set or the server dies."""

    def __init__(self, index: int, url: str, creds: dict[str, str], ledger: Ledger, seed: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.prefix = f"t{index}/"
        self.s3 = s3_client(url, creds)
        self.ledger = ledger
        self.rng = random.Random(seed)
        self.stop = stop
        self.operations = self.acknowledged = self.interrupted = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            key = f"{self.prefix}{self.rng.randrange(12)}"
            op = self.rng.choices(["small", "chunked", "overwrite", "multipart", "copy", "delete"], [4, 3, 2, 1, 2, 2])[
                0
            ]
            self.operations += 1
            try:
                self.apply(op, key)
            except (BotoCoreError, OSError) as e:
                if not self.killed(e):
                    self.errors.append(f"{op} {key}: {e!r}")
                return  # the server died mid-request: the state was recorded as interrupted
            except ClientError as e:
                if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) < 500:
                    self.errors.append(f"{op} {key}: {e}")
                return
            except AssertionError as e:
                self.errors.append(str(e))
                return

    def killed(self, error: Exception) -> bool:
        """What the kill does to a request in flight: the connection refused, reset or closed."""
        return isinstance(error, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError, OSError))

    def write(self, key: str, state: str, call: Any) -> None:
        """Run `call`; `state` is certain when it returns, possible when the server died during it."""
        try:
            call()
        except ClientError as e:
            if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) < 500:
                raise AssertionError(f"{key}: refused {e}") from e
            self.ledger.interrupted(key, state)
            self.interrupted += 1
            raise
        except (BotoCoreError, OSError):
            self.ledger.interrupted(key, state)
            self.interrupted += 1
            raise
        self.ledger.acknowledged(key, state)
        self.acknowledged += 1

    def apply(self, op: str, key: str) -> None:
        rng = self.rng
        if op == "delete":
            self.write(key, DELETED, lambda: self.s3.delete_object(Bucket=BUCKET, Key=key))
            return
        if op == "copy":
            source = f"{self.prefix}{rng.randrange(12)}"
            state = self.ledger.current(source)
            if source == key or state is None or state == DELETED:
                return
            source_ref = {"Bucket": BUCKET, "Key": source}
            self.write(key, state, lambda: self.s3.copy_object(Bucket=BUCKET, Key=key, CopySource=source_ref))
            return
        size = {"small": rng.randrange(1, 4 * KiB), "chunked": rng.randrange(300 * KiB, 3 * MiB)}.get(op, 0)
        if op == "overwrite":
            size = rng.randrange(1, 2 * MiB)
        if op == "multipart":
            self.multipart(key)
            return
        body = rng.randbytes(size)
        self.ledger.content[digest(body)] = body
        self.write(key, digest(body), lambda: self.s3.put_object(Bucket=BUCKET, Key=key, Body=body))

    def multipart(self, key: str) -> None:
        parts = [self.rng.randbytes(5 * MiB), self.rng.randbytes(self.rng.randrange(1, MiB))]
        whole = b"".join(parts)
        self.ledger.content[digest(whole)] = whole
        upload = self.s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        done = []
        for number, part in enumerate(parts, 1):
            etag = self.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=number, Body=part)["ETag"]
            done.append({"PartNumber": number, "ETag": etag})
        self.write(
            key,
            digest(whole),
            lambda: self.s3.complete_multipart_upload(
                Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload={"Parts": done}
            ),
        )


def s3_client(url: str, creds: dict[str, str]) -> Any:
    """One attempt per call: a retry after the kill would hide what the kill did."""
    return user_s3_client(url, creds, attempts=1, connect_timeout=5, read_timeout=30)


class CrashRun:
    """The server process, its data dir, and the rounds."""

    def __init__(
        self, root: Path, workers: int = 2, clients: int = 3, seed: int = 0, env: dict[str, str] | None = None
    ):
        self.root = root
        self.data_dir = root / "data"
        self.workers = workers
        self.clients = clients
        self.rng = random.Random(seed)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update({"PYBLOB_DATA_DIR": str(self.data_dir), "PYBLOB_GC_GRACE_SECONDS": "0"})
        self.env.update(env or {})
        self.ledger = Ledger()
        self.result = CrashRunResult()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.creds: dict[str, str] = {}

    def pyblob(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pyblob", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def start(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 (the server's, closed with it)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyblob", "serve", "--port", str(port), "--workers", str(self.workers)],
            env=self.env,
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"pyblob serve exited with {self.proc.returncode}: see {self.root / 'server.log'}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("pyblob serve did not answer /health")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def run(self, rounds: int, seconds: tuple[float, float] = (0.3, 1.5)) -> CrashRunResult:
        begun = time.monotonic()
        made = self.pyblob("user", "add", "crash", "--json")
        assert made.returncode == 0, made.stderr
        self.creds = json.loads(made.stdout)
        self.start()
        s3_client(self.url, self.creds).create_bucket(Bucket=BUCKET)
        try:
            for _ in range(rounds):
                self.round(self.rng.uniform(*seconds))
        finally:
            self.stop()
        self.finish()
        self.result.seconds = time.monotonic() - begun
        return self.result

    def round(self, seconds: float) -> None:
        stop = threading.Event()
        clients = [
            Client(i, self.url, self.creds, self.ledger, self.rng.randrange(2**32), stop) for i in range(self.clients)
        ]
        for client in clients:
            client.start()
        time.sleep(seconds)
        self.kill()
        stop.set()
        for client in clients:
            client.join(60)
            assert not client.is_alive(), "a client did not stop after the kill"
            self.result.operations += client.operations
            self.result.acknowledged += client.acknowledged
            self.result.interrupted += client.interrupted
            self.result.errors += client.errors
        self.result.rounds += 1
        self.start()
        self.check()

    def check(self) -> None:
        """Every key reads back whole as one of its possible states, and the listing agrees."""
        s3 = s3_client(self.url, self.creds)
        listed = set()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            listed |= {item["Key"] for item in page.get("Contents", [])}
        for key, states in sorted(self.ledger.possible.items()):
            try:
                seen = digest(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
            except ClientError as e:
                if e.response["Error"]["Code"] != "NoSuchKey":
                    raise
                seen = DELETED
            self.result.keys_checked += 1
            if seen not in states:
                known = seen in self.ledger.content or seen == DELETED
                (self.result.wrong if not known else self.result.lost).append(f"{key}: {seen[:12]} not in {states}")
            if (seen != DELETED) != (key in listed):
                self.result.wrong.append(f"{key}: read as {seen[:12]} but listed: {key in listed}")
            self.ledger.acknowledged(key, seen)

    def finish(self) -> None:
        fsck = self.pyblob("fsck")
        self.result.fsck_problems = problems(fsck)
        gc = self.pyblob("gc")
        assert gc.returncode == 0, gc.stderr
        counts = dict(re.findall(r"^([a-z ]+):\s+(\d+)$", gc.stdout, re.MULTILINE))
        self.result.orphans_removed = int(counts.get("orphans removed", 0))
        self.result.staging_removed = int(counts.get("staging removed", 0))
        self.result.chunks_removed = int(counts.get("chunks removed", 0))
        self.result.fsck_after_gc = problems(self.pyblob("fsck"))


def problems(fsck: subprocess.CompletedProcess[str]) -> int:
    found = re.search(r"(\d+) problems found", fsck.stdout + fsck.stderr)
    assert found, f"fsck printed no count: {fsck.stdout} {fsck.stderr}"
    return int(found.group(1))
