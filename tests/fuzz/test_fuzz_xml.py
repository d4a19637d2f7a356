"""Every XML request body: DeleteObjects, CompleteMultipartUpload, CORS, lifecycle, tagging,
versioning and CreateBucket configurations (`s3api.xml` and each document's reader).

Documents are grown from each one's own element names with hostile text, then damaged: entity
declarations (billion laughs), external entities, deep nesting, namespaces, attributes, stray
bytes. Each is read as its handler reads it: a value or a 4xx S3Error (MalformedXML, InvalidTag,
InvalidRequest, ...; NotImplemented for lifecycle transitions), never another exception; and a body
of any shape up to its limit is read or refused in bounded time and memory.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from fuzzing import attempt, budget, peak_bytes, rarely
from hypothesis import example, given
from hypothesis import strategies as st

from s3api import cors, lifecycle, tagging
from s3api.errors import S3Code, S3Error
from s3api.ops.delete import MAX_DELETE_BODY, _requested_keys
from s3api.ops.multipart import MAX_COMPLETE_BODY, _wanted_parts
from s3api.xml import MAX_XML_BODY, NAMESPACE, parse, render


def read_versioning(doc: dict[str, Any]) -> object:
    return doc.get("Status"), doc.get("MfaDelete")


def read_location(doc: dict[str, Any]) -> object:
    return doc.get("LocationConstraint")


# root: (elements that may appear, force_list, limit, how the handler reads the parsed document)
DOCUMENTS: dict[str, tuple[list[str], tuple[str, ...], int, Callable[[dict[str, Any]], object]]] = {
    "Delete": (
        ["Object", "Key", "VersionId", "ETag", "Quiet", "LastModifiedTime", "Size"],
        ("Object",),
        MAX_DELETE_BODY,
        _requested_keys,
    ),
    "CompleteMultipartUpload": (
        ["Part", "PartNumber", "ETag", "ChecksumCRC32", "ChecksumSHA256", "ChecksumCRC64NVME", "ChecksumType"],
        ("Part",),
        MAX_COMPLETE_BODY,
        _wanted_parts,
    ),
    "CORSConfiguration": (
        ["CORSRule", "ID", "AllowedOrigin", "AllowedMethod", "AllowedHeader", "ExposeHeader", "MaxAgeSeconds"],
        ("CORSRule", "AllowedOrigin", "AllowedMethod", "AllowedHeader", "ExposeHeader"),
        MAX_XML_BODY,
        cors.parse_rules,
    ),
    "LifecycleConfiguration": (
        [
            *sorted(lifecycle.RULE_ELEMENTS | set(lifecycle.FILTER_ELEMENTS)),
            "Rule",
            "Days",
            "Date",
            "ExpiredObjectDeleteMarker",
            "DaysAfterInitiation",
            "NoncurrentDays",
            "NewerNoncurrentVersions",
            "StorageClass",
            "Key",
            "Value",
        ],
        lifecycle.FORCE_LIST,
        MAX_XML_BODY,
        lifecycle.parse_rules,
    ),
    "Tagging": (["TagSet", "Tag", "Key", "Value"], ("Tag",), MAX_XML_BODY, tagging.from_xml),
    "VersioningConfiguration": (["Status", "MfaDelete", "MFADelete"], (), MAX_XML_BODY, read_versioning),
    "CreateBucketConfiguration": (["LocationConstraint"], (), MAX_XML_BODY, read_location),
}


def read(root: str, raw: bytes) -> object:
    """The body as its handler reads it: parsed, then interpreted."""
    _, force_list, limit, interpret = DOCUMENTS[root]
    return interpret(parse(raw, root, force_list=force_list, limit=limit))


# The elements of S3's request documents and what each may hold (its schema, loosely: any child may
# repeat or be missing, and now and then one from elsewhere turns up).
SCHEMA = {
    "Delete": ["Object", "Object", "Quiet"],
    "Object": ["Key", "VersionId", "ETag", "Size"],
    "CompleteMultipartUpload": ["Part", "Part"],
    "Part": ["PartNumber", "ETag", "ChecksumCRC32", "ChecksumSHA256", "ChecksumType"],
    "CORSConfiguration": ["CORSRule"],
    "CORSRule": ["ID", "AllowedOrigin", "AllowedMethod", "AllowedHeader", "ExposeHeader", "MaxAgeSeconds"],
    "LifecycleConfiguration": ["Rule"],
    "Rule": [
        "ID",
        "Filter",
        "Prefix",
        "Status",
        "Expiration",
        "NoncurrentVersionExpiration",
        "AbortIncompleteMultipartUpload",
        "Transition",
        "NoncurrentVersionTransition",
    ],
    "Filter": ["Prefix", "Tag", "And", "ObjectSizeGreaterThan", "ObjectSizeLessThan"],
    "And": ["Prefix", "Tag", "Tag", "ObjectSizeGreaterThan", "ObjectSizeLessThan"],
    "Tag": ["Key", "Value"],
    "Expiration": ["Days", "Date", "ExpiredObjectDeleteMarker"],
    "NoncurrentVersionExpiration": ["NoncurrentDays", "NewerNoncurrentVersions"],
    "AbortIncompleteMultipartUpload": ["DaysAfterInitiation"],
    "Transition": ["Days", "Date", "StorageClass"],
    "NoncurrentVersionTransition": ["NoncurrentDays", "StorageClass", "NewerNoncurrentVersions"],
    "Tagging": ["TagSet"],
    "TagSet": ["Tag"],
    "VersioningConfiguration": ["Status", "MfaDelete"],
    "CreateBucketConfiguration": ["LocationConstraint"],
}
REQUIRED = {  # children a valid document has, so that most documents get past the first checks
    "Delete": ["Object"],
    "Object": ["Key"],
    "CompleteMultipartUpload": ["Part"],
    "Part": ["PartNumber", "ETag"],
    "CORSConfiguration": ["CORSRule"],
    "CORSRule": ["AllowedOrigin", "AllowedMethod"],
    "LifecycleConfiguration": ["Rule"],
    "Rule": ["Status", "Filter"],
    "Tag": ["Key", "Value"],
    "NoncurrentVersionExpiration": ["NoncurrentDays"],
    "Transition": ["StorageClass"],
    "Tagging": ["TagSet"],
    "VersioningConfiguration": ["Status"],
}
ALL_NAMES = sorted({*SCHEMA, *(c for children in SCHEMA.values() for c in children)})
NUMBERS = ["1", "0", "-1", "2", "30", "10000", "10001", "99999999999", "1" * 30, "٣", " 7 ", "1.5", "0x1"]
DATES = ["2024-01-01T00:00:00Z", "2024-01-01", "2024-01-01T00:00:01Z", "0001-01-01T00:00:00+01:00"]
DATES += ["9999-12-31T23:59:59-14:00", "2024-02-30", "9999-12-31T23:59:59.999999-23:59", "0001-01-01T00:00:00+23:59"]
LEAF_VALUES = {
    "Status": ["Enabled", "Disabled", "Suspended", "enabled"],
    "MfaDelete": ["Disabled", "Enabled"],
    "Quiet": ["true", "false", "TRUE", "1"],
    "AllowedMethod": ["GET", "PUT", "POST", "DELETE", "HEAD", "BOGUS"],
    "AllowedOrigin": ["*", "http://*.example.com", "*.*", "[", "http://a"],
    "AllowedHeader": ["*", "x-amz-*", "**"],
    "StorageClass": ["GLACIER", "STANDARD_IA", "STANDARD"],
    "ExpiredObjectDeleteMarker": ["true", "false", "x"],
    "Date": DATES,
    "ChecksumType": ["COMPOSITE", "FULL_OBJECT"],
    "Key": ["k", "aws:k", "", "x" * 300],
    "LocationConstraint": ["us-east-1", "EU", "", "x" * 100],
}
for _name in (
    "Days",
    "NoncurrentDays",
    "DaysAfterInitiation",
    "NewerNoncurrentVersions",
    "PartNumber",
    "MaxAgeSeconds",
):
    LEAF_VALUES[_name] = NUMBERS
LEAF_VALUES["ObjectSizeGreaterThan"] = LEAF_VALUES["ObjectSizeLessThan"] = LEAF_VALUES["Size"] = NUMBERS
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)  # damage comes later


@st.composite
def node(draw: st.DrawFn, name: str, depth: int = 0) -> str:
    """`<name>...</name>` with children as the schema has them, or text; now and then not."""
    if rarely(draw):
        name = draw(st.sampled_from([*ALL_NAMES, "Unknown", "s3:Key"]))
    if name in SCHEMA and depth < 6 and not rarely(draw):
        required = [] if rarely(draw) else REQUIRED.get(name, [])
        children = required + draw(st.lists(st.sampled_from(SCHEMA[name]), max_size=3))
        inner = "".join(draw(node(child, depth + 1)) for child in children)
    else:
        pool = LEAF_VALUES.get(name)
        inner = escape(draw(st.sampled_from(pool) if pool and not rarely(draw) else ANY_TEXT))
    return f"<{name}/>" if not inner and rarely(draw) else f"<{name}>{inner}</{name}>"


LAUGHS = (
    '<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">' for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    + "]>"
)
PROLOGS = [
    '<?xml version="1.0" encoding="UTF-16"?>',
    '<?xml version="1.1"?>',
    LAUGHS,
    '<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE d SYSTEM "http://127.0.0.1:1/dtd">',
    '<!DOCTYPE d [<!ENTITY % p SYSTEM "http://127.0.0.1:1/p"> %p;]>',
    "<!-- a comment --><?pi data?>",
]
ROOT_ATTRIBUTES = [' xmlns:s3="urn:x"', ' a="1"', f' xmlns="{NAMESPACE}" x="&i;"']
REFERENCES = ["&i;", "&x;", "&#0;", "&#x10FFFF;", "&amp;", "<![CDATA[<Key>]]>", "&unknown;", "<a>" * 40]


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, bytes]:
    """A document for one of the roots, mostly shaped as S3's schema has it, with hostile additions."""
    root = draw(st.sampled_from(sorted(DOCUMENTS)))
    body = draw(node(root, 0))
    if rarely(draw):  # an entity reference, CDATA or stray tags between two elements
        tags = [i for i, c in enumerate(body) if c == "<"]
        at = draw(st.sampled_from(tags))
        body = body[:at] + draw(st.sampled_from(REFERENCES)) + body[at:]
    if rarely(draw):
        body = body.replace(f"<{root}", f"<{root}{draw(st.sampled_from(ROOT_ATTRIBUTES))}", 1)
    head = '<?xml version="1.0" encoding="UTF-8"?>\n' if draw(st.booleans()) else ""
    if rarely(draw):
        head = draw(st.sampled_from(PROLOGS))
    raw = (head + body).encode("utf-16" if rarely(draw) else "utf-8")
    return root, draw(damaged(raw)) if rarely(draw) else raw


