"""Conditional writes and deletes through boto3 against the real server (issue 9 §2).

What each case expects is what AWS answers: https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html,
https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html and the PutObject,
CompleteMultipartUpload, CopyObject, DeleteObject and DeleteObjects pages; where those pages say
nothing (a value AWS refuses, a delete of a key without an object), what AWS was measured answering.
Only the current version counts, and a current delete marker is no object.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import ADMIN, Endpoint, failure

WRITERS = 8
WRONG = '"0123456789abcdef0123456789abcdef"'


def condition_of(e: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    """(status, code, the <Condition> AWS names) of a refused conditional request."""
    return (*failure(e), str(e.value.response["Error"].get("Condition", "")))


def body(s3: BaseClient, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]


def versioned(s3: BaseClient, bucket: str) -> str:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


def race(fns: list[Callable[[], Any]]) -> list[Any]:
    """Run `fns` on threads released together; each result is the value or the ClientError raised."""
    gate = threading.Barrier(len(fns))

    def run(fn: Callable[[], Any]) -> Any:
        gate.wait(timeout=30)
        try:
            return fn()
        except ClientError as e:
            return e

    with ThreadPoolExecutor(len(fns)) as pool:
        return list(pool.map(run, fns, timeout=120))


def statuses(outcomes: list[Any]) -> list[int]:
    return sorted(
        int(o.response["ResponseMetadata"]["HTTPStatusCode"]) if isinstance(o, ClientError) else 200 for o in outcomes
    )


def start_upload(s3: BaseClient, bucket: str, key: str, data: bytes = b"part data") -> tuple[str, dict[str, Any]]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=data)
    return upload_id, {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}


# PutObject ---------------------------------------------------------------------------------------
def test_put_if_none_match_creates_only_once(s3_http: BaseClient, http_bucket: str) -> None:
    s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert condition_of(e) == (412, "PreconditionFailed", "If-None-Match")
    assert body(s3_http, http_bucket, "k") == b"first"


def test_put_if_match_replaces_only_the_object_named(s3_http: BaseClient, http_bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"x", IfMatch=WRONG)
    assert failure(e) == (404, "NoSuchKey")
    etag = s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"one")["ETag"]
    with pytest.raises(ClientError) as e:
        s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"two", IfMatch=WRONG)
    assert condition_of(e) == (412, "PreconditionFailed", "If-Match")
    etag = s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"two", IfMatch=etag)["ETag"]
    s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"three", IfMatch=etag.strip('"'))  # quotes or none
    assert body(s3_http, http_bucket, "k") == b"three"


def test_put_conditions_in_a_versioned_bucket(s3_http: BaseClient, http_bucket: str) -> None:
    bucket = versioned(s3_http, http_bucket)
    first = s3_http.put_object(Bucket=bucket, Key="k", Body=b"v1")
    second = s3_http.put_object(Bucket=bucket, Key="k", Body=b"v2")
    with pytest.raises(ClientError) as e:  # a noncurrent version's ETag
        s3_http.put_object(Bucket=bucket, Key="k", Body=b"v3", IfMatch=first["ETag"])
    assert condition_of(e) == (412, "PreconditionFailed", "If-Match")
    s3_http.delete_object(Bucket=bucket, Key="k")
    with pytest.raises(ClientError) as e:  # the current version is a delete marker: no object
        s3_http.put_object(Bucket=bucket, Key="k", Body=b"v3", IfMatch=second["ETag"])
    assert failure(e) == (404, "NoSuchKey")
    made = s3_http.put_object(Bucket=bucket, Key="k", Body=b"v3", IfNoneMatch="*")
    listed = s3_http.list_object_versions(Bucket=bucket)
    assert [v["VersionId"] for v in listed["Versions"]] == [made["VersionId"], second["VersionId"], first["VersionId"]]
    assert len(listed["DeleteMarkers"]) == 1


@pytest.mark.parametrize(
    "headers, named",
    [
        ({"IfNoneMatch": WRONG}, "If-None-Match"),  # AWS takes only `*` here
        ({"IfMatch": "*"}, "If-Match"),  # and only an ETag here
        ({"IfMatch": WRONG, "IfNoneMatch": "*"}, "If-Match,If-None-Match"),  # and never both
    ],
    ids=["if-none-match-etag", "if-match-star", "both"],
)
def test_put_condition_values_aws_refuses(
    s3_http: BaseClient, http_bucket: str, headers: dict[str, str], named: str
) -> None:
    s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"kept")
    with pytest.raises(ClientError) as e:
        s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"new", **headers)
    assert failure(e) == (501, "NotImplemented")
    assert e.value.response["Error"]["Header"] == named
    assert body(s3_http, http_bucket, "k") == b"kept"


def test_concurrent_create_only_puts_exactly_one_wins(http_endpoint: Endpoint, http_bucket: str) -> None:
    clients = [http_endpoint.client(ADMIN) for _ in range(WRITERS)]
    outcomes = race(
        [
            lambda c=c, i=i: c.put_object(Bucket=http_bucket, Key="lock", Body=f"writer {i}".encode(), IfNoneMatch="*")
            for i, c in enumerate(clients)
        ]
    )
    assert statuses(outcomes) == [200] + [412] * (WRITERS - 1)
    winner = next(i for i, o in enumerate(outcomes) if not isinstance(o, ClientError))
    assert body(clients[0], http_bucket, "lock") == f"writer {winner}".encode()


def test_concurrent_compare_and_swap_puts_exactly_one_wins(http_endpoint: Endpoint, http_bucket: str) -> None:
    clients = [http_endpoint.client(ADMIN) for _ in range(WRITERS)]
    base = clients[0].put_object(Bucket=http_bucket, Key="state", Body=b"base")["ETag"]
    outcomes = race(
        [
            lambda c=c, i=i: c.put_object(Bucket=http_bucket, Key="state", Body=f"update {i}".encode(), IfMatch=base)
            for i, c in enumerate(clients)
        ]
    )
    assert statuses(outcomes) == [200] + [412] * (WRITERS - 1)
    winner = next(i for i, o in enumerate(outcomes) if not isinstance(o, ClientError))
    assert body(clients[0], http_bucket, "state") == f"update {winner}".encode()


# CompleteMultipartUpload -------------------------------------------------------------------------
def test_complete_if_none_match(s3_http: BaseClient, http_bucket: str) -> None:
    upload_id, parts = start_upload(s3_http, http_bucket, "k")
    s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"taken")
    with pytest.raises(ClientError) as e:
        s3_http.complete_multipart_upload(
            Bucket=http_bucket, Key="k", UploadId=upload_id, MultipartUpload=parts, IfNoneMatch="*"
        )
    assert condition_of(e) == (412, "PreconditionFailed", "If-None-Match")
    assert body(s3_http, http_bucket, "k") == b"taken"
    assert len(s3_http.list_parts(Bucket=http_bucket, Key="k", UploadId=upload_id)["Parts"]) == 1  # still there
    # Judged when the Complete commits: the key is free again, so the same upload completes (AWS
    # answers 409 ConditionalRequestConflict here, because the key changed after the upload began).
    s3_http.delete_object(Bucket=http_bucket, Key="k")
    s3_http.complete_multipart_upload(
        Bucket=http_bucket, Key="k", UploadId=upload_id, MultipartUpload=parts, IfNoneMatch="*"
    )
    assert body(s3_http, http_bucket, "k") == b"part data"


def test_complete_if_match(s3_http: BaseClient, http_bucket: str) -> None:
    upload_id, parts = start_upload(s3_http, http_bucket, "k")
    with pytest.raises(ClientError) as e:
        s3_http.complete_multipart_upload(
            Bucket=http_bucket, Key="k", UploadId=upload_id, MultipartUpload=parts, IfMatch=WRONG
        )
    assert failure(e) == (404, "NoSuchKey")
    etag = s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"current")["ETag"]
    with pytest.raises(ClientError) as e:
        s3_http.complete_multipart_upload(
            Bucket=http_bucket, Key="k", UploadId=upload_id, MultipartUpload=parts, IfMatch=WRONG
        )
    assert condition_of(e) == (412, "PreconditionFailed", "If-Match")
    done = s3_http.complete_multipart_upload(
        Bucket=http_bucket, Key="k", UploadId=upload_id, MultipartUpload=parts, IfMatch=etag
    )
    assert s3_http.head_object(Bucket=http_bucket, Key="k")["ETag"] == done["ETag"]


def test_a_retried_conditional_complete_gets_the_first_answer(s3_http: BaseClient, http_bucket: str) -> None:
    """The retry is not judged again: its own first attempt made the key exist."""
    bucket = versioned(s3_http, http_bucket)
    upload_id, parts = start_upload(s3_http, bucket, "k")
    first = s3_http.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload=parts, IfNoneMatch="*"
    )
    again = s3_http.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload=parts, IfNoneMatch="*"
    )
    assert (again["ETag"], again["VersionId"]) == (first["ETag"], first["VersionId"])
    assert len(s3_http.list_object_versions(Bucket=bucket)["Versions"]) == 1


def test_complete_condition_values_aws_refuses(s3_http: BaseClient, http_bucket: str) -> None:
    upload_id, parts = start_upload(s3_http, http_bucket, "k")
    with pytest.raises(ClientError) as e:
        s3_http.complete_multipart_upload(
            Bucket=http_bucket, Key="k", UploadId=upload_id, MultipartUpload=parts, IfNoneMatch=WRONG
        )
    assert failure(e) == (501, "NotImplemented")
    s3_http.complete_multipart_upload(
        Bucket=http_bucket, Key="k", UploadId=upload_id, MultipartUpload=parts, IfNoneMatch="*"
    )


def test_concurrent_create_only_completes_exactly_one_wins(http_endpoint: Endpoint, http_bucket: str) -> None:
    clients = [http_endpoint.client(ADMIN) for _ in range(4)]
    uploads = [start_upload(c, http_bucket, "k", f"upload {i}".encode()) for i, c in enumerate(clients)]
    outcomes = race(
        [
            lambda c=c, u=u: c.complete_multipart_upload(
                Bucket=http_bucket, Key="k", UploadId=u[0], MultipartUpload=u[1], IfNoneMatch="*"
            )
            for c, u in zip(clients, uploads, strict=True)
        ]
    )
    assert statuses(outcomes) == [200, 412, 412, 412]
    winner = next(i for i, o in enumerate(outcomes) if not isinstance(o, ClientError))
    assert body(clients[0], http_bucket, "k") == f"upload {winner}".encode()


# CopyObject --------------------------------------------------------------------------------------
def test_copy_conditions_apply_to_the_destination(s3_http: BaseClient, http_bucket: str) -> None:
    source = {"Bucket": http_bucket, "Key": "src"}
    src_etag = s3_http.put_object(Bucket=http_bucket, Key="src", Body=b"source")["ETag"]
    with pytest.raises(ClientError) as e:
        s3_http.copy_object(Bucket=http_bucket, Key="dst", CopySource=source, IfMatch=src_etag)
    assert failure(e) == (404, "NoSuchKey")
    s3_http.copy_object(Bucket=http_bucket, Key="dst", CopySource=source, IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3_http.copy_object(Bucket=http_bucket, Key="dst", CopySource=source, IfNoneMatch="*")
    assert condition_of(e) == (412, "PreconditionFailed", "If-None-Match")
    dst_etag = s3_http.put_object(Bucket=http_bucket, Key="dst", Body=b"changed")["ETag"]
    with pytest.raises(ClientError) as e:
        s3_http.copy_object(Bucket=http_bucket, Key="dst", CopySource=source, IfMatch=src_etag)
    assert condition_of(e) == (412, "PreconditionFailed", "If-Match")
    # With a copy-source condition too: both hold.
    s3_http.copy_object(Bucket=http_bucket, Key="dst", CopySource=source, IfMatch=dst_etag, CopySourceIfMatch=src_etag)
    assert body(s3_http, http_bucket, "dst") == b"source"


def test_copy_if_none_match_over_a_delete_marker(s3_http: BaseClient, http_bucket: str) -> None:
    bucket = versioned(s3_http, http_bucket)
    s3_http.put_object(Bucket=bucket, Key="src", Body=b"source")
    s3_http.put_object(Bucket=bucket, Key="dst", Body=b"old")
    s3_http.delete_object(Bucket=bucket, Key="dst")
    copied = s3_http.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}, IfNoneMatch="*")
    assert copied["VersionId"] == s3_http.head_object(Bucket=bucket, Key="dst")["VersionId"]


@pytest.mark.parametrize(
    "headers",
    [{"IfNoneMatch": WRONG}, {"IfMatch": "*"}, {"IfMatch": WRONG, "IfNoneMatch": "*"}],
    ids=["if-none-match-etag", "if-match-star", "both"],
)
def test_copy_condition_values_aws_refuses(s3_http: BaseClient, http_bucket: str, headers: dict[str, str]) -> None:
    s3_http.put_object(Bucket=http_bucket, Key="src", Body=b"source")
    with pytest.raises(ClientError) as e:
        s3_http.copy_object(Bucket=http_bucket, Key="dst", CopySource={"Bucket": http_bucket, "Key": "src"}, **headers)
    assert failure(e) == (501, "NotImplemented")


# DeleteObject and DeleteObjects ------------------------------------------------------------------
def test_delete_if_match(s3_http: BaseClient, http_bucket: str) -> None:
    etag = s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"data")["ETag"]
    with pytest.raises(ClientError) as e:
        s3_http.delete_object(Bucket=http_bucket, Key="k", IfMatch=WRONG)
    assert condition_of(e) == (412, "PreconditionFailed", "If-Match")
    assert body(s3_http, http_bucket, "k") == b"data"
    assert s3_http.delete_object(Bucket=http_bucket, Key="k", IfMatch=etag)["ResponseMetadata"]["HTTPStatusCode"] == 204
    for value in (etag, "*"):  # nothing to delete: the condition cannot hold
        with pytest.raises(ClientError) as e:
            s3_http.delete_object(Bucket=http_bucket, Key="k", IfMatch=value)
        assert failure(e) == (404, "NoSuchKey")
    s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"again")
    s3_http.delete_object(Bucket=http_bucket, Key="k", IfMatch="*")
    assert "Contents" not in s3_http.list_objects_v2(Bucket=http_bucket)


def test_delete_if_match_in_a_versioned_bucket(s3_http: BaseClient, http_bucket: str) -> None:
    bucket = versioned(s3_http, http_bucket)
    first = s3_http.put_object(Bucket=bucket, Key="k", Body=b"v1")
    second = s3_http.put_object(Bucket=bucket, Key="k", Body=b"v2")
    with pytest.raises(ClientError) as e:  # a noncurrent version's ETag
        s3_http.delete_object(Bucket=bucket, Key="k", IfMatch=first["ETag"])
    assert condition_of(e) == (412, "PreconditionFailed", "If-Match")
    with pytest.raises(ClientError) as e:  # AWS refuses a version id with a condition
        s3_http.delete_object(Bucket=bucket, Key="k", VersionId=second["VersionId"], IfMatch=second["ETag"])
    assert failure(e) == (501, "NotImplemented")
    assert s3_http.delete_object(Bucket=bucket, Key="k", IfMatch=second["ETag"])["DeleteMarker"] is True
    with pytest.raises(ClientError) as e:  # the current version is now that marker
        s3_http.delete_object(Bucket=bucket, Key="k", IfMatch="*")
    assert failure(e) == (404, "NoSuchKey")
    assert len(s3_http.list_object_versions(Bucket=bucket)["Versions"]) == 2


def test_delete_conditions_of_directory_buckets_are_refused(s3_http: BaseClient, http_bucket: str) -> None:
    """AWS answers these only for directory buckets; refused, not ignored (ignoring would delete)."""
    s3_http.put_object(Bucket=http_bucket, Key="k", Body=b"data")
    with pytest.raises(ClientError) as e:
        s3_http.delete_object(Bucket=http_bucket, Key="k", IfMatchSize=99)
    assert failure(e) == (501, "NotImplemented")
    assert body(s3_http, http_bucket, "k") == b"data"


def test_delete_objects_with_etags(s3_http: BaseClient, http_bucket: str) -> None:
    etags = {k: s3_http.put_object(Bucket=http_bucket, Key=k, Body=k.encode())["ETag"] for k in ("a", "b", "c")}
    done = s3_http.delete_objects(
        Bucket=http_bucket,
        Delete={
            "Objects": [
                {"Key": "a", "ETag": etags["a"]},
                {"Key": "b", "ETag": WRONG},
                {"Key": "c"},
                {"Key": "missing", "ETag": etags["a"]},
            ]
        },
    )
    assert sorted(d["Key"] for d in done["Deleted"]) == ["a", "c"]
    assert sorted((e["Key"], e["Code"]) for e in done["Errors"]) == [
        ("b", "PreconditionFailed"),
        ("missing", "NoSuchKey"),
    ]
    assert [o["Key"] for o in s3_http.list_objects_v2(Bucket=http_bucket)["Contents"]] == ["b"]


def test_concurrent_conditional_deletes_delete_once(http_endpoint: Endpoint, http_bucket: str) -> None:
    clients = [http_endpoint.client(ADMIN) for _ in range(WRITERS)]
    bucket = versioned(clients[0], http_bucket)
    etag = clients[0].put_object(Bucket=bucket, Key="k", Body=b"data")["ETag"]
    outcomes = race([lambda c=c: c.delete_object(Bucket=bucket, Key="k", IfMatch=etag) for c in clients])
    assert statuses(outcomes) == [200] + [404] * (WRITERS - 1)  # boto3 reads a 204 as success
    assert len(clients[0].list_object_versions(Bucket=bucket)["DeleteMarkers"]) == 1
