"""Per-user rate limits of the REST API, once the caller is known.

The composition layer owns the limits and the token buckets; its middleware puts the check for
this request in the ASGI scope under `USER_LIMIT`: a callable from the user's name to the whole
seconds they must wait, as Retry-After tells them (0: go on). Without it (an app built without
the middleware) nothing is limited.
`api.authenticate` calls `check_user_rate`, so every endpoint that authenticates is covered;
WebSocket endpoints can call `user_wait` and refuse the connection themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import HTTPConnection

from .errors import ApiError

USER_LIMIT = "pyblob.user_rate_limit"
USER_LIMIT_NAME = "pyblob.user_rate_limit_name"  # the setting behind it, named in the 429's detail
UserLimit = Callable[[str], Awaitable[int]]


def rate_limited(retry_after: int, limit_name: str = "") -> ApiError:
    """429 with `retry_after`, the whole seconds to wait, in `Retry-After`; no cache may keep it.
    `limit_name`: the setting that sets the limit, named in the detail for the admin."""
    detail = f"rate limit exceeded (the limit is {limit_name})" if limit_name else "rate limit exceeded"
    return ApiError(429, detail, {"retry-after": str(retry_after), "cache-control": "no-store"})


async def user_wait(conn: HTTPConnection, user: str) -> int:
    """Whole seconds `user` must wait before this request may go on (one token taken when 0)."""
    limit: UserLimit | None = conn.scope.get(USER_LIMIT)
    return await limit(user) if limit is not None else 0


async def check_user_rate(conn: HTTPConnection, user: str) -> None:
    """Raise the 429 `ApiError` when `user`'s bucket is empty."""
    wait = await user_wait(conn, user)
    if wait > 0:
        raise rate_limited(wait, conn.scope.get(USER_LIMIT_NAME, ""))
