"""POST Object: browser-based uploads with a signed policy, against the real server.

Forms come from boto3's `generate_presigned_post` (as a web backend would make them) or are signed
here when a test needs a policy boto3 will not write. httpx sends them as a browser does:
multipart/form-data, the fields first and the `file` part last (see post_forms.py); a few bodies
are written byte for byte. test_s3_post_object_schemes.py holds SigV2 and SigV4 forms to the same
rules; test_s3_post_object_browser.py posts one from headless Chromium.
"""

from __future__ import annotations

import base64
import hashlib
import os

import httpx
import pytest
import xmltodict
from botocore.client import BaseClient
from post_forms import error_of, missing, post, presign, raw_form, v2_form
from s3_server import ADMIN, Endpoint, unique_bucket_name

APP = "https://app.example"


def test_upload_with_201_response(s3_http: BaseClient, http_bucket: str) -> None:
    fields = {
        "success_action_status": "201",
        "Content-Type": "text/plain",
        "x-amz-meta-owner": "alice",
        "Cache-Control": "max-age=60",
    }
    url, form = presign(
        s3_http,
        http_bucket,
        "uploads/${filename}",
        fields,
        [["content-length-range", 1, 1024], ["starts-with", "$key", "uploads/"]],
    )
    r = post(url, form, b"hello from a form", filename="hello.txt")
    assert r.status_code == 201, r.text
    answer = xmltodict.parse(r.content)["PostResponse"]
    etag = '"' + hashlib.md5(b"hello from a form").hexdigest() + '"'
    assert answer == {
        "Location": f"{url}/uploads/hello.txt",
        "Bucket": http_bucket,
        "Key": "uploads/hello.txt",
        "ETag": etag,
    }
    assert r.headers["etag"] == etag and r.headers["location"] == answer["Location"]
    got = s3_http.get_object(Bucket=http_bucket, Key="uploads/hello.txt")
    assert got["Body"].read() == b"hello from a form"
    assert (got["ContentType"], got["Metadata"], got["CacheControl"]) == (
        "text/plain",
        {"owner": "alice"},
        "max-age=60",
    )


