"""aws-cli v1 against `pyblob serve`: `aws s3` (mb, cp, ls, sync, rm, rb, presign) and `aws s3api`.

Content is compared by SHA-256, on the way back through the same client and through boto3.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.client import BaseClient
from s3clients_helpers import TREE, AwsCli, digests, make_tree, random_file, sha256


def listed(aws: AwsCli, url: str) -> dict[str, int]:
    """Key -> size from `aws s3 ls --recursive` (columns: date, time, size, key with its spaces)."""
    lines = aws("s3", "ls", "--recursive", url).stdout.splitlines()
    return {key: int(size) for _, _, size, key in (line.split(maxsplit=3) for line in lines)}


def lines_starting(output: str, word: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(word)]


def stored_digests(s3: BaseClient, bucket: str, prefix: str) -> dict[str, str]:
    """Key (without `prefix`) -> SHA-256 of every object under `prefix`, read with boto3."""
    found = {}
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        found[obj["Key"][len(prefix) :]] = hashlib.sha256(body).hexdigest()
    return found


def test_mb_cp_up_and_down_ls_head_object(aws: AwsCli, s3: BaseClient, bucket_name: str, tmp_path: Path) -> None:
    assert aws("s3", "mb", f"s3://{bucket_name}").stdout.strip() == f"make_bucket: {bucket_name}"
    source = random_file(tmp_path / "up.bin", 3 << 20)
    key = "dir/näme with space+plus.bin"

    up = aws("s3", "cp", "--no-progress", str(source), f"s3://{bucket_name}/{key}")
    [uploaded] = lines_starting(up.stdout, "upload:")
    assert uploaded.endswith(f"up.bin to s3://{bucket_name}/{key}"), up.stdout
    down = tmp_path / "down.bin"
    aws("s3", "cp", "--no-progress", f"s3://{bucket_name}/{key}", str(down))
    assert sha256(down) == sha256(source)
    assert stored_digests(s3, bucket_name, "") == {key: sha256(source)}

    assert listed(aws, f"s3://{bucket_name}") == {key: 3 << 20}
    head = json.loads(aws("s3api", "head-object", "--bucket", bucket_name, "--key", key).stdout)
    assert head["ContentLength"] == 3 << 20
    assert head["ETag"] == f'"{hashlib.md5(source.read_bytes()).hexdigest()}"'


def test_sync_a_tree_up_and_down_then_again_transfers_nothing(
    aws: AwsCli, s3: BaseClient, bucket_name: str, tmp_path: Path
) -> None:
    aws("s3", "mb", f"s3://{bucket_name}")
    local = tmp_path / "tree"
    expected = make_tree(local)
    remote = f"s3://{bucket_name}/tree/"

    first = aws("s3", "sync", "--no-progress", str(local), remote)
    assert len(lines_starting(first.stdout, "upload:")) == len(TREE), first.stdout
    assert listed(aws, remote) == {f"tree/{rel}": size for rel, size in TREE.items()}
    assert stored_digests(s3, bucket_name, "tree/") == expected

    again = aws("s3", "sync", "--no-progress", str(local), remote)
    assert again.stdout.strip() == "", again.stdout

    copy = tmp_path / "copy"
    down = aws("s3", "sync", "--no-progress", remote, str(copy))
    assert len(lines_starting(down.stdout, "download:")) == len(TREE), down.stdout
    assert digests(copy) == expected
    assert aws("s3", "sync", "--no-progress", remote, str(copy)).stdout.strip() == ""


def test_rm_recursive_then_rb(aws: AwsCli, s3: BaseClient, bucket_name: str, tmp_path: Path) -> None:
    aws("s3", "mb", f"s3://{bucket_name}")
    make_tree(tmp_path / "tree")
    aws("s3", "sync", "--no-progress", str(tmp_path / "tree"), f"s3://{bucket_name}/")

    refused = aws("s3", "rb", f"s3://{bucket_name}", check=False)
    assert refused.returncode != 0 and "BucketNotEmpty" in refused.stderr, refused.stderr

    removed = aws("s3", "rm", "--recursive", f"s3://{bucket_name}/")
    assert sorted(lines_starting(removed.stdout, "delete:")) == sorted(
        f"delete: s3://{bucket_name}/{rel}" for rel in TREE
    )
    assert s3.list_objects_v2(Bucket=bucket_name)["KeyCount"] == 0

    assert aws("s3", "rb", f"s3://{bucket_name}").stdout.strip() == f"remove_bucket: {bucket_name}"
    assert bucket_name not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


@pytest.mark.parametrize("key", ["plain.txt", "sub dir/ü +&=.txt"])
def test_presigned_url_from_aws_s3_presign(aws: AwsCli, s3: BaseClient, bucket_name: str, key: str) -> None:
    """`aws s3 presign` (v1) signs with SigV2 when an endpoint URL is given; urllib fetches it."""
    body = b"presigned content " * 1000
    s3.create_bucket(Bucket=bucket_name)
    s3.put_object(Bucket=bucket_name, Key=key, Body=body)

    url = aws("s3", "presign", "--expires-in", "300", f"s3://{bucket_name}/{key}").stdout.strip()
    query = parse_qs(urlsplit(url).query)
    assert {"AWSAccessKeyId", "Signature", "Expires"} <= query.keys(), url
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as response:
        assert hashlib.sha256(response.read()).hexdigest() == hashlib.sha256(body).hexdigest()

    tampered = url.replace("Expires=", "Expires=1")
    with pytest.raises(urllib.error.HTTPError) as denied:
        opener.open(tampered, timeout=30)
    assert denied.value.code == 403


def test_lifecycle_rules_come_back_as_aws_cli_wrote_them(
    aws: AwsCli, aws2: AwsCli, s3: BaseClient, bucket_name: str, tmp_path: Path
) -> None:
    """What `aws s3api put-bucket-lifecycle-configuration` set is what `get-...` reads, form included:
    tools that diff the two (plans, drift checks) see no change."""
    s3.create_bucket(Bucket=bucket_name)
    rules = {
        "Rules": [
            {"ID": "empty", "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 7}},
            {
                "ID": "tag",
                "Filter": {"Tag": {"Key": "tmp", "Value": "yes"}},
                "Status": "Enabled",
                "Expiration": {"Days": 1},
            },
            {
                "ID": "versions",
                "Filter": {"Prefix": "docs/"},
                "Status": "Enabled",
                "NoncurrentVersionExpiration": {"NoncurrentDays": 30, "NewerNoncurrentVersions": 2},
            },
        ]
    }
    config = tmp_path / "lifecycle.json"
    config.write_text(json.dumps(rules))
    aws(
        "s3api",
        "put-bucket-lifecycle-configuration",
        "--bucket",
        bucket_name,
        "--lifecycle-configuration",
        f"file://{config}",
    )
    for client in (aws, aws2):
        got = json.loads(client("s3api", "get-bucket-lifecycle-configuration", "--bucket", bucket_name).stdout)
        assert got["Rules"] == rules["Rules"]
    legacy = {"Rules": [{"ID": "old", "Prefix": "logs/", "Status": "Enabled", "Expiration": {"Days": 3}}]}
    config.write_text(json.dumps(legacy))
    aws2(
        "s3api",
        "put-bucket-lifecycle-configuration",
        "--bucket",
        bucket_name,
        "--lifecycle-configuration",
        f"file://{config}",
    )
    got = json.loads(aws2("s3api", "get-bucket-lifecycle-configuration", "--bucket", bucket_name).stdout)
    assert got["Rules"] == legacy["Rules"]
