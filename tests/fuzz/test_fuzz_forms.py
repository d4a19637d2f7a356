"""multipart/form-data bodies and POST Object policies (`s3api.formdata`, `s3api.policy`, the form
reading of `s3api.ops.post`).

The form parser's outcome never depends on how the body is cut; it yields the parts as sent or a
FormError, never holds more than a part's headers; a POST Object form, read as the handler reads it
(fields, key, signature fields, policy, tags, metadata, redirect), comes to a 4xx S3Error or a
value; a policy document of any shape is a Policy or InvalidPolicyDocument.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from fuzzing import attempt, budget, peak_bytes, rarely
from hypothesis import example, given
from hypothesis import strategies as st

from s3api import checksums, policy
from s3api.errors import S3Error
from s3api.formdata import Bounds, Event, FormError, FormParser, PartData, PartEnd, PartStart, boundary_of
from s3api.http import request_attributes
from s3api.ops.post import (
    Form,
    form_signature,
    form_tags,
    object_key,
    read_fields,
    redirect_target,
    reject_unsupported,
)
from shortlinks.formparts import BOUNDS as REST_BOUNDS

NAMES = st.sampled_from(
    [
        "key",
        "policy",
        "file",
        "x-amz-credential",
        "x-amz-algorithm",
        "x-amz-signature",
        "AWSAccessKeyId",
        "signature",
        "tagging",
        "acl",
        "success_action_status",
        "success_action_redirect",
        "Content-Type",
        "x-amz-meta-a",
        "x-amz-checksum-crc32",
        "Content-MD5",
        "bad name",
        "xé",
        "expires_in",
        "",
    ]
)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content_type: str | None
    content: bytes


@st.composite
def parts(draw: st.DrawFn) -> Part:
    name = draw(NAMES | TEXT)
    filename = draw(st.none() | TEXT | st.just("C:\\dir\\a.txt"))
    content_type = draw(st.none() | st.sampled_from(["text/plain", "image/png; x=1", ""]))
    return Part(name, filename, content_type, draw(st.binary(max_size=80) | TEXT.map(str.encode)))


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode(boundary: bytes, items: list[Part]) -> bytes:
    out = bytearray()
    for p in items:
        out += b"--" + boundary + b"\r\n"
        disposition = f"form-data; name={quoted(p.name)}"
        if p.filename is not None:
            disposition += f"; filename={quoted(p.filename)}"
        out += f"Content-Disposition: {disposition}\r\n".encode()
        if p.content_type is not None:
            out += f"Content-Type: {p.content_type}\r\n".encode()
        out += b"\r\n" + p.content + b"\r\n"
    return bytes(out + b"--" + boundary + b"--\r\n")


@dataclass(frozen=True)
class Case:
    boundary: bytes
    parts: tuple[Part, ...]
    raw: bytes  # as sent: the encoded parts, perhaps changed
    cuts: tuple[int, ...]
    bounds: Bounds


BOUNDARIES = st.sampled_from([b"b", b"----WebKitFormBoundary7MA4YWxkTrZu0gW", b"x" * 70, b"--", b"a b", b"\r\n"])


@st.composite
def cases(draw: st.DrawFn, change: bool = True) -> Case:
    boundary = draw(BOUNDARIES)
    items = tuple(draw(st.lists(parts(), max_size=4)))
    raw = encode(boundary, list(items))
    if change and not rarely(draw, 3):
        at = draw(st.integers(0, len(raw)))
        noise = draw(st.binary(max_size=12) | st.sampled_from([b"\r\n", b"--", b"\r\n--" + boundary, b"\r\n\r\n"]))
        raw = raw[:at] + noise + raw[at + draw(st.integers(0, 6)) :]
    cuts = tuple(sorted(draw(st.lists(st.integers(0, len(raw)), max_size=10))))
    return Case(boundary, items, raw, cuts, draw(st.sampled_from([Bounds(), REST_BOUNDS])))


def events(case: Case, cuts: tuple[int, ...]) -> list[object]:
    """The parser's events, adjacent data merged (how content is split depends on the feeds)."""
    parser, out, start = FormParser(case.boundary, case.bounds), [], 0
    for cut in [*cuts, len(case.raw)]:
        out += list(parser.feed(case.raw[start:cut]))
        start = cut
    parser.finish()
    merged: list[object] = []
    for event in out:
        if isinstance(event, PartData) and merged and isinstance(merged[-1], bytes):
            merged[-1] += event.data
        else:
            merged.append(event.data if isinstance(event, PartData) else event)
    return merged


