"""Faults at each step of the write and delete paths (issue 15), against real `pyblob serve` and
`pyblob gc` processes driven by boto3 and the REST API.

The processes run through `tests/faultrun.py`, which installs the injector of `tests/faults.py`: a
test arms one fault (a step, an errno or a crash, the Nth matching call) through a control file,
sends the request, disarms, and checks. One server per module and test worker serves its cases in turn (a
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

Reads that meet EIO (GET, HEAD, a listing, `/s/`, `pyblob scrub`) are the cases of test_read_faults.py,
with their own table, `EXPECTED_READS`, on the same kind of rig (faultrig.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import httpx
import pytest
from botocore.exceptions import BotoCoreError, ClientError
from faultrig import BUCKET, CHUNKED, EXPIRING, INLINE, REFUSALS, Case, RestRefusal, Rig, assert_refused, sha
from faults import FAULTS

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
CASES = [(op, step, fault) for (op, step) in EXPECTED for fault in FAULTS]


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
