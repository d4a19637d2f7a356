"""Object versioning through boto3 against the real server.

https://docs.aws.amazon.com/AmazonS3/latest/userguide/Versioning.html and the API pages it links:
PutBucketVersioning, GetBucketVersioning, ListObjectVersions, DeleteObject(s) by version, GetObject,
HeadObject, CopyObject and UploadPartCopy with a version id. What each case expects is what those
pages say S3 answers: a fresh opaque version id per write to an Enabled bucket, the "null" version for
objects written before versioning or while it is Suspended, delete markers that hide a key from reads
and listings, removal for good by version id, 404 NoSuchVersion / 400 InvalidArgument / 405 for a
marker named by id.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import Endpoint, failure
from s3_signing import send

VERSION_ID = re.compile(r"^[0-9a-f]{32}$")
UNKNOWN = "0123456789abcdef0123456789abcdef"  # well formed, names no version
MALFORMED = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"  # AWS's shape, not pyblob's
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def set_versioning(s3: BaseClient, bucket: str, status: str = "Enabled") -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def put(s3: BaseClient, bucket: str, key: str, body: bytes, **kwargs: Any) -> str:
    """PutObject; the version id it answers ("" when none)."""
    return str(s3.put_object(Bucket=bucket, Key=key, Body=body, **kwargs).get("VersionId", ""))


def read(s3: BaseClient, bucket: str, key: str, **kwargs: Any) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].read()  # type: ignore[no-any-return]


def headers_of(e: pytest.ExceptionInfo[ClientError]) -> dict[str, str]:
    return e.value.response["ResponseMetadata"]["HTTPHeaders"]  # type: ignore[no-any-return]


def versions_of(
    s3: BaseClient, bucket: str, **kwargs: Any
) -> tuple[list[tuple[str, str, bool]], list[tuple[str, str, bool]]]:
    """(versions, delete markers) as (key, version id, is latest), each in the order listed."""
    listed = s3.list_object_versions(Bucket=bucket, **kwargs)
    versions, markers = (
        [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listed.get(name, [])]
        for name in ("Versions", "DeleteMarkers")
    )
    return versions, markers


def listing_in_order(endpoint: Endpoint, bucket: str) -> list[tuple[str, str, str, bool]]:
    """ListObjectVersions as the XML gives it (boto3 splits versions from markers, losing the order):
    (Version or DeleteMarker, key, version id, is latest) in document order."""
    response = send(endpoint, "GET", f"/{bucket}", query="versions=")
    assert response.status_code == 200, response.text
    rows = []
    for child in ET.fromstring(response.content):
        tag = child.tag.removeprefix(S3_NS)
        if tag in ("Version", "DeleteMarker"):
            key, version, latest = (child.findtext(S3_NS + name) for name in ("Key", "VersionId", "IsLatest"))
            rows.append((tag, key or "", version or "", latest == "true"))
    return rows


@pytest.fixture
def versioned(s3_http: BaseClient, http_bucket: str) -> str:
    """The http server's new bucket, with versioning Enabled."""
    set_versioning(s3_http, http_bucket)
    return http_bucket


# configuration ----------------------------------------------------------------------------------
def test_versioning_configuration_states(s3_http: BaseClient, http_bucket: str) -> None:
    got = s3_http.get_bucket_versioning(Bucket=http_bucket)
    assert "Status" not in got and "MFADelete" not in got  # never versioned: an empty configuration
    for status in ("Enabled", "Suspended", "Enabled"):
        set_versioning(s3_http, http_bucket, status)
        assert s3_http.get_bucket_versioning(Bucket=http_bucket)["Status"] == status
    s3_http.put_bucket_versioning(
        Bucket=http_bucket, VersioningConfiguration={"Status": "Suspended", "MFADelete": "Disabled"}
    )
    assert s3_http.get_bucket_versioning(Bucket=http_bucket)["Status"] == "Suspended"


