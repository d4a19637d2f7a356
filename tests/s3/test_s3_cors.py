"""Bucket CORS: configuration round trip, preflight answered before auth, headers on real responses.

A page on https://app.example uploads with a presigned PUT and reads the ETag: the exact requests a
browser sends (preflight OPTIONS, then the PUT with an Origin header) are replayed with httpx.
"""

from __future__ import annotations

import httpx
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import Endpoint, failure

APP = "https://app.example"
RULES = {
    "CORSRules": [
        {
            "AllowedOrigins": [APP],
            "AllowedMethods": ["GET", "PUT", "POST"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 600,
        },
        {"AllowedOrigins": ["https://*.viewer.example"], "AllowedMethods": ["GET"]},
    ]
}


@pytest.fixture
def cors_bucket(s3_http: BaseClient, http_bucket: str) -> str:
    s3_http.put_bucket_cors(Bucket=http_bucket, CORSConfiguration=RULES)
    return http_bucket


def _preflight(endpoint: Endpoint, bucket: str, origin: str, method: str, headers: str = "") -> httpx.Response:
    extra = {"Access-Control-Request-Headers": headers} if headers else {}
    return httpx.options(
        f"{endpoint.url}/{bucket}/upload.bin",
        headers={"Origin": origin, "Access-Control-Request-Method": method, **extra},
    )


def test_configuration_round_trip_and_delete(s3_http: BaseClient, cors_bucket: str) -> None:
    got = s3_http.get_bucket_cors(Bucket=cors_bucket)["CORSRules"]
    assert got[0]["AllowedOrigins"] == [APP] and got[0]["ExposeHeaders"] == ["ETag"] and got[0]["MaxAgeSeconds"] == 600
    assert got[1]["AllowedOrigins"] == ["https://*.viewer.example"]
    s3_http.delete_bucket_cors(Bucket=cors_bucket)
    with pytest.raises(ClientError) as e:
        s3_http.get_bucket_cors(Bucket=cors_bucket)
    assert failure(e) == (404, "NoSuchCORSConfiguration")


def test_invalid_rules_are_refused(s3_http: BaseClient, http_bucket: str) -> None:
    bad = {"CORSRules": [{"AllowedOrigins": [APP], "AllowedMethods": ["PATCH"]}]}
    with pytest.raises(ClientError) as e:
        s3_http.put_bucket_cors(Bucket=http_bucket, CORSConfiguration=bad)
    assert failure(e) == (400, "InvalidRequest")


def test_max_age_is_a_32_bit_integer(s3_http: BaseClient, http_bucket: str) -> None:
    """MaxAgeSeconds is an Integer in S3's model. A larger one was kept, came back from its record as a
    float: GetBucketCors then said `1e+25`, which boto3 cannot read, and so did Access-Control-Max-Age."""
    for age in (2**31, 10**25):
        rules = {"CORSRules": [{"AllowedOrigins": [APP], "AllowedMethods": ["GET"], "MaxAgeSeconds": age}]}
        with pytest.raises(ClientError) as e:
            s3_http.put_bucket_cors(Bucket=http_bucket, CORSConfiguration=rules)
        assert failure(e) == (400, "MalformedXML")
    largest = {"CORSRules": [{"AllowedOrigins": [APP], "AllowedMethods": ["GET"], "MaxAgeSeconds": 2**31 - 1}]}
    s3_http.put_bucket_cors(Bucket=http_bucket, CORSConfiguration=largest)
    assert s3_http.get_bucket_cors(Bucket=http_bucket)["CORSRules"][0]["MaxAgeSeconds"] == 2**31 - 1


def test_preflight_allowed_by_a_rule(http_endpoint: Endpoint, cors_bucket: str) -> None:
    r = _preflight(http_endpoint, cors_bucket, APP, "PUT", "content-type, x-amz-date")
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == APP
    assert "PUT" in r.headers["access-control-allow-methods"]
    assert r.headers["access-control-allow-headers"] == "content-type, x-amz-date"
    assert r.headers["access-control-max-age"] == "600"


def test_preflight_wildcard_origin(http_endpoint: Endpoint, cors_bucket: str) -> None:
    assert _preflight(http_endpoint, cors_bucket, "https://a.viewer.example", "GET").status_code == 200
    assert _preflight(http_endpoint, cors_bucket, "https://a.viewer.example", "PUT").status_code == 403


@pytest.mark.parametrize("origin", ["https://evil.example", "http://app.example"])
def test_preflight_refused_for_other_origins(http_endpoint: Endpoint, cors_bucket: str, origin: str) -> None:
    r = _preflight(http_endpoint, cors_bucket, origin, "PUT")
    assert r.status_code == 403
    assert "<Code>AccessDenied</Code>" in r.text and "access-control-allow-origin" not in r.headers


def test_preflight_without_configuration_is_refused(http_endpoint: Endpoint, http_bucket: str) -> None:
    assert _preflight(http_endpoint, http_bucket, APP, "GET").status_code == 403


def test_browser_presigned_put_exposes_the_etag(http_endpoint: Endpoint, s3_http: BaseClient, cors_bucket: str) -> None:
    assert _preflight(http_endpoint, cors_bucket, APP, "PUT", "content-type").status_code == 200
    url = s3_http.generate_presigned_url("put_object", Params={"Bucket": cors_bucket, "Key": "upload.bin"})
    r = httpx.put(url, content=b"from the page", headers={"Origin": APP, "Content-Type": "application/octet-stream"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == APP
    assert r.headers["access-control-expose-headers"] == "ETag"
    assert r.headers["etag"].strip('"')
    assert s3_http.get_object(Bucket=cors_bucket, Key="upload.bin")["Body"].read() == b"from the page"


def test_errors_carry_cors_headers_too(http_endpoint: Endpoint, s3_http: BaseClient, cors_bucket: str) -> None:
    url = s3_http.generate_presigned_url("get_object", Params={"Bucket": cors_bucket, "Key": "missing"})
    r = httpx.get(url, headers={"Origin": APP})
    assert r.status_code == 404 and "<Code>NoSuchKey</Code>" in r.text
    assert r.headers["access-control-allow-origin"] == APP


def test_no_cors_headers_for_an_origin_no_rule_allows(
    http_endpoint: Endpoint, s3_http: BaseClient, cors_bucket: str
) -> None:
    s3_http.put_object(Bucket=cors_bucket, Key="public-ish", Body=b"x")
    url = s3_http.generate_presigned_url("get_object", Params={"Bucket": cors_bucket, "Key": "public-ish"})
    r = httpx.get(url, headers={"Origin": "https://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_a_preflight_without_origin_is_a_bad_request(http_endpoint: Endpoint, cors_bucket: str) -> None:
    with http_endpoint.http() as client:
        r = client.options(f"{http_endpoint.url}/{cors_bucket}/k", headers={"Access-Control-Request-Method": "PUT"})
    assert r.status_code == 400
    assert "Insufficient information. Origin request header needed." in r.text
