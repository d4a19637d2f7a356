"""Hand-made S3 requests for what boto3 never sends: tampered signatures, odd payload modes.

Headers are signed by botocore's pure-Python SigV4 signer (so the server is held to botocore's
reading of the spec, not to its own; boto3 clients sign with awscrt's, since awscrt is installed,
so both are exercised); aws-chunked bodies and their chunk signatures are built here from
the spec (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from s3_server import ADMIN, REGION, Creds, Endpoint

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class FixedPayloadAuth(S3SigV4Auth):
    """botocore's S3 signer, with x-amz-content-sha256 chosen by the test."""

    def __init__(self, creds: Creds, payload: str | None):
        super().__init__(Credentials(creds.access_key, creds.secret_key), "s3", REGION)
        self.fixed_payload = payload

    def payload(self, request: AWSRequest) -> str:
        return self.fixed_payload or super().payload(request)


@dataclass
class Signed:
    url: str
    headers: list[tuple[str, str]]
    amz_date: str
    signature: str


def sign(
    endpoint: Endpoint,
    method: str,
    path: str,
    *,
    query: str = "",
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    payload: str | None = None,
    creds: Creds = ADMIN,
) -> Signed:
    """Sign a request as botocore does; `payload` fixes x-amz-content-sha256 (else the body's hash)."""
    url = endpoint.url + path + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body)
    for name, value in headers:
        request.headers.add_header(name, value)  # repeated names stay repeated
    FixedPayloadAuth(creds, payload).add_auth(request)
    signature = request.headers["Authorization"].rsplit("Signature=", 1)[1]
    items = [(k, str(v)) for k, v in request.headers.items()]
    return Signed(url, items, request.headers["X-Amz-Date"], signature)


def send(
    endpoint: Endpoint,
    method: str,
    path: str,
    *,
    query: str = "",
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | Iterable[bytes] = b"",
    payload: str | None = None,
    creds: Creds = ADMIN,
    signed: Signed | None = None,
) -> httpx.Response:
    """Sign (unless `signed` is given) and send; `body` may differ from what was signed."""
    if signed is None:
        signed = sign(
            endpoint,
            method,
            path,
            query=query,
            headers=headers,
            body=body if isinstance(body, bytes) else b"",
            payload=payload,
            creds=creds,
        )
    with endpoint.http() as client:
        return client.request(method, signed.url, headers=signed.headers, content=body)


def signing_key(secret: str, date: str, region: str = REGION) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def chunk_signature(key: bytes, amz_date: str, previous: str, chunk: bytes, region: str = REGION) -> str:
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    text = "\n".join(
        ["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, EMPTY_SHA256, hashlib.sha256(chunk).hexdigest()]
    )
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def trailer_signature(key: bytes, amz_date: str, previous: str, trailer: str, region: str = REGION) -> str:
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    text = "\n".join(
        ["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, previous, hashlib.sha256(trailer.encode()).hexdigest()]
    )
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def signed_chunks(chunks: list[bytes], creds: Creds, signed: Signed, trailer: dict[str, str] | None = None) -> bytes:
    """The aws-chunked body of STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]: chunks, final chunk, trailer."""
    key = signing_key(creds.secret_key, signed.amz_date[:8])
    previous, out = signed.signature, bytearray()
    for chunk in [*chunks, b""]:
        previous = chunk_signature(key, signed.amz_date, previous, chunk)
        out += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk
        if chunk:
            out += b"\r\n"
    if trailer is not None:
        lines = "".join(f"{k}:{v}\n" for k, v in trailer.items())
        out += lines.replace("\n", "\r\n").encode()
        out += f"x-amz-trailer-signature:{trailer_signature(key, signed.amz_date, previous, lines)}\r\n".encode()
    return bytes(out + b"\r\n")


def unsigned_chunks(chunks: list[bytes], trailer: dict[str, str], final_crlf: bool = True) -> bytes:
    """The aws-chunked body of STREAMING-UNSIGNED-PAYLOAD-TRAILER."""
    out = bytearray()
    for chunk in chunks:
        out += f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    out += b"0\r\n" + "".join(f"{k}:{v}\r\n" for k, v in trailer.items()).encode()
    return bytes(out + (b"\r\n" if final_crlf else b""))


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The children of an S3 <Error> document, as text."""
    root = ET.fromstring(response.content)
    assert root.tag == "Error", response.text
    return {child.tag: child.text for child in root}
