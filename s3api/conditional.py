"""Conditional and ranged reads of a stored object: S3 GetObject/HeadObject and `/s/` share them.

RFC 9110: HTTP dates and entity tags (sections 5.6.7, 8.8), preconditions evaluated in the order of
section 13.2.2 (as S3 applies them), one byte range (section 14). No error format of either layer is
here: a failed precondition and an unsatisfiable range are this module's exceptions, and each edge
answers them its way (S3 XML in `s3api/errors.py`, JSON in `shortlinks/errors.py`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import lru_cache

from objstore import ObjectRecord

_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")  # ASCII digits only: \d matches every script's
# Digits of the longest number S3 takes (a 64-bit size or count). Python's int() refuses strings of
# over 4,300 digits with ValueError: every number from a request is bounded before it is converted.
MAX_DIGITS = 19


class ConditionFailed(Exception):
    """A precondition that does not hold (412); `condition` names the header, as S3 reports it."""

    def __init__(self, condition: str):
        super().__init__(condition)
        self.condition = condition


class RangeNotSatisfiable(Exception):
    """A Range that starts past the end (416); `headers` tell the size, as RFC 9110 asks."""

    def __init__(self, size: int):
        super().__init__(f"range not satisfiable for {size} bytes")
        self.size = size
        self.headers = {"content-range": f"bytes */{size}"}


@dataclass(frozen=True)
class Span:
    """The bytes a GET sends, [start, end) of `size`: all of them (200) or a range of them (206)."""

    start: int
    end: int
    size: int
    partial: bool

    @property
    def status(self) -> int:
        return 206 if self.partial else 200

    def headers(self) -> dict[str, str]:
        """Content-Length, and Content-Range for a range."""
        headers = {"content-length": str(self.end - self.start)}
        if self.partial:
            whole = f"{self.start}-{self.end - 1}" if self.end > self.start else "*"
            headers["content-range"] = f"bytes {whole}/{self.size}"
        return headers


def http_date(ts: float) -> str:
    return _http_date(int(ts))


@lru_cache(maxsize=4096)  # Last-Modified of every GET and HEAD: formatting is ~5 µs, objects come back
def _http_date(seconds: int) -> str:
    return format_datetime(datetime.fromtimestamp(seconds, UTC), usegmt=True)


def parse_http_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def quoted(etag: str) -> str:
    return f'"{etag}"'


def validators(record: ObjectRecord) -> dict[str, str]:
    """ETag and Last-Modified: what a 304 answers with, and what a later condition compares."""
    return {"etag": quoted(record.etag), "last-modified": http_date(record.created)}


def etag_matches(condition: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/").strip('"') for t in condition.split(",")]
    return "*" in tags or etag in tags


def check_conditions(headers: Mapping[str, str], record: ObjectRecord) -> int | None:
    """304 or 412 when a conditional header says so, else None; RFC 7232 order, as S3 applies it.

    If-Match true wins over If-Unmodified-Since false; If-None-Match false wins over
    If-Modified-Since true.
    """
    modified = int(record.created)
    if "if-match" in headers:
        if not etag_matches(headers["if-match"], record.etag):
            return 412
    elif "if-unmodified-since" in headers:
        since = parse_http_date(headers["if-unmodified-since"])
        if since is not None and modified > since:
            return 412
    if "if-none-match" in headers:
        if etag_matches(headers["if-none-match"], record.etag):
            return 304
    elif "if-modified-since" in headers:
        since = parse_http_date(headers["if-modified-since"])
        if since is not None and modified <= since:
            return 304
    return None


def not_modified(headers: Mapping[str, str], record: ObjectRecord) -> dict[str, str] | None:
    """The headers of a 304 when the client's copy is current, else None; ConditionFailed for a 412."""
    status = check_conditions(headers, record)
    if status == 412:
        raise ConditionFailed("If-Match" if "if-match" in headers else "If-Unmodified-Since")
    return validators(record) if status == 304 else None


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single byte range; None to send everything; RangeNotSatisfiable.

    Syntactically invalid or multi-range headers are ignored, as S3 does; a number past any 64-bit
    size is unsatisfiable, as nginx answers it.
    """
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if m is None or (m[1] == "" and m[2] == ""):
        return None
    if len(m[1]) > MAX_DIGITS or len(m[2]) > MAX_DIGITS:
        raise RangeNotSatisfiable(size)
    if m[1] == "":
        suffix = int(m[2])
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - suffix), size
    start = int(m[1])
    end = int(m[2]) + 1 if m[2] else size
    if m[2] and end <= start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(size)
    return start, min(end, size)


def span(rng: tuple[int, int] | None, size: int) -> Span:
    """The Span of a range (None: the whole object)."""
    if rng is None:
        return Span(0, size, size, partial=False)
    return Span(rng[0], rng[1], size, partial=True)


def requested_span(header: str | None, size: int) -> Span:
    """The Span a Range header asks for, with S3's parsing (`parse_range`)."""
    return span(parse_range(header, size), size)
