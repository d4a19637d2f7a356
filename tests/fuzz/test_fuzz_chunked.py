"""The aws-chunked decoder (`s3api.chunked`) against hostile bodies, fed in arbitrary pieces.

Properties: the outcome never depends on how the body is cut into pieces (the network decides
that); every outcome is the data and trailers or an S3Error (IncompleteBody, MalformedTrailerError,
SignatureDoesNotMatch); a signed body that decodes at all decodes to what was signed, so truncated
chunks, bad sizes, bad or replayed chunk signatures and missing or extra trailers are refused; memory
does not grow with the body. Bodies are built here from the spec (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html
and .../sigv4-streaming-trailers.html), not by the decoder's own module.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib
from dataclasses import dataclass

from fuzzing import attempt, budget, peak_bytes
from hypothesis import example, given
from hypothesis import strategies as st

from s3api import checksums
from s3api.auth import Signing
from s3api.chunked import MAX_LINE, ChunkedDecoder
from s3api.errors import S3Error

SECRET = "fuzz/Secret+Key=="
AMZ_DATE, SCOPE = "20240102T030405Z", "20240102/us-east-1/s3/aws4_request"


def signing_key(secret: str, date: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, "us-east-1", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


KEY = signing_key(SECRET, "20240102")
EMPTY = hashlib.sha256(b"").hexdigest()
SEEDS = ("a" * 64, "b" * 64)  # the signatures of two requests' headers


@dataclass(frozen=True)
class Body:
    """An aws-chunked body as a client sends it, with what it carries."""

    raw: bytes
    data: bytes
    trailers: dict[str, str]
    signed: bool
    trailer: bool
    seed: str = SEEDS[0]

    def signing(self) -> Signing | None:
        return Signing(KEY, AMZ_DATE, SCOPE, self.seed) if self.signed else None


def encode(
    chunks: list[bytes],
    trailers: dict[str, str] | None,
    signed: bool,
    seed: str = SEEDS[0],
    signing: tuple[bytes, str, str] = (KEY, AMZ_DATE, SCOPE),
) -> Body:
    """The body of STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] (signed) or STREAMING-UNSIGNED-PAYLOAD-TRAILER;
    `seed` is the signature of the request's headers, `signing` its (signing key, x-amz-date, scope)."""
    key, amz_date, scope = signing

    def sign(kind: str, digest: str) -> str:
        text = "\n".join([kind, amz_date, scope, previous, *([EMPTY] if kind.endswith("PAYLOAD") else []), digest])
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    out, previous = bytearray(), seed
    for chunk in [*chunks, b""]:
        line = f"{len(chunk):x}"
        if signed:
            previous = sign("AWS4-HMAC-SHA256-PAYLOAD", hashlib.sha256(chunk).hexdigest())
            line += f";chunk-signature={previous}"
        out += line.encode() + b"\r\n" + chunk + (b"\r\n" if chunk else b"")
    if trailers is not None:
        text = "".join(f"{k}:{v}\n" for k, v in trailers.items())
        out += text.replace("\n", "\r\n").encode()
        if signed:
            signature = sign("AWS4-HMAC-SHA256-TRAILER", hashlib.sha256(text.encode()).hexdigest())
            out += f"x-amz-trailer-signature:{signature}\r\n".encode()
    out += b"\r\n"
    return Body(bytes(out), b"".join(chunks), dict(trailers or {}), signed, trailers is not None, seed)


EVERY_BYTE = None  # cuts: after every byte


def decode(body: Body, raw: bytes, cuts: list[int] | None) -> tuple[bytes, dict[str, str]]:
    """Feed `raw` cut at `cuts` (EVERY_BYTE: one byte at a time), as the socket might deliver it."""
    decoder = ChunkedDecoder(body.signing(), body.trailer)
    out: list[bytes] = []
    start = 0
    for cut in [*sorted(range(len(raw)) if cuts is EVERY_BYTE else cuts), len(raw)]:
        out += decoder.feed(raw[start:cut])
        start = max(start, cut)
    return b"".join(out), decoder.finish()


