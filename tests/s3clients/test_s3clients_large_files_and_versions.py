"""Large files, versions and multipart retries through the real command-line clients, on the session server.

That server runs with default settings: the admin made on its first start (keys imported with
PYBLOB_ADMIN_*) has no quota and no per-object limit. Covered here:
- a 100 MiB `aws s3 cp` up and down with aws-cli v1 (pip) and v2 (Debian);
- an rclone sync of files over 10 MiB, `rclone check`, and a second sync that transfers nothing;
- versioning with rclone: `backend versioning`, `--s3-versions`, `--s3-version-at`, restoring an old
  version by a server-side copy, `backend cleanup-hidden`;
- versioning with aws-cli v2: `s3api` list-object-versions (paged too), restore by copy-object,
  delete marker and undelete, DeleteObjects by version;
- a retried CompleteMultipartUpload and GetObjectAttributes of a multipart object with CRC32
  checksums (aws-cli v1 uploads, v1 and v2 ask);
- s3cmd, which knows nothing of versions, putting multipart objects into and deleting from a
  versioned bucket.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from s3_server import Endpoint
from s3clients_helpers import AwsCli, Rclone, S3cmd, digests, make_tree, sha256

MiB = 1 << 20
AWS_CLI_PART = 8 * MiB  # aws-cli's multipart threshold and part size (v1 and v2)
S3CMD_PART = 15 * MiB  # s3cmd's multipart chunk size


def multipart_etag(path: Path, chunk: int) -> str:
    """The ETag S3 gives `path` uploaded in parts of `chunk` bytes, read a part at a time."""
    md5s = []
    with open(path, "rb") as f:
        for part in iter(lambda: f.read(chunk), b""):
            md5s.append(hashlib.md5(part).digest())
    return f'"{hashlib.md5(b"".join(md5s)).hexdigest()}-{len(md5s)}"'


def crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(proc.stdout)


def logged(stderr: str, what: str) -> list[str]:
    return [line for line in stderr.splitlines() if what in line]


# 100 MiB with aws-cli v1 and v2 -----------------------------------------------------------------
@pytest.fixture(scope="module")
def hundred_mib(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """100 MiB of random bytes (written a MiB at a time) and their SHA-256, shared by both clients."""
    path = tmp_path_factory.mktemp("hundred") / "hundred.bin"
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(100):
            block = os.urandom(MiB)
            h.update(block)
            f.write(block)
    yield path, h.hexdigest()
    path.unlink()


@pytest.mark.parametrize("major", [1, 2])
def test_aws_s3_cp_of_100_mib_up_and_down_by_the_first_start_admin(
    major: int,
    request: pytest.FixtureRequest,
    pyblob: Endpoint,
    s3: BaseClient,
    hundred_mib: tuple[Path, str],
    bucket_name: str,
    tmp_path: Path,
) -> None:
    aws: AwsCli = request.getfixturevalue("aws" if major == 1 else "aws2")
    assert aws.version().startswith(f"aws-cli/{major}.")
    admin = json.loads(pyblob.cli("user", "show", "admin", "--json").stdout)
    assert (admin["quota"], admin["max_object_size"]) == (0, 0), admin  # 0: unlimited, the default
    source, digest = hundred_mib

    aws("s3", "mb", f"s3://{bucket_name}")
    aws("s3", "cp", "--no-progress", str(source), f"s3://{bucket_name}/big/hundred.bin")
    head = s3.head_object(Bucket=bucket_name, Key="big/hundred.bin")
    assert head["ContentLength"] == 100 * MiB
    assert head["ETag"] == multipart_etag(source, AWS_CLI_PART)  # 13 parts of 8 MiB

    down = tmp_path / "down.bin"
    aws("s3", "cp", "--no-progress", f"s3://{bucket_name}/big/hundred.bin", str(down))
    assert sha256(down) == digest
    down.unlink()
    aws("s3", "rm", f"s3://{bucket_name}/big/hundred.bin")
    aws("s3", "rb", f"s3://{bucket_name}")


# rclone -------------------------------------------------------------------------------------------
# Over 10 MiB but under rclone's 200 MiB upload cutoff: each is one PUT of the whole file.
BIG_TREE = {"big/twelve.bin": 12 * MiB, "big/twenty-four.bin": 24 * MiB, "small.txt": 1_000, "sub/tiny.bin": 70_000}


def test_rclone_sync_of_files_over_10_mib_check_and_sync_again(
    rclone: Rclone, s3: BaseClient, bucket_name: str, tmp_path: Path
) -> None:
    local = tmp_path / "tree"
    expected = make_tree(local, files=BIG_TREE)
    remote = f"{rclone.remote}:{bucket_name}"
    rclone("mkdir", remote)

    first = rclone("sync", "-v", str(local), f"{remote}/tree")
    assert len(logged(first.stderr, "Copied (new)")) == len(BIG_TREE), first.stderr
    listed = s3.list_objects_v2(Bucket=bucket_name, Prefix="tree/")["Contents"]
    assert {o["Key"]: o["Size"] for o in listed} == {f"tree/{k}": v for k, v in BIG_TREE.items()}
    single_put = f'"{hashlib.md5((local / "big/twenty-four.bin").read_bytes()).hexdigest()}"'
    assert s3.head_object(Bucket=bucket_name, Key="tree/big/twenty-four.bin")["ETag"] == single_put

    checked = rclone("check", str(local), f"{remote}/tree")
    assert "0 differences found" in checked.stderr and f"{len(BIG_TREE)} matching files" in checked.stderr, (
        checked.stderr
    )
    assert "hashes could not be checked" not in checked.stderr, checked.stderr

    again = rclone("sync", "-v", str(local), f"{remote}/tree")
    assert "There was nothing to transfer" in again.stderr and not logged(again.stderr, "Copied"), again.stderr

    back = tmp_path / "back"
    rclone("sync", f"{remote}/tree", str(back))
    assert digests(back) == expected


def rclone_version_name(key: str, modified: dt.datetime) -> str:
    """The name `--s3-versions` gives an old version: `doc-v2006-01-02-150405-000.txt` (UTC, ms)."""
    stem, dot, ext = key.rpartition(".")
    t = modified.astimezone(dt.UTC)
    return f"{stem}-v{t:%Y-%m-%d-%H%M%S}-{t.microsecond // 1000:03d}{dot}{ext}"


def versions_of(s3: BaseClient, bucket: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    listed = s3.list_object_versions(Bucket=bucket)
    return listed.get("Versions", []), listed.get("DeleteMarkers", [])


def names(rclone: Rclone, path: str, *options: str) -> list[str]:
    return sorted(entry["Path"] for entry in json.loads(rclone("lsjson", "-R", *options, path).stdout))


def test_rclone_versions_restore_an_old_one_and_suspend(
    rclone: Rclone, s3: BaseClient, bucket_name: str, tmp_path: Path
) -> None:
    remote = f"{rclone.remote}:{bucket_name}"
    rclone("mkdir", remote)
    assert rclone("backend", "versioning", remote).stdout.strip() == "Unversioned"
    assert rclone("backend", "versioning", remote, "Enabled").stdout.strip() == "Enabled"
    assert s3.get_bucket_versioning(Bucket=bucket_name)["Status"] == "Enabled"

    doc = tmp_path / "doc.txt"
    for body in ("version one\n", "version two, longer\n"):
        doc.write_text(body)
        rclone("copyto", str(doc), f"{remote}/doc.txt")
    rclone("deletefile", f"{remote}/doc.txt")
    assert names(rclone, remote) == []
    versions, [marker] = versions_of(s3, bucket_name)
    assert marker["IsLatest"] and [v["Size"] for v in versions] == [20, 12]  # newest first
    second, first = versions

    # Each old version under a name of its own, made from its LastModified.
    old = [rclone_version_name("doc.txt", v["LastModified"]) for v in (first, second)]
    assert names(rclone, remote, "--s3-versions") == sorted(old)
    assert rclone("cat", "--s3-versions", f"{remote}/{old[1]}").stdout == "version two, longer\n"
    # The bucket as it was between the two uploads: only the first version.
    between = f"{(second['LastModified'] - dt.timedelta(milliseconds=1)).astimezone(dt.UTC):%Y-%m-%dT%H:%M:%S.%fZ}"
    assert names(rclone, remote, "--s3-version-at", between) == ["doc.txt"]
    assert rclone("cat", "--s3-version-at", between, f"{remote}/doc.txt").stdout == "version one\n"
    # Every version down to a local directory: a backup of the history.
    rclone("copy", "--s3-versions", remote, str(tmp_path / "history"))
    assert {p.name: p.read_text() for p in (tmp_path / "history").iterdir()} == {
        old[0]: "version one\n",
        old[1]: "version two, longer\n",
    }

    # Restore the first version: a server-side copy of that version onto the key.
    restored = rclone("copyto", "-v", "--s3-versions", f"{remote}/{old[0]}", f"{remote}/doc.txt")
    assert "server-side copy" in restored.stderr, restored.stderr
    assert rclone("cat", f"{remote}/doc.txt").stdout == "version one\n"
    versions, markers = versions_of(s3, bucket_name)
    assert [(v["Size"], v["IsLatest"]) for v in versions] == [(12, True), (20, False), (12, False)]
    assert [m["VersionId"] for m in markers] == [marker["VersionId"]] and not markers[0]["IsLatest"]

    # Suspended: a new upload is the `null` version; cleanup-hidden removes everything else.
    assert rclone("backend", "versioning", remote, "Suspended").stdout.strip() == "Suspended"
    assert s3.get_bucket_versioning(Bucket=bucket_name)["Status"] == "Suspended"
    doc.write_text("version three, suspended\n")
    rclone("copyto", str(doc), f"{remote}/doc.txt")
    rclone("backend", "cleanup-hidden", remote)
    versions, markers = versions_of(s3, bucket_name)
    assert [(v["VersionId"], v["Size"], v["IsLatest"]) for v in versions] == [("null", 25, True)] and markers == []
    assert names(rclone, remote, "--s3-versions") == ["doc.txt"]
    assert rclone("backend", "versioning", remote).stdout.strip() == "Suspended"


# aws-cli v2 s3api: versions, one step a test ---------------------------------------------------------
# Each step starts from a bucket boto3 prepares (`versioned_doc`), so a failure names the step and
# the steps run on both cores.
@dataclass
class VersionedDoc:
    """A versioned bucket holding two versions of doc.txt: v1 "first body\n", v2 (latest) 20 bytes."""

    name: str
    v1: str
    v2: str

    @property
    def bucket(self) -> tuple[str, str]:
        return ("--bucket", self.name)


@pytest.fixture
def versioned_doc(s3: BaseClient, bucket_name: str) -> VersionedDoc:
    s3.create_bucket(Bucket=bucket_name)
    s3.put_bucket_versioning(Bucket=bucket_name, VersioningConfiguration={"Status": "Enabled"})
    v1, v2 = (
        s3.put_object(Bucket=bucket_name, Key="doc.txt", Body=body)["VersionId"]
        for body in (b"first body\n", b"second, longer body\n")
    )
    return VersionedDoc(bucket_name, v1, v2)


def restore_v1_by_copy(aws2: AwsCli, doc: VersionedDoc) -> str:
    """Copy v1 onto the key: a third version with v1's body; its version id."""
    source = f"{doc.name}/doc.txt?versionId={doc.v1}"
    copied = as_json(aws2("s3api", "copy-object", *doc.bucket, "--key", "doc.txt", "--copy-source", source))
    assert copied["CopySourceVersionId"] == doc.v1 and copied["VersionId"] not in (doc.v1, doc.v2)
    return str(copied["VersionId"])


