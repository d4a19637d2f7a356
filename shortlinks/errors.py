"""The short links edge's errors: engine errors and its own, as JSON `{"detail": ...}` with a real status.

One table maps the engine's error codes to statuses, one function renders every error body.
"""

from __future__ import annotations

from starlette.responses import JSONResponse

from objstore.errors import StoreError

STATUS = {
    "NoSuchLink": 404,
    "NoSuchKey": 404,
    "NoSuchVersion": 404,
    "NoSuchBucket": 404,
    "LinkExpired": 410,
    "InvalidArgument": 400,
    "KeyTooLongError": 400,
    "EntityTooLarge": 413,
    "QuotaExceeded": 403,  # as pyBlobServer answered a full quota (its web UI expects it); S3 says 403 too
    "NoSuchUpload": 404,
    "OffsetMismatch": 409,  # tus: the client must ask where to resume (HEAD)
    "UploadLocked": 423,  # tus clients retry on 423
    "TooManyUploads": 429,
    "InvalidToken": 401,
    "NoSuchUser": 401,  # a token whose user was removed meanwhile
    "BucketNotEmpty": 409,
    "PreconditionFailed": 412,
    "ServiceUnavailable": 503,  # a chunk was collected while the upload ran: retry
}
DETAIL = {
    "NoSuchLink": "link not found",
    "NoSuchKey": "object not found",
    "NoSuchVersion": "no such version of the object",
    "NoSuchBucket": "bucket not found",
    "LinkExpired": "link expired",
    "NoSuchUpload": "upload not found",
    "ServiceUnavailable": "the upload raced a cleanup; please retry",
}


class ApiError(Exception):
    """An error the edge itself raises (no token, a malformed body, an unsatisfiable range)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def from_store(exc: StoreError) -> ApiError:
    status = STATUS.get(exc.code, 500)
    detail = DETAIL.get(exc.code) or (str(exc) if status < 500 else "internal error")
    challenge = {"www-authenticate": "Bearer"} if status == 401 else None
    return ApiError(status, detail, challenge)


def render(err: ApiError, extra_headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": err.detail}, status_code=err.status, headers={**err.headers, **(extra_headers or {})})