@st.composite
def damaged(draw: st.DrawFn, raw: bytes) -> bytes:
    at = draw(st.integers(0, len(raw)))
    noise = draw(st.binary(max_size=8) | st.sampled_from([b"<", b">", b"</", b"\xff", b"\x00", b"<a>" * 40]))
    return raw[:at] + noise + raw[at + draw(st.integers(0, 4)) :]


@budget(800)
@given(document=documents())
def test_every_xml_body_is_read_or_refused_as_a_client_error(document: tuple[str, bytes]) -> None:
    root, raw = document
    attempt(read, root, raw)


@budget(200)
@given(root=st.sampled_from(sorted(DOCUMENTS)), depth=st.integers(1, 200), repeat=st.integers(1, 3))
def test_deep_nesting_is_refused_or_read(root: str, depth: int, repeat: int) -> None:
    name = DOCUMENTS[root][0][0]
    inner = (f"<{name}>" * depth + "x" + f"</{name}>" * depth) * repeat
    attempt(read, root, f"<{root}>{inner}</{root}>".encode())


def attributes(root: str, size: int) -> bytes:
    """One element with as many attributes (each named differently) as fit in `size` bytes."""
    names, used, i = [], 2 * len(root) + 10, 0
    while used < size - 20:
        names.append(f' a{i}=""')
        used, i = used + len(names[-1]), i + 1
    return f"<{root}><x{''.join(names)}/></{root}>".encode()


