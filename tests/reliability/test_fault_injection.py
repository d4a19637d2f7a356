"""Faults at each step of the write and delete paths (issue 15), against real `pyblob serve` and
`pyblob gc` processes driven by boto3 and the REST API.

The processes run through `tests/faultrun.py`, which installs the injector of `tests/faults.py`: a
test arms one fault (a step, an errno or a crash, the Nth matching call) through a control file,
sends the request, disarms, and checks. One server per test worker serves every case in turn (a
crash case starts it again on the same data dir), so the state of the earlier cases is there too:
after each case the listing shows exactly the objects acknowledged so far, with their ETags, and
fsck re-hashes every chunk they reference; after a crash every one of them is read back byte for
byte (and all of them at the end).

`EXPECTED` is the outcome demanded of each case, written before it ran (docs/reliability.md,
"Faults at each step", has the same table):

- `507` / `503`: the request fails with 507 `StorageFull` (ENOSPC names "no space left", EDQUOT
  "disk quota") or 503 `StorageIOError` (EIO, "I/O error"), with a request id. The key still reads
  as before (an older object, or a pending upload without the part), and nothing of the write stays
  behind: the chunk files and the staging dir are as before the request. With `+gc`, what the
  failed write had already put in place stays as orphan chunks (the disk is still full when the
  writer takes them back) and `pyblob gc` removes them. After disarming, the same request succeeds
  on the same server process.
- `old`: a crash (SIGKILL) at that step; after a restart the key reads as before the request, then
  the request succeeds. Crashes leave staging dirs or orphan chunks: `pyblob gc` runs first.
- `gc fails`: `pyblob gc` exits 2 with one line naming the cause, the metadata is consistent (fsck
  clean), and the next `pyblob gc` finishes the job (the chunk file gone, the object expired, the
  link swept). `bucket failed`: the lifecycle sweep reports the bucket failed (gc goes on), the
  object stays whole, the next sweep expires it. `killed`: the gc process dies; the next finishes.

After every case `pyblob fsck` finds nothing.

Reads that meet EIO (GET, HEAD, a listing, `/s/`, `pyblob scrub`) are the cases of `test_read_fault`,
with their own table, `EXPECTED_READS`, on the same server.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import BotoCoreError, ClientError
from click.testing import CliRunner, Result
from faults import CONTROL_ENV, FAULTS, Control, Fault
from processes import (
    Server,
    assert_no_secret_logged,
    clean_env,
    free_port,
    isolate_from_aws,
    serve_argv,
    user_s3_client,
    wait_healthy,
)

from pyblob.cli import cli as pyblob_cli

KiB = 1024
TESTS = Path(__file__).resolve().parent.parent
FAULTRUN = TESTS / "faultrun.py"
ADMIN = {"access_key": "FAULTSADMIN", "secret_key": "faults-admin-secret"}
BUCKET, EXPIRING = "faults", "expiring"  # EXPIRING's rule expires everything under "old/" at once
CHUNKED, INLINE = 300 * KiB, 1 * KiB
PERSISTENT = 1_000_000  # a full disk stays full until disarmed; an EIO or a crash comes once

# What each (operation, step) must do under ENOSPC, EDQUOT, EIO and a crash: see the docstring.
EXPECTED: dict[tuple[str, str], tuple[str, str, str, str]] = {
    ("PutObject chunked", "write"): ("507", "507", "503", "old"),
    ("PutObject chunked", "fsync"): ("507", "507", "503", "old"),
    ("PutObject chunked", "rename"): ("507", "507", "503", "old"),
    ("PutObject chunked", "dirsync"): ("507", "507", "503", "old"),
    ("PutObject chunked", "commit"): ("507 +gc", "507 +gc", "503", "old"),
    ("PutObject inline", "commit"): ("507", "507", "503", "old"),
    ("UploadPart", "write"): ("507", "507", "503", "old"),
    ("UploadPart", "commit"): ("507 +gc", "507 +gc", "503", "old"),
    ("CompleteMultipartUpload", "commit"): ("507", "507", "503", "old"),
    ("DeleteObject", "commit"): ("507", "507", "503", "old"),
    ("REST upload", "write"): ("507", "507", "503", "old"),
    ("REST upload", "commit"): ("507 +gc", "507 +gc", "503", "old"),
    ("gc: chunk delete", "unlink"): ("gc fails", "gc fails", "gc fails", "killed"),
    ("gc: mark chunk deleting", "commit"): ("gc fails", "gc fails", "gc fails", "killed"),
    ("gc: forget deleted chunk", "commit"): ("gc fails", "gc fails", "gc fails", "killed"),
    ("lifecycle expiry", "commit"): ("bucket failed", "bucket failed", "bucket failed", "killed"),
    ("link expiry", "commit"): ("gc fails", "gc fails", "gc fails", "killed"),
}
REFUSALS = {
    "ENOSPC": (507, "StorageFull", "no space left"),
    "EDQUOT": (507, "StorageFull", "disk quota"),
    "EIO": (503, "StorageIOError", "i/o error|input/output error"),
}
CASES = [(op, step, fault) for (op, step) in EXPECTED for fault in FAULTS]


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


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    rig = Rig(tmp_path_factory.mktemp("faults"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_from_aws(monkeypatch, rig.root)
        yield from serve(rig)


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


def step_path(rig: Rig, step: str) -> str:
    """The part of the data dir a step's calls touch: staging for writes and their flush, chunks/
    for renames, their flush and deletes, meta/ for commits."""
    return str(rig.data / {"write": "tmp", "fsync": "tmp", "commit": "meta"}.get(step, "chunks"))


Request = Callable[[], object]


def write_request(rig: Rig, case: Case) -> tuple[Request, Callable[[], object]]:
    """The request under test, and a check of the state it must leave when it failed."""
    key = case.key
    if case.op.startswith("PutObject"):
        old, new = os.urandom(INLINE), os.urandom(CHUNKED if "chunked" in case.op else INLINE)
        rig.put(BUCKET, key, old)
        return (lambda: rig.put(BUCKET, key, new)), (lambda: rig.check_acknowledged(key))
    if case.op == "DeleteObject":
        rig.put(BUCKET, key, os.urandom(CHUNKED))

        def delete() -> None:
            rig.s3.delete_object(Bucket=BUCKET, Key=key)
            rig.forget(BUCKET, key)

        return delete, (lambda: rig.check_acknowledged(key))
    if case.op == "REST upload":
        return rest_upload_request(rig, case)
    return multipart_request(rig, case)


def link_ids(rig: Rig) -> list[str]:
    return [link["id"] for link in rig.rest("GET", "/api/links").json()["links"]]


class RestRefusal(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(response.text)
        self.response = response


def rest_upload_request(rig: Rig, case: Case) -> tuple[Request, Callable[[], object]]:
    """`POST /upload` of a file for a short link; its object is acknowledged with the link."""
    body = os.urandom(CHUNKED)
    links_before = link_ids(rig)

    def upload() -> None:
        made = rig.rest("POST", "/upload", files={"file": (f"{case.key}.bin", body)})
        if made.status_code != 200:
            raise RestRefusal(made)
        link = rig.rest("GET", f"/api/links/{made.json()['file_id']}").json()
        etag = rig.s3.head_object(Bucket=link["bucket"], Key=link["key"])["ETag"]
        rig.acknowledged(link["bucket"], link["key"], body, etag)

    def unchanged() -> None:
        assert link_ids(rig) == links_before
        rig.check_acknowledged()

    return upload, unchanged


def multipart_request(rig: Rig, case: Case) -> tuple[Request, Callable[[], object]]:
    upload = rig.s3.create_multipart_upload(Bucket=BUCKET, Key=case.key)["UploadId"]
    body = os.urandom(CHUNKED)
    etags: list[str] = []

    def upload_part() -> None:
        etags.append(rig.s3.upload_part(Bucket=BUCKET, Key=case.key, UploadId=upload, PartNumber=1, Body=body)["ETag"])

    def complete() -> None:
        parts = [{"PartNumber": 1, "ETag": etags[0]}]
        done = rig.s3.complete_multipart_upload(
            Bucket=BUCKET, Key=case.key, UploadId=upload, MultipartUpload={"Parts": parts}
        )
        rig.acknowledged(BUCKET, case.key, body, done["ETag"])

    def unchanged() -> None:
        assert rig.read(BUCKET, case.key) is None
        listed = rig.s3.list_parts(Bucket=BUCKET, Key=case.key, UploadId=upload).get("Parts", [])
        assert len(listed) == (0 if case.op == "UploadPart" else 1), listed

    if case.op == "UploadPart":
        return upload_part, unchanged

    def both() -> None:
        if not etags:
            upload_part()
        complete()

    upload_part()
    return both, unchanged


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


def run_write_case(rig: Rig, case: Case) -> None:
    request, unchanged = write_request(rig, case)
    before = rig.files()
    case.arm(rig, step_path(rig, case.step))
    try:
        request()
    except (ClientError, BotoCoreError, RestRefusal, httpx.TransportError) as e:
        error: BaseException | None = e
    else:
        error = None
    fired = rig.control.fired(case.tag)
    rig.control.disarm()
    assert fired, f"{case}: the fault never fired (the request answered {error!r})"
    assert error is not None, f"{case}: acknowledged despite the fault"
    if case.fault == "crash":
        rig.restart()
        rig.check_acknowledged(full=True)
        unchanged()
        gc = rig.cli("gc")
        assert gc.exit_code == 0, gc.output
    else:
        assert_refused(error, case.fault)
        unchanged()
        if case.expected.endswith("+gc"):
            gc = rig.cli("gc")
            assert gc.exit_code == 0, gc.output
        chunks, staging = rig.files()
        assert not chunks - before[0] and not staging, f"{case}: the failed write left files behind"
    request()  # the same request succeeds now, without a restart
    rig.check_acknowledged(case.key)
    rig.fsck_clean()


Check = Callable[[str], None]  # given the output of the gc that must have finished the job


def gc_case_setup(rig: Rig, case: Case) -> tuple[Callable[[], None], Check]:
    """What the gc run under the fault works on: a check that it is untouched, one that it is done."""
    key = case.key
    if case.op == "lifecycle expiry":
        body = os.urandom(INLINE)
        rig.s3.put_object(Bucket=EXPIRING, Key=f"old/{key}", Body=body)
        return (lambda: _assert(rig.read(EXPIRING, f"old/{key}") == sha(body), "changed")), (
            lambda out: _assert(rig.read(EXPIRING, f"old/{key}") is None, "not expired")
        )
    if case.op == "link expiry":
        rig.put(BUCKET, key, os.urandom(INLINE))
        make_spent_link(rig, key)
        return (lambda: None), (lambda out: _assert(re.search(r"links expired:\s+1\b", out) is not None, out))
    before = rig.files()[0]
    rig.s3.put_object(Bucket=BUCKET, Key=key, Body=os.urandom(CHUNKED))
    chunks = rig.files()[0] - before
    assert chunks, "the object has no chunk file"
    rig.s3.delete_object(Bucket=BUCKET, Key=key)
    return (lambda: None), (lambda out: _assert(not chunks & rig.files()[0], "chunk files kept"))


def _assert(ok: bool, what: str) -> None:
    assert ok, what


def make_spent_link(rig: Rig, key: str) -> None:
    """A short link to `key` that allows one download, downloaded once: due for the link sweep."""
    assert rig.server is not None
    made = httpx.post(
        f"{rig.server.url}/api/links",
        json={"bucket": BUCKET, "key": key, "max_downloads": 1},
        headers={"authorization": f"Bearer {rig.token}"},
    )
    assert made.status_code == 201, made.text
    assert httpx.get(f"{rig.server.url}/s/{made.json()['id']}").status_code == 200


GC_FAULTS = {  # operation: (nth matching call, the function it runs under)
    "gc: chunk delete": (1, "delete_unreferenced"),
    "gc: mark chunk deleting": (1, "delete_unreferenced"),
    "gc: forget deleted chunk": (2, "delete_unreferenced"),
    "lifecycle expiry": (1, "apply_lifecycle"),
    "link expiry": (1, "sweep_links"),
}


def run_gc_case(rig: Rig, case: Case) -> None:
    untouched, done = gc_case_setup(rig, case)
    nth, during = GC_FAULTS[case.op]
    case.arm(rig, step_path(rig, case.step), nth, during, command="gc")
    failed = rig.faulty("gc")
    fired = rig.control.fired(case.tag)
    rig.control.disarm()
    assert fired, f"{case}: the fault never fired: {failed.stdout}{failed.stderr}"
    if case.expected == "killed":
        assert failed.returncode == -9, failed.stderr
    elif case.expected == "bucket failed":
        assert failed.returncode == 0, failed.stderr
        assert re.search(r"buckets failed:\s+1", failed.stdout), failed.stdout
    else:
        assert failed.returncode == 2, failed.stdout + failed.stderr
        assert "Traceback" not in failed.stderr, failed.stderr
        assert re.search(REFUSALS[case.fault][2], failed.stderr.lower()), failed.stderr
    untouched()
    rig.check_acknowledged()
    rig.fsck_clean()
    again = rig.cli("gc")
    assert again.exit_code == 0, again.output
    done(again.stdout)
    rig.fsck_clean()


@pytest.mark.parametrize(("op", "step", "fault"), CASES, ids=[f"{o}-{s}-{f}" for o, s, f in CASES])
def test_fault_at_step(rig: Rig, op: str, step: str, fault: str) -> None:
    expected = EXPECTED[(op, step)][FAULTS.index(fault)]
    key = re.sub(r"[^a-z0-9]+", "-", f"{op}-{step}-{fault}".lower())
    case = Case(op, step, fault, expected, key)
    if op.startswith(("gc", "lifecycle", "link")):
        run_gc_case(rig, case)
    else:
        run_write_case(rig, case)


# Reads that meet an EIO of the disk (only EIO: a read fills nothing, and a crash during one loses
# nothing a write did not). Written before the first run, as EXPECTED:
# - "503": 503 `StorageIOError` before the response head, naming the cause, with a request id (S3's
#   XML, the REST API's JSON on `/s/`), never a 500 and never wrong bytes; a chunk's EIO is logged by
#   the server in one line naming the chunk. The same request then answers the right bytes.
# - "cut short": the head (200 and the Content-Length) went out and part of the body: the server
#   aborts the connection, so the client gets a short body (boto3 raises, httpx counts fewer bytes),
#   never one of the full length that is wrong; one log line names the chunk.
# - "retried": the same with boto3's download (s3transfer), which retries a body cut short: the bytes
#   it writes are right.
# - "quarantined": `pyblob scrub` reports the chunk unreadable and quarantines it as it does a damaged
#   one (a chunk the disk cannot read cannot be served either: GETs of its objects answer 503 naming it
#   at once instead of failing mid-body, and the next upload of the same bytes writes a new file and
#   heals it; the bytes stay in quarantine/ for an administrator), checks every other chunk, and names
#   the object; a GET of it answers 503 naming the chunk; an upload of the same bytes heals it.
EXPECTED_READS: dict[tuple[str, str], str] = {
    ("GetObject inline", "metaread"): "503",
    ("HeadObject", "metaread"): "503",
    ("ListObjectsV2", "metaread"): "503",
    ("GetObject one chunk", "read"): "503",
    ("GetObject ranged", "read"): "503",
    ("GetObject 2 MiB", "sendfile"): "cut short",
    ("GetObject 2 MiB, download", "sendfile"): "retried",
    ("/s/ GET one chunk", "read"): "503",
    ("/s/ GET 2 MiB", "sendfile"): "cut short",
    ("scrub", "read"): "quarantined",
}
ONE_CHUNK, LARGE = 32 * KiB, 2048 * KiB  # one chunk file (read on the event loop); several (sendfile)
READ_SETUP = {  # operation: (object size, the function the failing call runs under, the matching call)
    "GetObject inline": (INLINE, "spans", 1),
    "HeadObject": (INLINE, "head_object", 1),
    "ListObjectsV2": (INLINE, "list_objects", 1),
    "GetObject one chunk": (ONE_CHUNK, "handle_get_object", 1),
    "GetObject ranged": (CHUNKED, "handle_get_object", 1),
    "GetObject 2 MiB": (LARGE, "", 2),  # the second sendfile: part of the body is out
    "GetObject 2 MiB, download": (LARGE, "", 2),
    "/s/ GET one chunk": (ONE_CHUNK, "read_whole", 1),
    "/s/ GET 2 MiB": (LARGE, "", 2),
    "scrub": (CHUNKED, "_problem", 1),
}
READ_CASES = list(EXPECTED_READS)
RANGE = (1000, 41_000)  # the ranged GET's bytes: under LOOP_READ_MAX, read with the chunk's pread


def read_request(rig: Rig, case: Case, link: str) -> Callable[[], bytes]:
    """The read under test: the bytes it got (for HEAD and the listing, what they say)."""
    key = case.key
    if case.op == "HeadObject":
        return lambda: rig.s3.head_object(Bucket=BUCKET, Key=key)["ETag"].encode()
    if case.op == "ListObjectsV2":
        return lambda: listed_keys(rig)
    if case.op == "GetObject ranged":
        ranged = f"bytes={RANGE[0]}-{RANGE[1] - 1}"
        return lambda: rig.s3.get_object(Bucket=BUCKET, Key=key, Range=ranged)["Body"].read()
    if case.op.startswith("/s/"):
        return lambda: link_get(rig, link)
    if case.op.endswith("download"):
        return lambda: download(rig, key)
    return lambda: rig.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def listed_keys(rig: Rig) -> bytes:
    return repr(sorted(item["Key"] for item in rig.s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))).encode()


class ShortBody(Exception):
    def __init__(self, got: int, promised: int):
        super().__init__(f"{got} of {promised} bytes")
        self.got, self.promised = got, promised


def link_get(rig: Rig, link: str) -> bytes:
    """GET /s/<id> with httpx: a JSON error as RestRefusal, a body cut short as ShortBody."""
    assert rig.server is not None
    got = bytearray()
    with httpx.stream("GET", f"{rig.server.url}/s/{link}", timeout=20) as response:
        if response.status_code != 200:
            response.read()
            raise RestRefusal(response)
        promised = int(response.headers["content-length"])
        try:
            for piece in response.iter_raw():
                got += piece
        except httpx.TransportError:
            raise ShortBody(len(got), promised) from None
    return bytes(got)


def download(rig: Rig, key: str) -> bytes:
    """boto3's managed download, with its retries of a body cut short."""
    import io

    out = io.BytesIO()
    rig.s3.download_fileobj(BUCKET, key, out)
    return out.getvalue()


