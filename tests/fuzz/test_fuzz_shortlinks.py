"""The short links' inputs: tus headers (Upload-Offset, Upload-Length, Upload-Metadata), link and
upload ids, page and cursor options, upload options, WebSocket file headers
(`shortlinks.tus`, `shortlinks.api`, `shortlinks.formupload`, `shortlinks.websocket`, the id rules of
`objstore.links`). Each is a value or an ApiError with a 4xx, never another exception.
"""

from __future__ import annotations

import base64
import json

from fuzzing import API_ERRORS, attempt, budget, rarely
from hypothesis import example, given
from hypothesis import strategies as st
from starlette.requests import Request

from objstore.links import links, resumable
from shortlinks.api import check_cursor, optional_int, optional_number, page_limit, required_str
from shortlinks.errors import ApiError
from shortlinks.formupload import UploadOptions
from shortlinks.tus import MAX_METADATA, header_int, parse_metadata
from shortlinks.websocket import parse_header

# Header values as Starlette hands them over: ISO-8859-1 text of the bytes.
LATIN1 = st.text(st.characters(max_codepoint=0xFF), max_size=40)
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
NUMBERS = st.integers(-(2**70), 2**70).map(str) | st.sampled_from(
    ["", "0", "00", "9" * 19, "9" * 20, "²", "٣", " 1", "1e3", "0x1", "1" * 5000]
)


def request_with(name: str, value: str) -> Request:
    return Request(
        {"type": "http", "method": "PATCH", "path": "/", "headers": [(name.encode(), value.encode("latin-1"))]}
    )


@budget(300)
@given(name=st.sampled_from(["upload-offset", "upload-length"]), value=NUMBERS.filter(lambda v: v.isascii()) | LATIN1)
def test_tus_numbers_are_integers_or_400(name: str, value: str) -> None:
    number = attempt(header_int, request_with(name, value), name, allowed=API_ERRORS)
    assert isinstance(number, ApiError) or 0 <= number < 10**19  # type: ignore[operator]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@st.composite
def metadata_headers(draw: st.DrawFn) -> str:
    if rarely(draw):
        return draw(LATIN1 | st.just("x" * (MAX_METADATA + 1)))
    pairs = []
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(["filename", "name", "filetype", "type", "é", "", "a b"]) | LATIN1)
        values = st.sampled_from(["", b64("a.txt"), "!!", "YQ", "/w==", b64("é" * 3)])
        value = draw(values | ANY_TEXT.map(b64) | LATIN1)
        pairs.append(f"{key} {value}" if value or not rarely(draw) else key)
    return draw(st.sampled_from([",", ", ", " ,"])).join(pairs)


@budget(400)
@given(header=metadata_headers())
@example(header="filename \x80").via("discovered failure")  # ValueError of b64decode: a 500
def test_tus_metadata_is_parsed_or_400(header: str) -> None:
    result = attempt(parse_metadata, header, allowed=API_ERRORS)
    if isinstance(result, dict):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in result.items())


@budget(300)
@given(link_id=ANY_TEXT | st.text("abcdefghjkmnpqrstuvwxyz23456789ABC_-", max_size=80))
def test_ids_are_valid_or_not(link_id: str) -> None:
    """An id decides nothing by raising: an invalid one is looked up as no link (404)."""
    assert isinstance(links.is_valid_id(link_id), bool)
    assert isinstance(resumable.is_valid_id(link_id), bool)
    if links.is_valid_id(link_id):
        assert len(link_id.encode()) <= 64  # a key LMDB can take (511 bytes at most)


@budget(300)
@given(limit=st.none() | NUMBERS | ANY_TEXT, cursor=st.none() | ANY_TEXT | st.just("0123456789abcdef"))
def test_page_options_are_read_or_400(limit: str | None, cursor: str | None) -> None:
    attempt(page_limit, limit, allowed=API_ERRORS)
    attempt(check_cursor, cursor, allowed=API_ERRORS)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT | st.just("\ud800"),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(ANY_TEXT, kids, max_size=3),
    max_leaves=8,
)


@budget(300)
@given(body=st.dictionaries(st.sampled_from(["key", "expires_in", "max_downloads", "name"]), JSON))
def test_rest_body_fields_are_read_or_400(body: dict[str, object]) -> None:
    attempt(required_str, body, "key", allowed=API_ERRORS)
    attempt(optional_number, body, "expires_in", allowed=API_ERRORS)
    attempt(optional_int, body, "max_downloads", allowed=API_ERRORS)


@budget(300)
@given(
    fields=st.lists(
        st.tuples(
            st.sampled_from(["expires_in", "max_downloads"]),
            NUMBERS | ANY_TEXT | st.sampled_from(["nan", "inf", "-1", "1e999"]),
        ),
        max_size=3,
    )
)
def test_upload_options_are_read_or_400(fields: list[tuple[str, str]]) -> None:
    options = UploadOptions()
    for name, value in fields:
        attempt(options.set_field, name, value, allowed=API_ERRORS)
    attempt(options.check, allowed=API_ERRORS)


@budget(300)
@given(
    text=ANY_TEXT
    | st.builds(json.dumps, st.dictionaries(st.sampled_from(["name", "size", "type"]), JSON))
    | st.just("{" * 5000)
    | st.just('{"name": "a", "size": ' + "[" * 3000 + "]" * 3000 + "}")
)
def test_websocket_file_headers_are_read_or_400(text: str) -> None:
    attempt(parse_header, text, allowed=API_ERRORS)
