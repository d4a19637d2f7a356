"""Digests computed while a stream passes through: MD5 (the S3 ETag), BLAKE3 and S3 checksums.

The CRCs come from awscrt (the AWS SDKs' own C implementation), the SHAs from hashlib; every one of
them releases the GIL on large buffers, so concurrent uploads hash in parallel.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import blake3
from awscrt import checksums as crt

CHECKSUM_ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")


class _Digest(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...
    def digest(self) -> bytes: ...


class _Crc:
    """A running CRC with the hashlib interface; `width` is the CRC's size in bytes."""

    def __init__(self, fn: Callable[[bytes | memoryview, int], int], width: int):
        self._fn, self._width, self._value = fn, width, 0

    def update(self, data: bytes | memoryview) -> None:
        self._value = self._fn(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._width, "big")


def new_checksum(algorithm: str) -> _Digest:
    """A running checksum for one of S3's algorithms (names as in `x-amz-checksum-<name>`)."""
    name = algorithm.upper()
    if name == "CRC32":
        return _Crc(crt.crc32, 4)
    if name == "CRC32C":
        return _Crc(crt.crc32c, 4)
    if name == "CRC64NVME":
        return _Crc(crt.crc64nvme, 8)
    if name == "SHA1":
        return hashlib.sha1()
    if name == "SHA256":
        return hashlib.sha256()
    raise ValueError(f"unknown checksum algorithm {algorithm!r}")


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


_COMBINE = {"CRC32": (crt.combine_crc32, 4), "CRC32C": (crt.combine_crc32c, 4), "CRC64NVME": (crt.combine_crc64nvme, 8)}


def full_object_checksum(algorithm: str, parts: list[tuple[str, int]]) -> str | None:
    """The CRC of the whole object from its parts' (base64 CRC, length), without reading data.

    S3's FULL_OBJECT multipart checksum; None for algorithms that cannot be combined (SHA*).
    """
    if algorithm not in _COMBINE:
        return None
    combine, width = _COMBINE[algorithm]
    value = 0
    for i, (part_b64, length) in enumerate(parts):
        crc = int.from_bytes(base64.b64decode(part_b64), "big")
        value = crc if i == 0 else combine(value, crc, length)
    return b64(value.to_bytes(width, "big"))


def composite_checksum(algorithm: str, part_values: list[str]) -> str:
    """S3's COMPOSITE multipart checksum: the checksum of the parts' raw checksums, then "-N"."""
    c = new_checksum(algorithm)
    for value in part_values:
        c.update(base64.b64decode(value))
    return f"{b64(c.digest())}-{len(part_values)}"


class _Lane:
    """Runs one digest's updates on a thread of its own, in order, one piece ahead at most.

    MD5 is the slowest digest of an upload (about 700 MB/s) and releases the GIL, so it overlaps
    with cutting, BLAKE3 and disk writes on the caller's thread. Small streams never start a thread.
    """

    THRESHOLD = 256 * 1024

    def __init__(self, digest: Any):
        self.digest = digest
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None

    def update(self, data: bytes) -> None:
        if self._pool is None and len(data) < self.THRESHOLD:
            self.digest.update(data)
            return
        self._pool = self._pool or ThreadPoolExecutor(1, thread_name_prefix="md5")
        self.wait()
        self._pending = self._pool.submit(self.digest.update, data)

    def wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def close(self) -> None:
        self.wait()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class StreamHasher:
    """MD5 + BLAKE3 of the whole stream plus any S3 checksums asked for."""

    def __init__(self, algorithms: Iterable[str] = ()):
        self._md5 = hashlib.md5()
        self._md5_lane = _Lane(self._md5)
        self.blake3 = blake3.blake3()
        self.checksums = {a.upper(): new_checksum(a) for a in algorithms}
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        piece = data if isinstance(data, bytes) else bytes(data)  # the lane must see it unchanged
        self._md5_lane.update(piece)
        self.blake3.update(piece)
        for c in self.checksums.values():
            c.update(piece)
        self.size += len(piece)

    def md5_hex(self) -> str:
        """The MD5 of everything so far (waits for the MD5 thread); ends the background lane."""
        self._md5_lane.close()
        return self._md5.hexdigest()

    def checksum_values(self) -> dict[str, str]:
        """Base64 of each checksum, as S3 puts them in `x-amz-checksum-*` headers."""
        return {name: b64(c.digest()) for name, c in self.checksums.items()}


def chunk_digest(data: bytes | memoryview) -> bytes:
    """The address of a chunk: its 32-byte BLAKE3 digest."""
    return blake3.blake3(data).digest()
