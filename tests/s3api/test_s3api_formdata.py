"""The streaming multipart/form-data parser behind POST Object, fed whole and byte by byte."""

from __future__ import annotations

import pytest

from s3api.errors import S3Error
from s3api.formdata import FormParser, PartData, PartEnd, PartStart, boundary_of

BOUNDARY = b"----pyblobBoundary7MA4YWxkTrZu0gW"
BODY = (
    b"preamble to ignore\r\n"
    b"------pyblobBoundary7MA4YWxkTrZu0gW\r\n"
    b'Content-Disposition: form-data; name="key"\r\n\r\n'
    b"uploads/${filename}\r\n"
    b"------pyblobBoundary7MA4YWxkTrZu0gW\r\n"
    b'Content-Disposition: form-data; name="file"; filename="a \\"b\\".txt"\r\n'
    b"Content-Type: text/plain\r\n\r\n"
    b"line one\r\n--not the boundary\r\n------pyblobBoundary7MA4YWxkTrZu0gX\r\n"
    b"\r\n------pyblobBoundary7MA4YWxkTrZu0gW--\r\n"
    b"epilogue to ignore"
)
FILE = b"line one\r\n--not the boundary\r\n------pyblobBoundary7MA4YWxkTrZu0gX\r\n"


def parse(body: bytes, step: int) -> list[object]:
    parser = FormParser(BOUNDARY)
    events: list[object] = []
    for i in range(0, len(body), step):
        events.extend(parser.feed(body[i : i + step]))
    parser.finish()
    return events


def merged(events: list[object]) -> list[object]:
    """Adjacent data pieces joined: how the parser splits content depends on the feeds."""
    out: list[object] = []
    for e in events:
        if isinstance(e, PartData) and out and isinstance(out[-1], PartData):
            out[-1] = PartData(out[-1].data + e.data)
        else:
            out.append(e)
    return out


@pytest.mark.parametrize("step", [1, 2, 7, 38, 39, 40, len(BODY)])
def test_parts_whatever_the_feeds(step: int) -> None:
    assert merged(parse(BODY, step)) == [
        PartStart("key", None, ""), PartData(b"uploads/${filename}"), PartEnd(),
        PartStart("file", 'a "b".txt', "text/plain"), PartData(FILE), PartEnd(),
    ]


def test_content_is_not_held_back() -> None:
    parser = FormParser(BOUNDARY)
    head = BODY[: BODY.index(b"line one")]
    list(parser.feed(head))
    pieces = [e for e in parser.feed(b"x" * 100_000) if isinstance(e, PartData)]
    assert sum(len(p.data) for p in pieces) >= 100_000 - len(BOUNDARY) - 4


def test_empty_part() -> None:
    body = b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="e"\r\n\r\n\r\n--' + BOUNDARY + b"--"
    assert parse(body, 3) == [PartStart("e", None, ""), PartEnd()]


@pytest.mark.parametrize(
    "body",
    [
        BODY[:-40],  # ends inside the file
        b"--" + BOUNDARY + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n--" + BOUNDARY + b"--",  # no disposition
        b"--" + BOUNDARY + b"\r\nContent-Disposition: attachment; name=x\r\n\r\nx\r\n--" + BOUNDARY + b"--",
        b"--" + BOUNDARY + b"garbage\r\n",
        b"--" + BOUNDARY + b"\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    ],
)
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(S3Error) as e:
        parse(body, 5)
    assert e.value.code == "MalformedPOSTRequest"


def test_boundary_of() -> None:
    assert boundary_of("multipart/form-data; boundary=abc") == b"abc"
    assert boundary_of('Multipart/Form-Data; charset=utf-8; boundary="a b"') == b"a b"
    assert boundary_of("application/x-www-form-urlencoded") is None
    with pytest.raises(S3Error):
        boundary_of("multipart/form-data")
