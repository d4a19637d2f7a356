"""POST policy documents for browser-based uploads, as pure functions (no request, no I/O).

Spec: https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html (SigV4) and
https://docs.aws.amazon.com/AmazonS3/latest/userguide/HTTPPOSTForms.html (SigV2). A policy is base64
JSON with an `expiration` and `conditions`; the form signs the base64 text itself, with SigV4's
`x-amz-signature` (here) or SigV2's `signature` (`sigv2.post_policy_signature`). Every form field
must be named by a condition, and every condition must hold; the same rules for both. Field names
compare case-insensitively (forms are keyed by lower-case names here).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import sigv4
from .errors import S3Code, S3Error
from .http import parse_count

# Fields no condition has to name: the signature, the file and the policy itself, and x-ignore-*;
# SigV2 forms also the access key, which SigV4 forms name in x-amz-credential, a covered field.
# x-amz-checksum-* too: AWS takes one no condition names (ceph's s3-tests,
# test_post_object_upload_checksum), and it can only make the upload fail (BadDigest).
EXEMPT = frozenset({"x-amz-signature", "file", "policy"})
EXEMPT_V2 = frozenset({"awsaccesskeyid", "signature", "file", "policy"})
EXEMPT_PREFIXES = ("x-ignore-", "x-amz-checksum-")
OPERATORS = ("eq", "starts-with")
# ISO 8601 in UTC, as both specs write it ("2007-12-01T12:00:00.000Z") and SDKs send it.
_EXPIRATION = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


@dataclass(frozen=True)
class Condition:
    """One condition of a POST policy: `eq`, `starts-with` or `content-length-range`."""

    op: str  # "eq", "starts-with" or "content-length-range"
    field: str = ""  # lower-case, without the "$"
    value: str = ""
    low: int = 0
    high: int = 0

    def describe(self) -> str:
        """As AWS quotes a failed condition."""
        if self.op == "content-length-range":
            return json.dumps([self.op, self.low, self.high])
        return json.dumps([self.op, "$" + self.field, self.value])


@dataclass(frozen=True)
class Policy:
    """A POST policy document: when it expires and the conditions the form must meet."""

    expiration: float  # Unix time
    conditions: tuple[Condition, ...]

    def length_range(self) -> tuple[int, int | None]:
        """(min, max) content length; the tightest of the content-length-range conditions."""
        ranges = [c for c in self.conditions if c.op == "content-length-range"]
        if not ranges:
            return 0, None
        return max(c.low for c in ranges), min(c.high for c in ranges)


def invalid(message: str) -> S3Error:
    return S3Error(S3Code.InvalidPolicyDocument, f"Invalid Policy: {message}")


def denied(message: str) -> S3Error:
    return S3Error(S3Code.AccessDenied, f"Invalid according to Policy: {message}")


def signature(policy_b64: str, secret: str, date: str, region: str, service: str = "s3") -> str:
    """The x-amz-signature of a policy: hex HMAC-SHA256 of its base64 text with the SigV4 key."""
    return sigv4.sign(sigv4.signing_key(secret, date, region, service), policy_b64)


def parse(policy_b64: str) -> Policy:
    """The policy in a form's `policy` field; InvalidPolicyDocument when it is not one."""
    try:
        doc = json.loads(base64.b64decode(policy_b64, validate=True))
    except (binascii.Error, ValueError, RecursionError) as e:  # RecursionError: nested past the decoder's limit
        raise invalid("Invalid JSON.") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("conditions"), list):
        raise invalid("Policy document must contain an expiration and a conditions list.")
    conditions = tuple(c for entry in doc["conditions"] for c in parse_condition(entry))
    return Policy(parse_expiration(doc.get("expiration")), conditions)


def parse_expiration(value: Any) -> float:
    if not isinstance(value, str):
        raise invalid("Policy missing expiration.")
    if not _EXPIRATION.match(value):
        raise invalid(f"Invalid 'expiration' value: '{value}'")
    try:
        when = datetime.fromisoformat(value[:19]).replace(tzinfo=UTC)
    except ValueError as e:  # well formed, but no such date (a 13th month)
        raise invalid(f"Invalid 'expiration' value: '{value}'") from e
    return when.timestamp() + float("0" + value[19:-1])


def parse_condition(entry: Any) -> list[Condition]:
    """`{"field": "value"}` (one or more exact matches) or `[operator, ...]`."""
    if isinstance(entry, dict) and entry:
        return [Condition("eq", k.lower(), exact_value(v)) for k, v in entry.items()]
    if isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str):
        op = entry[0].lower()
        if op == "content-length-range":
            return [length_condition(entry[1], entry[2])]
        if op in OPERATORS and isinstance(entry[1], str) and entry[1].startswith("$") and isinstance(entry[2], str):
            return [Condition(op, entry[1][1:].lower(), entry[2])]
    raise invalid(f"Invalid Condition: {json.dumps(entry)}")


def exact_value(value: Any) -> str:
    if not isinstance(value, str):
        raise invalid(f"Invalid Condition value: {json.dumps(value)}")
    return value


def length_condition(low: Any, high: Any) -> Condition:
    bounds = []
    for bound in (low, high):
        if isinstance(bound, str):
            bound = parse_count(bound)
        if not isinstance(bound, int) or isinstance(bound, bool) or bound < 0:
            raise invalid("Invalid content-length-range: bounds must be non-negative integers.")
        bounds.append(bound)
    if bounds[0] > bounds[1]:
        raise invalid("Invalid content-length-range: the minimum is above the maximum.")
    return Condition("content-length-range", low=bounds[0], high=bounds[1])


def check(policy: Policy, fields: Mapping[str, str], bucket: str, now: float, exempt: frozenset[str] = EXEMPT) -> None:
    """AccessDenied unless the policy is current, every condition holds and covers every field.

    `fields` maps lower-case form field names to values, after ${filename} substitution;
    conditions on `bucket` are about the bucket the request names. `exempt`: the fields of the
    form's signature scheme that need no condition (EXEMPT for SigV4, EXEMPT_V2 for SigV2).
    """
    if now >= policy.expiration:
        raise denied("Policy expired.")
    values = {**fields, "bucket": bucket}
    for condition in policy.conditions:
        if condition.op != "content-length-range" and not holds(condition, values):
            raise denied(f"Policy Condition failed: {condition.describe()}")
    named = {c.field for c in policy.conditions}
    extra = [
        name for name in fields if name not in named and name not in exempt and not name.startswith(EXEMPT_PREFIXES)
    ]
    if extra:
        raise denied(f"Extra input fields: {', '.join(extra)}")


def holds(condition: Condition, fields: Mapping[str, str]) -> bool:
    """A condition on a field the form lacks fails, as at AWS."""
    value = fields.get(condition.field)
    if value is None:
        return False
    if condition.op == "eq":
        return value == condition.value
    if condition.field == "content-type":
        # A list of types (one per file, as browsers may send) must match throughout.
        return all(v.strip().startswith(condition.value) for v in value.split(","))
    return value.startswith(condition.value)


def check_length(policy: Policy, size: int, final: bool) -> None:
    """EntityTooLarge as soon as `size` passes the maximum; EntityTooSmall at the end."""
    low, high = policy.length_range()
    if high is not None and size > high:
        raise S3Error(
            S3Code.EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size",
            ProposedSize=str(size),
            MaxSizeAllowed=str(high),
        )
    if final and size < low:
        raise S3Error(
            S3Code.EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed size",
            ProposedSize=str(size),
            MinSizeAllowed=str(low),
        )
