"""Multipart uploads through boto3 against the real server: transfers, listing, abort, errors, limits.

https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateMultipartUpload.html, API_UploadPart.html,
API_UploadPartCopy.html, API_CompleteMultipartUpload.html, API_AbortMultipartUpload.html,
API_ListParts.html, API_ListMultipartUploads.html; the ETag and COMPOSITE checksum of a multipart
object: https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html.
Content is always compared by SHA-256. Sizes sit just above the 5 MiB minimum part size.
"""

from __future__ import annotations

import base64
import hashlib
import random
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import Endpoint, failure, unique_bucket_name
from s3_signing import sign

MiB = 1 << 20
PART = 5 * MiB  # S3's minimum size of every part but the last


def data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed * 7919 + size).randbytes(size)


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def multipart_etag(parts: list[bytes]) -> str:
    """S3's ETag of a multipart object: MD5 of the parts' binary MD5s, then "-N"."""
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(joined).hexdigest()}-{len(parts)}"'


def split(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


def create(s3: BaseClient, bucket: str, key: str, **kwargs: Any) -> str:
    return str(s3.create_multipart_upload(Bucket=bucket, Key=key, **kwargs)["UploadId"])


def upload_parts(
    s3: BaseClient, bucket: str, key: str, upload_id: str, parts: list[bytes], **kwargs: Any
) -> list[dict[str, Any]]:
    """Uploads `parts` as parts 1..N; returns the part list for CompleteMultipartUpload."""
    done = []
    for number, body in enumerate(parts, start=1):
        result = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body, **kwargs)
        assert result["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
        done.append({"PartNumber": number, "ETag": result["ETag"]})
    return done


def complete(s3: BaseClient, bucket: str, key: str, upload_id: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    return s3.complete_multipart_upload(  # type: ignore[no-any-return]
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )


def read(s3: BaseClient, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]


# boto3's managed transfers ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "chunksize, threshold, size",
    [
        (8 * MiB, 8 * MiB, 11 * MiB),  # boto3's defaults: 2 parts
        (5 * MiB, 8 * MiB, 11 * MiB),  # 3 parts, the last 1 MiB
        (16 * MiB, 16 * MiB, 16 * MiB + 12345),  # 2 parts, the last tiny
    ],
    ids=["default", "5MiB", "16MiB"],
)
def test_upload_file_and_download_file(
    s3: BaseClient, bucket: str, tmp_path: Path, chunksize: int, threshold: int, size: int
) -> None:
    body = data(size)
    source, back = tmp_path / "up.bin", tmp_path / "down.bin"
    source.write_bytes(body)
    default = chunksize == 8 * MiB
    config = (
        TransferConfig() if default else TransferConfig(multipart_chunksize=chunksize, multipart_threshold=threshold)
    )

    s3.upload_file(str(source), bucket, "big.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    parts = split(body, chunksize)
    assert head["ETag"] == multipart_etag(parts)
    assert head["ContentLength"] == size
    assert "PartsCount" not in head  # only a request for a part is told the count, as at AWS
    assert s3.head_object(Bucket=bucket, Key="big.bin", PartNumber=1)["PartsCount"] == len(parts)

    s3.download_file(bucket, "big.bin", str(back), Config=config)
    assert sha256(back.read_bytes()) == sha256(body)
    assert sha256(read(s3, bucket, "big.bin")) == sha256(body)


def test_etag_attributes_and_parts_count(s3: BaseClient, bucket: str) -> None:
    parts = [data(PART, 1), data(PART, 2), b"tail"]
    attrs = {
        "ContentType": "application/x-test",
        "CacheControl": "no-store",
        "ContentDisposition": "inline",
        "Metadata": {"colour": "green", "mtime": "1700000000.5"},
    }
    upload_id = create(s3, bucket, "dir/obj", **attrs)
    done = complete(s3, bucket, "dir/obj", upload_id, upload_parts(s3, bucket, "dir/obj", upload_id, parts))
    assert done["ETag"] == multipart_etag(parts)
    assert (done["Bucket"], done["Key"]) == (bucket, "dir/obj")

    for result in (
        s3.head_object(Bucket=bucket, Key="dir/obj", PartNumber=3),
        s3.get_object(Bucket=bucket, Key="dir/obj", PartNumber=2),
    ):
        assert result["ETag"] == multipart_etag(parts)
        assert result["ContentLength"] == (4 if "Body" not in result else PART)
        assert result["ContentType"] == "application/x-test"
        assert result["CacheControl"] == "no-store"
        assert result["ContentDisposition"] == "inline"
        assert result["Metadata"] == {"colour": "green", "mtime": "1700000000.5"}
        assert result["PartsCount"] == 3
    assert sha256(read(s3, bucket, "dir/obj")) == sha256(b"".join(parts))
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["ETag"], o["Size"]) for o in listed] == [("dir/obj", multipart_etag(parts), 2 * PART + 4)]
    # The parts are gone with the upload.
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="dir/obj", UploadId=upload_id)
    assert failure(e) == (404, "NoSuchUpload")


