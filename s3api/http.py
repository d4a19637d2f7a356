"""HTTP details of S3 objects: the headers of an object, the metadata of a PUT, numbers and dates.

Range and conditional requests, which `/s/` shares, are in `conditional.py`.
"""

from __future__ import annotations

import base64
import email.header
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from objstore import ObjectRecord

from .conditional import MAX_DIGITS, validators
from .errors import S3Code, S3Error

STANDARD_HEADERS = ("cache-control", "content-disposition", "content-encoding", "content-language", "expires")
OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}
MAX_USER_METADATA = 2048  # bytes of x-amz-meta-* names (without the prefix) and values, as S3 counts them
# AWS's bound on a request's headers and query string (its RequestHeaderSectionTooLarge's MaxSizeAllowed)
MAX_HEADER_SECTION = 8192
# How a body is read, S3 GET and /s/ alike: up to LOOP_READ_MAX on the event loop (an inline row, or
# one chunk file: objects this small are one chunk), up to WHOLE_READ_MAX in one thread call, larger
# ones streamed with a thread call per piece. A thread hand-off costs ~0.1 ms of CPU under load, more
# than reading 64 KiB from the page cache (docs/benchmarks.md, "Serving").
LOOP_READ_MAX = 64 * 1024
WHOLE_READ_MAX = 256 * 1024
_HEADER_SAFE = re.compile(r"[\t\x20-\x7e\xa0-\xff]*")


def iso8601(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def parse_count(raw: str) -> int | None:
    """A non-negative decimal integer of at most MAX_DIGITS ASCII digits; None for anything else."""
    if not (0 < len(raw) <= MAX_DIGITS and raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


def object_headers(record: ObjectRecord, checksum_mode: bool = False) -> dict[str, str]:
    """The headers GET and HEAD answer with for an object."""
    h = {**validators(record), "content-type": record.content_type, "accept-ranges": "bytes"}
    h.update(record.headers)
    h.update({f"x-amz-meta-{k}": mail_safe(v) for k, v in record.meta.items()})
    if record.parts_count:
        h["x-amz-mp-parts-count"] = str(record.parts_count)
    if record.tags:
        h["x-amz-tagging-count"] = str(len(record.tags))
    if checksum_mode and record.checksums:
        h.update({f"x-amz-checksum-{alg.lower()}": value for alg, value in record.checksums.items()})
        h["x-amz-checksum-type"] = record.checksum_type
    return h


def check_header_section(headers: Iterable[tuple[bytes, bytes]], query_string: bytes) -> None:
    """400 RequestHeaderSectionTooLarge, as AWS answers, when the names and values of a request's
    headers and its query string add up to more than MAX_HEADER_SECTION bytes ("The request header
    and query parameters used to make the request exceed the maximum allowed size"). Clients made
    for S3 never send more; pyblob's HTTP layer takes heads of up to 64 KiB for its other surfaces."""
    size = len(query_string) + sum(len(name) + len(value) for name, value in headers)
    if size > MAX_HEADER_SECTION:
        raise S3Error(S3Code.RequestHeaderSectionTooLarge, MaxSizeAllowed=str(MAX_HEADER_SECTION))


def request_attributes(headers: Mapping[str, str]) -> tuple[str, dict[str, str], dict[str, str]]:
    """Content type, standard headers and user metadata to store from a PUT's headers."""
    content_type = headers.get("content-type") or "binary/octet-stream"
    standard = {h: headers[h] for h in STANDARD_HEADERS if h in headers}
    encoding = stored_encoding(standard.get("content-encoding", ""))
    if encoding:
        standard["content-encoding"] = encoding
    else:
        standard.pop("content-encoding", None)
    meta = {k[len("x-amz-meta-") :]: unmail(v) for k, v in headers.items() if k.startswith("x-amz-meta-")}
    if sum(len(k) + len(v.encode()) for k, v in meta.items()) > MAX_USER_METADATA:
        raise S3Error(
            S3Code.MetadataTooLarge,
            f"Your metadata headers exceed the maximum allowed metadata size of {MAX_USER_METADATA} bytes.",
        )
    for value in [content_type, *standard.values(), *meta.keys()]:
        check_header_value(value)
    for value in meta.values():
        if not value.isprintable() and not _HEADER_SAFE.fullmatch(value):
            raise S3Error(S3Code.InvalidArgument, "Metadata values must be printable text.")
    return content_type, standard, meta


def unmail(value: str) -> str:
    """A metadata value as stored: RFC 2047 encoded-words (`=?UTF-8?B?...?=`) decoded, as S3 does
    before storing, so a value sent either way is the same text."""
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeDecodeError):
        return value  # not encoded-words after all: kept as sent


def mail_safe(value: str) -> str:
    """A metadata value as a header: as stored when ISO-8859-1 can carry it, else RFC 2047-encoded
    UTF-8, as S3 returns non-ASCII metadata it could not send as is."""
    try:
        value.encode("latin-1")
        return value
    except UnicodeEncodeError:
        return f"=?UTF-8?B?{base64.b64encode(value.encode()).decode()}?="


def stored_encoding(value: str) -> str:
    """Content-Encoding as stored: as sent, without `aws-chunked` (the transfer's, not the object's):
    `aws-chunked, gzip` is `gzip`, `deflate, gzip` stays as it is."""
    codings = [c for c in value.split(",") if c.strip()]
    kept = [c for c in codings if c.strip().lower() != "aws-chunked"]
    if len(kept) == len(codings):
        return value.strip()
    return ", ".join(c.strip() for c in kept)


def check_header_value(value: str) -> None:
    """What is stored to be sent back as a header must be one: POST Object form fields are not."""
    if not _HEADER_SAFE.fullmatch(value):
        raise S3Error(S3Code.InvalidArgument, "Header and metadata values must be printable ISO-8859-1 text.")
