"""Multipart uploads through boto3 against the real server, beyond the basic transfer: a retried Complete, DeleteBucket
with uploads in progress, GetObject/HeadObject by part number, what a Complete request asserts
(checksums, checksum type, object size), parts refused before their bodies are kept, and
GetObjectAttributes of multipart objects.

https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html,
API_DeleteBucket.html, API_GetObject.html (partNumber), API_GetObjectAttributes.html,
https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html.
carol has `--quota 1MiB`, dave `--max-object-size 64KiB` (see s3_server.USERS).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import random
import socket
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import Endpoint, failure, unique_bucket_name
from s3_signing import error_of, send, sign

MiB = 1 << 20
PART = 5 * MiB  # S3's minimum size of every part but the last
TAIL = b"the last part may be small"


def data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed * 7919 + size).randbytes(size)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def crc32(body: bytes) -> str:
    return b64(zlib.crc32(body).to_bytes(4, "big"))


def sha256(body: bytes) -> str:
    return b64(hashlib.sha256(body).digest())


def multipart_etag(parts: list[bytes]) -> str:
    """S3's ETag of a multipart object, unquoted: MD5 of the parts' binary MD5s, then "-N"."""
    return f"{hashlib.md5(b''.join(hashlib.md5(p).digest() for p in parts)).hexdigest()}-{len(parts)}"


def upload(
    s3: BaseClient, bucket: str, key: str, parts: list[bytes], algorithm: str | None = None, **create: Any
) -> tuple[str, list[dict[str, Any]]]:
    """A new upload of `parts` (with `algorithm`'s checksums), not completed: its id and part list."""
    extra = {"ChecksumAlgorithm": algorithm} if algorithm else {}
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **extra, **create)["UploadId"]
    listed = []
    for number, body in enumerate(parts, start=1):
        done = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body, **extra)
        entry = {"PartNumber": number, "ETag": done["ETag"]}
        if algorithm:
            entry[f"Checksum{algorithm}"] = done[f"Checksum{algorithm}"]
        listed.append(entry)
    return upload_id, listed


def complete(
    s3: BaseClient, bucket: str, key: str, upload_id: str, parts: list[dict[str, Any]], **kwargs: Any
) -> dict[str, Any]:
    return s3.complete_multipart_upload(  # type: ignore[no-any-return]
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, **kwargs
    )


def refused(call: Callable[..., object], *args: Any, **kwargs: Any) -> tuple[int, str, str]:
    """(status, code, message) of a call that must fail."""
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    return (*failure(e), str(e.value.response["Error"].get("Message", "")))


# a retried Complete ------------------------------------------------------------------------------
@pytest.mark.parametrize("versioning", [None, "Enabled"])
def test_a_retried_complete_gets_the_same_answer(s3_http: BaseClient, http_bucket: str, versioning: str | None) -> None:
    """Clients retry Complete after a timeout: the same part list gets the first answer again, and no
    second object (or version); another part list for the completed upload is NoSuchUpload."""
    if versioning:
        s3_http.put_bucket_versioning(Bucket=http_bucket, VersioningConfiguration={"Status": versioning})
    upload_id, parts = upload(s3_http, http_bucket, "k", [b"only part"], "SHA256")
    first = complete(s3_http, http_bucket, "k", upload_id, parts)
    again = complete(s3_http, http_bucket, "k", upload_id, parts)
    fields = ("ETag", "VersionId", "ChecksumSHA256", "ChecksumType", "Key")
    assert [again.get(f) for f in fields] == [first.get(f) for f in fields]
    assert first["ETag"] == f'"{multipart_etag([b"only part"])}"'
    assert first["ChecksumSHA256"] == f"{sha256(hashlib.sha256(b'only part').digest())}-1"
    assert ("VersionId" in first) == bool(versioning)
    assert len(s3_http.list_object_versions(Bucket=http_bucket)["Versions"]) == 1

    other_etag = [{**parts[0], "ETag": f'"{hashlib.md5(b"other").hexdigest()}"'}]
    for key, listed in (("k", other_etag), ("k", [*parts, {**parts[0], "PartNumber": 2}]), ("elsewhere", parts)):
        assert refused(complete, s3_http, http_bucket, key, upload_id, listed)[:2] == (404, "NoSuchUpload")
    assert s3_http.get_object(Bucket=http_bucket, Key="k")["Body"].read() == b"only part"


