"""The links REST API for frontends (bearer token): `POST`/`GET /api/links`, `GET`/`PATCH`/`DELETE
/api/links/{id}`, the owner's own view of a link's file (`GET /api/links/{id}/content`: thumbnails in
the console, never counted as a download), and the caller's S3 buckets and keys, read-only
(`GET /api/buckets`, `GET /api/buckets/{bucket}/objects`).

A link or bucket of another user answers 404, exactly as an unknown one: ids are not an oracle.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from objstore import Store
from objstore.errors import NoSuchBucket, NoSuchLink, StoreError
from objstore.links import MAX_EXPIRES_IN
from objstore.records import LinkRecord
from s3api.requestinfo import note_user

from .errors import ApiError, from_store, render
from .ratelimit import check_user_rate

GetStore = Callable[[], Store]
Handler = Callable[[Request, Store, str], Awaitable[Response]]
CURSOR = re.compile(r"^[0-9a-f]{16}$")
DEFAULT_PAGE, MAX_PAGE = 100, 1000
MAX_KEY_CHARS = 1024
MAX_JSON_BODY = 64 * 1024  # a link's request is a bucket, a key (at most 1 KiB) and two numbers


def api_routes(get_store: GetStore, public_url: str) -> list[Route]:
    api = LinksApi(get_store, public_url.rstrip("/"))
    return [
        Route("/api/links", api.wrap(api.create_link), methods=["POST"]),
        Route("/api/links", api.wrap(api.list_links), methods=["GET"]),
        Route("/api/links/{id}", api.wrap(api.get_link), methods=["GET"]),
        Route("/api/links/{id}", api.wrap(api.delete_link), methods=["DELETE"]),
        Route("/api/links/{id}", api.wrap(api.change_link), methods=["PATCH"]),
        Route("/api/links/{id}/content", api.wrap(api.link_content), methods=["GET"]),
        Route("/api/buckets", api.wrap(api.list_buckets), methods=["GET"]),
        Route("/api/buckets/{bucket}/objects", api.wrap(api.list_objects), methods=["GET"]),
    ]


class LinksApi:
    """The `/api/links` handlers over a store, each wrapped to authenticate and render its errors."""

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
        check_expires_in(expires_in)
        max_downloads = optional_int(body, "max_downloads")
        version_id = optional_str(body, "version_id")
        link = await run_in_threadpool(store.links.create, user, bucket, key, expires_in, max_downloads, version_id)
        return JSONResponse(self.link_json(link), status_code=201)

    async def list_links(self, request: Request, store: Store, user: str) -> Response:
        """The caller's links, newest first: `?limit=` (1-1000, default 100) and `?cursor=` of the last page."""
        limit, cursor = page_limit(request.query_params.get("limit")), request.query_params.get("cursor")
        check_cursor(cursor)
        page = await run_in_threadpool(store.links.list, user, limit, cursor)
        return JSONResponse({"links": [self.link_json(link) for link in page.links], "next_cursor": page.next_cursor})

    async def get_link(self, request: Request, store: Store, user: str) -> Response:
        link = await run_in_threadpool(store.links.get, request.path_params["id"])
        if link.owner != user:
            raise NoSuchLink(link.id)
        return JSONResponse(self.link_json(link))

    async def delete_link(self, request: Request, store: Store, user: str) -> Response:
        link = await run_in_threadpool(store.links.revoke, request.path_params["id"], user)
        return JSONResponse(self.link_json(link))

    async def change_link(self, request: Request, store: Store, user: str) -> Response:
        """`{"expires_in": seconds or null, "max_downloads": n or null}`; a field left out stays."""
        body = await json_body(request)
        changes: dict[str, Any] = {}
        if "expires_in" in body:
            changes["expires_in"] = optional_number(body, "expires_in")
            check_expires_in(changes["expires_in"])
        if "max_downloads" in body:
            changes["max_downloads"] = optional_int(body, "max_downloads")
        link = await run_in_threadpool(partial(store.links.change, request.path_params["id"], user, **changes))
        return JSONResponse(self.link_json(link))

    async def link_content(self, request: Request, store: Store, user: str) -> Response:
        """The file behind the caller's own link, for its owner's eyes: not a download (no count, no
        budget spent), served as an attachment-safe resource (sandboxed, never sniffed)."""
        link = await run_in_threadpool(store.links.get, request.path_params["id"])
        if link.owner != user:
            raise NoSuchLink(link.id)
        record = await run_in_threadpool(store.head_object, link.bucket, link.key, link.version_id)
        headers = {
            "content-length": str(record.size),
            "cache-control": "private, no-store",
            "x-content-type-options": "nosniff",
            "content-security-policy": "sandbox",
        }
        body = store.read_object(record)
        return StreamingResponse(body, media_type=record.content_type or "application/octet-stream", headers=headers)

    async def list_buckets(self, request: Request, store: Store, user: str) -> Response:
        buckets = await run_in_threadpool(store.list_buckets, user)
        return JSONResponse({"buckets": [{"name": b.name, "created": b.created} for b in buckets]})

    async def list_objects(self, request: Request, store: Store, user: str) -> Response:
        """One level of a bucket: `?prefix=` (ending in `/` for a folder), `?after=` the last key of
        the page before, `?limit=` (1-1000)."""
        name, query = request.path_params["bucket"], request.query_params
        prefix, after, limit = query.get("prefix", ""), query.get("after", ""), page_limit(query.get("limit"))
        if len(prefix) > MAX_KEY_CHARS or len(after) > MAX_KEY_CHARS:
            raise ApiError(400, "prefix and after are keys: at most 1024 characters")
        bucket = await run_in_threadpool(store.get_bucket, name)
        if bucket.owner != user:
            raise NoSuchBucket(name)
        page = await run_in_threadpool(store.list_objects, name, prefix, "/", after, limit)
        objects = [
            {"key": o.key, "size": o.size, "last_modified": o.created, "content_type": o.content_type}
            for o in page.objects
        ]
        next_after = page.last if page.truncated else None
        return JSONResponse({"objects": objects, "folders": page.prefixes, "next_after": next_after})

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
            "bytes_served": link.bytes_served,
            "last_download": link.last_download,
            "revoked": link.revoked,
            "version_id": link.version_id,
        }


