"""`pyblob import s3` from real S3 servers on loopback (moto's server, and a second pyblob), then a
real pyblob serving the copy to boto3: every object reads back identical with its ETag, metadata,
content type, headers and tags; versions and delete markers come in their order; duplicates are
stored once; a second run copies nothing; a run killed with SIGKILL part way is finished by the
next; a copy that does not match its source is refused and reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from botocore.client import BaseClient
from processes import RunPyblob, StartServer, clean_env, isolate_from_aws, moto_server, user_s3_client
from proxies import proxy

from objstore import Store

MiB = 1024 * 1024
PART = 5 * MiB  # moto, as S3, wants parts of at least 5 MiB but the last
SHARED = os.urandom(300 * 1024)  # five keys hold these bytes: chunk files, stored once
BIG = os.urandom(11 * MiB)  # multipart, twice under two keys
OTHER_BIG = os.urandom(6 * MiB)


@pytest.fixture(autouse=True)
def _no_machine_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[str]:
    with moto_server(tmp_path / "moto.log") as url:
        yield url


def client(url: str) -> BaseClient:
    return user_s3_client(url, {"access_key": "moto", "secret_key": "moto"})


def put_multipart(s3: BaseClient, bucket: str, key: str, data: bytes, **attrs: Any) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **attrs)["UploadId"]
    parts = []
    for number, start in enumerate(range(0, len(data), PART), 1):
        answer = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=data[start : start + PART]
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})


def fill(s3: BaseClient) -> tuple[str, str]:
    """A plain bucket of a few hundred objects and a versioned one; their names."""
    plain, history = f"photos-{uuid.uuid4().hex[:8]}", f"history-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=plain)
    for i in range(240):
        extra: dict[str, Any] = {}
        if i % 3 == 0:
            extra |= {"ContentType": "text/plain; charset=utf-8", "Metadata": {"n": str(i), "mtime": "1700000000.5"}}
        if i % 10 == 0:
            extra |= {"Tagging": f"kind=sample&n={i}", "CacheControl": "max-age=60", "ContentDisposition": "inline"}
        s3.put_object(Bucket=plain, Key=f"small/{i:04d}.txt", Body=os.urandom(50 + i * 10), **extra)
    for i in range(5):
        s3.put_object(Bucket=plain, Key=f"copies/shared-{i}.bin", Body=SHARED, ContentType="image/png")
    s3.put_object(Bucket=plain, Key="names/résumé 履歴書 (1).txt", Body="こんにちは".encode(), ContentLanguage="ja")
    put_multipart(s3, plain, "big/first.bin", BIG, ContentType="video/mp4", Metadata={"origin": "camera"})
    put_multipart(s3, plain, "big/again.bin", BIG, Tagging="copy=yes")
    s3.create_bucket(Bucket=history)
    s3.put_bucket_versioning(Bucket=history, VersioningConfiguration={"Status": "Enabled"})
    # moto's LastModified has whole seconds and it lists delete markers after the versions, not among
    # them as S3 does: a second apart, the markers' places are still known.
    for body in (b"one", b"two"):
        s3.put_object(Bucket=history, Key="doc.txt", Body=body)
    s3.put_object(Bucket=history, Key="gone.txt", Body=b"soon deleted")
    time.sleep(1.05)
    s3.delete_object(Bucket=history, Key="doc.txt")
    s3.delete_object(Bucket=history, Key="gone.txt")
    time.sleep(1.05)
    s3.put_object(Bucket=history, Key="doc.txt", Body=b"three")
    put_multipart(s3, history, "video.mp4", OTHER_BIG)
    s3.put_object(Bucket=history, Key="video.mp4", Body=SHARED)
    return plain, history


def every_object(s3: BaseClient, bucket: str) -> dict[str, dict[str, Any]]:
    """Key -> what a GET (and GetObjectTagging) answers, bytes included."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            answer = s3.get_object(Bucket=bucket, Key=item["Key"])
            found[item["Key"]] = {
                "body": hashlib.sha256(answer["Body"].read()).hexdigest(),
                "etag": answer["ETag"],
                "type": answer["ContentType"],
                "meta": answer["Metadata"],
                "headers": {h: answer.get(h) for h in ("CacheControl", "ContentDisposition", "ContentLanguage")},
                "tags": s3.get_object_tagging(Bucket=bucket, Key=item["Key"])["TagSet"],
            }
    return found


