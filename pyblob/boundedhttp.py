"""uvicorn's httptools protocol with a bound on a request's head, and one write per response.

uvicorn's h11 protocol refuses a head past 16 KiB, but its httptools one (the faster, and the one
`uvicorn[standard]` picks) keeps appending the URL and header bytes until the head ends: one
connection that never ends its head grows the worker's memory without limit, before any middleware
(rate limits included) sees a request. This protocol counts the bytes of a head as they arrive and
answers 431 once they pass `MAX_HEAD_BYTES`, as nginx and h11 do. That count misses the read a head
begins in (which may also hold the end of the request before it), so a head that comes in one read
(up to 256 KiB) is measured again when it ends: its URL and the names and values of its headers.

uvicorn writes a response's head and its body to the transport one after the other: two send()
system calls and two TCP segments for a small response. `CoalescingTransport` holds the writes of
one event-loop turn and sends them as one at the end of it, which took a 4 KiB S3 GET from ~5,100
to ~6,600 requests a second on one core (docs/benchmarks.md, "Serving").

Object bodies that lie in chunk files leave with `sendfile`: the protocol offers ASGI's zero-copy
send extension (`http.response.zerocopysend`: a file, an offset and a count), which uvicorn does not,
and `CoalescingTransport.sendfile` writes the held response head and then the file's bytes straight
to the socket, without reading them into Python or copying them through it. A file the disk cannot
read (EIO, from `sendfile` or the copy) after the head went out cannot be answered with an error any
more: the connection is aborted, so the client sees a body shorter than its Content-Length (and
retries) instead of a complete one that is wrong, and the OSError goes back to the sender to log.

uvicorn bounds only the wait between two requests of a connection (`timeout_keep_alive`): a client
that sends a head one byte at a time, stops part way through a body, opens a connection and says
nothing, or never reads a response would hold its connection (and a task) for ever. This protocol
adds nginx's three timeouts (`Timeouts`): the head must be in within `head` seconds of its first byte
(or of the connection's opening), a body may stall at most `body_idle` seconds between two reads (not
while pyblob itself holds reading back), and a response whose bytes the client takes none of for `send`
seconds is dropped. Each closes the connection; the app sees a disconnect and drops the upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from s3api.objectbody import ZEROCOPY

MAX_HEAD_BYTES = 64 * 1024  # nginx allows 4 x 8 KiB header lines by default, h11 16 KiB in all
PROTOCOL = "pyblob.boundedhttp:BoundedHttpToolsProtocol"  # uvicorn's `http=`, importable by every worker
LOOP_SENDFILE_MAX = 64 * 1024  # larger sends go to a thread: a file not in the page cache blocks on the disk
SENDFILE_MAX = 1 << 30  # Linux moves at most ~2 GiB per call
COPY_BLOCK = 256 * 1024
Send = Callable[[dict[str, Any]], Awaitable[None]]
connection_gauge: Any = None  # open connections, when the metrics are on (pyblob/metrics.py)


@dataclass(frozen=True)
class Timeouts:
    """Seconds a slow client is given (PYBLOB_HEAD_TIMEOUT_SECONDS and its siblings, pyblob/settings.py)."""

    head: float = 60.0  # nginx's client_header_timeout
    body_idle: float = 60.0  # nginx's client_body_timeout
    send: float = 60.0  # nginx's send_timeout


timeouts = Timeouts()  # the worker's: the app factory sets them from the settings (pyblob/app.py)


class HeadTooLarge(Exception):
    """A request's URL and headers, once its head has ended, are more than MAX_HEAD_BYTES."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages = 0
        self.head_bytes: int | None = None  # bytes of the current request's head; None: not in a head
        self.head_refused = False
        self.timeouts = timeouts
        self.read_timer: asyncio.TimerHandle | None = None  # the head's deadline, or the body's idle one
        self.send_timer: asyncio.TimerHandle | None = None
        self.body_seen = 0.0  # loop time of the body's last bytes

    def connection_made(self, transport: Any) -> None:
        self.coalescing = CoalescingTransport(transport, self.loop, self.timeouts.send)
        super().connection_made(self.coalescing)  # type: ignore[arg-type]
        self.gauge = connection_gauge
        if self.gauge is not None:
            self.gauge.inc()
        self.start_read_timer(self.timeouts.head, self.head_timed_out)  # a connection that says nothing

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_timers()
        super().connection_lost(exc)
        if self.gauge is not None:
            self.gauge.dec()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.coalescing.can_sendfile:
            self.scope["extensions"] = {ZEROCOPY: {}}
        self.messages += 1
        self.head_bytes = 0
        if self.read_timer is None:
            self.start_read_timer(self.timeouts.head, self.head_timed_out)

    def on_headers_complete(self) -> None:
        self.head_bytes = None
        self.stop_read_timer()
        if len(self.url) + sum(len(name) + len(value) for name, value in self.headers) > MAX_HEAD_BYTES:
            self.head_refused = True
            raise HeadTooLarge  # stops the parser; uvicorn then calls send_400_response, which answers 431
        super().on_headers_complete()
        self.body_seen = self.loop.time()
        self.start_read_timer(self.timeouts.body_idle, self.body_timed_out)  # ended by the message's end

    def on_body(self, body: bytes) -> None:
        self.body_seen = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self.stop_read_timer()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self.stop_timers()  # the WebSocket protocol takes the connection over, with its own pings
        super().handle_websocket_upgrade()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.send_timer is None:
            self.send_timer = self.loop.call_later(self.timeouts.send, self.send_timed_out)

    def resume_writing(self) -> None:
        super().resume_writing()
        self.stop_send_timer()

    def start_read_timer(self, seconds: float, callback: Callable[[], None]) -> None:
        self.stop_read_timer()
        self.read_timer = self.loop.call_later(seconds, callback)

    def stop_read_timer(self) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None

    def stop_timers(self) -> None:
        self.stop_read_timer()
        self.stop_send_timer()

    def stop_send_timer(self) -> None:
        if self.send_timer is not None:
            self.send_timer.cancel()
            self.send_timer = None

    def head_timed_out(self) -> None:
        self.read_timer = None
        self.transport.close()

    def body_timed_out(self) -> None:
        """Closes the connection once its body has stalled for `body_idle` seconds; the time pyblob
        itself held reading back (a busy app, a pipelined request, a pending 100-continue) is not counted."""
        self.read_timer = None
        cycle = self.cycle
        waiting_on_us = self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue)
        if waiting_on_us:
            self.body_seen = self.loop.time()
        left = self.body_seen + self.timeouts.body_idle - self.loop.time()
        if left > 0:
            self.read_timer = self.loop.call_later(left, self.body_timed_out)
        else:
            self.transport.close()

    def send_timed_out(self) -> None:
        self.send_timer = None
        self.transport.abort()  # close() would wait for the buffer to drain, which is what never happens

    def send_400_response(self, msg: str) -> None:
        if self.head_refused:
            self.refuse_head()
        else:
            super().send_400_response(msg)

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

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        cycle.send = partial(self.send_or_sendfile, cycle, cycle.send)  # type: ignore[method-assign,arg-type]
        super()._start_asgi_task(cycle, app)

    async def send_or_sendfile(self, cycle: RequestResponseCycle, send: Send, message: dict[str, Any]) -> None:
        """uvicorn's `send`, and the zero-copy send: the file's bytes go out with `sendfile` when the
        response has a Content-Length and nothing else waits in the transport; else they are read and
        sent as a body (the same bytes, copied)."""
        if message["type"] != ZEROCOPY:
            return await send(message)
        if cycle.disconnected:
            return
        fd = message["file"].fileno()
        offset = message.get("offset")
        offset = os.lseek(fd, 0, os.SEEK_CUR) if offset is None else offset
        count = message.get("count")
        count = os.fstat(fd).st_size - offset if count is None else count
        more = bool(message.get("more_body", False))
        direct = (
            cycle.response_started
            and not cycle.response_complete
            and cycle.chunked_encoding is False
            and count <= cycle.expected_content_length
            and self.coalescing.get_write_buffer_size() == len(self.coalescing)  # only our held head waits
        )
        try:
            if cycle.scope["method"] == "HEAD":
                pass  # no body: uvicorn drops it
            elif direct:
                cycle.expected_content_length -= count
                if not await self.coalescing.sendfile(fd, offset, count, threaded=count > LOOP_SENDFILE_MAX):
                    cycle.disconnected = True  # part of the body is out: the connection cannot carry on
                    self.transport.abort()
                    return
            else:
                await copy_file(send, fd, offset, count)
        except OSError:  # the file could not be read: the body must not look complete
            cycle.disconnected = True
            self.transport.abort()
            raise
        if not more:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    def refuse_head(self) -> None:
        msg = b"Request line and headers too large."
        head = [
            STATUS_LINE[431],
            *(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers),
        ]
        head += [b"content-type: text/plain; charset=utf-8\r\n", b"content-length: %d\r\n" % len(msg)]
        self.transport.write(b"".join([*head, b"connection: close\r\n\r\n", msg]))
        self.transport.close()


