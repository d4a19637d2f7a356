"""The access log: one line per HTTP request on standard error, written by pyblob.

Same line as uvicorn's (`INFO:     <client> - "<method> <target> HTTP/<version>" <status> <phrase>`),
without uvicorn's path through the `logging` module, which cost ~34 µs a request: a fifth of a small
S3 GET (docs/benchmarks.md, "Serving"). The target is the request line as the client sent it, with
the parts of a presigned URL that would replay it redacted (a signed URL is a bearer credential
until it expires). The client is the address after trusted-proxy handling. One `write` per line,
so lines of worker processes sharing standard error do not interleave.

With `PYBLOB_LOG_FORMAT=json` each line is a JSON object instead (`json_line`): what the layers
behind learned of the request (`s3api/requestinfo.py`: its id, user, S3 operation, bucket, key), the
bytes it sent and received, and how long it took.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import unquote

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from s3api.objectbody import ZEROCOPY
from s3api.requestinfo import RequestInfo, current, new_request_id

from .routes import surface_of

# Query parameters that would let whoever reads the log replay a presigned URL (SigV4 and SigV2).
REDACTED_PARAMS = frozenset({"signature", "x-amz-signature", "x-amz-credential"})
PHRASES = {status.value: status.phrase for status in HTTPStatus}
STDERR = 2
KEY_SHOWN = 256  # characters of an object key in a JSON line (keys may be 1,024 bytes)


def redact_query(text: str) -> str:
    """`/b/k?X-Amz-Signature=abc&x=1` -> `/b/k?X-Amz-Signature=REDACTED&x=1`; names matched decoded."""
    path, sep, query = text.partition("?")
    if not sep:
        return text
    pairs = [pair.partition("=") for pair in query.split("&")]
    kept = [
        f"{name}={'REDACTED' if unquote(name).lower() in REDACTED_PARAMS else value}" if eq else name
        for name, eq, value in pairs
    ]
    return path + "?" + "&".join(kept)


def request_target(scope: Scope) -> str:
    path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    query = scope.get("query_string", b"").decode("latin-1")
    return redact_query(f"{path}?{query}") if query else path


def line(scope: Scope, status: int) -> str:
    client = scope.get("client")
    peer = f"{client[0]}:{client[1]}" if client else "-"
    request = f"{scope['method']} {request_target(scope)} HTTP/{scope['http_version']}"
    return f'INFO:     {peer} - "{request}" {status} {PHRASES.get(status, "")}\n'


@dataclass(slots=True)
class Exchange:
    """What passed in one request: its status and the body bytes each way."""

    status: int = 500  # a request that fails before any answer is logged as the 500 it gets
    bytes_in: int = 0
    bytes_out: int = 0


Observer = Callable[[Scope, RequestInfo, Exchange, float], None]


def surface(scope: Scope, info: RequestInfo) -> str:
    """The surface a request is logged and counted on: `web` for health, docs and scrapes."""
    return info.surface or surface_of(scope["path"]) or "web"


def json_line(scope: Scope, info: RequestInfo, exchange: Exchange, started: float, seconds: float) -> bytes:
    client = scope.get("client")
    record: dict[str, Any] = {
        "time": datetime.fromtimestamp(started, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "request_id": info.request_id or new_request_id(),
        "client": client[0] if client else None,
        "method": scope["method"],
        "path": request_target(scope),
        "surface": surface(scope, info),
        "operation": info.operation or None,
        "user": info.user or None,
        "access_key": info.access_key or None,
        "bucket": info.bucket or None,
        "key": info.key[:KEY_SHOWN] if info.key else None,
        "status": exchange.status,
        "error": info.error or None,
        "bytes_in": exchange.bytes_in,
        "bytes_out": exchange.bytes_out,
        "duration_ms": round(seconds * 1000, 3),
    }
    return orjson.dumps(record) + b"\n"


class AccessLog:
    """Logs each HTTP request once its response has started (a request that fails before any answer
    is logged as the 500 the server sends for it)."""

    def __init__(
        self,
        app: ASGIApp,
        fd: int = STDERR,
        form: Literal["text", "json", ""] = "text",
        observer: Observer | None = None,
    ):
        """`form`: the line's format ("": no line); `observer`: told of every request (the metrics)."""
        self.app = app
        self.fd = fd
        self.form = form
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.form != "text" or self.observer is not None:
            return await self.observe(scope, receive, send)
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.write(line(scope, status))

    async def observe(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The request with what the layers behind learn of it, its bytes and its time noted."""
        info, exchange = RequestInfo(), Exchange()
        token = current.set(info)
        started, clock = time.time(), time.perf_counter()

        async def receive_and_count() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                exchange.bytes_in += len(message.get("body", b""))
            return message

        async def send_and_count(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                exchange.status = message["status"]
            elif kind == "http.response.body":
                exchange.bytes_out += len(message.get("body", b""))
            elif kind == ZEROCOPY:
                exchange.bytes_out += message.get("count") or 0
            await send(message)

        try:
            await self.app(scope, receive_and_count, send_and_count)
        finally:
            current.reset(token)
            seconds = time.perf_counter() - clock
            if self.form == "json":
                self.write_bytes(json_line(scope, info, exchange, started, seconds))
            elif self.form == "text":
                self.write(line(scope, exchange.status))
            if self.observer is not None:
                self.observer(scope, info, exchange, seconds)

    def write(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8", "replace"))

    def write_bytes(self, line: bytes) -> None:
        try:
            os.write(self.fd, line)
        except OSError:  # a closed or full standard error must not fail the request
            pass