def outcome(body: Body, raw: bytes, cuts: list[int] | None) -> tuple[object, ...]:
    """What a request with this body comes to: its data and trailers, or the error's code."""
    result = attempt(decode, body, raw, cuts, allowed=(S3Error,))
    if isinstance(result, S3Error):
        return ("error", result.code)
    return ("ok", *result)


TRAILER_NAMES = st.sampled_from(
    ["x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-sha256", "x-amz-checksum-crc64nvme", "x-a"]
)
TRAILER_VALUES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=48)


@st.composite
def bodies(draw: st.DrawFn) -> Body:
    chunks = draw(st.lists(st.binary(min_size=1, max_size=200), max_size=5))
    signed = draw(st.booleans())
    trailers = draw(st.none() | st.dictionaries(TRAILER_NAMES, TRAILER_VALUES, max_size=3))
    if not signed and trailers is None:
        trailers = {}  # STREAMING-UNSIGNED-PAYLOAD-TRAILER always has a trailer section
    return encode(chunks, trailers, signed, draw(st.sampled_from(SEEDS)))


def cuts_of(raw: bytes) -> st.SearchStrategy[list[int] | None]:
    """Where the network cuts a body: a few places, or after every byte."""
    return st.lists(st.integers(0, len(raw)), max_size=12) | st.just(EVERY_BYTE)


SEPARATORS = [b"\r\n", b"\r", b";", b"0\r\n", b":", b"\r\n\r\n", b";chunk-signature="]
# A run of one byte around the decoder's line bound: long extensions, sizes, trailer lines.
LONG_RUNS = st.builds(
    lambda byte, n: bytes([byte]) * n, st.sampled_from(b"0ae;: \r"), st.integers(MAX_LINE - 8, MAX_LINE + 8)
)


@st.composite
def mutated(draw: st.DrawFn, raw: bytes) -> bytes:
    """`raw` with one hostile change: bytes flipped, cut out, inserted or repeated, or cut short."""
    landmarks = [i for i in range(len(raw)) if raw[i : i + 1] in (b";", b":", b"=") or raw[i : i + 2] == b"\r\n"]
    at = draw(st.integers(0, len(raw)) | st.sampled_from(landmarks or [0]))  # anywhere, or where fields meet
    kind = draw(st.sampled_from(["flip", "delete", "insert", "repeat", "truncate"]))
    if kind == "flip" and at < len(raw):
        return raw[:at] + bytes([raw[at] ^ draw(st.integers(1, 255))]) + raw[at + 1 :]
    if kind == "delete":
        return raw[:at] + raw[at + draw(st.integers(1, 80)) :]
    if kind == "insert":
        noise = draw(st.binary(min_size=1, max_size=40) | st.sampled_from(SEPARATORS) | LONG_RUNS)
        return raw[:at] + noise + raw[at:]
    if kind == "repeat":
        return raw[:at] + raw[at : at + draw(st.integers(1, 300))] + raw[at:]
    return raw[:at]


@dataclass(frozen=True)
class Case:
    """A body as sent (`raw`, perhaps changed from `body.raw`) and where the network cuts it."""

    body: Body
    raw: bytes
    cuts: list[int] | None


@st.composite
def cases(draw: st.DrawFn, mutate: bool = True) -> Case:
    body = draw(bodies())
    raw = draw(mutated(body.raw)) if mutate else body.raw
    return Case(body, raw, draw(cuts_of(raw)))


@budget(300)
@given(case=cases(mutate=False))
def test_an_intact_body_decodes_to_what_was_sent_however_it_is_cut(case: Case) -> None:
    body = case.body
    assert outcome(body, body.raw, case.cuts) == ("ok", body.data, body.trailers)
    assert outcome(body, body.raw, EVERY_BYTE) == ("ok", body.data, body.trailers)


# Found by this test: a line past MAX_LINE was refused when it came in pieces and read when it came
# whole (an unsigned chunk's long extension then passed; a signed one failed as another error).
UNSIGNED_LONG_EXTENSION = Case(encode([b"x"], {}, False), b"1;" + b";" * MAX_LINE + b"\r\nx\r\n0\r\n\r\n", EVERY_BYTE)
SIGNED_LONG_EXTENSION = Case(encode([], None, True), b"0;" + b"0" * 4092 + encode([], None, True).raw[2:], EVERY_BYTE)

