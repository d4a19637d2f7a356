"""AWS Signature Version 2 (HMAC-SHA1), as pure functions.

Still produced by boto3's `generate_presigned_url` and `generate_presigned_post` and `aws s3 presign`
when an endpoint URL is set, and by older s3cmd setups.
Spec: https://docs.aws.amazon.com/AmazonS3/latest/userguide/RESTAuthentication.html
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

# Sub-resources that belong in the canonicalized resource, in the order AWS sorts them.
SIGNED_SUBRESOURCES = sorted(
    [
        "acl",
        "cors",
        "delete",
        "lifecycle",
        "location",
        "logging",
        "notification",
        "partNumber",
        "policy",
        "requestPayment",
        "restore",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
        # botocore's HmacV1 signs these too, AWS's list predates them
        "analytics",
        "inventory",
        "metrics",
        "object-lock",
        "replication",
        "select",
        "select-type",
        "storageClass",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
    ]
)


def canonical_amz_headers(headers: Mapping[str, str]) -> str:
    """x-amz-* headers, lower-cased and sorted, one 'name:value\\n' each, values trimmed at their ends
    only (as the spec and botocore do: inner spaces are signed as sent). `headers` are lower-case."""
    amz = sorted((k, v.strip()) for k, v in headers.items() if k.startswith("x-amz-"))
    return "".join(f"{k}:{v}\n" for k, v in amz)


# Signed by some clients and not by others (botocore leaves it out): both forms are accepted.
EITHER_WAY = sorted([*SIGNED_SUBRESOURCES, "attributes"])


def canonical_resource(path: str, query: Mapping[str, str], names: list[str] = SIGNED_SUBRESOURCES) -> str:
    """The request path as sent plus the signed sub-resources, values not URL-encoded."""
    subs = [(k, query[k]) for k in names if k in query]
    if not subs:
        return path
    return path + "?" + "&".join(f"{k}={v}" if v != "" else k for k, v in subs)


def canonical_resources(path: str, query: Mapping[str, str]) -> list[str]:
    """Every canonical resource a client may have signed for this request (see EITHER_WAY)."""
    found = [canonical_resource(path, query)]
    if "attributes" in query:
        found.append(canonical_resource(path, query, EITHER_WAY))
    return found


def string_to_sign(method: str, headers: Mapping[str, str], date: str, resource: str) -> str:
    return (
        "\n".join([method, headers.get("content-md5", ""), headers.get("content-type", ""), date])
        + "\n"
        + canonical_amz_headers(headers)
        + resource
    )


def sign(secret: str, text: str) -> str:
    mac = hmac.new(secret.encode(), text.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def post_policy_signature(secret: str, policy_b64: str) -> str:
    """The `signature` field of a SigV2 POST form: base64 HMAC-SHA1 of the base64 policy text.

    https://docs.aws.amazon.com/AmazonS3/latest/userguide/HTTPPOSTForms.html ("Constructing a
    Signature"); boto3's `generate_presigned_post` signs so on its default settings.
    """
    return sign(secret, policy_b64)