def outcome(case: Case, cuts: tuple[int, ...]) -> object:
    result = attempt(events, case, cuts, allowed=(FormError,))
    return "FormError" if isinstance(result, FormError) else result


@budget(300)
@given(case=cases(change=False))
def test_an_intact_form_parses_to_its_parts(case: Case) -> None:
    result = outcome(case, case.cuts)
    if b"\r\n--" + case.boundary in b"".join(b"\r\n" + p.content for p in case.parts) or b"\r\n" in case.boundary:
        return  # content that holds the delimiter ends its part early: well defined, but not these parts
    if any(
        "\r" in p.name or "\n" in p.name or "\r" in (p.filename or "") or "\n" in (p.filename or "") for p in case.parts
    ):
        return
    assert isinstance(result, list)
    starts = [e for e in result if isinstance(e, PartStart)]
    assert [(s.name, s.filename) for s in starts] == [(p.name, p.filename) for p in case.parts]


@budget(500)
@given(case=cases())
def test_a_form_has_one_outcome_whatever_the_pieces(case: Case) -> None:
    whole = outcome(case, ())
    assert outcome(case, case.cuts) == whole
    assert outcome(case, tuple(range(len(case.raw)))) == whole


@budget(200)
@given(
    content_type=TEXT
    | st.sampled_from(["multipart/form-data", "multipart/form-data; boundary=", 'multipart/form-data; boundary="a'])
    | st.builds(lambda b: f"multipart/form-data; boundary={b}", TEXT)
)
@example(content_type="multipart/form-data; boundary=\u0100").via("discovered failure")  # UnicodeEncodeError: a 500
def test_a_content_type_gives_a_boundary_or_a_form_error(content_type: str) -> None:
    result = attempt(boundary_of, content_type, allowed=(FormError,))
    assert result is None or isinstance(result, (bytes, FormError))


def test_memory_stays_bounded_whatever_the_form() -> None:
    """An endless preamble, endless part headers, an endless file: memory stays under a few pieces."""
    piece = b"\r\n-" * 21846  # 64 KiB, CRLFs and dashes: as near to a delimiter as bytes get

    def feed(prefix: bytes) -> None:
        parser = FormParser(b"boundary", Bounds())
        for _event in parser.feed(prefix):
            pass
        for _ in range(128):
            for _event in parser.feed(piece):
                pass

    for prefix in (b"", b"--boundary\r\n", b'--boundary\r\nContent-Disposition: form-data; name="f"\r\n\r\n'):
        peak, error = peak_bytes(lambda prefix=prefix: feed(prefix))
        assert error is None or isinstance(error, FormError), error
        assert peak < 4 * len(piece) + Bounds().header_bytes, f"{prefix!r}: {peak} bytes"


# --- POST Object: a form as the handler reads it -------------------------------------------------


async def _events(items: list[Event]) -> AsyncGenerator[Event, None]:
    for item in items:
        yield item


