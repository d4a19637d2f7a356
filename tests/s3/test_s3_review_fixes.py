"""Regression tests for defects found in review: unsigned x-amz-* headers on presigned URLs,
unbounded lifecycle day counts, non-ASCII digits in part numbers, lax aws-chunked sizes."""

from __future__ import annotations

import httpx
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3_server import Endpoint, failure
from s3_signing import sign

from s3api.chunked import ChunkedDecoder
from s3api.errors import S3Error


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


@pytest.mark.parametrize("action", [
    {"Expiration": {"Days": 10**12}},
    {"AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 10**12}},
])
def test_huge_day_counts_are_refused(s3_http: BaseClient, http_bucket: str, action: dict[str, object]) -> None:
    rule = {"ID": "r", "Status": "Enabled", "Filter": {"Prefix": ""}, **action}
    with pytest.raises(ClientError) as e:
        s3_http.put_bucket_lifecycle_configuration(Bucket=http_bucket, LifecycleConfiguration={"Rules": [rule]})
    assert failure(e)[0] == 400


@pytest.mark.parametrize("number", ["%C2%B2", "%D9%A3"])  # superscript two, Arabic-Indic three
def test_non_ascii_digits_in_a_part_number(http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str, number: str) -> None:
    up = s3_http.create_multipart_upload(Bucket=http_bucket, Key="k")
    signed = sign(http_endpoint, "PUT", f"/{http_bucket}/k", query=f"partNumber={number}&uploadId={up['UploadId']}", body=b"x")
    r = httpx.put(signed.url, headers=dict(signed.headers), content=b"x")
    assert r.status_code == 400 and "<Code>InvalidArgument</Code>" in r.text


@pytest.mark.parametrize("size", [b"0x5", b"0_5", b"+5", b"-1", b"5g"])
def test_chunk_sizes_must_be_plain_hex(size: bytes) -> None:
    decoder = ChunkedDecoder(None, False)
    with pytest.raises(S3Error) as e:
        decoder.feed(size + b"\r\nABCDE\r\n0\r\n\r\n")
        decoder.finish()
    assert e.value.code == "IncompleteBody"