def test_reuploaded_part_replaces_the_earlier_one(s3_http: BaseClient, http_bucket: str) -> None:
    upload_id = create(s3_http, http_bucket, "k")
    upload_parts(s3_http, http_bucket, "k", upload_id, [data(PART, 3), b"first tail"])
    parts = upload_parts(s3_http, http_bucket, "k", upload_id, [data(PART, 4), b"second tail"])
    complete(s3_http, http_bucket, "k", upload_id, parts)
    assert sha256(read(s3_http, http_bucket, "k")) == sha256(data(PART, 4) + b"second tail")


# ListParts and ListMultipartUploads --------------------------------------------------------------
def test_list_parts_pages_with_max_parts_and_marker(s3_http: BaseClient, http_bucket: str) -> None:
    bodies = [f"part {n}".encode() * n for n in range(1, 6)]
    upload_id = create(s3_http, http_bucket, "k", ContentType="text/plain")
    upload_parts(s3_http, http_bucket, "k", upload_id, bodies)

    whole = s3_http.list_parts(Bucket=http_bucket, Key="k", UploadId=upload_id)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in whole["Parts"]] == [
        (n, f'"{hashlib.md5(b).hexdigest()}"', len(b)) for n, b in enumerate(bodies, start=1)
    ]
    assert whole["IsTruncated"] is False
    assert whole["UploadId"] == upload_id

    pages, marker = [], 0
    while True:
        page = s3_http.list_parts(Bucket=http_bucket, Key="k", UploadId=upload_id, MaxParts=2, PartNumberMarker=marker)
        assert page["MaxParts"] == 2 and page["PartNumberMarker"] == marker
        pages.append([p["PartNumber"] for p in page["Parts"]])
        if not page["IsTruncated"]:
            break
        marker = page["NextPartNumberMarker"]
        assert marker == pages[-1][-1]
    assert pages == [[1, 2], [3, 4], [5]]
    s3_http.abort_multipart_upload(Bucket=http_bucket, Key="k", UploadId=upload_id)


def uploads_page(s3: BaseClient, bucket: str, **kwargs: Any) -> tuple[list[tuple[str, str]], list[str], dict[str, Any]]:
    page = s3.list_multipart_uploads(Bucket=bucket, **kwargs)
    uploads = [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
    return uploads, [p["Prefix"] for p in page.get("CommonPrefixes", [])], page


def test_list_multipart_uploads_prefix_delimiter_and_markers(s3_http: BaseClient, http_bucket: str) -> None:
    made = [(key, create(s3_http, http_bucket, key)) for key in ("a/1", "a/2", "b", "b", "b", "c/x/y", "d")]
    by_key = sorted(made, key=lambda u: u[0])  # stable: a key's uploads stay in initiation order
    assert uploads_page(s3_http, http_bucket)[0] == by_key

    assert uploads_page(s3_http, http_bucket, Prefix="a/")[0] == by_key[:2]
    uploads, prefixes, page = uploads_page(s3_http, http_bucket, Delimiter="/")
    assert (uploads, prefixes) == ([u for u in by_key if "/" not in u[0]], ["a/", "c/"])
    assert page["Delimiter"] == "/"
    uploads, prefixes, _ = uploads_page(s3_http, http_bucket, Prefix="c/", Delimiter="/")
    assert (uploads, prefixes) == ([], ["c/x/"])

    # A key marker alone skips that key's uploads; with an upload-id marker, the key's later ones remain.
    assert uploads_page(s3_http, http_bucket, KeyMarker="b")[0] == by_key[5:]
    b_uploads = [u for u in by_key if u[0] == "b"]
    after_first_b = uploads_page(s3_http, http_bucket, KeyMarker="b", UploadIdMarker=b_uploads[0][1])[0]
    assert after_first_b == by_key[3:]

    # Pagination one upload at a time visits every upload once, in order.
    seen: list[tuple[str, str]] = []
    markers: dict[str, str] = {}
    for _ in range(len(made) + 1):
        uploads, _, page = uploads_page(s3_http, http_bucket, MaxUploads=1, **markers)
        seen += uploads
        if not page["IsTruncated"]:
            break
        markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
    assert seen == by_key

    # With a delimiter, a page may end on a common prefix; the next page goes on after it.
    entries: list[str] = []
    markers = {}
    for _ in range(len(made) + 1):
        uploads, prefixes, page = uploads_page(s3_http, http_bucket, Delimiter="/", MaxUploads=1, **markers)
        entries += [k for k, _ in uploads] + prefixes
        if not page["IsTruncated"]:
            break
        markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page.get("NextUploadIdMarker", "")}
    assert entries == ["a/", "b", "b", "b", "c/", "d"]


