"""The aws-chunked decoder, fed whole and byte by byte: AWS's signed example, trailers, bad bodies.

https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html and sigv4-streaming-trailers.html
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Iterable

import pytest

from s3api import sigv4
from s3api.auth import Signing
from s3api.chunked import ChunkedDecoder
from s3api.errors import S3Error

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AMZ_DATE, SCOPE = "20130524T000000Z", "20130524/us-east-1/s3/aws4_request"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
EXAMPLE_SIGNATURES = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]
EXAMPLE_CHUNKS = [b"a" * 65536, b"a" * 1024, b""]


def signing() -> Signing:
    return Signing(sigv4.signing_key(SECRET, "20130524", "us-east-1"), AMZ_DATE, SCOPE, SEED)


def example_body() -> bytes:
    """AWS's example body (66824 bytes for 66560 of data), with the published chunk signatures."""
    signed = zip(EXAMPLE_CHUNKS, EXAMPLE_SIGNATURES, strict=True)
    parts = [f"{len(c):x};chunk-signature={s}\r\n".encode() + c + b"\r\n" for c, s in signed]
    return b"".join(parts)


def decode(decoder: ChunkedDecoder, body: bytes, step: int | None) -> tuple[bytes, dict[str, str]]:
    """Feed `body` in pieces of `step` bytes (all at once for None); the data and the trailers."""
    pieces: Iterable[bytes] = [body] if step is None else (body[i : i + step] for i in range(0, len(body), step))
    out = b"".join(b"".join(decoder.feed(piece)) for piece in pieces)
    return out, decoder.finish()


STEPS = [None, 1, 7, 4096]


@pytest.mark.parametrize("step", STEPS)
def test_aws_signed_example(step: int | None) -> None:
    body = example_body()
    assert len(body) == 66824
    data, trailers = decode(ChunkedDecoder(signing(), trailer=False), body, step)
    assert data == b"a" * 66560
    assert trailers == {}


@pytest.mark.parametrize("step", [None, 1])
@pytest.mark.parametrize("where", [0, 1, 2], ids=["first", "second", "final"])
def test_aws_example_with_a_wrong_signature(step: int | None, where: int) -> None:
    body = example_body().replace(EXAMPLE_SIGNATURES[where].encode(), b"0" * 64)
    with pytest.raises(S3Error) as e:
        decode(ChunkedDecoder(signing(), trailer=False), body, step)
    assert e.value.code == "SignatureDoesNotMatch"


def test_aws_example_with_changed_data() -> None:
    body = example_body()
    body = body[:200] + b"b" + body[201:]
    with pytest.raises(S3Error) as e:
        decode(ChunkedDecoder(signing(), trailer=False), body, None)
    assert e.value.code == "SignatureDoesNotMatch"


def test_missing_chunk_signature_when_signed() -> None:
    with pytest.raises(S3Error) as e:
        decode(ChunkedDecoder(signing(), trailer=False), b"3\r\nabc\r\n0\r\n\r\n", None)
    assert e.value.code == "SignatureDoesNotMatch"


def signed_trailer_body(data: bytes, trailer: dict[str, str]) -> bytes:
    s = signing()
    previous, out = s.seed, b""
    for chunk in (data, b""):
        previous = sigv4.sign(
            s.key, sigv4.chunk_string_to_sign(AMZ_DATE, SCOPE, previous, hashlib.sha256(chunk).hexdigest())
        )
        out += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk + (b"\r\n" if chunk else b"")
    text = "".join(f"{k}:{v}\n" for k, v in trailer.items())
    signature = sigv4.sign(s.key, sigv4.trailer_string_to_sign(AMZ_DATE, SCOPE, previous, text))
    return out + text.replace("\n", "\r\n").encode() + f"x-amz-trailer-signature:{signature}\r\n\r\n".encode()


def crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


@pytest.mark.parametrize("step", STEPS)
def test_signed_trailer(step: int | None) -> None:
    data = b"hello trailer" * 100
    body = signed_trailer_body(data, {"x-amz-checksum-crc32": crc32(data)})
    out, trailers = decode(ChunkedDecoder(signing(), trailer=True), body, step)
    assert out == data
    assert trailers == {"x-amz-checksum-crc32": crc32(data)}


