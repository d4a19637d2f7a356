"""Who gets `/metrics`: a GET (or HEAD) of the path with `Authorization: Bearer <PYBLOB_METRICS_TOKEN>`.

A request to `/metrics` that carries a bearer token cannot be S3's (S3 signs with AWS4-HMAC-SHA256),
so it is a scrape: the right token gets the metrics (`metrics.py`), any other token, or any token
while metrics are off, a 404. Every other request to the path is S3's as before, so a bucket named
`metrics` stays reachable. The token is compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

PATH = "/metrics"
Answer = Callable[[Scope, Send], Awaitable[None]]


class ScrapeGate:
    def __init__(self, app: ASGIApp, token: str | None, answer: Answer | None):
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        sent = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        if sent[:7].lower() != b"bearer ":
            return await self.app(scope, receive, send)
        if self.expected is not None and self.answer is not None and hmac.compare_digest(sent, self.expected):
            return await self.answer(scope, send)
        await not_found(scope, send)


async def not_found(scope: Scope, send: Send) -> None:
    body = b'{"detail":"not found"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 404, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
