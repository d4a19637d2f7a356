"""Request bodies as S3 sends them: plain, hashed, or aws-chunked with signatures and trailers.

`Payload` yields the decoded bytes and, once the body has ended, has verified whatever the payload
mode promised (the SHA-256 of the body, every chunk signature, the trailer signature) and knows the
trailing headers. Errors surface as S3Error before the caller commits anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from .auth import Identity
from .chunked import ChunkedDecoder
from .errors import S3Code, S3Error

STREAMING = {
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD": (True, False),
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER": (True, True),
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER": (False, True),
}
BATCH = 1024 * 1024  # hand the writer at least this much at a time (one thread hop per MiB)
INLINE_HASH_MAX = 64 * 1024


class Payload:
    """The body of a request as the engine reads it: decoded from aws-chunked when sent so, checked
    against its declared length and, once it has ended, its signatures and checksums."""

    def __init__(self, request: Request, identity: Identity, headers: dict[str, str]):
        self.request = request
        self.mode = identity.payload
        self.trailers: dict[str, str] = {}
        self.received = 0
        self._decoder: ChunkedDecoder | None = None
        if self.mode in STREAMING:
            signed, trailer = STREAMING[self.mode]
            if signed and identity.signing is None:
                raise S3Error(S3Code.InvalidRequest, "streaming signatures need header authentication")
            self._decoder = ChunkedDecoder(identity.signing if signed else None, trailer)
        elif "aws-chunked" in headers.get("content-encoding", "") and "x-amz-decoded-content-length" in headers:
            self._decoder = ChunkedDecoder(None, "x-amz-trailer" in headers)
        self.declared = self._declared_size(headers)

    def require_length(self) -> None:
        """An object's body says how long it is (Content-Length, or x-amz-decoded-content-length for
        aws-chunked) or comes chunked; 411 MissingContentLength otherwise, as AWS answers."""
        chunked = "chunked" in self.request.headers.get("transfer-encoding", "").lower()
        if self.declared is None and not chunked:
            raise S3Error(S3Code.MissingContentLength, "You must provide the Content-Length HTTP header.")

    def _declared_size(self, headers: dict[str, str]) -> int | None:
        name = "x-amz-decoded-content-length" if self._decoder else "content-length"
        value = headers.get(name)
        if value is None:
            if self._decoder:
                raise S3Error(S3Code.MissingContentLength, "aws-chunked bodies need x-amz-decoded-content-length")
            return None
        try:
            size = int(value)
        except ValueError as e:
            raise S3Error(S3Code.InvalidArgument, f"{name} is not a number") from e
        if size < 0:
            raise S3Error(S3Code.InvalidArgument, f"{name} is negative")
        return size

    async def pieces(self) -> AsyncIterator[bytes]:
        """Decoded body in pieces of about BATCH bytes; verified once the last piece is out."""
        sha = hashlib.sha256() if len(self.mode) == 64 else None
        batch: list[bytes] = []
        size = 0
        async for data in self._raw():
            batch.append(data)
            size += len(data)
            if size >= BATCH:
                yield await self._hashed(sha, b"".join(batch))
                batch, size = [], 0
        if batch:
            yield await self._hashed(sha, b"".join(batch))
        if sha is not None and sha.hexdigest() != self.mode:
            raise S3Error(
                S3Code.XAmzContentSHA256Mismatch,
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )

    @staticmethod
    async def _hashed(sha: hashlib._Hash | None, piece: bytes) -> bytes:
        """The body's SHA-256 (a signed payload): small pieces on the loop (~30 µs for 64 KiB), big
        ones on a worker thread, where they would stall the event loop."""
        if sha is not None:
            if len(piece) <= INLINE_HASH_MAX:
                sha.update(piece)
            else:
                await run_in_threadpool(sha.update, piece)
        return piece

    async def _raw(self) -> AsyncIterator[bytes]:
        try:
            async for data in self.request.stream():
                if self._decoder is None:
                    self._count(data)
                    yield data
                    continue
                for piece in self._decoder.feed(data):
                    self._count(piece)
                    yield piece
        except ClientDisconnect as e:
            raise S3Error(S3Code.IncompleteBody, "The client closed the connection before the body ended.") from e
        if self._decoder is not None:
            self.trailers = self._decoder.finish()
        if self.declared is not None and self.received != self.declared:
            raise S3Error(
                S3Code.IncompleteBody,
                "You did not provide the number of bytes specified by the Content-Length HTTP header.",
            )

    def _count(self, data: bytes) -> None:
        self.received += len(data)
        if self.declared is not None and self.received > self.declared:
            raise S3Error(S3Code.IncompleteBody, "The body is longer than its declared length.")

    async def read_all(self, limit: int) -> bytes:
        """A small body (XML documents), at most `limit` bytes."""
        if self.declared is not None and self.declared > limit:
            raise S3Error(S3Code.MaxMessageLengthExceeded, "Your request was too big.")
        out = bytearray()
        async for piece in self.pieces():
            out += piece
            if len(out) > limit:
                raise S3Error(S3Code.MaxMessageLengthExceeded, "Your request was too big.")
        return bytes(out)
