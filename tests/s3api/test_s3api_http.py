"""Range and conditional-request parsing, as tables (RFC 9110 as S3 applies it).

https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html (Range, If-* headers and the
precedence between them).
"""

from __future__ import annotations

import pytest

from objstore import ObjectRecord
from s3api.errors import S3Error
from s3api.http import check_conditions, etag_matches, parse_range, request_attributes

SIZE = 100


@pytest.mark.parametrize(
    "header, expected",  # expected: (start, end exclusive), or None for the whole object
    [
        (None, None),
        ("", None),
        ("bytes=0-0", (0, 1)),
        ("bytes=0-99", (0, 100)),
        ("bytes=10-19", (10, 20)),
        ("bytes=90-1000", (90, 100)),  # end past the object: clamped
        ("bytes=50-", (50, 100)),  # open-ended
        ("bytes=99-", (99, 100)),
        ("bytes=-1", (99, 100)),  # suffix
        ("bytes=-30", (70, 100)),
        ("bytes=-100", (0, 100)),
        ("bytes=-1000", (0, 100)),  # suffix longer than the object: all of it
        (" bytes=1-2 ", (1, 3)),
        # ignored, whole object, as S3 does
        ("bytes=5-1", None),  # last < first: syntactically invalid
        ("bytes=-", None),
        ("bytes=0-1,3-4", None),  # multiple ranges
        ("bytes=a-b", None),
        ("items=0-1", None),
        ("bytes 0-1", None),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    "header, size",
    [("bytes=100-", 100), ("bytes=100-200", 100), ("bytes=1000-", 100), ("bytes=-0", 100), ("bytes=0-", 0), ("bytes=-5", 0)],
)
def test_unsatisfiable_range(header: str, size: int) -> None:
    with pytest.raises(S3Error) as e:
        parse_range(header, size)
    assert (e.value.code, e.value.status) == ("InvalidRange", 416)
    assert e.value.headers["content-range"] == f"bytes */{size}"
    assert e.value.extra["ActualObjectSize"] == str(size)


ETAG = "0123456789abcdef0123456789abcdef"
OTHER = '"ffffffffffffffffffffffffffffffff"'
CREATED = 1_700_000_000.75  # Tue, 14 Nov 2023 22:13:20 GMT (fractions dropped, as HTTP dates do)
AT = "Tue, 14 Nov 2023 22:13:20 GMT"
BEFORE = "Tue, 14 Nov 2023 22:13:19 GMT"
AFTER = "Tue, 14 Nov 2023 22:13:21 GMT"
RECORD = ObjectRecord(key="k", size=SIZE, etag=ETAG, manifest="00", owner="admin", created=CREATED)


@pytest.mark.parametrize(
    "headers, outcome",
    [
        ({}, None),
        ({"if-match": f'"{ETAG}"'}, None),
        ({"if-match": ETAG}, None),  # unquoted, as some clients send it
        ({"if-match": "*"}, None),
        ({"if-match": f'{OTHER}, "{ETAG}"'}, None),
        ({"if-match": OTHER}, 412),
        ({"if-none-match": f'"{ETAG}"'}, 304),
        ({"if-none-match": f'W/"{ETAG}"'}, 304),
        ({"if-none-match": "*"}, 304),
        ({"if-none-match": OTHER}, None),
        ({"if-modified-since": BEFORE}, None),
        ({"if-modified-since": AT}, 304),  # not modified since exactly then
        ({"if-modified-since": AFTER}, 304),
        ({"if-modified-since": "not a date"}, None),  # invalid: ignored
        ({"if-unmodified-since": BEFORE}, 412),
        ({"if-unmodified-since": AT}, None),
        ({"if-unmodified-since": AFTER}, None),
        ({"if-unmodified-since": "yesterday"}, None),
        # If-Match true wins over If-Unmodified-Since false (AWS's precedence) ...
        ({"if-match": f'"{ETAG}"', "if-unmodified-since": BEFORE}, None),
        ({"if-match": OTHER, "if-unmodified-since": AFTER}, 412),
        # ... and If-None-Match false wins over If-Modified-Since true.
        ({"if-none-match": f'"{ETAG}"', "if-modified-since": BEFORE}, 304),
        ({"if-none-match": OTHER, "if-modified-since": AFTER}, None),
        # 412 is decided before 304
        ({"if-match": OTHER, "if-none-match": f'"{ETAG}"'}, 412),
        ({"if-unmodified-since": BEFORE, "if-modified-since": AFTER}, 412),
        ({"if-match": f'"{ETAG}"', "if-none-match": f'"{ETAG}"'}, 304),
    ],
)
def test_check_conditions(headers: dict[str, str], outcome: int | None) -> None:
    assert check_conditions(headers, RECORD) == outcome


def test_etag_lists() -> None:
    assert etag_matches(' "a" , "b" ', "b")
    assert not etag_matches('"ab"', "a")


def test_request_attributes_strip_aws_chunked_and_keep_metadata() -> None:
    headers = {
        "content-type": "text/plain",
        "content-encoding": "gzip,aws-chunked",
        "cache-control": "no-cache",
        "x-amz-meta-colour": "blue",
        "x-amz-date": "ignored",
    }
    content_type, standard, meta = request_attributes(headers)
    assert content_type == "text/plain"
    assert standard == {"cache-control": "no-cache", "content-encoding": "gzip"}
    assert meta == {"colour": "blue"}
    assert request_attributes({"content-encoding": "aws-chunked"})[:2] == ("binary/octet-stream", {})


def test_request_attributes_bound_user_metadata() -> None:
    with pytest.raises(S3Error) as e:
        request_attributes({"x-amz-meta-big": "x" * 3000})
    assert e.value.code == "MetadataTooLarge"
