"""Public short links: `GET`/`HEAD /s/{id}`, no authentication.

Served like a CDN origin (Range, ETag, Last-Modified, 304) and never as active content on our origin:
every response carries `X-Content-Type-Options: nosniff` and `Content-Security-Policy: sandbox`, and
types that can run script are attachments (see `disposition.py`). The one page of our own,
`?output=html` (`preview.py`), gets a CSP without any script source instead of `sandbox`, which would
keep it from showing the file's own image or video.
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
from s3api.activecontent import SANDBOX_CSP
from s3api.conditional import ConditionFailed, RangeNotSatisfiable, not_modified, requested_span, validators
from s3api.http import LOOP_READ_MAX, WHOLE_READ_MAX, iso8601
from s3api.objectbody import ObjectBody, offers_zero_copy

from .disposition import content_disposition, filename_of, is_inline_safe, served_type
from .errors import ApiError, from_conditional, from_store, render
from .preview import PAGE_CSP, TEXT_PREVIEW_BYTES, Preview, preview_kind, render_page

DEFAULT_CSP = SANDBOX_CSP  # what S3 GET sends on script-capable types (s3api/activecontent.py)
OUTPUTS = ("file", "download", "json", "html")

GetStore = Callable[[], Store]


def link_routes(get_store: GetStore, public_url: str, cache_max_age: int) -> list[Route]:
    """The /s/ routes; register them before the S3 catch-all. `public_url` makes the preview's absolute
    URLs; `cache_max_age` caps how long shared caches keep a link's bytes (see `cache_control`)."""
    links = ShortLinks(get_store, public_url.rstrip("/"), cache_max_age)
    return [Route("/s/{id}", links.endpoint, methods=["GET", "HEAD"])]


