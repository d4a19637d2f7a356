"""Bucket tagging (Put/Get/DeleteBucketTagging) and the `x-amz-tagging` header, through boto3 (issue 9 §3).

https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketTagging.html and its Get/Delete
siblings; the limits are S3's (https://docs.aws.amazon.com/AmazonS3/latest/userguide/CostAllocTagging.html):
at most 50 tags, keys of 1-128 and values of 0-256 Unicode characters, unique keys, letters, digits,
spaces and `+ - = . _ : / @`, no `aws:` prefix. What AWS answers for each refusal was measured on AWS
(the codes and elements asserted here).
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import Endpoint, failure, unique_bucket_name
from s3_signing import error_of, send


def tag_set(pairs: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in pairs.items()]}


def bucket_tags(s3: BaseClient, bucket: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}


def object_tags(s3: BaseClient, bucket: str, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def no_tag_set(s3: BaseClient, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert failure(e) == (404, "NoSuchTagSet")
    assert e.value.response["Error"]["BucketName"] == bucket


def test_put_get_replace_and_delete_bucket_tags(s3_http: BaseClient, http_bucket: str) -> None:
    no_tag_set(s3_http, http_bucket)
    put = s3_http.put_bucket_tagging(
        Bucket=http_bucket, Tagging=tag_set({"team": "storage", "empty": "", "ñandú": "ü @+-=._:/"})
    )
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 204  # as AWS answers it
    assert bucket_tags(s3_http, http_bucket) == {"team": "storage", "empty": "", "ñandú": "ü @+-=._:/"}
    s3_http.put_bucket_tagging(Bucket=http_bucket, Tagging=tag_set({"other": "1"}))  # the whole set is replaced
    assert bucket_tags(s3_http, http_bucket) == {"other": "1"}
    assert s3_http.delete_bucket_tagging(Bucket=http_bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    no_tag_set(s3_http, http_bucket)
    s3_http.delete_bucket_tagging(Bucket=http_bucket)  # deleting again is no error
    no_tag_set(s3_http, http_bucket)


def test_an_empty_tag_set_removes_the_tags(s3_http: BaseClient, http_bucket: str) -> None:
    s3_http.put_bucket_tagging(Bucket=http_bucket, Tagging=tag_set({"a": "1"}))
    s3_http.put_bucket_tagging(Bucket=http_bucket, Tagging={"TagSet": []})
    no_tag_set(s3_http, http_bucket)


def test_the_limits_themselves_are_allowed(s3_http: BaseClient, http_bucket: str) -> None:
    fifty = {f"k{i}": "v" for i in range(48)} | {"é" * 128: "ü" * 256, "x": ""}  # characters, not bytes
    s3_http.put_bucket_tagging(Bucket=http_bucket, Tagging=tag_set(fifty))
    assert bucket_tags(s3_http, http_bucket) == fifty


@pytest.mark.parametrize(
    "tags, message, elements",
    [
        ([("k", "v")] * 2, "Cannot provide multiple Tags with the same key", {"TagKey": "k"}),
        ([(f"k{i}", "v") for i in range(51)], None, {}),  # AWS's message for this one was not measured
        ([("k" * 129, "v")], "The TagKey you have provided is invalid", {"TagKey": "k" * 129}),
        ([("k", "v" * 257)], "The TagValue you have provided is invalid", {"TagKey": "k"}),
        ([("a,b", "v")], "The TagKey you have provided is invalid", {"TagKey": "a,b"}),
        ([("k", "a,b")], "The TagValue you have provided is invalid", {"TagKey": "k", "TagValue": "a,b"}),
        ([("aws:owner", "v")], "System tags cannot be added/updated by requester", {"TagKey": "aws:owner"}),
    ],
    ids=["duplicate-key", "51-tags", "long-key", "long-value", "comma-in-key", "comma-in-value", "aws-prefix"],
)
def test_invalid_tag_sets_are_refused(
    s3_http: BaseClient, http_bucket: str, tags: list[tuple[str, str]], message: str | None, elements: dict[str, str]
) -> None:
    s3_http.put_bucket_tagging(Bucket=http_bucket, Tagging=tag_set({"kept": "yes"}))
    with pytest.raises(ClientError) as e:
        s3_http.put_bucket_tagging(Bucket=http_bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags]})
    assert failure(e) == (400, "InvalidTag")
    error = e.value.response["Error"]
    assert error["Message"] == message or message is None
    assert {name: error.get(name) for name in elements} == elements
    assert bucket_tags(s3_http, http_bucket) == {"kept": "yes"}


def test_a_tag_without_a_value_element_is_malformed(http_endpoint: Endpoint, http_bucket: str) -> None:
    xml = b"<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>"
    md5 = base64.b64encode(hashlib.md5(xml).digest()).decode()
    response = send(http_endpoint, "PUT", f"/{http_bucket}", query="tagging=", headers=[("Content-MD5", md5)], body=xml)
    assert (response.status_code, error_of(response)["Code"]) == (400, "MalformedXML")


def test_bucket_tags_belong_to_the_bucket(http_endpoint: Endpoint, s3_http: BaseClient) -> None:
    name = unique_bucket_name()
    s3_http.create_bucket(Bucket=name)
    s3_http.put_bucket_tagging(Bucket=name, Tagging=tag_set({"a": "1"}))
    bob = http_endpoint.client(http_endpoint.users["bob"])
    for call in (bob.get_bucket_tagging, bob.delete_bucket_tagging):
        with pytest.raises(ClientError) as e:
            call(Bucket=name)
        assert failure(e) == (403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        bob.put_bucket_tagging(Bucket=name, Tagging=tag_set({"b": "2"}))
    assert failure(e) == (403, "AccessDenied")
    s3_http.delete_bucket(Bucket=name)
    s3_http.create_bucket(Bucket=name)
    no_tag_set(s3_http, name)  # a bucket made again under the same name starts without tags
    with pytest.raises(ClientError) as e:
        s3_http.get_bucket_tagging(Bucket=name + "-missing")
    assert failure(e) == (404, "NoSuchBucket")


# the x-amz-tagging header ------------------------------------------------------------------------
def test_every_pair_of_the_tagging_header_is_kept(s3_http: BaseClient, http_bucket: str) -> None:
    s3_http.put_object(Bucket=http_bucket, Key="put", Body=b"x", Tagging="a=b&c&d=&e%20f=g%2Bh")
    expected = {"a": "b", "c": "", "d": "", "e f": "g+h"}
    assert object_tags(s3_http, http_bucket, "put") == expected
    upload = s3_http.create_multipart_upload(Bucket=http_bucket, Key="mp", Tagging="a=b&c")["UploadId"]
    part = s3_http.upload_part(Bucket=http_bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"y")
    s3_http.complete_multipart_upload(
        Bucket=http_bucket,
        Key="mp",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert object_tags(s3_http, http_bucket, "mp") == {"a": "b", "c": ""}
    s3_http.copy_object(
        Bucket=http_bucket,
        Key="copy",
        CopySource={"Bucket": http_bucket, "Key": "put"},
        TaggingDirective="REPLACE",
        Tagging="c&x=y",
    )
    assert object_tags(s3_http, http_bucket, "copy") == {"c": "", "x": "y"}


@pytest.mark.parametrize("header", ["k=1&k=2", "k=a,b"], ids=["duplicate", "comma"])
def test_a_tagging_header_aws_refuses(s3_http: BaseClient, http_bucket: str, header: str) -> None:
    with pytest.raises(ClientError) as e:
        s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"x", Tagging=header)
    assert failure(e) == (400, "InvalidArgument")
    assert e.value.response["Error"]["ArgumentName"] == "x-amz-tagging"
