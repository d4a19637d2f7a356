"""A multipart/form-data body (RFC 7578) read as a stream of part events, never held whole.

Starlette's `request.form()` spools every file to a temporary file before the handler sees it, so
limits could only be checked once the whole body was on disk. Here the streaming parser POST Object
uses too (`s3api/formdata.py`) turns each network chunk into `PartStart` / `PartData` / `PartEnd`
events at once, and the consumer (`formupload.py`) decides what to keep while the bytes arrive.
Everything is bounded: parts per body, header lines per part and their length; plain fields are
bounded by the consumer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import replace

from starlette.requests import ClientDisconnect, Request

from s3api.formdata import MAX_BOUNDARY_BYTES, Bounds, Event, FormError, FormParser, PartStart
from s3api.formdata import boundary_of as form_boundary
from s3api.http import parse_count

from .errors import ApiError

MAX_HEADER_COUNT = 8  # header lines in one part (browsers send two)
MAX_HEADER_BYTES = 1024  # one header line of a part
BOUNDS = Bounds(
    header_bytes=MAX_HEADER_COUNT * (MAX_HEADER_BYTES + 2),
    header_lines=MAX_HEADER_COUNT,
    header_line_bytes=MAX_HEADER_BYTES,
    strict_utf8=False,  # a name that is not UTF-8 is kept, with U+FFFD for what cannot be read
)


def part_overhead(max_field_bytes: int) -> int:
    """The most bytes one part may add to a body besides a file's content (delimiter, headers, field)."""
    return MAX_BOUNDARY_BYTES + 8 + MAX_HEADER_COUNT * (MAX_HEADER_BYTES + 2) + 2 + max_field_bytes


def content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    length = parse_count(raw)
    if length is None:
        raise ApiError(400, "invalid Content-Length")
    return length


def boundary_of(request: Request) -> bytes:
    """The form's boundary: 415 for a body of another type, 400 for a form without a boundary."""
    try:
        boundary = form_boundary(request.headers.get("content-type", ""))
    except FormError as exc:
        raise ApiError(400, f"multipart/form-data needs a boundary of 1-{MAX_BOUNDARY_BYTES} characters") from exc
    if boundary is None:
        raise ApiError(415, "the body must be multipart/form-data")
    return boundary


def without_path(part: PartStart) -> PartStart:
    """A file name sent with the client's path (old Internet Explorer: `C:\\dir\\a.txt`) as its last
    segment, as python-multipart, which this parser replaced, gave it."""
    name = part.filename
    if name is not None and (name[1:3] == ":\\" or name[:2] == "\\\\"):
        return replace(part, filename=name.split("\\")[-1])
    return part


class FormStream:
    """The events of one request's multipart body; `events()` may be iterated once."""

    def __init__(self, request: Request, max_parts: int):
        self.request = request
        self.boundary = boundary_of(request)
        self.length = content_length(request)
        self.closing = len(b"\r\n--" + self.boundary + b"--\r\n")  # what follows the last part's content
        self.max_parts = max_parts

    async def events(self) -> AsyncGenerator[Event, None]:
        parser, parts = FormParser(self.boundary, BOUNDS), 0
        try:
            async for chunk in self.request.stream():
                for event in self._parsed(parser, chunk):
                    if isinstance(event, PartStart):
                        parts += 1
                        if parts > self.max_parts:
                            raise ApiError(400, f"at most {self.max_parts} parts in one form")
                        event = without_path(event)
                    yield event
                if parser.ended:
                    return  # an epilogue after the closing delimiter is not read
        except ClientDisconnect as exc:
            raise ApiError(400, "the client went away before the body ended") from exc
        raise ApiError(400, "the multipart body ended before its closing delimiter")

    @staticmethod
    def _parsed(parser: FormParser, chunk: bytes) -> list[Event]:
        try:
            return list(parser.feed(chunk))
        except FormError as exc:
            raise ApiError(400, f"malformed multipart body: {exc}") from exc
