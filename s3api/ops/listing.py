"""Listing: ListObjects (v1), ListObjectsV2 and ListObjectVersions."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from objstore import ObjectRecord
from objstore.listing import Page, VersionPage

from ..conditional import quoted
from ..context import S3Context, owner_xml, xml_response
from ..errors import S3Code, S3Error
from ..http import iso8601
from ..xml import render_mixed

MAX_KEYS = 1000


def _max_keys(ctx: S3Context, name: str = "max-keys") -> int:
    raw = ctx.query.get(name, str(MAX_KEYS))
    try:
        value = int(raw)
    except ValueError as e:
        raise S3Error(
            S3Code.InvalidArgument,
            f"Provided {name} not an integer or within integer range",
            ArgumentName=name,
            ArgumentValue=raw,
        ) from e
    if value < 0:
        raise S3Error(
            S3Code.InvalidArgument,
            f"Argument {name} must be an integer between 0 and 2147483647",
            ArgumentName=name,
            ArgumentValue=raw,
        )
    return min(value, MAX_KEYS)


def _encoder(ctx: S3Context) -> Any:
    kind = ctx.query.get("encoding-type")
    if kind is None:
        return lambda s: s
    if kind != "url":
        raise S3Error(
            S3Code.InvalidArgument,
            "Invalid Encoding Method specified in Request",
            ArgumentName="encoding-type",
            ArgumentValue=kind,
        )
    return lambda s: quote(s, safe="/")


async def _page(
    ctx: S3Context, prefix: str, delimiter: str, after: str, max_keys: int, inclusive: bool = False
) -> Page:
    """A page of keys; `max-keys=0` asks for none, and AWS answers that page as complete."""
    await ctx.owned_bucket()
    if max_keys == 0:
        return Page()
    return await ctx.run(ctx.store.list_objects, ctx.bucket, prefix, delimiter, after, max_keys, inclusive)


def _contents(obj: ObjectRecord, enc: Any, owner: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "Key": enc(obj.key),
        "LastModified": iso8601(obj.created),
        "ETag": quoted(obj.etag),
        "Size": str(obj.size),
        "StorageClass": "STANDARD",
    }
    if obj.checksums:
        entry["ChecksumAlgorithm"] = sorted(obj.checksums)
        entry["ChecksumType"] = obj.checksum_type
    if owner:
        entry["Owner"] = owner_xml(obj.owner)
    return entry


def _common(page: Page, enc: Any) -> list[dict[str, str]]:
    return _common_prefixes(page.prefixes, enc)


def _common_prefixes(prefixes: list[str], enc: Any) -> list[dict[str, str]]:
    return [{"Prefix": enc(p)} for p in prefixes]


def _optional(body: dict[str, Any], **values: str | None) -> None:
    body.update({k: v for k, v in values.items() if v is not None})


async def handle_list_objects(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjects.html"""
    enc, q = _encoder(ctx), ctx.query
    prefix, delimiter, marker, max_keys = (
        q.get("prefix", ""),
        q.get("delimiter", ""),
        q.get("marker", ""),
        _max_keys(ctx),
    )
    page = await _page(ctx, prefix, delimiter, marker, max_keys)
    body: dict[str, Any] = {"Name": ctx.bucket, "Prefix": enc(prefix), "Marker": enc(marker), "MaxKeys": str(max_keys)}
    _optional(body, Delimiter=enc(delimiter) if delimiter else None)
    body["IsTruncated"] = str(page.truncated).lower()
    if page.truncated and delimiter and page.last is not None:
        body["NextMarker"] = enc(page.last)  # S3 sends NextMarker only with a delimiter
    body["Contents"] = [_contents(o, enc, True) for o in page.objects]
    body["CommonPrefixes"] = _common(page, enc)
    _optional(body, EncodingType=q.get("encoding-type"))
    return xml_response("ListBucketResult", body)


def encode_token(after: str) -> str:
    return base64.urlsafe_b64encode(b"v1:" + after.encode()).decode()


def decode_token(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token.encode())
        if raw.startswith(b"v1:"):
            return raw[3:].decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise S3Error(
        S3Code.InvalidArgument, "The continuation token provided is incorrect", ArgumentName="continuation-token"
    )