# abort --------------------------------------------------------------------------------------------
def test_abort_frees_the_parts_and_usage(http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str) -> None:
    before = http_endpoint.usage("admin")
    upload_id = create(s3_http, http_bucket, "k")
    upload_parts(s3_http, http_bucket, "k", upload_id, [data(300_000, 5), data(200_000, 6)])
    assert http_endpoint.usage("admin") == (before[0] + 500_000, before[1])

    s3_http.abort_multipart_upload(Bucket=http_bucket, Key="k", UploadId=upload_id)
    assert http_endpoint.usage("admin") == before
    assert uploads_page(s3_http, http_bucket)[0] == []
    for call in (
        lambda: s3_http.list_parts(Bucket=http_bucket, Key="k", UploadId=upload_id),
        lambda: s3_http.upload_part(Bucket=http_bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=b"x"),
        lambda: complete(s3_http, http_bucket, "k", upload_id, [{"PartNumber": 1, "ETag": '"x"'}]),
        lambda: s3_http.abort_multipart_upload(Bucket=http_bucket, Key="k", UploadId=upload_id),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert failure(e) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as e:
        s3_http.head_object(Bucket=http_bucket, Key="k")
    assert failure(e)[0] == 404


# errors -------------------------------------------------------------------------------------------
@pytest.fixture
def two_parts(s3_http: BaseClient, http_bucket: str) -> tuple[str, list[dict[str, Any]]]:
    """An upload of "k" with a 5 MiB part 1 and a small part 2, not completed."""
    upload_id = create(s3_http, http_bucket, "k")
    return upload_id, upload_parts(s3_http, http_bucket, "k", upload_id, [data(PART, 7), b"end"])


def completion_fails(s3: BaseClient, bucket: str, upload_id: str, parts: list[dict[str, Any]]) -> tuple[int, str]:
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "k", upload_id, parts)
    return failure(e)


def test_invalid_part_order(s3_http: BaseClient, http_bucket: str, two_parts: tuple[str, list[dict[str, Any]]]) -> None:
    upload_id, parts = two_parts
    assert completion_fails(s3_http, http_bucket, upload_id, parts[::-1]) == (400, "InvalidPartOrder")
    # The upload is still there and completes once the list is right.
    complete(s3_http, http_bucket, "k", upload_id, parts)
    assert sha256(read(s3_http, http_bucket, "k")) == sha256(data(PART, 7) + b"end")


def test_invalid_part(s3_http: BaseClient, http_bucket: str, two_parts: tuple[str, list[dict[str, Any]]]) -> None:
    upload_id, parts = two_parts
    wrong_etag = [parts[0], {"PartNumber": 2, "ETag": f'"{hashlib.md5(b"other").hexdigest()}"'}]
    assert completion_fails(s3_http, http_bucket, upload_id, wrong_etag) == (400, "InvalidPart")
    never_uploaded = [*parts, {"PartNumber": 3, "ETag": parts[1]["ETag"]}]
    assert completion_fails(s3_http, http_bucket, upload_id, never_uploaded) == (400, "InvalidPart")


