"""The pyBlobServer-compatible REST API for its web UI and scripts: uploads, the file list, deletion.

Same paths and JSON field names as pyBlobServer (`/upload`, `/upload_batch`, `/list`, `/delete/{id}`,
`/delete_all`, and the user routes of `rest_users.py`), with a bearer token on every call and real
statuses: every error is `{"detail": ...}` with its 4xx/5xx, never a 200 carrying an error. A "file"
is a short link and the object uploaded for it (`objstore/links/uploads.py`); `/list` shows links only,
not the user's other S3 objects. The routes are a FastAPI router, so they appear in `/docs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Security
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from objstore import ObjectRecord, Store
from objstore.errors import QuotaExceeded
from objstore.limits import check_upload_size, over_quota, upload_limit
from objstore.links import MAX_DOWNLOADS, MAX_EXPIRES_IN, LinkPage, is_spent
from objstore.records import LinkRecord, UserRecord

from .api import CURSOR, DEFAULT_PAGE, MAX_PAGE
from .errors import ApiError
from .formparts import FormStream, part_overhead
from .formupload import MAX_FIELD_BYTES, FileResult, FormUpload, UploadOptions
from .rest_users import add_user_routes
from .restbase import (
    ERROR_RESPONSES,
    Caller,
    GetStore,
    JsonErrorRoute,
    RestContext,
    add_preflights,
    bearer,
    human_space,
    iso,
    space_left,
)
from .restmodels import Deleted, Detail, FileInfo, Message, Uploaded, UploadFailed

Objects = Sequence[ObjectRecord | None]
MAX_UPLOAD_PARTS = 16  # /upload: one file and a few fields
MAX_BATCH_PARTS = 100  # /upload_batch: files and fields together
LIMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"model": Detail, "description": "The file does not fit in the quota (pyBlobServer's status)"},
    413: {"model": Detail, "description": "The file is larger than the per-file limit"},
}
# The store's refusals that are no fault of the request (an upload is when a disk fills up).
STORAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"model": Detail, "description": "The storage could not complete the upload just now; retry"},
    507: {"model": Detail, "description": "The server's disk or metadata map is full"},
}
# The link options, bounded as `check_limits` and `check_expires_in` bound them.
ExpiresIn = Annotated[float | None, Query(gt=0, le=MAX_EXPIRES_IN, description="Seconds the link stays valid")]
MaxDownloads = Annotated[int | None, Query(ge=1, le=MAX_DOWNLOADS, description="Downloads allowed")]
# `/delete_all` refuses without it, with its own message: required in the document, read as a plain string.
CONFIRM = {
    "name": "confirm",
    "in": "query",
    "required": True,
    "schema": {"type": "string", "pattern": "^[Yy][Ee][Ss]$"},
    "description": "`yes`: you mean it",
}


def rest_router(get_store: GetStore, public_url: str) -> APIRouter:
    """The REST API's routes; include them before the S3 catch-all."""
    context = RestContext(get_store, public_url)
    files = FilesApi(context)
    router = APIRouter(route_class=JsonErrorRoute, dependencies=[Security(bearer)], responses=ERROR_RESPONSES)
    add = router.add_api_route
    add(
        "/upload",
        files.upload,
        methods=["POST"],
        tags=["files"],
        responses={**LIMIT_RESPONSES, **STORAGE_RESPONSES},
        openapi_extra=form_schema("file", many=False),
    )
    add(
        "/upload_batch",
        files.upload_batch,
        methods=["POST"],
        tags=["files"],
        openapi_extra=form_schema("files", many=True),
        response_model=list[Uploaded | UploadFailed],
        responses={207: {"description": "Some files were not stored"}, **STORAGE_RESPONSES},
    )
    # An older pyBlobServer UI posts batches to /batch_upload.
    add("/batch_upload", files.upload_batch, methods=["POST"], include_in_schema=False)
    add("/list", files.list_files, methods=["GET"], tags=["files"])
    add("/delete/{file_id}", files.delete_file, methods=["DELETE"], tags=["files"], responses={404: {"model": Detail}})
    add("/delete_all", files.delete_all, methods=["DELETE"], tags=["files"], openapi_extra={"parameters": [CONFIRM]})
    add("/delete_all/", files.delete_all, methods=["DELETE"], include_in_schema=False)  # pyBlobServer's spelling
    add_user_routes(router, context)
    add_preflights(router)
    return router


