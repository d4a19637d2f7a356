"""Bucket operations through boto3 against the real server: create, list, head, location, versioning, delete.

https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html and its siblings.
"""

from __future__ import annotations

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import Endpoint, failure, unique_bucket_name
from s3_signing import error_of, send


def test_bucket_lifecycle(s3: BaseClient) -> None:
    name = unique_bucket_name()
    created = s3.create_bucket(Bucket=name)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert created["Location"] == f"/{name}"

    listed = s3.list_buckets()
    entry = next(b for b in listed["Buckets"] if b["Name"] == name)
    assert entry["CreationDate"].year >= 2024
    assert listed["Owner"]["ID"] == "admin"
    names = [b["Name"] for b in listed["Buckets"]]
    assert names == sorted(names)

    head = s3.head_bucket(Bucket=name)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-east-1"
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None  # us-east-1, as AWS says it
    versioning = s3.get_bucket_versioning(Bucket=name)
    assert "Status" not in versioning and "MFADelete" not in versioning

    deleted = s3.delete_bucket(Bucket=name)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert failure(e)[0] == 404
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert failure(e)[1] == "NoSuchBucket"


@pytest.mark.parametrize(
    "name",
    [
        "ab",  # too short
        "a" * 64,  # too long
        "Upper-case",
        "under_score",
        "-leading-dash",
        "trailing-dash-",
        "two..dots",
        "dot.-dash",
        "192.168.1.20",  # formatted as an IP address
        "xn--punycode",
        "sthree-prefix",
        "name-s3alias",
        "name--ol-s3",
    ],
)
def test_invalid_bucket_names_are_refused(s3_http: BaseClient, name: str) -> None:
    with pytest.raises(ClientError) as e:
        s3_http.create_bucket(Bucket=name)
    assert failure(e) == (400, "InvalidBucketName")


@pytest.mark.parametrize("name", ["health", "upload", "list", "api", "docs", "static", "delete"])
def test_names_of_pyblobs_own_routes_are_reserved(s3_http: BaseClient, name: str) -> None:
    with pytest.raises(ClientError) as e:
        s3_http.create_bucket(Bucket=name)
    assert failure(e)[1] == "InvalidBucketName"
    assert "reserved" in e.value.response["Error"]["Message"]
    assert name not in [b["Name"] for b in s3_http.list_buckets()["Buckets"]]


def test_create_existing_bucket(endpoint: Endpoint, checksum_calculation: str) -> None:
    """Your own bucket again: 200 in us-east-1 (AWS's legacy answer there), 409 elsewhere; another
    user's: BucketAlreadyExists."""
    admin = endpoint.client(checksums=checksum_calculation)
    bob = endpoint.client(endpoint.users["bob"], checksum_calculation)
    name, elsewhere = unique_bucket_name(), unique_bucket_name()
    admin.create_bucket(Bucket=name)
    assert admin.create_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    admin.create_bucket(Bucket=elsewhere, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    with pytest.raises(ClientError) as e:
        admin.create_bucket(Bucket=elsewhere, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert failure(e) == (409, "BucketAlreadyOwnedByYou")
    with pytest.raises(ClientError) as e:
        bob.create_bucket(Bucket=name)
    assert failure(e) == (409, "BucketAlreadyExists")


def test_location_constraint_naming_the_servers_region_is_accepted(s3: BaseClient) -> None:
    name = unique_bucket_name()
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-east-1"})  # type: ignore[typeddict-item]
    s3.head_bucket(Bucket=name)


def test_location_constraint_naming_another_region_is_the_bucket_s(s3: BaseClient) -> None:
    name = unique_bucket_name()
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"
    assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "eu-west-1"
    listed = [b for b in s3.list_buckets()["Buckets"] if b["Name"] == name]
    assert listed[0]["BucketRegion"] == "eu-west-1"


def test_a_malformed_location_constraint_is_refused(s3_http: BaseClient) -> None:
    name = unique_bucket_name()
    with pytest.raises(ClientError) as e:
        s3_http.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "not a region"})  # type: ignore[typeddict-item]
    assert failure(e) == (400, "InvalidLocationConstraint")
    with pytest.raises(ClientError):
        s3_http.head_bucket(Bucket=name)


