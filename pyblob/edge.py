"""What the edge refuses before any route runs: service-worker script fetches, and requests for the
wrong host once short links have one of their own (`PYBLOB_LINKS_URL`).

A page of user content that runs script on pyblob's origin could register a service worker whose
script is a short link serving JavaScript; from then on the worker answers every `/s/` URL in that
browser (issue 9). Browsers fetch a worker's script, at registration and at each update check, with
`Service-Worker: script` (https://w3c.github.io/ServiceWorker/#service-worker-script-request): no
surface here serves one, so any request carrying that header is refused, in the surface's format
(S3 XML, JSON elsewhere). S3 GET also sandboxes script-capable types (`s3api/activecontent.py`).

With `PYBLOB_LINKS_URL` set, `/s/` is served only on that URL's host (the Host header; a proxy in
front must pass it on) and redirects there from any other, so links handed out before keep working;
that host serves nothing else but `/health`. AWS keeps user content off its console's origin alike.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from s3api.errors import S3Code, S3Error
from shortlinks.errors import ApiError

from .ratelimits import send_refusal
from .routes import Surface, surface_of
from .settings import links_host

SERVICE_WORKER = b"service-worker"
SERVICE_WORKER_REFUSED = "service worker scripts are never served here (the request has a Service-Worker header)"
ALWAYS_SERVED = frozenset({"/health"})  # on every host: load balancers check each one


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def hostname(scope: Scope) -> str:
    """The Host header's name, lower-case, without the port."""
    return (urlsplit("//" + (header(scope, b"host") or "")).hostname or "").lower()


class EdgeGuard:
    """`links_url`: PYBLOB_LINKS_URL ("" for links on every host); `public_url`: where the rest is served."""

    def __init__(self, app: ASGIApp, links_url: str = "", public_url: str = ""):
        self.app = app
        self.links_url = links_url.rstrip("/")
        self.links_host = links_host(self.links_url) if links_url else ""
        self.public_url = public_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        surface = surface_of(scope["path"])
        if header(scope, SERVICE_WORKER) is not None:
            s3_error, api_error = (
                S3Error(S3Code.AccessDenied, SERVICE_WORKER_REFUSED),
                ApiError(403, SERVICE_WORKER_REFUSED),
            )
            return await send_refusal(scope, receive, send, surface, s3_error, api_error)
        if self.links_host and scope["path"] not in ALWAYS_SERVED:
            on_links_host = hostname(scope) == self.links_host
            if surface == "links" and not on_links_host and scope["type"] == "http":
                return await self.to_links_host(scope, receive, send)
            if on_links_host and surface != "links":
                return await self.refuse_on_links_host(scope, receive, send, surface)
        await self.app(scope, receive, send)

    async def to_links_host(self, scope: Scope, receive: Receive, send: Send) -> None:
        """308 to the same path on the links host (a redirect keeps links handed out before working)."""
        path = bytes(scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        location = self.links_url + path + (f"?{query}" if query else "")
        await RedirectResponse(location, status_code=308, headers={"cache-control": "no-store"})(scope, receive, send)

    async def refuse_on_links_host(self, scope: Scope, receive: Receive, send: Send, surface: Surface | None) -> None:
        message = f"{self.links_host} serves short links only; the S3 and REST APIs are at {self.public_url}"
        await send_refusal(
            scope, receive, send, surface, S3Error(S3Code.InvalidRequest, message), ApiError(404, message)
        )
