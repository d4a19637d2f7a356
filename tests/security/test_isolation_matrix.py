"""The isolation matrix of issue 15 (Security), S3 side: every operation of `s3api.router.Op`, aimed at
alice's bucket, objects (each version, the delete marker) and multipart upload, sent with mallory's
credentials (SigV4 and SigV2), with none, with alice's revoked key, and as alice's presigned URLs
(SigV4 and SigV2) changed after signing (key, expiry, date, signature), expired, replayed onto another
request or made with the revoked key; POST Object forms; aws-chunked bodies with chunk signatures
changed, reordered or replayed.

Each is refused as AWS answers (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html):
another account's bucket is AccessDenied (403) whatever the key, and whether pyblob implements the
operation or not; no credentials AccessDenied, an
unknown key InvalidAccessKeyId, a changed request SignatureDoesNotMatch, an expired URL AccessDenied
"Request has expired". And nothing changes: see conftest.py for the digest of the whole store.

The cases are generated from `Op`: an operation with no request below fails
`test_every_operation_has_requests` until it has one (or is listed in `SPECIAL`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import boto3
import httpx
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from isolation_requests import (
    Answer,
    Creds,
    Prepared,
    answer_of,
    auth_params,
    chunk_signatures,
    chunked_body,
    clock_at,
    flipped,
    grafted,
    prepare,
    presigned,
    presigned_v2,
    send,
    signed,
    signed_v2,
    streaming,
    with_path,
    with_query,
)
from isolation_site import (
    BIG,
    BUCKET,
    DOC,
    GONE,
    MALLORY_BUCKET,
    MALLORY_KEY,
    ORIGIN,
    TAGGED,
    Digest,
    Site,
    digest_changes,
    metadata_digest,
)

from s3api.auth import parse_query
from s3api.router import Op, classify

Template = Callable[[Site], tuple[str, dict[str, Any]]]  # site -> (boto3 method, its parameters)


@dataclass(frozen=True)
class Expect:
    status: int
    code: str = ""  # S3 error code (not checked on HEAD, which has no body)
    message: str = ""  # a part of the error message
    isolated: bool = False  # a 200 about the caller's own account: nothing of alice's in it


DENIED = Expect(403, "AccessDenied")


# requests, one or more per operation -------------------------------------------------------------
def on_bucket(method: str, **extra: Any) -> dict[str, Template]:
    return {"bucket": lambda s: (method, {"Bucket": BUCKET, **extra})}


def on_key(method: str, **extra: Any) -> dict[str, Template]:
    return {"current": lambda s: (method, {"Bucket": BUCKET, "Key": DOC, **extra})}


def on_versions(method: str, **extra: Any) -> dict[str, Template]:
    """The current version, the oldest one, and a delete marker by its version id."""

    def at(key: str, version: str | None) -> Template:
        return lambda s: (method, {"Bucket": BUCKET, "Key": key, **version_of(s, version), **extra})

    return {"current": at(DOC, None), "old-version": at(DOC, "v1"), "delete-marker": at(GONE, "marker")}


def version_of(site: Site, version: str | None) -> dict[str, str]:
    return {"VersionId": site.versions[version]} if version else {}


def on_upload(method: str, **extra: Any) -> dict[str, Template]:
    """Alice's upload; and (mallory's only) alice's upload id used in mallory's own bucket."""
    return {
        "upload": lambda s: (method, {"Bucket": BUCKET, "Key": BIG, "UploadId": s.upload_id, **extra}),
        "mallory:alice-upload-in-own-bucket": lambda s: (
            method,
            {"Bucket": MALLORY_BUCKET, "Key": BIG, "UploadId": s.upload_id, **extra},
        ),
    }


def completion(site: Site) -> dict[str, Any]:
    return {"MultipartUpload": {"Parts": [{"ETag": site.part_etag, "PartNumber": 1}]}}


SOURCE = {"Bucket": BUCKET, "Key": DOC}
TAGS = {"TagSet": [{"Key": "owner", "Value": "mallory"}]}
CORS = {"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "PUT", "DELETE"]}]}
LIFECYCLE = {"Rules": [{"ID": "all", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}]}
STATEMENT = {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": f"arn:aws:s3:::{BUCKET}/*"}
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [STATEMENT]})
SQL = {
    "Expression": "SELECT * FROM S3Object",
    "ExpressionType": "SQL",
    "InputSerialization": {"CSV": {}},
    "OutputSerialization": {"CSV": {}},
}

S3_CALLS: dict[Op, dict[str, Template]] = {
    Op.ListBuckets: {"service": lambda s: ("list_buckets", {})},
    Op.CreateBucket: on_bucket("create_bucket"),
    Op.DeleteBucket: on_bucket("delete_bucket"),
    Op.HeadBucket: on_bucket("head_bucket"),
    Op.GetBucketLocation: on_bucket("get_bucket_location"),
    Op.GetBucketVersioning: on_bucket("get_bucket_versioning"),
    Op.PutBucketVersioning: on_bucket("put_bucket_versioning", VersioningConfiguration={"Status": "Suspended"}),
    Op.ListObjects: on_bucket("list_objects"),
    Op.ListObjectsV2: on_bucket("list_objects_v2"),
    Op.ListObjectVersions: on_bucket("list_object_versions"),
    Op.GetBucketAcl: on_bucket("get_bucket_acl"),
    Op.PutBucketAcl: on_bucket("put_bucket_acl", ACL="public-read-write"),
    Op.DeleteObjects: {
        "bucket": lambda s: (
            "delete_objects",
            {
                "Bucket": BUCKET,
                "Delete": {
                    "Objects": [
                        {"Key": DOC},
                        {"Key": DOC, "VersionId": s.versions["v1"]},
                        {"Key": GONE, "VersionId": s.versions["marker"]},
                    ]
                },
            },
        )
    },
    Op.ListMultipartUploads: on_bucket("list_multipart_uploads"),
    Op.GetBucketCors: on_bucket("get_bucket_cors"),
    Op.PutBucketCors: on_bucket("put_bucket_cors", CORSConfiguration=CORS),
    Op.DeleteBucketCors: on_bucket("delete_bucket_cors"),
    Op.GetBucketLifecycleConfiguration: on_bucket("get_bucket_lifecycle_configuration"),
    Op.PutBucketLifecycleConfiguration: on_bucket(
        "put_bucket_lifecycle_configuration", LifecycleConfiguration=LIFECYCLE
    ),
    Op.DeleteBucketLifecycle: on_bucket("delete_bucket_lifecycle"),
    Op.GetBucketTagging: on_bucket("get_bucket_tagging"),
    Op.PutBucketTagging: on_bucket("put_bucket_tagging", Tagging=TAGS),
    Op.DeleteBucketTagging: on_bucket("delete_bucket_tagging"),
    Op.GetBucketPolicy: on_bucket("get_bucket_policy"),
    Op.PutBucketPolicy: on_bucket("put_bucket_policy", Policy=POLICY),
    Op.DeleteBucketPolicy: on_bucket("delete_bucket_policy"),
    Op.GetBucketEncryption: on_bucket("get_bucket_encryption"),
    Op.GetObjectLockConfiguration: on_bucket("get_object_lock_configuration"),
    Op.GetObject: on_versions("get_object"),
    Op.HeadObject: on_versions("head_object"),
    Op.PutObject: on_key("put_object", Body=b"mallory was here"),
    Op.CopyObject: {
        "current": lambda s: ("copy_object", {"Bucket": BUCKET, "Key": DOC, "CopySource": {**SOURCE, "Key": TAGGED}}),
        "old-version": lambda s: (
            "copy_object",
            {"Bucket": BUCKET, "Key": DOC, "CopySource": {**SOURCE, **version_of(s, "v1")}},
        ),
        "mallory:alice-source-into-own-bucket": lambda s: (
            "copy_object",
            {"Bucket": MALLORY_BUCKET, "Key": "stolen", "CopySource": SOURCE},
        ),
        "mallory:alice-old-version-into-own-bucket": lambda s: (
            "copy_object",
            {"Bucket": MALLORY_BUCKET, "Key": "stolen", "CopySource": {**SOURCE, **version_of(s, "v1")}},
        ),
    },
    Op.DeleteObject: on_versions("delete_object"),
    Op.GetObjectAcl: on_versions("get_object_acl"),
    Op.PutObjectAcl: on_versions("put_object_acl", ACL="public-read"),
    Op.GetObjectTagging: on_versions("get_object_tagging"),
    Op.PutObjectTagging: on_versions("put_object_tagging", Tagging=TAGS),
    Op.DeleteObjectTagging: on_versions("delete_object_tagging"),
    Op.GetObjectAttributes: on_versions("get_object_attributes", ObjectAttributes=["ETag", "ObjectSize"]),
    Op.CreateMultipartUpload: on_key("create_multipart_upload"),
    Op.UploadPart: on_upload("upload_part", PartNumber=1, Body=b"part one, overwritten"),
    Op.UploadPartCopy: {
        "upload": lambda s: (
            "upload_part_copy",
            {"Bucket": BUCKET, "Key": BIG, "UploadId": s.upload_id, "PartNumber": 2, "CopySource": SOURCE},
        ),
        "mallory:alice-source-into-own-upload": lambda s: (
            "upload_part_copy",
            {
                "Bucket": MALLORY_BUCKET,
                "Key": MALLORY_KEY,
                "UploadId": s.mallory_upload_id,
                "PartNumber": 1,
                "CopySource": {**SOURCE, **version_of(s, "v3")},
            },
        ),
    },
    Op.CompleteMultipartUpload: {
        variant: (lambda s, t=template: (t(s)[0], {**t(s)[1], **completion(s)}))  # type: ignore[misc]
        for variant, template in on_upload("complete_multipart_upload").items()
    },
    Op.AbortMultipartUpload: on_upload("abort_multipart_upload"),
    Op.ListParts: on_upload("list_parts"),
    Op.RestoreObject: on_versions("restore_object", RestoreRequest={"Days": 1}),
    Op.SelectObjectContent: on_key("select_object_content", **SQL),
}
# Requests that are not an SDK call of their own, each with its own test below.
SPECIAL = {
    Op.PostObject: "a form signed in its body: test_post_object_form_is_refused",
    Op.Preflight: "carries no credentials by design (Fetch standard): test_preflight_answers_only_the_cors_rules",
}
# What mallory's requests on her own bucket or upload that name alice's data answer.
CROSS = {
    "mallory:alice-upload-in-own-bucket": Expect(404, "NoSuchUpload"),
    "mallory:alice-source-into-own-bucket": DENIED,
    "mallory:alice-old-version-into-own-bucket": DENIED,
    "mallory:alice-source-into-own-upload": DENIED,
}

CLASSES = (
    "mallory",
    "mallory-sigv2",
    "anonymous",
    "revoked-key",
    "presigned-changed-key",
    "presigned-changed-expiry",
    "presigned-changed-signature",
    "presigned-expired",
    "presigned-expired-redated",  # X-Amz-Date moved to now, to make an expired URL live again
    "presigned-replayed",
    "presigned-revoked-key",
    "presigned-v2-changed-signature",
    "presigned-v2-expired",
)
# The presigned URL whose signature is replayed onto every other request: it signs the host alone, so
# a request with an x-amz-* header is refused for that header before its signature is checked.
REPLAYED = (Op.HeadObject, "current")


def s3_cases() -> list[tuple[Op, str, str]]:
    cases = []
    for op, variants in S3_CALLS.items():
        for variant in variants:
            for kind in CLASSES:
                if variant.startswith("mallory:") and kind != "mallory":
                    continue  # a request on mallory's own bucket: only hers means anything
                if (kind == "presigned-changed-key" and variant == "service") or (
                    kind == "presigned-replayed" and (op, variant) == REPLAYED
                ):
                    continue  # no key to change; the replayed URL itself
                cases.append((op, variant, kind))
    return cases


def expected(op: Op, variant: str, kind: str, request: Prepared) -> Expect:
    if kind in ("mallory", "mallory-sigv2"):
        if variant in CROSS:
            return CROSS[variant]
        if op is Op.ListBuckets:
            return Expect(200, isolated=True)
        if op is Op.CreateBucket:
            return Expect(409, "BucketAlreadyExists")  # bucket names are global: AWS says so to anyone signed
        return DENIED  # implemented or not: another account's bucket comes first, as at AWS
    if kind in ("revoked-key", "presigned-revoked-key"):
        return Expect(403, "InvalidAccessKeyId")
    if kind in ("presigned-expired", "presigned-v2-expired"):
        return Expect(403, "AccessDenied", "Request has expired")
    if kind == "presigned-replayed" and any(name.startswith("x-amz-") for name in request.headers):
        return Expect(403, "AccessDenied", "headers present in the request which were not signed")
    if kind.startswith("presigned-"):
        return Expect(403, "SignatureDoesNotMatch")
    return DENIED  # anonymous


def changed_path(url: str) -> str:
    """Another of alice's objects for an object's URL, mallory's bucket for a bucket's."""
    bucket, _, key = unquote(urlsplit(url).path)[1:].partition("/")
    if key:
        return f"/{bucket}/{DOC if key == TAGGED else TAGGED}"
    return f"/{MALLORY_BUCKET}"


def build(site: Site, capture: BaseClient, op: Op, variant: str, kind: str) -> Prepared:
    base = prepare(capture, *S3_CALLS[op][variant](site))
    if kind == "mallory":
        return signed(base, site.mallory)
    if kind == "mallory-sigv2":
        return signed_v2(base, site.mallory)
    if kind == "presigned-v2-expired":
        return presigned_v2(base, site.alice, expires=-60)
    if kind == "presigned-v2-changed-signature":
        url = presigned_v2(base, site.alice)
        mac = base64.b64decode(dict(parse_qsl(urlsplit(url.url).query))["Signature"])
        changed = base64.b64encode(bytes([mac[0] ^ 1]) + mac[1:]).decode()
        return url.with_url(with_query(url.url, {"Signature": changed}))
    if kind == "anonymous":
        return base
    if kind == "revoked-key":
        return signed(base, site.revoked_key)
    if kind in ("presigned-expired", "presigned-expired-redated"):
        url = presigned(base, site.alice, expires=60, at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
        now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return url if kind == "presigned-expired" else url.with_url(with_query(url.url, {"X-Amz-Date": now}))
    if kind == "presigned-revoked-key":
        return presigned(base, site.revoked_key)
    if kind == "presigned-replayed":
        source = prepare(capture, *S3_CALLS[REPLAYED[0]][REPLAYED[1]](site))
        return grafted(base, auth_params(presigned(source, site.alice).url))
    url = presigned(base, site.alice)
    if kind == "presigned-changed-key":
        return url.with_url(with_path(url.url, changed_path(url.url)))
    if kind == "presigned-changed-expiry":
        return url.with_url(with_query(url.url, {"X-Amz-Expires": "604800"}))
    signature = auth_params(url.url)["X-Amz-Signature"]
    return url.with_url(with_query(url.url, {"X-Amz-Signature": flipped(signature)}))


def check(answer: Answer, expect: Expect, method: str, site: Site) -> None:
    shown = f"{answer.status} {answer.code} {answer.message!r}: {answer.body[:300]!r}"
    assert answer.status == expect.status, shown
    if method != "HEAD":
        assert answer.code == expect.code, shown
        assert expect.message in answer.message, shown
    if expect.isolated:
        text = answer.body.decode(errors="replace")
        assert not [s for s in site.alice_secrets() if s in text], shown


# the matrix --------------------------------------------------------------------------------------
def test_every_operation_has_requests() -> None:
    """A new operation in the router's enum is a new row of the matrix, or this fails."""
    missing = [op.value for op in Op if op not in S3_CALLS and op not in SPECIAL]
    assert not missing, f"operations without a request in the isolation matrix: {missing}"