@pytest.mark.parametrize(
    "config, mfa, expected",
    [
        ({"Status": "Enabled", "MFADelete": "Enabled"}, None, (501, "NotImplemented")),
        ({"Status": "Enabled"}, "serial 123456", (501, "NotImplemented")),  # x-amz-mfa
        ({}, None, (400, "IllegalVersioningConfigurationException")),
        ({"Status": "On"}, None, (400, "MalformedXML")),
    ],
    ids=["mfa-delete", "mfa-header", "no-status", "bad-status"],
)
def test_versioning_configuration_refusals(
    s3_http: BaseClient, http_bucket: str, config: dict[str, str], mfa: str | None, expected: tuple[int, str]
) -> None:
    extra = {"MFA": mfa} if mfa else {}
    with pytest.raises(ClientError) as e:
        s3_http.put_bucket_versioning(Bucket=http_bucket, VersioningConfiguration=config, **extra)
    assert failure(e) == expected
    assert "Status" not in s3_http.get_bucket_versioning(Bucket=http_bucket)  # nothing changed


# writes -----------------------------------------------------------------------------------------
def test_each_put_to_an_enabled_bucket_is_a_new_version(s3: BaseClient, bucket: str) -> None:
    """Over both transports and checksum settings: PutObject's x-amz-version-id, reads by id."""
    set_versioning(s3, bucket)
    ids = [put(s3, bucket, "k", f"body {n}".encode()) for n in range(3)]
    assert all(VERSION_ID.match(v) for v in ids) and len(set(ids)) == 3
    for n, version in enumerate(ids):
        got = s3.get_object(Bucket=bucket, Key="k", VersionId=version)
        assert (got["Body"].read(), got["VersionId"]) == (f"body {n}".encode(), version)
        assert s3.head_object(Bucket=bucket, Key="k", VersionId=version)["ContentLength"] == len(f"body {n}")
    current = s3.get_object(Bucket=bucket, Key="k")
    assert (current["Body"].read(), current["VersionId"]) == (b"body 2", ids[2])
    versions, markers = versions_of(s3, bucket)
    assert versions == [("k", ids[2], True), ("k", ids[1], False), ("k", ids[0], False)]
    assert markers == []


def test_an_object_written_before_versioning_is_the_null_version(s3_http: BaseClient, http_bucket: str) -> None:
    assert put(s3_http, http_bucket, "k", b"old") == ""  # never versioned: no x-amz-version-id
    set_versioning(s3_http, http_bucket)
    assert s3_http.head_object(Bucket=http_bucket, Key="k")["VersionId"] == "null"
    new = put(s3_http, http_bucket, "k", b"new")
    assert VERSION_ID.match(new)
    assert versions_of(s3_http, http_bucket)[0] == [("k", new, True), ("k", "null", False)]
    assert read(s3_http, http_bucket, "k", VersionId="null") == b"old"
    assert read(s3_http, http_bucket, "k") == b"new"


def test_suspended_writes_replace_the_null_version(
    http_endpoint: Endpoint, s3_http: BaseClient, versioned: str
) -> None:
    """Suspended: each write is "null" and replaces the earlier "null" version, current or not,
    which gives its bytes back; versions with ids stay."""
    first = put(s3_http, versioned, "k", b"a" * 100)
    set_versioning(s3_http, versioned, "Suspended")
    put(s3_http, versioned, "k", b"b" * 200)
    assert versions_of(s3_http, versioned)[0] == [("k", "null", True), ("k", first, False)]
    before = http_endpoint.usage("admin")
    put(s3_http, versioned, "k", b"c" * 300)  # replaces the current null version
    assert versions_of(s3_http, versioned)[0] == [("k", "null", True), ("k", first, False)]
    assert http_endpoint.usage("admin") == (before[0] + 100, before[1])

    set_versioning(s3_http, versioned, "Enabled")
    third = put(s3_http, versioned, "k", b"d" * 400)
    set_versioning(s3_http, versioned, "Suspended")
    put(s3_http, versioned, "k", b"e" * 500)  # replaces the null version, now noncurrent
    assert versions_of(s3_http, versioned)[0] == [("k", "null", True), ("k", third, False), ("k", first, False)]
    assert read(s3_http, versioned, "k", VersionId="null") == b"e" * 500
    assert http_endpoint.usage("admin") == (before[0] + 100 + 400 + 200, before[1] + 1)


def test_a_delete_in_a_suspended_bucket_is_a_null_marker(s3_http: BaseClient, versioned: str) -> None:
    first = put(s3_http, versioned, "k", b"kept")
    set_versioning(s3_http, versioned, "Suspended")
    put(s3_http, versioned, "k", b"null version")
    done = s3_http.delete_object(Bucket=versioned, Key="k")
    assert (done["DeleteMarker"], done["VersionId"]) == (True, "null")
    versions, markers = versions_of(s3_http, versioned)
    assert (versions, markers) == ([("k", first, False)], [("k", "null", True)])  # the null object is gone
    assert read(s3_http, versioned, "k", VersionId=first) == b"kept"