def test_a_retried_complete_into_a_recreated_bucket_is_no_such_upload(s3_http: BaseClient) -> None:
    """The completion belongs to the bucket it went into, not to any later bucket of that name."""
    name = unique_bucket_name()
    s3_http.create_bucket(Bucket=name)
    upload_id, parts = upload(s3_http, name, "k", [b"only part"])
    complete(s3_http, name, "k", upload_id, parts)
    s3_http.delete_object(Bucket=name, Key="k")
    s3_http.delete_bucket(Bucket=name)
    s3_http.create_bucket(Bucket=name)
    assert refused(complete, s3_http, name, "k", upload_id, parts)[:2] == (404, "NoSuchUpload")
    assert "Contents" not in s3_http.list_objects_v2(Bucket=name)


# DeleteBucket with uploads in progress ------------------------------------------------------------
def test_delete_bucket_aborts_the_uploads_in_progress(http_endpoint: Endpoint, s3_http: BaseClient) -> None:
    name = unique_bucket_name()
    s3_http.create_bucket(Bucket=name)
    before = http_endpoint.usage("admin")
    ids = [upload(s3_http, name, key, [data(50_000, n)])[0] for n, key in enumerate(("a", "b/c"))]
    assert http_endpoint.usage("admin") == (before[0] + 100_000, before[1])

    s3_http.delete_bucket(Bucket=name)  # no object: empty, whatever uploads it has
    assert http_endpoint.usage("admin") == before
    s3_http.create_bucket(Bucket=name)
    assert s3_http.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    for upload_id in ids:
        assert refused(s3_http.list_parts, Bucket=name, Key="a", UploadId=upload_id)[:2] == (404, "NoSuchUpload")
        retry = refused(s3_http.upload_part, Bucket=name, Key="a", UploadId=upload_id, PartNumber=2, Body=b"x")
        assert retry[:2] == (404, "NoSuchUpload")


def test_a_bucket_with_objects_keeps_its_uploads(s3_http: BaseClient, http_bucket: str) -> None:
    s3_http.put_object(Bucket=http_bucket, Key="object", Body=b"x")
    upload_id, _ = upload(s3_http, http_bucket, "k", [b"part"])
    assert refused(s3_http.delete_bucket, Bucket=http_bucket)[:2] == (409, "BucketNotEmpty")
    assert [u["UploadId"] for u in s3_http.list_multipart_uploads(Bucket=http_bucket)["Uploads"]] == [upload_id]
    assert len(s3_http.list_parts(Bucket=http_bucket, Key="k", UploadId=upload_id)["Parts"]) == 1


# GetObject / HeadObject by part number ---------------------------------------------------------------
@pytest.fixture
def two_part_object(s3_http: BaseClient, http_bucket: str) -> list[bytes]:
    """ "mp" in the http bucket: a 5 MiB part and a small one."""
    parts = [data(PART, 1), TAIL]
    upload_id, listed = upload(s3_http, http_bucket, "mp", parts)
    complete(s3_http, http_bucket, "mp", upload_id, listed)
    return parts


def test_get_and_head_by_part_number(s3_http: BaseClient, http_bucket: str, two_part_object: list[bytes]) -> None:
    total = sum(map(len, two_part_object))
    offsets = [0, len(two_part_object[0])]
    for number, body in enumerate(two_part_object, start=1):
        first, last = offsets[number - 1], offsets[number - 1] + len(body) - 1
        got = s3_http.get_object(Bucket=http_bucket, Key="mp", PartNumber=number)
        head = s3_http.head_object(Bucket=http_bucket, Key="mp", PartNumber=number)
        for result in (got, head):
            assert result["ResponseMetadata"]["HTTPStatusCode"] == 206
            assert (result["ContentLength"], result["ContentRange"]) == (len(body), f"bytes {first}-{last}/{total}")
            assert (result["PartsCount"], result["ETag"]) == (2, f'"{multipart_etag(two_part_object)}"')
        assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(body).digest()
    plain = s3_http.head_object(Bucket=http_bucket, Key="mp")
    assert (plain["ContentLength"], "PartsCount" in plain, "ContentRange" in plain) == (total, False, False)


