"""The router's request -> operation table: (method, path, query, headers) -> AWS operation name.

None means S3 does not allow the method on that resource (MethodNotAllowed).
"""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from s3api.app import split_path
from s3api.auth import parse_query
from s3api.router import Op, classify

COPY = {"x-amz-copy-source": "/src/key"}

TABLE: list[tuple[str, str, str, dict[str, str], Op | None]] = [
    # service
    ("GET", "/", "", {}, Op.ListBuckets),
    ("HEAD", "/", "", {}, None),
    ("PUT", "/", "", {}, None),
    ("DELETE", "/", "", {}, None),
    ("POST", "/", "", {}, None),
    # buckets
    ("PUT", "/b", "", {}, Op.CreateBucket),
    ("DELETE", "/b", "", {}, Op.DeleteBucket),
    ("HEAD", "/b", "", {}, Op.HeadBucket),
    ("GET", "/b", "", {}, Op.ListObjects),
    ("GET", "/b/", "", {}, Op.ListObjects),
    ("GET", "/b", "prefix=a&delimiter=%2F&marker=x", {}, Op.ListObjects),
    ("GET", "/b", "list-type=2", {}, Op.ListObjectsV2),
    ("GET", "/b", "list-type=2&continuation-token=abc&start-after=x", {}, Op.ListObjectsV2),
    ("GET", "/b", "list-type=1", {}, Op.ListObjects),
    ("GET", "/b", "versions", {}, Op.ListObjectVersions),
    ("GET", "/b", "versions&key-marker=a&version-id-marker=null", {}, Op.ListObjectVersions),
    ("GET", "/b", "location", {}, Op.GetBucketLocation),
    ("GET", "/b", "versioning", {}, Op.GetBucketVersioning),
    ("PUT", "/b", "versioning", {}, Op.PutBucketVersioning),
    ("GET", "/b", "acl", {}, Op.GetBucketAcl),
    ("PUT", "/b", "acl", {}, Op.PutBucketAcl),
    ("POST", "/b", "delete", {}, Op.DeleteObjects),
    ("POST", "/b", "delete=", {}, Op.DeleteObjects),
    ("POST", "/b", "", {}, Op.PostObject),
    ("GET", "/b", "uploads", {}, Op.ListMultipartUploads),
    ("GET", "/b", "cors", {}, Op.GetBucketCors),
    ("PUT", "/b", "cors", {}, Op.PutBucketCors),
    ("DELETE", "/b", "cors", {}, Op.DeleteBucketCors),
    ("GET", "/b", "lifecycle", {}, Op.GetBucketLifecycleConfiguration),
    ("PUT", "/b", "lifecycle", {}, Op.PutBucketLifecycleConfiguration),
    ("DELETE", "/b", "lifecycle", {}, Op.DeleteBucketLifecycle),
    ("GET", "/b", "tagging", {}, Op.GetBucketTagging),
    ("PUT", "/b", "tagging", {}, Op.PutBucketTagging),
    ("DELETE", "/b", "tagging", {}, Op.DeleteBucketTagging),
    ("GET", "/b", "policy", {}, Op.GetBucketPolicy),
    ("PUT", "/b", "policy", {}, Op.PutBucketPolicy),
    ("DELETE", "/b", "policy", {}, Op.DeleteBucketPolicy),
    ("GET", "/b", "encryption", {}, Op.GetBucketEncryption),
    ("GET", "/b", "object-lock", {}, Op.GetObjectLockConfiguration),
    ("OPTIONS", "/b", "", {"origin": "https://x", "access-control-request-method": "PUT"}, Op.Preflight),
    ("DELETE", "/b", "delete", {}, None),
    ("POST", "/b", "location", {}, None),
    # objects
    ("GET", "/b/k", "", {}, Op.GetObject),
    ("GET", "/b/k", "versionId=null", {}, Op.GetObject),
    ("GET", "/b/k", "response-content-type=text%2Fplain&partNumber=1", {}, Op.GetObject),
    ("HEAD", "/b/k", "", {}, Op.HeadObject),
    ("PUT", "/b/k", "", {}, Op.PutObject),
    ("PUT", "/b/k", "", COPY, Op.CopyObject),
    ("DELETE", "/b/k", "", {}, Op.DeleteObject),
    ("DELETE", "/b/k", "versionId=null", {}, Op.DeleteObject),
    ("POST", "/b/k", "", {}, None),
    ("GET", "/b/k", "acl", {}, Op.GetObjectAcl),
    ("PUT", "/b/k", "acl", {}, Op.PutObjectAcl),
    ("GET", "/b/k", "tagging", {}, Op.GetObjectTagging),
    ("PUT", "/b/k", "tagging", {}, Op.PutObjectTagging),
    ("DELETE", "/b/k", "tagging", {}, Op.DeleteObjectTagging),
    ("GET", "/b/k", "attributes", {}, Op.GetObjectAttributes),
    ("POST", "/b/k", "uploads", {}, Op.CreateMultipartUpload),
    ("POST", "/b/k", "uploads=", {}, Op.CreateMultipartUpload),
    ("PUT", "/b/k", "partNumber=1&uploadId=u", {}, Op.UploadPart),
    ("PUT", "/b/k", "partNumber=1&uploadId=u", COPY, Op.UploadPartCopy),
    ("POST", "/b/k", "uploadId=u", {}, Op.CompleteMultipartUpload),
    ("DELETE", "/b/k", "uploadId=u", {}, Op.AbortMultipartUpload),
    ("GET", "/b/k", "uploadId=u", {}, Op.ListParts),
    ("POST", "/b/k", "restore", {}, Op.RestoreObject),
    ("POST", "/b/k", "select&select-type=2", {}, Op.SelectObjectContent),
    ("OPTIONS", "/b/k", "", {}, Op.Preflight),
    # keys that look like sub-resources or paths stay keys
    ("GET", "/b/acl", "", {}, Op.GetObject),
    ("GET", "/b/a/b/c", "", {}, Op.GetObject),
    ("PUT", "/b/dir/", "", {}, Op.PutObject),
    ("GET", "/b/with%20space%2Bplus", "", {}, Op.GetObject),
]


