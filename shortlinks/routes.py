"""Public short links: `GET`/`HEAD /s/{id}`, no authentication.

Served like a CDN origin (Range, ETag, Last-Modified, 304) and never as active content on our origin:
every response carries `X-Content-Type-Options: nosniff` and `Content-Security-Policy: sandbox`, and
types that can run script are attachments (see `disposition.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from objstore import ObjectRecord, Store
from objstore.errors import StoreError
from objstore.records import LinkRecord
from s3api.errors import S3Error
from s3api.http import check_conditions, http_date, iso8601, parse_range, quoted

from .disposition import content_disposition, filename_of, is_inline_safe
from .errors import ApiError, from_store, render

SAFETY_HEADERS = {"x-content-type-options": "nosniff", "content-security-policy": "sandbox"}
MAX_AGE = 300
OUTPUTS = ("file", "download", "json")

GetStore = Callable[[], Store]


def link_routes(get_store: GetStore) -> list[Route]:
    """The /s/ routes; register them before the S3 catch-all."""
    links = ShortLinks(get_store)
    return [Route("/s/{id}", links.endpoint, methods=["GET", "HEAD"])]


class ShortLinks:
    def __init__(self, get_store: GetStore):
        self.get_store = get_store

    async def endpoint(self, request: Request) -> Response:
        try:
            response = await self._serve(request)
        except StoreError as exc:
            response = render(from_store(exc), {"cache-control": "no-store"})
        except ApiError as err:
            response = render(err, {"cache-control": "no-store"})
        response.headers.update(SAFETY_HEADERS)
        return response

    async def _serve(self, request: Request) -> Response:
        output = request.query_params.get("output", "file")
        if output not in OUTPUTS:
            raise ApiError(400, f"output must be one of {', '.join(OUTPUTS)}")
        store = self.get_store()
        link, record = await run_in_threadpool(store.links.resolve, request.path_params["id"], store.clock())
        if output == "json":
            return JSONResponse(public_metadata(link, record), headers={"cache-control": "no-cache"})
        return await self._serve_file(request, store, link, record, output == "download")

    async def _serve_file(
        self, request: Request, store: Store, link: LinkRecord, record: ObjectRecord, download: bool
    ) -> Response:
        cache = {"cache-control": cache_control(link, store.clock())}
        status = check_conditions(request.headers, record)
        if status == 304:
            return Response(status_code=304, headers={**validators(record), **cache})
        if status == 412:
            raise ApiError(412, "precondition failed")
        start, end, status = byte_range(request.headers.get("range"), record.size)
        headers = {**file_headers(link, record, download), **cache, "content-length": str(end - start)}
        if status == 206:
            headers["content-range"] = f"bytes {start}-{end - 1}/{record.size}"
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers)
        await run_in_threadpool(store.links.count_download, link.id)
        return StreamingResponse(store.read_object(record, start, end), status_code=status, headers=headers)


def byte_range(header: str | None, size: int) -> tuple[int, int, int]:
    """(start, end exclusive, status) of the answer to a Range header, with S3's parsing."""
    try:
        rng = parse_range(header, size)
    except S3Error as exc:
        raise ApiError(416, "range not satisfiable", exc.headers) from exc
    if rng is None:
        return 0, size, 200
    return rng[0], rng[1], 206


def validators(record: ObjectRecord) -> dict[str, str]:
    return {"etag": quoted(record.etag), "last-modified": http_date(record.created)}


def file_headers(link: LinkRecord, record: ObjectRecord, download: bool) -> dict[str, str]:
    kind = "inline" if not download and is_inline_safe(record.content_type) else "attachment"
    return {
        **validators(record),
        "content-type": record.content_type,
        "accept-ranges": "bytes",
        "content-disposition": content_disposition(kind, link.key),
    }


def cache_control(link: LinkRecord, now: float) -> str:
    """Shared caches may keep a link's bytes for five minutes, never past its expiry; a link with a
    download budget is not cached at all (a cache would serve downloads we cannot count)."""
    if link.max_downloads is not None:
        return "no-store"
    max_age = MAX_AGE if link.expires_at is None else max(0, min(MAX_AGE, int(link.expires_at - now)))
    return f"public, max-age={max_age}"


def public_metadata(link: LinkRecord, record: ObjectRecord) -> dict[str, Any]:
    """What anyone holding the link may know: never the owner, bucket or keys."""
    return {
        "name": filename_of(link.key),
        "size": record.size,
        "type": record.content_type,
        "created": iso8601(record.created),
        "downloads": link.downloads,
    }
