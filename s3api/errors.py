"""S3 errors: one registry of codes (HTTP status, AWS's message), one exception, one XML rendering,
and the S3 error of each engine error.

Codes are AWS's (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html), plus three of
pyblob's own: `QuotaExceeded` (403) for uploads past the owner's quota, and `StorageFull` (507
Insufficient Storage, RFC 4918) for writes the server's disk or metadata map has no room for, as
MinIO answers `XMinioStorageFull` with 507 (AWS has no such code: its storage does not fill up).
`StorageIOError` (503) is the other failure of the server's own disk: an I/O error (EIO) on a write or
its flush (nothing kept) or on a read (nothing sent), retry later (503 is what SDKs retry).
A code is an `S3Code` member, never a free string: a misspelt one is an AttributeError where it is
written (mypy and tests/s3api/test_s3api_errors.py find it before a request does), so no code falls
back to a 500.

The engine's errors carry a `code` and no HTTP (objstore/errors.py). Most codes are S3's own; the
others are in `ENGINE_CODES`, each answered as a deliberate S3 code; the test walks every engine
error class and checks that none is left to a 500 it is not meant to be.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import Enum, unique
from typing import Any
from urllib.parse import quote

from objstore.errors import DeleteMarkerIsCurrent, NoSuchVersion, StoreError, VersionIsDeleteMarker

from .conditional import ConditionFailed, RangeNotSatisfiable, http_date

log = logging.getLogger("pyblob.s3")


@dataclass(frozen=True, eq=False)  # eq=False: two codes with the same status stay two members
class Spec:
    """A code's HTTP status and AWS's message for it."""

    status: int
    message: str = ""  # AWS's message, sent when the raiser gives none ("": the code itself)


@unique
class S3Code(Enum):
    """Every error code pyblob answers: `S3Code.NoSuchKey.status` is 404; `.name` is what is sent."""

    AccessDenied = Spec(403, "Access Denied")
    AuthorizationHeaderMalformed = Spec(400)
    AuthorizationQueryParametersError = Spec(400)
    BadDigest = Spec(400)
    BadRequest = Spec(400)
    BucketAlreadyExists = Spec(409, "The requested bucket name is not available.")
    BucketAlreadyOwnedByYou = Spec(
        409, "Your previous request to create the named bucket succeeded and you already own it."
    )
    BucketNotEmpty = Spec(409, "The bucket you tried to delete is not empty")
    EntityTooLarge = Spec(400)
    EntityTooSmall = Spec(400)
    IllegalVersioningConfigurationException = Spec(400)
    IncompleteBody = Spec(400)
    InternalError = Spec(500)
    InvalidAccessKeyId = Spec(403, "The AWS Access Key Id you provided does not exist in our records.")
    InvalidArgument = Spec(400)
    InvalidBucketName = Spec(400)
    InvalidDigest = Spec(400)
    InvalidLocationConstraint = Spec(400)
    InvalidPart = Spec(400)
    InvalidPartNumber = Spec(416, "The requested partnumber is not satisfiable")
    InvalidPartOrder = Spec(400)
    InvalidPolicyDocument = Spec(400)
    InvalidRange = Spec(416, "The requested range is not satisfiable")
    InvalidRequest = Spec(400)
    InvalidTag = Spec(400)
    InvalidURI = Spec(400)
    KeyTooLongError = Spec(400)
    MalformedPOSTRequest = Spec(400)
    MalformedTrailerError = Spec(400, "The request contained trailing data that was not well-formed.")
    MalformedXML = Spec(400)
    MaxMessageLengthExceeded = Spec(400)
    MaxPostPreDataLengthExceededError = Spec(400)
    MetadataTooLarge = Spec(400)
    MethodNotAllowed = Spec(405, "The specified method is not allowed against this resource.")
    MissingContentLength = Spec(411)
    MissingSecurityHeader = Spec(400)
    NoSuchBucket = Spec(404, "The specified bucket does not exist")
    NoSuchCORSConfiguration = Spec(404, "The CORS configuration does not exist")
    NoSuchKey = Spec(404, "The specified key does not exist.")
    NoSuchLifecycleConfiguration = Spec(404, "The lifecycle configuration does not exist")
    NoSuchTagSet = Spec(404, "The TagSet does not exist")
    NoSuchUpload = Spec(404, "The specified upload does not exist.")
    NoSuchVersion = Spec(404, "The specified version does not exist.")
    NotImplemented = Spec(501, "A header or operation you provided implies functionality that is not implemented")
    OperationAborted = Spec(
        409, "A conflicting conditional operation is currently in progress against this resource. Try again."
    )
    PreconditionFailed = Spec(412, "At least one of the pre-conditions you specified did not hold")
    QuotaExceeded = Spec(403, "The upload would exceed the owner's storage quota.")
    RequestHeaderSectionTooLarge = Spec(400, "Your request header section exceeds the maximum allowed size.")
    RequestTimeTooSkewed = Spec(403)
    RequestTimeout = Spec(400)
    ServiceUnavailable = Spec(503)
    SignatureDoesNotMatch = Spec(403, "The request signature we calculated does not match the signature you provided.")
    SlowDown = Spec(503, "Please reduce your request rate.")
    StorageFull = Spec(507, "The server's storage is full. Delete objects to make room.")
    StorageIOError = Spec(503, "The server's storage failed an I/O operation. Nothing was kept; retry later.")
    XAmzContentSHA256Mismatch = Spec(400)

    @property
    def status(self) -> int:
        return self.value.status

    @property
    def message(self) -> str:
        """AWS's message for the code, or the code itself where AWS's varies with the request."""
        return self.value.message or self.name


class S3Error(Exception):
    """An error answered as S3 answers it; `extra` adds elements to the XML (e.g. ServerTime)."""

    def __init__(self, code: S3Code, message: str | None = None, resource: str = "", **extra: Any):
        if not isinstance(code, S3Code):
            raise TypeError(f"S3Error takes an S3Code, not {code!r}")
        super().__init__(message or code.message)
        self.kind = code
        self.code = code.name
        self.message = message or code.message
        self.resource = resource
        self.extra = extra
        self.headers: dict[str, str] = {}

    @property
    def status(self) -> int:
        return self.kind.status

    def body(self, request_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"Code": self.code, "Message": self.message}
        error.update(self.extra)
        if self.resource:
            error["Resource"] = self.resource
        error = {name: xml_text(value) for name, value in error.items()}
        error["RequestId"] = request_id
        return {"Error": error}


# What XML 1.0 cannot carry, not even as a character reference. A request's path or query may hold
# it (a key with a backspace), and an error that echoes it (Resource, Key, ArgumentValue) would be
# a body no client can parse: it is sent percent-encoded instead.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(value: Any) -> Any:
    """`value` with what XML cannot carry percent-encoded (`\\x08` as `%08`); other types as they are."""
    return _NOT_XML.sub(lambda m: quote(m[0]), value) if isinstance(value, str) else value


def slow_down(retry_after: int, limit_name: str = "") -> S3Error:
    """503 SlowDown, which SDKs retry with backoff, with `retry_after` (whole seconds, from the layer
    that keeps the limits) in Retry-After; `limit_name`: the setting that sets the limit, named in the
    message for the admin."""
    message = f"Please reduce your request rate (the limit is {limit_name})." if limit_name else None
    error = S3Error(S3Code.SlowDown, message)
    error.headers["retry-after"] = str(retry_after)
    return error


# The engine's error codes that are not S3 codes, and what S3 answers for each. Most cannot reach
# the S3 surface (accounts, REST tokens, links, tus uploads), but if one does it is not a 500.
ENGINE_CODES: dict[str, S3Code] = {
    "NoSuchUser": S3Code.AccessDenied,  # the credentials' user is gone
    "UserAlreadyExists": S3Code.InvalidRequest,
    "AccessKeyAlreadyExists": S3Code.InvalidRequest,
    "InvalidToken": S3Code.AccessDenied,  # a REST bearer token is no S3 credential
    "NoSuchLink": S3Code.NoSuchKey,
    "LinkExpired": S3Code.AccessDenied,  # as AWS answers an expired presigned URL
    "OffsetMismatch": S3Code.InvalidRequest,
    "UploadLocked": S3Code.OperationAborted,  # another request holds the upload: try again
    "TooManyUploads": S3Code.QuotaExceeded,  # a cap on the owner's pending uploads
}

# Engine errors whose text is just the name of what is missing or taken: AWS's message, and the
# name in its own element, as AWS answers them (NoSuchKey carries <Key>, NoSuchBucket <BucketName>).
NAMED_BY = {
    "NoSuchBucket": "BucketName",
    "BucketAlreadyExists": "BucketName",
    "BucketAlreadyOwnedByYou": "BucketName",
    "NoSuchKey": "Key",
    "NoSuchUpload": "UploadId",
}


def s3_code_of(error: type[StoreError] | StoreError) -> S3Code:
    """The S3 code an engine error (class or instance) answers as; InternalError for a code nobody
    mapped, which the tests forbid."""
    if error.code in ENGINE_CODES:
        return ENGINE_CODES[error.code]
    try:
        return S3Code[error.code]
    except KeyError:
        log.error("engine error code %r has no S3 code", error.code)
        return S3Code.InternalError


def from_store_error(e: StoreError, method: str = "GET") -> S3Error:
    """The S3 error of an engine error, for a request of `method`."""
    if isinstance(e, NoSuchVersion):
        return S3Error(S3Code.NoSuchVersion, Key=e.key, VersionId=e.version_id)
    if isinstance(e, VersionIsDeleteMarker):
        error = S3Error(S3Code.MethodNotAllowed, str(e), Method=method, ResourceType="DeleteMarker")
        error.headers.update(delete_marker_headers(e.version_id, e.last_modified))
        return error
    if e.code in NAMED_BY:
        error = S3Error(s3_code_of(e), **{NAMED_BY[e.code]: str(e)})
        if isinstance(e, DeleteMarkerIsCurrent):
            error.headers.update(delete_marker_headers(e.marker_version_id))
        return error
    return S3Error(s3_code_of(e), str(e) or None)


def delete_marker_headers(version_id: str, last_modified: float | None = None) -> dict[str, str]:
    """What S3 answers about a delete marker it met: that it is one, and which."""
    headers = {"x-amz-delete-marker": "true", "x-amz-version-id": version_id}
    if last_modified is not None:
        headers["last-modified"] = http_date(last_modified)
    return headers


def from_conditional(e: ConditionFailed | RangeNotSatisfiable) -> S3Error:
    """412 PreconditionFailed naming the condition, or 416 InvalidRange with the object's size."""
    if isinstance(e, ConditionFailed):
        return S3Error(S3Code.PreconditionFailed, Condition=e.condition)
    error = S3Error(S3Code.InvalidRange, ActualObjectSize=str(e.size))
    error.headers.update(e.headers)
    return error