def expected_bytes(case: Case, body: bytes, rig: Rig) -> bytes:
    if case.op == "HeadObject":
        return rig.etags[case.key].encode()
    if case.op == "ListObjectsV2":
        return repr(sorted(rig.etags)).encode()
    if case.op == "GetObject ranged":
        return body[RANGE[0] : RANGE[1]]
    return body


def make_link(rig: Rig, key: str) -> str:
    made = rig.rest("POST", "/api/links", json={"bucket": BUCKET, "key": key})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def server_log(rig: Rig) -> str:
    assert rig.server is not None
    return rig.server.stdout + rig.server.stderr


def assert_logged_once(rig: Rig, before: str, chunk: str) -> None:
    """One new line of the server's log names the chunk that failed, and no traceback came with it."""
    new = server_log(rig)[len(before) :]
    naming = [line for line in new.splitlines() if chunk in line]
    assert len(naming) == 1 and re.search("i/o error", naming[0].lower()), new
    assert "Traceback" not in new and "Exception in ASGI" not in new, new


def run_read_case(rig: Rig, case: Case) -> None:
    size, during, nth = READ_SETUP[case.op]
    body, before = os.urandom(size), rig.files()[0]
    rig.put(BUCKET, case.key, body)
    chunks = sorted(rig.files()[0] - before)
    link = make_link(rig, case.key) if case.op.startswith("/s/") else ""
    request = read_request(rig, case, link)
    log_before = server_log(rig)
    if case.op == "scrub":
        return run_scrub_case(rig, case, body, chunks)
    path = str(rig.data / ("meta" if case.step == "metaread" else "chunks"))
    case.arm(rig, path, nth, during)
    try:
        got: bytes | None = request()
    except (ClientError, BotoCoreError, RestRefusal, ShortBody) as e:
        error: BaseException | None = e
        got = None
    else:
        error = None
    failed = rig.control.fired_paths(case.tag)
    rig.control.disarm()
    assert failed, f"{case}: the fault never fired (the request answered {error!r})"
    want = expected_bytes(case, body, rig)
    if case.expected == "retried":
        assert error is None and got == want, f"{case}: {error!r}"
    elif case.expected == "cut short":
        assert got is None, f"{case}: a full-length body despite the fault ({got == want})"
        if isinstance(error, ShortBody):
            assert error.got < error.promised == size, error
        else:
            assert isinstance(error, BotoCoreError), repr(error)  # IncompleteRead: boto3 raises and may retry
    else:
        assert error is not None, f"{case}: answered despite the fault"
        assert_read_refused(error, case)
    if case.step != "metaread":
        assert_logged_once(rig, log_before, Path(failed[0]).name)
    assert request() == want  # the same read, now right, on the same server
    rig.fsck_clean()