def test_signed_trailer_with_changed_value() -> None:
    data = b"hello"
    body = signed_trailer_body(data, {"x-amz-checksum-crc32": crc32(data)}).replace(
        crc32(data).encode(), crc32(b"x").encode()
    )
    with pytest.raises(S3Error) as e:
        decode(ChunkedDecoder(signing(), trailer=True), body, None)
    assert e.value.code == "SignatureDoesNotMatch"


def test_signed_trailer_without_its_signature() -> None:
    data = b"hello"
    body = signed_trailer_body(data, {"x-amz-checksum-crc32": crc32(data)})
    body = body[: body.index(b"x-amz-trailer-signature")] + b"\r\n"
    with pytest.raises(S3Error) as e:
        decode(ChunkedDecoder(signing(), trailer=True), body, None)
    assert e.value.code == "SignatureDoesNotMatch"


UNSIGNED = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:" + crc32(b"hello world").encode() + b"\r\n"


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("ending", [b"\r\n", b""], ids=["final-crlf", "no-final-crlf"])
def test_unsigned_trailer(step: int | None, ending: bytes) -> None:
    out, trailers = decode(ChunkedDecoder(None, trailer=True), UNSIGNED + ending, step)
    assert out == b"hello world"
    assert trailers == {"x-amz-checksum-crc32": crc32(b"hello world")}


@pytest.mark.parametrize(
    "body",
    [
        b"5\r\nhello\r\n",  # no final chunk
        b"5\r\nhel",  # stops inside a chunk
        b"zz\r\nhello\r\n0\r\n\r\n",  # size not hex
        b"3\r\nhello\r\n0\r\n\r\n",  # data longer than declared
        b"5\r\nhello\r\n0\r\n\r\nmore",  # data after the final chunk
        b"5" * 5000,  # an endless size line
    ],
)
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(S3Error) as e:
        decode(ChunkedDecoder(None, trailer=True), body, 1)
    assert e.value.code == "IncompleteBody"


@pytest.mark.parametrize(
    "signed, trailer, ending",
    [
        (True, False, b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n"),  # signed, announcing no trailer
        (False, False, b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n"),  # aws-chunked without x-amz-trailer
        (False, True, b":\r\n\r\n"),  # a trailer without a name
        (False, True, b"x-amz-checksum-crc32 AAAAAA==\r\n\r\n"),  # no colon
    ],
)
def test_trailers_a_body_does_not_announce_or_that_are_malformed(signed: bool, trailer: bool, ending: bytes) -> None:
    """MalformedTrailerError (AWS's code for trailing data that is not well-formed)."""
    decoder = ChunkedDecoder(signing() if signed else None, trailer)
    final = f"0;chunk-signature={EXAMPLE_SIGNATURES[-1]}\r\n" if signed else "0\r\n"
    body = example_body()[: -len(final) - 2] + final.encode() if signed else b"5\r\nhello\r\n0\r\n"
    with pytest.raises(S3Error) as e:
        decode(decoder, body + ending, None)
    assert e.value.code == "MalformedTrailerError"


def test_chunk_larger_than_the_limit() -> None:
    with pytest.raises(S3Error) as e:
        ChunkedDecoder(None, trailer=False).feed(b"ffffffff\r\n")
    assert e.value.code == "IncompleteBody"


def test_memory_stays_bounded_for_a_large_chunk() -> None:
    """Data is handed out as it arrives, not buffered until its chunk ends."""
    decoder = ChunkedDecoder(None, trailer=False)
    size = 8 * 1024 * 1024
    assert decoder.feed(f"{size:x}\r\n".encode()) == []
    assert b"".join(decoder.feed(b"x" * 1000)) == b"x" * 1000


@pytest.mark.parametrize("size", [b"0x5", b"0_5", b"+5", b"-1", b"5g"])
def test_chunk_sizes_must_be_plain_hex(size: bytes) -> None:
    decoder = ChunkedDecoder(None, False)
    with pytest.raises(S3Error) as e:
        decoder.feed(size + b"\r\nABCDE\r\n0\r\n\r\n")
        decoder.finish()
    assert e.value.code == "IncompleteBody"
