"""A multipart/form-data body (RFC 7578) read as a stream of part events, never held whole.

Starlette's `request.form()` spools every file to a temporary file before the handler sees it, so
limits could only be checked once the whole body was on disk. Here python-multipart's streaming
parser turns each network chunk into `PartStart` / `PartData` / `PartEnd` events at once, and the
consumer (`formupload.py`) decides what to keep while the bytes arrive. Everything is bounded:
parts per body, header lines per part and their length; plain fields are bounded by the consumer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from s3api.http import parse_count

from .errors import ApiError

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MAX_HEADER_COUNT = 8  # header lines in one part (browsers send two)
MAX_HEADER_BYTES = 1024  # one header line of a part
MAX_BOUNDARY_BYTES = 70  # RFC 2046 section 5.1.1


def part_overhead(max_field_bytes: int) -> int:
    """The most bytes one part may add to a body besides a file's content (delimiter, headers, field)."""
    return MAX_BOUNDARY_BYTES + 8 + MAX_HEADER_COUNT * (MAX_HEADER_BYTES + 2) + 2 + max_field_bytes


@dataclass
class PartStart:
    name: str
    filename: str | None  # None: a plain field, not a file
    content_type: str | None


@dataclass
class PartData:
    data: bytes
    offset: int  # where `data` starts in the body


@dataclass
class PartEnd:
    pass


Event = PartStart | PartData | PartEnd


def content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    length = parse_count(raw)
    if length is None:
        raise ApiError(400, "invalid Content-Length")
    return length


class FormStream:
    """The events of one request's multipart body; `events()` may be iterated once."""

    def __init__(self, request: Request, max_parts: int):
        ctype, options = parse_options_header(request.headers.get("content-type"))
        if ctype != b"multipart/form-data":
            raise ApiError(415, "the body must be multipart/form-data")
        boundary = options.get(b"boundary", b"")
        if not 1 <= len(boundary) <= MAX_BOUNDARY_BYTES:
            raise ApiError(400, "multipart/form-data needs a boundary of 1-70 characters")
        self.request = request
        self.boundary = boundary
        self.length = content_length(request)
        self.closing = len(b"\r\n--" + boundary + b"--\r\n")  # what follows the last part's content
        self.max_parts = max_parts
        self._parts = 0
        self._pending: list[Event] = []
        self._header = [b"", b""]
        self._headers: dict[bytes, bytes] = {}
        self._chunk = b""
        self._chunk_start = 0
        self._ended = False

    async def events(self) -> AsyncGenerator[Event, None]:
        parser = self._parser()
        try:
            async for chunk in self.request.stream():
                self._chunk = chunk
                try:
                    parser.write(chunk)
                except FormParserError as exc:
                    raise ApiError(400, f"malformed multipart body: {exc}") from exc
                self._chunk_start += len(chunk)
                events, self._pending = self._pending, []
                for event in events:
                    yield event
                if self._ended:
                    return  # an epilogue after the closing delimiter is not read
        except ClientDisconnect as exc:
            raise ApiError(400, "the client went away before the body ended") from exc
        raise ApiError(400, "the multipart body ended before its closing delimiter")

    def _parser(self) -> MultipartParser:
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._on_part_begin,
            "on_header_field": lambda data, start, end: self._add_header(0, data[start:end]),
            "on_header_value": lambda data, start, end: self._add_header(1, data[start:end]),
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": lambda: self._pending.append(PartEnd()),
            "on_end": self._on_end,
        }
        return MultipartParser(
            self.boundary, callbacks, max_header_count=MAX_HEADER_COUNT, max_header_size=MAX_HEADER_BYTES
        )

    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > self.max_parts:
            raise ApiError(400, f"at most {self.max_parts} parts in one form")
        self._headers = {}

    def _add_header(self, index: int, data: bytes) -> None:
        self._header[index] += data

    def _on_header_end(self) -> None:
        name, value = self._header
        self._headers[name.strip().lower()] = value.strip()
        self._header = [b"", b""]

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        if b"name" not in options:
            raise ApiError(400, "a form part without a Content-Disposition name")
        filename = options.get(b"filename")
        ctype = self._headers.get(b"content-type")
        self._pending.append(
            PartStart(
                name=options[b"name"].decode("utf-8", "replace"),
                filename=filename.decode("utf-8", "replace") if filename is not None else None,
                content_type=ctype.decode("latin-1") if ctype else None,
            )
        )

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        # Bytes held back at a chunk's end (they might have begun the delimiter) come from the
        # parser's own buffer, just before this chunk.
        offset = self._chunk_start + start if data is self._chunk else self._chunk_start - (end - start)
        self._pending.append(PartData(bytes(data[start:end]), offset))

    def _on_end(self) -> None:
        self._ended = True