def assert_read_refused(error: BaseException, case: Case) -> None:
    """503 StorageIOError saying what could not be read, with a request id; a HEAD's has no body to say
    it in (as at S3): its status and request id."""
    if case.op == "HeadObject":
        assert isinstance(error, ClientError), repr(error)
        meta = error.response["ResponseMetadata"]
        assert meta["HTTPStatusCode"] == 503 and meta["HTTPHeaders"].get("x-amz-request-id"), error.response
        return
    assert_refused(error, "EIO")
    said = error.response.json()["detail"] if isinstance(error, RestRefusal) else str(error)
    want = "the metadata" if case.step == "metaread" else "chunk [0-9a-f]{64}"
    assert re.search(f"reading {want}", said), said  # a read's words, not a write's


def run_scrub_case(rig: Rig, case: Case, body: bytes, chunks: list[str]) -> None:
    """`pyblob scrub` meets an EIO reading the first chunk of the object: reported unreadable and
    quarantined as a damaged chunk is, every other chunk checked, the object named; GETs answer 503
    naming the chunk; an upload of the same bytes heals it."""
    import json

    case.arm(rig, chunks[0], 1, "_problem", command="scrub")
    ran = rig.faulty("scrub", "--rate", "unlimited", "--restart", "--json")
    fired = rig.control.fired(case.tag)
    rig.control.disarm()
    assert fired == 1, ran.stdout + ran.stderr
    assert ran.returncode == 1 and "Traceback" not in ran.stderr, ran.stdout + ran.stderr
    report = json.loads(ran.stdout)
    damaged = {c["chunk"]: c for c in report["quarantined"]}
    assert set(damaged) == {chunks[0]}, report
    assert re.search("unreadable: .*(i/o|input/output) error", damaged[chunks[0]]["problem"].lower()), report
    assert any(case.key in json.dumps(holder) for holder in damaged[chunks[0]]["objects"]), report
    assert report["chunks_checked"] > len(chunks) and report["finished"], report  # it went on
    with pytest.raises(ClientError) as refused:
        rig.s3.get_object(Bucket=BUCKET, Key=case.key)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert chunks[0] in refused.value.response["Error"]["Message"], refused.value.response
    rig.put(BUCKET, case.key, body)  # the same bytes again: the chunk written anew, the mark taken off
    assert rig.read(BUCKET, case.key) == sha(body)
    again = rig.faulty("scrub", "--rate", "unlimited", "--restart")
    assert again.returncode == 0, again.stdout + again.stderr
    rig.fsck_clean()


@pytest.mark.parametrize(("op", "step"), READ_CASES, ids=[f"{o}-{s}-EIO" for o, s in READ_CASES])
def test_read_fault(rig: Rig, op: str, step: str) -> None:
    key = re.sub(r"[^a-z0-9]+", "-", f"read-{op}-{step}".lower()).strip("-")
    run_read_case(rig, Case(op, step, "EIO", EXPECTED_READS[(op, step)], key))
