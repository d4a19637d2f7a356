"""uvicorn's httptools protocol with a bound on a request's head (request line and headers).

uvicorn's h11 protocol refuses a head past 16 KiB, but its httptools one (the faster, and the one
`uvicorn[standard]` picks) keeps appending the URL and header bytes until the head ends: one
connection that never ends its head grows the worker's memory without limit, before any middleware
(rate limits included) sees a request. This protocol counts the bytes of a head as they arrive and
answers 431 once they pass `MAX_HEAD_BYTES`, as nginx and h11 do.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024  # nginx allows 4 x 8 KiB header lines by default, h11 16 KiB in all
PROTOCOL = "pyblob.boundedhttp:BoundedHttpToolsProtocol"  # uvicorn's `http=`, importable by every worker


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages = 0
        self.head_bytes: int | None = None  # bytes of the current request's head; None: not in a head

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.messages += 1
        self.head_bytes = 0

    def on_headers_complete(self) -> None:
        self.head_bytes = None
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        # Only pieces read wholly inside one head count: the piece that begins a head may end the
        # body before it, so a head may pass the bound by one read (at most 256 KiB) at the most.
        before = (self.messages, self.head_bytes is not None)
        super().data_received(data)
        if self.head_bytes is None or before != (self.messages, True) or self.transport.is_closing():
            return
        self.head_bytes += len(data)
        if self.head_bytes > MAX_HEAD_BYTES:
            self.refuse_head()

    def refuse_head(self) -> None:
        msg = b"Request line and headers too large."
        head = [
            STATUS_LINE[431],
            *(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers),
        ]
        head += [b"content-type: text/plain; charset=utf-8\r\n", b"content-length: %d\r\n" % len(msg)]
        self.transport.write(b"".join([*head, b"connection: close\r\n\r\n", msg]))
        self.transport.close()
