"""Reads that meet an EIO of the disk (issue 15): GET, HEAD, a listing, `/s/` and `pyblob scrub`,
against the rig of test_fault_injection.py (faultrig.py), on a server of their own.

Only EIO: a read fills nothing, and a crash during one loses nothing a write did not. Written before
the first run, as `EXPECTED_READS`:

- "503": 503 `StorageIOError` before the response head, naming the cause, with a request id (S3's
  XML, the REST API's JSON on `/s/`), never a 500 and never wrong bytes; a chunk's EIO is logged by
  the server in one line naming the chunk. The same request then answers the right bytes.
- "cut short": the head (200 and the Content-Length) went out and part of the body: the server
  aborts the connection, so the client gets a short body (boto3 raises, httpx counts fewer bytes),
  never one of the full length that is wrong; one log line names the chunk.
- "retried": the same with boto3's download (s3transfer), which retries a body cut short: the bytes
  it writes are right.
- "quarantined": `pyblob scrub` reports the chunk unreadable and quarantines it as it does a damaged
  one (a chunk the disk cannot read cannot be served either: GETs of its objects answer 503 naming it
  at once instead of failing mid-body, and the next upload of the same bytes writes a new file and
  heals it; the bytes stay in quarantine/ for an administrator), checks every other chunk, and names
  the object; a GET of it answers 503 naming the chunk; an upload of the same bytes heals it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import BotoCoreError, ClientError
from faultrig import BUCKET, CHUNKED, INLINE, Case, KiB, RestRefusal, Rig, assert_refused, sha

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