async def copy_file(send: Send, fd: int, offset: int, count: int) -> None:
    """`count` bytes of the file from `offset` sent as body pieces (the zero-copy send's fallback)."""
    loop = asyncio.get_running_loop()
    while count > 0:
        size = min(count, COPY_BLOCK)
        piece = (
            os.pread(fd, size, offset)
            if size <= LOOP_SENDFILE_MAX
            else await loop.run_in_executor(None, os.pread, fd, size, offset)
        )
        if not piece:
            raise EOFError("file ended before the bytes to send")
        await send({"type": "http.response.body", "body": piece, "more_body": True})
        offset += len(piece)
        count -= len(piece)


def sendfile_some(sock: int, fd: int, offset: int, count: int) -> int:
    """Bytes of the file that went into the socket's buffer; 0 when it is full."""
    try:
        sent = os.sendfile(sock, fd, offset, min(count, SENDFILE_MAX))
    except BlockingIOError:
        return 0
    if sent == 0:
        raise EOFError("file ended before the bytes to send")
    return sent


class CoalescingTransport:
    """A transport whose writes of one event-loop turn leave as one: a response's head and its body
    (uvicorn writes them one after the other) cost one send() system call, not two."""

    def __init__(self, transport: Any, loop: Any, send_timeout: float = Timeouts.send):
        self._transport = transport
        self._loop = loop
        self._send_timeout = send_timeout
        self._pending: list[bytes] = []
        self._socket = transport.get_extra_info("socket")
        self._sock = self._socket.fileno() if self._socket is not None else -1
        # Over TLS the bytes must pass through the TLS layer: no sendfile to the socket.
        self.can_sendfile = self._sock >= 0 and transport.get_extra_info("ssl_object") is None

    def __len__(self) -> int:
        """Bytes written and held for the end of this loop turn."""
        return sum(map(len, self._pending))

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
        return int(self._transport.get_write_buffer_size()) + len(self)

    async def sendfile(self, fd: int, offset: int, count: int, threaded: bool) -> bool:
        """The held writes, then `count` bytes of the file from `offset`, straight into the socket
        (the transport's own buffer must be empty). False if the connection failed part way; the
        OSError of a file that could not be read (EIO)."""
        head, self._pending = self._pending, []
        waiter = _Writable(self._loop, self._sock, self._send_timeout)
        corked = bool(head)  # the head waits for the file's first bytes: one segment, as nginx's tcp_nopush
        try:
            if corked:
                self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            while head:
                sent = _writev_some(self._sock, head)
                head = _drop(head, sent)
                if head:
                    await waiter.wait(self._transport)
            while count > 0:
                if threaded:
                    sent = await self._loop.run_in_executor(None, sendfile_some, self._sock, fd, offset, count)
                else:
                    sent = sendfile_some(self._sock, fd, offset, count)
                offset += sent
                count -= sent
                if count > 0 and not sent:
                    await waiter.wait(self._transport)
            return True
        except OSError as e:
            if e.errno == errno.EIO:
                raise  # the file's side (sendfile reads it): the caller aborts and the sender logs it
            return False
        except EOFError:
            return False
        finally:
            waiter.close()
            if corked:
                with contextlib.suppress(OSError):
                    self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)

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