@pytest.mark.parametrize(
    "method, path, query, headers, op",
    TABLE,
    ids=[f"{m} {p}?{q}{'+copy' if h is COPY else ''}" for m, p, q, h, _ in TABLE],
)
def test_request_to_operation(method: str, path: str, query: str, headers: dict[str, str], op: Op | None) -> None:
    bucket, key, _ = split_path(unquote(path), "127.0.0.1:8000", "")
    route = classify(method, bucket, key, dict(parse_query(query)), headers)
    assert route.op == op


@pytest.mark.parametrize(
    "path, host, domain, expected",
    [
        ("/", "127.0.0.1:8000", "", ("", "", False)),
        ("/b", "127.0.0.1:8000", "", ("b", "", False)),
        ("/b/", "127.0.0.1:8000", "", ("b", "", False)),
        ("/b/k/with/slashes", "127.0.0.1:8000", "", ("b", "k/with/slashes", False)),
        ("/b//double", "127.0.0.1:8000", "", ("b", "/double", False)),
        ("/b/k", "s3.example.org", "s3.example.org", ("b", "k", False)),  # path style on the domain itself
        ("/k/x", "photos.s3.example.org:9000", "s3.example.org", ("photos", "k/x", True)),  # virtual-hosted
        ("/", "photos.s3.example.org", "s3.example.org", ("photos", "", True)),
        ("/b/k", "photos.s3.example.org", "", ("b", "k", False)),  # no domain configured: path style
    ],
)
def test_split_path(path: str, host: str, domain: str, expected: tuple[str, str, bool]) -> None:
    assert split_path(path, host, domain) == expected


def test_every_operation_has_a_row() -> None:
    """The table names every operation the router knows (so a new one gets a test)."""
    assert {op for *_, op in TABLE if op is not None} == set(Op)