def test_a_part_read_with_checksum_mode_gets_the_part_s_checksum(s3_http: BaseClient, http_bucket: str) -> None:
    """boto3 verifies what it reads against the checksum it is sent: for a part of a COMPOSITE
    object that is the part's own checksum; a whole read gets the object's (with its "-N")."""
    parts = [data(PART, 3), TAIL]
    upload_id, listed = upload(s3_http, http_bucket, "mpc", parts, "SHA256")
    complete(s3_http, http_bucket, "mpc", upload_id, listed)
    for number, body in enumerate(parts, start=1):
        got = s3_http.get_object(Bucket=http_bucket, Key="mpc", PartNumber=number, ChecksumMode="ENABLED")
        assert got["ChecksumSHA256"] == sha256(body)
        assert got["Body"].read() == body  # botocore checked it against that checksum too
    whole = s3_http.head_object(Bucket=http_bucket, Key="mpc", ChecksumMode="ENABLED")
    assert whole["ChecksumSHA256"].endswith("-2")


def test_a_part_number_past_the_last_is_416(
    s3_http: BaseClient, http_bucket: str, two_part_object: list[bytes]
) -> None:
    assert refused(s3_http.get_object, Bucket=http_bucket, Key="mp", PartNumber=3)[:2] == (416, "InvalidPartNumber")
    assert refused(s3_http.head_object, Bucket=http_bucket, Key="mp", PartNumber=3)[0] == 416


def test_part_one_of_a_single_put_object_is_all_of_it(s3_http: BaseClient, http_bucket: str) -> None:
    s3_http.put_object(Bucket=http_bucket, Key="single", Body=b"one piece")
    by_part = {"Bucket": http_bucket, "Key": "single", "PartNumber": 1}
    for result in (s3_http.get_object(**by_part), s3_http.head_object(**by_part)):
        assert result["ResponseMetadata"]["HTTPStatusCode"] == 206  # a range over all of it, as AWS answers
        assert (result["ContentLength"], "PartsCount" in result, result["ContentRange"]) == (9, False, "bytes 0-8/9")
    assert s3_http.get_object(Bucket=http_bucket, Key="single", PartNumber=1)["Body"].read() == b"one piece"
    assert refused(s3_http.get_object, Bucket=http_bucket, Key="single", PartNumber=2)[:2] == (416, "InvalidPartNumber")


def test_part_number_and_range_together_are_refused(s3_http: BaseClient, http_bucket: str) -> None:
    s3_http.put_object(Bucket=http_bucket, Key="single", Body=b"one piece")
    both = refused(s3_http.get_object, Bucket=http_bucket, Key="single", PartNumber=1, Range="bytes=0-1")
    assert both[:2] == (400, "InvalidRequest")


# what a Complete request asserts -------------------------------------------------------------------
BODY = [b"checksummed part"]
WRONG = b"not what was uploaded"


