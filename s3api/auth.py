"""Who sent this request: SigV4 (header or presigned query) and SigV2 (header or query).

The pure signing math lives in `sigv4.py` / `sigv2.py`; this module reads the request, finds the
access key (fresh from LMDB every time), recomputes the signature and compares in constant time.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Protocol
from urllib.parse import unquote

from . import sigv2, sigv4
from .conditional import MAX_DIGITS
from .errors import S3Code, S3Error
from .http import parse_count

MAX_SKEW_SECONDS = 15 * 60
MAX_PRESIGN_SECONDS = 7 * 86400
PAYLOAD_MODES = {
    "UNSIGNED-PAYLOAD",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_V4_HEADER = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<key>.+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request\s*,"
    r"\s*SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<sig>[0-9a-fA-F]{64})\s*$"
)
_V4_CREDENTIAL = re.compile(r"^(?P<key>.+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request$")
_INTEGER = re.compile(r"^-?[0-9]+$")


@dataclass(frozen=True)
class PresignLimit:
    """How far ahead a SigV2 presigned URL may expire (0: no limit; SigV4 has its own week), and the
    setting behind it, for the refusal's message. AWS itself does not bound SigV2's `Expires`."""

    seconds: int = MAX_PRESIGN_SECONDS
    setting: str = ""


class KeyLookup(Protocol):
    """Where authentication finds an access key's record (the engine's accounts)."""

    def lookup_key(self, access_key: str) -> object | None: ...


@dataclass
class RequestView:
    """What authentication needs of a request. `headers` have lower-case names."""

    method: str
    raw_path: str  # as sent, percent-encoded, without the query
    query: list[tuple[str, str]]  # decoded pairs, in order
    headers: dict[str, str]
    virtual_bucket: str = ""  # the bucket named by the Host header (virtual-hosted style), if any

    @property
    def query_map(self) -> dict[str, str]:
        return dict(self.query)


@dataclass
class Signing:
    """What the aws-chunked decoder needs to verify chunk and trailer signatures."""

    key: bytes
    amz_date: str
    scope: str
    seed: str


@dataclass
class Identity:
    """Who signed a request (user and access key), and how its payload is signed."""

    user: str
    access_key: str
    payload: str = "UNSIGNED-PAYLOAD"  # the x-amz-content-sha256 mode, or a hex SHA-256
    signing: Signing | None = field(default=None, repr=False)


def parse_query(raw_query: str) -> list[tuple[str, str]]:
    """Query pairs decoded with %-escapes only ('+' stays '+', as S3 signs it)."""
    pairs = []
    for part in raw_query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name) if "%" in name else name, unquote(value) if "%" in value else value))
    return pairs


def scheme(req: RequestView) -> str | None:
    """How the request is signed: "v4-header", "v4-query", "v2-header", "v2-query"; None if it is not."""
    auth, q = req.headers.get("authorization", ""), req.query_map
    if auth.startswith("AWS4-HMAC-SHA256"):
        return "v4-header"
    if q.get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256" or "X-Amz-Signature" in q:
        return "v4-query"
    if auth.startswith("AWS "):
        return "v2-header"
    if "AWSAccessKeyId" in q and "Signature" in q:
        return "v2-query"
    return None


def is_anonymous(req: RequestView) -> bool:
    """No credentials at all (an unknown Authorization scheme is not anonymous: it is refused as such)."""
    return scheme(req) is None and not req.headers.get("authorization")


def authenticate(
    req: RequestView, keys: KeyLookup, now: float | None = None, v2_limit: PresignLimit = PresignLimit()
) -> Identity:
    """The sender's identity, or S3Error (AccessDenied, SignatureDoesNotMatch, ...)."""
    now = time.time() if now is None else now
    kind = scheme(req)
    if kind == "v4-header":
        return _v4_header(req, keys, req.headers["authorization"], now)
    if kind == "v4-query":
        return _v4_query(req, keys, now)
    if kind == "v2-header":
        return _v2_header(req, keys, req.headers["authorization"], now)
    if kind == "v2-query":
        return _v2_query(req, keys, now, v2_limit)
    if req.headers.get("authorization"):
        raise S3Error(S3Code.InvalidArgument, "Unsupported Authorization Type")
    raise S3Error(S3Code.AccessDenied, "Access Denied")


