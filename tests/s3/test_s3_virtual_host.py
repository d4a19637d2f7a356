"""Virtual-hosted-style requests (`<bucket>.<PYBLOB_DOMAIN>`), signed with SigV4 and SigV2.

The test domain does not resolve, so requests go to 127.0.0.1 with the Host header the client
signed, exactly what a client behind DNS would send.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from botocore.auth import HmacV1Auth, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.client import BaseClient
from botocore.credentials import Credentials
from s3_server import ADMIN, DOMAIN, REGION, Endpoint


def _send(
    endpoint: Endpoint, method: str, bucket: str, key: str, body: bytes = b"", v2: bool = False
) -> httpx.Response:
    port = urlsplit(endpoint.url).port
    request = AWSRequest(method=method, url=f"http://{bucket}.{DOMAIN}:{port}/{key}", data=body)
    request.auth_path = f"/{bucket}/{key}"  # what botocore's virtual-host handler sets: SigV2 signs it
    creds = Credentials(ADMIN.access_key, ADMIN.secret_key)
    (HmacV1Auth(creds) if v2 else S3SigV4Auth(creds, "s3", REGION)).add_auth(request)
    headers = {k: str(v) for k, v in request.headers.items()}
    headers["Host"] = f"{bucket}.{DOMAIN}:{port}"
    with httpx.Client() as client:
        return client.request(method, f"http://127.0.0.1:{port}/{key}", headers=headers, content=body)


def test_put_and_get_through_the_bucket_host_with_sigv4(
    http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str
) -> None:
    put = _send(http_endpoint, "PUT", http_bucket, "virtual/key.txt", b"hosted")
    assert put.status_code == 200, put.text
    got = _send(http_endpoint, "GET", http_bucket, "virtual/key.txt")
    assert (got.status_code, got.content) == (200, b"hosted")
    # The same object, seen path-style.
    assert s3_http.get_object(Bucket=http_bucket, Key="virtual/key.txt")["Body"].read() == b"hosted"


def test_sigv2_signs_the_bucket_even_when_it_is_in_the_host(
    http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str
) -> None:
    s3_http.put_object(Bucket=http_bucket, Key="v2.txt", Body=b"two")
    got = _send(http_endpoint, "GET", http_bucket, "v2.txt", v2=True)
    assert (got.status_code, got.content) == (200, b"two")


def test_listing_the_bucket_host_root(http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str) -> None:
    s3_http.put_object(Bucket=http_bucket, Key="listed", Body=b"x")
    listed = _send(http_endpoint, "GET", http_bucket, "")
    assert listed.status_code == 200
    assert b"<Key>listed</Key>" in listed.content
