"""Golden tests: the exact bytes of every XML response shape, from the S3 app in-process.

The app runs over a store with a fixed clock, so dates are fixed too; requests are signed by
botocore's SigV4 signer. Shapes follow the examples of AWS's API reference for each operation
(https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html and its siblings).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from objstore import Store, StoreConfig
from pyblob.routes import RESERVED_PATHS
from s3api.app import S3App
from s3api.context import S3Config
from s3api.xml import render

ACCESS_KEY, SECRET = "GOLDENKEY", "golden/secret+key="
NOW = 1_700_000_000.25
DATE = "2023-11-14T22:13:20.250Z"
HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n'
NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
OWNER = "<Owner><ID>admin</ID><DisplayName>admin</DisplayName></Owner>"
KEYS = ["a.txt", "dir/b.txt", "dir/sub/c.txt", "e f"]


class S3:
    """The S3 app over a fixed-clock store, and signed requests to it."""

    def __init__(self, root: Path):
        self.store = Store(root, StoreConfig(durable=False), clock=lambda: NOW)
        self.store.accounts.create_user_with_credentials("admin", access_key=ACCESS_KEY, secret_key=SECRET)
        self.app = S3App(lambda: self.store, S3Config(reserved_buckets=RESERVED_PATHS))

    def request(
        self, method: str, path: str, query: str = "", body: bytes = b"", headers: dict[str, str] | None = None
    ) -> httpx.Response:
        url = f"http://testserver{path}" + (f"?{query}" if query else "")
        signed = AWSRequest(method=method, url=url, data=body, headers=headers or {})
        S3SigV4Auth(Credentials(ACCESS_KEY, SECRET), "s3", "us-east-1").add_auth(signed)
        return asyncio.run(self._send(method, url, dict(signed.headers.items()), body))

    async def _send(self, method: str, url: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.request(method, url, headers=headers, content=body)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    """Buckets photos (holding KEYS, each with its name as content) and docs-2."""
    s3 = S3(tmp_path_factory.mktemp("golden"))
    for bucket in ("photos", "docs-2"):
        assert s3.request("PUT", f"/{bucket}").status_code == 200
    for key in KEYS:
        assert s3.request("PUT", "/photos/" + key.replace(" ", "%20"), body=key.encode()).status_code == 200
    yield s3
    s3.store.close()


def etag(key: str) -> str:
    return f'"{hashlib.md5(key.encode()).hexdigest()}"'


def contents(key: str, owner: bool = True, shown: str | None = None) -> str:
    return (
        f"<Contents><Key>{shown or key}</Key><LastModified>{DATE}</LastModified><ETag>{etag(key)}</ETag>"
        f"<Size>{len(key)}</Size><StorageClass>STANDARD</StorageClass>"
        "<ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm><ChecksumType>FULL_OBJECT</ChecksumType>"
        + (OWNER if owner else "")
        + "</Contents>"
    )


def version(key: str) -> str:
    return (
        f"<Version><Key>{key}</Key><VersionId>null</VersionId><IsLatest>true</IsLatest>"
        f"<LastModified>{DATE}</LastModified><ETag>{etag(key)}</ETag><Size>{len(key)}</Size>"
        f"<StorageClass>STANDARD</StorageClass>{OWNER}"
        "<ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm><ChecksumType>FULL_OBJECT</ChecksumType></Version>"
    )


def xml(body: str) -> bytes:
    return HEAD + body.encode()


def test_list_buckets(s3: S3) -> None:
    bucket = (
        "<Bucket><Name>{}</Name><CreationDate>"
        + DATE
        + "</CreationDate><BucketRegion>us-east-1</BucketRegion></Bucket>"
    )
    buckets = bucket.format("docs-2") + bucket.format("photos")
    expected = f"<ListAllMyBucketsResult {NS}>{OWNER}<Buckets>{buckets}</Buckets></ListAllMyBucketsResult>"
    response = s3.request("GET", "/")
    assert response.headers["content-type"] == "application/xml"
    assert response.content == xml(expected)


def test_list_objects_v1(s3: S3) -> None:
    expected = (
        f"<ListBucketResult {NS}><Name>photos</Name><Prefix></Prefix><Marker></Marker><MaxKeys>1000</MaxKeys>"
        f"<IsTruncated>false</IsTruncated>{''.join(contents(k) for k in KEYS)}</ListBucketResult>"
    )
    assert s3.request("GET", "/photos").content == xml(expected)


def test_list_objects_v1_with_delimiter_truncated(s3: S3) -> None:
    expected = (
        f"<ListBucketResult {NS}><Name>photos</Name><Prefix></Prefix><Marker></Marker><MaxKeys>2</MaxKeys>"
        "<Delimiter>/</Delimiter><IsTruncated>true</IsTruncated><NextMarker>dir/</NextMarker>"
        f"{contents('a.txt')}<CommonPrefixes><Prefix>dir/</Prefix></CommonPrefixes></ListBucketResult>"
    )
    assert s3.request("GET", "/photos", "delimiter=%2F&max-keys=2").content == xml(expected)


def test_list_objects_v2_truncated(s3: S3) -> None:
    token = base64.urlsafe_b64encode(b"v1:a.txt").decode()
    expected = (
        f"<ListBucketResult {NS}><Name>photos</Name><Prefix></Prefix><MaxKeys>1</MaxKeys><Delimiter>/</Delimiter>"
        f"<KeyCount>1</KeyCount><IsTruncated>true</IsTruncated><NextContinuationToken>{token}</NextContinuationToken>"
        f"{contents('a.txt')}</ListBucketResult>"
    )
    assert s3.request("GET", "/photos", "list-type=2&delimiter=%2F&max-keys=1&fetch-owner=true").content == xml(
        expected
    )


def test_list_objects_v2_continued_with_prefixes(s3: S3) -> None:
    token = base64.urlsafe_b64encode(b"v1:a.txt").decode()
    expected = (
        f"<ListBucketResult {NS}><Name>photos</Name><Prefix></Prefix><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter>"
        f"<KeyCount>2</KeyCount><IsTruncated>false</IsTruncated><ContinuationToken>{token}</ContinuationToken>"
        f"{contents('e f', owner=False)}<CommonPrefixes><Prefix>dir/</Prefix></CommonPrefixes></ListBucketResult>"
    )
    query = f"list-type=2&delimiter=%2F&continuation-token={quote(token, safe='')}"
    assert s3.request("GET", "/photos", query).content == xml(expected)


def test_list_objects_v2_url_encoded(s3: S3) -> None:
    expected = (
        f"<ListBucketResult {NS}><Name>photos</Name><Prefix>e%20</Prefix><MaxKeys>1000</MaxKeys>"
        f"<KeyCount>1</KeyCount><IsTruncated>false</IsTruncated><StartAfter>d%20</StartAfter>"
        f"{contents('e f', owner=False, shown='e%20f')}<EncodingType>url</EncodingType></ListBucketResult>"
    )
    query = "list-type=2&encoding-type=url&prefix=e%20&start-after=d%20"
    assert s3.request("GET", "/photos", query).content == xml(expected)


def test_list_objects_empty(s3: S3) -> None:
    expected = (
        f"<ListBucketResult {NS}><Name>docs-2</Name><Prefix></Prefix><MaxKeys>1000</MaxKeys>"
        "<KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>"
    )
    assert s3.request("GET", "/docs-2", "list-type=2").content == xml(expected)


def test_list_object_versions(s3: S3) -> None:
    expected = (
        f"<ListVersionsResult {NS}><Name>photos</Name><Prefix></Prefix><KeyMarker></KeyMarker>"
        "<VersionIdMarker></VersionIdMarker><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>"
        "<NextKeyMarker>dir/b.txt</NextKeyMarker><NextVersionIdMarker>null</NextVersionIdMarker>"
        f"{version('a.txt')}{version('dir/b.txt')}</ListVersionsResult>"
    )
    assert s3.request("GET", "/photos", "versions&max-keys=2").content == xml(expected)


def test_list_object_versions_from_markers(s3: S3) -> None:
    expected = (
        f"<ListVersionsResult {NS}><Name>photos</Name><Prefix></Prefix><KeyMarker>dir/b.txt</KeyMarker>"
        "<VersionIdMarker>null</VersionIdMarker><MaxKeys>1000</MaxKeys>"
        f"<IsTruncated>false</IsTruncated>{version('dir/sub/c.txt')}{version('e f')}"
        "</ListVersionsResult>"
    )
    query = "versions&key-marker=dir%2Fb.txt&version-id-marker=null"
    assert s3.request("GET", "/photos", query).content == xml(expected)


def test_delete_result(s3: S3) -> None:
    assert s3.request("PUT", "/docs-2/gone", body=b"x").status_code == 200
    body = b"<Delete><Object><Key>gone</Key></Object><Object><Key>x</Key><VersionId>v1</VersionId></Object></Delete>"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    expected = (
        f"<DeleteResult {NS}><Deleted><Key>gone</Key></Deleted><Error><Key>x</Key><VersionId>v1</VersionId>"
        "<Code>NoSuchVersion</Code><Message>The specified version does not exist.</Message></Error></DeleteResult>"
    )
    assert s3.request("POST", "/docs-2", "delete=", body, {"Content-MD5": md5}).content == xml(expected)


def test_delete_result_quiet_and_empty(s3: S3) -> None:
    body = b"<Delete><Quiet>true</Quiet><Object><Key>never-was</Key></Object></Delete>"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    assert s3.request("POST", "/docs-2", "delete=", body, {"Content-MD5": md5}).content == xml(
        f"<DeleteResult {NS}></DeleteResult>"
    )


def test_location_constraint(s3: S3) -> None:
    assert s3.request("GET", "/photos", "location").content == xml(f"<LocationConstraint {NS}></LocationConstraint>")


def test_location_constraint_of_another_region() -> None:
    assert render("LocationConstraint", {"#text": "eu-west-1"}) == xml(
        f"<LocationConstraint {NS}>eu-west-1</LocationConstraint>"
    )


def test_versioning_configuration(s3: S3) -> None:
    assert s3.request("GET", "/photos", "versioning").content == xml(
        f"<VersioningConfiguration {NS}></VersioningConfiguration>"
    )


def test_bucket_acl(s3: S3) -> None:
    grantee = (
        '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">'
        "<ID>admin</ID><DisplayName>admin</DisplayName></Grantee>"
    )
    expected = (
        f"<AccessControlPolicy {NS}>{OWNER}<AccessControlList><Grant>{grantee}<Permission>FULL_CONTROL</Permission>"
        "</Grant></AccessControlList></AccessControlPolicy>"
    )
    assert s3.request("GET", "/photos", "acl").content == xml(expected)


def test_error_no_such_key(s3: S3) -> None:
    response = s3.request("GET", "/photos/missing%20key")
    request_id = response.headers["x-amz-request-id"]
    expected = (
        "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>missing key</Key>"
        f"<Resource>/photos/missing key</Resource><RequestId>{request_id}</RequestId></Error>"
    )
    assert (response.status_code, response.content) == (404, xml(expected))


def test_error_no_such_bucket(s3: S3) -> None:
    response = s3.request("GET", "/nothing-here", "list-type=2")
    request_id = response.headers["x-amz-request-id"]
    expected = (
        "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>"
        f"<BucketName>nothing-here</BucketName><Resource>/nothing-here</Resource><RequestId>{request_id}</RequestId></Error>"
    )
    assert (response.status_code, response.content) == (404, xml(expected))


def test_error_invalid_range(s3: S3) -> None:
    response = s3.request("GET", "/photos/a.txt", headers={"Range": "bytes=10-"})
    request_id = response.headers["x-amz-request-id"]
    expected = (
        "<Error><Code>InvalidRange</Code><Message>The requested range is not satisfiable</Message>"
        f"<ActualObjectSize>5</ActualObjectSize><Resource>/photos/a.txt</Resource><RequestId>{request_id}</RequestId></Error>"
    )
    assert (response.status_code, response.content) == (416, xml(expected))
    assert response.headers["content-range"] == "bytes */5"


def test_error_without_credentials(s3: S3) -> None:
    response = asyncio.run(s3._send("GET", "http://testserver/photos", {}, b""))
    request_id = response.headers["x-amz-request-id"]
    expected = (
        "<Error><Code>AccessDenied</Code><Message>Access Denied</Message>"
        f"<Resource>/photos</Resource><RequestId>{request_id}</RequestId></Error>"
    )
    assert (response.status_code, response.content) == (403, xml(expected))


def test_error_to_head_has_no_body(s3: S3) -> None:
    response = s3.request("HEAD", "/photos/missing")
    assert (response.status_code, response.content) == (404, b"")
    assert response.headers["x-amz-request-id"]