def _secret_for(keys: KeyLookup, access_key: str) -> tuple[str, str]:
    record = keys.lookup_key(access_key)
    if record is None:
        raise S3Error(S3Code.InvalidAccessKeyId)
    return record.secret_key, record.user  # type: ignore[attr-defined]


AMZ_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z")


def _parse_amz_date(value: str) -> float:
    """ISO 8601 basic format, `20130524T000000Z`."""
    seconds = _amz_seconds(value)
    if seconds is None:
        raise S3Error(S3Code.AccessDenied, "AWS authentication requires a valid Date or x-amz-date header")
    return seconds


@lru_cache(maxsize=256)  # a presigned URL repeats its date; header-signed requests share a second
def _amz_seconds(value: str) -> float | None:
    found = AMZ_DATE.fullmatch(value)
    if found is None:
        return None
    year, month, day, hour, minute, second = map(int, found.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()
    except ValueError:  # a month 13, a 30th of February
        return None


def _check_skew(request_time: float, now: float, shown: str) -> None:
    if abs(now - request_time) > MAX_SKEW_SECONDS:
        raise S3Error(
            S3Code.RequestTimeTooSkewed,
            "The difference between the request time and the current time is too large.",
            RequestTime=shown,
            ServerTime=datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            MaxAllowedSkewMilliseconds=str(MAX_SKEW_SECONDS * 1000),
        )


def _canonical_uris(raw_path: str) -> list[str]:
    """The spec's form (decode, then encode each byte but unreserved and '/') and the path as sent."""
    spec = sigv4.uri_encode(unquote(raw_path), keep_slash=True)
    return [spec] if spec == raw_path else [spec, raw_path]


def _verify_v4(
    req: RequestView,
    secret: str,
    date: str,
    region: str,
    service: str,
    amz_date: str,
    signed: list[str],
    payload: str,
    query: list[tuple[str, str]],
    given: str,
) -> bytes:
    key = sigv4.signing_key(secret, date, region, service)
    scope = sigv4.scope(date, region, service)
    cq = sigv4.canonical_query(query)
    tried: list[tuple[str, str]] = []
    for uri in _canonical_uris(req.raw_path):
        canonical = sigv4.canonical_request(req.method, uri, cq, req.headers, signed, payload)
        to_sign = sigv4.string_to_sign(amz_date, scope, canonical)
        if sigv4.signatures_match(sigv4.sign(key, to_sign), given.lower()):
            return key
        tried.append((canonical, to_sign))
    # As S3 does: what the server signed, so the client can see what differs (a proxy that rewrote
    # the Host header, a path encoded differently). Nothing in it is secret.
    canonical, to_sign = tried[0]
    raise S3Error(
        S3Code.SignatureDoesNotMatch, StringToSign=to_sign, SignatureProvided=given, CanonicalRequest=canonical
    )


def _require_signed_amz_headers(req: RequestView, signed: list[str]) -> None:
    """Every x-amz-* header must be signed, as S3 requires: otherwise whoever holds a presigned URL
    could add, say, x-amz-copy-source and turn a PUT into a copy of another of the signer's objects."""
    unsigned = sorted(h for h in req.headers if h.startswith("x-amz-") and h not in signed)
    if unsigned:
        raise S3Error(
            S3Code.AccessDenied,
            "There were headers present in the request which were not signed",
            HeadersNotSigned=", ".join(unsigned),
        )


def _payload_mode(req: RequestView, default: str | None) -> str:
    mode = req.headers.get("x-amz-content-sha256", default)
    if mode is None:
        raise S3Error(S3Code.InvalidRequest, "Missing required header for this request: x-amz-content-sha256")
    if mode not in PAYLOAD_MODES and not _HEX64.match(mode):
        raise S3Error(
            S3Code.InvalidArgument, f"x-amz-content-sha256 must be a SHA-256 or one of {sorted(PAYLOAD_MODES)}"
        )
    return mode


def _v4_header(req: RequestView, keys: KeyLookup, auth: str, now: float) -> Identity:
    m = _V4_HEADER.match(auth)
    if m is None:
        raise S3Error(S3Code.AuthorizationHeaderMalformed, "The authorization header is malformed.")
    amz_date = req.headers.get("x-amz-date", "")
    if amz_date:
        request_time = _parse_amz_date(amz_date)
    else:
        request_time = _http_date(req.headers.get("date", ""))
        amz_date = datetime.fromtimestamp(request_time, UTC).strftime("%Y%m%dT%H%M%SZ")
    _check_skew(request_time, now, amz_date)
    if amz_date[:8] != m["date"]:
        raise S3Error(S3Code.AuthorizationHeaderMalformed, "The credential date does not match the request date.")
    signed = m["signed"].lower().split(";")
    _require_signed_amz_headers(req, signed)
    if "host" not in signed:
        raise S3Error(S3Code.AuthorizationHeaderMalformed, "SignedHeaders must include host.")
    payload = _payload_mode(req, None)
    secret, user = _secret_for(keys, m["key"])
    key = _verify_v4(req, secret, m["date"], m["region"], m["service"], amz_date, signed, payload, req.query, m["sig"])
    scope = sigv4.scope(m["date"], m["region"], m["service"])
    return Identity(user, m["key"], payload, Signing(key, amz_date, scope, m["sig"].lower()))


def _v4_query(req: RequestView, keys: KeyLookup, now: float) -> Identity:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html"""
    q = req.query_map
    try:
        credential, amz_date, raw_expires = q["X-Amz-Credential"], q["X-Amz-Date"], q["X-Amz-Expires"]
        signed, given = q["X-Amz-SignedHeaders"].lower().split(";"), q["X-Amz-Signature"]
    except KeyError as e:
        raise _query_error(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
            "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
        ) from e
    m = _V4_CREDENTIAL.match(credential)
    if m is None:
        raise _query_error(
            "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; "
            'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
        )
    expires = _presign_expiry(raw_expires)
    if amz_date[:8] != m["date"]:
        raise _query_error("Invalid credential date. Date is not the same as X-Amz-Date.")
    if "host" not in signed:  # unsigned, the same URL would serve any bucket under virtual-hosted addressing
        raise _query_error("Query-string authentication requires the Host header to be signed (X-Amz-SignedHeaders).")
    signed_at = _parse_amz_date(amz_date)
    if now > signed_at + expires:
        raise S3Error(S3Code.AccessDenied, "Request has expired", **{"X-Amz-Expires": str(expires)})
    if signed_at - now > MAX_SKEW_SECONDS:
        raise S3Error(S3Code.AccessDenied, "Request is not valid yet")
    _require_signed_amz_headers(req, signed)
    payload = _payload_mode(req, "UNSIGNED-PAYLOAD")
    secret, user = _secret_for(keys, m["key"])
    query = [(k, v) for k, v in req.query if k != "X-Amz-Signature"]
    _verify_v4(req, secret, m["date"], m["region"], m["service"], amz_date, signed, payload, query, given)
    return Identity(user, m["key"], payload)


def _query_error(message: str) -> S3Error:
    return S3Error(S3Code.AuthorizationQueryParametersError, message)


def _presign_expiry(raw: str) -> int:
    """X-Amz-Expires: 0 to 604800 seconds, with AWS's messages for the rest."""
    if not _INTEGER.match(raw):
        raise _query_error("X-Amz-Expires should be a number")
    if raw.startswith("-"):
        raise _query_error("X-Amz-Expires must be non-negative")
    if len(raw) > MAX_DIGITS or int(raw) > MAX_PRESIGN_SECONDS:
        raise _query_error(
            f"X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires "
            f"must be less than {MAX_PRESIGN_SECONDS} seconds"
        )
    return int(raw)


def _http_date(value: str) -> float:
    """An RFC 1123 Date as seconds; one its zone takes out of years 1-9999 in UTC is no valid date
    (`datetime.fromtimestamp` could not write it back as an x-amz-date)."""
    try:
        seconds = parsedate_to_datetime(value).timestamp()
        datetime.fromtimestamp(seconds, UTC)
        return seconds
    except (TypeError, ValueError, OverflowError) as e:
        raise S3Error(S3Code.AccessDenied, "AWS authentication requires a valid Date or x-amz-date header") from e


def _v2_resources(req: RequestView) -> list[str]:
    """The canonical resource; for a bucket's own path also with a trailing slash, as botocore signs it."""
    # SigV2 signs "/bucket/key" even when the bucket is in the Host header.
    path = f"/{req.virtual_bucket}{req.raw_path}" if req.virtual_bucket else req.raw_path
    paths = [path]
    if path.count("/") == 1 and len(path) > 1:
        paths.append(path + "/")
    return [resource for path in paths for resource in sigv2.canonical_resources(path, req.query_map)]


def _v2_header(req: RequestView, keys: KeyLookup, auth: str, now: float) -> Identity:
    access_key, sep, given = auth[4:].rpartition(":")
    if not sep or not access_key:
        raise S3Error(S3Code.InvalidArgument, "AWS authorization header is invalid. Expected AwsAccessKeyId:signature")
    amz_date, date = req.headers.get("x-amz-date", ""), req.headers.get("date", "")
    _check_skew(_http_date(amz_date or date), now, amz_date or date)
    secret, user = _secret_for(keys, access_key)
    # With x-amz-date the Date line is empty for some signers and repeats the date for others; without
    # it the Date line is what dates the request (an empty one would make a signature valid forever).
    date_lines = ["", date] if amz_date else [date]
    for resource in _v2_resources(req):
        for line in date_lines:
            if sigv4.signatures_match(
                sigv2.sign(secret, sigv2.string_to_sign(req.method, req.headers, line, resource)), given
            ):
                return Identity(user, access_key, _payload_mode(req, "UNSIGNED-PAYLOAD"))
    raise S3Error(S3Code.SignatureDoesNotMatch)


def _v2_query(req: RequestView, keys: KeyLookup, now: float, limit: PresignLimit) -> Identity:
    q = req.query_map
    expires = parse_count(q.get("Expires", ""))
    if expires is None:
        raise S3Error(
            S3Code.AccessDenied,
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters",
        )
    if now >= expires:  # `Expires` is the first second the URL no longer works
        raise S3Error(S3Code.AccessDenied, "Request has expired")
    if limit.seconds and expires - now > limit.seconds + MAX_SKEW_SECONDS:
        setting = f" ({limit.setting})" if limit.setting else ""
        raise S3Error(
            S3Code.AccessDenied,
            f"Request expires too far ahead: presigned SigV2 URLs may be valid for "
            f"{limit.seconds} seconds at most{setting}",
            Expires=str(expires),
        )
    secret, user = _secret_for(keys, q["AWSAccessKeyId"])
    for resource in _v2_resources(req):
        expected = sigv2.sign(secret, sigv2.string_to_sign(req.method, req.headers, q["Expires"], resource))
        if sigv4.signatures_match(expected, q["Signature"]):
            return Identity(user, q["AWSAccessKeyId"], "UNSIGNED-PAYLOAD")
    raise S3Error(S3Code.SignatureDoesNotMatch)
