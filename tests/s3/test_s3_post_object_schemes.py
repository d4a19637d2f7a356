"""POST Object with the forms boto3 makes: SigV2 on its default settings, SigV4 with "s3v4".

Both schemes are held to the same rules and answer the same errors, as AWS gives them
(https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html,
https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html,
https://docs.aws.amazon.com/AmazonS3/latest/userguide/HTTPPOSTForms.html); where the pages say no
status, ceph's s3-tests (`test_post_object_*`, run against AWS) do.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import xmltodict
from botocore.client import BaseClient
from post_forms import SCHEME_FIELDS, SCHEMES, error_of, form_client, missing, post, presign, v2_form, v2_signed
from s3_server import ADMIN, Creds, Endpoint, unique_bucket_name

TAGGING = (
    "<Tagging><TagSet><Tag><Key>project</Key><Value>blue</Value></Tag>"
    "<Tag><Key>empty</Key><Value></Value></Tag></TagSet></Tagging>"
)


@pytest.fixture(params=list(SCHEMES))
def scheme(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def forms(http_endpoint: Endpoint, scheme: str) -> BaseClient:
    """The admin's boto3 client that makes the forms, on default settings or with s3v4."""
    return form_client(http_endpoint, ADMIN, scheme)


def test_boto3_forms_store_what_they_carry(
    forms: BaseClient, scheme: str, s3_http: BaseClient, http_bucket: str
) -> None:
    fields = {
        "success_action_status": "201",
        "Content-Type": "text/plain",
        "x-amz-meta-owner": "alice",
        "Content-Disposition": 'attachment; filename="${filename}"',
        "tagging": TAGGING,
    }
    conditions = [
        {"success_action_status": "201"},
        {"Content-Type": "text/plain"},
        {"x-amz-meta-owner": "alice"},
        ["starts-with", "$Content-Disposition", "attachment; "],
        {"tagging": TAGGING},
        ["content-length-range", 1, 1024],
    ]
    made = forms.generate_presigned_post(
        http_bucket, "uploads/${filename}", Fields=fields, Conditions=conditions, ExpiresIn=300
    )
    url, form = made["url"], made["fields"]
    assert SCHEME_FIELDS[scheme] <= form.keys()  # the default really is SigV2
    r = post(url, form, b"from a form", filename="C:\\Users\\me\\notes.txt")
    assert r.status_code == 201, r.text
    etag = '"' + hashlib.md5(b"from a form").hexdigest() + '"'
    expected = {"Location": f"{url}/uploads/notes.txt", "Bucket": http_bucket, "Key": "uploads/notes.txt", "ETag": etag}
    assert xmltodict.parse(r.content)["PostResponse"] == expected
    got = s3_http.get_object(Bucket=http_bucket, Key="uploads/notes.txt")
    assert got["Body"].read() == b"from a form"
    assert (got["ContentType"], got["Metadata"], got["ContentDisposition"]) == (
        "text/plain",
        {"owner": "alice"},
        'attachment; filename="notes.txt"',
    )
    tags = s3_http.get_object_tagging(Bucket=http_bucket, Key="uploads/notes.txt")["TagSet"]
    assert tags == [{"Key": "project", "Value": "blue"}, {"Key": "empty", "Value": ""}]


def test_default_answer_and_redirects(forms: BaseClient, http_bucket: str) -> None:
    url, form = presign(forms, http_bucket, "plain")
    r = post(url, form, b"x")
    assert (r.status_code, r.content) == (204, b"")
    for name in ("success_action_redirect", "redirect"):  # `redirect` is the deprecated name
        url, form = presign(forms, http_bucket, "r.txt", {name: "https://app.example/done"})
        r = post(url, form, b"redirected")
        etag = hashlib.md5(b"redirected").hexdigest()
        assert (r.status_code, r.headers["location"]) == (
            303,
            f"https://app.example/done?bucket={http_bucket}&key=r.txt&etag=%22{etag}%22",
        )