def test_every_request_is_the_operation_it_stands_for(site: Site, capture: BaseClient) -> None:
    """Each request, as the router classifies it, is the operation of its row."""
    wrong = []
    for op, variants in S3_CALLS.items():
        for variant, template in variants.items():
            request = prepare(capture, *template(site))
            parts = urlsplit(request.url)
            bucket, _, key = unquote(parts.path)[1:].partition("/")
            query = dict(parse_query(parts.query))
            route = classify(request.method, bucket, key, query, request.headers)
            if route.op is not op:
                wrong.append(f"{op.value}/{variant} is {route.op}")
    assert not wrong


@pytest.mark.parametrize(("op", "variant", "kind"), s3_cases(), ids=lambda v: str(v))
def test_s3_request_is_refused(
    site: Site, capture: BaseClient, http: httpx.Client, op: Op, variant: str, kind: str
) -> None:
    request = build(site, capture, op, variant, kind)
    check(send(http, request), expected(op, variant, kind, request), request.method, site)


# POST Object ---------------------------------------------------------------------------------------
POST_CLASSES = {
    "mallory": DENIED,  # her own valid policy, for alice's bucket
    "anonymous": DENIED,  # no policy: pyblob has no public buckets
    "revoked-key": Expect(403, "InvalidAccessKeyId"),
    "changed-key": Expect(403, "AccessDenied", "Policy Condition failed"),  # the key field, not the policy
    "changed-expiry": Expect(403, "SignatureDoesNotMatch"),  # the policy's expiration rewritten
    "changed-signature": Expect(403, "SignatureDoesNotMatch"),
    "expired": Expect(403, "AccessDenied", "Policy expired"),
}


