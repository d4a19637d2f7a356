"""S3 requests for the isolation matrix: built by boto3, then signed, presigned or tampered with here.

boto3 serializes each operation (method, path, query, headers, XML body) and is stopped before it
sends; the request is then sent with httpx under each kind of credential: another user's header
signature, none, a revoked key, and presigned URLs changed after signing. Signatures are botocore's
(`S3SigV4Auth`, `S3SigV4QueryAuth`; `HmacV1Auth`, `HmacV1QueryAuth` for SigV2) and the aws-chunked ones follow the spec
(https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html), so the server is held to
the SDK's reading of SigV4, not to its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import boto3
import httpx
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.credentials import Credentials

REGION = "us-east-1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
# What a signer adds or what only describes the SDK: dropped from a captured request before re-signing.
DROPPED = {"authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "user-agent", "expect"}
DROPPED |= {"content-length"}  # httpx sends the length of the body actually sent
AUTH_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders")


@dataclass(frozen=True)
class Creds:
    user: str
    access_key: str
    secret_key: str


@dataclass(frozen=True)
class Prepared:
    """One S3 request as boto3 would send it, without any credential."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def with_url(self, url: str) -> Prepared:
        return Prepared(self.method, url, self.headers, self.body)

    def with_body(self, body: bytes) -> Prepared:
        return Prepared(self.method, self.url, self.headers, body)


@dataclass(frozen=True)
class Answer:
    status: int
    code: str  # the S3 <Code>; "" for a HEAD or a body that is not an S3 error
    message: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names


class Captured(Exception):
    def __init__(self, request: Any):
        super().__init__("captured")
        self.request = request


def capture_client(url: str) -> BaseClient:
    """A client whose calls are stopped before they send, for `prepare`."""
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="CAPTURE",
        aws_secret_access_key="capture",
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "max_attempts": 1},
            request_checksum_calculation="when_required",
        ),
    )
    client.meta.events.register("before-send.s3", stop_before_send)
    return client


def stop_before_send(request: Any, **_: Any) -> None:
    raise Captured(request)


def prepare(client: BaseClient, method: str, params: dict[str, Any]) -> Prepared:
    """The request boto3 makes for `client.<method>(**params)`."""
    try:
        getattr(client, method)(**params)
    except Captured as c:
        request = c.request
    else:
        raise AssertionError(f"{method} was sent")
    body = request.body or b""
    if hasattr(body, "read"):
        body = body.read()
    headers = {k.lower(): v.decode() if isinstance(v, bytes) else str(v) for k, v in request.headers.items()}
    headers = {k: v for k, v in headers.items() if k not in DROPPED and not k.startswith("amz-sdk-")}
    return Prepared(request.method, request.url, headers, body if isinstance(body, bytes) else body.encode())


# credentials -------------------------------------------------------------------------------------
class FixedPayloadAuth(S3SigV4Auth):  # type: ignore[misc]  # botocore has no type information
    """botocore's S3 signer, with x-amz-content-sha256 chosen by the caller (None: the body's SHA-256)."""

    def __init__(self, creds: Creds, payload: str | None):
        super().__init__(Credentials(creds.access_key, creds.secret_key), "s3", REGION)
        self.fixed_payload = payload

    def payload(self, request: AWSRequest) -> str:
        return self.fixed_payload or str(super().payload(request))


def signed(prepared: Prepared, creds: Creds, payload: str | None = None) -> Prepared:
    """Signed in the Authorization header (SigV4), the payload's SHA-256 signed unless `payload` says."""
    request = AWSRequest(prepared.method, prepared.url, data=prepared.body, headers=dict(prepared.headers))
    FixedPayloadAuth(creds, payload).add_auth(request)
    return Prepared(prepared.method, prepared.url, dict(request.headers.items()), prepared.body)


@contextmanager
def clock_at(when: dt.datetime | None) -> Iterator[None]:
    """botocore's signing clock set to `when` (None: the real one)."""
    if when is None:
        yield
        return
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        yield


def presigned(prepared: Prepared, creds: Creds, expires: int = 600, at: dt.datetime | None = None) -> Prepared:
    """A presigned URL of the request (the body is sent unsigned, as with any presigned URL)."""
    request = AWSRequest(prepared.method, prepared.url, headers=dict(prepared.headers))
    with clock_at(at):
        S3SigV4QueryAuth(Credentials(creds.access_key, creds.secret_key), "s3", REGION, expires).add_auth(request)
    return Prepared(prepared.method, request.url, dict(request.headers.items()), prepared.body)