def test_aws_v2_enables_versioning_and_puts_two_versions(aws2: AwsCli, bucket_name: str, tmp_path: Path) -> None:
    bucket = ("--bucket", bucket_name)
    aws2("s3", "mb", f"s3://{bucket_name}")
    aws2("s3api", "put-bucket-versioning", *bucket, "--versioning-configuration", "Status=Enabled")
    assert as_json(aws2("s3api", "get-bucket-versioning", *bucket)) == {"Status": "Enabled"}
    put = []
    for body in ("first body\n", "second, longer body\n"):
        (tmp_path / "body").write_text(body)
        put.append(as_json(aws2("s3api", "put-object", *bucket, "--key", "doc.txt", "--body", str(tmp_path / "body"))))
    v1, v2 = (answer["VersionId"] for answer in put)
    listed = as_json(aws2("s3api", "list-object-versions", *bucket))
    assert [(v["VersionId"], v["IsLatest"], v["Size"]) for v in listed["Versions"]] == [(v2, True, 20), (v1, False, 11)]
    assert "DeleteMarkers" not in listed


def test_aws_v2_gets_an_old_version_and_restores_it_by_copy(
    aws2: AwsCli, versioned_doc: VersionedDoc, tmp_path: Path
) -> None:
    doc = versioned_doc
    old = tmp_path / "old.txt"
    got = as_json(aws2("s3api", "get-object", *doc.bucket, "--key", "doc.txt", "--version-id", doc.v1, str(old)))
    assert got["VersionId"] == doc.v1 and old.read_text() == "first body\n"
    v3 = restore_v1_by_copy(aws2, doc)
    assert aws2("s3", "cp", f"s3://{doc.name}/doc.txt", "-").stdout == "first body\n"
    listed = as_json(aws2("s3api", "list-object-versions", *doc.bucket))
    assert [v["VersionId"] for v in listed["Versions"] if v["IsLatest"]] == [v3]


