"""The access log: one line per HTTP request on standard error, written by pyblob.

Same line as uvicorn's (`INFO:     <client> - "<method> <target> HTTP/<version>" <status> <phrase>`),
without uvicorn's path through the `logging` module, which cost ~34 µs a request: a fifth of a small
S3 GET (docs/benchmarks.md, "Serving"). The target is the request line as the client sent it, with
the parts of a presigned URL that would replay it redacted (a signed URL is a bearer credential
until it expires). The client is the address after trusted-proxy handling. One `write` per line,
so lines of worker processes sharing standard error do not interleave.
"""

from __future__ import annotations

import os
from http import HTTPStatus
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Query parameters that would let whoever reads the log replay a presigned URL (SigV4 and SigV2).
REDACTED_PARAMS = frozenset({"signature", "x-amz-signature", "x-amz-credential"})
PHRASES = {status.value: status.phrase for status in HTTPStatus}
STDERR = 2


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


class AccessLog:
    """Logs each HTTP request once its response has started (a request that fails before any answer
    is logged as the 500 the server sends for it)."""

    def __init__(self, app: ASGIApp, fd: int = STDERR):
        self.app = app
        self.fd = fd

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
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

    def write(self, text: str) -> None:
        try:
            os.write(self.fd, text.encode("utf-8", "replace"))
        except OSError:  # a closed or full standard error must not fail the request
            pass
