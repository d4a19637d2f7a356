"""XML in (through xmltodict) and out, with S3's namespace and bounded request bodies."""

from __future__ import annotations

from typing import Any
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

import xmltodict

from .errors import S3Code, S3Error

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
# A configuration document (CORS, lifecycle, tagging, versioning). The two lists S3 bounds by count,
# DeleteObjects and CompleteMultipartUpload, have bounds of their own, sized by that count.
MAX_XML_BODY = 1024 * 1024
# Bodies up to this are parsed on the event loop (a configuration: well under a millisecond); larger
# ones in a thread (a DeleteObjects of 1,000 keys, a Complete of 10,000 parts: up to a second).
XML_ON_LOOP_MAX = 64 * 1024
# S3's deepest request document is 6 elements deep (LifecycleConfiguration/Rule/Filter/And/Tag/Key).
# Deeper ones are refused: code that walks a parsed document recursively (repr, a validator) would
# hit Python's recursion limit on a 1 MiB body of nested elements.
MAX_XML_DEPTH = 32
# S3's largest request document, a CompleteMultipartUpload of 10,000 parts with every checksum, has
# some 80,000 elements. A document with more elements and attributes (S3's have none but xmlns) is
# refused before xmltodict builds it: a 6 MiB DeleteObjects body of empty elements took it 10 s and
# 180 MB, one of nested elements 13 s and 460 MB, on the event loop (tests/fuzz/test_fuzz_xml.py).
MAX_XML_NODES = 128 * 1024


class _TooLarge(Exception):
    """An XML document past MAX_XML_DEPTH or MAX_XML_NODES."""


XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


def render(root: str, body: dict[str, Any], namespace: bool = True) -> bytes:
    """`{root: body}` as an XML document; list values repeat their element.

    Written out directly rather than through xmltodict's SAX writer, which cost ~40 µs per listed
    key (a ListObjectsV2 page of 1,000 took 39 ms); the output is the same, byte for byte
    (tests/s3api/test_s3api_xml_render.py): keys starting with `@` are attributes, `#text` is text, None
    an empty element, bools `true`/`false`."""
    content = {"@xmlns": NAMESPACE, **body} if namespace else body
    out = [XML_DECLARATION]
    _element(out, root, content)
    return "".join(out).encode()


def render_mixed(
    root: str, head: dict[str, Any], items: list[tuple[str, dict[str, Any]]], tail: dict[str, Any]
) -> bytes:
    """Like `render`, with `items` (element name, body) in the given order between `head` and `tail`:
    for responses whose differently named elements interleave (ListObjectVersions)."""
    out = [XML_DECLARATION]
    _open(out, root, {"@xmlns": NAMESPACE, **head})
    _children(out, head)
    for name, item in items:
        _element(out, name, item)
    _children(out, tail)
    out.append(f"</{root}>")
    return "".join(out).encode()


def _element(out: list[str], name: str, value: Any) -> None:
    if isinstance(value, list | tuple):
        for item in value:
            _element(out, name, item)
    elif isinstance(value, dict):
        _open(out, name, value)
        _children(out, value)
        if (text := value.get("#text")) is not None:
            out.append(_text(text))
        out.append(f"</{name}>")
    elif value is None:
        out.append(f"<{name}></{name}>")
    else:
        out.append(f"<{name}>{_text(value)}</{name}>")


def _open(out: list[str], name: str, value: dict[str, Any]) -> None:
    attrs = "".join(f" {k[1:]}={quoteattr(_string(v))}" for k, v in value.items() if k[0] == "@")
    out.append(f"<{name}{attrs}>")


def _children(out: list[str], value: dict[str, Any]) -> None:
    for key, child in value.items():
        if key[0] != "@" and key != "#text":
            _element(out, key, child)


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _text(value: Any) -> str:
    return escape(_string(value))


def parse(raw: bytes, root: str, force_list: tuple[str, ...] = (), limit: int = MAX_XML_BODY) -> dict[str, Any]:
    """The children of `root`; MalformedXML for anything else. Repeated elements always lists."""
    if len(raw) > limit:
        raise S3Error(S3Code.MaxMessageLengthExceeded, "Your request was too big.")
    try:
        check_bounds(raw)
        doc = xmltodict.parse(raw, force_list=force_list, process_namespaces=False, disable_entities=True)
    except Exception as e:  # expat raises several types; all mean the same to the client
        raise S3Error(
            S3Code.MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema.",
        ) from e
    if not isinstance(doc, dict) or len(doc) != 1 or depth(doc) > MAX_XML_DEPTH:
        raise S3Error(S3Code.MalformedXML)
    ((name, content),) = doc.items()
    if name.split(":")[-1] != root:
        raise S3Error(S3Code.MalformedXML, f"expected a {root} document")
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise S3Error(S3Code.MalformedXML, f"{root} has no elements")
    return {k.split(":")[-1]: v for k, v in content.items() if not k.startswith("@")}


def check_bounds(raw: bytes) -> None:
    """_TooLarge past MAX_XML_DEPTH or MAX_XML_NODES: one pass of expat that builds nothing and stops at
    the first element too many; ExpatError or ValueError (a DTD's entity) for what is not XML."""
    parser = expat.ParserCreate()
    depth, nodes = 0, 0

    def start(name: str, attributes: dict[str, str]) -> None:
        nonlocal depth, nodes
        depth, nodes = depth + 1, nodes + 1 + len(attributes)
        if depth > MAX_XML_DEPTH or nodes > MAX_XML_NODES:
            raise _TooLarge

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1

    def no_entities(*_: object) -> None:
        raise ValueError("entities are disabled")  # as xmltodict's disable_entities: no expansion at all

    parser.StartElementHandler, parser.EndElementHandler, parser.EntityDeclHandler = start, end, no_entities
    parser.Parse(raw, True)


def depth(doc: Any) -> int:
    """Elements nested in a parsed document, counted without recursion."""
    deepest, stack = 0, [(doc, 0)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(node, dict):
            stack.extend((child, level + 1) for key, child in node.items() if not key.startswith("@"))
        elif isinstance(node, list):
            stack.extend((child, level) for child in node)
    return deepest