def test_entity_too_small(s3_http: BaseClient, http_bucket: str) -> None:
    upload_id = create(s3_http, http_bucket, "k")
    parts = upload_parts(s3_http, http_bucket, "k", upload_id, [data(PART - 1, 8), b"end"])
    assert completion_fails(s3_http, http_bucket, upload_id, parts) == (400, "EntityTooSmall")
    # One small part alone is fine: it is the last.
    small = create(s3_http, http_bucket, "k")
    complete(s3_http, http_bucket, "k", small, upload_parts(s3_http, http_bucket, "k", small, [b"only part"]))
    head = s3_http.head_object(Bucket=http_bucket, Key="k")
    assert (head["ETag"], head["ContentLength"]) == (multipart_etag([b"only part"]), 9)


def test_no_such_upload(s3_http: BaseClient, http_bucket: str) -> None:
    bogus = "0123456789abcdef0123456789abcdef"
    for call in (
        lambda: s3_http.upload_part(Bucket=http_bucket, Key="k", UploadId=bogus, PartNumber=1, Body=b"x"),
        lambda: s3_http.list_parts(Bucket=http_bucket, Key="k", UploadId=bogus),
        lambda: complete(s3_http, http_bucket, "k", bogus, [{"PartNumber": 1, "ETag": '"x"'}]),
        lambda: s3_http.abort_multipart_upload(Bucket=http_bucket, Key="k", UploadId=bogus),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert failure(e) == (404, "NoSuchUpload")
    # An existing upload named under another key is no upload of this one.
    upload_id = create(s3_http, http_bucket, "other")
    with pytest.raises(ClientError) as e:
        s3_http.upload_part(Bucket=http_bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=b"x")
    assert failure(e) == (404, "NoSuchUpload")


def test_parts_count_against_the_quota(http_endpoint: Endpoint) -> None:
    """carol has 1 MiB: pending parts count, a part past the quota is refused, abort gives it back."""
    carol = http_endpoint.client(http_endpoint.users["carol"])
    name = unique_bucket_name()
    carol.create_bucket(Bucket=name)
    before = http_endpoint.usage("carol")
    upload_id = create(carol, name, "k")
    upload_parts(carol, name, "k", upload_id, [data(600_000, 9)])
    with pytest.raises(ClientError) as e:
        carol.upload_part(Bucket=name, Key="k", UploadId=upload_id, PartNumber=2, Body=data(600_000, 10))
    assert failure(e) == (403, "QuotaExceeded")
    assert [p["PartNumber"] for p in carol.list_parts(Bucket=name, Key="k", UploadId=upload_id)["Parts"]] == [1]
    assert http_endpoint.usage("carol") == (before[0] + 600_000, before[1])
    carol.abort_multipart_upload(Bucket=name, Key="k", UploadId=upload_id)
    assert http_endpoint.usage("carol") == before


def test_max_object_size_holds_across_parts(http_endpoint: Endpoint) -> None:
    """dave's objects may not pass 64 KiB: not as one part, nor as parts that add up past it. The
    part that would take the upload past it is refused at UploadPart, before its body is kept."""
    dave = http_endpoint.client(http_endpoint.users["dave"])
    name = unique_bucket_name()
    dave.create_bucket(Bucket=name)
    upload_id = create(dave, name, "k")
    with pytest.raises(ClientError) as e:
        dave.upload_part(Bucket=name, Key="k", UploadId=upload_id, PartNumber=1, Body=data(64 * 1024 + 1, 11))
    assert failure(e) == (400, "EntityTooLarge")
    assert "per-object limit of dave" in e.value.response["Error"]["Message"]
    upload_parts(dave, name, "k", upload_id, [data(40_000, 12)])
    with pytest.raises(ClientError) as e:
        dave.upload_part(Bucket=name, Key="k", UploadId=upload_id, PartNumber=2, Body=data(40_000, 13))
    assert failure(e) == (400, "EntityTooLarge")
    listed = dave.list_parts(Bucket=name, Key="k", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, 40_000)]
    dave.upload_part(Bucket=name, Key="k", UploadId=upload_id, PartNumber=2, Body=data(20_000, 13))  # this one fits
    listed = dave.list_parts(Bucket=name, Key="k", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, 40_000), (2, 20_000)]
    dave.abort_multipart_upload(Bucket=name, Key="k", UploadId=upload_id)


