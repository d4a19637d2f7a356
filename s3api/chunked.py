"""Decoding `aws-chunked` request bodies, verifying chunk and trailer signatures as they pass.

Body format (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html):
    <hex size>;chunk-signature=<sig>\\r\\n<data>\\r\\n ... 0;chunk-signature=<sig>\\r\\n
    [trailer-name:value\\r\\n ... x-amz-trailer-signature:<sig>\\r\\n]\\r\\n
Unsigned variants drop `;chunk-signature=...` and the trailer signature. The decoder is a push
parser: feed it what the socket delivers, get decoded data back, bounded memory throughout.
"""

from __future__ import annotations

import hashlib
import re

from . import sigv4
from .auth import Signing
from .errors import S3Code, S3Error

MAX_LINE = 4096
MAX_CHUNK = 64 * 1024 * 1024
MAX_TRAILER = 16 * 1024
HEADER, DATA, DATA_END, TRAILER, DONE = range(5)
_HEX_SIZE = re.compile(r"[0-9a-fA-F]{1,16}")


def _bad(message: str) -> S3Error:
    return S3Error(S3Code.IncompleteBody, f"aws-chunked body: {message}")


def _bad_trailer(message: str) -> S3Error:
    return S3Error(S3Code.MalformedTrailerError, f"aws-chunked body: {message}")


class ChunkedDecoder:
    """`signing` given: every chunk (and the trailer, if any) must carry a valid signature."""

    def __init__(self, signing: Signing | None, trailer: bool):
        self.signing = signing
        self.trailer_expected = trailer
        self.previous = signing.seed if signing else ""
        self.trailers: dict[str, str] = {}
        self._state = HEADER
        self._buf = bytearray()
        self._left = 0
        self._chunk_sig = ""
        self._hash = hashlib.sha256()
        self._trailer_lines: list[str] = []

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while self._step(out):
            pass
        return out

    def finish(self) -> dict[str, str]:
        """End of body: the trailers; IncompleteBody if the body stopped early."""
        if self._state == TRAILER:
            # Lenient: the last CRLF may be missing, and so may the last trailer line's, but that
            # line is still read (dropped, the checksum it carries would never be checked).
            last = bytes(self._buf).decode("latin-1").removesuffix("\r")
            if last:
                self._trailer_line(last)
            self._buf.clear()
            self._end_trailer()
        if self._state != DONE:
            raise _bad("the body ended before its final chunk")
        return self.trailers

    def _step(self, out: list[bytes]) -> bool:
        if self._state == DATA:
            return self._take_data(out)
        if self._state == DONE:
            if self._buf.strip():
                raise _bad("data after the final chunk")
            self._buf.clear()
            return False
        line = self._line()
        if line is None:
            return False
        if self._state == HEADER:
            self._start_chunk(line)
        elif self._state == DATA_END:
            if line:
                raise _bad("chunk data longer than its declared size")
            self._state = HEADER
        elif self._state == TRAILER:
            self._trailer_line(line)
        return True

    def _line(self) -> str | None:
        """The next line, without its CRLF; None until it has come. A line longer than MAX_LINE is
        refused however the body was cut: whether it came whole or a byte at a time."""
        end = self._buf.find(b"\r\n")
        if end > MAX_LINE or (end < 0 and len(self._buf) > MAX_LINE + 1):  # + 1: the CR of its CRLF
            raise _bad("line too long")
        if end < 0:
            return None
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line.decode("latin-1")

    def _start_chunk(self, line: str) -> None:
        size_text, _, ext = line.partition(";")
        if not _HEX_SIZE.fullmatch(size_text.strip()):
            raise _bad(f"bad chunk size {size_text[:20]!r}")
        self._left = int(size_text.strip(), 16)
        if self._left > MAX_CHUNK:
            raise _bad("chunk too large")
        name, _, sig = ext.partition("=")
        if self.signing is not None and name.strip() != "chunk-signature":
            raise S3Error(S3Code.SignatureDoesNotMatch, "chunk signature missing")
        self._chunk_sig = sig.strip()
        self._hash = hashlib.sha256()
        if self._left == 0:
            self._verify_chunk()
            self._state = TRAILER  # trailer lines (if any), then an empty line
        else:
            self._state = DATA

    def _take_data(self, out: list[bytes]) -> bool:
        if not self._buf:
            return False
        take = min(self._left, len(self._buf))
        piece = bytes(self._buf[:take])
        del self._buf[:take]
        self._left -= take
        if self.signing is not None:
            self._hash.update(piece)
        out.append(piece)
        if self._left == 0:
            self._verify_chunk()
            self._state = DATA_END
        return True

    def _verify_chunk(self) -> None:
        if self.signing is None:
            return
        s = self.signing
        expected = sigv4.sign(
            s.key, sigv4.chunk_string_to_sign(s.amz_date, s.scope, self.previous, self._hash.hexdigest())
        )
        if not sigv4.signatures_match(expected, self._chunk_sig.lower()):
            raise S3Error(S3Code.SignatureDoesNotMatch, "The chunk signature does not match.")
        self.previous = expected

    def _trailer_line(self, line: str) -> None:
        if line == "":
            self._end_trailer()
            return
        if not self.trailer_expected:
            # Signed without a trailer, a body ends at its final chunk: a trailer after it is signed by
            # nobody. Unsigned, a trailer is announced by x-amz-trailer, as every SDK does.
            raise _bad_trailer("a trailer in a body that announced none")
        if sum(map(len, self._trailer_lines)) + len(line) > MAX_TRAILER:
            raise _bad("trailer too large")
        self._trailer_lines.append(line)

    def _end_trailer(self) -> None:
        signature = None
        for line in self._trailer_lines:
            name, sep, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if not sep or not name:
                raise _bad_trailer(f"malformed trailer line {line[:40]!r}")
            if name == "x-amz-trailer-signature":
                signature = value
            else:
                self.trailers[name] = value
        if self.signing is not None and self.trailer_expected:
            self._verify_trailer(signature)
        self._state = DONE

    def _verify_trailer(self, signature: str | None) -> None:
        assert self.signing is not None
        if signature is None:
            raise S3Error(S3Code.SignatureDoesNotMatch, "trailer signature missing")
        s = self.signing
        text = "".join(f"{k}:{v}\n" for k, v in self.trailers.items())
        expected = sigv4.sign(s.key, sigv4.trailer_string_to_sign(s.amz_date, s.scope, self.previous, text))
        if not sigv4.signatures_match(expected, signature.lower()):
            raise S3Error(S3Code.SignatureDoesNotMatch, "The trailer signature does not match.")