@pytest.mark.parametrize(
    "algorithm, kind, spoil, expected",
    [
        (
            "CRC32",
            "FULL_OBJECT",
            lambda parts: {"ChecksumCRC32": crc32(WRONG), "ChecksumType": "FULL_OBJECT"},
            "BadDigest",
        ),
        ("CRC32", "FULL_OBJECT", lambda parts: {"parts": [{**parts[0], "ChecksumCRC32": crc32(WRONG)}]}, "InvalidPart"),
        ("SHA256", None, lambda parts: {"parts": [{**parts[0], "ChecksumSHA256": sha256(WRONG)}]}, "InvalidPart"),
        ("SHA256", None, lambda parts: {"ChecksumType": "FULL_OBJECT"}, "InvalidRequest"),
        ("CRC32", "FULL_OBJECT", lambda parts: {"ChecksumType": "COMPOSITE"}, "InvalidRequest"),
        ("SHA256", None, lambda parts: {"parts": [{"PartNumber": 1, "ETag": parts[0]["ETag"]}]}, "InvalidRequest"),
        ("CRC32", "FULL_OBJECT", lambda parts: {"MpuObjectSize": len(BODY[0]) + 1}, "InvalidRequest"),
    ],
    ids=[
        "whole-object-checksum",
        "part-crc32",
        "part-sha256",
        "type-vs-composite",
        "type-vs-full-object",
        "composite-part-without-checksum",
        "object-size",
    ],
)
def test_a_complete_request_that_disagrees_with_the_upload(
    s3_http: BaseClient,
    http_bucket: str,
    algorithm: str,
    kind: str | None,
    spoil: Callable[[list[dict[str, Any]]], dict[str, Any]],
    expected: str,
) -> None:
    """Refused with AWS's code; the upload stays, and the right request completes it."""
    upload_id, parts = upload(s3_http, http_bucket, "k", BODY, algorithm, **({"ChecksumType": kind} if kind else {}))
    kwargs = spoil(parts)
    listed = kwargs.pop("parts", parts)
    assert refused(complete, s3_http, http_bucket, "k", upload_id, listed, **kwargs)[:2] == (400, expected)
    assert len(s3_http.list_parts(Bucket=http_bucket, Key="k", UploadId=upload_id)["Parts"]) == 1

    right: dict[str, Any] = {"MpuObjectSize": len(BODY[0])}
    if kind == "FULL_OBJECT":
        right.update(ChecksumCRC32=crc32(BODY[0]), ChecksumType="FULL_OBJECT")
    done = complete(s3_http, http_bucket, "k", upload_id, parts, **right)
    if algorithm == "CRC32":
        assert (done["ChecksumCRC32"], done["ChecksumType"]) == (crc32(BODY[0]), "FULL_OBJECT")
    else:
        assert (done["ChecksumSHA256"], done["ChecksumType"]) == (
            f"{sha256(hashlib.sha256(BODY[0]).digest())}-1",
            "COMPOSITE",
        )
    assert s3_http.get_object(Bucket=http_bucket, Key="k")["Body"].read() == BODY[0]


# parts that cannot fit --------------------------------------------------------------------------------
def bucket_of(endpoint: Endpoint, user: str, checksums: str = "when_supported") -> tuple[BaseClient, str]:
    client = endpoint.client(endpoint.users[user], checksums)
    name = unique_bucket_name(user)
    client.create_bucket(Bucket=name)
    return client, name


def part_sizes(s3: BaseClient, bucket: str, key: str, upload_id: str) -> list[tuple[int, int]]:
    return [
        (p["PartNumber"], p["Size"]) for p in s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id).get("Parts", [])
    ]


def test_replacing_a_part_frees_its_size_for_the_object_limit(endpoint: Endpoint, checksum_calculation: str) -> None:
    """Over both transports: over https boto3 sends parts aws-chunked, their size in a header of its own."""
    dave, bucket = bucket_of(endpoint, "dave", checksum_calculation)
    upload_id, _ = upload(dave, bucket, "k", [data(40_000, 1), data(20_000, 2)])
    # 44,000 + 20,000 fits in 64 KiB only if the 40,000 bytes it replaces stop counting.
    dave.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=data(44_000, 3))
    assert part_sizes(dave, bucket, "k", upload_id) == [(1, 44_000), (2, 20_000)]
    status, code, message = refused(
        dave.upload_part, Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=3, Body=data(2_000, 4)
    )
    assert (status, code) == (400, "EntityTooLarge")
    assert "per-object limit of dave (64KiB)" in message and "pyblob quota set dave" in message
    assert part_sizes(dave, bucket, "k", upload_id) == [(1, 44_000), (2, 20_000)]
    dave.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id)


def test_upload_part_copy_is_held_to_the_object_limit(http_endpoint: Endpoint) -> None:
    """The copy range is the part's size: refused before a byte is copied, a smaller range fits."""
    dave, bucket = bucket_of(http_endpoint, "dave")
    dave.put_object(Bucket=bucket, Key="src", Body=data(40_000, 5))
    upload_id, _ = upload(dave, bucket, "k", [data(30_000, 6)])
    source = {"Bucket": bucket, "Key": "src"}
    copy = functools.partial(
        dave.upload_part_copy, Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=2, CopySource=source
    )
    status, code, message = refused(copy)
    assert (status, code) == (400, "EntityTooLarge") and "pyblob quota set dave" in message
    assert part_sizes(dave, bucket, "k", upload_id) == [(1, 30_000)]
    copy(CopySourceRange="bytes=0-29999")
    assert part_sizes(dave, bucket, "k", upload_id) == [(1, 30_000), (2, 30_000)]
    dave.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id)


