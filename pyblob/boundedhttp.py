"""uvicorn's httptools protocol with a bound on a request's head, and one write per response.

uvicorn's h11 protocol refuses a head past 16 KiB, but its httptools one (the faster, and the one
`uvicorn[standard]` picks) keeps appending the URL and header bytes until the head ends: one
connection that never ends its head grows the worker's memory without limit, before any middleware
(rate limits included) sees a request. This protocol counts the bytes of a head as they arrive and
answers 431 once they pass `MAX_HEAD_BYTES`, as nginx and h11 do.

uvicorn writes a response's head and its body to the transport one after the other: two send()
system calls and two TCP segments for a small response. `CoalescingTransport` holds the writes of
one event-loop turn and sends them as one at the end of it, which took a 4 KiB S3 GET from ~5,100
to ~6,600 requests a second on one core (docs/benchmarks.md, "Serving").
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

    def connection_made(self, transport: Any) -> None:
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

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


class CoalescingTransport:
    """A transport whose writes of one event-loop turn leave as one: a response's head and its body
    (uvicorn writes them one after the other) cost one send() system call, not two."""

    def __init__(self, transport: Any, loop: Any):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data if isinstance(data, bytes) else bytes(data))  # a view may be reused

    def writelines(self, pieces: Any) -> None:
        for piece in pieces:
            self.write(piece)

    def flush(self) -> None:
        if self._pending:
            pieces, self._pending = self._pending, []
            if not self._transport.is_closing():
                self._transport.writelines(pieces)  # one sendmsg() of all of them, nothing joined

    def get_write_buffer_size(self) -> int:
        return int(self._transport.get_write_buffer_size()) + sum(map(len, self._pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def set_protocol(self, protocol: Any) -> None:
        self.flush()
        self._transport.set_protocol(protocol)
