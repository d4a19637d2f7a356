"""Bucket lifecycle through boto3: configuration round trip, AWS's errors, and expiry by `pyblob gc`.

Expiry end to end: `pyblob gc` runs beside the live server with PYBLOB_CLOCK_OFFSET_SECONDS set,
i.e. two days in the future; no wait, and the server's own sweeper is not involved.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import ADMIN, Endpoint, failure, server_env

TWO_DAYS = 2 * 86400


def test_configuration_round_trip_and_delete(s3: BaseClient, bucket: str) -> None:
    rules = [
        {"ID": "logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 30}},
        {
            "ID": "tagged",
            "Filter": {"And": {"Prefix": "tmp/", "Tags": [{"Key": "temp", "Value": "yes"}]}},
            "Status": "Disabled",
            "Expiration": {"Date": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)},
        },
        {
            "ID": "uploads",
            "Filter": {"Prefix": ""},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        },
        {
            "ID": "versions",
            "Filter": {"Prefix": "v/"},
            "Status": "Enabled",
            "Expiration": {"ExpiredObjectDeleteMarker": True},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30, "NewerNoncurrentVersions": 3},
        },
    ]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert got == rules
    s3.delete_bucket_lifecycle(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert failure(e) == (404, "NoSuchLifecycleConfiguration")


def test_legacy_prefix_rule_is_accepted_and_given_back_as_written(s3_http: BaseClient, http_bucket: str) -> None:
    rule = {"ID": "old", "Prefix": "a/", "Status": "Enabled", "Expiration": {"Days": 1}}
    s3_http.put_bucket_lifecycle(Bucket=http_bucket, LifecycleConfiguration={"Rules": [rule]})
    got = s3_http.get_bucket_lifecycle_configuration(Bucket=http_bucket)["Rules"]
    assert got == [rule]


def test_each_filter_form_is_given_back_as_written(s3_http: BaseClient, http_bucket: str) -> None:
    """Clients compare what they set with what they read (Terraform plans, for one)."""
    rules = [
        {"ID": "empty", "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 1}},
        {"ID": "prefix", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 2}},
        {"ID": "tag", "Filter": {"Tag": {"Key": "t", "Value": "v"}}, "Status": "Enabled", "Expiration": {"Days": 3}},
        {
            "ID": "and",
            "Filter": {"And": {"Prefix": "p/", "Tags": [{"Key": "a", "Value": "1"}]}},
            "Status": "Enabled",
            "Expiration": {"Days": 4},
        },
        {"ID": "size", "Filter": {"ObjectSizeGreaterThan": 100}, "Status": "Enabled", "Expiration": {"Days": 5}},
    ]
    s3_http.put_bucket_lifecycle_configuration(Bucket=http_bucket, LifecycleConfiguration={"Rules": rules})
    assert s3_http.get_bucket_lifecycle_configuration(Bucket=http_bucket)["Rules"] == rules


@pytest.mark.parametrize(
    "transition, expected",
    [
        ({"Date": dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC), "StorageClass": "GLACIER"}, (400, "InvalidArgument")),
        ({"Days": 10, "StorageClass": "STANDARD_IA"}, (400, "InvalidArgument")),
        ({"Days": 30, "StorageClass": "NOT_A_CLASS"}, (400, "MalformedXML")),
        ({"Days": 30, "StorageClass": "GLACIER"}, (501, "NotImplemented")),
    ],
    ids=["date-not-midnight", "ia-before-30-days", "unknown-class", "valid"],
)
def test_transitions_are_checked_as_aws_then_refused(
    s3_http: BaseClient, http_bucket: str, transition: dict[str, object], expected: tuple[int, str]
) -> None:
    rule = {"ID": "t", "Filter": {"Prefix": ""}, "Status": "Enabled", "Transitions": [transition]}
    with pytest.raises(ClientError) as e:
        s3_http.put_bucket_lifecycle_configuration(Bucket=http_bucket, LifecycleConfiguration={"Rules": [rule]})
    assert failure(e) == expected


def test_no_configuration_is_404(s3_http: BaseClient, http_bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3_http.get_bucket_lifecycle_configuration(Bucket=http_bucket)
    assert failure(e) == (404, "NoSuchLifecycleConfiguration")
    s3_http.delete_bucket_lifecycle(Bucket=http_bucket)  # 204 either way, as AWS


def _rule(**extra: object) -> dict[str, object]:
    return {"ID": "r", "Filter": {"Prefix": ""}, "Status": "Enabled", **extra}


@pytest.mark.parametrize(
    "rules, expected",
    [
        ([_rule(Expiration={"Days": 0})], (400, "InvalidArgument")),
        ([_rule(Expiration={"Date": dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC)})], (400, "InvalidArgument")),
        ([_rule(Expiration={"Days": 1}), _rule(Expiration={"Days": 2})], (400, "InvalidArgument")),
        ([_rule(ID="x" * 256, Expiration={"Days": 1})], (400, "InvalidArgument")),
        (
            [
                {
                    "ID": "r",
                    "Filter": {"Tag": {"Key": "a", "Value": "b"}},
                    "Status": "Enabled",
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                }
            ],
            (400, "InvalidArgument"),
        ),
        ([_rule()], (400, "InvalidRequest")),
        (
            [{"ID": "r", "Filter": {"Prefix": "a"}, "Prefix": "a", "Status": "Enabled", "Expiration": {"Days": 1}}],
            (400, "MalformedXML"),
        ),
        ([_rule(Transitions=[{"Days": 30, "StorageClass": "GLACIER"}])], (501, "NotImplemented")),
        (
            [_rule(NoncurrentVersionTransitions=[{"NoncurrentDays": 30, "StorageClass": "GLACIER"}])],
            (501, "NotImplemented"),
        ),
        ([_rule(NoncurrentVersionExpiration={"NoncurrentDays": 0})], (400, "InvalidArgument")),
        (
            [_rule(NoncurrentVersionExpiration={"NoncurrentDays": 1, "NewerNoncurrentVersions": 101})],
            (400, "InvalidArgument"),
        ),
        ([_rule(Expiration={"Days": 1, "ExpiredObjectDeleteMarker": True})], (400, "InvalidArgument")),
        (
            [
                {
                    "ID": "r",
                    "Filter": {"Tag": {"Key": "a", "Value": "b"}},
                    "Status": "Enabled",
                    "Expiration": {"ExpiredObjectDeleteMarker": True},
                }
            ],
            (400, "InvalidArgument"),
        ),
    ],
    ids=[
        "days-0",
        "date-not-midnight",
        "duplicate-id",
        "long-id",
        "abort-with-tag",
        "no-action",
        "filter-and-prefix",
        "transition",
        "noncurrent-transition",
        "noncurrent-days-0",
        "newer-noncurrent-101",
        "marker-with-days",
        "marker-with-tag",
    ],
)
def test_invalid_configurations_answer_as_aws(
    s3_http: BaseClient, http_bucket: str, rules: list[dict[str, object]], expected: tuple[int, str]
) -> None:
    with pytest.raises(ClientError) as e:
        s3_http.put_bucket_lifecycle_configuration(Bucket=http_bucket, LifecycleConfiguration={"Rules": rules})
    assert failure(e) == expected
    with pytest.raises(ClientError) as gone:
        s3_http.get_bucket_lifecycle_configuration(Bucket=http_bucket)
    assert failure(gone) == (404, "NoSuchLifecycleConfiguration")


def test_too_many_rules_is_malformed(s3_http: BaseClient, http_bucket: str) -> None:
    rules = [_rule(ID=f"r{i}", Expiration={"Days": 1}) for i in range(1001)]
    with pytest.raises(ClientError) as e:
        s3_http.put_bucket_lifecycle_configuration(Bucket=http_bucket, LifecycleConfiguration={"Rules": rules})
    assert failure(e)[0] == 400


def test_other_users_cannot_read_or_set_it(http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str) -> None:
    bob = http_endpoint.client(http_endpoint.users["bob"])
    with pytest.raises(ClientError) as e:
        bob.put_bucket_lifecycle_configuration(
            Bucket=http_bucket, LifecycleConfiguration={"Rules": [_rule(Expiration={"Days": 1})]}
        )
    assert failure(e) == (403, "AccessDenied")


def gc_in_the_future(endpoint: Endpoint, seconds: float) -> dict[str, str]:
    """`pyblob gc` on the server's data dir with the store's clock `seconds` ahead: its report."""
    argv = [sys.executable, "-m", "pyblob", "gc", "--data-dir", str(endpoint.data_dir)]
    env = server_env({"PYBLOB_CLOCK_OFFSET_SECONDS": str(seconds)})
    done = subprocess.run(
        argv,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=endpoint.data_dir.parent,
        stdin=subprocess.DEVNULL,
    )
    pairs = (line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)
    return {label.strip(): value.strip() for label, value in pairs}


def test_expiry_and_stale_uploads_end_to_end(http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str) -> None:
    rules = [
        {"ID": "tmp", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 1}},
        {
            "ID": "tagged",
            "Filter": {"Tag": {"Key": "temp", "Value": "yes"}},
            "Status": "Enabled",
            "Expiration": {"Days": 1},
        },
        {
            "ID": "uploads",
            "Filter": {"Prefix": "big/"},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
    ]
    s3_http.put_bucket_lifecycle_configuration(Bucket=http_bucket, LifecycleConfiguration={"Rules": rules})
    s3_http.put_object(Bucket=http_bucket, Key="tmp/a", Body=b"a" * 1000)
    s3_http.put_object(Bucket=http_bucket, Key="other", Body=b"b" * 2000, Tagging="temp=yes")
    s3_http.put_object(Bucket=http_bucket, Key="keep/c", Body=b"c")
    upload = s3_http.create_multipart_upload(Bucket=http_bucket, Key="big/file")["UploadId"]
    s3_http.upload_part(Bucket=http_bucket, Key="big/file", UploadId=upload, PartNumber=1, Body=b"p" * 300_000)
    usage_before = http_endpoint.usage(ADMIN.user)

    now = gc_in_the_future(http_endpoint, 0)
    assert (now["objects expired"], now["lifecycle uploads aborted"]) == ("0", "0")
    later = gc_in_the_future(http_endpoint, TWO_DAYS)
    assert (later["objects expired"], later["bytes expired"], later["lifecycle uploads aborted"]) == ("2", "3000", "1")

    listed = s3_http.list_objects_v2(Bucket=http_bucket).get("Contents", [])
    assert [o["Key"] for o in listed] == ["keep/c"]
    assert s3_http.list_multipart_uploads(Bucket=http_bucket).get("Uploads", []) == []
    usage_after = http_endpoint.usage(ADMIN.user)
    assert (usage_before[0] - usage_after[0], usage_before[1] - usage_after[1]) == (3000 + 300_000, 2)


def test_versioned_expiry_end_to_end(http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str) -> None:
    """In a versioned bucket: Expiration adds a delete marker, NoncurrentVersionExpiration removes old
    versions (keeping the newest NewerNoncurrentVersions), ExpiredObjectDeleteMarker removes markers
    left with no version below them; usage follows."""
    s3_http.put_bucket_versioning(Bucket=http_bucket, VersioningConfiguration={"Status": "Enabled"})
    rules = [
        {
            "ID": "docs",
            "Filter": {"Prefix": "doc"},
            "Status": "Enabled",
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 1},
        },
        {
            "ID": "others",
            "Filter": {"Prefix": "gone"},
            "Status": "Enabled",
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
        },
        {
            "ID": "markers",
            "Filter": {"Prefix": ""},
            "Status": "Enabled",
            "Expiration": {"ExpiredObjectDeleteMarker": True},
        },
        {"ID": "tmp", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 1}},
    ]
    s3_http.put_bucket_lifecycle_configuration(Bucket=http_bucket, LifecycleConfiguration={"Rules": rules})
    for body in (b"1" * 100, b"2" * 200, b"3" * 300):
        s3_http.put_object(Bucket=http_bucket, Key="doc", Body=body)
    s3_http.put_object(Bucket=http_bucket, Key="gone", Body=b"g" * 50)
    s3_http.delete_object(Bucket=http_bucket, Key="gone")
    s3_http.put_object(Bucket=http_bucket, Key="tmp/t", Body=b"t" * 10)
    before = http_endpoint.usage(ADMIN.user)

    report = gc_in_the_future(http_endpoint, TWO_DAYS)
    assert (report["noncurrent versions expired"], report["delete markers expired"]) == ("2", "1")
    assert report["objects expired"] == "1"
    listed = s3_http.list_object_versions(Bucket=http_bucket)
    versions = [(v["Key"], v["Size"], v["IsLatest"]) for v in listed.get("Versions", [])]
    assert versions == [("doc", 300, True), ("doc", 200, False), ("tmp/t", 10, False)]
    assert [(m["Key"], m["IsLatest"]) for m in listed.get("DeleteMarkers", [])] == [("tmp/t", True)]
    after = http_endpoint.usage(ADMIN.user)
    assert (before[0] - after[0], before[1] - after[1]) == (100 + 50, 2)


@pytest.mark.parametrize(
    "action",
    [
        {"Expiration": {"Days": 10**12}},
        {"AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 10**12}},
    ],
)
def test_huge_day_counts_are_refused(s3_http: BaseClient, http_bucket: str, action: dict[str, object]) -> None:
    rule = {"ID": "r", "Status": "Enabled", "Filter": {"Prefix": ""}, **action}
    with pytest.raises(ClientError) as e:
        s3_http.put_bucket_lifecycle_configuration(Bucket=http_bucket, LifecycleConfiguration={"Rules": [rule]})
    assert failure(e)[0] == 400
