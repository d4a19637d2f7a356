"""CORS rules of a bucket: parsing S3's CORSConfiguration and matching requests against it.

https://docs.aws.amazon.com/AmazonS3/latest/userguide/cors.html — the first rule whose origin,
method and (for a preflight) every requested header match decides; origins and headers may hold one
`*` wildcard; header names match case-insensitively.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import Any

from .errors import S3Code, S3Error

METHODS = {"GET", "PUT", "POST", "DELETE", "HEAD"}
MAX_RULES = 100
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MAX_AGE_TEXT = re.compile(r"-?[0-9]{1,10}")
Rule = dict[str, Any]


def _as_list(value: Any) -> list[str]:
    """The text of an element, or of each of its repeats; MalformedXML where one holds elements."""
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) for v in values):  # never str() a parsed subtree: it may be deep
        raise S3Error(
            S3Code.MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema.",
        )
    return [v.strip() for v in values]


def parse_rules(doc: dict[str, Any]) -> list[Rule]:
    """Rules from a parsed CORSConfiguration document (MalformedXML / InvalidRequest if invalid)."""
    raw_rules = doc.get("CORSRule") or []
    if not raw_rules or len(raw_rules) > MAX_RULES:
        raise S3Error(S3Code.MalformedXML, f"A CORS configuration has 1 to {MAX_RULES} CORSRule elements.")
    rules = []
    for raw in raw_rules:
        if not isinstance(raw, dict):
            raise S3Error(S3Code.MalformedXML, "CORSRule must have elements.")
        rules.append(_rule(raw))
    return rules


def _rule(raw: dict[str, Any]) -> Rule:
    origins, methods = _as_list(raw.get("AllowedOrigin")), _as_list(raw.get("AllowedMethod"))
    if not origins or not methods:
        raise S3Error(S3Code.MalformedXML, "Each CORSRule needs AllowedOrigin and AllowedMethod.")
    for method in methods:
        if method not in METHODS:
            raise S3Error(
                S3Code.InvalidRequest, f"Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            )
    for pattern in origins + _as_list(raw.get("AllowedHeader")):
        if pattern.count("*") > 1:
            raise S3Error(
                S3Code.InvalidRequest, f"AllowedOrigin/AllowedHeader {pattern!r} can not have more than one wildcard."
            )
    rule: Rule = {
        "origins": origins,
        "methods": methods,
        "headers": _as_list(raw.get("AllowedHeader")),
        "expose": _as_list(raw.get("ExposeHeader")),
    }
    if raw.get("ID"):
        rule["id"] = _as_list(raw["ID"])[0]
    if raw.get("MaxAgeSeconds") is not None:
        rule["max_age"] = _max_age(raw["MaxAgeSeconds"])
    return rule


def _max_age(value: Any) -> int:
    """An Integer of S3's model (32 bits): a larger one would not come back from the bucket's record
    as an integer, and is no number of seconds a browser caches a preflight for."""
    text = value.strip() if isinstance(value, str) else ""
    if not MAX_AGE_TEXT.fullmatch(text) or not INT32_MIN <= int(text) <= INT32_MAX:
        raise S3Error(S3Code.MalformedXML, f"MaxAgeSeconds must be an integer from {INT32_MIN} to {INT32_MAX}.")
    return int(text)


def rules_xml(rules: list[Rule]) -> dict[str, Any]:
    out = []
    for r in rules:
        entry: dict[str, Any] = {}
        if "id" in r:
            entry["ID"] = r["id"]
        entry.update(
            {
                "AllowedHeader": r["headers"],
                "AllowedMethod": r["methods"],
                "AllowedOrigin": r["origins"],
                "ExposeHeader": r["expose"],
            }
        )
        if "max_age" in r:
            entry["MaxAgeSeconds"] = str(r["max_age"])
        out.append(entry)
    return {"CORSRule": out}


def _matches(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value.lower(), pattern.lower().replace("[", "[[]"))


def match(rules: list[Rule] | None, origin: str, method: str, headers: Sequence[str] = ()) -> Rule | None:
    """The first rule allowing this origin, method and every requested header."""
    for rule in rules or []:
        if not any(_matches(p, origin) for p in rule["origins"]):
            continue
        if method not in rule["methods"]:
            continue
        if all(any(_matches(p, h) for p in rule["headers"]) for h in headers):
            return rule
    return None


def response_headers(rule: Rule, origin: str, preflight: bool, requested_headers: Sequence[str] = ()) -> dict[str, str]:
    """The Access-Control-* headers to answer with for a matching rule."""
    allow_origin = "*" if rule["origins"] == ["*"] else origin
    headers = {
        "access-control-allow-origin": allow_origin,
        "vary": "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    }
    if allow_origin != "*":
        headers["access-control-allow-credentials"] = "true"
    if rule["expose"]:
        headers["access-control-expose-headers"] = ", ".join(rule["expose"])
    if preflight:
        headers["access-control-allow-methods"] = ", ".join(rule["methods"])
        if requested_headers:
            headers["access-control-allow-headers"] = ", ".join(requested_headers)
        if "max_age" in rule:
            headers["access-control-max-age"] = str(rule["max_age"])
    return headers