# delete markers ---------------------------------------------------------------------------------
def test_a_delete_adds_a_marker_that_hides_the_key(s3_http: BaseClient, versioned: str) -> None:
    version = put(s3_http, versioned, "k", b"still here")
    done = s3_http.delete_object(Bucket=versioned, Key="k")
    marker = done["VersionId"]
    assert done["DeleteMarker"] is True and VERSION_ID.match(marker) and marker != version

    for call, code in ((s3_http.get_object, "NoSuchKey"), (s3_http.head_object, "404")):  # HEAD: no body, no code
        with pytest.raises(ClientError) as e:
            call(Bucket=versioned, Key="k")
        assert failure(e) == (404, code)
        headers = headers_of(e)
        assert (headers["x-amz-delete-marker"], headers["x-amz-version-id"]) == ("true", marker)
    assert read(s3_http, versioned, "k", VersionId=version) == b"still here"
    assert "Contents" not in s3_http.list_objects_v2(Bucket=versioned)
    assert versions_of(s3_http, versioned) == ([("k", version, False)], [("k", marker, True)])

    assert put(s3_http, versioned, "other", b"o", IfNoneMatch="*")  # a marker is no object to a conditional write
    s3_http.delete_object(Bucket=versioned, Key="other")
    assert put(s3_http, versioned, "other", b"again", IfNoneMatch="*")
    again = s3_http.delete_object(Bucket=versioned, Key="k")  # a marker on a marker, as at AWS
    assert again["DeleteMarker"] is True and again["VersionId"] not in (marker, version)
    assert len(versions_of(s3_http, versioned, Prefix="k")[1]) == 2


def test_a_version_that_is_a_marker_answers_405(s3_http: BaseClient, versioned: str) -> None:
    put(s3_http, versioned, "k", b"x")
    marker = s3_http.delete_object(Bucket=versioned, Key="k")["VersionId"]
    for call, code in ((s3_http.get_object, "MethodNotAllowed"), (s3_http.head_object, "405")):
        with pytest.raises(ClientError) as e:
            call(Bucket=versioned, Key="k", VersionId=marker)
        assert failure(e) == (405, code)
        headers = headers_of(e)
        assert (headers["x-amz-delete-marker"], headers["x-amz-version-id"]) == ("true", marker)
        assert "last-modified" in headers
    with pytest.raises(ClientError) as e:
        s3_http.put_object_tagging(Bucket=versioned, Key="k", VersionId=marker, Tagging={"TagSet": []})
    assert failure(e) == (405, "MethodNotAllowed")
    assert e.value.response["Error"]["Method"] == "PUT"  # the request's method, as AWS names it


def test_deleting_a_version_by_id_removes_it_for_good(
    http_endpoint: Endpoint, s3_http: BaseClient, versioned: str
) -> None:
    """The latest removed: the next newest becomes current. Usage follows every version's bytes,
    and a delete marker costs nothing."""
    before = http_endpoint.usage("admin")
    ids = [put(s3_http, versioned, "k", bytes([n]) * (1000 * (n + 1))) for n in range(3)]
    assert http_endpoint.usage("admin") == (before[0] + 6000, before[1] + 3)

    done = s3_http.delete_object(Bucket=versioned, Key="k", VersionId=ids[2])
    assert done["VersionId"] == ids[2] and "DeleteMarker" not in done
    current = s3_http.get_object(Bucket=versioned, Key="k")
    assert (current["VersionId"], current["ContentLength"]) == (ids[1], 2000)
    assert http_endpoint.usage("admin") == (before[0] + 3000, before[1] + 2)

    s3_http.delete_object(Bucket=versioned, Key="k", VersionId=ids[0])  # a noncurrent one
    assert versions_of(s3_http, versioned)[0] == [("k", ids[1], True)]
    marker = s3_http.delete_object(Bucket=versioned, Key="k")["VersionId"]
    assert http_endpoint.usage("admin") == (before[0] + 2000, before[1] + 1)
    with pytest.raises(ClientError) as e:
        s3_http.get_object(Bucket=versioned, Key="k", VersionId=ids[2])
    assert failure(e) == (404, "NoSuchVersion")

    s3_http.delete_object(Bucket=versioned, Key="k", VersionId=ids[1])
    s3_http.delete_object(Bucket=versioned, Key="k", VersionId=marker)
    assert versions_of(s3_http, versioned) == ([], [])
    assert http_endpoint.usage("admin") == before


