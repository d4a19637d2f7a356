"""LifecycleConfiguration XML to the engine's rules and back. Pure: no I/O.

https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketLifecycleConfiguration.html,
https://docs.aws.amazon.com/AmazonS3/latest/API/API_LifecycleRule.html

Errors as AWS answers them: a document the schema would refuse (unknown or repeated elements,
Filter and Prefix together, a bad Status, a non-integer) is `MalformedXML`; a well-formed but invalid
value (Days ≤ 0, a Date not at midnight, duplicate IDs) is `InvalidArgument` from the engine's checks;
a rule without an action is `InvalidRequest`. Actions that need storage classes — Transition,
NoncurrentVersionTransition — are checked as AWS checks them (a Date at midnight, Days not negative,
30 days at least for the infrequent-access classes, a known storage class), and then the whole
configuration answers `NotImplemented` naming the element: accepting them would promise something
pyblob never does. Rules are given back in the form they were written: the legacy top-level
`Prefix`, or a `Filter` holding a `Prefix`, a `Tag`, an `And`, a size, or nothing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from objstore.lifecycle import LifecycleRule, validate

from . import tagging
from .errors import S3Code, S3Error

FORCE_LIST = ("Rule", "Tag", "Transition", "NoncurrentVersionTransition")
RULE_ELEMENTS = {
    "ID",
    "Filter",
    "Prefix",
    "Status",
    "Expiration",
    "AbortIncompleteMultipartUpload",
    "NoncurrentVersionExpiration",
    "Transition",
    "NoncurrentVersionTransition",
}
STORAGE_CLASSES = {"GLACIER", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "DEEP_ARCHIVE", "GLACIER_IR"}
INFREQUENT = {"STANDARD_IA", "ONEZONE_IA"}  # AWS: not before 30 days
FILTER_ELEMENTS = ("Prefix", "Tag", "And", "ObjectSizeGreaterThan", "ObjectSizeLessThan")
FORMS = {"Prefix": "prefix", "Tag": "tag", "And": "and", "ObjectSizeGreaterThan": "size", "ObjectSizeLessThan": "size"}
AND_ELEMENTS = {"Prefix", "Tag", "ObjectSizeGreaterThan", "ObjectSizeLessThan"}


def malformed(why: str) -> S3Error:
    return S3Error(
        S3Code.MalformedXML,
        f"The XML you provided was not well-formed or did not validate against our published schema: {why}",
    )


def not_implemented(element: str) -> S3Error:
    return S3Error(
        S3Code.NotImplemented,
        f"pyblob does not implement the lifecycle action {element} (there are no storage "
        "classes); only Expiration, NoncurrentVersionExpiration and AbortIncompleteMultipartUpload.",
    )


def parse_rules(doc: dict[str, Any]) -> list[LifecycleRule]:
    """Rules from a parsed LifecycleConfiguration (parsed with FORCE_LIST); NotImplemented, once the
    whole configuration is checked, if a rule transitions objects to another storage class."""
    raw_rules = doc.get("Rule") or []
    if not raw_rules:
        raise malformed("a LifecycleConfiguration needs at least one Rule")
    if set(doc) - {"Rule"}:
        raise malformed(f"unexpected element {sorted(set(doc) - {'Rule'})[0]}")
    parsed = [_rule(raw) for raw in raw_rules]
    rules = [rule for rule, _ in parsed]
    transitions = [name for _, names in parsed for name in names]
    if transitions:
        validate(rules, require_action=False)  # the engine's own checks first, as AWS checks everything
        raise not_implemented(transitions[0])
    return rules


def _rule(raw: Any) -> tuple[LifecycleRule, list[str]]:
    """A rule, and the transition elements it has (checked, but not something pyblob does)."""
    if not isinstance(raw, dict):
        raise malformed("Rule must have elements")
    unknown = set(raw) - RULE_ELEMENTS
    if unknown:
        raise malformed(f"unexpected element {sorted(unknown)[0]} in Rule")
    status = raw.get("Status")
    if status not in ("Enabled", "Disabled"):
        raise malformed("Status must be Enabled or Disabled")
    rule = LifecycleRule(id=_text(raw.get("ID")), enabled=status == "Enabled")
    _filter(rule, raw)
    _expiration(rule, raw.get("Expiration"))
    _noncurrent(rule, raw.get("NoncurrentVersionExpiration"))
    _abort(rule, raw.get("AbortIncompleteMultipartUpload"))
    transitions = _transitions(raw)
    if not rule.has_action() and not transitions:
        raise S3Error(S3Code.InvalidRequest, "At least one action needs to be specified in a rule")
    return rule, transitions


def _transitions(raw: dict[str, Any]) -> list[str]:
    """Check Transition and NoncurrentVersionTransition elements as AWS does; their names."""
    found = []
    for name, days_name in (("Transition", "Days"), ("NoncurrentVersionTransition", "NoncurrentDays")):
        for item in raw.get(name) or []:
            _transition(item, name, days_name)
            found.append(name)
    return found


def _transition(item: Any, name: str, days_name: str) -> None:
    allowed = {days_name, "StorageClass", "Date" if name == "Transition" else "NewerNoncurrentVersions"}
    if not isinstance(item, dict) or set(item) - allowed or "StorageClass" not in item:
        raise malformed(f"{name} holds {days_name} or Date, and StorageClass")
    if (days_name in item) == ("Date" in item):
        raise malformed(f"{name} holds {days_name} or Date, one of them")
    storage_class = _text(item["StorageClass"])
    if storage_class not in STORAGE_CLASSES:
        raise malformed(f"{storage_class!r} is not a storage class")
    if "Date" in item:
        if parse_date(_text(item["Date"])) % 86400:
            raise S3Error(S3Code.InvalidArgument, "'Date' must be at midnight GMT")
        return
    days = _int(item[days_name], days_name)
    if days < 0:
        raise S3Error(S3Code.InvalidArgument, f"'{days_name}' in {name} action must be nonnegative")
    if storage_class in INFREQUENT and days < 30:
        raise S3Error(
            S3Code.InvalidArgument,
            f"'{days_name}' in {name} action must be greater than or equal to 30 for storageClass '{storage_class}'",
        )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise malformed("expected text, found elements")
    return value


def _int(value: Any, name: str) -> int:
    text = _text(value).strip()
    if not re.fullmatch(r"-?[0-9]{1,10}", text):
        raise malformed(f"{name} must be an integer")
    return int(text)


def _filter(rule: LifecycleRule, raw: dict[str, Any]) -> None:
    """The rule's Filter, or the legacy top-level Prefix: exactly one of the two."""
    if ("Filter" in raw) == ("Prefix" in raw):
        raise malformed("a Rule has either Filter or Prefix")
    if "Prefix" in raw:
        rule.prefix = _text(raw["Prefix"])
        rule.filter_form = "prefix-element"
        return
    body = raw["Filter"] or {}
    if not isinstance(body, dict):
        raise malformed("Filter must have elements")
    present = [k for k in body if k in FILTER_ELEMENTS]
    if len(present) != len(body) or len(present) > 1 or len(body.get("Tag") or []) > 1:
        raise malformed("a Filter holds one of Prefix, Tag, And, ObjectSizeGreaterThan, ObjectSizeLessThan")
    rule.filter_form = FORMS.get(present[0], "") if present else "empty"
    if "And" in body:
        body = body["And"] or {}
        if not isinstance(body, dict) or set(body) - AND_ELEMENTS or (len(body) < 2 and not body.get("Tag")):
            raise malformed("And combines a Prefix, Tags and object sizes (at least two conditions)")
    _criteria(rule, body)