def shapes(root: str, size: int) -> dict[str, bytes]:
    """Bodies of about `size` bytes shaped to cost the most: nesting, many small elements, attributes."""
    name = DOCUMENTS[root][0][0]

    def fill(unit: str, wrap: tuple[str, str] = ("", "")) -> bytes:
        count = (size - 2 * len(root) - 5 - len(wrap[0]) - len(wrap[1])) // len(unit)
        return f"<{root}>{wrap[0]}{unit * count}{wrap[1]}</{root}>".encode()

    deep = (size - 2 * len(root) - 5) // (2 * len(name) + 5)
    return {
        "deep": f"<{root}>".encode()
        + f"<{name}>".encode() * deep
        + f"</{name}>".encode() * deep
        + f"</{root}>".encode(),
        "empty elements": fill("<a/>"),
        "nested pairs": fill("<a>x<b/>y</a>"),
        "attributes": attributes(root, size),
        "one long text": fill("k", (f"<{name}>", f"</{name}>")),
    }


def test_bodies_at_their_limit_are_read_or_refused_in_bounded_time() -> None:
    """At the largest size each document may have (6 MiB for DeleteObjects), no shape of body takes
    the parser seconds: it would hold the event loop of a worker that long. (Found here: nested or
    empty elements took 7-13 s at 6 MiB; now refused after MAX_XML_NODES or MAX_XML_DEPTH.) One
    start tag with 6 MiB of attributes still costs expat itself ~1.5 s: tried at 1 MiB."""
    for root in ("Delete", "CompleteMultipartUpload", "CORSConfiguration"):
        limit = DOCUMENTS[root][2]
        for shape, raw in shapes(root, limit).items():
            if shape == "attributes" and limit > MAX_XML_BODY:
                raw = attributes(root, MAX_XML_BODY)
            started = time.monotonic()
            attempt(read, root, raw)
            assert time.monotonic() - started < 3.0, f"{root}, {shape}: {time.monotonic() - started:.1f} s"


