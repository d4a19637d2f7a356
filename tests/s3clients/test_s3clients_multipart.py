"""Multipart uploads and server-side copies by the real clients: aws-cli, rclone, s3cmd.

Files sit just above each client's multipart threshold (aws-cli 8 MiB, s3cmd 15 MiB, rclone's
lowered to 5 MiB); content is compared by SHA-256, and the stored ETag shows that multipart was used.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from botocore.client import BaseClient
from s3clients_helpers import (
    AwsCli,
    Rclone,
    S3cmd,
    digests,
    make_tree,
    random_file,
    sha256,
)

MiB = 1 << 20
RCLONE_MULTIPART = ("--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M")


def multipart_etag(path: Path, chunk: int) -> str:
    """The ETag S3 gives `path` uploaded in parts of `chunk` bytes."""
    body = path.read_bytes()
    md5s = [hashlib.md5(body[i : i + chunk]).digest() for i in range(0, len(body), chunk)]
    return f'"{hashlib.md5(b"".join(md5s)).hexdigest()}-{len(md5s)}"'


def stored_sha256(s3: BaseClient, bucket: str, key: str) -> str:
    return hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


# aws-cli ------------------------------------------------------------------------------------------
def test_aws_cp_just_over_the_threshold(aws: AwsCli, s3: BaseClient, bucket_name: str, tmp_path: Path) -> None:
    aws("s3", "mb", f"s3://{bucket_name}")
    source = random_file(tmp_path / "up.bin", 8 * MiB + 1)
    aws("s3", "cp", "--no-progress", str(source), f"s3://{bucket_name}/big.bin")
    head = s3.head_object(Bucket=bucket_name, Key="big.bin")
    assert head["ETag"] == multipart_etag(source, 8 * MiB)
    assert head["ContentLength"] == 8 * MiB + 1

    down = tmp_path / "down.bin"
    aws("s3", "cp", "--no-progress", f"s3://{bucket_name}/big.bin", str(down))
    assert sha256(down) == sha256(source)


def test_aws_sync_of_a_tree_with_a_large_file(aws: AwsCli, s3: BaseClient, bucket_name: str, tmp_path: Path) -> None:
    aws("s3", "mb", f"s3://{bucket_name}")
    local = tmp_path / "tree"
    expected = make_tree(local, files={"small.txt": 1000, "sub/large.bin": 20 * MiB})
    remote = f"s3://{bucket_name}/tree/"

    aws("s3", "sync", "--no-progress", str(local), remote)
    assert s3.head_object(Bucket=bucket_name, Key="tree/sub/large.bin")["ETag"] == multipart_etag(
        local / "sub/large.bin", 8 * MiB
    )
    assert stored_sha256(s3, bucket_name, "tree/sub/large.bin") == expected["sub/large.bin"]
    assert aws("s3", "sync", "--no-progress", str(local), remote).stdout.strip() == ""

    back = tmp_path / "back"
    aws("s3", "sync", "--no-progress", remote, str(back))
    assert digests(back) == expected


# rclone -------------------------------------------------------------------------------------------
def lsjson(rclone: Rclone, path: str) -> dict[str, dict[str, object]]:
    out = rclone("lsjson", "--recursive", "--files-only", "--hash", f"{rclone.remote}:{path}").stdout
    return {entry["Path"]: entry for entry in json.loads(out)}


def test_rclone_multipart_copy_check_and_server_side_copies(
    rclone: Rclone, s3: BaseClient, bucket_name: str, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    source = random_file(local / "big.bin", 12 * MiB)
    remote = f"{rclone.remote}:{bucket_name}"
    rclone("mkdir", remote)

    rclone("copy", *RCLONE_MULTIPART, str(local), f"{remote}/dir")
    assert s3.head_object(Bucket=bucket_name, Key="dir/big.bin")["ETag"] == multipart_etag(source, 5 * MiB)
    checked = rclone("check", str(local), f"{remote}/dir")
    assert "0 differences found" in checked.stderr and "1 matching files" in checked.stderr, checked.stderr
    assert "hashes could not be checked" not in checked.stderr, checked.stderr

    copied = rclone("copyto", "-v", *RCLONE_MULTIPART, f"{remote}/dir/big.bin", f"{remote}/copied.bin")
    assert "server-side copy" in copied.stderr, copied.stderr
    moved = rclone("moveto", "-v", *RCLONE_MULTIPART, f"{remote}/copied.bin", f"{remote}/moved.bin")
    assert "server-side" in moved.stderr, moved.stderr
    assert sorted(lsjson(rclone, bucket_name)) == ["dir/big.bin", "moved.bin"]

    # touch of an existing object: rclone sets the new time by copying the object onto itself.
    rclone("touch", "-t", "2020-01-02T03:04:05", f"{remote}/moved.bin")
    entry = lsjson(rclone, bucket_name)["moved.bin"]
    assert str(entry["ModTime"]).startswith("2020-01-02T03:04:05"), entry
    assert entry["Size"] == 12 * MiB

    rclone("copyto", f"{remote}/moved.bin", str(tmp_path / "back.bin"))
    assert sha256(tmp_path / "back.bin") == sha256(source)
    assert stored_sha256(s3, bucket_name, "moved.bin") == sha256(source)
    checked = rclone("check", str(local), f"{remote}/dir")
    assert "0 differences found" in checked.stderr, checked.stderr


# s3cmd --------------------------------------------------------------------------------------------
def test_s3cmd_multipart_put_and_get(s3cmd: S3cmd, s3: BaseClient, bucket_name: str, tmp_path: Path) -> None:
    base = f"s3://{bucket_name}"
    s3cmd("mb", base)
    source = random_file(tmp_path / "big.bin", 20 * MiB)
    s3cmd("put", str(source), f"{base}/big.bin")
    # The ETag shows the parts (s3cmd names them only with its progress output, which is off).
    assert s3.head_object(Bucket=bucket_name, Key="big.bin")["ETag"] == multipart_etag(source, 15 * MiB)

    back = tmp_path / "back.bin"
    s3cmd("get", f"{base}/big.bin", str(back))
    assert sha256(back) == sha256(source)
