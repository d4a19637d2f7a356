"""Range and conditional headers, numbers and dates, metadata and checksum headers, the request path
(`s3api.conditional`, `s3api.http`, `s3api.checksums`, the path helpers of `s3api.app`).

A Range is ignored (None), a satisfiable [start, end) within the object, or RangeNotSatisfiable; a
condition is 304, 412 or nothing; metadata and checksum headers are kept or a 4xx S3Error.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from fuzzing import attempt, budget, rarely
from hypothesis import given
from hypothesis import strategies as st

from s3api import checksums
from s3api.app import decoded_path, split_path
from s3api.conditional import RangeNotSatisfiable, check_conditions, not_modified, parse_http_date, parse_range
from s3api.errors import S3Error
from s3api.http import parse_count, request_attributes, stored_encoding, unmail

# Header values as the app hands them over: UTF-8 text, or ISO-8859-1 where the bytes were not.
HEADER_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
DIGITS = st.sampled_from(["", "0", "1", "00", "9" * 19, "9" * 20, "18446744073709551616", "٣", "1" * 5000])
NUMBER_TEXT = DIGITS | st.integers(0, 2**70).map(str)
SIZES = st.integers(0, 2**63) | st.integers(0, 1000)


@st.composite
def range_headers(draw: st.DrawFn) -> str:
    if rarely(draw):
        return draw(HEADER_TEXT)
    specs = [f"{draw(NUMBER_TEXT)}-{draw(NUMBER_TEXT)}" for _ in range(draw(st.integers(1, 3)))]
    unit = draw(st.sampled_from(["bytes=", "bytes=", "BYTES=", "bytes =", "items=", " bytes="]))
    return unit + draw(st.sampled_from([",", ", "])).join(specs) + draw(st.sampled_from(["", " ", "\t"]))


@budget(500)
@given(header=range_headers(), size=SIZES)
def test_a_range_is_ignored_satisfied_or_refused(header: str, size: int) -> None:
    result = attempt(parse_range, header, size)
    if isinstance(result, RangeNotSatisfiable):
        assert result.size == size
    elif result is not None:
        assert isinstance(result, tuple)
        start, end = result
        assert 0 <= start < end <= size


ETAGS = st.sampled_from(['"abc"', "abc", "*", 'W/"abc"', '"abc", "def"', ",", "", '"', "W/", '"x" , *'])
HTTP_DATES = st.sampled_from(
    [
        "Tue, 01 Jan 2030 00:00:00 GMT",
        "Mon, 01 Jan 0001 00:00:00 +0100",
        "Fri, 31 Dec 9999 23:59:59 -2359",
        "1 Jan 99999 0:0:0",
        "Tue, 1 Jan 2020 0:0 +9999",
        "Tue, 99 Jan 2020 99:99:99 GMT",
        "",
    ]
)
CONDITIONS = st.dictionaries(
    st.sampled_from(["if-match", "if-none-match", "if-modified-since", "if-unmodified-since"]),
    ETAGS | HTTP_DATES | HEADER_TEXT,
)


@budget(400)
@given(headers=CONDITIONS, created=st.floats(0, 253402300799))
def test_conditions_are_met_or_answer_304_or_412(headers: dict[str, str], created: float) -> None:
    record: Any = SimpleNamespace(etag="abc", created=created)
    assert check_conditions(headers, record) in (None, 304, 412)
    attempt(not_modified, headers, record)


@budget(300)
@given(text=HTTP_DATES | HEADER_TEXT)
def test_http_dates_parse_or_are_none(text: str) -> None:
    assert parse_http_date(text) is None or isinstance(parse_http_date(text), float)


@budget(300)
@given(text=NUMBER_TEXT | HEADER_TEXT)
def test_counts_are_small_non_negative_integers_or_none(text: str) -> None:
    number = parse_count(text)
    assert number is None or 0 <= number < 10**19


META_NAMES = st.text("abcxyz-_.0", min_size=0, max_size=20)
ENCODED_WORDS = st.sampled_from(
    ["=?UTF-8?B?w6k=?=", "=?UTF-8?Q?=C3=A9?=", "=?x?B?!!?=", "=?UTF-8?B?", "=?=", "=?utf-7?B?Kw==?="]
)


@budget(400)
@given(
    meta=st.dictionaries(META_NAMES.map(lambda n: "x-amz-meta-" + n), HEADER_TEXT | ENCODED_WORDS, max_size=5),
    standard=st.dictionaries(
        st.sampled_from(["content-type", "content-encoding", "cache-control", "expires", "content-disposition"]),
        HEADER_TEXT | st.sampled_from(["aws-chunked", "aws-chunked, gzip", ", ,", "gzip, aws-chunked"]),
    ),
)
def test_object_attributes_are_kept_or_refused(meta: dict[str, str], standard: dict[str, str]) -> None:
    attempt(request_attributes, {**standard, **meta})
    assert isinstance(stored_encoding(standard.get("content-encoding", "")), str)
    for value in meta.values():
        assert isinstance(unmail(value), str)


CHECKSUM_NAMES = st.sampled_from(
    ["crc32", "crc32c", "crc64nvme", "sha1", "sha256", "md5", "CRC32", "", "type", "mode", "algorithm", "x"]
)


@budget(400)
@given(
    given=st.dictionaries(CHECKSUM_NAMES.map(lambda n: "x-amz-checksum-" + n), HEADER_TEXT | ETAGS, max_size=3),
    md5=st.none()
    | HEADER_TEXT
    | st.sampled_from(["1B2M2Y8AsgTpgAmY7PhCfg==", "AAAA", "====", "1B2M2Y8AsgTpgAmY7PhCfg"]),
    trailer=st.none() | HEADER_TEXT,
    hint=st.none() | CHECKSUM_NAMES,
    body=st.binary(max_size=64),
)
def test_checksum_headers_verify_or_are_client_errors(
    given: dict[str, str], md5: str | None, trailer: str | None, hint: str | None, body: bytes
) -> None:
    headers = dict(given)
    for name, value in (("content-md5", md5), ("x-amz-trailer", trailer), ("x-amz-sdk-checksum-algorithm", hint)):
        if value is not None:
            headers[name] = value
    attempt(checksums.requested, headers)
    attempt(checksums.verify_small_body, headers, {}, body)


@budget(300)
@given(raw=st.text(st.characters(max_codepoint=0xFF), max_size=60), host=HEADER_TEXT)
def test_any_request_path_is_decoded_or_refused(raw: str, host: str) -> None:
    """The raw path as uvicorn gives it (latin-1 text of its bytes): UTF-8 or 400 InvalidURI."""
    path = attempt(decoded_path, "/" + raw, allowed=(S3Error,))
    if isinstance(path, str):
        bucket, key, _ = split_path(path, host, "s3.example.test")
        assert isinstance(bucket, str) and isinstance(key, str)