# UploadPartCopy and checksums ---------------------------------------------------------------------
def test_upload_part_copy_with_ranges(s3: BaseClient, bucket: str) -> None:
    source = data(PART + 1000, 14)
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    upload_id = create(s3, bucket, "dst")
    copy_source = {"Bucket": bucket, "Key": "src"}
    first = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=upload_id,
        PartNumber=1,
        CopySource=copy_source,
        CopySourceRange=f"bytes=0-{PART - 1}",
    )["CopyPartResult"]
    assert first["ETag"] == f'"{hashlib.md5(source[:PART]).hexdigest()}"'
    whole = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=upload_id, PartNumber=2, CopySource=copy_source)[
        "CopyPartResult"
    ]
    assert whole["ETag"] == f'"{hashlib.md5(source).hexdigest()}"'
    last = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=upload_id,
        PartNumber=3,
        CopySource=copy_source,
        CopySourceRange=f"bytes={PART}-{PART + 99}",
    )["CopyPartResult"]
    assert last["ETag"] == f'"{hashlib.md5(source[PART : PART + 100]).hexdigest()}"'
    parts = [{"PartNumber": n, "ETag": p["ETag"]} for n, p in enumerate((first, whole, last), start=1)]
    result = complete(s3, bucket, "dst", upload_id, parts)

    expected = [source[:PART], source, source[PART : PART + 100]]
    assert result["ETag"] == multipart_etag(expected)
    assert sha256(read(s3, bucket, "dst")) == sha256(b"".join(expected))


def checksum(algorithm: str, body: bytes) -> bytes:
    if algorithm == "CRC32":
        return zlib.crc32(body).to_bytes(4, "big")
    return hashlib.sha256(body).digest()


@pytest.mark.parametrize("algorithm", ["SHA256", "CRC32"])
def test_composite_checksum(s3: BaseClient, bucket: str, algorithm: str) -> None:
    parts = [data(PART, 15), b"checksummed tail"]
    created = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm=algorithm)
    assert created["ChecksumAlgorithm"] == algorithm
    upload_id = created["UploadId"]
    done = []
    for number, body in enumerate(parts, start=1):
        result = s3.upload_part(
            Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=number, Body=body, ChecksumAlgorithm=algorithm
        )
        part_sum = base64.b64encode(checksum(algorithm, body)).decode()
        assert result[f"Checksum{algorithm}"] == part_sum
        done.append({"PartNumber": number, "ETag": result["ETag"], f"Checksum{algorithm}": part_sum})
    listed = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)["Parts"]
    assert [p[f"Checksum{algorithm}"] for p in listed] == [d[f"Checksum{algorithm}"] for d in done]

    result = complete(s3, bucket, "k", upload_id, done)
    composite = checksum(algorithm, b"".join(checksum(algorithm, p) for p in parts))
    assert result[f"Checksum{algorithm}"] == f"{base64.b64encode(composite).decode()}-2"
    assert result["ETag"] == multipart_etag(parts)
    assert sha256(read(s3, bucket, "k")) == sha256(b"".join(parts))


def test_completion_with_a_wrong_part_checksum_fails(s3_http: BaseClient, http_bucket: str) -> None:
    upload_id = create(s3_http, http_bucket, "k", ChecksumAlgorithm="SHA256")
    result = s3_http.upload_part(
        Bucket=http_bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=b"x", ChecksumAlgorithm="SHA256"
    )
    wrong = base64.b64encode(hashlib.sha256(b"y").digest()).decode()
    with pytest.raises(ClientError) as e:
        complete(
            s3_http, http_bucket, "k", upload_id, [{"PartNumber": 1, "ETag": result["ETag"], "ChecksumSHA256": wrong}]
        )
    assert failure(e) == (400, "InvalidPart")


@pytest.mark.parametrize("number", ["%C2%B2", "%D9%A3"])  # superscript two, Arabic-Indic three
def test_non_ascii_digits_in_a_part_number(
    http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str, number: str
) -> None:
    up = s3_http.create_multipart_upload(Bucket=http_bucket, Key="k")
    signed = sign(
        http_endpoint, "PUT", f"/{http_bucket}/k", query=f"partNumber={number}&uploadId={up['UploadId']}", body=b"x"
    )
    r = httpx.put(signed.url, headers=dict(signed.headers), content=b"x")
    assert r.status_code == 400 and "<Code>InvalidArgument</Code>" in r.text
