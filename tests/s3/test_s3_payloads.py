"""Every payload mode of x-amz-content-sha256, by hand-made requests: what boto3 does not send.

https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html and sigv4-streaming-trailers.html.
A request that fails its payload check must leave nothing behind.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError
from s3_server import Endpoint, failure, unique_bucket_name
from s3_signing import crc32_b64, error_of, send, sign, signed_chunks, unsigned_chunks

CHUNKS = [b"a" * 65536, bytes(range(256)) * 256, b"tail"]
DATA = b"".join(CHUNKS)
SIGNED_STREAM = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


@pytest.fixture
def raw_bucket(endpoint: Endpoint) -> str:
    name = unique_bucket_name()
    endpoint.client().create_bucket(Bucket=name)
    return name


def stored(endpoint: Endpoint, bucket: str, key: str = "k") -> bytes | None:
    s3 = endpoint.client()
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    if key not in [o["Key"] for o in listed]:
        return None
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]


def chunked_headers(mode: str, decoded: int, trailer: str | None = None) -> list[tuple[str, str]]:
    headers = [("Content-Encoding", "aws-chunked"), ("x-amz-decoded-content-length", str(decoded))]
    return headers + ([("x-amz-trailer", trailer)] if trailer else [])


# STREAMING-AWS4-HMAC-SHA256-PAYLOAD -------------------------------------------------------------
def test_signed_chunks_are_verified_and_decoded(endpoint: Endpoint, raw_bucket: str) -> None:
    path = f"/{raw_bucket}/k"
    signed = sign(endpoint, "PUT", path, headers=chunked_headers(SIGNED_STREAM, len(DATA)), payload=SIGNED_STREAM)
    response = send(endpoint, "PUT", path, body=signed_chunks(CHUNKS, endpoint.users["admin"], signed), signed=signed)
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == f'"{hashlib.md5(DATA).hexdigest()}"'
    assert stored(endpoint, raw_bucket) == DATA


def tamper_signature(body: bytes, index: int) -> bytes:
    """Flip the last hex digit of the index-th chunk signature."""
    marker = b"chunk-signature="
    at = -1
    for _ in range(index + 1):
        at = body.index(marker, at + 1)
    last = at + len(marker) + 63
    flipped = b"0" if body[last : last + 1] != b"0" else b"1"
    return body[:last] + flipped + body[last + 1 :]


@pytest.mark.parametrize("index", [0, 1, 3], ids=["first", "middle", "final-empty"])
def test_tampered_chunk_signature_stores_nothing(endpoint: Endpoint, raw_bucket: str, index: int) -> None:
    path = f"/{raw_bucket}/k"
    signed = sign(endpoint, "PUT", path, headers=chunked_headers(SIGNED_STREAM, len(DATA)), payload=SIGNED_STREAM)
    body = tamper_signature(signed_chunks(CHUNKS, endpoint.users["admin"], signed), index)
    response = send(endpoint, "PUT", path, body=body, signed=signed)
    assert (response.status_code, error_of(response)["Code"]) == (403, "SignatureDoesNotMatch")
    assert stored(endpoint, raw_bucket) is None


def test_tampered_chunk_data_stores_nothing(endpoint: Endpoint, raw_bucket: str) -> None:
    path = f"/{raw_bucket}/k"
    signed = sign(endpoint, "PUT", path, headers=chunked_headers(SIGNED_STREAM, len(DATA)), payload=SIGNED_STREAM)
    body = signed_chunks(CHUNKS, endpoint.users["admin"], signed).replace(b"tail", b"TAIL")
    response = send(endpoint, "PUT", path, body=body, signed=signed)
    assert (response.status_code, error_of(response)["Code"]) == (403, "SignatureDoesNotMatch")
    assert stored(endpoint, raw_bucket) is None


def test_body_shorter_than_decoded_length_stores_nothing(http_endpoint: Endpoint) -> None:
    bucket = unique_bucket_name()
    http_endpoint.client().create_bucket(Bucket=bucket)
    path = f"/{bucket}/k"
    signed = sign(
        http_endpoint, "PUT", path, headers=chunked_headers(SIGNED_STREAM, len(DATA) + 1), payload=SIGNED_STREAM
    )
    response = send(
        http_endpoint, "PUT", path, body=signed_chunks(CHUNKS, http_endpoint.users["admin"], signed), signed=signed
    )
    assert (response.status_code, error_of(response)["Code"]) == (400, "IncompleteBody")
    assert stored(http_endpoint, bucket) is None


def test_a_trailer_added_to_a_body_signed_without_one_is_refused(endpoint: Endpoint, raw_bucket: str) -> None:
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD ends at its signed final chunk: a trailer put after it is
    signed by nobody. It was read, and its checksum reported as the object's (found by scripts/fuzz)."""
    path = f"/{raw_bucket}/k"
    signed = sign(endpoint, "PUT", path, headers=chunked_headers(SIGNED_STREAM, len(DATA)), payload=SIGNED_STREAM)
    body = signed_chunks(CHUNKS, endpoint.users["admin"], signed)
    assert body.endswith(b"\r\n\r\n")
    added = body[:-2] + f"x-amz-checksum-crc32:{crc32_b64(DATA)}\r\n\r\n".encode()
    response = send(endpoint, "PUT", path, body=added, signed=signed)
    assert (response.status_code, error_of(response)["Code"]) == (400, "MalformedTrailerError"), response.text
    assert stored(endpoint, raw_bucket) is None