def _criteria(rule: LifecycleRule, body: dict[str, Any]) -> None:
    rule.prefix = _text(body.get("Prefix"))
    pairs = []
    for tag in body.get("Tag") or []:
        if not isinstance(tag, dict) or not isinstance(tag.get("Key"), str):
            raise malformed("each Tag needs a Key and a Value")
        pairs.append((tag["Key"], _text(tag.get("Value"))))
    rule.tags = tagging.validate(pairs) if pairs else {}
    if "ObjectSizeGreaterThan" in body:
        rule.size_greater_than = _int(body["ObjectSizeGreaterThan"], "ObjectSizeGreaterThan")
    if "ObjectSizeLessThan" in body:
        rule.size_less_than = _int(body["ObjectSizeLessThan"], "ObjectSizeLessThan")


def _expiration(rule: LifecycleRule, raw: Any) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict) or set(raw) - {"Days", "Date", "ExpiredObjectDeleteMarker"}:
        raise malformed("Expiration holds Days, Date or ExpiredObjectDeleteMarker")
    marker = _text(raw.get("ExpiredObjectDeleteMarker")).strip().lower()
    if marker not in ("", "true", "false"):
        raise malformed("ExpiredObjectDeleteMarker is true or false")
    rule.expired_object_delete_marker = marker == "true"
    if "Days" in raw and "Date" in raw:
        raise malformed("Expiration holds Days or Date, not both")
    if "Days" in raw:
        rule.expiration_days = _int(raw["Days"], "Days")
    elif "Date" in raw:
        rule.expiration_date = parse_date(_text(raw["Date"]))


