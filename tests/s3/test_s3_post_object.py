"""POST Object: browser-based uploads with a SigV4-signed policy, against the real server.

Forms come from boto3's `generate_presigned_post` (as a web backend would make them) or are signed
here with pyblob's own policy signer when a test needs a policy boto3 will not write (one already
expired, one for somebody else's bucket). httpx sends them as a browser does: multipart/form-data,
the fields first and the `file` part last.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import xmltodict
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import ADMIN, REGION, Creds, Endpoint, failure, unique_bucket_name

from s3api import policy

APP = "https://app.example"


def post(url: str, fields: dict[str, str], content: bytes, filename: str = "photo.jpg", **headers: str) -> httpx.Response:
    """A browser's form upload: every field, then the file."""
    files = {"file": (filename, content, "application/octet-stream")}
    return httpx.post(url, data=fields, files=files, headers=headers, timeout=30)


def error_of(r: httpx.Response) -> tuple[int, str, str]:
    error = xmltodict.parse(r.content)["Error"]
    return r.status_code, error["Code"], error["Message"]


def signed_form(creds: Creds, bucket: str, conditions: list[Any], expires_in: int = 300, **fields: str) -> dict[str, str]:
    """Fields of a SigV4 POST form whose policy is written here, bucket condition first."""
    now = datetime.now(UTC)
    date = now.strftime("%Y%m%d")
    auth = {
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": f"{creds.access_key}/{date}/{REGION}/s3/aws4_request",
        "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ"),
    }
    expiration = (now + timedelta(seconds=expires_in)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    doc = {"expiration": expiration, "conditions": [{"bucket": bucket}, *({k: v} for k, v in auth.items()), *conditions]}
    encoded = base64.b64encode(json.dumps(doc).encode()).decode()
    signature = policy.signature(encoded, creds.secret_key, date, REGION)
    return {**fields, **auth, "policy": encoded, "x-amz-signature": signature}


def presigned(s3: BaseClient, bucket: str, key: str, fields: dict[str, str] | None = None,
              conditions: list[Any] | None = None) -> tuple[str, dict[str, str]]:
    """boto3's form: its URL and fields, with the given extra fields and their conditions."""
    extra = fields or {}
    made = s3.generate_presigned_post(bucket, key, Fields=extra, Conditions=[*({k: v} for k, v in extra.items()), *(conditions or [])],
                                      ExpiresIn=300)
    return made["url"], made["fields"]


def missing(s3: BaseClient, bucket: str, key: str) -> bool:
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    return failure(e)[0] == 404


def test_upload_with_201_response(s3_http: BaseClient, http_bucket: str) -> None:
    fields = {"success_action_status": "201", "Content-Type": "text/plain", "x-amz-meta-owner": "alice",
              "Cache-Control": "max-age=60"}
    url, form = presigned(s3_http, http_bucket, "uploads/${filename}", fields,
                          [["content-length-range", 1, 1024], ["starts-with", "$key", "uploads/"]])
    r = post(url, form, b"hello from a form", filename="hello.txt")
    assert r.status_code == 201, r.text
    answer = xmltodict.parse(r.content)["PostResponse"]
    etag = '"' + hashlib.md5(b"hello from a form").hexdigest() + '"'
    assert answer == {"Location": f"{url}/uploads/hello.txt", "Bucket": http_bucket, "Key": "uploads/hello.txt", "ETag": etag}
    assert r.headers["etag"] == etag and r.headers["location"] == answer["Location"]
    got = s3_http.get_object(Bucket=http_bucket, Key="uploads/hello.txt")
    assert got["Body"].read() == b"hello from a form"
    assert (got["ContentType"], got["Metadata"], got["CacheControl"]) == ("text/plain", {"owner": "alice"}, "max-age=60")


def test_upload_answers_204_by_default(s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presigned(s3_http, http_bucket, "plain.bin")
    r = post(url, form, b"\x00\x01binary")
    assert (r.status_code, r.content) == (204, b"")
    got = s3_http.get_object(Bucket=http_bucket, Key="plain.bin")
    assert (got["Body"].read(), got["ContentType"]) == (b"\x00\x01binary", "binary/octet-stream")


def test_success_action_status_200_and_unknown_values(s3_http: BaseClient, http_bucket: str) -> None:
    for status, expected in (("200", 200), ("418", 204)):
        url, form = presigned(s3_http, http_bucket, f"s-{status}", {"success_action_status": status})
        assert post(url, form, b"x").status_code == expected


def test_success_action_redirect(s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presigned(s3_http, http_bucket, "dir/${filename}", {"success_action_redirect": f"{APP}/done?from=form"},
                          [["starts-with", "$key", "dir/"]])
    r = post(url, form, b"redirected", filename="r e.txt")
    assert r.status_code == 303
    etag = hashlib.md5(b"redirected").hexdigest()
    assert r.headers["location"] == f"{APP}/done?from=form&bucket={http_bucket}&key=dir%2Fr+e.txt&etag=%22{etag}%22"
    assert s3_http.get_object(Bucket=http_bucket, Key="dir/r e.txt")["Body"].read() == b"redirected"


def test_a_large_file_streams_through(s3_http: BaseClient, http_bucket: str) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)
    url, form = presigned(s3_http, http_bucket, "big.bin", conditions=[["content-length-range", 0, 4 * 1024 * 1024]])
    assert post(url, form, content).status_code == 204
    body = s3_http.get_object(Bucket=http_bucket, Key="big.bin")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(content).digest()


def test_expired_policy(http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str) -> None:
    form = signed_form(ADMIN, http_bucket, [{"key": "late"}], expires_in=-5, key="late")
    r = post(f"{http_endpoint.url}/{http_bucket}", form, b"too late")
    assert error_of(r) == (403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    assert missing(s3_http, http_bucket, "late")


def test_content_length_range_violated(s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presigned(s3_http, http_bucket, "sized", conditions=[["content-length-range", 10, 1000]])
    r = post(url, form, b"x" * 200_000)
    assert error_of(r)[:2] == (400, "EntityTooLarge")
    r = post(url, form, b"tiny")
    assert error_of(r)[:2] == (400, "EntityTooSmall")
    assert missing(s3_http, http_bucket, "sized")


def test_tampered_signature(s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presigned(s3_http, http_bucket, "tampered")
    good = form["x-amz-signature"]
    form["x-amz-signature"] = ("0" if good[0] != "0" else "1") + good[1:]
    assert error_of(post(url, form, b"x"))[:2] == (403, "SignatureDoesNotMatch")
    assert missing(s3_http, http_bucket, "tampered")


def test_tampered_policy(s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presigned(s3_http, http_bucket, "k", conditions=[["content-length-range", 0, 10]])
    doc = json.loads(base64.b64decode(form["policy"]))
    doc["conditions"] = [c for c in doc["conditions"] if not (isinstance(c, list) and c[0] == "content-length-range")]
    form["policy"] = base64.b64encode(json.dumps(doc).encode()).decode()
    assert error_of(post(url, form, b"x" * 100))[:2] == (403, "SignatureDoesNotMatch")


def test_unknown_access_key(http_endpoint: Endpoint, http_bucket: str) -> None:
    nobody = Creds("nobody", "PYBLOBNOSUCHKEY", "secret")
    form = signed_form(nobody, http_bucket, [{"key": "k"}], key="k")
    assert error_of(post(f"{http_endpoint.url}/{http_bucket}", form, b"x"))[:2] == (403, "InvalidAccessKeyId")


def test_extra_field_not_in_the_policy(s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presigned(s3_http, http_bucket, "extra")
    form["x-amz-meta-sneaky"] = "1"
    assert error_of(post(url, form, b"x")) == (403, "AccessDenied", "Invalid according to Policy: Extra input fields: x-amz-meta-sneaky")
    form = {**form, "x-ignore-tracking": "1"}
    del form["x-amz-meta-sneaky"]
    assert post(url, form, b"x").status_code == 204  # x-ignore-* needs no condition


def test_key_outside_the_allowed_prefix(s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presigned(s3_http, http_bucket, "uploads/${filename}", conditions=[["starts-with", "$key", "uploads/"]])
    form["key"] = "elsewhere/x"
    r = post(url, form, b"x")
    assert error_of(r) == (403, "AccessDenied", 'Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "uploads/"]')
    assert missing(s3_http, http_bucket, "elsewhere/x")


def test_another_users_bucket(http_endpoint: Endpoint, s3_http: BaseClient) -> None:
    bob = http_endpoint.users["bob"]
    bobs = unique_bucket_name()
    http_endpoint.client(bob).create_bucket(Bucket=bobs)
    form = signed_form(ADMIN, bobs, [{"key": "intruder"}], key="intruder")
    assert error_of(post(f"{http_endpoint.url}/{bobs}", form, b"x"))[:2] == (403, "AccessDenied")
    assert missing(http_endpoint.client(bob), bobs, "intruder")


def test_policy_for_another_bucket(http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str) -> None:
    other = unique_bucket_name()
    s3_http.create_bucket(Bucket=other)
    _, form = presigned(s3_http, other, "k")
    r = post(f"{http_endpoint.url}/{http_bucket}", form, b"x")
    assert error_of(r) == (403, "AccessDenied", f'Invalid according to Policy: Policy Condition failed: ["eq", "$bucket", "{other}"]')


def test_owner_quota_applies(http_endpoint: Endpoint) -> None:
    carol = http_endpoint.client(http_endpoint.users["carol"])  # 1 MiB quota
    bucket = unique_bucket_name()
    carol.create_bucket(Bucket=bucket)
    url, form = presigned(carol, bucket, "big")
    assert error_of(post(url, form, b"x" * (2 * 1024 * 1024)))[:2] == (403, "QuotaExceeded")
    assert missing(carol, bucket, "big")


def test_fields_after_the_file_are_ignored(s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presigned(s3_http, http_bucket, "order")
    body = b"".join(
        [f'--B\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in form.items()]
        + [b'--B\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\nfile bytes\r\n',
           b'--B\r\nContent-Disposition: form-data; name="unlisted"\r\n\r\nignored\r\n--B--\r\n']
    )
    r = httpx.post(url, content=body, headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert r.status_code == 204, r.text
    assert s3_http.get_object(Bucket=http_bucket, Key="order")["Body"].read() == b"file bytes"


def test_not_a_form(http_endpoint: Endpoint, http_bucket: str) -> None:
    r = httpx.post(f"{http_endpoint.url}/{http_bucket}", content=b"key=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert error_of(r)[:2] == (412, "PreconditionFailed")


def test_missing_file(s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presigned(s3_http, http_bucket, "nofile")
    r = httpx.post(url, files={k: (None, v) for k, v in form.items()})
    assert error_of(r)[:2] == (400, "InvalidArgument")


def test_cors_headers_on_a_form_upload(s3_http: BaseClient, http_bucket: str) -> None:
    rules = {"CORSRules": [{"AllowedOrigins": [APP], "AllowedMethods": ["POST"], "ExposeHeaders": ["ETag"]}]}
    s3_http.put_bucket_cors(Bucket=http_bucket, CORSConfiguration=rules)
    url, form = presigned(s3_http, http_bucket, "from-page")
    r = post(url, form, b"x", Origin=APP)
    assert r.status_code == 204
    assert (r.headers["access-control-allow-origin"], r.headers["access-control-expose-headers"]) == (APP, "ETag")


def test_fields_before_the_file_are_bounded(s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presigned(s3_http, http_bucket, "bloated", conditions=[["starts-with", "$x-amz-meta-pad", ""]])
    form["x-amz-meta-pad"] = "p" * 30_000
    assert error_of(post(url, form, b"x"))[:2] == (400, "MaxPostPreDataLengthExceededError")


@pytest.mark.parametrize("value", ["text/plain\x01", "text/plain\r\nx-injected: 1", "text/\u2603"])
def test_a_field_no_header_can_carry_is_refused(s3_http: BaseClient, http_bucket: str, value: str) -> None:
    """Form fields are stored to be sent back as headers on GET: one that cannot be is InvalidArgument,
    never an object whose every GET fails."""
    url, form = presigned(s3_http, http_bucket, "odd.txt", {"Content-Type": value})
    r = post(url, form, b"x")
    assert r.status_code == 400 and error_of(r)[:2] == (400, "InvalidArgument"), r.text
    assert missing(s3_http, http_bucket, "odd.txt")


def test_a_form_upload_to_a_versioned_bucket_is_a_new_version(s3_http: BaseClient, http_bucket: str) -> None:
    s3_http.put_bucket_versioning(Bucket=http_bucket, VersioningConfiguration={"Status": "Enabled"})
    ids = []
    for body in (b"first", b"second"):
        url, form = presigned(s3_http, http_bucket, "v.txt")
        r = post(url, form, body)
        assert r.status_code == 204, r.text
        ids.append(r.headers["x-amz-version-id"])
    listed = s3_http.list_object_versions(Bucket=http_bucket)["Versions"]
    assert [v["VersionId"] for v in listed] == ids[::-1]
    assert s3_http.get_object(Bucket=http_bucket, Key="v.txt", VersionId=ids[0])["Body"].read() == b"first"