def test_deleting_the_marker_by_id_undeletes(s3_http: BaseClient, versioned: str) -> None:
    version = put(s3_http, versioned, "k", b"back again")
    marker = s3_http.delete_object(Bucket=versioned, Key="k")["VersionId"]
    done = s3_http.delete_object(Bucket=versioned, Key="k", VersionId=marker)
    assert (done["DeleteMarker"], done["VersionId"]) == (True, marker)
    got = s3_http.get_object(Bucket=versioned, Key="k")
    assert (got["Body"].read(), got["VersionId"]) == (b"back again", version)
    assert [o["Key"] for o in s3_http.list_objects_v2(Bucket=versioned)["Contents"]] == ["k"]


def test_deleting_an_unknown_version_is_idempotent_a_malformed_one_is_not(s3_http: BaseClient, versioned: str) -> None:
    version = put(s3_http, versioned, "k", b"x")
    for key in ("k", "never-written"):
        done = s3_http.delete_object(Bucket=versioned, Key=key, VersionId=UNKNOWN)
        assert done["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3_http.delete_object(Bucket=versioned, Key="k", VersionId=MALFORMED)
    assert failure(e) == (400, "InvalidArgument")
    assert versions_of(s3_http, versioned) == ([("k", version, True)], [])


# reads and writes by version id -------------------------------------------------------------------
@pytest.mark.parametrize(
    "version, expected", [(MALFORMED, (400, "InvalidArgument")), (UNKNOWN, (404, "NoSuchVersion"))]
)
def test_a_bad_version_id_on_every_operation_that_takes_one(
    s3_http: BaseClient, versioned: str, version: str, expected: tuple[int, str]
) -> None:
    put(s3_http, versioned, "k", b"x")
    upload_id = s3_http.create_multipart_upload(Bucket=versioned, Key="dst")["UploadId"]
    source = {"Bucket": versioned, "Key": "k", "VersionId": version}
    attempts = {
        "GetObject": lambda: s3_http.get_object(Bucket=versioned, Key="k", VersionId=version),
        "GetObjectTagging": lambda: s3_http.get_object_tagging(Bucket=versioned, Key="k", VersionId=version),
        "PutObjectTagging": lambda: s3_http.put_object_tagging(
            Bucket=versioned, Key="k", VersionId=version, Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}
        ),
        "DeleteObjectTagging": lambda: s3_http.delete_object_tagging(Bucket=versioned, Key="k", VersionId=version),
        "CopyObject": lambda: s3_http.copy_object(Bucket=versioned, Key="copy", CopySource=source),
        "UploadPartCopy": lambda: s3_http.upload_part_copy(
            Bucket=versioned, Key="dst", UploadId=upload_id, PartNumber=1, CopySource=source
        ),
        "GetObjectAttributes": lambda: s3_http.get_object_attributes(
            Bucket=versioned, Key="k", VersionId=version, ObjectAttributes=["ObjectSize"]
        ),
    }
    for name, attempt in attempts.items():
        with pytest.raises(ClientError) as e:
            attempt()
        assert failure(e) == expected, name
    with pytest.raises(ClientError) as e:
        s3_http.head_object(Bucket=versioned, Key="k", VersionId=version)
    assert failure(e)[0] == expected[0]
    assert [v[0] for v in versions_of(s3_http, versioned)[0]] == ["k"]  # no copy was made


