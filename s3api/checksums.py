"""Which checksums a request asks for, and verifying them (Content-MD5 and x-amz-checksum-*).

https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping

from objstore.hashing import CHECKSUM_ALGORITHMS, b64, new_checksum

from .errors import S3Code, S3Error

HEADER_PREFIX = "x-amz-checksum-"
NOT_VALUES = ("x-amz-checksum-mode", "x-amz-checksum-type", "x-amz-checksum-algorithm")  # headers named like checksums
DEFAULT_ALGORITHM = "CRC64NVME"  # what S3 computes when the client sends none


def _algorithm(name: str) -> str:
    alg = name.upper()
    if alg not in CHECKSUM_ALGORITHMS:
        raise S3Error(S3Code.InvalidRequest, f"Checksum algorithm {name!r} is not supported.")
    return alg


def requested(headers: Mapping[str, str]) -> list[str]:
    """Algorithms named by checksum headers, the trailer announcement and the SDK's hint."""
    algs = {_algorithm(k[len(HEADER_PREFIX) :]) for k in headers if k.startswith(HEADER_PREFIX) and k not in NOT_VALUES}
    for announced in headers.get("x-amz-trailer", "").split(","):
        if announced.strip().lower().startswith(HEADER_PREFIX):
            algs.add(_algorithm(announced.strip()[len(HEADER_PREFIX) :]))
    for hint in ("x-amz-sdk-checksum-algorithm", "x-amz-checksum-algorithm"):
        if hint in headers:
            algs.add(_algorithm(headers[hint]))
    return sorted(algs)


def with_default(algorithms: list[str]) -> list[str]:
    return algorithms or [DEFAULT_ALGORITHM]


def verify(headers: Mapping[str, str], trailers: Mapping[str, str], md5_hex: str, computed: Mapping[str, str]) -> None:
    """Content-MD5 and every x-amz-checksum-* value given (header or trailer) must match."""
    if "content-md5" in headers:
        try:
            given = base64.b64decode(headers["content-md5"], validate=True)
        except (binascii.Error, ValueError) as e:
            raise S3Error(S3Code.InvalidDigest, "The Content-MD5 you specified is not valid.") from e
        if len(given) != 16:
            raise S3Error(S3Code.InvalidDigest, "The Content-MD5 you specified is not valid.")
        if given.hex() != md5_hex:
            raise S3Error(S3Code.BadDigest, "The Content-MD5 you specified did not match what we received.")
    for source in (headers, trailers):
        for name, value in source.items():
            if not name.startswith(HEADER_PREFIX) or name in NOT_VALUES:
                continue
            alg = _algorithm(name[len(HEADER_PREFIX) :])
            if alg not in computed:
                raise S3Error(S3Code.InvalidRequest, f"Checksum {alg} was given but not announced.")
            if value.strip() != computed[alg]:
                raise S3Error(S3Code.BadDigest, f"The {alg} you specified did not match the calculated checksum.")


def given_values(
    headers: Mapping[str, str], trailers: Mapping[str, str], computed: Mapping[str, str]
) -> dict[str, str]:
    """The checksums to keep: those the client sent, or the default one we computed."""
    sent = {k[len(HEADER_PREFIX) :].upper() for k in (*headers, *trailers) if k.startswith(HEADER_PREFIX)}
    keep = {alg: v for alg, v in computed.items() if alg in sent}
    return keep or dict(computed)


def verify_small_body(headers: Mapping[str, str], trailers: Mapping[str, str], body: bytes) -> None:
    """Integrity of a small request body (DeleteObjects, XML configs)."""
    computed = {}
    for alg in requested(headers):
        c = new_checksum(alg)
        c.update(body)
        computed[alg] = b64(c.digest())
    verify(headers, trailers, hashlib.md5(body).hexdigest(), computed)