# trailers ---------------------------------------------------------------------------------------
def test_signed_trailer_is_verified(endpoint: Endpoint, raw_bucket: str) -> None:
    path = f"/{raw_bucket}/k"
    headers = chunked_headers(SIGNED_TRAILER, len(DATA), "x-amz-checksum-crc32")
    signed = sign(endpoint, "PUT", path, headers=headers, payload=SIGNED_TRAILER)
    body = signed_chunks(CHUNKS, endpoint.users["admin"], signed, {"x-amz-checksum-crc32": crc32_b64(DATA)})
    response = send(endpoint, "PUT", path, body=body, signed=signed)
    assert response.status_code == 200, response.text
    assert response.headers["x-amz-checksum-crc32"] == crc32_b64(DATA)
    assert stored(endpoint, raw_bucket) == DATA


def test_tampered_trailer_signature_stores_nothing(endpoint: Endpoint, raw_bucket: str) -> None:
    path = f"/{raw_bucket}/k"
    headers = chunked_headers(SIGNED_TRAILER, len(DATA), "x-amz-checksum-crc32")
    signed = sign(endpoint, "PUT", path, headers=headers, payload=SIGNED_TRAILER)
    body = signed_chunks(CHUNKS, endpoint.users["admin"], signed, {"x-amz-checksum-crc32": crc32_b64(DATA)})
    at = body.index(b"x-amz-trailer-signature:") + len("x-amz-trailer-signature:")
    body = body[:at] + (b"1" if body[at : at + 1] == b"0" else b"0") + body[at + 1 :]
    response = send(endpoint, "PUT", path, body=body, signed=signed)
    assert (response.status_code, error_of(response)["Code"]) == (403, "SignatureDoesNotMatch")
    assert stored(endpoint, raw_bucket) is None


@pytest.mark.parametrize("final_crlf", [True, False], ids=["with-final-crlf", "without-final-crlf"])
def test_unsigned_trailer(endpoint: Endpoint, raw_bucket: str, final_crlf: bool) -> None:
    path = f"/{raw_bucket}/k"
    headers = chunked_headers(UNSIGNED_TRAILER, len(DATA), "x-amz-checksum-crc32")
    body = unsigned_chunks(CHUNKS, {"x-amz-checksum-crc32": crc32_b64(DATA)}, final_crlf)
    response = send(endpoint, "PUT", path, headers=headers, body=body, payload=UNSIGNED_TRAILER)
    assert response.status_code == 200, response.text
    assert stored(endpoint, raw_bucket) == DATA


def test_unsigned_trailer_with_wrong_checksum_stores_nothing(endpoint: Endpoint, raw_bucket: str) -> None:
    path = f"/{raw_bucket}/k"
    headers = chunked_headers(UNSIGNED_TRAILER, len(DATA), "x-amz-checksum-crc32")
    body = unsigned_chunks(CHUNKS, {"x-amz-checksum-crc32": crc32_b64(b"other data")})
    response = send(endpoint, "PUT", path, headers=headers, body=body, payload=UNSIGNED_TRAILER)
    assert (response.status_code, error_of(response)["Code"]) == (400, "BadDigest")
    assert stored(endpoint, raw_bucket) is None


# whole-body modes -------------------------------------------------------------------------------
def test_hex_payload_hash_is_verified(endpoint: Endpoint, raw_bucket: str) -> None:
    path = f"/{raw_bucket}/k"
    good = send(endpoint, "PUT", path, body=DATA, payload=hashlib.sha256(DATA).hexdigest())
    assert good.status_code == 200, good.text
    bad = send(endpoint, "PUT", path, body=DATA + b"!", payload=hashlib.sha256(DATA).hexdigest())
    assert (bad.status_code, error_of(bad)["Code"]) == (400, "XAmzContentSHA256Mismatch")
    assert stored(endpoint, raw_bucket) == DATA  # the old object, untouched


def test_mismatching_hex_payload_hash_stores_nothing(endpoint: Endpoint, raw_bucket: str) -> None:
    path = f"/{raw_bucket}/k"
    response = send(endpoint, "PUT", path, body=DATA, payload=hashlib.sha256(b"other").hexdigest())
    assert (response.status_code, error_of(response)["Code"]) == (400, "XAmzContentSHA256Mismatch")
    assert stored(endpoint, raw_bucket) is None


def test_unsigned_payload(endpoint: Endpoint, raw_bucket: str) -> None:
    path = f"/{raw_bucket}/k"
    response = send(endpoint, "PUT", path, body=DATA, payload="UNSIGNED-PAYLOAD")
    assert response.status_code == 200, response.text
    assert stored(endpoint, raw_bucket) == DATA


