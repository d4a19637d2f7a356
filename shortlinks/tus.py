"""Resumable uploads over tus 1.0 at `/upload_tus/` (https://tus.io/protocols/resumable-upload).

Core protocol plus the creation, creation-with-upload, termination and expiration extensions. Every
request but OPTIONS needs `Tus-Resumable: 1.0.0` (412 otherwise) and a bearer token; an upload of
another user answers 404 like an unknown one. A PATCH body streams into the store a block at a time and
what arrived is kept even if the client goes away (tus: "the Server SHOULD store as much of the
received data as possible"), so a HEAD tells the client where to resume. The last byte turns the
upload into a file with a short link, announced in the `Upload-Link` header of that response (and of
any later HEAD): a 204 has no body to carry JSON. The engine side is `objstore.links.resumable`.

Browsers (tus-js-client, Uppy) are served cross-origin: OPTIONS answers the CORS preflight without
a token, and every response exposes the tus headers. The token travels in `Authorization`, never in
a cookie, so any origin may call.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from email.utils import formatdate

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from objstore import Store
from objstore.errors import StoreError
from objstore.limits import upload_limit
from objstore.links.resumable import DONE, Appender, Resumables
from objstore.records import ResumableRecord
from s3api.http import parse_count

from .api import authenticate
from .errors import ApiError, from_store, render
from .filetypes import content_type_for

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,expiration"
OFFSET_TYPE = "application/offset+octet-stream"
WRITE_BLOCK = 1024 * 1024
MAX_METADATA = 4096  # bytes of the Upload-Metadata header
MAX_NAME = 1024  # characters of a file name in the metadata (stored names are cut to 255 bytes)
# Every method reaches the dispatcher, which answers 405 itself (none falls through to the S3 routes).
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

EXPOSED = (
    "Location, Upload-Offset, Upload-Length, Upload-Expires, Upload-Metadata, Upload-Link, "
    "Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size"
)
CORS = {"access-control-allow-origin": "*", "access-control-expose-headers": EXPOSED}
PREFLIGHT = {
    "access-control-allow-methods": "POST, HEAD, PATCH, DELETE, OPTIONS",
    "access-control-allow-headers": "Authorization, Content-Type, Tus-Resumable, Upload-Length, Upload-Metadata, "
    "Upload-Offset, X-HTTP-Method-Override, X-Requested-With",
    "access-control-max-age": "86400",
}

GetStore = Callable[[], Store]
Handler = Callable[[Request, Resumables, str], Awaitable[Response]]


def tus_routes(get_store: GetStore, public_url: str, links_url: str = "") -> list[Route]:
    """The /upload_tus routes; register them before the S3 catch-all. Uploads are at `public_url`,
    the links they end in at `links_url` (the same unless short links have a host of their own)."""
    tus = TusUploads(get_store, public_url.rstrip("/"), (links_url or public_url).rstrip("/"))
    on_collection = tus.endpoint({"POST": tus.create_upload})
    on_upload = tus.endpoint({"HEAD": tus.head_upload, "PATCH": tus.patch_upload, "DELETE": tus.terminate_upload})
    return [
        Route("/upload_tus", on_collection, methods=ALL_METHODS),
        Route("/upload_tus/", on_collection, methods=ALL_METHODS),
        Route("/upload_tus/{id}", on_upload, methods=ALL_METHODS),
    ]


def effective_method(request: Request) -> str:
    """The method, or for a POST the `X-HTTP-Method-Override` (for clients that cannot send PATCH)."""
    override = request.headers.get("x-http-method-override", "").upper()
    return override if request.method == "POST" and override else request.method


class TusUploads:
    """The tus endpoints (`/upload_tus/`): create, probe, append to and remove resumable uploads."""

    def __init__(self, get_store: GetStore, public_url: str, links_url: str = ""):
        self.get_store = get_store
        self.public_url = public_url
        self.links_url = links_url or public_url

    def endpoint(self, handlers: dict[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
        """Dispatch on the method; check the protocol version and the token; render every error."""

        async def serve(request: Request) -> Response:
            method = effective_method(request)
            if method == "OPTIONS":
                response = await self.options(request)
            else:
                response = await self._handle(request, handlers, method)
            response.headers.update({"tus-resumable": TUS_VERSION, **CORS})
            return response

        return serve

    async def _handle(self, request: Request, handlers: dict[str, Handler], method: str) -> Response:
        try:
            handler = handlers.get(method)
            if handler is None:
                raise ApiError(405, f"{method} is not allowed here", {"allow": ", ".join(["OPTIONS", *handlers])})
            if request.headers.get("tus-resumable") != TUS_VERSION:
                raise ApiError(412, f"Tus-Resumable: {TUS_VERSION} is required", {"tus-version": TUS_VERSION})
            store = self.get_store()
            user = await authenticate(request, store)
            return await handler(request, store.resumables, user)
        except StoreError as exc:
            return render(from_store(exc), {"cache-control": "no-store"})
        except ApiError as err:
            return render(err, {"cache-control": "no-store"})

    async def options(self, request: Request) -> Response:
        """Server capabilities, and the CORS preflight answer; a valid token gives that user's size limit."""
        headers = {"tus-version": TUS_VERSION, "tus-extension": TUS_EXTENSIONS, **PREFLIGHT}
        max_size = await self._max_size(request)
        if max_size:
            headers["tus-max-size"] = str(max_size)
        return Response(status_code=204, headers=headers)

    async def _max_size(self, request: Request) -> int:
        store = self.get_store()
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            user = await run_in_threadpool(store.accounts.user_for_token, token.strip())
            if user is not None:
                record = await run_in_threadpool(store.accounts.get_user, user)
                return upload_limit(record, store.config.upload_max_file_size)
        return min(
            (n for n in (store.config.default_max_object_size, store.config.upload_max_file_size) if n), default=0
        )

    # operations ----------------------------------------------------------------------------------
    async def create_upload(self, request: Request, resumables: Resumables, user: str) -> Response:
        """Creation: `Upload-Length` bytes charged to the user at once; with a body, creation-with-upload."""
        if "upload-defer-length" in request.headers:
            raise ApiError(400, "Upload-Defer-Length is not supported; send Upload-Length")
        length = header_int(request, "upload-length")
        metadata = parse_metadata(request.headers.get("upload-metadata", ""))
        filename = (metadata.get("filename") or metadata.get("name") or "")[:MAX_NAME]
        filetype = content_type_for(metadata.get("filetype") or metadata.get("type"), filename) or ""
        with_upload = media_type(request) == OFFSET_TYPE
        if with_upload and content_length(request) > length:
            raise ApiError(413, "the body goes past Upload-Length")
        row = await run_in_threadpool(resumables.create, user, length, filename, filetype)
        headers = {"location": f"{self.public_url}/upload_tus/{row.id}"}
        if with_upload:
            row = await self._receive_new(request, resumables, user, row.id)
            headers["upload-offset"] = str(row.offset)
        elif row.length == 0:
            row = await run_in_threadpool(resumables.finish, user, row.id)
        return Response(status_code=201, headers={**headers, **self.upload_headers(row)})

    async def head_upload(self, request: Request, resumables: Resumables, user: str) -> Response:
        """Where to resume. A complete upload that is not a file yet (a failed or cut-off finish) is finished now."""
        row = await run_in_threadpool(resumables.get, user, request.path_params["id"])
        if row.state != DONE and row.offset == row.length:
            row = await run_in_threadpool(resumables.finish, user, row.id)
        headers = {"upload-length": str(row.length), "cache-control": "no-store", **self.upload_headers(row)}
        if row.filename or row.filetype:
            headers["upload-metadata"] = encode_metadata({"filename": row.filename, "filetype": row.filetype})
        return Response(status_code=200, headers=headers)

    async def patch_upload(self, request: Request, resumables: Resumables, user: str) -> Response:
        """Append the body at `Upload-Offset` (409 unless that is where the kept bytes end)."""
        if media_type(request) != OFFSET_TYPE:
            raise ApiError(415, f"Content-Type must be {OFFSET_TYPE}")
        offset = header_int(request, "upload-offset")
        row = await self._receive(request, resumables, user, request.path_params["id"], offset)
        return Response(status_code=204, headers=self.upload_headers(row))

    async def terminate_upload(self, request: Request, resumables: Resumables, user: str) -> Response:
        """Termination: the upload and its bytes are gone (a finished upload's file stays)."""
        await run_in_threadpool(resumables.terminate, user, request.path_params["id"])
        return Response(status_code=204)

    # helpers ---------------------------------------------------------------------------------------
    async def _receive_new(
        self, request: Request, resumables: Resumables, user: str, upload_id: str
    ) -> ResumableRecord:
        """creation-with-upload: a request that fails takes its new upload with it (no Location was given)."""
        try:
            return await self._receive(request, resumables, user, upload_id, 0)
        except (StoreError, ApiError):
            await run_in_threadpool(resumables.terminate, user, upload_id)
            raise

    async def _receive(
        self, request: Request, resumables: Resumables, user: str, upload_id: str, offset: int
    ) -> ResumableRecord:
        """Stream the body in at `offset`, keep what came, and finish the upload after its last byte."""
        appender = await run_in_threadpool(resumables.open_append, user, upload_id, offset)
        try:
            if content_length(request) > appender.remaining:
                raise ApiError(413, "the body goes past the upload's Upload-Length")
            await stream_body(request, appender)
        finally:
            row = await run_in_threadpool(appender.close)
        if row.offset == row.length:
            row = await run_in_threadpool(resumables.finish, user, upload_id)
        return row

    def upload_headers(self, row: ResumableRecord) -> dict[str, str]:
        headers = {"upload-offset": str(row.offset)}
        if row.state == DONE:
            headers["upload-link"] = f"{self.links_url}/s/{row.link}"
        else:
            headers["upload-expires"] = formatdate(row.expires, usegmt=True)
        return headers