def test_tagging_by_version_id(s3_http: BaseClient, versioned: str) -> None:
    old = put(s3_http, versioned, "k", b"1", Tagging="v=old")
    new = put(s3_http, versioned, "k", b"2", Tagging="v=new")

    def tags(**kwargs: str) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in s3_http.get_object_tagging(Bucket=versioned, Key="k", **kwargs)["TagSet"]}

    got = s3_http.get_object_tagging(Bucket=versioned, Key="k", VersionId=old)
    assert got["VersionId"] == old and tags(VersionId=old) == {"v": "old"}

    done = s3_http.put_object_tagging(
        Bucket=versioned, Key="k", VersionId=old, Tagging={"TagSet": [{"Key": "v", "Value": "re"}]}
    )
    assert done["VersionId"] == old
    assert (tags(VersionId=old), tags(), tags(VersionId=new)) == ({"v": "re"}, {"v": "new"}, {"v": "new"})
    assert s3_http.delete_object_tagging(Bucket=versioned, Key="k", VersionId=old)["VersionId"] == old
    assert (tags(VersionId=old), tags()) == ({}, {"v": "new"})
    assert versions_of(s3_http, versioned)[0] == [("k", new, True), ("k", old, False)]  # no new version


def test_copy_from_a_version(s3_http: BaseClient, versioned: str) -> None:
    old = put(s3_http, versioned, "src", b"old source", ContentType="text/x-old")
    put(s3_http, versioned, "src", b"new source")
    done = s3_http.copy_object(
        Bucket=versioned, Key="dst", CopySource={"Bucket": versioned, "Key": "src", "VersionId": old}
    )
    assert done["CopySourceVersionId"] == old and VERSION_ID.match(done["VersionId"])
    got = s3_http.get_object(Bucket=versioned, Key="dst")
    assert (got["Body"].read(), got["ContentType"], got["VersionId"]) == (
        b"old source",
        "text/x-old",
        done["VersionId"],
    )


def test_a_delete_marker_cannot_be_copied(s3_http: BaseClient, versioned: str) -> None:
    put(s3_http, versioned, "src", b"x" * 10)
    marker = s3_http.delete_object(Bucket=versioned, Key="src")["VersionId"]
    by_id = {"Bucket": versioned, "Key": "src", "VersionId": marker}
    upload_id = s3_http.create_multipart_upload(Bucket=versioned, Key="dst")["UploadId"]
    for attempt in (
        lambda: s3_http.copy_object(Bucket=versioned, Key="dst", CopySource=by_id),
        lambda: s3_http.upload_part_copy(
            Bucket=versioned, Key="dst", UploadId=upload_id, PartNumber=1, CopySource=by_id
        ),
    ):
        with pytest.raises(ClientError) as e:
            attempt()
        assert failure(e) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as e:  # without an id: the current version is a marker, the key is absent
        s3_http.copy_object(Bucket=versioned, Key="dst", CopySource={"Bucket": versioned, "Key": "src"})
    assert failure(e) == (404, "NoSuchKey")
    assert s3_http.list_parts(Bucket=versioned, Key="dst", UploadId=upload_id).get("Parts", []) == []