def test_aws_v2_delete_adds_a_marker_that_hides_the_key(aws2: AwsCli, versioned_doc: VersionedDoc) -> None:
    doc = versioned_doc
    deleted = as_json(aws2("s3api", "delete-object", *doc.bucket, "--key", "doc.txt"))
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    missing = aws2("s3api", "head-object", *doc.bucket, "--key", "doc.txt", check=False)
    assert missing.returncode != 0 and "Not Found" in missing.stderr, missing.stderr
    assert aws2("s3", "ls", f"s3://{doc.name}/").stdout == ""
    listed = as_json(aws2("s3api", "list-object-versions", *doc.bucket))
    assert [(m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]] == [(marker, True)]
    assert [(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [(doc.v2, False), (doc.v1, False)]
    # One entry a page: aws-cli follows NextKeyMarker / NextVersionIdMarker and gets the same lists.
    paged = as_json(aws2("s3api", "list-object-versions", *doc.bucket, "--page-size", "1"))
    assert (paged["Versions"], paged["DeleteMarkers"]) == (listed["Versions"], listed["DeleteMarkers"])


def test_aws_v2_deleting_the_marker_undeletes(aws2: AwsCli, s3: BaseClient, versioned_doc: VersionedDoc) -> None:
    doc = versioned_doc
    marker = s3.delete_object(Bucket=doc.name, Key="doc.txt")["VersionId"]
    undeleted = as_json(aws2("s3api", "delete-object", *doc.bucket, "--key", "doc.txt", "--version-id", marker))
    assert undeleted == {"DeleteMarker": True, "VersionId": marker}
    assert aws2("s3", "cp", f"s3://{doc.name}/doc.txt", "-").stdout == "second, longer body\n"
    listed = as_json(aws2("s3api", "list-object-versions", *doc.bucket))
    assert "DeleteMarkers" not in listed and [v["VersionId"] for v in listed["Versions"] if v["IsLatest"]] == [doc.v2]


def test_aws_v2_delete_objects_by_version_empties_the_bucket(
    aws2: AwsCli, s3: BaseClient, versioned_doc: VersionedDoc
) -> None:
    doc = versioned_doc
    v3 = restore_v1_by_copy(aws2, doc)
    doomed = {"Objects": [{"Key": "doc.txt", "VersionId": v} for v in (doc.v1, doc.v2, v3)], "Quiet": False}
    gone = as_json(aws2("s3api", "delete-objects", *doc.bucket, "--delete", json.dumps(doomed)))
    assert sorted(d["VersionId"] for d in gone["Deleted"]) == sorted((doc.v1, doc.v2, v3)) and "Errors" not in gone
    assert s3.list_object_versions(Bucket=doc.name).get("Versions") is None
    aws2("s3", "rb", f"s3://{doc.name}")


# aws-cli: a retried Complete, GetObjectAttributes with checksums ----------------------------------
def test_aws_retried_complete_and_object_attributes_of_a_multipart_object_with_crc32(
    aws: AwsCli, aws2: AwsCli, bucket_name: str, tmp_path: Path
) -> None:
    key = ("--bucket", bucket_name, "--key", "parts.bin")
    aws("s3", "mb", f"s3://{bucket_name}")
    bodies = [os.urandom(5 * MiB), os.urandom(1_000)]
    upload = as_json(aws("s3api", "create-multipart-upload", *key, "--checksum-algorithm", "CRC32"))["UploadId"]
    parts = []
    for number, body in enumerate(bodies, 1):
        path = tmp_path / f"part{number}"
        path.write_bytes(body)
        answer = as_json(
            aws(
                "s3api",
                "upload-part",
                *key,
                "--upload-id",
                upload,
                "--part-number",
                str(number),
                "--body",
                str(path),
                "--checksum-algorithm",
                "CRC32",
            )
        )
        assert answer["ChecksumCRC32"] == b64(crc32(body))
        parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": answer["ChecksumCRC32"]})

    etag = f'"{hashlib.md5(b"".join(hashlib.md5(b).digest() for b in bodies)).hexdigest()}-2"'
    composite = b64(crc32(b"".join(crc32(b) for b in bodies)))
    listed = json.dumps({"Parts": parts})
    complete = ("s3api", "complete-multipart-upload", *key, "--upload-id", upload, "--multipart-upload", listed)
    first = as_json(aws(*complete))
    assert (first["ETag"], first["ChecksumCRC32"]) == (etag, f"{composite}-2")
    # The client retries (a lost answer): the same upload, the same parts, the same answer.
    assert as_json(aws(*complete))["ETag"] == etag
    assert as_json(aws2(*complete))["ETag"] == etag

    wanted = ("--object-attributes", "ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
    for client in (aws, aws2):
        attributes = as_json(client("s3api", "get-object-attributes", *key, *wanted))
        assert attributes["ETag"] == etag.strip('"')  # GetObjectAttributes gives it unquoted
        assert attributes["ObjectSize"] == 5 * MiB + 1_000 and attributes["StorageClass"] == "STANDARD"
        # AWS's own examples disagree on whether the `-<parts>` suffix is here; both name these parts.
        assert attributes["Checksum"]["ChecksumCRC32"] == composite, attributes  # no "-N": the count is PartsCount
        object_parts = attributes["ObjectParts"]
        assert object_parts["TotalPartsCount"] == 2 and object_parts["IsTruncated"] is False, object_parts
        assert object_parts["Parts"] == [
            {"PartNumber": 1, "Size": 5 * MiB, "ChecksumCRC32": parts[0]["ChecksumCRC32"]},
            {"PartNumber": 2, "Size": 1_000, "ChecksumCRC32": parts[1]["ChecksumCRC32"]},
        ]

    # One part by number, as `aws s3api get-object --part-number` asks for it.
    second = tmp_path / "second"
    got = as_json(aws2("s3api", "get-object", *key, "--part-number", "2", str(second)))
    assert (got["PartsCount"], got["ContentLength"]) == (2, 1_000) and second.read_bytes() == bodies[1]


# s3cmd --------------------------------------------------------------------------------------------
def test_s3cmd_multipart_puts_and_del_in_a_versioned_bucket(
    s3cmd: S3cmd, s3: BaseClient, bucket_name: str, tmp_path: Path
) -> None:
    """s3cmd has no versioning commands; in a versioned bucket it sees the latest version only."""
    base = f"s3://{bucket_name}"
    s3cmd("mb", base)
    s3.put_bucket_versioning(Bucket=bucket_name, VersioningConfiguration={"Status": "Enabled"})
    files = make_tree(tmp_path / "up", files={"one.bin": 16 * MiB, "two.bin": 16 * MiB + 100})
    for name in files:
        s3cmd("put", str(tmp_path / "up" / name), f"{base}/big.bin")
    assert s3cmd("ls", f"{base}/").stdout.split()[2:] == [str(16 * MiB + 100), f"{base}/big.bin"]
    versions, _ = versions_of(s3, bucket_name)
    assert [(v["Size"], v["ETag"]) for v in versions] == [
        (16 * MiB + 100, multipart_etag(tmp_path / "up/two.bin", S3CMD_PART)),
        (16 * MiB, multipart_etag(tmp_path / "up/one.bin", S3CMD_PART)),
    ]
    s3cmd("get", f"{base}/big.bin", str(tmp_path / "back.bin"))
    assert sha256(tmp_path / "back.bin") == files["two.bin"]

    s3cmd("del", f"{base}/big.bin")
    assert s3cmd("ls", f"{base}/").stdout == ""
    versions, [marker] = versions_of(s3, bucket_name)
    assert marker["Key"] == "big.bin" and marker["IsLatest"] and len(versions) == 2
    refused = s3cmd("rb", base, check=False)
    assert refused.returncode != 0 and "BucketNotEmpty" in refused.stderr, refused.stderr