def form_schema(field: str, many: bool) -> dict[str, Any]:
    """The multipart body for the OpenAPI document; the handlers read it as a stream themselves.

    `expires_in` and `max_downloads` may be form fields too, but only before the files (they apply
    to the files after them), which a schema of the form cannot say: the document has them in the
    query only, and the operation's description tells of the fields."""
    binary = {"type": "string", "format": "binary"}
    properties = {field: {"type": "array", "items": binary, "minItems": 1} if many else binary}
    schema = {"type": "object", "required": [field], "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


class FilesApi:
    """The file endpoints of the REST API: upload (one or a batch), list and delete."""

    def __init__(self, context: RestContext):
        self.context = context

    async def upload(
        self, request: Request, expires_in: ExpiresIn = None, max_downloads: MaxDownloads = None
    ) -> Uploaded:
        """Store one file (form field `file`) and return its short link.

        `expires_in` and `max_downloads` may also be form fields before the file. 413 when the file
        is larger than your per-file limit, 403 when it does not fit in your quota.
        """
        store, caller = await self.context.caller(request)
        options = UploadOptions(expires_in, max_downloads)
        results = await self.receive(request, store, caller, options, "file", 1)
        if not results:
            raise ApiError(400, "no file in the form field 'file'")
        return self.uploaded(results[0])

    async def upload_batch(
        self, request: Request, expires_in: ExpiresIn = None, max_downloads: MaxDownloads = None
    ) -> JSONResponse:
        """Store several files (form field `files`, repeated): one result per file, in order.

        `expires_in` and `max_downloads` may also be form fields before the files.

        200 when every file was stored, 207 Multi-Status when some were not; those show as
        `{"filename", "status_code", "error"}` with the status /upload would have answered.
        """
        store, caller = await self.context.caller(request)
        options = UploadOptions(expires_in, max_downloads)
        results = await self.receive(request, store, caller, options, "files", MAX_BATCH_PARTS)
        if not results:
            raise ApiError(400, "no file in the form field 'files'")
        body = [self.outcome(result).model_dump() for result in results]
        return JSONResponse(body, status_code=207 if any(r.error for r in results) else 200)

    async def receive(
        self, request: Request, store: Store, caller: Caller, options: UploadOptions, field: str, max_files: int
    ) -> list[FileResult]:
        options.check()
        user = await run_in_threadpool(store.accounts.get_user, caller.user)
        form = FormStream(request, MAX_UPLOAD_PARTS if max_files == 1 else MAX_BATCH_PARTS)
        if max_files == 1:
            refuse_early(
                user, form.length, MAX_UPLOAD_PARTS * part_overhead(MAX_FIELD_BYTES), store.config.upload_max_file_size
            )
        return await FormUpload(store, user, form, options, field, max_files).run()

    async def list_files(
        self,
        request: Request,
        response: Response,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        cursor: Annotated[
            str | None, Query(pattern=CURSOR.pattern, description="`X-Next-Cursor` of the previous page")
        ] = None,
    ) -> list[FileInfo]:
        """Your files, newest first, a page at a time. Expired ones show `"expired": true` until swept.

        The body is a bare list, as pyBlobServer's (its web UI reads it unchanged); the next, older
        page is in the headers: `X-Next-Cursor` and `Link: <...>; rel="next"` (absent on the last).
        """
        store, caller = await self.context.caller(request)
        page, objects = await run_in_threadpool(self.page, store, caller.user, limit, cursor)
        now, idle = store.clock(), store.links.idle_seconds
        pairs = zip(page.links, objects, strict=True)
        files = [self.file_info(link, record, is_spent(link, now, idle)) for link, record in pairs]
        if page.next_cursor is not None:
            response.headers["x-next-cursor"] = page.next_cursor
            response.headers["link"] = f'</list?limit={limit}&cursor={page.next_cursor}>; rel="next"'
        return files

    async def delete_file(self, request: Request, file_id: str) -> Message:
        """Delete one of your files and its link (404 for an unknown id or another user's)."""
        store, caller = await self.context.caller(request)
        await run_in_threadpool(store.links.delete, file_id, caller.user)
        return Message(message="File deleted")

    async def delete_all(
        self,
        request: Request,
        confirm: Annotated[str, Query(include_in_schema=False)] = "",
        function: Literal["all", "expired"] = "all",
    ) -> Deleted:
        """Delete all your files (`?confirm=yes`), or only the expired ones (`&function=expired`)."""
        store, caller = await self.context.caller(request)
        if confirm.lower() != "yes":
            raise ApiError(400, "add ?confirm=yes to delete your files")
        deleted = await run_in_threadpool(store.delete_links, caller.user, function == "expired")
        message = "All files deleted" if function == "all" else "Expired files deleted"
        return Deleted(message=message, deleted=deleted)

    # shapes ------------------------------------------------------------------------------------
    @staticmethod
    def page(store: Store, owner: str, limit: int, cursor: str | None) -> tuple[LinkPage, Objects]:
        store.stats.flush()  # this worker's pending download counts, so the list is current
        page = store.links.list(owner, limit, cursor)
        return page, store.links.objects_of(page.links)

    def uploaded(self, result: FileResult) -> Uploaded:
        link, user = result.link, result.user
        assert link is not None and user is not None
        url = self.context.link_url(link.id)
        left = space_left(user)
        return Uploaded(
            file_id=link.id, file_url=url, show_image=f"{url}?output=html", available_space=human_space(left),
            available_bytes=left, name=link.name, size=result.size, expires_at=iso(link.expires_at),
            max_downloads=link.max_downloads,
        )  # fmt: skip

    def outcome(self, result: FileResult) -> Uploaded | UploadFailed:
        if result.error is not None or result.link is None:
            error = result.error or ApiError(500, "internal error")
            return UploadFailed(filename=result.filename, status_code=error.status, error=error.detail)
        return self.uploaded(result)

    def file_info(self, link: LinkRecord, record: ObjectRecord | None, spent: bool) -> FileInfo:
        return FileInfo(
            file_id=link.id, file_name=link.name or link.key.rsplit("/", 1)[-1],
            file_size=record.size if record else None, file_type=record.content_type if record else "",
            upload_at=iso(link.created) or "", download_times=link.downloads,
            last_download_at=iso(link.last_download), file_url=self.context.link_url(link.id),
            expires_at=iso(link.expires_at), max_downloads=link.max_downloads, expired=spent,
        )  # fmt: skip


def refuse_early(user: UserRecord, length: int | None, overhead: int, upload_max: int) -> None:
    """Refuse a one-file form by its Content-Length before reading it (curl's `Expect: 100-continue`
    then never sends the body), only when even the most form overhead allowed cannot make it fit."""
    if length is None:
        return
    limit = upload_limit(user, upload_max)
    if limit and length > limit + overhead:
        check_upload_size(user, length - overhead, upload_max)
    if user.quota and length - overhead > user.quota - user.usage_bytes:
        left = max(0, user.quota - user.usage_bytes)
        raise QuotaExceeded(over_quota(user, length - overhead, left))