async def stream_body(request: Request, appender: Appender) -> None:
    """Write the body a block at a time on a worker thread; a client that goes away ends it early."""
    buffer = bytearray()
    try:
        async for piece in request.stream():
            buffer += piece
            if len(buffer) >= WRITE_BLOCK:
                await run_in_threadpool(appender.write, bytes(buffer))
                buffer.clear()
    except ClientDisconnect:
        pass  # keep what came: the client resumes from the offset a HEAD reports
    if buffer:
        await run_in_threadpool(appender.write, bytes(buffer))


def content_length(request: Request) -> int:
    """The declared body size; 0 when not given (a chunked body is checked as it streams)."""
    return parse_count(request.headers.get("content-length", "")) or 0


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def header_int(request: Request, name: str) -> int:
    raw = request.headers.get(name)
    if raw is None or not (raw.isascii() and raw.isdigit()) or len(raw) > 19:  # "²".isdigit() is true
        raise ApiError(400, f"{name} must be given as a non-negative integer")
    return int(raw)


def parse_metadata(header: str) -> dict[str, str]:
    """`Upload-Metadata`: comma-separated `key base64value` pairs (the value may be absent)."""
    if len(header) > MAX_METADATA:
        raise ApiError(400, f"Upload-Metadata is longer than {MAX_METADATA} bytes")
    found: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, value = pair.partition(" ")
        if key in found or not key.isascii():
            raise ApiError(400, "Upload-Metadata keys must be unique ASCII")
        try:
            found[key] = base64.b64decode(value.strip(), validate=True).decode()
        except ValueError as exc:  # binascii.Error, UnicodeDecodeError, and non-ASCII text (b64decode's own)
            raise ApiError(400, f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text") from exc
    return found


def encode_metadata(values: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items() if v)
