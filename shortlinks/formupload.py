"""The files of a multipart form stored as they stream in, each with its own short link.

Every file part goes into a `LinkUpload` a batch (~1 MiB) at a time on a worker thread, so memory
stays bounded and the event loop never blocks on the store. The quota is reserved per file before
its bytes are kept: with a Content-Length, the rest of the body after the file's first byte, less
the closing delimiter, bounds the file (for the usual one-file form it is exact), capped at the
owner's per-file limit. Without one, nothing is reserved and the stream is checked against the
room left as it grows; the commit checks the quota exactly either way.

`expires_in` and `max_downloads` may be form fields placed before the files (or query
parameters); a field after a file would have come too late for it, so it is refused rather than
silently ignored. A request-level error (malformed body, misplaced field, too many files) removes
the files this request already stored: the form succeeds or fails as a whole, except for
per-file limits in a batch, which fail just that file.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, field

import anyio
from starlette.concurrency import run_in_threadpool

from objstore import Store
from objstore.errors import NoSuchLink, QuotaExceeded, StoreError
from objstore.limits import upload_limit
from objstore.links import LinkUpload, check_limits
from objstore.records import LinkRecord, UserRecord
from s3api.formdata import PartData, PartEnd, PartStart

from .api import check_expires_in
from .errors import ApiError, from_store
from .filetypes import content_type_for
from .formparts import FormStream

WRITE_BATCH = 1024 * 1024
MAX_FIELD_BYTES = 1024
OPTION_FIELDS = ("expires_in", "max_downloads")


@dataclass
class UploadOptions:
    """A link's limits for the files of a form: from the query, or fields before the files."""

    expires_in: float | None = None
    max_downloads: int | None = None

    def set_field(self, name: str, raw: str) -> None:
        """A form field's value; 400 unless a positive number (an integer for max_downloads)."""
        try:
            if name == "expires_in":
                self.expires_in = float(raw)
            else:
                self.max_downloads = int(raw)
        except ValueError as exc:
            raise ApiError(400, f"{name} must be a positive {'number' if name == 'expires_in' else 'integer'}") from exc

    def check(self) -> None:
        check_expires_in(self.expires_in)
        try:
            check_limits(self.expires_in, self.max_downloads)
        except StoreError as exc:
            raise from_store(exc) from exc


@dataclass
class FileResult:
    """What became of one file of a form: its link, or the error that file met."""

    filename: str
    link: LinkRecord | None = None
    size: int = 0
    user: UserRecord | None = None  # the owner right after the commit, for the space left
    error: ApiError | None = None


@dataclass
class _File:
    result: FileResult
    content_type: str | None
    upload: LinkUpload | None = None
    buffer: bytearray = field(default_factory=bytearray)


class FormUpload:
    """Store the files of one form in `results`, in order.

    With `max_files == 1` (/upload) a file's error is the request's; in a batch it is that file's.
    """

    def __init__(
        self, store: Store, user: UserRecord, form: FormStream, options: UploadOptions, file_field: str, max_files: int
    ):
        self.store, self.user, self.form = store, user, form
        self.options = options
        self.file_field, self.max_files = file_field, max_files
        self.strict = max_files == 1
        self.results: list[FileResult] = []
        self._field: tuple[str, bytearray] | None = None
        self._file: _File | None = None

    async def run(self) -> list[FileResult]:
        try:
            async with aclosing(self.form.events()) as events:
                async for event in events:
                    if isinstance(event, PartStart):
                        self._start(event)
                    elif isinstance(event, PartData):
                        await self._data(event)
                    elif isinstance(event, PartEnd):
                        await self._end()
        except ApiError:
            await run_in_threadpool(self._remove_stored)
            raise
        finally:
            # Even when the request is cancelled: an open upload holds a quota reservation.
            if self._file is not None and self._file.upload is not None:
                with anyio.CancelScope(shield=True):
                    await run_in_threadpool(self._file.upload.close)
        return self.results

    # parts -------------------------------------------------------------------------------------
    def _start(self, part: PartStart) -> None:
        if part.filename is None:
            if part.name in OPTION_FIELDS and self.results:
                raise ApiError(400, f"{part.name} must come before the files in the form")
            self._field = (part.name, bytearray())
            return
        if part.name != self.file_field:
            raise ApiError(400, f"unexpected file field {part.name!r}: send files as {self.file_field!r}")
        if len(self.results) >= self.max_files:
            raise ApiError(400, f"at most {self.max_files} file(s) in one request")
        self.options.check()
        self._file = _File(FileResult(part.filename), content_type_for(part.content_type, part.filename))
        self.results.append(self._file.result)

    async def _data(self, event: PartData) -> None:
        if self._field is not None:
            value = self._field[1]
            value += event.data
            if len(value) > MAX_FIELD_BYTES:
                raise ApiError(400, f"form field {self._field[0]!r} is longer than {MAX_FIELD_BYTES} bytes")
            return
        current = self._file
        if current is None or current.result.error is not None:
            return  # a failed file's remaining bytes are read and dropped
        if current.upload is None:
            await self._guard(current, self._open, current, self._size_hint(event.offset))
        current.buffer += event.data
        if len(current.buffer) >= WRITE_BATCH:
            await self._guard(current, self._flush, current)

    async def _end(self) -> None:
        if self._field is not None:
            name, value = self._field
            self._field = None
            if name in OPTION_FIELDS:
                self.options.set_field(name, value.decode("utf-8", "replace").strip())
            return
        current, self._file = self._file, None
        if current is None or current.result.error is not None:
            return
        if current.upload is None:
            await self._guard(current, self._open, current, 0)
        await self._guard(current, self._commit, current)

    # the store, on worker threads ----------------------------------------------------------------
    async def _guard(self, current: _File, fn: Callable[..., None], *args: object) -> None:
        """Run `fn(*args)` on a worker thread; a store error fails this file (or, strict, the request)."""
        if current.result.error is not None:
            return
        try:
            await run_in_threadpool(fn, *args)
        except StoreError as exc:
            current.result.error = from_store(exc)
            current.buffer.clear()
            if current.upload is not None:
                await run_in_threadpool(current.upload.close)
            if self.strict:
                raise current.result.error from exc

    def _size_hint(self, offset: int) -> int | None:
        if self.form.length is None:
            return None
        bound = max(0, self.form.length - offset - self.form.closing)
        limit = upload_limit(self.user, self.store.config.upload_max_file_size)
        return min(bound, limit) if limit else bound

    def _open(self, current: _File, hint: int | None) -> None:
        args = (self.user.name, current.result.filename, current.content_type)
        try:
            current.upload = self.store.uploads.open(*args, hint, self.options.expires_in, self.options.max_downloads)
        except QuotaExceeded:
            if self.strict or hint is None:
                raise
            # In a batch the bound covers the files after this one too: stream unreserved instead,
            # checked against the room left as it grows and exactly at the commit.
            current.upload = self.store.uploads.open(*args, None, self.options.expires_in, self.options.max_downloads)

    def _flush(self, current: _File) -> None:
        assert current.upload is not None
        current.upload.write(bytes(current.buffer))
        current.buffer.clear()

    def _commit(self, current: _File) -> None:
        self._flush(current)
        assert current.upload is not None
        current.result.link = current.upload.commit()
        current.result.size = current.upload.size
        current.result.user = self.store.accounts.get_user(self.user.name)

    def _remove_stored(self) -> None:
        for result in self.results:
            if result.link is not None:
                try:
                    self.store.links.delete(result.link.id, self.user.name)
                except NoSuchLink:
                    pass
                result.link = None