async def authenticate(request: Request, store: Store) -> str:
    token = bearer_token(request)
    user = await run_in_threadpool(store.accounts.user_for_token, token) if token else None
    if user is None:
        raise ApiError(401, "missing or invalid bearer token", {"www-authenticate": "Bearer"})
    note_user(user)
    await check_user_rate(request, user)
    return user


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def page_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    # Bounded before int(): Python refuses strings of over 4,300 digits with ValueError (a 500).
    number = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_PAGE)) else 0
    if not 1 <= number <= MAX_PAGE:
        raise ApiError(400, f"limit must be an integer from 1 to {MAX_PAGE}")
    return number


def check_cursor(cursor: str | None) -> None:
    """A cursor is the `next_cursor` of a previous page, nothing else."""
    if cursor is not None and not CURSOR.match(cursor):
        raise ApiError(400, "invalid cursor: pass the next_cursor of the previous page")


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await bounded_body(request, MAX_JSON_BODY))
    except (ValueError, RecursionError) as exc:  # RecursionError: nested past the parser's limit
        raise ApiError(400, "body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object")
    return body


async def bounded_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 once it passes `limit` bytes (the rest is not read)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"the body is larger than {limit} bytes", {"connection": "close"})
    return bytes(body)


def is_utf8(text: str) -> bool:
    """False for a string with lone surrogates (JSON's `\\ud800`): it has no UTF-8 form to store."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def required_str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or not is_utf8(value):
        raise ApiError(400, f"{name} must be a non-empty string")
    return value


def optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or not is_utf8(value)):
        raise ApiError(400, f"{name} must be a string or null")
    return value


def optional_number(body: dict[str, Any], name: str) -> float | None:
    """A finite number or None (Python's JSON reads `Infinity`, `NaN` and `1e999`)."""
    value = body.get(name)
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
    ):
        raise ApiError(400, f"{name} must be a finite number or null")
    return value


def check_expires_in(expires_in: float | None) -> None:
    """Finite and at most the engine's MAX_EXPIRES_IN (positive is the store's rule, checked there)."""
    if expires_in is not None and not (math.isfinite(expires_in) and expires_in <= MAX_EXPIRES_IN):
        raise ApiError(400, f"expires_in must be a finite number of seconds, at most {MAX_EXPIRES_IN:.0f}")


def optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ApiError(400, f"{name} must be an integer or null")
    return value
