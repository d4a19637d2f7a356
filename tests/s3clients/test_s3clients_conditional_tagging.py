"""Issue 9 §2 and §3 through the real command-line clients, on the session server (default settings).

- conditional writes with aws-cli v1 (`s3api put-object --if-none-match '*'`, `--if-match`,
  `complete-multipart-upload --if-none-match`, `copy-object --if-match`, `delete-object --if-match`);
  aws-cli v2 as Debian ships it (2.9) predates these options;
- create-only uploads with s3cmd, which has no option of its own for them: `--add-header` sends
  If-None-Match, signed with V4 and with V2;
- bucket tagging with aws-cli v1 and v2 (`s3api put-/get-/delete-bucket-tagging`); s3cmd 2.3 has no
  tagging command.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from botocore.client import BaseClient
from s3clients_helpers import AwsCli, S3cmd


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(proc.stdout)


def refused(proc: subprocess.CompletedProcess[str], code: str) -> bool:
    return proc.returncode != 0 and f"({code})" in proc.stderr


def test_aws_cli_put_object_if_none_match_and_if_match(
    aws: AwsCli, s3: BaseClient, bucket_name: str, tmp_path: Path
) -> None:
    s3.create_bucket(Bucket=bucket_name)
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    put = ["s3api", "put-object", "--bucket", bucket_name, "--key", "lock"]
    etag = as_json(aws(*put, "--body", str(first), "--if-none-match", "*"))["ETag"]
    assert refused(aws(*put, "--body", str(second), "--if-none-match", "*", check=False), "PreconditionFailed")
    assert refused(
        aws(*put, "--body", str(second), "--if-match", '"0123456789abcdef0123456789abcdef"', check=False),
        "PreconditionFailed",
    )
    aws(*put, "--body", str(second), "--if-match", etag)
    assert s3.get_object(Bucket=bucket_name, Key="lock")["Body"].read() == b"second"
    missing = ["s3api", "put-object", "--bucket", bucket_name, "--key", "missing", "--body", str(first)]
    assert refused(aws(*missing, "--if-match", etag, check=False), "NoSuchKey")


def test_aws_cli_complete_copy_and_delete_with_conditions(aws: AwsCli, s3: BaseClient, bucket_name: str) -> None:
    s3.create_bucket(Bucket=bucket_name)
    upload_id = s3.create_multipart_upload(Bucket=bucket_name, Key="mp")["UploadId"]
    part = s3.upload_part(Bucket=bucket_name, Key="mp", UploadId=upload_id, PartNumber=1, Body=b"part")
    parts = json.dumps({"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    complete = [
        "s3api",
        "complete-multipart-upload",
        "--bucket",
        bucket_name,
        "--key",
        "mp",
        "--upload-id",
        upload_id,
        "--multipart-upload",
        parts,
        "--if-none-match",
        "*",
    ]
    etag = as_json(aws(*complete))["ETag"]
    copy = [
        "s3api",
        "copy-object",
        "--bucket",
        bucket_name,
        "--key",
        "mp",
        "--copy-source",
        f"{bucket_name}/mp",
        "--metadata-directive",
        "REPLACE",
        "--content-type",
        "text/plain",
    ]
    assert refused(aws(*copy, "--if-none-match", "*", check=False), "PreconditionFailed")
    etag = as_json(aws(*copy, "--if-match", etag))["CopyObjectResult"]["ETag"]
    delete = ["s3api", "delete-object", "--bucket", bucket_name, "--key", "mp"]
    assert refused(aws(*delete, "--if-match", '"0123456789abcdef0123456789abcdef"', check=False), "PreconditionFailed")
    aws(*delete, "--if-match", etag)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket_name)


def test_s3cmd_create_only_put_with_an_added_header(
    s3cmd: S3cmd, s3: BaseClient, bucket_name: str, tmp_path: Path
) -> None:
    s3.create_bucket(Bucket=bucket_name)
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    target = f"s3://{bucket_name}/lock"
    s3cmd("put", "--add-header=If-None-Match:*", str(first), target)
    again = s3cmd("put", "--add-header=If-None-Match:*", str(second), target, check=False)
    assert again.returncode != 0 and "412" in again.stderr, again.stderr
    assert s3.get_object(Bucket=bucket_name, Key="lock")["Body"].read() == b"first"


def bucket_tagging_round_trip(aws: AwsCli, s3: BaseClient, bucket: str) -> None:
    s3.create_bucket(Bucket=bucket)
    assert refused(aws("s3api", "get-bucket-tagging", "--bucket", bucket, check=False), "NoSuchTagSet")
    tagging = json.dumps({"TagSet": [{"Key": "team", "Value": "storage"}, {"Key": "cost-centre", "Value": "42 / ü"}]})
    aws("s3api", "put-bucket-tagging", "--bucket", bucket, "--tagging", tagging)
    assert as_json(aws("s3api", "get-bucket-tagging", "--bucket", bucket)) == json.loads(tagging)
    assert {t["Key"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]} == {"team", "cost-centre"}
    aws("s3api", "delete-bucket-tagging", "--bucket", bucket)
    assert refused(aws("s3api", "get-bucket-tagging", "--bucket", bucket, check=False), "NoSuchTagSet")


def test_aws_cli_v1_bucket_tagging(aws: AwsCli, s3: BaseClient, bucket_name: str) -> None:
    bucket_tagging_round_trip(aws, s3, bucket_name)


def test_aws_cli_v2_bucket_tagging(aws2: AwsCli, s3: BaseClient, bucket_name: str) -> None:
    aws2.version()
    bucket_tagging_round_trip(aws2, s3, bucket_name)
