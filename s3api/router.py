"""Request -> S3 operation, as a table. Classify once, then dispatch once.

Names are AWS's operation names. Operations pyblob recognises but does not implement answer
`NotImplemented`; methods S3 does not allow on a resource answer `MethodNotAllowed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Op(StrEnum):
    """The S3 operations, spelled as AWS spells them; `classify` maps a request to one, `HANDLERS`
    (app.py) an operation to its handler. Known-but-unsupported ones answer NotImplemented."""

    ListBuckets = "ListBuckets"
    CreateBucket = "CreateBucket"
    DeleteBucket = "DeleteBucket"
    HeadBucket = "HeadBucket"
    GetBucketLocation = "GetBucketLocation"
    GetBucketVersioning = "GetBucketVersioning"
    PutBucketVersioning = "PutBucketVersioning"
    ListObjects = "ListObjects"
    ListObjectsV2 = "ListObjectsV2"
    ListObjectVersions = "ListObjectVersions"
    GetBucketAcl = "GetBucketAcl"
    PutBucketAcl = "PutBucketAcl"
    DeleteObjects = "DeleteObjects"
    PostObject = "PostObject"
    ListMultipartUploads = "ListMultipartUploads"
    GetBucketCors = "GetBucketCors"
    PutBucketCors = "PutBucketCors"
    DeleteBucketCors = "DeleteBucketCors"
    GetBucketLifecycleConfiguration = "GetBucketLifecycleConfiguration"
    PutBucketLifecycleConfiguration = "PutBucketLifecycleConfiguration"
    DeleteBucketLifecycle = "DeleteBucketLifecycle"
    GetBucketTagging = "GetBucketTagging"
    PutBucketTagging = "PutBucketTagging"
    DeleteBucketTagging = "DeleteBucketTagging"
    GetBucketPolicy = "GetBucketPolicy"
    PutBucketPolicy = "PutBucketPolicy"
    DeleteBucketPolicy = "DeleteBucketPolicy"
    GetBucketEncryption = "GetBucketEncryption"
    GetObjectLockConfiguration = "GetObjectLockConfiguration"
    GetObject = "GetObject"
    HeadObject = "HeadObject"
    PutObject = "PutObject"
    CopyObject = "CopyObject"
    DeleteObject = "DeleteObject"
    GetObjectAcl = "GetObjectAcl"
    PutObjectAcl = "PutObjectAcl"
    GetObjectTagging = "GetObjectTagging"
    PutObjectTagging = "PutObjectTagging"
    DeleteObjectTagging = "DeleteObjectTagging"
    GetObjectAttributes = "GetObjectAttributes"
    CreateMultipartUpload = "CreateMultipartUpload"
    UploadPart = "UploadPart"
    UploadPartCopy = "UploadPartCopy"
    CompleteMultipartUpload = "CompleteMultipartUpload"
    AbortMultipartUpload = "AbortMultipartUpload"
    ListParts = "ListParts"
    RestoreObject = "RestoreObject"
    SelectObjectContent = "SelectObjectContent"
    Preflight = "Preflight"  # CORS OPTIONS


@dataclass(frozen=True)
class Route:
    """A request classified: its operation, bucket and key."""

    op: Op | None  # None: method not allowed on this resource
    bucket: str = ""
    key: str = ""


# (method, sub-resource in the query) -> operation; sub-resource "" means none of the listed ones.
SERVICE = {("GET", ""): Op.ListBuckets}
BUCKET = {
    ("GET", "location"): Op.GetBucketLocation,
    ("GET", "versioning"): Op.GetBucketVersioning,
    ("PUT", "versioning"): Op.PutBucketVersioning,
    ("GET", "versions"): Op.ListObjectVersions,
    ("GET", "acl"): Op.GetBucketAcl,
    ("PUT", "acl"): Op.PutBucketAcl,
    ("GET", "uploads"): Op.ListMultipartUploads,
    ("GET", "cors"): Op.GetBucketCors,
    ("PUT", "cors"): Op.PutBucketCors,
    ("DELETE", "cors"): Op.DeleteBucketCors,
    ("GET", "lifecycle"): Op.GetBucketLifecycleConfiguration,
    ("PUT", "lifecycle"): Op.PutBucketLifecycleConfiguration,
    ("DELETE", "lifecycle"): Op.DeleteBucketLifecycle,
    ("GET", "tagging"): Op.GetBucketTagging,
    ("PUT", "tagging"): Op.PutBucketTagging,
    ("DELETE", "tagging"): Op.DeleteBucketTagging,
    ("GET", "policy"): Op.GetBucketPolicy,
    ("PUT", "policy"): Op.PutBucketPolicy,
    ("DELETE", "policy"): Op.DeleteBucketPolicy,
    ("GET", "encryption"): Op.GetBucketEncryption,
    ("GET", "object-lock"): Op.GetObjectLockConfiguration,
    ("POST", "delete"): Op.DeleteObjects,
    ("GET", ""): Op.ListObjects,
    ("PUT", ""): Op.CreateBucket,
    ("DELETE", ""): Op.DeleteBucket,
    ("HEAD", ""): Op.HeadBucket,
    ("POST", ""): Op.PostObject,
}
OBJECT = {
    ("GET", "uploadId"): Op.ListParts,
    ("GET", "acl"): Op.GetObjectAcl,
    ("PUT", "acl"): Op.PutObjectAcl,
    ("GET", "tagging"): Op.GetObjectTagging,
    ("PUT", "tagging"): Op.PutObjectTagging,
    ("DELETE", "tagging"): Op.DeleteObjectTagging,
    ("GET", "attributes"): Op.GetObjectAttributes,
    ("POST", "uploads"): Op.CreateMultipartUpload,
    ("POST", "uploadId"): Op.CompleteMultipartUpload,
    ("PUT", "uploadId"): Op.UploadPart,
    ("DELETE", "uploadId"): Op.AbortMultipartUpload,
    ("POST", "restore"): Op.RestoreObject,
    ("POST", "select"): Op.SelectObjectContent,
    ("GET", ""): Op.GetObject,
    ("HEAD", ""): Op.HeadObject,
    ("PUT", ""): Op.PutObject,
    ("DELETE", ""): Op.DeleteObject,
}
SUBRESOURCES = (
    "uploadId",
    "uploads",
    "location",
    "versioning",
    "versions",
    "acl",
    "cors",
    "lifecycle",
    "tagging",
    "policy",
    "encryption",
    "object-lock",
    "delete",
    "attributes",
    "restore",
    "select",
)


def subresource(query: Mapping[str, str]) -> str:
    """The first sub-resource named in the query (S3 queries name at most one that matters)."""
    return next((name for name in SUBRESOURCES if name in query), "")


def classify(method: str, bucket: str, key: str, query: Mapping[str, str], headers: Mapping[str, str]) -> Route:
    """The operation a request asks for. `headers` has lower-case names."""
    if method == "OPTIONS" and bucket:
        return Route(Op.Preflight, bucket, key)
    table = OBJECT if key else BUCKET if bucket else SERVICE
    op = table.get((method, subresource(query)))
    if op is Op.ListObjects and query.get("list-type") == "2":
        op = Op.ListObjectsV2
    elif op is Op.PutObject and "x-amz-copy-source" in headers:
        op = Op.CopyObject
    elif op is Op.UploadPart and "x-amz-copy-source" in headers:
        op = Op.UploadPartCopy
    return Route(op, bucket, key)
