"""The S3-compatible store `pyblob import s3` reads from: its client, its buckets and listings, and
what one GET says about the object (attributes, checksums).

Listings come as *histories*: every version of one key, oldest first (one entry when the bucket is
not versioned), because versions must go in in order. S3's ListObjectVersions interleaves versions
and delete markers in their true order (newest first within a key), but boto3 parses them into two
separate lists, and timestamps can tie; so the entries are read from the response XML itself,
through botocore's `before-parse` hook, which adds them to the parsed answer. Not every store keeps
S3's order (moto lists every version of the page before every delete marker), so a key's entries
are ordered by: the latest first, then LastModified, newest first, then the order of the XML.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import boto3
from botocore.client import BaseClient
from botocore.config import Config

from objstore.hashing import CHECKSUM_ALGORITHMS
from s3api.http import STANDARD_HEADERS

ORDER = "PyblobVersionOrder"  # the key the hook adds to a parsed ListObjectVersions answer
RETRIES = 5  # attempts per request (botocore's standard mode: backoff, throttling and 5xx retried)


@dataclass(frozen=True)
class SourceVersion:
    """One listed object (or delete marker): what the copy is checked against."""

    key: str
    etag: str = ""  # unquoted
    size: int = 0
    version_id: str | None = None  # None: listed from an unversioned bucket
    delete_marker: bool = False
    latest: bool = False  # IsLatest, in a version listing
    modified: float = 0.0  # LastModified, in a version listing

    @property
    def parts(self) -> int:
        """N of a multipart ETag `<md5>-N`; 0 for a single-part one."""
        _, dash, count = self.etag.partition("-")
        return int(count) if dash and count.isdigit() else 0


@dataclass(frozen=True)
class Attributes:
    """What a GET answered beside the bytes, in the engine's terms."""

    content_type: str
    headers: dict[str, str]
    meta: dict[str, str]
    checksums: dict[str, str]  # full-object checksums only: algorithm -> base64
    tag_count: int


def connect(
    endpoint: str, access_key: str, secret_key: str, region: str, addressing_style: str, connections: int
) -> BaseClient:
    """A boto3 client on the source with `connections` pooled connections and retries."""
    config = Config(
        s3={"addressing_style": addressing_style},
        signature_version="s3v4",
        max_pool_connections=connections,
        retries={"mode": "standard", "max_attempts": RETRIES},
        connect_timeout=10,
        read_timeout=60,
    )
    session = boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region)
    client = session.client("s3", endpoint_url=endpoint, config=config)
    client.meta.events.register("before-parse.s3.ListObjectVersions", _keep_version_order)
    return client


def bucket_names(client: BaseClient) -> list[str]:
    names: list[str] = []
    request: dict[str, Any] = {}
    while True:
        answer = client.list_buckets(**request)
        names += [b["Name"] for b in answer.get("Buckets", [])]
        token = answer.get("ContinuationToken")
        if not token:
            return names
        request = {"ContinuationToken": token}


def versioning(client: BaseClient, bucket: str) -> str:
    """ "Enabled", "Suspended", or "" for a bucket that never had versioning."""
    return str(client.get_bucket_versioning(Bucket=bucket).get("Status", ""))


def histories(client: BaseClient, bucket: str, prefix: str, versioned: bool) -> Iterator[list[SourceVersion]]:
    """Every key under `prefix` with its versions, oldest first, in key order."""
    if not versioned:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield [SourceVersion(item["Key"], unquoted(item.get("ETag", "")), int(item.get("Size", 0)))]
        return
    # Pages come in key order, so a page's keys are whole but its last, which may go on in the next.
    pending: dict[str, list[SourceVersion]] = {}
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get(ORDER, []):
            pending.setdefault(version.key, []).append(version)
        last = max(pending, default="")
        for key in sorted(k for k in pending if k < last):
            yield oldest_first(pending.pop(key))
    for key in sorted(pending):
        yield oldest_first(pending.pop(key))


def oldest_first(entries: list[SourceVersion]) -> list[SourceVersion]:
    """One key's versions and delete markers as listed (XML order) to the order they were made in."""
    newest_first = sorted(enumerate(entries), key=lambda e: (not e[1].latest, -e[1].modified, e[0]))
    return [version for _, version in reversed(newest_first)]


def _keep_version_order(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """botocore hook: the versions and delete markers of a ListObjectVersions page in the order
    of the XML, added to the parsed answer under ORDER."""
    if response_dict.get("status_code") != 200 or not response_dict.get("body"):
        return
    root = ET.fromstring(response_dict["body"])
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    encoded = (root.findtext(f"{ns}EncodingType") or "") == "url"
    order = []
    for element in root:
        if element.tag not in (f"{ns}Version", f"{ns}DeleteMarker"):
            continue
        key = element.findtext(f"{ns}Key") or ""
        order.append(
            SourceVersion(
                unquote(key) if encoded else key,
                unquoted(element.findtext(f"{ns}ETag") or ""),
                int(element.findtext(f"{ns}Size") or 0),
                element.findtext(f"{ns}VersionId") or "null",
                element.tag == f"{ns}DeleteMarker",
                (element.findtext(f"{ns}IsLatest") or "") == "true",
                timestamp(element.findtext(f"{ns}LastModified") or ""),
            )
        )
    customized_response_dict[ORDER] = order


def attributes(answer: dict[str, Any]) -> Attributes:
    """A GetObject answer's content type, standard headers, user metadata and full-object checksums."""
    raw = {k.lower(): v for k, v in answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).items()}
    headers = {name: raw[name] for name in STANDARD_HEADERS if name in raw}
    composite = answer.get("ChecksumType") == "COMPOSITE"
    checksums = {
        alg: str(answer[f"Checksum{alg}"])
        for alg in CHECKSUM_ALGORITHMS
        if answer.get(f"Checksum{alg}") and not composite and "-" not in str(answer[f"Checksum{alg}"])
    }
    return Attributes(
        str(answer.get("ContentType") or "binary/octet-stream"),
        headers,
        dict(answer.get("Metadata", {})),
        checksums,
        int(answer.get("TagCount") or 0),
    )


def tags(client: BaseClient, bucket: str, version: SourceVersion) -> dict[str, str]:
    request = {"Bucket": bucket, "Key": version.key} | version_arg(version)
    return {t["Key"]: t["Value"] for t in client.get_object_tagging(**request).get("TagSet", [])}


def version_arg(version: SourceVersion) -> dict[str, str]:
    return {"VersionId": version.version_id} if version.version_id else {}


def timestamp(text: str) -> float:
    """An S3 LastModified (`2024-05-01T10:00:00.000Z`) as seconds; 0 when there is none to read."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def unquoted(etag: str) -> str:
    return etag.strip().strip('"')
