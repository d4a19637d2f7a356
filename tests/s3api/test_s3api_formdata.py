"""The streaming multipart/form-data parser behind POST Object and the REST uploads, fed whole and
byte by byte, within each caller's bounds."""

from __future__ import annotations

import pytest

from s3api.formdata import Bounds, FormError, FormParser, PartData, PartEnd, PartStart, boundary_of
from shortlinks.formparts import BOUNDS as REST_BOUNDS
from shortlinks.formparts import without_path

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


def parse(body: bytes, step: int, bounds: Bounds = Bounds()) -> list[object]:
    parser = FormParser(BOUNDARY, bounds)
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
            assert e.offset == out[-1].offset + len(out[-1].data)  # pieces follow each other in the body
            out[-1] = PartData(out[-1].data + e.data, out[-1].offset)
        else:
            out.append(e)
    return out


@pytest.mark.parametrize("step", [1, 2, 7, 38, 39, 40, len(BODY)])
def test_parts_whatever_the_feeds(step: int) -> None:
    assert merged(parse(BODY, step)) == [
        PartStart("key", None, None),
        PartData(b"uploads/${filename}", BODY.index(b"uploads/")),
        PartEnd(),
        PartStart("file", 'a "b".txt', "text/plain"),
        PartData(FILE, BODY.index(FILE)),
        PartEnd(),
    ]


def test_content_is_not_held_back() -> None:
    parser = FormParser(BOUNDARY)
    head = BODY[: BODY.index(b"line one")]
    list(parser.feed(head))
    pieces = [e for e in parser.feed(b"x" * 100_000) if isinstance(e, PartData)]
    assert sum(len(p.data) for p in pieces) >= 100_000 - len(BOUNDARY) - 4


def test_empty_part() -> None:
    body = b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="e"\r\n\r\n\r\n--' + BOUNDARY + b"--"
    assert parse(body, 3) == [PartStart("e", None, None), PartEnd()]


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
    with pytest.raises(FormError):
        parse(body, 5)


def test_the_epilogue_is_not_needed() -> None:
    parser = FormParser(BOUNDARY)
    list(parser.feed(BODY[: BODY.index(b"--\r\nepilogue")] + b"--"))
    assert parser.ended
    parser.finish()


def part(headers: bytes) -> bytes:
    return b"--" + BOUNDARY + b"\r\n" + headers + b"\r\n\r\nx\r\n--" + BOUNDARY + b"--"


DISPOSITION = b'Content-Disposition: form-data; name="f"; filename="a.txt"'


def test_the_rest_api_bounds_the_header_lines() -> None:
    eight = DISPOSITION + b"".join(b"\r\nX-%d: 1" % i for i in range(7))
    assert parse(part(eight), 4, REST_BOUNDS)[0] == PartStart("f", "a.txt", None)
    with pytest.raises(FormError, match="header lines"):
        parse(part(eight + b"\r\nX-8: 1"), 4, REST_BOUNDS)
    with pytest.raises(FormError, match="longer than 1024"):
        parse(part(DISPOSITION + b"\r\nX-Long: " + b"a" * 1020), 4, REST_BOUNDS)
    assert parse(part(eight + b"\r\nX-8: 1"), 4)[0] == PartStart("f", "a.txt", None)  # POST Object's: 8 KiB


def test_header_text_that_is_not_utf8() -> None:
    latin = b'Content-Disposition: form-data; name="f"; filename="caf\xe9.txt"'
    with pytest.raises(FormError, match="UTF-8"):
        parse(part(latin), 7)  # POST Object: refused
    assert parse(part(latin), 7, REST_BOUNDS)[0] == PartStart("f", "caf\ufffd.txt", None)  # REST: kept


def test_quoted_pairs_and_backslashes_in_file_names() -> None:
    def filename(quoted: bytes) -> str | None:
        start = parse(part(b'Content-Disposition: form-data; name="f"; filename=' + quoted), 9)[0]
        assert isinstance(start, PartStart)
        return start.filename

    assert filename(b'"a \\"b\\".txt"') == 'a "b".txt'
    assert filename(b'"a\\b.txt"') == "a\\b.txt"  # a browser sends a backslash as it is
    assert filename(b'"C:\\dir\\a.txt"') == "C:\\dir\\a.txt"
    assert without_path(PartStart("f", "C:\\dir\\a.txt", None)).filename == "a.txt"  # REST: the last segment
    assert without_path(PartStart("f", "\\\\host\\a.txt", None)).filename == "a.txt"
    assert without_path(PartStart("f", "a\\b.txt", None)).filename == "a\\b.txt"


def test_boundary_of() -> None:
    assert boundary_of("multipart/form-data; boundary=abc") == b"abc"
    assert boundary_of('Multipart/Form-Data; charset=utf-8; boundary="a b"') == b"a b"
    assert boundary_of("application/x-www-form-urlencoded") is None
    assert boundary_of("multipart/form-data; boundary=" + "b" * 70) == b"b" * 70
    for bad in ("multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=" + "b" * 71):
        with pytest.raises(FormError):
            boundary_of(bad)