def signed_v2(prepared: Prepared, creds: Creds) -> Prepared:
    """Signed in the Authorization header with SigV2 (`AWS key:signature`, dated by the Date header)."""
    request = AWSRequest(prepared.method, prepared.url, data=prepared.body, headers=dict(prepared.headers))
    HmacV1Auth(Credentials(creds.access_key, creds.secret_key)).add_auth(request)
    return Prepared(prepared.method, prepared.url, dict(request.headers.items()), prepared.body)


def presigned_v2(prepared: Prepared, creds: Creds, expires: int = 600) -> Prepared:
    """A SigV2 presigned URL (`AWSAccessKeyId`, `Expires`, `Signature`) valid `expires` seconds from now."""
    request = AWSRequest(prepared.method, prepared.url, headers=dict(prepared.headers))
    HmacV1QueryAuth(Credentials(creds.access_key, creds.secret_key), expires).add_auth(request)
    headers = {k: v for k, v in request.headers.items() if k.lower() != "date"}
    return Prepared(prepared.method, request.url, headers, prepared.body)


def with_query(url: str, change: dict[str, str]) -> str:
    """`url` with some query parameters replaced, the others as they were (order kept)."""
    parts = urlsplit(url)
    pairs = [(k, change.get(k, v)) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(pairs, quote_via=quote)))


def with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


def flipped(signature: str) -> str:
    return signature[:-1] + ("0" if signature[-1] != "0" else "1")


def auth_params(url: str) -> dict[str, str]:
    """The X-Amz-* parameters of a presigned URL, its signature included."""
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    return {k: query[k] for k in (*AUTH_PARAMS, "X-Amz-Signature")}


def grafted(prepared: Prepared, params: dict[str, str]) -> Prepared:
    """Another request's presigned parameters put on this request's URL (a replayed signature)."""
    parts = urlsplit(prepared.url)
    query = "&".join(q for q in (parts.query, urlencode(params, quote_via=quote)) if q)
    return prepared.with_url(urlunsplit(parts._replace(query=query)))


# sending -----------------------------------------------------------------------------------------
def send(http: httpx.Client, prepared: Prepared) -> Answer:
    response = http.request(prepared.method, prepared.url, headers=prepared.headers, content=prepared.body)
    return answer_of(response)


def answer_of(response: httpx.Response) -> Answer:
    code, message = "", ""
    if response.content.startswith(b"<?xml") or response.content.startswith(b"<Error"):
        root = ET.fromstring(response.content)
        if root.tag == "Error":
            code, message = root.findtext("Code") or "", root.findtext("Message") or ""
    return Answer(response.status_code, code, message, response.content, dict(response.headers))


# aws-chunked bodies ------------------------------------------------------------------------------
def signing_key(secret: str, date: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def chunk_signatures(creds: Creds, request: Prepared, chunks: list[bytes]) -> list[str]:
    """The signature of each chunk (and of the final empty one) after the request's seed signature."""
    amz_date = request.headers["X-Amz-Date"]
    previous = request.headers["Authorization"].rsplit("Signature=", 1)[1]
    key, scope = signing_key(creds.secret_key, amz_date[:8]), f"{amz_date[:8]}/{REGION}/s3/aws4_request"
    found = []
    for chunk in [*chunks, b""]:
        text = "\n".join(
            ["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, EMPTY_SHA256, hashlib.sha256(chunk).hexdigest()]
        )
        previous = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
        found.append(previous)
    return found


def chunked_body(chunks: list[bytes], signatures: list[str]) -> bytes:
    out = bytearray()
    for chunk, signature in zip([*chunks, b""], signatures, strict=True):
        out += f"{len(chunk):x};chunk-signature={signature}\r\n".encode() + chunk + b"\r\n"
    return bytes(out)


def streaming(prepared: Prepared, creds: Creds, chunks: list[bytes]) -> Prepared:
    """The request signed for an aws-chunked body of `chunks` (the body itself is the caller's to build)."""
    length = sum(len(c) for c in chunks)
    headers = {**prepared.headers, "content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(length)}
    headers.pop("content-md5", None)
    return signed(Prepared(prepared.method, prepared.url, headers), creds, payload=STREAMING)
