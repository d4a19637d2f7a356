"""Object tags: the `x-amz-tagging` header form, the Tagging XML form, and S3's limits.

https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-tagging.html: at most 10 tags, keys of
1-128 and values of 0-256 Unicode characters, keys unique.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from .errors import S3Error

MAX_TAGS = 10


def validate(pairs: list[tuple[str, str]]) -> dict[str, str]:
    if len(pairs) > MAX_TAGS:
        raise S3Error("InvalidTag", f"Object tags cannot be greater than {MAX_TAGS}")
    tags: dict[str, str] = {}
    for key, value in pairs:
        if not 1 <= len(key) <= 128:
            raise S3Error("InvalidTag", "The TagKey you have provided is invalid")
        if len(value) > 256:
            raise S3Error("InvalidTag", "The TagValue you have provided is invalid")
        if key in tags:
            raise S3Error("InvalidTag", "Cannot provide multiple Tags with the same key")
        tags[key] = value
    return tags


def from_header(value: str | None) -> dict[str, str]:
    """Tags of `x-amz-tagging: k1=v1&k2=v2` (URL-encoded)."""
    if not value:
        return {}
    return validate(parse_qsl(value, keep_blank_values=True))


def from_xml(doc: dict[str, Any]) -> dict[str, str]:
    tag_set = doc.get("TagSet") or {}
    items = tag_set.get("Tag") or [] if isinstance(tag_set, dict) else []
    pairs = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("Key"), str):
            raise S3Error("MalformedXML", "Each Tag needs a Key and a Value.")
        pairs.append((item["Key"], item.get("Value") or ""))
    return validate(pairs)


def to_xml(tags: dict[str, str]) -> dict[str, Any]:
    return {"TagSet": {"Tag": [{"Key": k, "Value": v} for k, v in tags.items()]}}
