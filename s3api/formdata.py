"""An incremental multipart/form-data parser (RFC 7578 over RFC 2046), shared by POST Object
(`ops/post.py`) and the REST uploads of short links (`shortlinks/formparts.py`).

Fed the body as it arrives, it yields events: a part starts (its name, filename and type), a piece
of the part's content (with where it starts in the body), the part ends. Nothing is buffered beyond
one part's headers and a delimiter's length of content, so a file part streams through in constant
memory. A malformed body raises `FormError`, which carries no HTTP: each caller answers it in its
own format (S3's MalformedPOSTRequest, the REST API's JSON 400) within its own `Bounds`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

MAX_BOUNDARY_BYTES = 70  # RFC 2046 section 5.1.1
_PARAM = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,70})"|([^;\s"]{1,70}))(?=[;\s]|$)', re.IGNORECASE)
_ESCAPED = re.compile(r'\\([\\"])')  # a quoted-pair a browser may send; other backslashes are literal


class FormError(ValueError):
    """A body that is not well-formed multipart/form-data, or past the caller's bounds."""


@dataclass(frozen=True)
class Bounds:
    """What one part's headers may take; past it the body is refused, never buffered."""

    header_bytes: int = 8 * 1024  # all the header lines of one part
    header_lines: int | None = None  # how many lines (None: any number within `header_bytes`)
    header_line_bytes: int | None = None  # one line, without its CRLF
    strict_utf8: bool = True  # header text must be UTF-8; False: undecodable bytes become U+FFFD


@dataclass(frozen=True)
class PartStart:
    """A part begins: its field name (as sent), file name (None: a plain field) and Content-Type."""

    name: str
    filename: str | None
    content_type: str | None


@dataclass(frozen=True)
class PartData:
    """A piece of a part's content; `offset`: where it starts in the body."""

    data: bytes
    offset: int


@dataclass(frozen=True)
class PartEnd:
    """The part's content is complete (its closing delimiter was read)."""


Event = PartStart | PartData | PartEnd


def boundary_of(content_type: str) -> bytes | None:
    """The boundary of a multipart/form-data Content-Type, or None for any other type; FormError when
    the type has no boundary of 1-70 characters."""
    if content_type.split(";", 1)[0].strip().lower() != "multipart/form-data":
        return None
    m = _BOUNDARY.search(content_type)
    if m is None:
        raise FormError(f"no boundary of 1-{MAX_BOUNDARY_BYTES} characters in Content-Type")
    try:
        return (m[1] or m[2]).encode("latin-1")
    except UnicodeEncodeError as e:  # a header sent as UTF-8 text; RFC 2046 boundaries are ASCII
        raise FormError("the boundary is not ASCII") from e


def parse_part_headers(raw: bytes, bounds: Bounds) -> PartStart:
    """Content-Disposition (form-data; name=...; filename=...) and Content-Type of one part."""
    try:
        text = raw.decode("utf-8", "strict" if bounds.strict_utf8 else "replace")
    except UnicodeDecodeError as e:
        raise FormError("part headers are not UTF-8") from e
    lines = text.split("\r\n")
    if bounds.header_lines is not None and len(lines) > bounds.header_lines:
        raise FormError(f"more than {bounds.header_lines} header lines in a part")
    headers = {}
    for line in lines:
        if bounds.header_line_bytes is not None and len(line.encode()) > bounds.header_line_bytes:
            raise FormError(f"a part header line is longer than {bounds.header_line_bytes} bytes")
        name, sep, value = line.partition(":")
        if not sep:
            raise FormError("bad part header line")
        headers[name.strip().lower()] = value.strip()
    disposition = headers.get("content-disposition", "")
    if disposition.split(";", 1)[0].strip().lower() != "form-data":
        raise FormError("a part is not form-data")
    params = {k.lower(): unquote_param(v) for k, v in _PARAM.findall(disposition)}
    if "name" not in params:
        raise FormError("a part has no name")
    return PartStart(params["name"], params.get("filename"), headers.get("content-type"))


def unquote_param(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return _ESCAPED.sub(r"\1", value[1:-1])
    return value


class FormParser:
    """`feed` bytes, get events; `ended` once the closing delimiter is read (the epilogue is
    ignored); `finish` checks the body ended with it."""

    def __init__(self, boundary: bytes, bounds: Bounds = Bounds()):
        self.delimiter = b"\r\n--" + boundary
        self.bounds = bounds
        # The first delimiter may open the body without a CRLF before it: pretend there was one.
        self.buffer = bytearray(b"\r\n")
        self.base = -2  # where the buffer starts in the body (the CRLF above is not in it)
        self.state = "preamble"

    @property
    def ended(self) -> bool:
        return self.state == "epilogue"

    def feed(self, data: bytes) -> Iterator[Event]:
        self.buffer += data
        while True:
            step = getattr(self, f"_{self.state}")()
            if step is None:
                return
            yield from step

    def finish(self) -> None:
        if not self.ended:
            raise FormError("the body ended before the closing boundary")

    def _drop(self, n: int) -> None:
        del self.buffer[:n]
        self.base += n

    def _preamble(self) -> list[Event] | None:
        at = self.buffer.find(self.delimiter)
        if at < 0:
            # Keep what could be the start of a delimiter; the rest is preamble, ignored.
            self._drop(max(0, len(self.buffer) - len(self.delimiter)))
            return None
        self._drop(at + len(self.delimiter))
        self.state = "after_delimiter"
        return []

    def _after_delimiter(self) -> list[Event] | None:
        end = self.buffer.find(b"\r\n")
        if self.buffer.startswith(b"--"):
            self.state = "epilogue"
            return []
        if end < 0:
            if len(self.buffer) > 256:
                raise FormError("garbage after a boundary")
            return None
        if self.buffer[:end].strip(b" \t"):  # transport padding only (RFC 2046 5.1.1)
            raise FormError("garbage after a boundary")
        self._drop(end + 2)
        self.state = "headers"
        return []

    def _headers(self) -> list[Event] | None:
        limit = self.bounds.header_bytes
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or end > limit:
            if len(self.buffer) > limit:
                raise FormError("part headers too large")
            return None
        start = parse_part_headers(bytes(self.buffer[:end]), self.bounds)
        self._drop(end + 4)
        self.state = "content"
        return [start]

    def _content(self) -> list[Event] | None:
        at = self.buffer.find(self.delimiter)
        if at >= 0:
            data = PartData(bytes(self.buffer[:at]), self.base)
            self._drop(at + len(self.delimiter))
            self.state = "after_delimiter"
            return [data, PartEnd()] if data.data else [PartEnd()]
        keep = len(self.delimiter) - 1  # a delimiter may straddle this feed and the next
        if len(self.buffer) <= keep:
            return None
        data = PartData(bytes(self.buffer[:-keep]), self.base)
        self._drop(len(self.buffer) - keep)
        return [data]  # then the loop finds the short tail holds no delimiter, and waits

    def _epilogue(self) -> list[Event] | None:
        self._drop(len(self.buffer))
        return None