# Found by scripts/fuzz: a trailer line after a body signed without one was read, signed by nobody.
_SIGNED = encode([b"\x00"], None, True)
SIGNED_BODY_WITH_A_TRAILER = Case(_SIGNED, _SIGNED.raw[:-2] + b":\r\n", None)


@budget(600)
@given(case=cases())
@example(case=SIGNED_BODY_WITH_A_TRAILER).via("discovered failure")
@example(case=UNSIGNED_LONG_EXTENSION).via("discovered failure")
@example(case=SIGNED_LONG_EXTENSION).via("discovered failure")
def test_a_changed_body_has_one_outcome_whatever_the_pieces(case: Case) -> None:
    whole = outcome(case.body, case.raw, [])
    assert outcome(case.body, case.raw, case.cuts) == whole
    if case.body.signed and whole[0] == "ok":
        assert whole == ("ok", case.body.data, case.body.trailers), "a changed signed body passed for another"


@budget(200)
@given(first=bodies(), second=st.binary(min_size=1, max_size=50), at=st.integers(0, 4))
def test_chunks_replayed_from_another_body_are_refused(first: Body, second: bytes, at: int) -> None:
    """A signed chunk spliced in from another request (or repeated from this one) breaks the chain."""
    if not first.signed:
        return
    other = encode([second], None, signed=True, seed=SEEDS[1]).raw
    stolen = other[: other.index(b"\r\n0;")] + b"\r\n"  # its first chunk, signature and data
    own = first.raw[: first.raw.index(b"\r\n0;") + 2] if first.data else b""  # this body's chunks
    for spliced in (stolen, own):
        raw = first.raw[: len(own) * at // 4] + spliced + first.raw[len(own) * at // 4 :]
        if raw != first.raw:
            result = outcome(first, raw, [])
            assert result[0] == "error", "a replayed chunk was accepted"


@budget(200)
@given(chunks=st.lists(st.binary(min_size=1, max_size=100), max_size=4), drop=st.integers(1, 2))
@example(chunks=[], drop=2).via("discovered failure")  # the trailer line was dropped, its checksum unchecked
def test_a_trailer_without_its_line_ends_is_read_never_dropped(chunks: list[bytes], drop: int) -> None:
    """The body's last CRLF may be missing (lenient), the last trailer line's too: that line is
    read, never dropped, so its checksum is checked."""
    crc = base64.b64encode(zlib.crc32(b"".join(chunks)).to_bytes(4, "big")).decode()
    body = encode(chunks, {"x-amz-checksum-crc32": crc}, signed=False)
    result = outcome(body, body.raw[: -2 * drop], [])
    assert result == ("ok", body.data, body.trailers)


@budget(300)
@given(case=cases())
def test_trailer_checksums_are_verified_or_refused(case: Case) -> None:
    """What decodes is then checked against its x-amz-checksum-* trailers: a mismatch is BadDigest,
    an unknown algorithm InvalidRequest; never anything else."""
    result = outcome(case.body, case.raw, [])
    if result[0] != "ok":
        return
    decoded, trailers = result[1], result[2]
    assert isinstance(decoded, bytes) and isinstance(trailers, dict)
    attempt(checksums.verify_small_body, {"x-amz-trailer": ",".join(trailers)}, trailers, decoded)


def test_memory_stays_bounded_whatever_the_body() -> None:
    """A line that never ends is refused after MAX_LINE; a 64 MiB chunk streams through."""
    piece = b"f" * 65536

    def endless_line() -> None:
        decoder = ChunkedDecoder(None, True)
        for _ in range(256):
            decoder.feed(piece)

    def big_chunk() -> None:
        decoder = ChunkedDecoder(None, True)
        decoder.feed(b"4000000\r\n")
        for _ in range(1024):
            assert sum(map(len, decoder.feed(piece))) == len(piece)

    peak, error = peak_bytes(endless_line)
    assert isinstance(error, S3Error) and error.code == "IncompleteBody"
    assert peak < 4 * len(piece) + MAX_LINE
    peak, error = peak_bytes(big_chunk)
    assert error is None
    assert peak < 4 * len(piece) + MAX_LINE