def history_of(s3: BaseClient, bucket: str, by_time: bool = False) -> list[tuple[str, bool, str]]:
    """(key, delete marker?, ETag) of every version in the order of the ListObjectVersions XML, which
    interleaves versions and delete markers newest first (boto3's two lists would lose that order).
    `by_time`: for moto, which lists a page's delete markers after its versions, the order of
    IsLatest, then LastModified."""
    bodies: list[bytes] = []

    def keep(response_dict: dict[str, Any], **_: Any) -> None:
        bodies.append(response_dict["body"])

    s3.meta.events.register("before-parse.s3.ListObjectVersions", keep)
    try:
        assert not s3.list_object_versions(Bucket=bucket)["IsTruncated"]
    finally:
        s3.meta.events.unregister("before-parse.s3.ListObjectVersions", keep)
    root = ET.fromstring(bodies[-1])
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    entries = [e for e in root if e.tag in (f"{ns}Version", f"{ns}DeleteMarker")]
    if by_time:
        entries.sort(key=lambda e: e.findtext(f"{ns}LastModified") or "", reverse=True)  # newest first, stable
        entries.sort(key=lambda e: (e.findtext(f"{ns}Key") or "", e.findtext(f"{ns}IsLatest") != "true"))
    return [
        (unquote(e.findtext(f"{ns}Key") or ""), e.tag == f"{ns}DeleteMarker", e.findtext(f"{ns}ETag") or "")
        for e in entries
    ]


def import_s3(run_pyblob: RunPyblob, url: str, *args: str, keys: tuple[str, str] = ("moto", "moto")) -> Any:
    return run_pyblob(
        "import", "s3", "--endpoint", url, "--access-key", keys[0], "--secret-key", keys[1], "--to-user", "alice", *args
    )


def field_of(output: str, label: str) -> int:
    [line] = [line for line in output.splitlines() if line.startswith(label + ":")]
    return int(line.split(":", 1)[1])


def test_a_bucket_store_moves_in_whole_verified_and_deduplicated(
    moto: str, run_pyblob: RunPyblob, start_server: StartServer, alice: dict[str, str]
) -> None:
    source = client(moto)
    plain, history = fill(source)

    result = import_s3(run_pyblob, moto)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "problem" not in out
    assert field_of(out, "buckets created") == 2 and field_of(out, "failed") == 0
    assert field_of(out, "objects imported") == 240 + 5 + 1 + 2 + 3 + 1 + 2  # versions counted one by one
    assert field_of(out, "delete markers") == 2
    assert field_of(out, "verified by ETag") == field_of(out, "objects imported")

    again = import_s3(run_pyblob, moto)
    assert again.returncode == 0, again.stdout + again.stderr
    assert field_of(again.stdout, "objects imported") == 0 and field_of(again.stdout, "delete markers") == 0
    assert field_of(again.stdout, "objects already there") == field_of(again.stdout, "objects listed")

    server = start_server()
    copy = user_s3_client(server.url, alice)
    assert every_object(copy, plain) == every_object(source, plain)  # bytes, ETags (multipart ones too), attributes
    assert every_object(copy, history) == every_object(source, history)
    assert history_of(copy, history) == history_of(source, history, by_time=True)
    assert copy.get_bucket_versioning(Bucket=history)["Status"] == "Enabled"
    assert "Status" not in copy.get_bucket_versioning(Bucket=plain)
    assert copy.get_object(Bucket=plain, Key="big/first.bin", PartNumber=2)["ContentLength"] == PART
    server.stop()

    # Stored once: the five copies of SHARED (and the version that holds it too), both BIG keys.
    gc = run_pyblob("gc", env={"PYBLOB_GC_GRACE_SECONDS": "0"})  # the multipart joins' leftover chunks
    assert gc.returncode == 0, gc.stderr
    stats = json.loads(run_pyblob("stats", "--json").stdout)
    assert stats["physical_bytes"] == len(SHARED) + len(BIG) + len(OTHER_BIG)


def test_an_import_killed_part_way_is_finished_by_the_next_run(
    moto: str, run_pyblob: RunPyblob, data_dir: Path, tmp_path: Path, alice: dict[str, str]
) -> None:
    source = client(moto)
    source.create_bucket(Bucket="backups")
    bodies = {f"day-{i:02d}.tar": os.urandom(MiB + i) for i in range(24)}
    for key, body in bodies.items():
        source.put_object(Bucket="backups", Key=key, Body=body)
    put_multipart(source, "backups", "a-full.tar", BIG)  # listed first: parts stored when the kill comes

    with proxy(moto, delay=0.1) as slow:  # ~2 s for the whole import: time to see it part way
        argv = [sys.executable, "-m", "pyblob", "import", "s3", "--endpoint", slow, "--access-key", "moto"]
        argv += ["--secret-key", "moto", "--to-user", "alice", "--jobs", "2", "--data-dir", str(data_dir)]
        first = subprocess.Popen(argv, env=clean_env(), cwd=tmp_path, stdout=subprocess.DEVNULL)
        with Store(data_dir) as watch:  # LMDB: a second reader beside the importing process
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and first.poll() is None and watch.storage_totals().objects < 3:
                time.sleep(0.01)
        assert first.poll() is None, "the import ended before it could be killed"
        first.send_signal(signal.SIGKILL)
        first.wait(10)

    second = import_s3(run_pyblob, moto, "--jobs", "2")
    assert second.returncode == 0, second.stdout + second.stderr
    assert field_of(second.stdout, "objects already there") >= 3
    assert field_of(second.stdout, "objects already there") + field_of(second.stdout, "objects imported") == 25
    assert run_pyblob("fsck").returncode == 0
    stats = json.loads(run_pyblob("stats", "--json").stdout)
    # The multipart copy went on in the upload the first run left, so no parts are charged twice.
    assert stats["objects"] == 25 and stats["logical_bytes"] == sum(map(len, bodies.values())) + len(BIG)