def read_form(items: list[Part]) -> object:
    """What handle_post_object does with a form before the store: fields, key, signature, policy,
    unsupported fields, tags, metadata, checksums and the redirect."""
    stream: list[Event] = []
    for p in items:
        stream += [PartStart(p.name, p.filename, p.content_type), PartData(p.content, 0), PartEnd()]
    form: Form = asyncio.run(read_fields(_events(stream)))
    fields = form.expanded()
    key = object_key(fields)
    signed = form_signature(fields)
    doc = policy.parse(fields.get("policy", ""))
    policy.check(doc, {**fields, "bucket": "bucket"}, "bucket", 0.0, signed.exempt)
    reject_unsupported(fields)
    return key, form_tags(fields), request_attributes(fields), checksums.requested(fields), redirect_target(fields)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(TEXT, kids, max_size=4),
    max_leaves=12,
)
CONDITIONS = st.lists(
    st.dictionaries(st.sampled_from(["key", "bucket", "acl", "Content-Type"]), TEXT | JSON, min_size=1, max_size=2)
    | st.tuples(st.sampled_from(["eq", "starts-with", "STARTS-WITH", "content-length-range", "in"]), JSON, JSON).map(
        list
    )
    | st.tuples(
        st.sampled_from(["eq", "starts-with"]), st.sampled_from(["$key", "$Content-Type", "$x-amz-meta-a"]), TEXT
    ).map(list)
    | st.tuples(st.just("content-length-range"), st.integers(-5, 10**30) | TEXT, st.integers(-5, 10**30) | TEXT).map(
        list
    )
    | JSON,
    max_size=4,
)
EXPIRATIONS = (
    st.sampled_from(
        [
            "2030-01-01T00:00:00.000Z",
            "2030-13-01T00:00:00Z",
            "2030-01-01T00:00:00.1234567891Z",
            "9999-12-31T23:59:59Z",
            "x",
        ]
    )
    | JSON
)


@st.composite
def policies(draw: st.DrawFn) -> str:
    if rarely(draw):
        return draw(TEXT)  # not even base64
    doc: object = {"expiration": draw(EXPIRATIONS), "conditions": draw(CONDITIONS)}
    if rarely(draw):
        doc = draw(JSON)
    if rarely(draw):  # nested past the JSON decoder's recursion limit
        doc = {"expiration": "2030-01-01T00:00:00Z", "conditions": json.loads("[" * 900 + "]" * 900)}
        text = json.dumps(doc).replace("[" * 900, "[" * 5000).replace("]" * 900, "]" * 5000)
        return base64.b64encode(text.encode()).decode()
    return base64.b64encode(json.dumps(doc).encode()).decode()


NESTED_POLICY = base64.b64encode(
    b'{"expiration": "2030-01-01T00:00:00Z", "conditions": [' + b"[" * 5000 + b"]" * 5000 + b"]}"
).decode()


@budget(600)
@given(policy_b64=policies())
@example(policy_b64=NESTED_POLICY).via("discovered failure")  # RecursionError: a 500
def test_a_policy_document_is_a_policy_or_invalid(policy_b64: str) -> None:
    attempt(policy.parse, policy_b64)


@budget(400)
@given(items=st.lists(parts(), max_size=6), policy_b64=policies(), with_file=st.booleans(), size=st.integers(0, 10**6))
@example(
    items=[
        Part("key", None, None, b"k"),
        Part("AWSAccessKeyId", None, None, b"a"),
        Part("signature", None, None, b"s"),
    ],
    policy_b64=NESTED_POLICY,
    with_file=True,
    size=0,
).via("discovered failure")
def test_a_post_object_form_is_read_or_refused(items: list[Part], policy_b64: str, with_file: bool, size: int) -> None:
    items = [*items, Part("policy", None, None, policy_b64.encode())]
    if with_file:
        items.append(Part("file", "a.txt", "text/plain", b"data"))
    result = attempt(read_form, items)
    if not isinstance(result, Exception):
        attempt(policy.check_length, policy.parse(policy_b64), size, True)


def test_form_field_parsing_cannot_grow_past_its_bound() -> None:
    """Fields before the file are bounded (MAX_FIELDS); what follows raises before it is held."""
    big = [Part("x-amz-meta-a", None, None, b"v" * 4096) for _ in range(16)]
    error = attempt(read_form, big)
    assert isinstance(error, S3Error) and error.code == "MaxPostPreDataLengthExceededError"
