"""Rate limits at the edge: token buckets per client address and per user or access key.

Each request belongs to a surface, found from its first path segment in the route table
(`routes.py`): `/s/...` is links; pyblob's REST paths (uploads, WebSocket included, listing,
accounts, `/api`) are rest; `/health` and the docs are not limited; everything else is S3. The middleware takes a
token from the client address's bucket of that surface before anything else runs: links and
rest answer 429 JSON, S3 answers 503 `SlowDown` (what SDKs back off on), both with
`Retry-After`. Per-user (REST) and per-access-key (S3) limits are taken once authentication
knows the caller: `shortlinks.ratelimit` through the scope, `S3App(rate_limit=...)` for S3. Failed
S3 authentications spend an allowance of their own per address (`failedauth.py`, over `take`).

The buckets live in the volatile state environment (`ratebuckets.py`), so the limits hold
across worker processes. The client address is the one the ASGI server reports: `pyblob serve`
has uvicorn believe `X-Forwarded-For` only from `PYBLOB_TRUSTED_PROXIES`, taking the right-most
address that is not a trusted proxy (the left part is whatever the client wrote), so the access
log and the buckets name the same client. IPv6 clients are limited per /64, the block one
subscriber gets.

On one machine a take runs on the event loop, not in the thread pool: it is one LMDB write
transaction without fsync (about 15 µs, `bench/ratelimit.py`), less than a hop to a worker thread,
and every holder of the state's writer lock keeps it for microseconds. A cluster's buckets are in
PostgreSQL, shared by every node: a take there is a round trip, run in a thread of its own
`CapacityLimiter`, so takes never queue behind the uploads holding the default thread pool.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import anyio
from anyio.to_thread import run_sync
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketClose

from objstore.errors import StorageFull
from s3api.app import error_response, has_body
from s3api.errors import S3Error, slow_down
from s3api.requestinfo import request_id
from shortlinks.errors import ApiError, render
from shortlinks.ratelimit import USER_LIMIT, USER_LIMIT_NAME, rate_limited

from .ratebuckets import Buckets, retry_after
from .routes import Surface, surface_of
from .settings import Settings

TAKE_THREADS = 8  # takes from a cluster's buckets waiting on PostgreSQL at once, per worker process


@dataclass(frozen=True)
class Limit:
    """A token bucket's refill rate and size, as the settings give them."""

    rate: float  # tokens per second; 0: unlimited
    burst: float


@dataclass(frozen=True)
class RateLimits:
    """Every limit of a server: per client address on each surface, per user (rest) or key (s3)."""

    per_ip: dict[Surface, Limit]
    per_user: dict[Surface, Limit]  # per user for rest, per access key for s3

    @classmethod
    def from_settings(cls, s: Settings) -> RateLimits:
        return cls(
            per_ip={
                "links": Limit(s.ratelimit_links_ip_rate, s.ratelimit_links_ip_burst),
                "rest": Limit(s.ratelimit_rest_ip_rate, s.ratelimit_rest_ip_burst),
                "s3": Limit(s.ratelimit_s3_ip_rate, s.ratelimit_s3_ip_burst),
            },
            per_user={
                "rest": Limit(s.ratelimit_rest_user_rate, s.ratelimit_rest_user_burst),
                "s3": Limit(s.ratelimit_s3_key_rate, s.ratelimit_s3_key_burst),
            },
        )


class RateLimiter:
    """The limits, applied to the buckets of this worker's store (made in the app's lifespan).

    Each check takes a token and answers the whole seconds to wait before trying again, as
    Retry-After tells them (0: go on); the web layers only repeat that number."""

    def __init__(self, limits: RateLimits, get_buckets: Callable[[], Buckets], threads: int = TAKE_THREADS):
        self.limits = limits
        self.get_buckets = get_buckets
        self.threads = anyio.CapacityLimiter(threads)

    async def ip_wait(self, surface: Surface, address: str) -> int:
        return await self.take(self.limits.per_ip.get(surface), f"{surface} ip {address}")

    async def rest_user_wait(self, user: str) -> int:
        return await self.take(self.limits.per_user.get("rest"), f"rest user {user}")

    async def s3_key_wait(self, access_key: str) -> int:
        return await self.take(self.limits.per_user.get("s3"), f"s3 key {access_key}")

    async def take(self, limit: Limit | None, key: str) -> int:
        """A token of `key`'s bucket under `limit`: 0, or the whole seconds until one is back."""
        if limit is None or limit.rate <= 0:
            return 0
        buckets = self.get_buckets()
        try:
            if buckets.blocking:
                wait = await run_sync(buckets.take, key, limit.rate, limit.burst, limiter=self.threads)
            else:
                wait = buckets.take(key, limit.rate, limit.burst)
        except StorageFull:  # the state's disk is full: reads and deletes must go on, unlimited meanwhile
            return 0
        return retry_after(wait) if wait > 0 else 0


def client_address(scope: Scope) -> str:
    """The name of a client's bucket: its address as the server reports it, IPv6 by /64."""
    peer = scope.get("client")
    if not peer:
        return "-"
    return _address_bucket(str(peer[0]))


@lru_cache(maxsize=4096)  # parsing an address is ~10 µs of a small request; clients come back
def _address_bucket(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class RateLimitMiddleware:
    """Takes the per-address token and hands the per-user check on (see the module docstring)."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter):
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        surface = surface_of(scope["path"])
        if surface == "rest":
            scope[USER_LIMIT] = self.limiter.rest_user_wait
            scope[USER_LIMIT_NAME] = setting_name("rest", "user")
        if surface is not None:
            wait = await self.limiter.ip_wait(surface, client_address(scope))
            if wait > 0:
                return await refuse(scope, receive, send, surface, wait)
        await self.app(scope, receive, send)


def setting_name(surface: Surface, per: Literal["ip", "user", "key"]) -> str:
    """The setting of a limit, as the refusals name it: `PYBLOB_RATELIMIT_REST_USER_RATE`."""
    return f"PYBLOB_RATELIMIT_{surface.upper()}_{per.upper()}_RATE"


async def refuse(scope: Scope, receive: Receive, send: Send, surface: Surface, wait: int) -> None:
    """429 (links, rest) or 503 SlowDown (S3); the body of the request is left unread."""
    name = setting_name(surface, "ip")
    await send_refusal(scope, receive, send, surface, slow_down(wait, name), rate_limited(wait, name))


async def send_refusal(
    scope: Scope, receive: Receive, send: Send, surface: Surface | None, s3_error: S3Error, api_error: ApiError
) -> None:
    """Refuse a request before any route runs, in its surface's format: `s3_error` as S3's XML, else
    `api_error` as JSON; a WebSocket handshake gets it as its denial response where the server can send one."""
    if surface == "s3":
        response = error_response(Request(scope), s3_error, request_id())
    else:
        response = render(api_error)
    if scope["type"] == "websocket":
        websocket = WebSocket(scope, receive, send)
        if "websocket.http.response" in scope.get("extensions", {}):
            return await websocket.send_denial_response(response)
        return await WebSocketClose(1008, api_error.detail[:120])(scope, receive, send)
    if has_body(Request(scope)):
        response.headers["connection"] = "close"  # leftover body bytes must not read as a request
    await response(scope, receive, send)
