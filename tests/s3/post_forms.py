"""POST Object forms as web backends make them, and a browser-like client that posts them.

Forms come from boto3's `generate_presigned_post`: on its default settings (a client made with only
an endpoint and credentials, as a web backend makes it) it signs them with SigV2 (`AWSAccessKeyId`,
`policy`, `signature`); with `signature_version="s3v4"` with SigV4 (`x-amz-*`). A few forms boto3
will not write (a policy that does not name the bucket) are signed here from the SigV2 spec
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/HTTPPOSTForms.html). httpx sends them as a
browser does: multipart/form-data, the fields first and the `file` part last.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import xmltodict
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError
from s3_server import OPEN_CLIENTS, REGION, Creds, Endpoint, failure

# generate_presigned_post's signature_version: None is boto3's default (SigV2 forms), "s3v4" SigV4.
SCHEMES = {"sigv2-default": None, "sigv4": "s3v4"}
SCHEME_FIELDS = {
    "sigv2-default": {"AWSAccessKeyId", "policy", "signature"},
    "sigv4": {"x-amz-algorithm", "x-amz-credential", "x-amz-date", "policy", "x-amz-signature"},
}


def form_client(endpoint: Endpoint, creds: Creds, scheme: str) -> BaseClient:
    """A boto3 client as a web backend makes one: endpoint, region and keys; for "sigv4" also
    signature_version="s3v4", and nothing else."""
    version = SCHEMES[scheme]
    client = endpoint.session.client(
        "s3",
        endpoint_url=endpoint.url,
        region_name=REGION,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        config=Config(signature_version=version) if version else None,
    )
    OPEN_CLIENTS.append(client)
    return client


def presign(
    client: BaseClient,
    bucket: str,
    key: str,
    fields: dict[str, str] | None = None,
    conditions: list[Any] | None = None,
    expires_in: int = 300,
) -> tuple[str, dict[str, str]]:
    """boto3's form: its URL and fields, each extra field with an exact-match condition, then `conditions`."""
    extra = fields or {}
    made = client.generate_presigned_post(
        bucket,
        key,
        Fields=extra,
        ExpiresIn=expires_in,
        Conditions=[*({k: v} for k, v in extra.items()), *(conditions or [])],
    )
    return made["url"], made["fields"]


def v2_form(creds: Creds, conditions: list[Any], expires_in: int = 300, **fields: str) -> dict[str, str]:
    """A SigV2 form whose policy is written here: `conditions` only (no bucket unless given)."""
    expiration = (datetime.now(UTC) + timedelta(seconds=expires_in)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return v2_signed(creds, {"expiration": expiration, "conditions": conditions}, **fields)


def v2_signed(creds: Creds, doc: dict[str, Any], **fields: str) -> dict[str, str]:
    """`doc` as a form's policy, signed as HTTPPOSTForms.html says: base64 HMAC-SHA1 of the base64 text."""
    encoded = base64.b64encode(json.dumps(doc).encode()).decode()
    mac = hmac.new(creds.secret_key.encode(), encoded.encode(), hashlib.sha1).digest()
    return {
        **fields,
        "AWSAccessKeyId": creds.access_key,
        "policy": encoded,
        "signature": base64.b64encode(mac).decode(),
    }


def post(
    url: str, fields: dict[str, Any], content: bytes, filename: str = "photo.jpg", **headers: str
) -> httpx.Response:
    """A browser's form upload: every field, then the file."""
    files = {"file": (filename, content, "application/octet-stream")}
    return httpx.post(url, data=fields, files=files, headers=headers, timeout=30, trust_env=False)


def raw_form(
    fields: list[tuple[str, str]], content: bytes, filename: str | None = "f.bin", boundary: str = "pyblobFormBoundary"
) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body written byte for byte (field names as given, repeats allowed),
    the file last (without a filename if None); and its Content-Type header."""
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields]
    named = "" if filename is None else f'; filename="{filename}"'
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"{named}\r\n\r\n'.encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def error_of(r: httpx.Response) -> tuple[int, str, str]:
    error = xmltodict.parse(r.content)["Error"]
    return r.status_code, error["Code"], error["Message"]


def missing(s3: BaseClient, bucket: str, key: str) -> bool:
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    return failure(e)[0] == 404