def test_parts_are_held_to_the_quota_and_a_replaced_part_gives_its_bytes_back(
    endpoint: Endpoint, checksum_calculation: str
) -> None:
    carol, bucket = bucket_of(endpoint, "carol", checksum_calculation)
    before = endpoint.usage("carol")
    assert before[0] < 300_000, "carol's earlier tests left too much behind for this one"
    upload_id, _ = upload(carol, bucket, "k", [data(600_000, 7)])
    carol.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=data(650_000, 8))  # replaces: fits
    assert endpoint.usage("carol") == (before[0] + 650_000, before[1])

    status, code, message = refused(
        carol.upload_part, Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=2, Body=data(600_000, 9)
    )
    assert (status, code) == (403, "QuotaExceeded") and "pyblob quota set carol" in message
    carol.put_object(Bucket=bucket, Key="src", Body=data(300_000, 10))
    source = {"Bucket": bucket, "Key": "src"}
    copy = functools.partial(
        carol.upload_part_copy, Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=2, CopySource=source
    )
    status, code, message = refused(copy)
    assert (status, code) == (403, "QuotaExceeded") and "pyblob quota set carol" in message
    assert part_sizes(carol, bucket, "k", upload_id) == [(1, 650_000)]
    assert endpoint.usage("carol") == (before[0] + 950_000, before[1] + 1)
    copy(CopySourceRange="bytes=0-49999")
    assert part_sizes(carol, bucket, "k", upload_id) == [(1, 650_000), (2, 50_000)]

    carol.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id)
    carol.delete_object(Bucket=bucket, Key="src")
    assert endpoint.usage("carol") == before


@pytest.mark.parametrize(
    "user, declared, expected", [("dave", MiB, (400, "EntityTooLarge")), ("carol", 4 * MiB, (403, "QuotaExceeded"))]
)
def test_a_part_too_large_is_refused_from_its_declared_length(
    http_endpoint: Endpoint, user: str, declared: int, expected: tuple[int, str]
) -> None:
    """The answer comes before the body does: only the headers and a few bytes are ever sent."""
    client, bucket = bucket_of(http_endpoint, user)
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    path = f"/{bucket}/k"
    query = f"partNumber=1&uploadId={upload_id}"
    signed = sign(
        http_endpoint,
        "PUT",
        path,
        query=query,
        headers=[("Content-Length", str(declared))],
        payload="UNSIGNED-PAYLOAD",
        creds=http_endpoint.users[user],
    )
    host, port = http_endpoint.url.removeprefix("http://").split(":")
    head = [
        f"PUT {path}?{query} HTTP/1.1",
        f"Host: {host}:{port}",
        *(f"{k}: {v}" for k, v in signed.headers),
        "Connection: close",
    ]
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b"a few bytes")
        answer = b""
        while b"</Error>" not in answer:
            chunk = conn.recv(65536)  # times out (a failure) if the server waits for the body
            if not chunk:
                break
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert int(status_line.split()[1]) == expected[0], answer
    assert f"<Code>{expected[1]}</Code>".encode() in rest
    assert part_sizes(client, bucket, "k", upload_id) == []
    client.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id)


# GetObjectAttributes ------------------------------------------------------------------------------
ALL_ATTRIBUTES = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]


