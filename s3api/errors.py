"""S3 errors: one exception, one code -> HTTP status table, one XML rendering.

Codes are AWS's (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html), plus
`QuotaExceeded` (403), pyblob's own, for uploads past the owner's quota.
"""

from __future__ import annotations

from typing import Any

from objstore.ratelimit import retry_after

STATUS = {
    "AccessDenied": 403,
    "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400,
    "BadDigest": 400,
    "BadRequest": 400,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "IllegalVersioningConfigurationException": 400,
    "IncompleteBody": 400,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidLocationConstraint": 400,
    "InvalidPart": 400,
    "InvalidPartNumber": 416,
    "InvalidPartOrder": 400,
    "InvalidPolicyDocument": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "InvalidTag": 400,
    "InvalidURI": 400,
    "KeyTooLongError": 400,
    "MalformedPOSTRequest": 400,
    "MalformedXML": 400,
    "MaxMessageLengthExceeded": 400,
    "MaxPostPreDataLengthExceededError": 400,
    "MetadataTooLarge": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "MissingSecurityHeader": 400,
    "NoSuchBucket": 404,
    "NoSuchCORSConfiguration": 404,
    "NoSuchKey": 404,
    "NoSuchLifecycleConfiguration": 404,
    "NoSuchTagSet": 404,
    "NoSuchUpload": 404,
    "NoSuchVersion": 404,
    "NotImplemented": 501,
    "PreconditionFailed": 412,
    "QuotaExceeded": 403,
    "RequestTimeTooSkewed": 403,
    "RequestTimeout": 400,
    "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403,
    "SlowDown": 503,
    "XAmzContentSHA256Mismatch": 400,
}

MESSAGES = {
    "AccessDenied": "Access Denied",
    "BucketAlreadyExists": "The requested bucket name is not available.",
    "BucketAlreadyOwnedByYou": "Your previous request to create the named bucket succeeded and you already own it.",
    "BucketNotEmpty": "The bucket you tried to delete is not empty",
    "InvalidAccessKeyId": "The AWS Access Key Id you provided does not exist in our records.",
    "InvalidRange": "The requested range is not satisfiable",
    "MethodNotAllowed": "The specified method is not allowed against this resource.",
    "NoSuchBucket": "The specified bucket does not exist",
    "NoSuchCORSConfiguration": "The CORS configuration does not exist",
    "NoSuchKey": "The specified key does not exist.",
    "NoSuchLifecycleConfiguration": "The lifecycle configuration does not exist",
    "NoSuchTagSet": "The TagSet does not exist",
    "NoSuchUpload": "The specified upload does not exist.",
    "NoSuchVersion": "The specified version does not exist.",
    "InvalidPartNumber": "The requested partnumber is not satisfiable",
    "NotImplemented": "A header or operation you provided implies functionality that is not implemented",
    "PreconditionFailed": "At least one of the pre-conditions you specified did not hold",
    "SignatureDoesNotMatch": "The request signature we calculated does not match the signature you provided.",
    "QuotaExceeded": "The upload would exceed the owner's storage quota.",
    "SlowDown": "Please reduce your request rate.",
}


class S3Error(Exception):
    """An error answered as S3 answers it; `extra` adds elements to the XML (e.g. ServerTime)."""

    def __init__(self, code: str, message: str | None = None, resource: str = "", **extra: Any):
        super().__init__(message or MESSAGES.get(code, code))
        self.code = code
        self.message = message or MESSAGES.get(code, code)
        self.resource = resource
        self.extra = extra
        self.headers: dict[str, str] = {}

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 500)

    def body(self, request_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"Code": self.code, "Message": self.message}
        error.update(self.extra)
        if self.resource:
            error["Resource"] = self.resource
        error["RequestId"] = request_id
        return {"Error": error}


def slow_down(wait: float, limit_name: str = "") -> S3Error:
    """503 SlowDown, which SDKs retry with backoff, and the whole seconds to wait in Retry-After;
    `limit_name`: the setting that sets the limit, named in the message for the admin."""
    error = S3Error("SlowDown", f"Please reduce your request rate (the limit is {limit_name})." if limit_name else None)
    error.headers["retry-after"] = str(retry_after(wait))
    return error