def test_a_copy_that_differs_from_its_source_is_refused_and_reported(
    moto: str, run_pyblob: RunPyblob, start_server: StartServer, alice: dict[str, str]
) -> None:
    source = client(moto)
    source.create_bucket(Bucket="mixed")
    source.put_object(Bucket="mixed", Key="fine.bin", Body=SHARED)
    # Flipped bytes: botocore's check of the CRC32 moto keeps, or the ETag (the MD5), tells.
    source.put_object(Bucket="mixed", Key="broken.bin", Body=os.urandom(70000))
    put_multipart(source, "mixed", "broken-big.bin", OTHER_BIG)
    with proxy(moto, corrupt="broken.bin") as flaky, proxy(flaky, corrupt="broken-big.bin") as worse:
        result = import_s3(run_pyblob, worse)
    assert result.returncode == 1, result.stdout + result.stderr
    assert field_of(result.stdout, "failed") == 2 and field_of(result.stdout, "objects imported") == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem:")]
    assert len(problems) == 2 and all("mixed/broken" in p for p in problems), problems
    server = start_server()
    copy = user_s3_client(server.url, alice)
    assert [o["Key"] for o in copy.list_objects_v2(Bucket="mixed")["Contents"]] == ["fine.bin"]
    assert copy.list_multipart_uploads(Bucket="mixed").get("Uploads", []) == []  # the half copy was dropped


def test_bad_credentials_and_a_missing_user_are_clear_errors(
    moto: str, run_pyblob: RunPyblob, alice: dict[str, str]
) -> None:
    nobody = run_pyblob(
        "import", "s3", "--endpoint", moto, "--access-key", "a", "--secret-key", "b", "--to-user", "zed"
    )
    assert nobody.returncode == 2 and "no user 'zed' here" in nobody.stderr
    unreachable = import_s3(run_pyblob, "http://127.0.0.1:9")
    assert unreachable.returncode == 1 and "the source at http://127.0.0.1:9 refused" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


def test_from_a_second_pyblob(
    run_pyblob: RunPyblob, start_server: StartServer, tmp_path: Path, alice: dict[str, str]
) -> None:
    """The other store is a real pyblob of its own data dir: its multipart ETags, parts and versions."""
    other = tmp_path / "other-data"
    made = run_pyblob("user", "add", "olga", "--json", "--data-dir", str(other), with_data_dir=False)
    olga = json.loads(made.stdout)
    # `--data-dir` again, after the fixture's: the last one given is the one click keeps.
    source_server = start_server("--data-dir", str(other))
    source = user_s3_client(source_server.url, olga)
    source.create_bucket(Bucket="site")
    source.put_bucket_versioning(Bucket="site", VersioningConfiguration={"Status": "Enabled"})
    source.put_object(Bucket="site", Key="index.html", Body=b"<h1>v1</h1>", ContentType="text/html")
    source.put_object(Bucket="site", Key="index.html", Body=b"<h1>v2</h1>", ContentType="text/html")
    put_multipart(source, "site", "media/clip.mp4", BIG, ContentType="video/mp4", Tagging="public=yes")
    source.put_object(Bucket="site", Key="media/clip-copy.mp4", Body=BIG)

    keys = (olga["access_key"], olga["secret_key"])
    dry = import_s3(run_pyblob, source_server.url, "--dry-run", keys=keys)
    assert dry.returncode == 0 and field_of(dry.stdout, "objects listed") == 4, dry.stdout + dry.stderr
    assert field_of(dry.stdout, "bytes listed") == 2 * len(BIG) + 2 * len(b"<h1>v1</h1>")
    assert json.loads(run_pyblob("stats", "--json").stdout)["objects"] == 0
    result = import_s3(run_pyblob, source_server.url, keys=keys)
    assert result.returncode == 0, result.stdout + result.stderr
    assert field_of(result.stdout, "objects imported") == 4 and field_of(result.stdout, "verified by ETag") == 4
    source_server.stop()
    server = start_server()
    copy = user_s3_client(server.url, alice)
    source_again = start_server("--data-dir", str(other))
    source = user_s3_client(source_again.url, olga)
    assert every_object(copy, "site") == every_object(source, "site")
    assert history_of(copy, "site") == history_of(source, "site")
