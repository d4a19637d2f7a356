"""Authentication against the real server: SigV4 and SigV2, headers and presigned URLs, clock skew,
wrong and unknown keys, users confined to their own buckets.

https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html,
https://docs.aws.amazon.com/AmazonS3/latest/API/RESTAuthentication.html (SigV2).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import botocore.auth
import botocore.crt.auth
import httpx
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import ADMIN, Creds, Endpoint, failure, unique_bucket_name
from s3_signing import error_of, send, sign

KEY = 'dir/with space+plus&é"%20'


@pytest.fixture
def shift_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[dt.timedelta], None]:
    """Make botocore sign as if its clock were off by `delta`.

    Both signers: with awscrt installed (a pyblob dependency) boto3 signs with the CRT's.
    """
    real = botocore.auth.get_current_datetime

    def shift(delta: dt.timedelta) -> None:
        def shifted(remove_tzinfo: bool = True) -> dt.datetime:
            return real(remove_tzinfo) + delta

        monkeypatch.setattr(botocore.auth, "get_current_datetime", shifted)
        monkeypatch.setattr(botocore.crt.auth, "get_current_datetime", shifted)

    return shift


@pytest.fixture
def object_in(endpoint: Endpoint) -> tuple[str, str]:
    """(bucket, key) of an admin's object holding b"secret"."""
    name = unique_bucket_name()
    s3 = endpoint.client()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key=KEY, Body=b"secret")
    return name, KEY


# credentials ------------------------------------------------------------------------------------
def test_wrong_secret(endpoint: Endpoint, checksum_calculation: str) -> None:
    s3 = endpoint.client(Creds("admin", ADMIN.access_key, ADMIN.secret_key + "x"), checksum_calculation)
    with pytest.raises(ClientError) as e:
        s3.list_buckets()
    assert failure(e) == (403, "SignatureDoesNotMatch")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=unique_bucket_name(), Key="k", Body=b"x")
    assert failure(e) == (403, "SignatureDoesNotMatch")


def test_unknown_access_key(endpoint: Endpoint) -> None:
    s3 = endpoint.client(Creds("nobody", "AKIAUNKNOWNKEY000000", "whatever"))
    with pytest.raises(ClientError) as e:
        s3.list_buckets()
    assert failure(e) == (403, "InvalidAccessKeyId")


@pytest.mark.parametrize(
    "method, path", [("GET", "/"), ("GET", "/{b}"), ("GET", "/{b}/k"), ("PUT", "/{b}/k"), ("DELETE", "/{b}")]
)
def test_anonymous_requests_are_denied(endpoint: Endpoint, method: str, path: str) -> None:
    """An existing bucket (or the service) is 403 to anonymous requests; a missing one is 404, as AWS
    answers (bucket names are global: existence is no secret there either)."""
    existing = unique_bucket_name()
    endpoint.client().create_bucket(Bucket=existing)
    with endpoint.http() as client:
        response = client.request(
            method, endpoint.url + path.format(b=existing), content=b"x" if method == "PUT" else None
        )
        missing = client.request(
            method, endpoint.url + path.format(b=unique_bucket_name()), content=b"x" if method == "PUT" else None
        )
    assert (response.status_code, error_of(response)["Code"]) == (403, "AccessDenied")
    if path != "/":
        assert (missing.status_code, error_of(missing)["Code"]) == (404, "NoSuchBucket")


@pytest.mark.parametrize(
    "authorization, code",
    [
        ("Bearer abc", "InvalidArgument"),
        ("AWS4-HMAC-SHA256 Credential=garbage", "AuthorizationHeaderMalformed"),
        ("AWS no-colon-here", "InvalidArgument"),
    ],
)
def test_malformed_authorization(http_endpoint: Endpoint, authorization: str, code: str) -> None:
    with http_endpoint.http() as client:
        response = client.get(http_endpoint.url + "/", headers={"Authorization": authorization})
    assert (response.status_code, error_of(response)["Code"]) == (400, code)


