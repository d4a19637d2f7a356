"""Listing through boto3: ListObjects v1 and v2 (the basics; tests/s3clients checks the semantics
against moto) and ListObjectVersions on buckets that are never versioned.

https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectVersions.html
"""

from __future__ import annotations

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import Endpoint, failure
from s3_signing import error_of, send

KEYS = ["a", "b/1", "b/2", "b/3/x", "c d", "é"]


@pytest.fixture
def filled(s3: BaseClient, bucket: str) -> str:
    for key in KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    return bucket


def test_list_objects_v2_pages_and_delimiter(s3: BaseClient, filled: str) -> None:
    keys, token, pages = [], None, 0
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=filled, MaxKeys=2, **kwargs)
        assert page["KeyCount"] == len(page.get("Contents", []))
        keys += [o["Key"] for o in page.get("Contents", [])]
        pages += 1
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert keys == KEYS and pages == 3

    top = s3.list_objects_v2(Bucket=filled, Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["a", "c d", "é"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["b/"]
    assert top["KeyCount"] == 4
    inner = s3.list_objects_v2(Bucket=filled, Prefix="b/", Delimiter="/", StartAfter="b/1", FetchOwner=True)
    assert [(o["Key"], o["Size"], o["Owner"]["ID"]) for o in inner["Contents"]] == [("b/2", 3, "admin")]
    assert [p["Prefix"] for p in inner["CommonPrefixes"]] == ["b/3/"]


def test_list_objects_v1_marker(s3: BaseClient, filled: str) -> None:
    first = s3.list_objects(Bucket=filled, MaxKeys=3)
    assert [o["Key"] for o in first["Contents"]] == KEYS[:3]
    assert first["IsTruncated"] and "NextMarker" not in first  # only with a delimiter
    rest = s3.list_objects(Bucket=filled, Marker=first["Contents"][-1]["Key"])
    assert [o["Key"] for o in rest["Contents"]] == KEYS[3:]
    grouped = s3.list_objects(Bucket=filled, Delimiter="/", MaxKeys=1)
    assert grouped["IsTruncated"] and grouped["NextMarker"] == "a"


def test_encoding_type_url(s3: BaseClient, filled: str) -> None:
    """Asked for by the caller, boto3 leaves the keys encoded (when it asks by itself, it decodes)."""
    listed = s3.list_objects_v2(Bucket=filled, EncodingType="url", Prefix="c d")
    assert [o["Key"] for o in listed["Contents"]] == ["c%20d"]
    assert (listed["Prefix"], listed["EncodingType"]) == ("c%20d", "url")
    listed = s3.list_objects(Bucket=filled, EncodingType="url", Marker="c d")
    assert [o["Key"] for o in listed["Contents"]] == ["%C3%A9"]
    assert listed["Marker"] == "c%20d"


def test_list_object_versions_of_unversioned_bucket(s3: BaseClient, filled: str) -> None:
    listed = s3.list_object_versions(Bucket=filled)
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [(k, "null", True) for k in KEYS]
    assert "DeleteMarkers" not in listed
    assert all(v["Size"] == len(v["Key"].encode()) and v["ETag"].startswith('"') for v in listed["Versions"])
    assert not listed["IsTruncated"]

    grouped = s3.list_object_versions(Bucket=filled, Delimiter="/", Prefix="b/")
    assert [v["Key"] for v in grouped["Versions"]] == ["b/1", "b/2"]
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["b/3/"]


def test_list_object_versions_pages_with_key_and_version_markers(s3: BaseClient, filled: str) -> None:
    seen, kwargs = [], {}
    while True:
        page = s3.list_object_versions(Bucket=filled, MaxKeys=4, **kwargs)
        seen += [v["Key"] for v in page["Versions"]]
        if not page["IsTruncated"]:
            break
        assert page["NextVersionIdMarker"] == "null"
        kwargs = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
    assert seen == KEYS


@pytest.mark.parametrize("version_marker", ["", "null"])
def test_a_key_marker_resumes_after_that_key_s_versions(s3: BaseClient, filled: str, version_marker: str) -> None:
    """Without a version marker, after the key; with "null", after its (only, null) version."""
    page = s3.list_object_versions(Bucket=filled, KeyMarker="b/1", VersionIdMarker=version_marker)
    assert page["Versions"][0]["Key"] == "b/2"
    assert page["KeyMarker"] == "b/1"


@pytest.mark.parametrize("version_marker", ["zzzz", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"])
def test_a_malformed_version_marker_is_refused(s3: BaseClient, filled: str, version_marker: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.list_object_versions(Bucket=filled, KeyMarker="b/1", VersionIdMarker=version_marker)
    assert failure(e) == (400, "InvalidArgument")


def test_max_keys_is_capped_and_checked(s3: BaseClient, filled: str) -> None:
    assert s3.list_objects_v2(Bucket=filled, MaxKeys=5000)["MaxKeys"] == 1000
    assert s3.list_objects_v2(Bucket=filled, MaxKeys=0)["KeyCount"] == 0
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=filled, MaxKeys=-1)
    assert failure(e) == (400, "InvalidArgument")


def test_bad_continuation_token(s3: BaseClient, filled: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=filled, ContinuationToken="not a token")
    assert failure(e) == (400, "InvalidArgument")


def test_max_keys_zero_is_an_empty_complete_page(s3_http: BaseClient, http_bucket: str) -> None:
    """As AWS: nothing listed, not truncated, the other fields kept (v1, v2 and versions)."""
    for key in ("a", "b"):
        s3_http.put_object(Bucket=http_bucket, Key=key, Body=b"x")
    v2 = s3_http.list_objects_v2(Bucket=http_bucket, MaxKeys=0, Prefix="a")
    assert (v2["KeyCount"], v2["IsTruncated"], v2["MaxKeys"], v2["Prefix"], "Contents" in v2) == (
        0,
        False,
        0,
        "a",
        False,
    )
    v1 = s3_http.list_objects(Bucket=http_bucket, MaxKeys=0, Marker="a")
    assert (v1["IsTruncated"], v1["Marker"], "Contents" in v1) == (False, "a", False)
    versions = s3_http.list_object_versions(Bucket=http_bucket, MaxKeys=0)
    assert (versions["IsTruncated"], "Versions" in versions) == (False, False)


def test_an_empty_continuation_token_is_invalid(http_endpoint: Endpoint, http_bucket: str) -> None:
    response = send(http_endpoint, "GET", f"/{http_bucket}", query="list-type=2&continuation-token=")
    assert (response.status_code, error_of(response)["Code"]) == (400, "InvalidArgument")


def test_v1_url_encoding_covers_prefix_marker_delimiter_and_next_marker(
    http_endpoint: Endpoint, http_bucket: str
) -> None:
    s3 = http_endpoint.client()
    for key in ("a b/1", "a b/2", "a b+c"):
        s3.put_object(Bucket=http_bucket, Key=key, Body=b"x")
    query = "encoding-type=url&prefix=a%20b&marker=a%20b%2B&delimiter=%2F&max-keys=1"
    response = send(http_endpoint, "GET", f"/{http_bucket}", query=query)
    body = response.text
    assert "<Prefix>a%20b</Prefix>" in body and "<Marker>a%20b%2B</Marker>" in body
    assert "<Delimiter>/</Delimiter>" in body or "<Delimiter>%2F</Delimiter>" in body
    assert "<NextMarker>a%20b%2Bc</NextMarker>" in body and "<Key>a%20b%2Bc</Key>" in body
