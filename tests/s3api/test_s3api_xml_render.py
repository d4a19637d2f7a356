"""s3api.xml renders what xmltodict's writer rendered before it, byte for byte (xmltodict is the oracle)."""

from __future__ import annotations

from typing import Any

import pytest
import xmltodict

from s3api.xml import NAMESPACE, parse, render, render_mixed

LISTING = {
    "Name": "bucket",
    "Prefix": "",
    "MaxKeys": "1000",
    "KeyCount": "2",
    "IsTruncated": "false",
    "Contents": [
        {
            "Key": f"dir/key{i}<&>'\"",
            "LastModified": "2026-12-05T05:00:00.000Z",
            "ETag": '"9dd4e461268c8034f5c8564e155c67a6"',
            "Size": "1",
            "StorageClass": "STANDARD",
            "ChecksumAlgorithm": ["CRC64NVME"],
            "ChecksumType": "FULL_OBJECT",
            "Owner": {"ID": "alice", "DisplayName": "alice"},
        }
        for i in range(2)
    ],
    "CommonPrefixes": [],
}

DOCUMENTS: list[tuple[str, dict[str, Any], bool]] = [
    ("ListBucketResult", LISTING, True),
    ("LocationConstraint", {"#text": "eu-west-1"}, True),
    ("LocationConstraint", {}, True),
    ("Error", {"Code": "NoSuchKey", "Message": "a & b < c", "Key": "k\u00e9y\u4e2d", "RequestId": "r1"}, False),
    (
        "AccessControlPolicy",
        {
            "Owner": {"ID": "u"},
            "AccessControlList": {
                "Grant": [
                    {
                        "Grantee": {"@xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance", "@xsi:type": "Canon"},
                        "Permission": "FULL_CONTROL",
                    }
                ]
            },
        },
        True,
    ),
    ("Values", {"None": None, "True": True, "False": False, "Int": 3, "Tuple": ("a", "b"), "Empty": {}}, False),
]


def xmltodict_render(root: str, body: dict[str, Any], namespace: bool) -> bytes:
    content = {"@xmlns": NAMESPACE, **body} if namespace else body
    return xmltodict.unparse({root: content}, encoding="UTF-8", short_empty_elements=False).encode()


@pytest.mark.parametrize(("root", "body", "namespace"), DOCUMENTS, ids=[d[0] for d in DOCUMENTS])
def test_render_matches_xmltodict(root: str, body: dict[str, Any], namespace: bool) -> None:
    assert render(root, body, namespace) == xmltodict_render(root, body, namespace)


def test_render_mixed_interleaves_items_between_head_and_tail() -> None:
    head = {"Name": "b", "Prefix": "p&"}
    items = [("Version", {"Key": "a", "IsLatest": "true"}), ("DeleteMarker", {"Key": "b"}), ("Version", {"Key": "c"})]
    tail = {"CommonPrefixes": [{"Prefix": "x/"}], "EncodingType": None}
    got = render_mixed("ListVersionsResult", head, items, tail)
    parts = "".join(xmltodict.unparse({n: b}, full_document=False, short_empty_elements=False) for n, b in items)
    opening = xmltodict_render("ListVersionsResult", head, True).decode()[: -len("</ListVersionsResult>")]
    rest = xmltodict.unparse({"_": tail}, full_document=False, short_empty_elements=False)[3:-4]
    assert got == (opening + parts + rest + "</ListVersionsResult>").encode()
    parsed = parse(got, "ListVersionsResult", force_list=("Version",))
    assert [v["Key"] for v in parsed["Version"]] == ["a", "c"]
