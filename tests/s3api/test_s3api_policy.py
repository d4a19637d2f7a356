"""POST policies: parsing, the checker and the signature, as pure functions.

Spec: https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html. The
signature vector is a policy for the AWS documentation's example credentials (AKIAIOSFODNN7EXAMPLE)
as the s3-post-policy package publishes it; `signature` must reproduce its x-amz-signature.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from s3api import policy
from s3api.errors import S3Error

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EXAMPLE_POLICY = "eyJleHBpcmF0aW9uIjoiMjAxMy0wOC0wNlQxMjowMDowMC4wMDBaIiwiY29uZGl0aW9ucyI6W3siYWNsIjoicHVibGljLXJlYWQifSxbInN0YXJ0cy13aXRoIiwiJENvbnRlbnQtVHlwZSIsImltYWdlLyJdLFsic3RhcnRzLXdpdGgiLCIka2V5IiwidXNlci91c2VyMS8iXSxbInN0YXJ0cy13aXRoIiwiJHgtYW16LW1ldGEtdGFnIiwiIl0seyJ4LWFtei1tZXRhLXV1aWQiOiIxNDM2NTEyMzY1MTI3NCJ9LHsiYnVja2V0IjoiZXhhbXBsZWJ1Y2tldCJ9LHsieC1hbXotYWxnb3JpdGhtIjoiQVdTNC1ITUFDLVNIQTI1NiJ9LHsieC1hbXotY3JlZGVudGlhbCI6IkFLSUFJT1NGT0ROTjdFWEFNUExFLzIwMTMwODA2L3VzLWVhc3QtMS9zMy9hd3M0X3JlcXVlc3QifSx7IngtYW16LWRhdGUiOiIyMDEzMDgwNlQxMjAwMDBaIn1dfQ=="
EXAMPLE_SIGNATURE = "5bc8a7be4a6fc6445b94d0f4096f8cf3dfa00303529f8a68ea7dc0c23bb83cd9"
EXAMPLE_FIELDS = {
    "acl": "public-read",
    "content-type": "image/jpeg",
    "key": "user/user1/photo.jpg",
    "x-amz-meta-tag": "",
    "x-amz-meta-uuid": "14365123651274",
    "x-amz-algorithm": "AWS4-HMAC-SHA256",
    "x-amz-credential": "AKIAIOSFODNN7EXAMPLE/20130806/us-east-1/s3/aws4_request",
    "x-amz-date": "20130806T120000Z",
    "policy": EXAMPLE_POLICY,
    "x-amz-signature": EXAMPLE_SIGNATURE,
}
BEFORE_EXPIRY = datetime(2013, 8, 6, 11, 0, tzinfo=UTC).timestamp()


def encode(doc: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(doc).encode()).decode()


def make(*conditions: Any, expiration: str = "2030-01-01T00:00:00.000Z") -> policy.Policy:
    return policy.parse(encode({"expiration": expiration, "conditions": list(conditions)}))


def denial(p: policy.Policy, fields: dict[str, str], bucket: str = "b", now: float = BEFORE_EXPIRY) -> str:
    with pytest.raises(S3Error) as e:
        policy.check(p, fields, bucket, now)
    assert e.value.code == "AccessDenied"
    return e.value.message


def test_signature_of_the_example_policy() -> None:
    assert policy.signature(EXAMPLE_POLICY, SECRET, "20130806", "us-east-1") == EXAMPLE_SIGNATURE


def test_example_policy_parses_and_admits_its_form() -> None:
    p = policy.parse(EXAMPLE_POLICY)
    assert p.expiration == datetime(2013, 8, 6, 12, tzinfo=UTC).timestamp()
    assert policy.Condition("starts-with", "content-type", "image/") in p.conditions
    assert policy.Condition("eq", "bucket", "examplebucket") in p.conditions
    policy.check(p, EXAMPLE_FIELDS, "examplebucket", BEFORE_EXPIRY)


def test_example_policy_refuses_another_bucket_and_a_later_time() -> None:
    p = policy.parse(EXAMPLE_POLICY)
    assert (
        denial(p, EXAMPLE_FIELDS, "otherbucket")
        == 'Invalid according to Policy: Policy Condition failed: ["eq", "$bucket", "examplebucket"]'
    )
    later = datetime(2013, 8, 6, 12, 0, 1, tzinfo=UTC).timestamp()
    assert denial(p, EXAMPLE_FIELDS, "examplebucket", later) == "Invalid according to Policy: Policy expired."


@pytest.mark.parametrize(
    ("condition", "value", "ok"),
    [
        (["eq", "$key", "a/b"], "a/b", True),
        (["eq", "$key", "a/b"], "a/bc", False),
        (["starts-with", "$key", "user/"], "user/x", True),
        (["starts-with", "$key", "user/"], "other/user/x", False),
        (["starts-with", "$key", ""], "anything", True),
        ({"key": "exact"}, "exact", True),
        ({"key": "exact"}, "Exact", False),
    ],
)
def test_eq_and_starts_with(condition: Any, value: str, ok: bool) -> None:
    p = make(condition)
    if ok:
        policy.check(p, {"key": value}, "b", 0)
    else:
        assert "Policy Condition failed" in denial(p, {"key": value}, now=0)


def test_field_names_are_case_insensitive() -> None:
    p = make(["starts-with", "$Content-Type", "image/"], {"X-Amz-Meta-Tag": "t"})
    policy.check(p, {"content-type": "image/png", "x-amz-meta-tag": "t"}, "b", 0)


def test_content_type_lists_match_throughout() -> None:
    p = make(["starts-with", "$Content-Type", "image/"])
    policy.check(p, {"content-type": "image/png, image/gif"}, "b", 0)
    denial(p, {"content-type": "image/png, text/html"}, now=0)


def test_a_condition_on_a_missing_field_fails() -> None:
    assert "Policy Condition failed" in denial(make(["starts-with", "$x-amz-meta-tag", ""]), {}, now=0)


def test_every_field_must_be_named_by_a_condition() -> None:
    p = make({"key": "k"})
    assert (
        denial(p, {"key": "k", "x-amz-meta-sneaky": "1"}, now=0)
        == "Invalid according to Policy: Extra input fields: x-amz-meta-sneaky"
    )
    exempt = {"key": "k", "policy": "...", "x-amz-signature": "...", "file": "", "x-ignore-me": "1"}
    policy.check(p, exempt, "b", 0)


def test_bucket_condition_is_about_the_request() -> None:
    p = make({"bucket": "mine"})
    policy.check(p, {}, "mine", 0)
    denial(p, {"bucket": "mine"}, "theirs", now=0)  # a form field cannot stand in for the bucket


def test_content_length_range() -> None:
    p = make(["content-length-range", 10, 100], ["content-length-range", "0", "50"])
    assert p.length_range() == (10, 50)
    policy.check_length(p, 50, final=True)
    with pytest.raises(S3Error) as e:
        policy.check_length(p, 51, final=False)
    assert (e.value.code, e.value.extra["MaxSizeAllowed"]) == ("EntityTooLarge", "50")
    policy.check_length(p, 5, final=False)  # still arriving
    with pytest.raises(S3Error) as e:
        policy.check_length(p, 5, final=True)
    assert (e.value.code, e.value.extra["MinSizeAllowed"]) == ("EntityTooSmall", "10")
    assert make().length_range() == (0, None)


@pytest.mark.parametrize(
    "raw",
    [
        "not base64!",
        base64.b64encode(b"{not json").decode(),
        encode({"conditions": []}),
        encode({"expiration": "tomorrow", "conditions": []}),
        encode({"expiration": "2030-01-01T00:00:00Z"}),
        encode({"expiration": "2030-01-01T00:00:00Z", "conditions": [["sometimes", "$key", "x"]]}),
        encode({"expiration": "2030-01-01T00:00:00Z", "conditions": [["eq", "key", "x"]]}),
        encode({"expiration": "2030-01-01T00:00:00Z", "conditions": [{"key": 1}]}),
        encode({"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", 10, 1]]}),
        encode({"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", -1, 1]]}),
        encode({"expiration": "2030-01-01T00:00:00Z", "conditions": ["key"]}),
    ],
)
def test_malformed_policies(raw: str) -> None:
    with pytest.raises(S3Error) as e:
        policy.parse(raw)
    assert e.value.code == "InvalidPolicyDocument"
