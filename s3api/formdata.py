"""An incremental multipart/form-data parser (RFC 7578 over RFC 2046), for POST Object.

Fed the body as it arrives, it yields events: a part starts (its name, filename and type), a piece
of the part's content, the part ends. Nothing is buffered beyond one part's headers and a
delimiter's length of content, so a file part streams through in constant memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import S3Error

MAX_PART_HEADERS = 8 * 1024
_PARAM = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,70})"|([^;\s]{1,70}))', re.IGNORECASE)


@dataclass(frozen=True)
class PartStart:
    name: str  # as sent; callers compare lower-cased
    filename: str | None
    content_type: str


@dataclass(frozen=True)
class PartData:
    data: bytes


@dataclass(frozen=True)
class PartEnd:
    pass


Event = PartStart | PartData | PartEnd


def malformed(detail: str) -> S3Error:
    return S3Error("MalformedPOSTRequest", f"The body of your POST request is not well-formed multipart/form-data: {detail}")


def boundary_of(content_type: str) -> bytes | None:
    """The boundary of a multipart/form-data Content-Type, or None for any other type."""
    if content_type.split(";", 1)[0].strip().lower() != "multipart/form-data":
        return None
    m = _BOUNDARY.search(content_type)
    if m is None:
        raise malformed("no boundary in Content-Type")
    return (m[1] or m[2]).encode("latin-1")


def parse_part_headers(raw: bytes) -> PartStart:
    """Content-Disposition (form-data; name=...; filename=...) and Content-Type of one part."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise malformed("part headers are not UTF-8") from e
    headers = {}
    for line in text.split("\r\n"):
        name, sep, value = line.partition(":")
        if not sep:
            raise malformed("bad part header line")
        headers[name.strip().lower()] = value.strip()
    disposition = headers.get("content-disposition", "")
    if disposition.split(";", 1)[0].strip().lower() != "form-data":
        raise malformed("a part is not form-data")
    params = {k.lower(): unquote_param(v) for k, v in _PARAM.findall(disposition)}
    if "name" not in params:
        raise malformed("a part has no name")
    return PartStart(params["name"], params.get("filename"), headers.get("content-type", ""))


def unquote_param(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


class FormParser:
    """`feed` bytes, get events; `finish` checks the body ended with the closing delimiter."""

    def __init__(self, boundary: bytes):
        self.delimiter = b"\r\n--" + boundary
        # The first delimiter may open the body without a CRLF before it: pretend there was one.
        self.buffer = bytearray(b"\r\n")
        self.state = "preamble"

    def feed(self, data: bytes) -> Iterator[Event]:
        self.buffer += data
        while True:
            step = getattr(self, f"_{self.state}")()
            if step is None:
                return
            yield from step

    def finish(self) -> None:
        if self.state != "epilogue":
            raise malformed("the body ended before the closing boundary")

    def _preamble(self) -> list[Event] | None:
        at = self.buffer.find(self.delimiter)
        if at < 0:
            # Keep what could be the start of a delimiter; the rest is preamble, ignored.
            del self.buffer[: max(0, len(self.buffer) - len(self.delimiter))]
            return None
        del self.buffer[: at + len(self.delimiter)]
        self.state = "after_delimiter"
        return []

    def _after_delimiter(self) -> list[Event] | None:
        end = self.buffer.find(b"\r\n")
        if self.buffer.startswith(b"--"):
            self.state = "epilogue"
            return []
        if end < 0:
            if len(self.buffer) > 256:
                raise malformed("garbage after a boundary")
            return None
        if self.buffer[:end].strip(b" \t"):  # transport padding only (RFC 2046 5.1.1)
            raise malformed("garbage after a boundary")
        del self.buffer[: end + 2]
        self.state = "headers"
        return []

    def _headers(self) -> list[Event] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or end > MAX_PART_HEADERS:
            if len(self.buffer) > MAX_PART_HEADERS:
                raise malformed("part headers too large")
            return None
        start = parse_part_headers(bytes(self.buffer[:end]))
        del self.buffer[: end + 4]
        self.state = "content"
        return [start]

    def _content(self) -> list[Event] | None:
        at = self.buffer.find(self.delimiter)
        if at >= 0:
            data = bytes(self.buffer[:at])
            del self.buffer[: at + len(self.delimiter)]
            self.state = "after_delimiter"
            return [PartData(data), PartEnd()] if data else [PartEnd()]
        keep = len(self.delimiter) - 1  # a delimiter may straddle this feed and the next
        if len(self.buffer) <= keep:
            return None
        data = bytes(self.buffer[:-keep])
        del self.buffer[:-keep]
        return [PartData(data)]  # then the loop finds the short tail holds no delimiter, and waits

    def _epilogue(self) -> list[Event] | None:
        self.buffer.clear()
        return None