@pytest.mark.parametrize("mode", ["STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", "SOMETHING-ELSE", "abc123"])
def test_unknown_payload_mode_is_rejected(endpoint: Endpoint, raw_bucket: str, mode: str) -> None:
    path = f"/{raw_bucket}/k"
    response = send(endpoint, "PUT", path, body=DATA, payload=mode)
    assert response.status_code == 400
    assert error_of(response)["Code"] in ("InvalidArgument", "InvalidRequest")
    assert stored(endpoint, raw_bucket) is None


def test_transfer_encoding_chunked_without_length(endpoint: Endpoint, raw_bucket: str) -> None:
    """No Content-Length at all: the size is known only when the body ends."""
    path = f"/{raw_bucket}/k"

    def pieces() -> Iterator[bytes]:
        yield from CHUNKS

    response = send(endpoint, "PUT", path, body=pieces(), payload="UNSIGNED-PAYLOAD")
    assert response.status_code == 200, response.text
    assert stored(endpoint, raw_bucket) == DATA


def test_repeated_signed_header(endpoint: Endpoint, raw_bucket: str) -> None:
    """A header sent twice is signed as one comma-separated value (botocore: ',' without space)."""
    path = f"/{raw_bucket}/k"
    headers = [("x-amz-meta-reviewedby", "joe@example.com"), ("x-amz-meta-reviewedby", "jane@example.com")]
    response = send(endpoint, "PUT", path, headers=headers, body=b"x")
    assert response.status_code == 200, response.text
    head = endpoint.client().head_object(Bucket=raw_bucket, Key="k")
    assert head["Metadata"] == {"reviewedby": "joe@example.com,jane@example.com"}


# Expect: 100-continue and early answers ---------------------------------------------------------
def open_socket(endpoint: Endpoint) -> socket.socket:
    host, port = endpoint.url.split("://")[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    if endpoint.tls:
        context = endpoint.ssl_context()
        assert isinstance(context, ssl.SSLContext)
        sock = context.wrap_socket(sock, server_hostname=host)
    return sock


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(1)
        if not piece:
            break
        data += piece
    return data


def request_head(endpoint: Endpoint, path: str, body: bytes) -> bytes:
    headers = [("Expect", "100-continue"), ("Content-Length", str(len(body)))]
    signed = sign(endpoint, "PUT", path, headers=headers, body=body)
    lines = [f"PUT {path} HTTP/1.1", f"Host: {endpoint.url.split('://')[1]}"]
    lines += [f"{k}: {v}" for k, v in signed.headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_expect_100_continue_is_answered_before_the_body(endpoint: Endpoint, raw_bucket: str) -> None:
    path = f"/{raw_bucket}/k"
    with open_socket(endpoint) as sock:
        sock.sendall(request_head(endpoint, path, DATA))
        interim = read_head(sock)
        assert interim.startswith(b"HTTP/1.1 100 Continue"), interim
        sock.sendall(DATA)
        final = read_head(sock)
        assert final.startswith(b"HTTP/1.1 200"), final
    assert stored(endpoint, raw_bucket) == DATA


def test_early_error_without_100_continue_closes_the_connection(endpoint: Endpoint) -> None:
    """No 100 Continue, a final answer, and no reading the unsent body as the next request."""
    path = f"/{unique_bucket_name()}/k"  # no such bucket
    with open_socket(endpoint) as sock:
        sock.sendall(request_head(endpoint, path, DATA))
        final = read_head(sock)
        assert final.startswith(b"HTTP/1.1 404"), final
        assert b"connection: close" in final.lower()


def test_client_keeps_working_after_early_errors(endpoint: Endpoint, checksum_calculation: str) -> None:
    """boto3 reuses the connection after a PutObject refused before its body (it waits for 100 Continue)."""
    s3 = endpoint.client(checksums=checksum_calculation)
    missing = unique_bucket_name()
    for _ in range(3):
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=missing, Key="k", Body=DATA)
        assert failure(e) == (404, "NoSuchBucket")
        assert "Buckets" in s3.list_buckets()


def test_a_body_without_length_nor_chunked_encoding_is_411(http_endpoint: Endpoint, http_bucket: str) -> None:
    """As AWS: a PUT of an object says its body's length (or sends it chunked); one that says neither
    (its body would be whatever comes until the connection closes) is refused, nothing kept."""
    host, port = http_endpoint.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(send_raw_put(http_endpoint, f"/{http_bucket}/nolength"))
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 411"), answer[:200]
    assert b"<Code>MissingContentLength</Code>" in answer
    with pytest.raises(ClientError):
        http_endpoint.client().head_object(Bucket=http_bucket, Key="nolength")


def send_raw_put(endpoint: Endpoint, path: str) -> bytes:
    """A signed PUT request head with no Content-Length and no Transfer-Encoding."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from s3_server import ADMIN

    signed = AWSRequest(method="PUT", url=endpoint.url + path, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    S3SigV4Auth(Credentials(ADMIN.access_key, ADMIN.secret_key), "s3", "us-east-1").add_auth(signed)
    host = endpoint.url.split("://", 1)[1]
    lines = [
        f"PUT {path} HTTP/1.1",
        f"Host: {host}",
        *(f"{k}: {v}" for k, v in signed.headers.items()),
        "Connection: close",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()
