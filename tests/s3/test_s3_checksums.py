"""Checksums through boto3: every algorithm S3 has, Content-MD5, bad digests, the CRC64NVME default,
and proof that boto3 over https really sends aws-chunked bodies with a checksum trailer.

https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Any

import pytest
from awscrt import checksums as crt
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import Endpoint, failure, unique_bucket_name

ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
BODY = b"The quick brown fox jumps over the lazy dog\n" * 300


def b64_int(value: int, width: int) -> str:
    return base64.b64encode(value.to_bytes(width, "big")).decode()


def expected(algorithm: str, data: bytes) -> str:
    if algorithm == "CRC32":
        return b64_int(zlib.crc32(data), 4)
    if algorithm == "CRC32C":
        return b64_int(crt.crc32c(data), 4)
    if algorithm == "CRC64NVME":
        return b64_int(crt.crc64nvme(data), 8)
    return base64.b64encode(hashlib.new(algorithm.lower(), data).digest()).decode()


def field(algorithm: str) -> str:
    """boto3's parameter and response field: ChecksumCRC32, ChecksumCRC64NVME, ..."""
    return "Checksum" + algorithm


def record_headers(client: BaseClient, operation: str) -> list[dict[str, str]]:
    """The headers of each `operation` request the client sends, as sent (a botocore event hook)."""
    sent: list[dict[str, str]] = []

    def hook(request: Any, **_: Any) -> None:
        sent.append({k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})

    client.meta.events.register(f"before-send.s3.{operation}", hook)
    return sent


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_algorithm_is_verified_stored_and_returned(s3: BaseClient, bucket: str, algorithm: str) -> None:
    value = expected(algorithm, BODY)
    put = s3.put_object(Bucket=bucket, Key="k", Body=BODY, ChecksumAlgorithm=algorithm)  # type: ignore[arg-type]
    assert put[field(algorithm)] == value  # type: ignore[literal-required]
    for result in (
        s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED"),
        s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED"),  # botocore validates the body against it
    ):
        assert result[field(algorithm)] == value  # type: ignore[literal-required]
        assert result["ChecksumType"] == "FULL_OBJECT"
    assert s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")["Body"].read() == BODY
    plain = s3.head_object(Bucket=bucket, Key="k")
    assert not any(k.startswith("x-amz-checksum") for k in plain["ResponseMetadata"]["HTTPHeaders"])
    ranged = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED", Range="bytes=0-9")
    assert not any(k.startswith("x-amz-checksum") for k in ranged["ResponseMetadata"]["HTTPHeaders"])
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"][0]
    assert listed["ChecksumAlgorithm"] == [algorithm]


# The standard check values: each algorithm over the ASCII digits "123456789".
CHECK_VALUES = {
    "CRC32": b64_int(0xCBF43926, 4),
    "CRC32C": b64_int(0xE3069283, 4),
    "CRC64NVME": b64_int(0xAE8B14860A799888, 8),
    "SHA1": base64.b64encode(bytes.fromhex("f7c3bc1d808e04732adf679965ccc34ca7ae3441")).decode(),
    "SHA256": base64.b64encode(
        bytes.fromhex("15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225")
    ).decode(),
}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_checksum_given_by_the_client_matches_the_standard_check_value(endpoint: Endpoint, algorithm: str) -> None:
    s3 = endpoint.client()
    name = unique_bucket_name()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="digits", Body=b"123456789", **{field(algorithm): CHECK_VALUES[algorithm]})  # type: ignore[arg-type]
    head = s3.head_object(Bucket=name, Key="digits", ChecksumMode="ENABLED")
    assert head[field(algorithm)] == CHECK_VALUES[algorithm]  # type: ignore[literal-required]


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA256"])
def test_wrong_checksum_header_is_bad_digest(s3: BaseClient, bucket: str, algorithm: str) -> None:
    wrong = expected(algorithm, b"something else")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=BODY, **{field(algorithm): wrong})  # type: ignore[arg-type]
    assert failure(e) == (400, "BadDigest")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_wrong_content_md5_is_bad_digest(s3: BaseClient, bucket: str) -> None:
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=BODY, ContentMD5=wrong)
    assert failure(e) == (400, "BadDigest")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    right = base64.b64encode(hashlib.md5(BODY).digest()).decode()
    s3.put_object(Bucket=bucket, Key="k", Body=BODY, ContentMD5=right)


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_malformed_content_md5_is_invalid_digest(s3_http: BaseClient, http_bucket: str, value: str) -> None:
    with pytest.raises(ClientError) as e:
        s3_http.put_object(Bucket=http_bucket, Key="k", Body=BODY, ContentMD5=value)
    assert failure(e) == (400, "InvalidDigest")


