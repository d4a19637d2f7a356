"""The links REST API for frontends: `POST /api/links`, `GET`/`DELETE /api/links/{id}` (bearer token).

A link of another user answers 404, exactly as an unknown one: ids are not an oracle.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from objstore import Store
from objstore.errors import NoSuchLink, StoreError
from objstore.records import LinkRecord

from .errors import ApiError, from_store, render

GetStore = Callable[[], Store]
Handler = Callable[[Request, Store, str], Awaitable[Response]]


def api_routes(get_store: GetStore, public_url: str) -> list[Route]:
    api = LinksApi(get_store, public_url.rstrip("/"))
    return [
        Route("/api/links", api.wrap(api.create_link), methods=["POST"]),
        Route("/api/links/{id}", api.wrap(api.get_link), methods=["GET"]),
        Route("/api/links/{id}", api.wrap(api.delete_link), methods=["DELETE"]),
    ]


class LinksApi:
    def __init__(self, get_store: GetStore, public_url: str):
        self.get_store = get_store
        self.public_url = public_url

    def wrap(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Authenticate, run the handler, and render every error as JSON in one place."""

        async def endpoint(request: Request) -> Response:
            try:
                store = self.get_store()
                user = await authenticate(request, store)
                return await handler(request, store, user)
            except StoreError as exc:
                return render(from_store(exc))
            except ApiError as err:
                return render(err)

        return endpoint

    async def create_link(self, request: Request, store: Store, user: str) -> Response:
        body = await json_body(request)
        bucket, key = required_str(body, "bucket"), required_str(body, "key")
        expires_in = optional_number(body, "expires_in")
        max_downloads = optional_int(body, "max_downloads")
        link = await run_in_threadpool(store.links.create, user, bucket, key, expires_in, max_downloads)
        return JSONResponse(self.link_json(link), status_code=201)

    async def get_link(self, request: Request, store: Store, user: str) -> Response:
        link = await run_in_threadpool(store.links.get, request.path_params["id"])
        if link.owner != user:
            raise NoSuchLink(link.id)
        return JSONResponse(self.link_json(link))

    async def delete_link(self, request: Request, store: Store, user: str) -> Response:
        link = await run_in_threadpool(store.links.revoke, request.path_params["id"], user)
        return JSONResponse(self.link_json(link))

    def link_json(self, link: LinkRecord) -> dict[str, Any]:
        return {
            "id": link.id,
            "url": f"{self.public_url}/s/{link.id}",
            "bucket": link.bucket,
            "key": link.key,
            "created": link.created,
            "expires_at": link.expires_at,
            "max_downloads": link.max_downloads,
            "downloads": link.downloads,
            "revoked": link.revoked,
        }


async def authenticate(request: Request, store: Store) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    user = None
    if scheme.lower() == "bearer" and token.strip():
        user = await run_in_threadpool(store.accounts.user_for_token, token.strip())
    if user is None:
        raise ApiError(401, "missing or invalid bearer token", {"www-authenticate": "Bearer"})
    return user


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object")
    return body


def required_str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{name} must be a non-empty string")
    return value


def optional_number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ApiError(400, f"{name} must be a number or null")
    return value


def optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ApiError(400, f"{name} must be an integer or null")
    return value
