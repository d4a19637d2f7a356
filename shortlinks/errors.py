"""The short links edge's errors: engine errors and its own, as JSON `{"detail": ...}` with a real status.

One table maps every engine error code to a status (tests/shortlinks/test_shortlinks_errors.py walks
the engine's error classes: none is left to fall back to a 500), one function renders every body.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from objstore.errors import StoreError
from s3api.conditional import ConditionFailed, RangeNotSatisfiable
from s3api.requestinfo import note_error, request_id

log = logging.getLogger("pyblob.shortlinks")

STATUS = {
    "NoSuchLink": 404,
    "NoSuchKey": 404,
    "NoSuchVersion": 404,
    "NoSuchBucket": 404,
    "MethodNotAllowed": 404,  # the version is a delete marker: for a link, the file is gone
    "LinkExpired": 410,
    "InvalidArgument": 400,
    "InvalidRequest": 400,
    "KeyTooLongError": 400,
    "EntityTooLarge": 413,
    "QuotaExceeded": 403,  # as pyBlobServer answered a full quota (its web UI expects it); S3 says 403 too
    "NoSuchUpload": 404,
    "OffsetMismatch": 409,  # tus: the client must ask where to resume (HEAD)
    "UploadLocked": 423,  # tus clients retry on 423
    "TooManyUploads": 429,
    "InvalidToken": 401,
    "NoSuchUser": 401,  # a token whose user was removed meanwhile
    "InvalidAccessKeyId": 404,  # an access key that does not exist
    "UserAlreadyExists": 409,
    "AccessKeyAlreadyExists": 409,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "PreconditionFailed": 412,
    # S3 multipart's own: no REST path uploads in parts, but none of them is the server's fault
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "InvalidPartNumber": 400,
    "EntityTooSmall": 400,
    "BadDigest": 400,
    "ServiceUnavailable": 503,  # a chunk collected while the upload ran, or the chunk store failed: retry
    "StorageFull": 507,  # the server's disk or metadata map has no room: deleting makes some
    "StorageIOError": 503,  # the server's disk failed a write or a read (EIO): retry later
    "InternalError": 500,  # an unreadable record, or a failure with no better name: the server's fault
}
DETAIL = {
    "NoSuchLink": "link not found",
    "NoSuchKey": "object not found",
    "NoSuchVersion": "no such version of the object",
    "NoSuchBucket": "bucket not found",
    "MethodNotAllowed": "object not found",
    "LinkExpired": "link expired",
    "NoSuchUpload": "upload not found",
    "ServiceUnavailable": "the storage could not complete this just now; please retry",
}
# Server-side failures whose engine message is the detail: it says what happened, and what to do about it.
OWN_WORDS = {"StorageFull", "StorageIOError"}


class ApiError(Exception):
    """An error the edge itself raises (no token, a malformed body, an unsatisfiable range)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None, code: str = ""):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.code = code  # the engine's error code behind it, for the log and the metrics


def from_store(exc: StoreError) -> ApiError:
    """The JSON error of an engine error: its status from `STATUS`, a 401 with a Bearer challenge."""
    status = STATUS.get(exc.code)
    if status is None:
        log.error("engine error code %r has no status", exc.code)
        status = 500
    shown = status < 500 or exc.code in OWN_WORDS
    detail = DETAIL.get(exc.code) or (str(exc) if shown else "internal error")
    challenge = {"www-authenticate": "Bearer"} if status == 401 else None
    return ApiError(status, detail, challenge, code=exc.code)


def from_conditional(exc: ConditionFailed | RangeNotSatisfiable) -> ApiError:
    """412 for a failed precondition, 416 (with the size in Content-Range) for a range past the end."""
    if isinstance(exc, ConditionFailed):
        return ApiError(412, "precondition failed")
    return ApiError(416, "range not satisfiable", exc.headers)


def render(err: ApiError, extra_headers: dict[str, str] | None = None) -> JSONResponse:
    """`{"detail": ..., "request_id": ...}`: pyBlobServer's body, with the id the access log has too."""
    note_error(err.code)
    return JSONResponse(
        {"detail": err.detail, "request_id": request_id()},
        status_code=err.status,
        headers={**err.headers, **(extra_headers or {})},
    )


async def framework_error(_request: Request, exc: Exception) -> JSONResponse:
    """The framework's own answers (a 405 for a method no route of the path takes) in the same body."""
    assert isinstance(exc, HTTPException)
    return render(ApiError(exc.status_code, str(exc.detail), dict(exc.headers or {})))