def test_crc64nvme_is_computed_when_the_client_sends_no_checksum(endpoint: Endpoint) -> None:
    s3 = endpoint.client(checksums="when_required")
    sent = record_headers(s3, "PutObject")
    name = unique_bucket_name()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=BODY)
    assert not [h for h in sent[0] if h.startswith("x-amz-checksum") or h == "x-amz-trailer"]
    head = s3.head_object(Bucket=name, Key="k", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == expected("CRC64NVME", BODY)
    assert head["ChecksumType"] == "FULL_OBJECT"


def test_https_put_takes_the_aws_chunked_trailer_path(https_endpoint: Endpoint) -> None:
    """boto3's defaults over https: an unsigned aws-chunked body with its CRC32 in a trailer."""
    s3 = https_endpoint.client(checksums="when_supported")
    sent = record_headers(s3, "PutObject")
    name = unique_bucket_name()
    s3.create_bucket(Bucket=name)
    put = s3.put_object(Bucket=name, Key="k", Body=BODY, ContentEncoding="gzip")
    headers = sent[0]
    assert headers["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert headers["content-encoding"].split(",")[-1].strip() == "aws-chunked"
    assert headers["x-amz-trailer"] == "x-amz-checksum-crc32"
    assert headers["x-amz-decoded-content-length"] == str(len(BODY))
    assert "x-amz-checksum-crc32" not in headers
    assert put["ChecksumCRC32"] == expected("CRC32", BODY)
    got = s3.get_object(Bucket=name, Key="k", ChecksumMode="ENABLED")
    assert got["Body"].read() == BODY  # decoded, not the chunk framing
    assert got["ContentLength"] == len(BODY)
    assert got["ContentEncoding"] == "gzip"  # aws-chunked is the transfer's, not the object's
    assert got["ChecksumCRC32"] == expected("CRC32", BODY)


@pytest.mark.parametrize("algorithm", ["CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_https_trailer_with_other_algorithms(https_endpoint: Endpoint, algorithm: str) -> None:
    s3 = https_endpoint.client()
    sent = record_headers(s3, "PutObject")
    name = unique_bucket_name()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=BODY, ChecksumAlgorithm=algorithm)  # type: ignore[arg-type]
    assert sent[0]["x-amz-trailer"] == f"x-amz-checksum-{algorithm.lower()}"
    head = s3.head_object(Bucket=name, Key="k", ChecksumMode="ENABLED")
    assert head[field(algorithm)] == expected(algorithm, BODY)  # type: ignore[literal-required]


def test_http_put_sends_checksum_header_and_signed_payload(http_endpoint: Endpoint) -> None:
    """Over plain http boto3 signs the payload's SHA-256 and sends the CRC32 as a header."""
    s3 = http_endpoint.client(checksums="when_supported")
    sent = record_headers(s3, "PutObject")
    name = unique_bucket_name()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=BODY)
    assert sent[0]["x-amz-content-sha256"] == hashlib.sha256(BODY).hexdigest()
    assert sent[0]["x-amz-checksum-crc32"] == expected("CRC32", BODY)
    assert "aws-chunked" not in sent[0].get("content-encoding", "")
    assert s3.head_object(Bucket=name, Key="k", ChecksumMode="ENABLED")["ChecksumCRC32"] == expected("CRC32", BODY)


def test_delete_objects_integrity_by_checksum_or_md5(endpoint: Endpoint, checksum_calculation: str) -> None:
    """New SDKs send a CRC (header or trailer) instead of Content-MD5; both are accepted."""
    s3 = endpoint.client(checksums=checksum_calculation)
    sent = record_headers(s3, "DeleteObjects")
    name = unique_bucket_name()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    result = s3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "k"}]})
    assert [d["Key"] for d in result["Deleted"]] == ["k"]
    assert (
        "content-md5" in sent[0] or any(h.startswith("x-amz-checksum-") for h in sent[0]) or "x-amz-trailer" in sent[0]
    )