def test_memory_stays_bounded_for_any_shape() -> None:
    """A 1 MiB configuration takes a small multiple of its size however it is shaped."""
    for shape, raw in shapes("CORSConfiguration", MAX_XML_BODY).items():
        peak, error = peak_bytes(lambda raw=raw: read("CORSConfiguration", raw))
        assert error is None or isinstance(error, S3Error), error
        # Found here: 18-24 times the body for small elements (nested or not), built before being
        # refused. An attribute list is held whole by expat (about 40 times its size).
        factor = 48 if shape == "attributes" else 8
        assert peak < factor * MAX_XML_BODY, f"{shape}: {peak / 2**20:.0f} MiB"


def test_an_oversized_body_is_refused_before_it_is_parsed() -> None:
    raw = b"<Tagging>" + b"<a/>" * (MAX_XML_BODY // 4) + b"</Tagging>"
    error = attempt(read, "Tagging", raw)
    assert isinstance(error, S3Error) and error.code == "MaxMessageLengthExceeded"


def test_the_largest_valid_documents_are_read() -> None:
    """The bounds refuse nothing S3 accepts: a Complete of 10,000 parts with every checksum element."""
    checksums = "".join(
        f"<Checksum{a}>AAAAAA==</Checksum{a}>" for a in ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
    )
    parts = "".join(
        f'<Part><PartNumber>{n}</PartNumber><ETag>"{n:032x}"</ETag>{checksums}</Part>' for n in range(1, 10001)
    )
    raw = f'<CompleteMultipartUpload xmlns="{NAMESPACE}">{parts}</CompleteMultipartUpload>'.encode()
    wanted, sums = read("CompleteMultipartUpload", raw)  # type: ignore[misc]
    assert len(wanted) == 10000 and len(sums[10000]) == 5


@budget(300)
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
@example(text="/fuzz/\x08").via("discovered failure")  # a key with a backspace: <Resource> no client could parse
def test_an_error_that_echoes_the_request_is_well_formed_xml(text: str) -> None:
    error = S3Error(S3Code.InvalidArgument, text, resource=text, ArgumentValue=text, Key=text)
    root = ET.fromstring(render("Error", error.body("id")["Error"], namespace=False))
    assert root.findtext("Code") == "InvalidArgument"
