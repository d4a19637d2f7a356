"""Checksums of completed multipart uploads: FULL_OBJECT (combined CRCs) and COMPOSITE ("-N")."""

from __future__ import annotations

import base64
import hashlib
import random

import pytest
from awscrt import checksums as crt
from botocore.client import BaseClient

PART = 5 * 1024 * 1024
DATA = random.Random(8).randbytes(2 * PART + 12345)  # fixed: the parameters name its CRCs, and xdist workers must agree


def _upload(s3: BaseClient, bucket: str, key: str, alg: str, kind: str | None) -> dict[str, str]:
    extra = {"ChecksumType": kind} if kind else {}
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm=alg, **extra)
    parts = []
    for n, start in enumerate(range(0, len(DATA), PART), 1):
        r = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=up["UploadId"],
            PartNumber=n,
            Body=DATA[start : start + PART],
            ChecksumAlgorithm=alg,
        )
        parts.append({"PartNumber": n, "ETag": r["ETag"], f"Checksum{alg}": r[f"Checksum{alg}"]})
    return s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": parts}, **extra
    )


def _b64_int(value: int, width: int) -> str:
    return base64.b64encode(value.to_bytes(width, "big")).decode()


@pytest.mark.parametrize(
    "alg, kind, whole",
    [
        ("CRC32", "FULL_OBJECT", _b64_int(crt.crc32(DATA), 4)),
        ("CRC32C", "FULL_OBJECT", _b64_int(crt.crc32c(DATA), 4)),
        ("CRC64NVME", None, _b64_int(crt.crc64nvme(DATA), 8)),  # CRC64NVME is always FULL_OBJECT
    ],
)
def test_full_object_checksum_is_the_crc_of_the_whole_object(
    s3_http: BaseClient, http_bucket: str, alg: str, kind: str | None, whole: str
) -> None:
    done = _upload(s3_http, http_bucket, alg, alg, kind)
    assert (done[f"Checksum{alg}"], done["ChecksumType"]) == (whole, "FULL_OBJECT")
    head = s3_http.head_object(Bucket=http_bucket, Key=alg, ChecksumMode="ENABLED")
    assert (head[f"Checksum{alg}"], head["ChecksumType"]) == (whole, "FULL_OBJECT")


@pytest.mark.parametrize("alg", ["CRC32", "SHA256", "SHA1"])
def test_composite_checksum_is_the_checksum_of_part_checksums(s3_http: BaseClient, http_bucket: str, alg: str) -> None:
    done = _upload(s3_http, http_bucket, f"c-{alg}", alg, None)
    pieces = [DATA[i : i + PART] for i in range(0, len(DATA), PART)]
    if alg == "CRC32":
        raw = b"".join(crt.crc32(p).to_bytes(4, "big") for p in pieces)
        expected = _b64_int(crt.crc32(raw), 4)
    else:
        h = getattr(hashlib, alg.lower())
        expected = base64.b64encode(h(b"".join(h(p).digest() for p in pieces)).digest()).decode()
    assert done[f"Checksum{alg}"] == f"{expected}-3"
    assert done["ChecksumType"] == "COMPOSITE"
    assert s3_http.get_object(Bucket=http_bucket, Key=f"c-{alg}")["Body"].read() == DATA