def test_a_tampered_signature_or_policy(forms: BaseClient, s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presign(forms, http_bucket, "tampered", conditions=[["content-length-range", 0, 10]])
    signature = "signature" if "signature" in form else "x-amz-signature"
    good = form[signature]
    bad = {**form, signature: ("0" if good[0] != "0" else "1") + good[1:]}  # a change in any case (SigV4's is hex)
    assert error_of(post(url, bad, b"x"))[:2] == (403, "SignatureDoesNotMatch")
    doc = json.loads(base64.b64decode(form["policy"]))
    doc["conditions"] = [c for c in doc["conditions"] if not (isinstance(c, list) and c[0] == "content-length-range")]
    looser = {**form, "policy": base64.b64encode(json.dumps(doc).encode()).decode()}  # the size limit taken out
    assert error_of(post(url, looser, b"x" * 100))[:2] == (403, "SignatureDoesNotMatch")
    assert missing(s3_http, http_bucket, "tampered")


def test_an_unknown_access_key(http_endpoint: Endpoint, scheme: str, s3_http: BaseClient, http_bucket: str) -> None:
    nobody = form_client(http_endpoint, Creds("nobody", "PYBLOBNOSUCHKEY", "secret"), scheme)
    url, form = presign(nobody, http_bucket, "k")
    assert error_of(post(url, form, b"x"))[:2] == (403, "InvalidAccessKeyId")
    assert missing(s3_http, http_bucket, "k")


def test_an_expired_policy(forms: BaseClient, s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presign(forms, http_bucket, "late", expires_in=-5)
    assert error_of(post(url, form, b"too late")) == (
        403,
        "AccessDenied",
        "Invalid according to Policy: Policy expired.",
    )
    assert missing(s3_http, http_bucket, "late")


def test_a_condition_that_fails(forms: BaseClient, s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presign(forms, http_bucket, "uploads/${filename}", conditions=[["starts-with", "$x-amz-meta-tag", ""]])
    r = post(url, {**form, "x-amz-meta-tag": "t", "key": "elsewhere/x"}, b"x")
    assert error_of(r) == (
        403,
        "AccessDenied",
        'Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "uploads/"]',
    )
    r = post(url, form, b"x")  # a field the policy names is missing
    assert error_of(r) == (
        403,
        "AccessDenied",
        'Invalid according to Policy: Policy Condition failed: ["starts-with", "$x-amz-meta-tag", ""]',
    )
    assert missing(s3_http, http_bucket, "elsewhere/x") and missing(s3_http, http_bucket, "uploads/photo.jpg")


def test_a_field_no_condition_names(forms: BaseClient, s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presign(forms, http_bucket, "extra")
    r = post(url, {**form, "x-amz-meta-sneaky": "1"}, b"x")
    assert error_of(r) == (403, "AccessDenied", "Invalid according to Policy: Extra input fields: x-amz-meta-sneaky")
    assert missing(s3_http, http_bucket, "extra")
    assert post(url, {**form, "x-ignore-tracking": "1"}, b"x").status_code == 204  # x-ignore-* needs no condition


def test_a_policy_for_another_bucket(
    forms: BaseClient, http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str
) -> None:
    other = unique_bucket_name()
    s3_http.create_bucket(Bucket=other)
    _, form = presign(forms, other, "k")
    r = post(f"{http_endpoint.url}/{http_bucket}", form, b"x")
    assert error_of(r) == (
        403,
        "AccessDenied",
        f'Invalid according to Policy: Policy Condition failed: ["eq", "$bucket", "{other}"]',
    )
    assert missing(s3_http, http_bucket, "k") and missing(s3_http, other, "k")


def test_a_bucket_the_signer_does_not_own(forms: BaseClient, http_endpoint: Endpoint) -> None:
    bob = http_endpoint.client(http_endpoint.users["bob"])
    bobs = unique_bucket_name()
    bob.create_bucket(Bucket=bobs)
    url, form = presign(forms, bobs, "intruder")
    assert error_of(post(url, form, b"x"))[:2] == (403, "AccessDenied")
    assert missing(bob, bobs, "intruder")


def test_content_length_range(forms: BaseClient, s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presign(forms, http_bucket, "sized", conditions=[["content-length-range", 10, 1000]])
    assert error_of(post(url, form, b"x" * 200_000))[:2] == (400, "EntityTooLarge")
    assert error_of(post(url, form, b"tiny"))[:2] == (400, "EntityTooSmall")
    assert missing(s3_http, http_bucket, "sized")
    assert post(url, form, b"just right").status_code == 204


def test_a_policy_must_name_the_bucket(http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str) -> None:
    """ceph's test_post_object_missing_policy_condition: AWS answers 403 to a policy without it."""
    url = f"{http_endpoint.url}/{http_bucket}"
    r = post(url, v2_form(ADMIN, [{"key": "k"}], key="k"), b"x")
    assert error_of(r) == (403, "AccessDenied", "Invalid according to Policy: Extra input fields: bucket")
    assert missing(s3_http, http_bucket, "k")
    assert post(url, v2_form(ADMIN, [{"bucket": http_bucket}, {"key": "k"}], key="k"), b"x").status_code == 204


def test_names_and_operators_are_case_insensitive(
    http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str
) -> None:
    """Conditions as ceph's test_post_object_case_insensitive_condition_fields writes them; the form's
    own names as AWS's SigV2 example form spells them (Policy, Signature)."""
    conditions = [{"bUcKeT": http_bucket}, ["StArTs-WiTh", "$KeY", "foo"], ["EQ", "$CoNtEnT-TyPe", "text/plain"]]
    form = v2_form(ADMIN, conditions, kEy="foo.txt", **{"Content-Type": "text/plain"})
    form = {"Policy" if k == "policy" else "Signature" if k == "signature" else k: v for k, v in form.items()}
    assert post(f"{http_endpoint.url}/{http_bucket}", form, b"bar").status_code == 204
    got = s3_http.get_object(Bucket=http_bucket, Key="foo.txt")
    assert (got["Body"].read(), got["ContentType"]) == (b"bar", "text/plain")


@pytest.mark.parametrize("absent", ["signature", "AWSAccessKeyId"])
def test_a_sigv2_form_without_its_signature_fields(
    http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str, absent: str
) -> None:
    form = v2_form(ADMIN, [{"bucket": http_bucket}, {"key": "k"}], key="k")
    del form[absent]
    r = post(f"{http_endpoint.url}/{http_bucket}", form, b"x")
    assert error_of(r)[:2] == (400, "InvalidArgument")
    assert absent in error_of(r)[2]
    assert missing(s3_http, http_bucket, "k")


@pytest.mark.parametrize(
    "expiration", ["2030-01-01 12:00:00.123456+00:00", "2030-01-01T00:00:00", "2030-01-01T00:00:00+01:00", "tomorrow"]
)
def test_an_expiration_not_in_iso8601_utc(http_endpoint: Endpoint, http_bucket: str, expiration: str) -> None:
    """ceph's test_post_object_invalid_date_format: str(datetime) is not the format; 400."""
    form = v2_signed(ADMIN, {"expiration": expiration, "conditions": [{"bucket": http_bucket}, {"key": "k"}]}, key="k")
    assert error_of(post(f"{http_endpoint.url}/{http_bucket}", form, b"x")) == (
        400,
        "InvalidPolicyDocument",
        f"Invalid Policy: Invalid 'expiration' value: '{expiration}'",
    )
