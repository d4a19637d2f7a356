"""Object tagging: Get/Put/DeleteObjectTagging, x-amz-tagging on PutObject, multipart and copy."""

from __future__ import annotations

import base64
import hashlib

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import Endpoint, failure
from s3_signing import error_of, send


def _tags(s3: BaseClient, bucket: str, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def test_tags_from_the_put_header_are_kept_and_counted(s3: BaseClient, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a", Body=b"x", Tagging="k1=v1&k2=v%202&empty=")
    assert _tags(s3, bucket, "a") == {"k1": "v1", "k2": "v 2", "empty": ""}
    assert s3.head_object(Bucket=bucket, Key="a")["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "3"
    assert s3.get_object(Bucket=bucket, Key="a")["TagCount"] == 3


def test_put_and_delete_object_tagging(s3: BaseClient, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    assert _tags(s3, bucket, "a") == {}
    s3.put_object_tagging(Bucket=bucket, Key="a", Tagging={"TagSet": [{"Key": "project", "Value": "ñandú"}]})
    assert _tags(s3, bucket, "a") == {"project": "ñandú"}
    s3.delete_object_tagging(Bucket=bucket, Key="a")
    assert _tags(s3, bucket, "a") == {}
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == b"x"


def test_a_tag_set_with_a_key_twice_is_refused(s3: BaseClient, bucket: str) -> None:
    """The count and lengths of tags: test_s3_limits.py."""
    s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    tag_set = [{"Key": "same", "Value": "1"}, {"Key": "same", "Value": "2"}]
    with pytest.raises(ClientError) as e:
        s3.put_object_tagging(Bucket=bucket, Key="a", Tagging={"TagSet": tag_set})
    assert failure(e) == (400, "InvalidTag")


def test_tagging_a_missing_object(s3: BaseClient, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.get_object_tagging(Bucket=bucket, Key="missing")
    assert failure(e) == (404, "NoSuchKey")


def test_copy_keeps_or_replaces_tags(s3: BaseClient, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"x", Tagging="a=1")
    s3.copy_object(Bucket=bucket, Key="kept", CopySource={"Bucket": bucket, "Key": "src"})
    assert _tags(s3, bucket, "kept") == {"a": "1"}
    s3.copy_object(
        Bucket=bucket, Key="new", CopySource={"Bucket": bucket, "Key": "src"}, TaggingDirective="REPLACE", Tagging="b=2"
    )
    assert _tags(s3, bucket, "new") == {"b": "2"}
    # Onto itself: changing only the tags is a change, as for AWS.
    s3.copy_object(
        Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"}, TaggingDirective="REPLACE", Tagging="c=3"
    )
    assert _tags(s3, bucket, "src") == {"c": "3"}


def test_multipart_upload_carries_its_tags(s3: BaseClient, bucket: str) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="m", Tagging="mp=yes")
    part = s3.upload_part(Bucket=bucket, Key="m", UploadId=up["UploadId"], PartNumber=1, Body=b"abc")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="m",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert _tags(s3, bucket, "m") == {"mp": "yes"}


@pytest.mark.parametrize(
    "body",
    [
        b"<Tagging><a>b</a></Tagging>",
        b"<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value><Extra/></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Other/></TagSet></Tagging>",
    ],
    ids=["unknown-element", "extra-in-tag", "extra-in-tagset"],
)
def test_a_tagging_document_with_unknown_elements_is_malformed(
    http_endpoint: Endpoint, http_bucket: str, body: bytes
) -> None:
    http_endpoint.client().put_object(Bucket=http_bucket, Key="k", Body=b"x")
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    response = send(
        http_endpoint, "PUT", f"/{http_bucket}/k", query="tagging=", body=body, headers=[("Content-MD5", md5)]
    )
    assert (response.status_code, error_of(response)["Code"]) == (400, "MalformedXML")
