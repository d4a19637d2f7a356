"""SigV2 POST forms: the policy signature and the checker's SigV2 rules, as pure functions.

Spec: https://docs.aws.amazon.com/AmazonS3/latest/userguide/HTTPPOSTForms.html. The vector is the
policy of AWS's SigV2 upload example (HTTPPOSTExamples.html, "File upload") and the signature the
page gives for it, `0RavWzkygo6QX9caELEqKi9kDbU=`; the page does not name the secret, which is the
example secret key of AWS's SigV2 REST authentication examples.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from s3api import policy, sigv2
from s3api.errors import S3Error

EXAMPLE_SECRET = "uV3F3YluFJax1cknvbcGwgjvx4QpvB+leU8dUj2o"
EXAMPLE_POLICY = (
    "eyAiZXhwaXJhdGlvbiI6ICIyMDA3LTEyLTAxVDEyOjAwOjAwLjAwMFoiLAogICJjb25kaXRpb25zIjogWwogICAgeyJidWNrZXQiOiAiam9obnNtaXRoIn0sCiAg"
    "ICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci9lcmljLyJdLAogICAgeyJhY2wiOiAicHVibGljLXJlYWQifSwKICAgIHsic3VjY2Vzc19hY3Rpb25fcmVk"
    "aXJlY3QiOiAiaHR0cDovL2pvaG5zbWl0aC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwKICAgIFsic3RhcnRzLXdpdGgiLCAiJENv"
    "bnRlbnQtVHlwZSIsICJpbWFnZS8iXSwKICAgIHsieC1hbXotbWV0YS11dWlkIjogIjE0MzY1MTIzNjUxMjc0In0sCiAgICBbInN0YXJ0cy13aXRoIiwgIiR4LWFt"
    "ei1tZXRhLXRhZyIsICIiXQogIF0KfQo="
)
EXAMPLE_SIGNATURE = "0RavWzkygo6QX9caELEqKi9kDbU="
# The example's form fields (lower-case names), `bucket` being the request's.
EXAMPLE_FIELDS = {
    "key": "user/eric/MyPicture.jpg",
    "acl": "public-read",
    "success_action_redirect": "http://johnsmith.s3.amazonaws.com/successful_upload.html",
    "content-type": "image/jpeg",
    "x-amz-meta-uuid": "14365123651274",
    "x-amz-meta-tag": "Some,Tag,For,Picture",
    "awsaccesskeyid": "AKIAIOSFODNN7EXAMPLE",
    "policy": EXAMPLE_POLICY,
    "signature": EXAMPLE_SIGNATURE,
    "bucket": "johnsmith",
}
BEFORE_EXPIRY = datetime(2007, 12, 1, 11, 0, tzinfo=UTC).timestamp()


def denial(fields: dict[str, str], exempt: frozenset[str]) -> str:
    with pytest.raises(S3Error) as e:
        policy.check(policy.parse(EXAMPLE_POLICY), fields, "johnsmith", BEFORE_EXPIRY, exempt)
    assert e.value.code == "AccessDenied"
    return e.value.message


def test_signature_of_the_example_policy() -> None:
    assert sigv2.post_policy_signature(EXAMPLE_SECRET, EXAMPLE_POLICY) == EXAMPLE_SIGNATURE


def test_the_example_form_satisfies_its_policy_under_sigv2_rules() -> None:
    p = policy.parse(EXAMPLE_POLICY)
    assert p.expiration == datetime(2007, 12, 1, 12, tzinfo=UTC).timestamp()
    policy.check(p, EXAMPLE_FIELDS, "johnsmith", BEFORE_EXPIRY, policy.EXEMPT_V2)


def test_each_scheme_exempts_only_its_own_signature_fields() -> None:
    """SigV2 forms need no condition for AWSAccessKeyId and signature, SigV4 forms for x-amz-signature."""
    assert (
        denial(EXAMPLE_FIELDS, policy.EXEMPT)
        == "Invalid according to Policy: Extra input fields: awsaccesskeyid, signature"
    )
    v4_signed = {**EXAMPLE_FIELDS, "x-amz-signature": "0" * 64}
    assert denial(v4_signed, policy.EXEMPT_V2) == "Invalid according to Policy: Extra input fields: x-amz-signature"


def test_ignored_and_checksum_fields_need_no_condition() -> None:
    fields = {**EXAMPLE_FIELDS, "x-ignore-flash-filename": "a.jpg", "x-amz-checksum-crc32": "AAAAAA=="}
    policy.check(policy.parse(EXAMPLE_POLICY), fields, "johnsmith", BEFORE_EXPIRY, policy.EXEMPT_V2)


def test_the_bucket_must_be_named_when_it_is_an_input() -> None:
    p = policy.parse(
        base64.b64encode(
            json.dumps({"expiration": "2030-01-01T00:00:00Z", "conditions": [{"key": "k"}]}).encode()
        ).decode()
    )
    with pytest.raises(S3Error) as e:
        policy.check(p, {"key": "k", "bucket": "b"}, "b", 0, policy.EXEMPT_V2)
    assert e.value.message == "Invalid according to Policy: Extra input fields: bucket"


@pytest.mark.parametrize(
    ("expiration", "when"),
    [
        ("2030-01-01T00:00:00Z", datetime(2030, 1, 1, tzinfo=UTC).timestamp()),
        ("2030-01-01T00:00:00.000Z", datetime(2030, 1, 1, tzinfo=UTC).timestamp()),
        ("2030-01-01T00:00:00.5Z", datetime(2030, 1, 1, tzinfo=UTC).timestamp() + 0.5),
    ],
)
def test_expiration_in_iso8601_utc(expiration: str, when: float) -> None:
    doc = {"expiration": expiration, "conditions": []}
    assert policy.parse(base64.b64encode(json.dumps(doc).encode()).decode()).expiration == when


@pytest.mark.parametrize(
    "expiration",
    [
        "2030-01-01T00:00:00",
        "2030-01-01T00:00:00+00:00",
        "2030-01-01 00:00:00Z",
        "2030-13-01T00:00:00Z",
        "2030-01-01T00:00:00.Z",
        "",
    ],
)
def test_expiration_in_any_other_form_is_invalid(expiration: str) -> None:
    """ceph's s3-tests (test_post_object_invalid_date_format): AWS answers 400 to str(datetime)."""
    doc = {"expiration": expiration, "conditions": []}
    with pytest.raises(S3Error) as e:
        policy.parse(base64.b64encode(json.dumps(doc).encode()).decode())
    assert (e.value.code, e.value.message) == (
        "InvalidPolicyDocument",
        f"Invalid Policy: Invalid 'expiration' value: '{expiration}'",
    )