@pytest.mark.parametrize("minutes", [20, -20])
def test_clock_skew(http_endpoint: Endpoint, shift_clock: Callable[[dt.timedelta], None], minutes: int) -> None:
    shift_clock(dt.timedelta(minutes=minutes))
    response = send(http_endpoint, "GET", "/")
    error = error_of(response)
    assert (response.status_code, error["Code"]) == (403, "RequestTimeTooSkewed")
    assert error["MaxAllowedSkewMilliseconds"] == "900000"
    request_time = dt.datetime.strptime(error["RequestTime"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    server_time = dt.datetime.strptime(error["ServerTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert abs((request_time - server_time) - dt.timedelta(minutes=minutes)) < dt.timedelta(minutes=1)

    with pytest.raises(ClientError) as e:
        http_endpoint.client().list_buckets()
    assert failure(e) == (403, "RequestTimeTooSkewed")


def test_small_clock_skew_is_tolerated(http_endpoint: Endpoint, shift_clock: Callable[[dt.timedelta], None]) -> None:
    shift_clock(dt.timedelta(minutes=10))
    assert "Buckets" in http_endpoint.client().list_buckets()


def test_sigv2_authorization_header(endpoint: Endpoint) -> None:
    """Older s3cmd setups sign with `Authorization: AWS key:signature` (botocore's "s3" signer)."""
    s3 = endpoint.client(signature_version="s3")
    sent: list[str] = []
    s3.meta.events.register(
        "before-send.s3.*", lambda request, **_: sent.append(str(request.headers["Authorization"], "ascii"))
    )
    name = unique_bucket_name()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key=KEY, Body=b"v2", Metadata={"a": "b"}, ContentType="text/plain")
    assert s3.get_object(Bucket=name, Key=KEY)["Body"].read() == b"v2"
    assert s3.get_object(Bucket=name, Key=KEY, ResponseContentType="x/y")["ContentType"] == "x/y"
    assert [o["Key"] for o in s3.list_objects(Bucket=name)["Contents"]] == [KEY]
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    # Sub-resources botocore signs that AWS's list predates (object-lock), and one it leaves out (attributes)
    attributes = s3.get_object_attributes(Bucket=name, Key=KEY, ObjectAttributes=["ObjectSize"])
    assert attributes["ObjectSize"] == 2
    with pytest.raises(ClientError) as lock:
        s3.get_object_lock_configuration(Bucket=name)
    assert failure(lock)[1] != "SignatureDoesNotMatch"
    s3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": KEY}]})
    s3.delete_bucket(Bucket=name)
    assert sent and all(a.startswith(f"AWS {ADMIN.access_key}:") for a in sent)

    wrong = endpoint.client(Creds("admin", ADMIN.access_key, "wrong"), signature_version="s3")
    with pytest.raises(ClientError) as e:
        wrong.list_buckets()
    assert failure(e) == (403, "SignatureDoesNotMatch")


# presigned URLs ---------------------------------------------------------------------------------
def presigner(endpoint: Endpoint, version: str, creds: Creds = ADMIN) -> BaseClient:
    """SigV4 ("s3v4") or boto3's default presigner with an endpoint URL, which is SigV2."""
    if version == "v4":
        return endpoint.client(creds, signature_version="s3v4")
    return endpoint.client(creds, signature_version=None)


def presigned_url(
    endpoint: Endpoint, version: str, method: str, bucket: str, key: str, expires: int = 600, creds: Creds = ADMIN
) -> str:
    operation = {"GET": "get_object", "PUT": "put_object"}[method]
    url = presigner(endpoint, version, creds).generate_presigned_url(
        operation, Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
    )
    query = parse_qs(urlsplit(url).query)
    assert ("X-Amz-Signature" in query) == (version == "v4")
    assert ("AWSAccessKeyId" in query and "Signature" in query) == (version == "v2")
    return url  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", ["v4", "v2"])
def test_presigned_get_and_put_through_plain_http(endpoint: Endpoint, object_in: tuple[str, str], version: str) -> None:
    bucket, key = object_in
    with endpoint.http() as client:
        got = client.get(presigned_url(endpoint, version, "GET", bucket, key))
        assert (got.status_code, got.content) == (200, b"secret")
        put = client.put(presigned_url(endpoint, version, "PUT", bucket, key + "-new"), content=b"uploaded")
        assert put.status_code == 200, put.text
    assert endpoint.client().get_object(Bucket=bucket, Key=key + "-new")["Body"].read() == b"uploaded"


@pytest.mark.parametrize("version", ["v4", "v2"])
def test_tampered_presigned_url(endpoint: Endpoint, object_in: tuple[str, str], version: str) -> None:
    bucket, key = object_in
    url = presigned_url(endpoint, version, "GET", bucket, key)
    other = url.replace(f"/{bucket}/", f"/{bucket}/x", 1)
    with endpoint.http() as client:
        response = client.get(other)
    assert (response.status_code, error_of(response)["Code"]) == (403, "SignatureDoesNotMatch")


def test_expired_presigned_v4(
    endpoint: Endpoint, object_in: tuple[str, str], shift_clock: Callable[[dt.timedelta], None]
) -> None:
    bucket, key = object_in
    shift_clock(dt.timedelta(hours=-2))
    url = presigned_url(endpoint, "v4", "GET", bucket, key, expires=3600)
    with endpoint.http() as client:
        response = client.get(url)
    error = error_of(response)
    assert (response.status_code, error["Code"], error["Message"]) == (403, "AccessDenied", "Request has expired")


def test_expired_presigned_v2(endpoint: Endpoint, object_in: tuple[str, str]) -> None:
    bucket, key = object_in
    url = presigned_url(endpoint, "v2", "GET", bucket, key, expires=-60)
    with endpoint.http() as client:
        response = client.get(url)
    error = error_of(response)
    assert (response.status_code, error["Code"], error["Message"]) == (403, "AccessDenied", "Request has expired")


def test_presigned_v4_longer_than_seven_days_is_refused(http_endpoint: Endpoint) -> None:
    bucket = unique_bucket_name()
    http_endpoint.client().create_bucket(Bucket=bucket)
    url = presigned_url(http_endpoint, "v4", "GET", bucket, "k", expires=7 * 86400 + 1)
    with http_endpoint.http() as client:
        response = client.get(url)
    assert (response.status_code, error_of(response)["Code"]) == (400, "AuthorizationQueryParametersError")


@pytest.mark.parametrize("version", ["v4", "v2"])
def test_presigned_url_of_another_user_is_denied(endpoint: Endpoint, object_in: tuple[str, str], version: str) -> None:
    bucket, key = object_in
    with endpoint.http() as client:
        for method in ("GET", "PUT"):
            url = presigned_url(endpoint, version, method, bucket, key, creds=endpoint.users["bob"])
            response = client.request(method, url, content=b"bob's" if method == "PUT" else None)
            assert (response.status_code, error_of(response)["Code"]) == (403, "AccessDenied")
    assert endpoint.client().get_object(Bucket=bucket, Key=key)["Body"].read() == b"secret"


def test_presigned_url_reads_through_httpx_with_query_string_order_changed(
    http_endpoint: Endpoint,
) -> None:
    """Signature checks follow the canonical (sorted) query, not the order of the URL."""
    bucket = unique_bucket_name()
    s3 = http_endpoint.client()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    url = presigned_url(http_endpoint, "v4", "GET", bucket, "k")
    base, query = url.split("?", 1)
    shuffled = base + "?" + "&".join(reversed(query.split("&")))
    assert httpx.get(shuffled, trust_env=False).content == b"v"


def test_presigned_put_cannot_be_turned_into_a_copy(http_endpoint: Endpoint, http_bucket: str) -> None:
    s3 = http_endpoint.client(signature_version="s3v4")
    s3.put_object(Bucket=http_bucket, Key="secret.txt", Body=b"TOP SECRET")
    url = s3.generate_presigned_url("put_object", Params={"Bucket": http_bucket, "Key": "upload.bin"})
    r = httpx.put(url, content=b"", headers={"x-amz-copy-source": f"{http_bucket}/secret.txt"})
    assert r.status_code == 403 and "<Code>AccessDenied</Code>" in r.text and "x-amz-copy-source" in r.text
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=http_bucket, Key="upload.bin")
    assert failure(e)[0] == 404
    # Without the extra header the same URL works.
    assert httpx.put(url, content=b"ok").status_code == 200


def test_unsigned_amz_header_on_a_header_signed_request(http_endpoint: Endpoint, http_bucket: str) -> None:
    signed = sign(http_endpoint, "GET", f"/{http_bucket}")
    headers = dict(signed.headers) | {"x-amz-meta-sneaky": "1"}
    r = httpx.get(signed.url, headers=headers)
    assert r.status_code == 403 and "HeadersNotSigned" in r.text
