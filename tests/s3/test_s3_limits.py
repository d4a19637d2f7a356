"""Limits through S3, each tried at the limit (accepted) and one past it (refused with AWS's status
and code, and nothing kept).

S3's own, the same for everyone (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html,
object-tagging.html, object-keys.html, qfacts.html; API_DeleteObjects.html; ErrorResponses.html):
2 KiB of user metadata, 10 tags per object with keys of 128 and values of 256 characters, keys of
1024 bytes, part numbers 1 to 10,000, 1,000 keys per DeleteObjects, and 8 KiB of headers and query
string per S3 request. pyblob's HTTP layer bounds any request's line and headers to 64 KiB (431).

Each user's, set by the admin: carol has `--quota 1MiB`, dave `--max-object-size 64KiB` (see
s3_server.USERS): 403 QuotaExceeded (pyblob's own code) and EntityTooLarge, enforced before anything
is kept, with usage left as it was.
"""

from __future__ import annotations

import socket
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import Endpoint, failure, unique_bucket_name
from s3_signing import error_of, send

MiB = 1024 * 1024
S3_HEADER_SECTION = 8192  # AWS's MaxSizeAllowed in RequestHeaderSectionTooLarge
HTTP_HEAD = 64 * 1024  # pyblob/boundedhttp.py's MAX_HEAD_BYTES
Write = Callable[[BaseClient, str, str], Any]


def written(s3: BaseClient, bucket: str) -> set[str]:
    """Keys of the bucket's objects and of its uploads in progress."""
    objects = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return {o["Key"] for o in objects} | {u["Key"] for u in uploads}


# user metadata ----------------------------------------------------------------------------------
def metadata_of(size: int) -> dict[str, str]:
    """Two entries whose names and values add up to `size` bytes, as S3 counts them (UTF-8 bytes of
    each name and value; the `x-amz-meta-` prefix is not counted)."""
    return {"a": "x" * 1000, "bb": "y" * (size - 1003)}


def writes_with(meta: dict[str, str]) -> dict[str, Write]:
    return {
        "PutObject": lambda s3, b, k: s3.put_object(Bucket=b, Key=k, Body=b"x", Metadata=meta),
        "CreateMultipartUpload": lambda s3, b, k: s3.create_multipart_upload(Bucket=b, Key=k, Metadata=meta),
        "CopyObject": lambda s3, b, k: s3.copy_object(
            Bucket=b, Key=k, CopySource={"Bucket": b, "Key": "source"}, MetadataDirective="REPLACE", Metadata=meta
        ),
    }


@pytest.mark.parametrize("operation", ["PutObject", "CreateMultipartUpload", "CopyObject"])
def test_user_metadata_of_2_kib_and_no_more(s3_http: BaseClient, http_bucket: str, operation: str) -> None:
    s3_http.put_object(Bucket=http_bucket, Key="source", Body=b"s")
    writes_with(metadata_of(2048))[operation](s3_http, http_bucket, "fits")
    with pytest.raises(ClientError) as e:
        writes_with(metadata_of(2049))[operation](s3_http, http_bucket, "over")
    assert failure(e) == (400, "MetadataTooLarge")
    assert written(s3_http, http_bucket) == {"source", "fits"}
    if operation != "CreateMultipartUpload":
        assert s3_http.head_object(Bucket=http_bucket, Key="fits")["Metadata"] == metadata_of(2048)


# tags -------------------------------------------------------------------------------------------
def tags_of(s3: BaseClient, bucket: str, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def tagging(operation: str) -> Callable[[BaseClient, str, dict[str, str]], Any]:
    """Sets the tags of object `k`: PutObjectTagging's XML, or PutObject's `x-amz-tagging` header."""
    if operation == "PutObjectTagging":
        return lambda s3, b, tags: s3.put_object_tagging(
            Bucket=b, Key="k", Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}
        )
    return lambda s3, b, tags: s3.put_object(Bucket=b, Key="k", Body=b"x", Tagging=urllib.parse.urlencode(tags))


TAGGING = ["PutObjectTagging", "PutObject"]


@pytest.mark.parametrize("operation", TAGGING)
def test_ten_tags_and_no_more(s3_http: BaseClient, http_bucket: str, operation: str) -> None:
    """AWS answers 400 BadRequest past 10 object tags, through either form (InvalidTag is for a tag
    itself): boto/boto3#1213, hashicorp/terraform-provider-aws#19895."""
    s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"x")
    ten = {f"k{i}": "v" for i in range(10)}
    tagging(operation)(s3_http, http_bucket, ten)
    assert tags_of(s3_http, http_bucket, "k") == ten
    with pytest.raises(ClientError) as e:
        tagging(operation)(s3_http, http_bucket, {**ten, "eleventh": "v"})
    assert failure(e) == (400, "BadRequest")
    assert e.value.response["Error"]["Message"] == "Object tags cannot be greater than 10"
    assert tags_of(s3_http, http_bucket, "k") == ten


