"""Per-user limits through S3: the quota (403 QuotaExceeded, pyblob's own code) and the per-object
size limit (EntityTooLarge), enforced before anything is kept, with usage left as it was.

carol has `--quota 1MiB`, dave `--max-object-size 64KiB` (see s3_server.USERS).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError
from s3_server import Endpoint, failure, unique_bucket_name
from s3_signing import error_of, send

MiB = 1024 * 1024


def bucket_of(endpoint: Endpoint, user: str) -> str:
    name = unique_bucket_name(user)
    endpoint.client(endpoint.users[user]).create_bucket(Bucket=name)
    return name


def test_quota_refuses_an_upload_that_does_not_fit(endpoint: Endpoint, checksum_calculation: str) -> None:
    carol = endpoint.client(endpoint.users["carol"], checksum_calculation)
    bucket = bucket_of(endpoint, "carol")
    before = endpoint.usage("carol")
    with pytest.raises(ClientError) as e:
        carol.put_object(Bucket=bucket, Key="big", Body=b"q" * (2 * MiB))
    assert failure(e) == (403, "QuotaExceeded")
    assert endpoint.usage("carol") == before
    assert "Contents" not in carol.list_objects_v2(Bucket=bucket)

    carol.put_object(Bucket=bucket, Key="small", Body=b"s" * 1000)
    assert endpoint.usage("carol") == (before[0] + 1000, before[1] + 1)
    carol.delete_object(Bucket=bucket, Key="small")
    assert endpoint.usage("carol") == before


def test_quota_while_streaming_a_body_of_unknown_length(http_endpoint: Endpoint) -> None:
    """Transfer-Encoding: chunked, no length up front: refused once the body passes the quota."""
    bucket = bucket_of(http_endpoint, "carol")
    before = http_endpoint.usage("carol")

    def body() -> Iterator[bytes]:
        for _ in range(32):
            yield b"z" * (64 * 1024)

    response = send(
        http_endpoint,
        "PUT",
        f"/{bucket}/streamed",
        body=body(),
        payload="UNSIGNED-PAYLOAD",
        creds=http_endpoint.users["carol"],
    )
    assert (response.status_code, error_of(response)["Code"]) == (403, "QuotaExceeded")
    assert http_endpoint.usage("carol") == before


def test_per_object_limit(endpoint: Endpoint, checksum_calculation: str) -> None:
    dave = endpoint.client(endpoint.users["dave"], checksum_calculation)
    bucket = bucket_of(endpoint, "dave")
    before = endpoint.usage("dave")
    with pytest.raises(ClientError) as e:
        dave.put_object(Bucket=bucket, Key="big", Body=b"e" * (64 * 1024 + 1))
    assert failure(e) == (400, "EntityTooLarge")
    assert endpoint.usage("dave") == before
    dave.put_object(Bucket=bucket, Key="fits", Body=b"e" * (64 * 1024))
    assert dave.head_object(Bucket=bucket, Key="fits")["ContentLength"] == 64 * 1024


def test_per_object_limit_while_streaming(http_endpoint: Endpoint) -> None:
    bucket = bucket_of(http_endpoint, "dave")

    def body() -> Iterator[bytes]:
        for _ in range(4):
            yield b"e" * (32 * 1024)

    response = send(
        http_endpoint,
        "PUT",
        f"/{bucket}/streamed",
        body=body(),
        payload="UNSIGNED-PAYLOAD",
        creds=http_endpoint.users["dave"],
    )
    assert (response.status_code, error_of(response)["Code"]) == (400, "EntityTooLarge")
    assert "Contents" not in http_endpoint.client(http_endpoint.users["dave"]).list_objects_v2(Bucket=bucket)


def test_concurrent_uploads_fill_the_quota_exactly(http_endpoint: Endpoint) -> None:
    """40 parallel PUTs against carol's 1 MiB: exactly as many as fit succeed, the rest are refused
    before their bodies are kept (quota reservations), and usage adds up to the byte."""
    from concurrent.futures import ThreadPoolExecutor

    carol = http_endpoint.client(http_endpoint.users["carol"])
    bucket = bucket_of(http_endpoint, "carol")
    used, count = http_endpoint.usage("carol")
    size = 100 * 1024
    fits = (MiB - used) // size

    def put(i: int) -> int:
        try:
            carol.put_object(Bucket=bucket, Key=f"k{i:02}", Body=bytes([i]) * size)
            return 200
        except ClientError as e:
            meta, error = e.response["ResponseMetadata"], e.response["Error"]
            assert (meta["HTTPStatusCode"], error["Code"]) == (403, "QuotaExceeded")
            return 403

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(put, range(40)))
    assert statuses.count(200) == fits
    assert http_endpoint.usage("carol") == (used + fits * size, count + fits)
    listed = carol.list_objects_v2(Bucket=bucket)["Contents"]
    assert len(listed) == fits
    for obj in listed:
        carol.delete_object(Bucket=bucket, Key=obj["Key"])
    carol.delete_bucket(Bucket=bucket)