def _noncurrent(rule: LifecycleRule, raw: Any) -> None:
    if raw is None:
        return
    if (
        not isinstance(raw, dict)
        or "NoncurrentDays" not in raw
        or set(raw) - {"NoncurrentDays", "NewerNoncurrentVersions"}
    ):
        raise malformed("NoncurrentVersionExpiration holds NoncurrentDays and optionally NewerNoncurrentVersions")
    rule.noncurrent_days = _int(raw["NoncurrentDays"], "NoncurrentDays")
    if "NewerNoncurrentVersions" in raw:
        rule.newer_noncurrent = _int(raw["NewerNoncurrentVersions"], "NewerNoncurrentVersions")


def parse_date(text: str) -> float:
    """An ISO 8601 date or date-time (UTC unless it says otherwise) as epoch seconds."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as e:
        raise S3Error(S3Code.InvalidArgument, "'Date' must be in ISO 8601 format") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _abort(rule: LifecycleRule, raw: Any) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict) or set(raw) != {"DaysAfterInitiation"}:
        raise malformed("AbortIncompleteMultipartUpload holds DaysAfterInitiation")
    rule.abort_upload_days = _int(raw["DaysAfterInitiation"], "DaysAfterInitiation")


def rules_xml(rules: list[LifecycleRule]) -> dict[str, Any]:
    """The body of GetBucketLifecycleConfiguration's LifecycleConfiguration, each rule's filter in
    the form it was written."""
    return {"Rule": [_rule_xml(r) for r in rules]}


def _rule_xml(rule: LifecycleRule) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rule.id:
        out["ID"] = rule.id
    if rule.filter_form == "prefix-element":
        out["Prefix"] = rule.prefix
    else:
        out["Filter"] = _filter_xml(rule)
    out["Status"] = "Enabled" if rule.enabled else "Disabled"
    if rule.expiration_days is not None:
        out["Expiration"] = {"Days": str(rule.expiration_days)}
    elif rule.expiration_date is not None:
        out["Expiration"] = {"Date": format_date(rule.expiration_date)}
    elif rule.expired_object_delete_marker:
        out["Expiration"] = {"ExpiredObjectDeleteMarker": "true"}
    if rule.noncurrent_days is not None:
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": str(rule.noncurrent_days)}
        if rule.newer_noncurrent is not None:
            out["NoncurrentVersionExpiration"]["NewerNoncurrentVersions"] = str(rule.newer_noncurrent)
    if rule.abort_upload_days is not None:
        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": str(rule.abort_upload_days)}
    return out


def _filter_xml(rule: LifecycleRule) -> dict[str, Any]:
    criteria: dict[str, Any] = {}
    if rule.prefix:
        criteria["Prefix"] = rule.prefix
    if rule.tags:
        criteria["Tag"] = [{"Key": k, "Value": v} for k, v in rule.tags.items()]
    if rule.size_greater_than is not None:
        criteria["ObjectSizeGreaterThan"] = str(rule.size_greater_than)
    if rule.size_less_than is not None:
        criteria["ObjectSizeLessThan"] = str(rule.size_less_than)
    conditions = len(criteria) - ("Tag" in criteria) + len(rule.tags)
    if conditions > 1 or rule.filter_form == "and":
        return {"And": criteria}
    if rule.filter_form == "empty":
        return {}
    if rule.filter_form == "tag" and rule.tags:
        return {"Tag": criteria["Tag"][0]}
    return criteria or {"Prefix": ""}


def format_date(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
