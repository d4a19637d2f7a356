"""XML in and out, through xmltodict, with S3's namespace and bounded request bodies."""

from __future__ import annotations

from typing import Any

import xmltodict

from .errors import S3Code, S3Error

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_XML_BODY = 1024 * 1024  # DeleteObjects with 1000 keys of 1024 bytes fits with room to spare
# S3's deepest request document is 6 elements deep (LifecycleConfiguration/Rule/Filter/And/Tag/Key).
# Deeper ones are refused: code that walks a parsed document recursively (repr, a validator) would
# hit Python's recursion limit on a 1 MiB body of nested elements.
MAX_XML_DEPTH = 32


def render(root: str, body: dict[str, Any], namespace: bool = True) -> bytes:
    """`{root: body}` as an XML document; list values repeat their element."""
    content = dict(body)
    if namespace:
        content = {"@xmlns": NAMESPACE, **content}
    return xmltodict.unparse({root: content}, encoding="UTF-8", short_empty_elements=False).encode()


def render_mixed(
    root: str, head: dict[str, Any], items: list[tuple[str, dict[str, Any]]], tail: dict[str, Any]
) -> bytes:
    """Like `render`, with `items` (element name, body) in the given order between `head` and `tail`:
    for responses whose differently named elements interleave (ListObjectVersions)."""
    opening = render(root, head).decode()
    close = f"</{root}>"
    assert opening.endswith(close)
    parts = [xmltodict.unparse({name: body}, full_document=False, short_empty_elements=False) for name, body in items]
    rest = xmltodict.unparse({"_": tail}, full_document=False, short_empty_elements=False)[len("<_>") : -len("</_>")]
    return (opening[: -len(close)] + "".join(parts) + rest + close).encode()


def parse(raw: bytes, root: str, force_list: tuple[str, ...] = ()) -> dict[str, Any]:
    """The children of `root`; MalformedXML for anything else. Repeated elements always lists."""
    if len(raw) > MAX_XML_BODY:
        raise S3Error(S3Code.MaxMessageLengthExceeded, "Your request was too big.")
    try:
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
