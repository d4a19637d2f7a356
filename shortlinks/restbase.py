"""What the pyBlobServer-compatible REST routers share: bearer auth, JSON errors, CORS, time and space formats.

pyBlobServer's web UI may be served from another origin, as pyBlobServer allowed: every response
allows any origin and OPTIONS answers the preflight. That is safe because the API authenticates
with the Authorization header only, never a cookie a browser would add on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.requests import Request
from starlette.responses import Response

from objstore import Store
from objstore.errors import StoreError
from objstore.records import UserRecord

from .api import authenticate, bearer_token
from .errors import ApiError, from_store, render
from .restmodels import Detail

MiB = 1024 * 1024
GetStore = Callable[[], Store]
log = logging.getLogger("pyblob.rest")
CORS = {"access-control-allow-origin": "*", "access-control-expose-headers": "X-Next-Cursor, Link"}
PREFLIGHT = {
    **CORS,
    "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
    "access-control-allow-headers": "Authorization, Content-Type",
    "access-control-max-age": "86400",
}

# Declares the scheme in the OpenAPI document (Swagger's "Authorize"); the check is `RestContext.caller`.
bearer = HTTPBearer(
    auto_error=False, scheme_name="token", description="An API token (`pyblob user add`, `POST /user/me/token`)."
)
# Validation errors are 400s here (`JsonErrorRoute`); declaring "4XX" also keeps FastAPI from adding
# its 422 and that 422's list-shaped body, which these routes never answer.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Detail, "description": "A malformed request"},
    401: {"model": Detail, "description": "No valid bearer token"},
    429: {
        "model": Detail,
        "description": "Over the rate limit of the client's address or user; retry after Retry-After",
    },
    "4XX": {"model": Detail, "description": "Another refusal, e.g. of a request head over pyblob's limits"},
}


class JsonErrorRoute(APIRoute):
    """Every error of these routes as `{"detail": "..."}` with its real status (see `errors.py`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            response = await answer(request)
            response.headers.update(CORS)
            return response

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except StoreError as exc:
                return render(from_store(exc))
            except ApiError as err:
                return render(err)
            except RequestValidationError as exc:
                return render(ApiError(400, validation_detail(exc)))
            except Exception:
                log.exception("%s %s failed", request.method, request.url.path)
                return render(ApiError(500, "internal error"))

        return guarded


def add_preflights(router: APIRouter) -> None:
    """An OPTIONS route (the CORS preflight) for every path of `router`."""
    for path in sorted({getattr(route, "path", "") for route in router.routes} - {""}):
        router.add_api_route(path, preflight, methods=["OPTIONS"], include_in_schema=False)


async def preflight() -> Response:
    """Any origin may call with the token header and a form or JSON body."""
    return Response(status_code=204, headers=PREFLIGHT)


def validation_detail(exc: RequestValidationError) -> str:
    """FastAPI's list of problems as one line: `limit: Input should be less than or equal to 1000`."""
    problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}" for e in exc.errors()]
    return "; ".join(problems) or "invalid request"


@dataclass
class Caller:
    """The user a REST request authenticated as, and the token it did so with."""

    user: str
    token: str  # the bearer token of this request, for /auth and rotating it


class RestContext:
    """What every REST handler needs: the store, the public URL links start with, and the caller."""

    def __init__(self, get_store: GetStore, public_url: str):
        self.get_store = get_store
        self.public_url = public_url.rstrip("/")

    async def caller(self, request: Request) -> tuple[Store, Caller]:
        """The store and the user whose bearer token came with the request; 401 otherwise (429 when
        over their rate limit, see `ratelimit.py`)."""
        store = self.get_store()
        user = await authenticate(request, store)
        return store, Caller(user, bearer_token(request) or "")

    def link_url(self, link_id: str) -> str:
        return f"{self.public_url}/s/{link_id}"


def iso(timestamp: float | None) -> str | None:
    """ISO 8601 in UTC, as pyBlobServer's JSON had its dates."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def space_left(user: UserRecord) -> int | None:
    """Bytes the user may still store; None without a quota."""
    return max(0, user.quota - user.usage_bytes) if user.quota else None


def human_space(nbytes: int | None) -> str:
    """pyBlobServer's `available_space`: MiB with three decimals, labelled "MB" as it did."""
    return "unlimited" if nbytes is None else f"{nbytes / MiB:.3f} MB"