def test_upload_part_copy_from_a_version(s3_http: BaseClient, versioned: str) -> None:
    old = put(s3_http, versioned, "src", b"first words")
    put(s3_http, versioned, "src", b"second words")
    upload_id = s3_http.create_multipart_upload(Bucket=versioned, Key="dst")["UploadId"]
    done = s3_http.upload_part_copy(
        Bucket=versioned,
        Key="dst",
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": versioned, "Key": "src", "VersionId": old},
        CopySourceRange="bytes=0-4",
    )
    assert done["CopySourceVersionId"] == old
    parts = [{"PartNumber": 1, "ETag": done["CopyPartResult"]["ETag"]}]
    result = s3_http.complete_multipart_upload(
        Bucket=versioned, Key="dst", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    assert VERSION_ID.match(result["VersionId"])  # Complete names the version it made
    assert read(s3_http, versioned, "dst") == b"first"
    assert s3_http.head_object(Bucket=versioned, Key="dst")["VersionId"] == result["VersionId"]


# listing ------------------------------------------------------------------------------------------
@pytest.fixture
def history(s3_http: BaseClient, versioned: str) -> dict[str, Any]:
    """a: v1, v2, then a marker; b/c: v1; b/d: a marker only; e: v1. Returns the ids by key."""
    ids: dict[str, Any] = {"a": [put(s3_http, versioned, "a", b"a1"), put(s3_http, versioned, "a", b"a2")]}
    ids["a marker"] = s3_http.delete_object(Bucket=versioned, Key="a")["VersionId"]
    ids["b/c"] = put(s3_http, versioned, "b/c", b"c")
    put(s3_http, versioned, "b/d", b"d")
    ids["b/d marker"] = s3_http.delete_object(Bucket=versioned, Key="b/d")["VersionId"]
    s3_http.delete_object(Bucket=versioned, Key="b/d", VersionId=versions_of(s3_http, versioned, Prefix="b/d")[0][0][1])
    ids["e"] = put(s3_http, versioned, "e", b"e")
    return ids


def expected_order(ids: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    return [
        ("DeleteMarker", "a", ids["a marker"], True),
        ("Version", "a", ids["a"][1], False),
        ("Version", "a", ids["a"][0], False),
        ("Version", "b/c", ids["b/c"], True),
        ("DeleteMarker", "b/d", ids["b/d marker"], True),
        ("Version", "e", ids["e"], True),
    ]


def test_list_object_versions_in_s3_order(http_endpoint: Endpoint, versioned: str, history: dict[str, Any]) -> None:
    """By key, each key's newest first, markers among the versions where they belong."""
    assert listing_in_order(http_endpoint, versioned) == expected_order(history)


@pytest.mark.parametrize("page_size", [1, 2, 4])
def test_list_object_versions_pages(
    s3_http: BaseClient, versioned: str, history: dict[str, Any], page_size: int
) -> None:
    """KeyMarker/VersionIdMarker pagination: each page is the next slice of the S3 order, even when it
    ends inside a key's versions (boto3 splits a page into versions and markers, so a page is a set)."""
    order = [(key, version) for _, key, version, _ in expected_order(history)]
    pages: list[set[tuple[str, str]]] = []
    markers: dict[str, str] = {}
    for _ in range(len(order) + 1):
        page = s3_http.list_object_versions(Bucket=versioned, MaxKeys=page_size, **markers)
        assert page["MaxKeys"] == page_size
        pages.append({(e["Key"], e["VersionId"]) for e in page.get("Versions", []) + page.get("DeleteMarkers", [])})
        if not page["IsTruncated"]:
            break
        markers = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
        assert (markers["KeyMarker"], markers["VersionIdMarker"]) == order[len(pages) * page_size - 1]
    assert pages == [set(order[i : i + page_size]) for i in range(0, len(order), page_size)]


def test_list_object_versions_pages_with_a_delimiter(
    s3_http: BaseClient, versioned: str, history: dict[str, Any]
) -> None:
    """A page may end on a common prefix; the next one goes on after it."""
    entries: list[str] = []
    markers: dict[str, str] = {}
    for _ in range(10):
        page = s3_http.list_object_versions(Bucket=versioned, Delimiter="/", MaxKeys=1, **markers)
        entries += [e["VersionId"] for e in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        entries += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        markers = {"KeyMarker": page["NextKeyMarker"]}
        if page.get("NextVersionIdMarker"):
            markers["VersionIdMarker"] = page["NextVersionIdMarker"]
    assert entries == [history["a marker"], *history["a"][::-1], "b/", history["e"]]


def test_list_object_versions_pages_through_a_null_version(s3_http: BaseClient, http_bucket: str) -> None:
    """The null version sits where it was written among the versions with ids, and works as a version-id-marker."""
    put(s3_http, http_bucket, "k", b"before versioning")
    set_versioning(s3_http, http_bucket)
    newer = [put(s3_http, http_bucket, "k", b"v") for _ in range(2)]
    order = [newer[1], newer[0], "null"]
    seen, markers = [], {}
    for _ in range(4):
        page = s3_http.list_object_versions(Bucket=http_bucket, MaxKeys=1, **markers)
        seen += [v["VersionId"] for v in page["Versions"]]
        if not page["IsTruncated"]:
            break
        markers = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
    assert seen == order
    page = s3_http.list_object_versions(Bucket=http_bucket, KeyMarker="k", VersionIdMarker="null")
    assert "Versions" not in page and not page["IsTruncated"]


def test_list_object_versions_resumes_after_a_marker_version_deleted_meanwhile(
    s3_http: BaseClient, versioned: str
) -> None:
    """Emptying a bucket page by page deletes the very version the next page resumes after: the
    listing must go on with the older versions, not skip them (the bucket would never empty)."""
    ids = [put(s3_http, versioned, "k", bytes([n])) for n in range(4)]
    put(s3_http, versioned, "later", b"x")
    page = s3_http.list_object_versions(Bucket=versioned, MaxKeys=2)
    assert [v["VersionId"] for v in page["Versions"]] == [ids[3], ids[2]]
    for version in page["Versions"]:
        s3_http.delete_object(Bucket=versioned, Key="k", VersionId=version["VersionId"])
    following = s3_http.list_object_versions(
        Bucket=versioned, MaxKeys=2, KeyMarker=page["NextKeyMarker"], VersionIdMarker=page["NextVersionIdMarker"]
    )
    assert [(v["Key"], v["VersionId"]) for v in following["Versions"]] == [("k", ids[1]), ("k", ids[0])]


def test_list_object_versions_prefix_delimiter_and_encoding(
    s3_http: BaseClient, versioned: str, history: dict[str, Any]
) -> None:
    versions, markers = versions_of(s3_http, versioned, Prefix="b/")
    assert (versions, markers) == ([("b/c", history["b/c"], True)], [("b/d", history["b/d marker"], True)])
    grouped = s3_http.list_object_versions(Bucket=versioned, Delimiter="/")
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["b/"]
    assert sorted(v["Key"] for v in grouped["Versions"]) == ["a", "a", "e"]
    put(s3_http, versioned, "sp ace", b"s")
    encoded = s3_http.list_object_versions(Bucket=versioned, Prefix="sp ", EncodingType="url")
    assert [v["Key"] for v in encoded["Versions"]] == ["sp%20ace"]
    assert (encoded["Prefix"], encoded["EncodingType"]) == ("sp%20", "url")


def test_a_version_marker_needs_a_key_marker(s3_http: BaseClient, versioned: str, history: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as e:
        s3_http.list_object_versions(Bucket=versioned, VersionIdMarker=history["e"])
    assert failure(e) == (400, "InvalidArgument")


def test_list_objects_never_shows_delete_markers(s3_http: BaseClient, versioned: str, history: dict[str, Any]) -> None:
    """b/d has only a marker left: with b/c gone too, b/ is no CommonPrefix."""
    assert [o["Key"] for o in s3_http.list_objects_v2(Bucket=versioned)["Contents"]] == ["b/c", "e"]
    assert [o["Key"] for o in s3_http.list_objects(Bucket=versioned)["Contents"]] == ["b/c", "e"]
    s3_http.delete_object(Bucket=versioned, Key="b/c")
    for listed in (
        s3_http.list_objects_v2(Bucket=versioned, Delimiter="/"),
        s3_http.list_objects(Bucket=versioned, Delimiter="/"),
    ):
        assert [o["Key"] for o in listed["Contents"]] == ["e"]
        assert "CommonPrefixes" not in listed
    assert s3_http.list_objects_v2(Bucket=versioned, Prefix="b/")["KeyCount"] == 0
    first = s3_http.list_objects_v2(Bucket=versioned, MaxKeys=1)  # markers after the last object: not truncated
    assert ([o["Key"] for o in first["Contents"]], first["IsTruncated"]) == (["e"], False)


# DeleteObjects ----------------------------------------------------------------------------------
def test_delete_objects_with_version_ids(s3: BaseClient, bucket: str) -> None:
    """Over both transports (DeleteObjects carries a checksum): markers made, versions and markers removed."""
    set_versioning(s3, bucket)
    a1, a2 = put(s3, bucket, "a", b"1"), put(s3, bucket, "a", b"2")
    put(s3, bucket, "b", b"b")
    marker = s3.delete_object(Bucket=bucket, Key="c")["VersionId"]  # a marker alone
    objects = [
        {"Key": "a", "VersionId": a1},
        {"Key": "b"},
        {"Key": "c", "VersionId": marker},
        {"Key": "a", "VersionId": UNKNOWN},
    ]
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects})
    assert "Errors" not in result
    deleted = {(d["Key"], d.get("VersionId")): d for d in result["Deleted"]}
    assert set(deleted) == {("a", a1), ("b", None), ("c", marker), ("a", UNKNOWN)}
    assert "DeleteMarker" not in deleted[("a", a1)]
    made = deleted[("b", None)]
    assert made["DeleteMarker"] is True and VERSION_ID.match(made["DeleteMarkerVersionId"])
    assert (deleted[("c", marker)]["DeleteMarker"], deleted[("c", marker)]["DeleteMarkerVersionId"]) == (True, marker)
    versions, markers = versions_of(s3, bucket)
    assert markers == [("b", made["DeleteMarkerVersionId"], True)]
    assert [(k, v) for k, v, _ in versions] == [("a", a2), ("b", versions[1][1])]


# buckets and multipart --------------------------------------------------------------------------
def test_a_bucket_with_any_version_or_marker_is_not_empty(s3_http: BaseClient, versioned: str) -> None:
    version = put(s3_http, versioned, "k", b"x")
    marker = s3_http.delete_object(Bucket=versioned, Key="k")["VersionId"]
    for remove in (version, marker):
        with pytest.raises(ClientError) as e:
            s3_http.delete_bucket(Bucket=versioned)
        assert failure(e) == (409, "BucketNotEmpty")
        s3_http.delete_object(Bucket=versioned, Key="k", VersionId=remove)
    s3_http.delete_bucket(Bucket=versioned)
    with pytest.raises(ClientError) as e:
        s3_http.head_bucket(Bucket=versioned)
    assert failure(e)[0] == 404


def test_multipart_complete_makes_a_version(s3_http: BaseClient, versioned: str) -> None:
    old = put(s3_http, versioned, "k", b"single put")
    upload_id = s3_http.create_multipart_upload(Bucket=versioned, Key="k")["UploadId"]
    etag = s3_http.upload_part(Bucket=versioned, Key="k", UploadId=upload_id, PartNumber=1, Body=b"in parts")["ETag"]
    done = s3_http.complete_multipart_upload(
        Bucket=versioned, Key="k", UploadId=upload_id, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    assert VERSION_ID.match(done["VersionId"]) and done["VersionId"] != old
    assert versions_of(s3_http, versioned)[0] == [("k", done["VersionId"], True), ("k", old, False)]
    assert read(s3_http, versioned, "k") == b"in parts"
    assert read(s3_http, versioned, "k", VersionId=old) == b"single put"


# a user's whole story ---------------------------------------------------------------------------
def test_versioning_workflow(s3_http: BaseClient, http_bucket: str) -> None:
    """Enable, write twice, delete, look at the history, restore v1 by copying it, undelete."""
    bucket = http_bucket
    set_versioning(s3_http, bucket)
    v1 = put(s3_http, bucket, "doc.txt", b"draft one")
    v2 = put(s3_http, bucket, "doc.txt", b"draft two")
    assert read(s3_http, bucket, "doc.txt") == b"draft two"

    marker = s3_http.delete_object(Bucket=bucket, Key="doc.txt")["VersionId"]
    with pytest.raises(ClientError) as e:
        read(s3_http, bucket, "doc.txt")
    assert failure(e) == (404, "NoSuchKey")
    assert versions_of(s3_http, bucket) == (
        [("doc.txt", v2, False), ("doc.txt", v1, False)],
        [("doc.txt", marker, True)],
    )

    restored = s3_http.copy_object(
        Bucket=bucket, Key="doc.txt", CopySource={"Bucket": bucket, "Key": "doc.txt", "VersionId": v1}
    )
    v3 = restored["VersionId"]
    assert restored["CopySourceVersionId"] == v1 and v3 not in (v1, v2, marker)
    assert read(s3_http, bucket, "doc.txt") == b"draft one"
    assert versions_of(s3_http, bucket) == (
        [("doc.txt", v3, True), ("doc.txt", v2, False), ("doc.txt", v1, False)],
        [("doc.txt", marker, False)],
    )

    s3_http.delete_object(Bucket=bucket, Key="doc.txt", VersionId=v3)  # undo the restore: the marker is current again
    with pytest.raises(ClientError) as e:
        s3_http.head_object(Bucket=bucket, Key="doc.txt")
    assert headers_of(e)["x-amz-version-id"] == marker
    s3_http.delete_object(Bucket=bucket, Key="doc.txt", VersionId=marker)  # undelete
    got = s3_http.get_object(Bucket=bucket, Key="doc.txt")
    assert (got["Body"].read(), got["VersionId"]) == (b"draft two", v2)
    assert versions_of(s3_http, bucket) == ([("doc.txt", v2, True), ("doc.txt", v1, False)], [])
    assert [o["Key"] for o in s3_http.list_objects_v2(Bucket=bucket)["Contents"]] == ["doc.txt"]