@pytest.mark.parametrize("operation", TAGGING)
def test_tag_keys_of_128_and_values_of_256_characters(s3_http: BaseClient, http_bucket: str, operation: str) -> None:
    """Characters, not bytes: a key of 128 two-byte letters is 256 bytes and fits."""
    s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"x")
    longest = {"é" * 128: "ü" * 256}
    tagging(operation)(s3_http, http_bucket, longest)
    for over in ({"é" * 129: "v"}, {"k": "ü" * 257}):
        with pytest.raises(ClientError) as e:
            tagging(operation)(s3_http, http_bucket, over)
        assert failure(e) == (400, "InvalidTag")
    assert tags_of(s3_http, http_bucket, "k") == longest


# keys -------------------------------------------------------------------------------------------
KEYED_WRITES: dict[str, Write] = {
    "PutObject": lambda s3, b, k: s3.put_object(Bucket=b, Key=k, Body=b"x"),
    "CreateMultipartUpload": lambda s3, b, k: s3.create_multipart_upload(Bucket=b, Key=k),
    "CopyObject": lambda s3, b, k: s3.copy_object(Bucket=b, Key=k, CopySource={"Bucket": b, "Key": "source"}),
}


@pytest.mark.parametrize("operation", list(KEYED_WRITES))
@pytest.mark.parametrize("letter", ["k", "é"], ids=["ascii", "two-byte"])
def test_keys_of_1024_bytes_and_no_more(s3_http: BaseClient, http_bucket: str, operation: str, letter: str) -> None:
    s3_http.put_object(Bucket=http_bucket, Key="source", Body=b"s")
    longest = letter * (1024 // len(letter.encode()))
    KEYED_WRITES[operation](s3_http, http_bucket, longest)
    with pytest.raises(ClientError) as e:
        KEYED_WRITES[operation](s3_http, http_bucket, longest + "k")
    assert failure(e) == (400, "KeyTooLongError")
    assert written(s3_http, http_bucket) == {"source", longest}


# parts ------------------------------------------------------------------------------------------
def upload_part_as(operation: str) -> Callable[[BaseClient, str, str, int], Any]:
    if operation == "UploadPart":
        return lambda s3, b, upload, n: s3.upload_part(Bucket=b, Key="k", UploadId=upload, PartNumber=n, Body=b"p")
    return lambda s3, b, upload, n: s3.upload_part_copy(
        Bucket=b, Key="k", UploadId=upload, PartNumber=n, CopySource={"Bucket": b, "Key": "source"}
    )


@pytest.mark.parametrize("operation", ["UploadPart", "UploadPartCopy"])
def test_part_numbers_1_to_10000(s3_http: BaseClient, http_bucket: str, operation: str) -> None:
    s3_http.put_object(Bucket=http_bucket, Key="source", Body=b"s")
    upload_id = s3_http.create_multipart_upload(Bucket=http_bucket, Key="k")["UploadId"]
    for number in (1, 10000):
        upload_part_as(operation)(s3_http, http_bucket, upload_id, number)
    for number in (0, 10001):
        with pytest.raises(ClientError) as e:
            upload_part_as(operation)(s3_http, http_bucket, upload_id, number)
        assert failure(e) == (400, "InvalidArgument")
    parts = s3_http.list_parts(Bucket=http_bucket, Key="k", UploadId=upload_id)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1, 10000]


def test_complete_multipart_upload_may_name_10000_parts(s3_http: BaseClient, http_bucket: str) -> None:
    """A Complete naming 10,000 parts, each with its SHA-256, is a 1.7 MB document (boto3's default
    CRC32 per part makes 1.3 MB): read whole, its parts never uploaded are InvalidPart."""
    upload_id = s3_http.create_multipart_upload(Bucket=http_bucket, Key="k", ChecksumAlgorithm="SHA256")["UploadId"]
    part = s3_http.upload_part(
        Bucket=http_bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=b"p", ChecksumAlgorithm="SHA256"
    )
    parts = [{"PartNumber": 1, "ETag": part["ETag"], "ChecksumSHA256": part["ChecksumSHA256"]}]
    parts += [
        {"PartNumber": n, "ETag": f'"{n:032x}"', "ChecksumSHA256": part["ChecksumSHA256"]} for n in range(2, 10001)
    ]
    with pytest.raises(ClientError) as e:
        s3_http.complete_multipart_upload(
            Bucket=http_bucket,
            Key="k",
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
        )
    assert failure(e) == (400, "InvalidPart")
    assert written(s3_http, http_bucket) == {"k"}  # the upload, still in progress