def test_object_attributes_of_a_multipart_object_with_checksums(s3_http: BaseClient, http_bucket: str) -> None:
    parts = [data(PART, 11), TAIL]
    upload_id, listed = upload(s3_http, http_bucket, "mp", parts, "SHA256")
    complete(s3_http, http_bucket, "mp", upload_id, listed)
    got = s3_http.get_object_attributes(Bucket=http_bucket, Key="mp", ObjectAttributes=ALL_ATTRIBUTES)
    assert got["ETag"] == multipart_etag(parts)  # unquoted, as AWS answers it
    composite = sha256(b"".join(hashlib.sha256(p).digest() for p in parts))
    assert got["Checksum"]["ChecksumSHA256"] == composite  # without the "-N" HeadObject shows
    assert got["Checksum"]["ChecksumType"] == "COMPOSITE"
    assert (got["StorageClass"], got["ObjectSize"]) == ("STANDARD", PART + len(TAIL))
    assert "VersionId" not in got  # never versioned
    object_parts = got["ObjectParts"]
    assert {k: v for k, v in object_parts.items() if k != "Parts"} == {
        "TotalPartsCount": 2,
        "PartNumberMarker": 0,
        "NextPartNumberMarker": 2,
        "MaxParts": 1000,
        "IsTruncated": False,
    }
    expected = [{"PartNumber": n, "Size": len(p), "ChecksumSHA256": sha256(p)} for n, p in enumerate(parts, start=1)]
    assert object_parts["Parts"] == expected

    first = s3_http.get_object_attributes(Bucket=http_bucket, Key="mp", ObjectAttributes=["ObjectParts"], MaxParts=1)
    assert set(first) - {"ResponseMetadata", "LastModified"} == {"ObjectParts"}
    page = first["ObjectParts"]
    assert (page["Parts"], page["IsTruncated"], page["NextPartNumberMarker"], page["MaxParts"]) == (
        expected[:1],
        True,
        1,
        1,
    )
    second = s3_http.get_object_attributes(
        Bucket=http_bucket,
        Key="mp",
        ObjectAttributes=["ObjectParts"],
        MaxParts=1,
        PartNumberMarker=page["NextPartNumberMarker"],
    )["ObjectParts"]
    assert (second["Parts"], second["IsTruncated"], second["PartNumberMarker"]) == (expected[1:], False, 1)


def test_object_attributes_without_an_additional_checksum(s3_http: BaseClient, http_bucket: str) -> None:
    """Parts are listed only for an object with an additional checksum; a single PUT has no ObjectParts."""
    upload_id, listed = upload(s3_http, http_bucket, "mp", [b"one small part"])
    complete(s3_http, http_bucket, "mp", upload_id, listed)
    got = s3_http.get_object_attributes(
        Bucket=http_bucket, Key="mp", ObjectAttributes=["ObjectParts", "ETag", "ObjectSize"]
    )
    assert got["ObjectParts"]["TotalPartsCount"] == 1 and "Parts" not in got["ObjectParts"]
    assert (got["ETag"], got["ObjectSize"]) == (multipart_etag([b"one small part"]), 14)

    s3_http.put_object(Bucket=http_bucket, Key="single", Body=b"plain", ChecksumAlgorithm="CRC32")
    got = s3_http.get_object_attributes(Bucket=http_bucket, Key="single", ObjectAttributes=ALL_ATTRIBUTES)
    assert "ObjectParts" not in got
    assert got["Checksum"] == {"ChecksumCRC32": crc32(b"plain"), "ChecksumType": "FULL_OBJECT"}
    assert (got["ETag"], got["ObjectSize"]) == (hashlib.md5(b"plain").hexdigest(), 5)


def test_object_attributes_by_version_id(s3_http: BaseClient, http_bucket: str) -> None:
    s3_http.put_bucket_versioning(Bucket=http_bucket, VersioningConfiguration={"Status": "Enabled"})
    old = s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"short")["VersionId"]
    new = s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"a longer body")["VersionId"]
    got = s3_http.get_object_attributes(
        Bucket=http_bucket, Key="k", VersionId=old, ObjectAttributes=["ObjectSize", "ETag"]
    )
    assert (got["VersionId"], got["ObjectSize"], got["ETag"]) == (old, 5, hashlib.md5(b"short").hexdigest())
    current = s3_http.get_object_attributes(Bucket=http_bucket, Key="k", ObjectAttributes=["ObjectSize"])
    assert (current["VersionId"], current["ObjectSize"]) == (new, 13)
    s3_http.delete_object(Bucket=http_bucket, Key="k")
    gone = refused(s3_http.get_object_attributes, Bucket=http_bucket, Key="k", ObjectAttributes=["ObjectSize"])
    assert gone[:2] == (404, "NoSuchKey")


def test_object_attributes_must_be_named_and_known(
    http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str
) -> None:
    s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"x")
    for names in (["Bogus"], ["ETag", "Owner"]):
        unknown = refused(s3_http.get_object_attributes, Bucket=http_bucket, Key="k", ObjectAttributes=names)
        assert unknown[:2] == (400, "InvalidArgument")
    for headers in ([], [("x-amz-object-attributes", "")]):
        response = send(http_endpoint, "GET", f"/{http_bucket}/k", query="attributes=", headers=headers)
        assert (response.status_code, error_of(response)["Code"]) == (400, "InvalidArgument")
