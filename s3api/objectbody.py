"""An object's bytes as a response that the server sends without copying them through Python.

Where the server offers ASGI's zero-copy send (`http.response.zerocopysend`; pyblob's own HTTP
protocol does, `pyblob/boundedhttp.py`), the body goes out as the object's inline bytes and the
regions of its chunk files, each sent by the kernel from the page cache (`sendfile`). S3 GET and
`/s/` use it for bodies above `s3api.http.LOOP_READ_MAX`; elsewhere they read the bytes and send them
as usual. Smaller bodies are read on the event loop and sent with their head in one write: on this
kind of VM a 64 KiB `sendfile` cost more CPU than reading and copying the bytes (~260 against ~200
µs a request), from 1 MiB up it costs half (docs/benchmarks.md, "Serving").

A chunk file the disk cannot read (EIO) once the head is out: the server aborts the connection (the
client sees a body cut short, never a complete wrong one) and hands the OSError back; the response
logs one line naming the chunk and ends.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from objstore import FileRegion

ZEROCOPY = "http.response.zerocopysend"  # https://asgi.readthedocs.io/en/latest/extensions.html
log = logging.getLogger("pyblob.s3")


def offers_zero_copy(scope: Scope) -> bool:
    return ZEROCOPY in scope.get("extensions", {})


class _Descriptor:
    """What the zero-copy send asks for: an object with `fileno()`."""

    __slots__ = ("fd",)

    def __init__(self, fd: int):
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


class ObjectBody(Response):
    """`pieces` (inline bytes and chunk file regions) as the body, with the headers given (which carry
    the Content-Length). The first piece is looked up at once, so an object gone meanwhile is an
    error response and not a broken one."""

    def __init__(self, pieces: Iterator[bytes | FileRegion], status_code: int, headers: Mapping[str, str]):
        first = next(pieces, None)
        self.pieces = pieces if first is None else itertools.chain((first,), pieces)
        self.status_code = status_code
        self.background = None
        self.init_headers(headers)  # no body attribute: the Content-Length given is kept, none computed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        for piece in self.pieces:
            if isinstance(piece, bytes):
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            else:
                try:
                    await _send_region(send, piece)
                except OSError as e:  # the file could not be read: the server aborted the connection
                    # (pyblob/boundedhttp.py), or uvicorn closes it after a response left incomplete
                    _log_cut_short(piece, e)
                    return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _log_cut_short(region: FileRegion, error: OSError) -> None:
    what = "I/O error (EIO)" if error.errno == errno.EIO else error.strerror or repr(error)
    chunk = os.path.basename(region.path)
    log.error("chunk %s: %s reading %s to send it; the response was cut short", chunk, what, region.path)


async def _send_region(send: Send, region: FileRegion) -> None:
    fd = os.open(region.path, os.O_RDONLY)
    try:
        message: dict[str, Any] = {
            "type": ZEROCOPY,
            "file": _Descriptor(fd),
            "offset": region.offset,
            "count": region.count,
            "more_body": True,
        }
        await send(message)
    finally:
        os.close(fd)