# DeleteObjects ----------------------------------------------------------------------------------
def test_delete_objects_takes_1000_keys_and_no_more(s3_http: BaseClient, http_bucket: str) -> None:
    """1,000 keys of 1024 bytes each, every byte escaped in the XML (`&` is `&amp;`): a 5 MB document."""
    keys = [f"{i:04}" + "&" * 1020 for i in range(1000)]
    for key in keys[::250]:
        s3_http.put_object(Bucket=http_bucket, Key=key, Body=b"x")
    result = s3_http.delete_objects(Bucket=http_bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
    assert "Errors" not in result
    assert written(s3_http, http_bucket) == set()

    s3_http.put_object(Bucket=http_bucket, Key="kept", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3_http.delete_objects(Bucket=http_bucket, Delete={"Objects": [{"Key": "kept"}] * 1001})
    assert failure(e) == (400, "MalformedXML")
    assert written(s3_http, http_bucket) == {"kept"}


# request heads ----------------------------------------------------------------------------------
def exchange(endpoint: Endpoint, head: bytes) -> bytes:
    """Send a request head in one piece; the whole answer (the server closes the connection)."""
    host, port = endpoint.url.removeprefix("http://").rsplit(":", 1)
    answer = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:  # the server may close with our bytes unread: what it said still came
            pass
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def s3_error_of(answer: bytes) -> dict[str, str | None]:
    """The children of the S3 <Error> document an answer carries."""
    root = ET.fromstring(answer.split(b"\r\n\r\n", 1)[1])
    assert root.tag == "Error", answer[:300]
    return {child.tag: child.text for child in root}


@pytest.mark.parametrize("where", ["header", "query"])
def test_s3_headers_and_query_of_8_kib_and_no_more(http_endpoint: Endpoint, http_bucket: str, where: str) -> None:
    """AWS's 8 KiB, counted as the names and values of the headers plus the query string: past it,
    400 RequestHeaderSectionTooLarge with MaxSizeAllowed, before the request is even authenticated."""
    host = http_endpoint.url.removeprefix("http://")
    room = S3_HEADER_SECTION - len("host" + host + "connection" + "close")

    def request(size: int) -> bytes:
        if where == "header":
            target, pad = f"/{http_bucket}/k", f"X-Pad: {'p' * (size - len('x-pad'))}\r\n"
        else:
            target, pad = f"/{http_bucket}?prefix={'p' * (size - len('prefix='))}", ""
        return exchange(
            http_endpoint, f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{pad}Connection: close\r\n\r\n".encode()
        )

    at_limit = request(room)
    assert (status_of(at_limit), s3_error_of(at_limit)["Code"]) == (403, "AccessDenied")  # anonymous: as any
    past = request(room + 1)
    error = s3_error_of(past)
    assert (status_of(past), error["Code"], error["MaxSizeAllowed"]) == (400, "RequestHeaderSectionTooLarge", "8192")


def test_boto3_reads_the_header_section_error(s3_http: BaseClient, http_bucket: str) -> None:
    def pad(request: Any, **_: Any) -> None:
        request.headers["x-pad"] = "p" * S3_HEADER_SECTION

    s3_http.meta.events.register("before-sign.s3.PutObject", pad)
    with pytest.raises(ClientError) as e:
        s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"x")
    assert failure(e) == (400, "RequestHeaderSectionTooLarge")
    assert written(s3_http, http_bucket) == set()


@pytest.mark.parametrize("where", ["header", "url"])
def test_any_request_head_of_64_kib_and_no_more(http_endpoint: Endpoint, where: str) -> None:
    """pyblob's HTTP layer bounds every request (S3 or not; `/health` here): its URL and the names and
    values of its headers, counted once the head has ended, in one piece or many. Past it 431, the
    connection closed (a head that never ends is cut off as it grows: tests/server/test_serve.py)."""
    room = HTTP_HEAD - len("host" + "x" + "connection" + "close")

    def request(size: int) -> bytes:
        if where == "header":
            target = "/health"
            pad = f"X-Pad: {'p' * (size - len(target + 'x-pad'))}\r\n"
        else:
            target, pad = "/health?q=" + "q" * (size - len("/health?q=")), ""
        return exchange(http_endpoint, f"GET {target} HTTP/1.1\r\nHost: x\r\n{pad}Connection: close\r\n\r\n".encode())

    assert status_of(request(room)) == 200
    assert status_of(request(room + 1)) == 431


# per-user limits --------------------------------------------------------------------------------
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
