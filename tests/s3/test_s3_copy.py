"""CopyObject through boto3 against the real server: directives, self-copy, conditions, access, storage.

https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html. A copy shares the source's
chunks: no byte is copied, which the data dir shows.
"""

from __future__ import annotations

import hashlib
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import Endpoint, failure, unique_bucket_name

BODY = random.Random(1).randbytes(100_000)
ATTRS: dict[str, Any] = {
    "ContentType": "text/x-source",
    "CacheControl": "max-age=5",
    "ContentDisposition": 'attachment; filename="src.txt"',
    "ContentLanguage": "fr",
    "Metadata": {"origin": "source", "mtime": "1600000000"},
}


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def put_source(s3: BaseClient, bucket: str, key: str = "src", body: bytes = BODY) -> dict[str, Any]:
    return s3.put_object(Bucket=bucket, Key=key, Body=body, **ATTRS)  # type: ignore[no-any-return]


def copy(s3: BaseClient, bucket: str, key: str, source: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    return s3.copy_object(Bucket=bucket, Key=key, CopySource=source, **kwargs)  # type: ignore[no-any-return]


def attributes(result: dict[str, Any]) -> dict[str, Any]:
    return {
        name: result.get(name)
        for name in ("ContentType", "CacheControl", "ContentDisposition", "ContentLanguage", "Metadata")
    }


def test_copy_within_a_bucket_keeps_content_and_attributes(s3: BaseClient, bucket: str) -> None:
    etag = put_source(s3, bucket)["ETag"]
    result = copy(s3, bucket, "dir/copy", {"Bucket": bucket, "Key": "src"})
    assert result["CopyObjectResult"]["ETag"] == etag
    assert abs(result["CopyObjectResult"]["LastModified"] - datetime.now(UTC)) < timedelta(minutes=5)

    got = s3.get_object(Bucket=bucket, Key="dir/copy")
    assert sha256(got["Body"].read()) == sha256(BODY)
    assert got["ETag"] == etag
    assert attributes(got) == attributes(ATTRS)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["dir/copy", "src"]
    # The source is untouched, and deleting it leaves the copy readable.
    s3.delete_object(Bucket=bucket, Key="src")
    assert sha256(s3.get_object(Bucket=bucket, Key="dir/copy")["Body"].read()) == sha256(BODY)


def test_copy_across_buckets_with_an_encoded_key(s3: BaseClient, bucket: str) -> None:
    other = unique_bucket_name()
    s3.create_bucket(Bucket=other)
    key = "dir/näme with space+plus&=?.bin"
    put_source(s3, bucket, key)
    copy(s3, other, "copy", {"Bucket": bucket, "Key": key}, MetadataDirective="COPY")
    got = s3.get_object(Bucket=other, Key="copy")
    assert sha256(got["Body"].read()) == sha256(BODY)
    assert attributes(got) == attributes(ATTRS)


def test_copy_source_as_a_string_with_a_leading_slash(s3_http: BaseClient, http_bucket: str) -> None:
    put_source(s3_http, http_bucket)
    copy(s3_http, http_bucket, "copy", f"/{http_bucket}/src")  # type: ignore[arg-type]
    assert sha256(s3_http.get_object(Bucket=http_bucket, Key="copy")["Body"].read()) == sha256(BODY)


def test_replace_replaces_metadata_and_standard_headers(s3: BaseClient, bucket: str) -> None:
    put_source(s3, bucket)
    copy(
        s3,
        bucket,
        "copy",
        {"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        ContentType="application/json",
        Metadata={"new": "yes"},
    )
    got = s3.get_object(Bucket=bucket, Key="copy")
    assert sha256(got["Body"].read()) == sha256(BODY)
    assert attributes(got) == {
        "ContentType": "application/json",
        "CacheControl": None,
        "ContentDisposition": None,
        "ContentLanguage": None,
        "Metadata": {"new": "yes"},
    }
    # The source keeps its own.
    assert attributes(s3.head_object(Bucket=bucket, Key="src")) == attributes(ATTRS)


def test_copy_onto_itself_with_replace_sets_new_metadata(s3: BaseClient, bucket: str) -> None:
    """rclone's way to set a modification time: the content stays, the metadata is new."""
    put_source(s3, bucket)
    before = s3.head_object(Bucket=bucket, Key="src")
    time.sleep(1.1)  # LastModified has a resolution of one second
    result = copy(
        s3,
        bucket,
        "src",
        {"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        ContentType="text/x-source",
        Metadata={"mtime": "1700000000.123"},
    )
    assert result["CopyObjectResult"]["ETag"] == before["ETag"]
    got = s3.get_object(Bucket=bucket, Key="src")
    assert sha256(got["Body"].read()) == sha256(BODY)
    assert got["Metadata"] == {"mtime": "1700000000.123"}
    assert got["ContentType"] == "text/x-source"
    assert got.get("CacheControl") is None
    assert got["LastModified"] > before["LastModified"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["src"]


def test_copy_onto_itself_without_replace_is_refused(s3_http: BaseClient, http_bucket: str) -> None:
    put_source(s3_http, http_bucket)
    for directive in ({}, {"MetadataDirective": "COPY"}):
        with pytest.raises(ClientError) as e:
            copy(s3_http, http_bucket, "src", {"Bucket": http_bucket, "Key": "src"}, **directive)
        assert failure(e) == (400, "InvalidRequest")
    assert attributes(s3_http.head_object(Bucket=http_bucket, Key="src")) == attributes(ATTRS)


def test_unknown_metadata_directive(s3_http: BaseClient, http_bucket: str) -> None:
    put_source(s3_http, http_bucket)
    with pytest.raises(ClientError) as e:
        copy(s3_http, http_bucket, "copy", {"Bucket": http_bucket, "Key": "src"}, MetadataDirective="MERGE")
    assert failure(e) == (400, "InvalidArgument")


# x-amz-copy-source-if-* -------------------------------------------------------------------------
PAST = datetime(2001, 1, 1, tzinfo=UTC)
FUTURE = datetime.now(UTC) + timedelta(days=365)


@pytest.mark.parametrize(
    "condition, holds",
    [
        ({"CopySourceIfMatch": "ETAG"}, True),
        ({"CopySourceIfMatch": '"0123456789abcdef0123456789abcdef"'}, False),
        ({"CopySourceIfNoneMatch": '"0123456789abcdef0123456789abcdef"'}, True),
        ({"CopySourceIfNoneMatch": "ETAG"}, False),
        ({"CopySourceIfModifiedSince": PAST}, True),
        ({"CopySourceIfModifiedSince": FUTURE}, False),
        ({"CopySourceIfUnmodifiedSince": FUTURE}, True),
        ({"CopySourceIfUnmodifiedSince": PAST}, False),
    ],
    ids=lambda v: v if isinstance(v, bool) else next(iter(v)),
)
def test_copy_source_conditions(s3_http: BaseClient, http_bucket: str, condition: dict[str, Any], holds: bool) -> None:
    etag = put_source(s3_http, http_bucket)["ETag"]
    condition = {k: etag if v == "ETAG" else v for k, v in condition.items()}
    source = {"Bucket": http_bucket, "Key": "src"}
    if holds:
        copy(s3_http, http_bucket, "copy", source, **condition)
        assert s3_http.head_object(Bucket=http_bucket, Key="copy")["ETag"] == etag
        return
    with pytest.raises(ClientError) as e:
        copy(s3_http, http_bucket, "copy", source, **condition)
    assert failure(e) == (412, "PreconditionFailed")
    with pytest.raises(ClientError) as e:
        s3_http.head_object(Bucket=http_bucket, Key="copy")
    assert failure(e)[0] == 404


# missing sources and other owners -----------------------------------------------------------------
def test_missing_source(s3_http: BaseClient, http_bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        copy(s3_http, http_bucket, "copy", {"Bucket": http_bucket, "Key": "nope"})
    assert failure(e) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as e:
        copy(s3_http, http_bucket, "copy", {"Bucket": unique_bucket_name(), "Key": "nope"})
    assert failure(e) == (404, "NoSuchBucket")


def test_copy_from_another_users_bucket_is_denied(
    http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str
) -> None:
    put_source(s3_http, http_bucket)
    bob = http_endpoint.client(http_endpoint.users["bob"])
    mine = unique_bucket_name()
    bob.create_bucket(Bucket=mine)
    with pytest.raises(ClientError) as e:
        copy(bob, mine, "stolen", {"Bucket": http_bucket, "Key": "src"})
    assert failure(e) == (403, "AccessDenied")
    # Nor into the admin's bucket from his own.
    bob.put_object(Bucket=mine, Key="his", Body=b"bob's")
    with pytest.raises(ClientError) as e:
        copy(bob, http_bucket, "planted", {"Bucket": mine, "Key": "his"})
    assert failure(e) == (403, "AccessDenied")
    assert [o["Key"] for o in s3_http.list_objects_v2(Bucket=http_bucket)["Contents"]] == ["src"]


# storage ------------------------------------------------------------------------------------------
def chunk_files(data_dir: Path) -> set[Path]:
    return {p for p in (data_dir / "chunks").rglob("*") if p.is_file()}


def test_copy_shares_storage(http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str) -> None:
    body = random.Random(2).randbytes(6 << 20)
    s3_http.put_object(Bucket=http_bucket, Key="big", Body=body)
    before_files = chunk_files(http_endpoint.data_dir)
    before_usage = http_endpoint.usage("admin")

    other = unique_bucket_name()
    s3_http.create_bucket(Bucket=other)
    copy(s3_http, http_bucket, "big-copy", {"Bucket": http_bucket, "Key": "big"})
    copy(
        s3_http,
        other,
        "big-copy",
        {"Bucket": http_bucket, "Key": "big"},
        MetadataDirective="REPLACE",
        Metadata={"m": "1"},
    )
    assert chunk_files(http_endpoint.data_dir) - before_files == set()  # no new chunk file
    # Usage is logical: each copy counts in full.
    assert http_endpoint.usage("admin") == (before_usage[0] + 2 * len(body), before_usage[1] + 2)
    for bucket in (http_bucket, other):
        assert sha256(s3_http.get_object(Bucket=bucket, Key="big-copy")["Body"].read()) == sha256(body)