async def handle_list_objects_v2(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html"""
    enc, q = _encoder(ctx), ctx.query
    prefix, delimiter, max_keys = q.get("prefix", ""), q.get("delimiter", ""), _max_keys(ctx)
    token, start_after = q.get("continuation-token"), q.get("start-after", "")
    after = max(decode_token(token), start_after) if token is not None else start_after
    page = await _page(ctx, prefix, delimiter, after, max_keys)
    body: dict[str, Any] = {"Name": ctx.bucket, "Prefix": enc(prefix), "MaxKeys": str(max_keys)}
    _optional(body, Delimiter=enc(delimiter) if delimiter else None)
    body["KeyCount"] = str(len(page.objects) + len(page.prefixes))
    body["IsTruncated"] = str(page.truncated).lower()
    _optional(body, ContinuationToken=token, StartAfter=enc(start_after) if start_after else None)
    if page.truncated and page.last is not None:
        body["NextContinuationToken"] = encode_token(page.last)
    body["Contents"] = [_contents(o, enc, q.get("fetch-owner") == "true") for o in page.objects]
    body["CommonPrefixes"] = _common(page, enc)
    _optional(body, EncodingType=q.get("encoding-type"))
    return xml_response("ListBucketResult", body)


async def handle_list_object_versions(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectVersions.html

    Versions and delete markers by key, each key's newest first; `key-marker` alone resumes after
    that key, with `version-id-marker` after that version of it.
    """
    enc, q = _encoder(ctx), ctx.query
    prefix, delimiter, max_keys = q.get("prefix", ""), q.get("delimiter", ""), _max_keys(ctx)
    key_marker, version_marker = q.get("key-marker", ""), q.get("version-id-marker", "")
    if version_marker and not key_marker:
        raise S3Error(
            S3Code.InvalidArgument,
            "A version-id marker cannot be specified without a key marker.",
            ArgumentName="version-id-marker",
            ArgumentValue=version_marker,
        )
    if version_marker:
        ctx.version_id("version-id-marker")
    await ctx.owned_bucket()
    page = VersionPage()
    if max_keys:
        page = await ctx.run(
            ctx.store.list_object_versions, ctx.bucket, prefix, delimiter, key_marker, version_marker, max_keys
        )
    body: dict[str, Any] = {
        "Name": ctx.bucket,
        "Prefix": enc(prefix),
        "KeyMarker": enc(key_marker),
        "VersionIdMarker": version_marker,
        "MaxKeys": str(max_keys),
    }
    _optional(body, Delimiter=enc(delimiter) if delimiter else None)
    body["IsTruncated"] = str(page.truncated).lower()
    if page.truncated and page.next_key is not None:
        body["NextKeyMarker"] = enc(page.next_key)
        _optional(body, NextVersionIdMarker=page.next_version)
    items = [
        ("DeleteMarker", _marker(o, enc)) if o.delete_marker else ("Version", _version(o, enc)) for o in page.versions
    ]
    tail: dict[str, Any] = {"CommonPrefixes": _common_prefixes(page.prefixes, enc)}
    _optional(tail, EncodingType=q.get("encoding-type"))
    return Response(render_mixed("ListVersionsResult", body, items, tail), media_type="application/xml")


def _version(obj: ObjectRecord, enc: Any) -> dict[str, Any]:
    entry = _contents(obj, enc, True)
    version = {
        "Key": entry["Key"],
        "VersionId": obj.version_id,
        "IsLatest": _latest(obj),
        "LastModified": entry["LastModified"],
        "ETag": entry["ETag"],
        "Size": entry["Size"],
        "StorageClass": "STANDARD",
        "Owner": entry["Owner"],
    }
    if obj.checksums:
        version["ChecksumAlgorithm"], version["ChecksumType"] = entry["ChecksumAlgorithm"], entry["ChecksumType"]
    return version


def _marker(obj: ObjectRecord, enc: Any) -> dict[str, Any]:
    return {
        "Owner": owner_xml(obj.owner),
        "Key": enc(obj.key),
        "VersionId": obj.version_id,
        "IsLatest": _latest(obj),
        "LastModified": iso8601(obj.created),
    }


def _latest(obj: ObjectRecord) -> str:
    return "true" if obj.noncurrent_since is None else "false"
