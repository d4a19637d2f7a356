"""Error responses as S3 sends them: XML <Error> with Code, Message, Resource and RequestId, the
right status, an x-amz-request-id header on every response; NotImplemented and MethodNotAllowed.

https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import Endpoint, failure, unique_bucket_name
from s3_signing import error_of, send


@pytest.fixture
def error_bucket(http_endpoint: Endpoint) -> str:
    name = unique_bucket_name()
    s3 = http_endpoint.client()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"0123456789")
    return name


@pytest.mark.parametrize(
    "method, path, query, headers, signed, status, code",
    [
        ("GET", "/{b}/k", "", {}, False, 403, "AccessDenied"),
        ("GET", "/{b}-missing/k", "", {}, True, 404, "NoSuchBucket"),
        ("GET", "/{b}/missing", "", {}, True, 404, "NoSuchKey"),
        ("GET", "/{b}/k", "", {"Range": "bytes=100-"}, True, 416, "InvalidRange"),
        ("GET", "/{b}/k", "", {"If-Match": '"nope"'}, True, 412, "PreconditionFailed"),
        ("POST", "/{b}/k", "", {}, True, 405, "MethodNotAllowed"),
        ("PUT", "/", "", {}, True, 405, "MethodNotAllowed"),
        ("PUT", "/{b}", "policy", {}, True, 501, "NotImplemented"),
        ("GET", "/{b}", "tagging", {}, True, 404, "NoSuchTagSet"),
        ("GET", "/{b}/k", "attributes", {}, True, 400, "InvalidArgument"),  # without x-amz-object-attributes
        ("POST", "/{b}/k", "restore", {}, True, 501, "NotImplemented"),
        ("PUT", "/Bad_Name", "", {}, True, 400, "InvalidBucketName"),
        ("GET", "/{b}", "max-keys=lots", {}, True, 400, "InvalidArgument"),
        ("GET", "/{b}/k", "versionId=123", {}, True, 400, "InvalidArgument"),
    ],
)
def test_error_responses_are_s3_xml(
    http_endpoint: Endpoint,
    error_bucket: str,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    signed: bool,
    status: int,
    code: str,
) -> None:
    path = path.replace("{b}", error_bucket)
    if signed:
        response = send(http_endpoint, method, path, query=query, headers=list(headers.items()))
    else:
        with http_endpoint.http() as client:
            response = client.request(method, http_endpoint.url + path, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/xml")
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    error = error_of(response)
    assert error["Code"] == code
    assert error["Message"]
    assert error["Resource"] == path
    assert error["RequestId"] == response.headers["x-amz-request-id"]


def test_request_id_on_every_response(http_endpoint: Endpoint, error_bucket: str) -> None:
    ids = set()
    for method, path in [
        ("GET", "/"),
        ("GET", f"/{error_bucket}/k"),
        ("HEAD", f"/{error_bucket}/k"),
        ("HEAD", f"/{error_bucket}/missing"),
        ("HEAD", f"/{error_bucket}-missing"),
    ]:
        response = send(http_endpoint, method, path)
        ids.add(response.headers["x-amz-request-id"])
        if method == "HEAD":
            assert response.content == b""
    assert len(ids) == 5


def test_not_implemented_operations_through_boto3(s3_http: BaseClient, http_bucket: str) -> None:
    attempts = [
        lambda: s3_http.put_bucket_policy(Bucket=http_bucket, Policy="{}"),
        lambda: s3_http.get_bucket_policy(Bucket=http_bucket),
        lambda: s3_http.get_bucket_encryption(Bucket=http_bucket),
        lambda: s3_http.get_object_lock_configuration(Bucket=http_bucket),
        lambda: s3_http.put_bucket_versioning(
            Bucket=http_bucket,
            VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"},
            MFA="serial 123456",
        ),
    ]
    for attempt in attempts:
        with pytest.raises(ClientError) as e:
            attempt()
        assert failure(e) == (501, "NotImplemented"), e.value.operation_name
    assert "Status" not in s3_http.get_bucket_versioning(Bucket=http_bucket)


def test_server_side_encryption_is_refused_not_ignored(s3_http: BaseClient, http_bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"x", ServerSideEncryption="AES256")
    assert failure(e) == (501, "NotImplemented")


@pytest.mark.parametrize(
    ("method", "query", "body"),
    [  # a configuration document takes 1 MiB; a Delete, sized for 1,000 keys of 1024 bytes, about 6 MiB
        (
            "PUT",
            "tagging=",
            b"<Tagging><TagSet><Tag><Key>" + b"k" * (2 << 20) + b"</Key><Value/></Tag></TagSet></Tagging>",
        ),
        ("POST", "delete=", b"<Delete><Object><Key>" + b"k" * (7 << 20) + b"</Key></Object></Delete>"),
    ],
    ids=["tagging", "delete"],
)
def test_xml_request_bodies_are_bounded(
    http_endpoint: Endpoint, error_bucket: str, method: str, query: str, body: bytes
) -> None:
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    response = send(http_endpoint, method, f"/{error_bucket}", query=query, headers=[("Content-MD5", md5)], body=body)
    assert (response.status_code, error_of(response)["Code"]) == (400, "MaxMessageLengthExceeded")


def test_delete_objects_needs_an_integrity_header(http_endpoint: Endpoint, error_bucket: str) -> None:
    body = b"<Delete><Object><Key>k</Key></Object></Delete>"
    response = send(http_endpoint, "POST", f"/{error_bucket}", query="delete=", body=body)
    assert (response.status_code, error_of(response)["Code"]) == (400, "InvalidRequest")
    assert http_endpoint.client().head_object(Bucket=error_bucket, Key="k")["ContentLength"] == 10


def test_malformed_delete_body(http_endpoint: Endpoint, error_bucket: str) -> None:
    for body in (b"<Delete><Object><Key>k</Key>", b"<NotDelete/>", b"<Delete></Delete>"):
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        response = send(
            http_endpoint, "POST", f"/{error_bucket}", query="delete=", headers=[("Content-MD5", md5)], body=body
        )
        assert (response.status_code, error_of(response)["Code"]) == (400, "MalformedXML"), body
