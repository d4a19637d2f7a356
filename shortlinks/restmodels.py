"""The REST API's JSON shapes, with pyBlobServer's field names (its web UI reads them).

Times are ISO 8601 strings in UTC; sizes are bytes except pyBlobServer's human `available_space`.
A limit of None means unlimited.
"""

from __future__ import annotations

from pydantic import BaseModel


class Detail(BaseModel):
    """An error: what went wrong, and the request's id (in the access log too)."""

    detail: str
    request_id: str


class Message(BaseModel):
    """A confirmation in words."""

    message: str


class Deleted(Message):
    """A confirmation, and how many files were deleted."""

    deleted: int


class Uploaded(BaseModel):
    """A stored file's short link, and the space its owner has left."""

    file_id: str
    file_url: str
    show_image: str  # the preview page, `<file_url>?output=html`
    available_space: str  # e.g. "490.500 MB", or "unlimited"
    available_bytes: int | None
    name: str
    size: int
    expires_at: str | None
    max_downloads: int | None


class UploadFailed(BaseModel):
    """One file of a batch that was not stored; `status_code` is what /upload would have answered."""

    filename: str
    status_code: int
    error: str


class FileInfo(BaseModel):
    """One of your files (a short link), as `/list` shows it."""

    file_id: str
    file_name: str
    file_size: int | None  # None: the object behind the link is gone
    file_type: str
    upload_at: str
    download_times: int
    last_download_at: str | None
    file_url: str
    expires_at: str | None
    max_downloads: int | None
    expired: bool  # past its expiry, out of downloads or idle: answers 410 until swept


class UserInfo(BaseModel):
    """Your account: usage, limits and counters."""

    user: str
    total_size: int  # bytes stored (S3 objects included)
    quota: int | None
    max_file_size: int | None
    available_space: str
    available_bytes: int | None
    file_count: int  # objects stored (S3 objects included)
    total_upload_times: int
    total_upload_byte: int
    total_download_times: int
    total_download_byte: int
    last_upload_at: str | None
    last_download_at: str | None
    created_at: str


class UserWithToken(UserInfo):
    """Your account, and your token (hidden unless just rotated)."""

    token: str  # "[hidden...]", or the new token after `?function=change_token`


class Token(BaseModel):
    """A bearer token."""

    token: str


class AuthInfo(BaseModel):
    """Who a token belongs to."""

    user: str
    token: str