def form_fields(site: Site, creds: Creds, expires: int = 600) -> dict[str, str]:
    """A SigV4 POST form for alice's bucket signed with `creds`, as boto3's generate_presigned_post makes it."""
    client = boto3.client(
        "s3",
        endpoint_url=site.url,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    try:
        fields: dict[str, str] = client.generate_presigned_post(BUCKET, "posted.txt", ExpiresIn=expires)["fields"]
    finally:
        client.close()
    return fields


def post_form(site: Site, kind: str) -> dict[str, str]:
    if kind == "anonymous":
        return {"key": "posted.txt"}
    if kind in ("mallory", "revoked-key"):
        return form_fields(site, site.mallory if kind == "mallory" else site.revoked_key)
    fields = form_fields(site, site.alice, -60 if kind == "expired" else 600)
    if kind == "changed-key":
        fields["key"] = DOC
    elif kind == "changed-expiry":
        policy = json.loads(base64.b64decode(fields["policy"]))
        policy["expiration"] = "2099-01-01T00:00:00Z"
        fields["policy"] = base64.b64encode(json.dumps(policy).encode()).decode()
    elif kind == "changed-signature":
        fields["x-amz-signature"] = flipped(fields["x-amz-signature"])
    return fields


@pytest.mark.parametrize("kind", POST_CLASSES)
def test_post_object_form_is_refused(site: Site, http: httpx.Client, kind: str) -> None:
    files = {"file": ("posted.txt", b"posted over alice's files", "text/plain")}
    response = http.post(f"{site.url}/{BUCKET}", data=post_form(site, kind), files=files)
    check(answer_of(response), POST_CLASSES[kind], "POST", site)


# CORS preflights -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("origin", "status"), [(ORIGIN, 200), ("https://evil.example", 403)])
def test_preflight_answers_only_the_cors_rules(site: Site, http: httpx.Client, origin: str, status: int) -> None:
    """A preflight has no credentials (browsers send none); it answers alice's CORS rules and changes nothing."""
    headers = {"origin": origin, "access-control-request-method": "PUT"}
    response = http.options(f"{site.url}/{BUCKET}/{DOC}", headers=headers)
    assert response.status_code == status, response.text
    assert response.headers.get("access-control-allow-origin") == (origin if status == 200 else None)


# aws-chunked bodies ------------------------------------------------------------------------------
CHUNKS = [b"a" * 8192, b"b" * 8192, b"c" * 100]
CHUNK_CASES = {
    "changed-chunk": Expect(403, "SignatureDoesNotMatch"),
    "replayed-chunks": Expect(403, "SignatureDoesNotMatch"),  # another request's chunks and signatures
    "reordered-chunks": Expect(403, "SignatureDoesNotMatch"),
    "changed-final-signature": Expect(403, "SignatureDoesNotMatch"),
    "changed-chunk-of-a-part": Expect(403, "SignatureDoesNotMatch"),
    "mallory-seed": DENIED,  # mallory's own, valid, chunk signatures
}


def chunked_request(site: Site, capture: BaseClient, kind: str) -> Prepared:
    if kind == "changed-chunk-of-a-part":
        params = {"Bucket": BUCKET, "Key": BIG, "UploadId": site.upload_id, "PartNumber": 2, "Body": b""}
        base = prepare(capture, "upload_part", params)
    else:
        base = prepare(capture, "put_object", {"Bucket": BUCKET, "Key": DOC, "Body": b""})
    creds = site.mallory if kind == "mallory-seed" else site.alice
    request = streaming(base, creds, CHUNKS)
    chunks, signatures = list(CHUNKS), chunk_signatures(creds, request, CHUNKS)
    if kind in ("changed-chunk", "changed-chunk-of-a-part"):
        chunks[1] = b"X" + chunks[1][1:]
    elif kind == "replayed-chunks":
        with clock_at(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=90)):
            earlier = streaming(base, creds, CHUNKS)
        signatures = chunk_signatures(creds, earlier, CHUNKS)
    elif kind == "reordered-chunks":
        chunks[0], chunks[1] = chunks[1], chunks[0]
        signatures[0], signatures[1] = signatures[1], signatures[0]
    elif kind == "changed-final-signature":
        signatures[-1] = flipped(signatures[-1])
    return request.with_body(chunked_body(chunks, signatures))


@pytest.mark.parametrize("kind", CHUNK_CASES)
def test_chunk_signatures_are_enforced(site: Site, capture: BaseClient, http: httpx.Client, kind: str) -> None:
    request = chunked_request(site, capture, kind)
    check(send(http, request), CHUNK_CASES[kind], request.method, site)


# and nothing changed -----------------------------------------------------------------------------
def test_nothing_changed_so_far(site: Site, digest_before: Digest) -> None:
    """The digest while the server runs, after the cases this process ran before this one (all of them
    in a serial run); the package's fixture compares again once the server has stopped."""
    changes = digest_changes(digest_before, metadata_digest(site.data_dir))
    assert not changes, "\n".join(changes[:50])