class ShortLinks:
    """The `/s/{id}` endpoint: a link's file (inline or as a download), its public metadata (JSON) or
    its preview page (HTML); every error is JSON and uncached."""

    def __init__(self, get_store: GetStore, public_url: str, cache_max_age: int):
        self.get_store = get_store
        self.public_url = public_url
        self.cache_max_age = cache_max_age

    async def endpoint(self, request: Request) -> Response:
        try:
            response = await self._serve(request)
        except StoreError as exc:
            response = render(from_store(exc), {"cache-control": "no-store"})
        except (ConditionFailed, RangeNotSatisfiable) as exc:
            response = render(from_conditional(exc), {"cache-control": "no-store"})
        except ApiError as err:
            response = render(err, {"cache-control": "no-store"})
        response.headers["x-content-type-options"] = "nosniff"
        response.headers.setdefault("content-security-policy", DEFAULT_CSP)
        return response

    async def _serve(self, request: Request) -> Response:
        output = request.query_params.get("output", "file")
        if output not in OUTPUTS:
            raise ApiError(400, f"output must be one of {', '.join(OUTPUTS)}")
        store = self.get_store()
        serving = output in ("file", "download") and request.method == "GET"
        # The link and its object's row are read on the event loop (a few LMDB rows), small bytes with
        # them (s3api.http.LOOP_READ_MAX); bigger ones are sent from their chunk files by the server
        # (s3api/objectbody.py) or, where it cannot, read in one thread call: one hand-off at most.
        link, record = store.links.resolve(request.path_params["id"], store.clock())
        whole = None
        if serving and record.size <= LOOP_READ_MAX:
            whole = read_whole(store, record)
        elif serving and record.size <= WHOLE_READ_MAX and not offers_zero_copy(request.scope):
            whole = await run_in_threadpool(read_whole, store, record)
        if output == "json":
            pending = store.stats.pending(link.id).downloads
            return JSONResponse(public_metadata(link, record, pending), headers={"cache-control": "no-cache"})
        if output == "html":
            return await self._serve_preview(request, store, link, record)
        return await self._serve_file(request, store, link, record, whole, output == "download")

    async def _serve_file(
        self,
        request: Request,
        store: Store,
        link: LinkRecord,
        record: ObjectRecord,
        whole: bytes | None,
        download: bool,
    ) -> Response:
        cache = {"cache-control": cache_control(link, store.clock(), self.cache_max_age)}
        fresh = not_modified(request.headers, record)  # a failed condition raises ConditionFailed: 412
        if fresh is not None:
            return Response(status_code=304, headers={**fresh, **cache})
        sent = requested_span(request.headers.get("range"), record.size)
        start, end, status = sent.start, sent.end, sent.status
        headers = {**file_headers(link, record, download), **cache, **sent.headers()}
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers)
        if link.max_downloads is not None:  # a budget is spent at once, exactly, whatever the range
            await run_in_threadpool(store.links.count_download, link.id, end - start)
        if whole is not None:
            if link.max_downloads is None:
                store.stats.add(link.id, 1 if start == 0 else 0, end - start)
            return Response(whole[start:end], status_code=status, headers=headers)
        count = link.max_downloads is None  # batched; a player's follow-up ranges (seeking) add bytes, not downloads
        if offers_zero_copy(request.scope):
            pieces = store.read_regions(record, start, end)
            return ObjectBody(store.stats.counted(link.id, pieces, start == 0) if count else pieces, status, headers)
        body = store.read_object(record, start, end)
        body = store.stats.counted(link.id, body, download=start == 0) if count else body
        return StreamingResponse(body, status_code=status, headers=headers)

    async def _serve_preview(self, request: Request, store: Store, link: LinkRecord, record: ObjectRecord) -> Response:
        """The preview page. Not a download: the media it embeds are, when the browser fetches them."""
        kind = preview_kind(record.content_type, budgeted=link.max_downloads is not None)
        text = await run_in_threadpool(read_head, store, record) if kind == "text" else None
        name = display_name(link)
        page = render_page(Preview(link.id, name, record.size, record.content_type, kind, self.public_url, text))
        body = page.encode()
        headers = {"cache-control": "no-cache", "content-security-policy": PAGE_CSP, "content-length": str(len(body))}
        return Response(b"" if request.method == "HEAD" else body, headers=headers, media_type="text/html")


def read_whole(store: Store, record: ObjectRecord) -> bytes:
    return b"".join(store.read_object(record))


def read_head(store: Store, record: ObjectRecord) -> bytes:
    return b"".join(store.read_object(record, 0, TEXT_PREVIEW_BYTES))


def file_headers(link: LinkRecord, record: ObjectRecord, download: bool) -> dict[str, str]:
    content_type = served_type(record.content_type)
    kind = "inline" if not download and is_inline_safe(content_type) else "attachment"
    return {
        **validators(record),
        "content-type": content_type,
        "accept-ranges": "bytes",
        "content-disposition": content_disposition(kind, display_name(link)),
    }


def cache_control(link: LinkRecord, now: float, max_age: int) -> str:
    """Shared caches may keep a link's bytes for `max_age` seconds (`PYBLOB_LINK_CACHE_MAX_AGE`), never
    past its expiry; a link with a download budget is not cached at all (a cache would serve downloads
    we cannot count)."""
    if link.max_downloads is not None:
        return "no-store"
    if link.expires_at is not None:
        max_age = max(0, min(max_age, int(link.expires_at - now)))
    return f"public, max-age={max_age}"


def display_name(link: LinkRecord) -> str:
    """The name given at upload, else the key's last segment."""
    return link.name or filename_of(link.key)


def public_metadata(link: LinkRecord, record: ObjectRecord, pending: int = 0) -> dict[str, Any]:
    """What anyone holding the link may know: never the owner, bucket or keys."""
    return {
        "name": display_name(link),
        "size": record.size,
        "type": record.content_type,
        "created": iso8601(record.created),
        "downloads": link.downloads + pending,
    }
