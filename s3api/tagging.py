"""Tags of objects and buckets: the `x-amz-tagging` header form, the Tagging XML form, and S3's limits.

https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-tagging.html (at most 10 per object),
https://docs.aws.amazon.com/AmazonS3/latest/userguide/CostAllocTagging.html (at most 50 per bucket):
keys of 1-128 and values of 0-256 Unicode characters, keys unique, made of letters, digits, spaces
and `+ - = . _ : / @`; the `aws:` prefix is AWS's own. The error messages and elements are the ones
AWS was measured answering (InvalidTag with TagKey / TagValue; InvalidArgument for the header form);
more than 10 tags on an object is 400 BadRequest in either form, not InvalidTag (boto/boto3#1213,
hashicorp/terraform-provider-aws#19895).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .errors import S3Code, S3Error

MAX_KEY, MAX_VALUE = 128, 256
PUNCTUATION = frozenset("+-=._:/@ ")
HEADER_FORM = (
    "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters "
    "without tag name duplicates."
)


@dataclass(frozen=True)
class TagRules:
    """How many tags a resource may have, and AWS's messages for the limits (objects and buckets differ)."""

    most: int
    too_many: str  # the message past `most`
    reserved: str  # the message for a key with the aws: prefix
    bad_request_past_most: bool = False  # AWS's code past `most`: BadRequest (objects), else InvalidTag


OBJECT = TagRules(10, "Object tags cannot be greater than 10", "Your TagKey cannot be prefixed with aws:", True)
BUCKET = TagRules(50, "Bucket tag count cannot be greater than 50", "System tags cannot be added/updated by requester")
MAX_TAGS = OBJECT.most


def allowed(text: str) -> bool:
    """Letters, digits and spaces of any script, and S3's few punctuation marks."""
    return all(ch in PUNCTUATION or unicodedata.category(ch)[0] in "LNZ" for ch in text)


def validate(pairs: list[tuple[str, str]], rules: TagRules = OBJECT) -> dict[str, str]:
    if len(pairs) > rules.most:
        if rules.bad_request_past_most:
            raise S3Error(S3Code.BadRequest, rules.too_many)
        raise S3Error(S3Code.InvalidTag, rules.too_many)
    tags: dict[str, str] = {}
    for key, value in pairs:
        if not 1 <= len(key) <= MAX_KEY or not allowed(key):
            raise S3Error(S3Code.InvalidTag, "The TagKey you have provided is invalid", TagKey=key)
        if len(value) > MAX_VALUE or not allowed(value):
            raise S3Error(S3Code.InvalidTag, "The TagValue you have provided is invalid", TagKey=key, TagValue=value)
        if key.lower().startswith("aws:"):
            raise S3Error(S3Code.InvalidTag, rules.reserved, TagKey=key)
        if key in tags:
            raise S3Error(S3Code.InvalidTag, "Cannot provide multiple Tags with the same key", TagKey=key)
        tags[key] = value
    return tags


def from_header(value: str | None) -> dict[str, str]:
    """Tags of `x-amz-tagging: k1=v1&k2=v2` (URL-encoded), every pair as sent: `k` alone is `k=`."""
    if not value:
        return {}
    pairs = parse_qsl(value, keep_blank_values=True)
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names) or not all(allowed(k) and allowed(v) for k, v in pairs):
        raise S3Error(S3Code.InvalidArgument, HEADER_FORM, ArgumentName="x-amz-tagging", ArgumentValue=value)
    return validate(pairs)


def from_xml(doc: dict[str, Any], rules: TagRules = OBJECT) -> dict[str, str]:
    """Tags of a Tagging document; a Tag needs both a Key and a Value element (Value may be empty).
    Anything else in the document is MalformedXML, as AWS's schema has nothing else."""
    if set(doc) - {"TagSet"}:
        raise S3Error(S3Code.MalformedXML, f"Tagging holds a TagSet only, not {sorted(set(doc) - {'TagSet'})[0]}.")
    tag_set = doc.get("TagSet") or {}
    if not isinstance(tag_set, dict) or set(tag_set) - {"Tag"}:
        raise S3Error(S3Code.MalformedXML, "A TagSet holds Tag elements only.")
    items = tag_set.get("Tag") or []
    return validate([_pair(item) for item in items], rules)


def _pair(item: Any) -> tuple[str, str]:
    """(Key, Value) of a Tag element: both must be there; an empty <Value></Value> parses as None."""
    if (
        not isinstance(item, dict)
        or not isinstance(item.get("Key"), str)
        or "Value" not in item
        or set(item) - {"Key", "Value"}
    ):
        raise S3Error(S3Code.MalformedXML, "Each Tag needs a Key and a Value, and nothing else.")
    value = item["Value"]
    if not (value is None or isinstance(value, str)):
        raise S3Error(S3Code.MalformedXML, "A Tag has one Value, of text.")
    return item["Key"], value or ""


def to_xml(tags: dict[str, str]) -> dict[str, Any]:
    return {"TagSet": {"Tag": [{"Key": k, "Value": v} for k, v in tags.items()]}}