def _writev_some(sock: int, pieces: list[bytes]) -> int:
    try:
        return os.writev(sock, pieces)
    except BlockingIOError:
        return 0


def _drop(pieces: list[bytes], sent: int) -> list[bytes]:
    """What is left of `pieces` once their first `sent` bytes are out."""
    while pieces and sent >= len(pieces[0]):
        sent -= len(pieces[0])
        pieces = pieces[1:]
    if pieces and sent:
        pieces = [pieces[0][sent:], *pieces[1:]]
    return pieces


class _Writable:
    """Waits for room in a socket that a transport owns: the event loop refuses to watch a
    transport's descriptor, so this watches a duplicate of it (made on the first wait)."""

    CHECK_SECONDS = 1.0  # how often a wait looks whether the transport was closed meanwhile

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: int, timeout: float):
        self._loop = loop
        self._sock = sock
        self._timeout = timeout  # seconds without room in the socket before the wait gives up
        self._dup = -1

    async def wait(self, transport: Any) -> None:
        if self._dup < 0:
            self._dup = os.dup(self._sock)
        ready: asyncio.Future[None] = self._loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        self._loop.add_writer(self._dup, wake)
        give_up = self._loop.time() + self._timeout
        try:
            while not ready.done():
                if transport.is_closing():
                    raise ConnectionResetError("the transport was closed")
                left = give_up - self._loop.time()
                if left <= 0:
                    raise TimeoutError("the client took no bytes for the send timeout")
                await asyncio.wait([ready], timeout=min(left, self.CHECK_SECONDS))
        finally:
            self._loop.remove_writer(self._dup)

    def close(self) -> None:
        if self._dup >= 0:
            os.close(self._dup)
            self._dup = -1
