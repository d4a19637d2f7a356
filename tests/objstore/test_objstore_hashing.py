"""Stream digests (`objstore.hashing`) against published check values."""

from __future__ import annotations

import base64
import hashlib
import zlib

import blake3
import pytest

from objstore.hashing import StreamHasher, chunk_digest, new_checksum

CHECK = b"123456789"  # the CRC catalogue's check input


@pytest.mark.parametrize(
    "algorithm, value",
    [
        ("CRC32", "cbf43926"),
        ("crc32c", "e3069283"),
        ("CRC64NVME", "ae8b14860a799888"),
        ("SHA1", hashlib.sha1(CHECK).hexdigest()),
        ("SHA256", hashlib.sha256(CHECK).hexdigest()),
    ],
)
def test_checksum_check_values(algorithm: str, value: str) -> None:
    c = new_checksum(algorithm)
    c.update(CHECK[:4])
    c.update(memoryview(CHECK)[4:])
    assert c.digest().hex() == value


def test_unknown_algorithm() -> None:
    with pytest.raises(ValueError):
        new_checksum("MD4")


def test_stream_hasher_in_pieces() -> None:
    data = bytes(range(256)) * 1000
    h = StreamHasher(["crc32", "sha256"])
    for i in range(0, len(data), 777):
        h.update(data[i : i + 777])
    assert h.size == len(data)
    assert h.md5_hex() == hashlib.md5(data).hexdigest()
    assert h.blake3.hexdigest() == blake3.blake3(data).hexdigest()
    assert h.checksum_values() == {
        "CRC32": base64.b64encode(new_crc32(data)).decode(),
        "SHA256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
    }
    assert chunk_digest(data) == blake3.blake3(data).digest() and len(chunk_digest(data)) == 32


def new_crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def test_md5_on_its_own_thread_sees_each_piece_as_it_was() -> None:
    """Large pieces are hashed on a background thread; a caller reusing its buffer must not race it."""
    buf = bytearray(b"a" * (1024 * 1024))
    h = StreamHasher()
    expected = hashlib.md5()
    for fill in b"abcdefgh":
        buf[:] = bytes([fill]) * len(buf)
        h.update(memoryview(buf))
        expected.update(bytes(buf))
    h.update(b"tail")  # a small piece after large ones stays in order
    expected.update(b"tail")
    assert h.md5_hex() == expected.hexdigest()
    assert h.md5_hex() == expected.hexdigest()  # idempotent once the lane is closed
    assert h.size == 8 * len(buf) + 4