def test_malformed_create_bucket_body_is_refused(http_endpoint: Endpoint) -> None:
    name = unique_bucket_name()
    response = send(http_endpoint, "PUT", f"/{name}", body=b"<CreateBucketConfiguration><Location")
    assert (response.status_code, error_of(response)["Code"]) == (400, "MalformedXML")


@pytest.mark.parametrize("acl", ["private", "public-read", "authenticated-read"])
def test_canned_acl_header_is_accepted(s3: BaseClient, acl: str) -> None:
    name = unique_bucket_name()
    s3.create_bucket(Bucket=name, ACL=acl)  # type: ignore[arg-type]
    s3.put_object(Bucket=name, Key="k", Body=b"x", ACL=acl)  # type: ignore[arg-type]
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"x"


def test_delete_bucket_that_is_not_empty(s3: BaseClient, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a/b", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=bucket)
    assert failure(e) == (409, "BucketNotEmpty")
    s3.delete_object(Bucket=bucket, Key="a/b")
    s3.delete_bucket(Bucket=bucket)


def test_each_user_lists_only_their_buckets(http_endpoint: Endpoint) -> None:
    admin, bob = http_endpoint.client(), http_endpoint.client(http_endpoint.users["bob"])
    admins, bobs = unique_bucket_name(), unique_bucket_name()
    admin.create_bucket(Bucket=admins)
    bob.create_bucket(Bucket=bobs)
    listed = bob.list_buckets()
    assert listed["Owner"]["ID"] == "bob"
    assert bobs in [b["Name"] for b in listed["Buckets"]]
    assert admins not in [b["Name"] for b in listed["Buckets"]]
    assert bobs not in [b["Name"] for b in admin.list_buckets()["Buckets"]]


def test_other_users_bucket_is_denied(endpoint: Endpoint) -> None:
    admin, bob = endpoint.client(), endpoint.client(endpoint.users["bob"])
    name = unique_bucket_name()
    admin.create_bucket(Bucket=name)
    admin.put_object(Bucket=name, Key="secret", Body=b"admin's")
    attempts = [
        lambda: bob.head_bucket(Bucket=name),
        lambda: bob.list_objects_v2(Bucket=name),
        lambda: bob.list_object_versions(Bucket=name),
        lambda: bob.get_bucket_location(Bucket=name),
        lambda: bob.get_object(Bucket=name, Key="secret"),
        lambda: bob.head_object(Bucket=name, Key="secret"),
        lambda: bob.put_object(Bucket=name, Key="planted", Body=b"bob's"),
        lambda: bob.delete_object(Bucket=name, Key="secret"),
        lambda: bob.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "secret"}]}),
        lambda: bob.delete_bucket(Bucket=name),
    ]
    for attempt in attempts:
        with pytest.raises(ClientError) as e:
            attempt()
        assert failure(e)[0] == 403, (e.value.operation_name, e.value.response["Error"])
        if e.value.operation_name not in ("HeadBucket", "HeadObject"):
            assert failure(e)[1] == "AccessDenied"
    assert admin.get_object(Bucket=name, Key="secret")["Body"].read() == b"admin's"
    assert [o["Key"] for o in admin.list_objects_v2(Bucket=name)["Contents"]] == ["secret"]


def test_missing_bucket(s3_http: BaseClient) -> None:
    name = unique_bucket_name()
    for attempt in (
        lambda: s3_http.list_objects_v2(Bucket=name),
        lambda: s3_http.get_bucket_location(Bucket=name),
        lambda: s3_http.get_bucket_versioning(Bucket=name),
        lambda: s3_http.put_object(Bucket=name, Key="k", Body=b""),
    ):
        with pytest.raises(ClientError) as e:
            attempt()
        assert failure(e) == (404, "NoSuchBucket")
