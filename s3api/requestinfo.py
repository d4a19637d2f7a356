"""What the access log learns of a request from the layers that answer it: its id, who made it and
what it asked for.

The access log (`pyblob/accesslog.py`) opens a `RequestInfo` for each request when it writes JSON
lines; the S3 app and the REST API fill it in as they learn each field. Without one (plain text
log, or none), `request_id()` still hands out a fresh id, so S3 and REST error answers always carry
one. A request's id is the one its log line, its `x-amz-request-id` and its REST error body share.
"""

from __future__ import annotations

import itertools
import os
import secrets
from contextvars import ContextVar
from dataclasses import dataclass


class _RequestIds:
    """Request ids: 16 hex digits, a random prefix per process and a counter, unique without a
    random draw per request (os.urandom is a system call; a forked worker draws its own prefix)."""

    def __init__(self) -> None:
        self.pid = -1
        self.prefix = ""
        self.counter = itertools.count()

    def __call__(self) -> str:
        if self.pid != os.getpid():
            self.pid, self.prefix = os.getpid(), secrets.token_hex(4).upper()
        return f"{self.prefix}{next(self.counter) & 0xFFFFFFFF:08X}"


new_request_id = _RequestIds()


@dataclass(slots=True)
class RequestInfo:
    request_id: str = ""
    user: str = ""
    access_key: str = ""
    operation: str = ""  # the S3 operation (GetObject, ...); empty elsewhere
    bucket: str = ""
    key: str = ""
    error: str = ""  # the S3 error code, or the engine's code behind a REST error
    surface: str = ""  # set only where the path does not tell (`pyblob.routes.surface_of`)


current: ContextVar[RequestInfo | None] = ContextVar("pyblob_request_info", default=None)


def request_id() -> str:
    """The id of the request being answered (made on first use); a fresh one when none is logged."""
    info = current.get()
    if info is None:
        return new_request_id()
    if not info.request_id:
        info.request_id = new_request_id()
    return info.request_id


def note_user(user: str, access_key: str = "") -> None:
    info = current.get()
    if info is not None:
        info.user, info.access_key = user, access_key


def note_error(code: str) -> None:
    info = current.get()
    if info is not None:
        info.error = code
