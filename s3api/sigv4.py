"""AWS Signature Version 4, as pure functions (no request objects, no I/O).

Spec: https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html, the streaming
variants at .../sigv4-streaming.html and .../sigv4-streaming-trailers.html, presigned URLs at
.../sigv4-query-string-auth.html. Tested against AWS's published examples in tests/s3api.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNRESERVED = "-_.~"


_NOTHING_TO_ENCODE = re.compile(r"[A-Za-z0-9_.~-]*")


def uri_encode(text: str, keep_slash: bool = False) -> str:
    """AWS's UriEncode: every byte but A-Z a-z 0-9 - _ . ~ percent-encoded (upper-case hex)."""
    if _NOTHING_TO_ENCODE.fullmatch(text):  # most query values of a signed request: quote() is slow
        return text
    return quote(text, safe=UNRESERVED + ("/" if keep_slash else ""))


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_header_value(value: str) -> str:
    return " ".join(value.strip().split())


def canonical_request(
    method: str,
    canonical_uri: str,
    query: str,
    headers: dict[str, str],
    signed_headers: list[str],
    payload_hash: str,
) -> str:
    """`headers` maps lower-case names to their (possibly repeated, comma-joined) values."""
    lines = "".join(f"{h}:{canonical_header_value(headers.get(h, ''))}\n" for h in signed_headers)
    return "\n".join([method, canonical_uri, query, lines, ";".join(signed_headers), payload_hash])


def scope(date: str, region: str, service: str = "s3") -> str:
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(amz_date: str, credential_scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{credential_scope}\n{digest}"


@lru_cache(maxsize=1024)  # one key a day per access key and region: four HMACs saved per request
def signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    key = _hmac(("AWS4" + secret).encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def chunk_string_to_sign(amz_date: str, credential_scope: str, previous: str, chunk_sha256: str) -> str:
    """String to sign of one aws-chunked chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)."""
    return "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, credential_scope, previous, EMPTY_SHA256, chunk_sha256])


def trailer_string_to_sign(amz_date: str, credential_scope: str, previous: str, trailer: str) -> str:
    """String to sign of the trailing headers; `trailer` is 'name:value\\n' per header."""
    digest = hashlib.sha256(trailer.encode()).hexdigest()
    return "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, credential_scope, previous, digest])


def signatures_match(expected: str, given: str) -> bool:
    """Constant-time comparison, so a signature cannot be guessed byte by byte."""
    return hmac.compare_digest(expected.encode(), given.encode())


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()
