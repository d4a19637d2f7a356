"""Range and conditional-request parsing, as tables (RFC 9110 as S3 applies it), shared by S3 GET
and /s/ (s3api/conditional.py), and how each edge answers a refusal.

https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html (Range, If-* headers and the
precedence between them).
"""

from __future__ import annotations

import pytest

from objstore import ObjectRecord
from s3api import errors as s3_errors
from s3api.conditional import (
    ConditionFailed,
    RangeNotSatisfiable,
    Span,
    check_conditions,
    etag_matches,
    not_modified,
    parse_range,
    requested_span,
)
from shortlinks import errors as link_errors

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
    [
        ("bytes=100-", 100),
        ("bytes=100-200", 100),
        ("bytes=1000-", 100),
        ("bytes=-0", 100),
        ("bytes=0-", 0),
        ("bytes=-5", 0),
    ],
)
def test_unsatisfiable_range(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as e:
        parse_range(header, size)
    assert e.value.headers == {"content-range": f"bytes */{size}"}
    s3 = s3_errors.from_conditional(e.value)
    assert (s3.code, s3.status, s3.headers) == ("InvalidRange", 416, e.value.headers)
    assert s3.extra["ActualObjectSize"] == str(size)
    assert s3.message == "The requested range is not satisfiable"
    links = link_errors.from_conditional(e.value)
    assert (links.status, links.detail, links.headers) == (416, "range not satisfiable", e.value.headers)


@pytest.mark.parametrize(
    "header, span, headers",
    [
        (None, Span(0, SIZE, SIZE, partial=False), {"content-length": "100"}),
        ("bytes=a-b", Span(0, SIZE, SIZE, partial=False), {"content-length": "100"}),
        ("bytes=10-19", Span(10, 20, SIZE, partial=True), {"content-length": "10", "content-range": "bytes 10-19/100"}),
        ("bytes=-1", Span(99, 100, SIZE, partial=True), {"content-length": "1", "content-range": "bytes 99-99/100"}),
    ],
)
def test_requested_span(header: str | None, span: Span, headers: dict[str, str]) -> None:
    assert requested_span(header, SIZE) == span
    assert (span.status, span.headers()) == (206 if span.partial else 200, headers)


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


def test_not_modified_answers_the_validators() -> None:
    assert not_modified({"if-none-match": f'"{ETAG}"'}, RECORD) == {"etag": f'"{ETAG}"', "last-modified": AT}
    assert not_modified({"if-none-match": OTHER}, RECORD) is None


@pytest.mark.parametrize(
    "headers, condition",
    [({"if-match": OTHER}, "If-Match"), ({"if-unmodified-since": BEFORE}, "If-Unmodified-Since")],
)
def test_a_failed_precondition_names_its_header(headers: dict[str, str], condition: str) -> None:
    with pytest.raises(ConditionFailed) as e:
        not_modified(headers, RECORD)
    assert e.value.condition == condition
    s3 = s3_errors.from_conditional(e.value)
    assert (s3.code, s3.status, s3.extra) == ("PreconditionFailed", 412, {"Condition": condition})
    links = link_errors.from_conditional(e.value)
    assert (links.status, links.detail) == (412, "precondition failed")