def test_upload_answers_204_by_default(s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presign(s3_http, http_bucket, "plain.bin")
    r = post(url, form, b"\x00\x01binary")
    assert (r.status_code, r.content) == (204, b"")
    got = s3_http.get_object(Bucket=http_bucket, Key="plain.bin")
    assert (got["Body"].read(), got["ContentType"]) == (b"\x00\x01binary", "binary/octet-stream")


def test_success_action_status_200_and_unknown_values(s3_http: BaseClient, http_bucket: str) -> None:
    for status, expected in (("200", 200), ("418", 204)):
        url, form = presign(s3_http, http_bucket, f"s-{status}", {"success_action_status": status})
        assert post(url, form, b"x").status_code == expected


def test_success_action_redirect(s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presign(
        s3_http,
        http_bucket,
        "dir/${filename}",
        {"success_action_redirect": f"{APP}/done?from=form"},
        [["starts-with", "$key", "dir/"]],
    )
    r = post(url, form, b"redirected", filename="r e.txt")
    assert r.status_code == 303
    etag = hashlib.md5(b"redirected").hexdigest()
    assert r.headers["location"] == f"{APP}/done?from=form&bucket={http_bucket}&key=dir%2Fr+e.txt&etag=%22{etag}%22"
    assert s3_http.get_object(Bucket=http_bucket, Key="dir/r e.txt")["Body"].read() == b"redirected"


def test_a_large_file_streams_through(s3_http: BaseClient, http_bucket: str) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)
    url, form = presign(s3_http, http_bucket, "big.bin", conditions=[["content-length-range", 0, 4 * 1024 * 1024]])
    assert post(url, form, content).status_code == 204
    body = s3_http.get_object(Bucket=http_bucket, Key="big.bin")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(content).digest()


def test_owner_quota_applies(http_endpoint: Endpoint) -> None:
    carol = http_endpoint.client(http_endpoint.users["carol"])  # 1 MiB quota
    bucket = unique_bucket_name()
    carol.create_bucket(Bucket=bucket)
    url, form = presign(carol, bucket, "big")
    assert error_of(post(url, form, b"x" * (2 * 1024 * 1024)))[:2] == (403, "QuotaExceeded")
    assert missing(carol, bucket, "big")


def test_fields_after_the_file_are_ignored(s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presign(s3_http, http_bucket, "order")
    body = b"".join(
        [f'--B\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in form.items()]
        + [
            b'--B\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\nfile bytes\r\n',
            b'--B\r\nContent-Disposition: form-data; name="unlisted"\r\n\r\nignored\r\n--B--\r\n',
        ]
    )
    r = httpx.post(url, content=body, headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert r.status_code == 204, r.text
    assert s3_http.get_object(Bucket=http_bucket, Key="order")["Body"].read() == b"file bytes"


def test_not_a_form(http_endpoint: Endpoint, http_bucket: str) -> None:
    r = httpx.post(
        f"{http_endpoint.url}/{http_bucket}",
        content=b"key=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert error_of(r)[:2] == (412, "PreconditionFailed")


def test_missing_file(s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presign(s3_http, http_bucket, "nofile")
    r = httpx.post(url, files={k: (None, v) for k, v in form.items()})
    assert error_of(r)[:2] == (400, "InvalidArgument")


def test_cors_headers_on_a_form_upload(s3_http: BaseClient, http_bucket: str) -> None:
    rules = {"CORSRules": [{"AllowedOrigins": [APP], "AllowedMethods": ["POST"], "ExposeHeaders": ["ETag"]}]}
    s3_http.put_bucket_cors(Bucket=http_bucket, CORSConfiguration=rules)
    url, form = presign(s3_http, http_bucket, "from-page")
    r = post(url, form, b"x", Origin=APP)
    assert r.status_code == 204
    assert (r.headers["access-control-allow-origin"], r.headers["access-control-expose-headers"]) == (APP, "ETag")


def test_fields_before_the_file_are_bounded(s3_http: BaseClient, http_bucket: str) -> None:
    url, form = presign(s3_http, http_bucket, "bloated", conditions=[["starts-with", "$x-amz-meta-pad", ""]])
    form["x-amz-meta-pad"] = "p" * 30_000
    assert error_of(post(url, form, b"x"))[:2] == (400, "MaxPostPreDataLengthExceededError")


@pytest.mark.parametrize("value", ["text/plain\x01", "text/plain\r\nx-injected: 1", "text/\u2603"])
def test_a_field_no_header_can_carry_is_refused(s3_http: BaseClient, http_bucket: str, value: str) -> None:
    """Form fields are stored to be sent back as headers on GET: one that cannot be is InvalidArgument,
    never an object whose every GET fails."""
    url, form = presign(s3_http, http_bucket, "odd.txt", {"Content-Type": value})
    r = post(url, form, b"x")
    assert r.status_code == 400 and error_of(r)[:2] == (400, "InvalidArgument"), r.text
    assert missing(s3_http, http_bucket, "odd.txt")


def test_a_form_upload_to_a_versioned_bucket_is_a_new_version(s3_http: BaseClient, http_bucket: str) -> None:
    s3_http.put_bucket_versioning(Bucket=http_bucket, VersioningConfiguration={"Status": "Enabled"})
    ids = []
    for body in (b"first", b"second"):
        url, form = presign(s3_http, http_bucket, "v.txt")
        r = post(url, form, body)
        assert r.status_code == 204, r.text
        ids.append(r.headers["x-amz-version-id"])
    listed = s3_http.list_object_versions(Bucket=http_bucket)["Versions"]
    assert [v["VersionId"] for v in listed] == ids[::-1]
    assert s3_http.get_object(Bucket=http_bucket, Key="v.txt", VersionId=ids[0])["Body"].read() == b"first"


@pytest.mark.parametrize("name", ["x-amz-meta-a b", "x-amz-meta-bell\x07", "x-amz-meta-caf\u00e9", "x-amz-meta-a:b"])
def test_a_field_name_no_header_can_carry_is_refused(
    http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str, name: str
) -> None:
    """Issue 9 §6: such a name, even one the policy names, was stored as metadata, and every later GET
    of the object dropped the connection. Now it is InvalidArgument and nothing is stored."""
    s3_http.put_object(Bucket=http_bucket, Key="neighbour", Body=b"still here")
    form = v2_form(
        ADMIN, [{"bucket": http_bucket}, {"key": "odd-name"}, ["starts-with", f"${name}", ""]], key="odd-name"
    )
    body, headers = raw_form([*form.items(), (name, "v")], b"content")
    r = httpx.post(f"{http_endpoint.url}/{http_bucket}", content=body, headers=headers, timeout=30, trust_env=False)
    status, code, message = error_of(r)
    assert (status, code) == (400, "InvalidArgument") and "not a valid HTTP header field name" in message, r.text
    assert missing(s3_http, http_bucket, "odd-name")
    assert [o["Key"] for o in s3_http.list_objects_v2(Bucket=http_bucket)["Contents"]] == ["neighbour"]
    assert s3_http.get_object(Bucket=http_bucket, Key="neighbour")["Body"].read() == b"still here"


def test_filename_variable_without_a_file_name(http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str) -> None:
    """HTTPPOSTForms.html: with no file name ${filename} is empty; a key that is then empty is refused."""
    url, form = presign(s3_http, http_bucket, "${filename}")
    body, headers = raw_form(list(form.items()), b"x", filename=None)
    r = httpx.post(url, content=body, headers=headers, timeout=30, trust_env=False)
    assert error_of(r) == (400, "InvalidArgument", "User key must have a length greater than 0.")
    assert "Contents" not in s3_http.list_objects_v2(Bucket=http_bucket)


def test_a_repeated_field_is_one_comma_separated_value(
    http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str
) -> None:
    """HTTPPOSTForms.html: the policy names the values of a repeated field joined with commas."""
    form = v2_form(
        ADMIN, [{"bucket": http_bucket}, {"key": "tagged"}, {"x-amz-meta-tag": "Ninja,Stallman"}], key="tagged"
    )
    body, headers = raw_form([*form.items(), ("x-amz-meta-tag", "Ninja"), ("x-amz-meta-tag", "Stallman")], b"content")
    r = httpx.post(f"{http_endpoint.url}/{http_bucket}", content=body, headers=headers, timeout=30, trust_env=False)
    assert r.status_code == 204, r.text
    assert s3_http.head_object(Bucket=http_bucket, Key="tagged")["Metadata"] == {"tag": "Ninja,Stallman"}


@pytest.mark.parametrize(
    ("tagging", "code"),
    [
        ("<Tagging><TagSet><Tag><Key>a</Key>", "MalformedXML"),
        (
            "<Tagging><TagSet>"
            + "".join(f"<Tag><Key>k{i}</Key><Value>v</Value></Tag>" for i in range(11))
            + "</TagSet></Tagging>",
            "BadRequest",
        ),
        ("<Tagging><TagSet><Tag><Key>" + "k" * 129 + "</Key><Value>v</Value></Tag></TagSet></Tagging>", "InvalidTag"),
    ],
)
def test_a_tagging_field_that_is_not_a_tag_set(s3_http: BaseClient, http_bucket: str, tagging: str, code: str) -> None:
    url, form = presign(s3_http, http_bucket, "tagged", {"tagging": tagging})
    assert error_of(post(url, form, b"x"))[:2] == (400, code)
    assert missing(s3_http, http_bucket, "tagged")


def test_checksum_fields_are_verified(s3_http: BaseClient, http_bucket: str) -> None:
    """x-amz-checksum-* and Content-MD5 fields, as their headers on PutObject: BadDigest on a mismatch.
    A checksum field needs no condition (ceph's test_post_object_upload_checksum, as AWS answers it)."""
    content = b"x" * 100_000
    sha256 = base64.b64encode(hashlib.sha256(content).digest()).decode()
    url, form = presign(s3_http, http_bucket, "summed")
    assert post(url, {**form, "x-amz-checksum-sha256": sha256}, content).status_code == 204
    head = s3_http.head_object(Bucket=http_bucket, Key="summed", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == sha256
    url, form = presign(s3_http, http_bucket, "bad-sha256")
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    assert error_of(post(url, {**form, "x-amz-checksum-sha256": wrong}, content))[:2] == (400, "BadDigest")
    url, form = presign(
        s3_http, http_bucket, "bad-md5", {"Content-MD5": base64.b64encode(hashlib.md5(b"other").digest()).decode()}
    )
    assert error_of(post(url, form, content))[:2] == (400, "BadDigest")
    assert missing(s3_http, http_bucket, "bad-sha256") and missing(s3_http, http_bucket, "bad-md5")


@pytest.mark.parametrize(
    "redirect",
    ["ftp://app.example/done", "https://app.example/a b", "https://app.example/\r\nx-injected: 1", "not a url"],
)
def test_a_redirect_that_cannot_be_followed_is_ignored(s3_http: BaseClient, http_bucket: str, redirect: str) -> None:
    """HTTPPOSTForms.html: "If Amazon S3 cannot interpret the URL, it ignores the field"; then
    success_action_status applies."""
    url, form = presign(
        s3_http, http_bucket, "kept", {"success_action_redirect": redirect, "success_action_status": "200"}
    )
    r = post(url, form, b"x")
    assert r.status_code == 200 and "x-injected" not in r.headers, r.text
    assert s3_http.get_object(Bucket=http_bucket, Key="kept")["Body"].read() == b"x"
