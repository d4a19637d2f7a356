"""Object operations through boto3 against the real server: put, get, head, delete, ranges, conditionals.

https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html, API_GetObject.html,
API_HeadObject.html, API_DeleteObject.html, API_DeleteObjects.html.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import Endpoint, failure, unique_bucket_name
from s3_signing import send

BODY = bytes(range(256)) * 4  # 1024 bytes, every byte value


def put(s3: BaseClient, bucket: str, key: str, body: bytes = BODY, **kwargs: object) -> dict[str, object]:
    return s3.put_object(Bucket=bucket, Key=key, Body=body, **kwargs)  # type: ignore[no-any-return]


def test_put_get_head_with_metadata_and_standard_headers(s3: BaseClient, bucket: str) -> None:
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    attrs = {
        "ContentType": "text/plain; charset=utf-8",
        "CacheControl": "max-age=60",
        "ContentDisposition": 'attachment; filename="notes.txt"',
        "ContentEncoding": "identity",
        "ContentLanguage": "de-CH",
        "Expires": expires,
        "Metadata": {"colour": "blue", "mixed-case": "Value With Spaces"},
    }
    put_result = put(s3, bucket, "doc.txt", **attrs)
    etag = f'"{hashlib.md5(BODY).hexdigest()}"'
    assert put_result["ETag"] == etag
    assert "x-amz-version-id" not in put_result["ResponseMetadata"]["HTTPHeaders"]  # type: ignore[index]

    for result in (s3.get_object(Bucket=bucket, Key="doc.txt"), s3.head_object(Bucket=bucket, Key="doc.txt")):
        assert result["ETag"] == etag
        assert result["ContentLength"] == len(BODY)
        assert result["ContentType"] == "text/plain; charset=utf-8"
        assert result["CacheControl"] == "max-age=60"
        assert result["ContentDisposition"] == 'attachment; filename="notes.txt"'
        assert result["ContentEncoding"] == "identity"
        assert result["ContentLanguage"] == "de-CH"
        assert result["ResponseMetadata"]["HTTPHeaders"]["expires"] == "Wed, 02 Jan 2030 03:04:05 GMT"
        assert result["Metadata"] == {"colour": "blue", "mixed-case": "Value With Spaces"}
        assert result["AcceptRanges"] == "bytes"
        assert "x-amz-version-id" not in result["ResponseMetadata"]["HTTPHeaders"]
        assert abs(result["LastModified"] - datetime.now(UTC)) < timedelta(minutes=5)
    assert s3.get_object(Bucket=bucket, Key="doc.txt")["Body"].read() == BODY


def test_default_content_type_and_overwrite(s3: BaseClient, bucket: str) -> None:
    put(s3, bucket, "k", b"first", Metadata={"old": "1"})
    put(s3, bucket, "k", b"second")
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"second"
    assert got["ContentType"] == "binary/octet-stream"
    assert got["Metadata"] == {}


def test_zero_byte_object(s3: BaseClient, bucket: str) -> None:
    result = put(s3, bucket, "empty", b"")
    assert result["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert (got["ContentLength"], got["Body"].read()) == (0, b"")
    assert s3.head_object(Bucket=bucket, Key="empty")["ContentLength"] == 0
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("empty", 0)]


def test_if_none_match_star_creates_only_once(s3: BaseClient, bucket: str) -> None:
    put(s3, bucket, "once", b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        put(s3, bucket, "once", b"second", IfNoneMatch="*")
    assert failure(e) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"first"


def test_missing_object(s3: BaseClient, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="nope")
    assert failure(e) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="nope")
    assert failure(e)[0] == 404


# ranges -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "header, start, end",  # end inclusive, as Content-Range says it
    [
        ("bytes=0-0", 0, 0),
        ("bytes=0-9", 0, 9),
        ("bytes=1000-1023", 1000, 1023),
        ("bytes=1000-5000", 1000, 1023),  # past the end: clamped
        ("bytes=512-", 512, 1023),  # open-ended
        ("bytes=-10", 1014, 1023),  # suffix
        ("bytes=-5000", 0, 1023),  # suffix longer than the object
    ],
)
def test_range(s3: BaseClient, bucket: str, header: str, start: int, end: int) -> None:
    put(s3, bucket, "r")
    got = s3.get_object(Bucket=bucket, Key="r", Range=header)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes {start}-{end}/{len(BODY)}"
    assert got["ContentLength"] == end - start + 1
    assert got["Body"].read() == BODY[start : end + 1]


@pytest.mark.parametrize("header", ["bytes=1024-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable_range(s3_http: BaseClient, http_bucket: str, header: str) -> None:
    put(s3_http, http_bucket, "r")
    with pytest.raises(ClientError) as e:
        s3_http.get_object(Bucket=http_bucket, Key="r", Range=header)
    assert failure(e) == (416, "InvalidRange")
    assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["content-range"] == f"bytes */{len(BODY)}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=9-3", "items=0-1", "bytes=abc"])
def test_range_that_s3_ignores_returns_whole_object(s3_http: BaseClient, http_bucket: str, header: str) -> None:
    put(s3_http, http_bucket, "r")
    got = s3_http.get_object(Bucket=http_bucket, Key="r", Range=header)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert got["Body"].read() == BODY


def test_range_of_empty_object_is_unsatisfiable(s3_http: BaseClient, http_bucket: str) -> None:
    put(s3_http, http_bucket, "empty", b"")
    with pytest.raises(ClientError) as e:
        s3_http.get_object(Bucket=http_bucket, Key="empty", Range="bytes=0-")
    assert failure(e) == (416, "InvalidRange")


def test_head_with_range(s3_http: BaseClient, http_bucket: str) -> None:
    put(s3_http, http_bucket, "r")
    head = s3_http.head_object(Bucket=http_bucket, Key="r", Range="bytes=10-19")
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert (head["ContentLength"], head["ContentRange"]) == (10, f"bytes 10-19/{len(BODY)}")


# conditionals -----------------------------------------------------------------------------------
PAST = datetime(2001, 1, 1, tzinfo=UTC)
FUTURE = datetime.now(UTC) + timedelta(days=365)


@pytest.mark.parametrize(
    "conditions, outcome",
    [
        ({"IfMatch": "{etag}"}, 200),
        ({"IfMatch": '"0123456789abcdef0123456789abcdef"'}, 412),
        ({"IfMatch": '"0123456789abcdef0123456789abcdef", {etag}'}, 200),  # any of a list
        ({"IfMatch": "*"}, 200),
        ({"IfNoneMatch": "{etag}"}, 304),
        ({"IfNoneMatch": "W/{etag}"}, 304),  # weak comparison
        ({"IfNoneMatch": '"0123456789abcdef0123456789abcdef"'}, 200),
        ({"IfModifiedSince": PAST}, 200),
        ({"IfModifiedSince": FUTURE}, 304),
        ({"IfUnmodifiedSince": PAST}, 412),
        ({"IfUnmodifiedSince": FUTURE}, 200),
        # AWS's precedence: If-Match true wins over If-Unmodified-Since false ...
        ({"IfMatch": "{etag}", "IfUnmodifiedSince": PAST}, 200),
        # ... and If-None-Match false wins over If-Modified-Since true.
        ({"IfNoneMatch": "{etag}", "IfModifiedSince": PAST}, 304),
        ({"IfNoneMatch": '"0123456789abcdef0123456789abcdef"', "IfModifiedSince": FUTURE}, 200),
        # 412 before 304
        ({"IfMatch": '"0123456789abcdef0123456789abcdef"', "IfNoneMatch": "{etag}"}, 412),
    ],
)
def test_conditional_get_and_head(s3: BaseClient, bucket: str, conditions: dict[str, object], outcome: int) -> None:
    etag = put(s3, bucket, "c")["ETag"]
    args = {k: v.replace("{etag}", str(etag)) if isinstance(v, str) else v for k, v in conditions.items()}
    for call in (s3.get_object, s3.head_object):
        if outcome == 200:
            assert call(Bucket=bucket, Key="c", **args)["ResponseMetadata"]["HTTPStatusCode"] == 200
            continue
        with pytest.raises(ClientError) as e:
            call(Bucket=bucket, Key="c", **args)
        assert failure(e)[0] == outcome
        if outcome == 412 and call is s3.get_object:
            assert failure(e)[1] == "PreconditionFailed"
        if outcome == 304:
            assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["etag"] == etag


def test_response_overrides(s3: BaseClient, bucket: str) -> None:
    put(s3, bucket, "o", ContentType="text/plain", ContentLanguage="en")
    overrides = {
        "ResponseContentType": "application/x-override",
        "ResponseContentLanguage": "fr",
        "ResponseExpires": datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC),
        "ResponseCacheControl": "no-store",
        "ResponseContentDisposition": 'attachment; filename="x y.bin"',
        "ResponseContentEncoding": "identity",
    }
    got = s3.get_object(Bucket=bucket, Key="o", **overrides)  # type: ignore[arg-type]
    headers = got["ResponseMetadata"]["HTTPHeaders"]
    assert got["ContentType"] == "application/x-override"
    assert got["ContentLanguage"] == "fr"
    assert headers["expires"] == "Tue, 06 May 2031 07:08:09 GMT"
    assert got["CacheControl"] == "no-store"
    assert got["ContentDisposition"] == 'attachment; filename="x y.bin"'
    assert got["ContentEncoding"] == "identity"
    assert got["Body"].read() == BODY
    assert s3.head_object(Bucket=bucket, Key="o")["ContentType"] == "text/plain"  # nothing stored


# delete -----------------------------------------------------------------------------------------
def test_delete_object_is_idempotent(s3: BaseClient, bucket: str) -> None:
    put(s3, bucket, "d")
    for _ in range(2):
        result = s3.delete_object(Bucket=bucket, Key="d")
        assert result["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="d")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_version_id_null_names_the_object(s3: BaseClient, bucket: str) -> None:
    put(s3, bucket, "v")
    assert s3.get_object(Bucket=bucket, Key="v", VersionId="null")["Body"].read() == BODY
    assert s3.head_object(Bucket=bucket, Key="v", VersionId="null")["ContentLength"] == len(BODY)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="v", VersionId="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")
    assert failure(e)[0] == 400
    assert s3.delete_object(Bucket=bucket, Key="v", VersionId="null")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="v")


def test_delete_objects_verbose_and_quiet(s3: BaseClient, bucket: str) -> None:
    keys = ["a", "b/c", "d e", "gone-already"]
    for key in keys[:3]:
        put(s3, bucket, key, b"x")
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert sorted(d["Key"] for d in result["Deleted"]) == sorted(keys)  # deleting nothing is a success
    assert "Errors" not in result
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)

    for key in keys[:3]:
        put(s3, bucket, key, b"x")
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
    assert "Deleted" not in quiet and "Errors" not in quiet
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_delete_objects_reports_errors_per_key(s3: BaseClient, bucket: str) -> None:
    put(s3, bucket, "ok", b"x")
    put(s3, bucket, "versioned", b"x")
    objects = [{"Key": "ok"}, {"Key": "versioned", "VersionId": "not-a-version"}, {"Key": "k" * 1025}]
    for quiet in (False, True):
        result = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": quiet})  # type: ignore[typeddict-item]
        errors = {err["Key"]: err["Code"] for err in result["Errors"]}
        assert errors == {"versioned": "NoSuchVersion", "k" * 1025: "KeyTooLongError"}
        assert [d["Key"] for d in result.get("Deleted", [])] == ([] if quiet else ["ok"])
    assert s3.head_object(Bucket=bucket, Key="versioned")["ContentLength"] == 1


# keys -------------------------------------------------------------------------------------------
KEYS = [
    "with space",
    "plus+sign",
    "percent%20literal",
    '&+-é"',
    "ünïcödé/日本語/🙂",
    "path/../dot/./segments",
    "a=b&c=d?e#f",
    "tilde~star*paren(s)'quote'",
    "k" * 1024,
    "é" * 512,  # 1024 bytes of UTF-8
]


@pytest.mark.parametrize("key", KEYS, ids=range(len(KEYS)))
def test_awkward_keys_round_trip(s3: BaseClient, bucket: str, key: str) -> None:
    put(s3, bucket, key, key.encode())
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(key.encode())
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
    assert [o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]] == [key]
    s3.delete_object(Bucket=bucket, Key=key)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_large_object_round_trip(endpoint: Endpoint) -> None:
    """Several MiB through every layer (chunking, aws-chunked decoding over https)."""
    s3 = endpoint.client()
    name = unique_bucket_name()
    s3.create_bucket(Bucket=name)
    body = hashlib.sha256(b"seed").digest() * (5 * 1024 * 1024 // 32 + 7)
    put(s3, name, "big", body)
    got = s3.get_object(Bucket=name, Key="big")
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(body).digest()
    part = s3.get_object(Bucket=name, Key="big", Range="bytes=3000000-3000099")["Body"].read()
    assert part == body[3000000:3000100]


@pytest.mark.parametrize(
    "sent, stored",
    [("aws-chunked, gzip", "gzip"), ("gzip,aws-chunked", "gzip"), ("deflate, gzip", "deflate, gzip"), ("br", "br")],
)
def test_content_encoding_is_kept_as_sent_without_aws_chunked(
    http_endpoint: Endpoint, http_bucket: str, sent: str, stored: str
) -> None:
    """`aws-chunked` belongs to the transfer; every other coding is the object's, kept as written."""
    response = (
        send(
            http_endpoint,
            "PUT",
            f"/{http_bucket}/enc",
            headers=[("Content-Encoding", sent)],
            body=b"data",
            payload="UNSIGNED-PAYLOAD",
        )
        if "aws-chunked" not in sent
        else None
    )
    if response is None:
        s3 = http_endpoint.client()
        s3.put_object(Bucket=http_bucket, Key="enc", Body=b"data", ContentEncoding=sent)
    else:
        assert response.status_code == 200, response.text
    head = http_endpoint.client().head_object(Bucket=http_bucket, Key="enc")
    assert head["ContentEncoding"] == stored
