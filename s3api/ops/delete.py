"""DeleteObject and DeleteObjects (up to 1000 keys, Quiet mode, per-key errors), by version too.

In a versioned bucket a delete without a version id adds a delete marker; with one it removes that
version for good. A version id that names nothing is no error: S3 deletes are idempotent.

Conditional deletes (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html):
`If-Match` (an ETag, or `*` for any object), or an `<ETag>` per key of DeleteObjects, is asked of
the key's current version inside the delete's transaction: 412 PreconditionFailed when its ETag
differs, 404 NoSuchKey when there is no object (or a delete marker is current), as AWS was measured
answering. AWS refuses a version id with a condition, and the directory-bucket conditions
(`x-amz-if-match-last-modified-time`, `x-amz-if-match-size`) on general purpose buckets, with 501;
so does pyblob, rather than ignoring them and deleting.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from objstore.conditions import ALWAYS, Precondition
from objstore.errors import InvalidArgument, NoSuchKey, PreconditionFailed, StoreError
from objstore.keys import MAX_KEY_BYTES
from objstore.store import Deletion

from .. import checksums
from ..context import S3Context, xml_response
from ..errors import S3Code, S3Error, s3_code_of
from .put import condition_errors, etag_value, not_implemented

MAX_DELETE_KEYS = 1000
# A Delete document of 1000 keys of 1024 bytes: escaped, a key byte takes up to 5 (`&amp;`, Go's
# `&#34;`), and 1 KiB more per Object leaves room for its VersionId, ETag, elements and indentation.
MAX_DELETE_BODY = MAX_DELETE_KEYS * (5 * MAX_KEY_BYTES + 1024)
DIRECTORY_BUCKET_CONDITIONS = ("x-amz-if-match-last-modified-time", "x-amz-if-match-size")
DIRECTORY_BUCKET_ELEMENTS = ("LastModifiedTime", "Size")
VERSION_AND_CONDITION = "A conditional delete applies to the current version; it cannot name a version id."


def deletion_headers(done: Deletion) -> dict[str, str]:
    headers = {"x-amz-version-id": done.version_id} if done.version_id is not None else {}
    if done.delete_marker:
        headers["x-amz-delete-marker"] = "true"
    return headers


def _delete_condition(ctx: S3Context, version_id: str | None) -> Precondition:
    for name in DIRECTORY_BUCKET_CONDITIONS:
        if name in ctx.headers:
            raise not_implemented(name, "This condition is only supported for directory buckets")
    match = ctx.headers.get("if-match")
    if match is None:
        return ALWAYS
    if version_id is not None:
        raise not_implemented("If-Match", VERSION_AND_CONDITION)
    return Precondition(if_match=etag_value(match))


async def handle_delete_object(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObject.html (204 whether or not it
    existed, unless a condition asks for an object)"""
    await ctx.owned_bucket()
    version_id = ctx.version_id()
    condition = _delete_condition(ctx, version_id)
    with condition_errors(condition):
        done = await ctx.run(ctx.store.delete_object, ctx.bucket, ctx.key, version_id, None, condition)
    return Response(status_code=204, headers=deletion_headers(done))


def _requested_keys(doc: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    """(key, version id, ETag condition) of each Object of a Delete request."""
    objects = doc.get("Object") or []
    if not objects or len(objects) > MAX_DELETE_KEYS:
        raise S3Error(S3Code.MalformedXML, f"Delete takes 1 to {MAX_DELETE_KEYS} objects.")
    out = []
    for obj in objects:
        if not isinstance(obj, dict) or not isinstance(obj.get("Key"), str):
            raise S3Error(S3Code.MalformedXML, "Each Object needs a Key.")
        version, etag = obj.get("VersionId"), obj.get("ETag")
        if (version is not None and not isinstance(version, str)) or (etag is not None and not isinstance(etag, str)):
            raise S3Error(S3Code.MalformedXML, "VersionId and ETag must be text.")
        for name in DIRECTORY_BUCKET_ELEMENTS:
            if name in obj:
                raise not_implemented(name, "This condition is only supported for directory buckets")
        out.append((obj["Key"], version, etag))
    return out


def _error_entry(key: str, version: str | None, code: str, message: str) -> dict[str, str]:
    entry = {"Key": key, "Code": code, "Message": message}
    return {**entry, "VersionId": version} if version is not None else entry


def _delete_one(ctx: S3Context, key: str, version: str | None, etag: str | None) -> dict[str, str]:
    """The Deleted entry of one key, or its Error entry (with `Code`)."""
    if version is not None and etag is not None:
        return _error_entry(key, version, "NotImplemented", VERSION_AND_CONDITION)
    condition = Precondition(if_match=etag_value(etag)) if etag is not None else ALWAYS
    try:
        done = ctx.store.delete_object(ctx.bucket, key, version, None, condition)
    except InvalidArgument:  # a malformed version id: per key, S3 says the version does not exist
        return {
            "Key": key,
            "VersionId": version or "",
            "Code": "NoSuchVersion",
            "Message": "The specified version does not exist.",
        }
    except (NoSuchKey, PreconditionFailed) as e:  # a condition that did not hold: AWS's words
        code = s3_code_of(e)
        return _error_entry(key, version, code.name, code.message)
    except StoreError as e:
        return _error_entry(key, version, s3_code_of(e).name, str(e))
    deleted = {"Key": key}
    if version is not None:
        deleted["VersionId"] = version
    if done.delete_marker:
        deleted["DeleteMarker"] = "true"
        deleted["DeleteMarkerVersionId"] = done.version_id or ""
    return deleted


async def handle_delete_objects(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html

    Integrity: Content-MD5 or any x-amz-checksum-* (new SDKs send no Content-MD5); one is required.
    """
    await ctx.owned_bucket()
    if "content-md5" not in ctx.headers and not checksums.requested(ctx.headers):
        raise S3Error(
            S3Code.InvalidRequest, "Missing required header for this request: Content-MD5 or x-amz-checksum-*"
        )
    doc = await ctx.read_xml("Delete", force_list=("Object",), limit=MAX_DELETE_BODY)
    quiet = str(doc.get("Quiet", "false")).strip().lower() == "true"
    deleted, errors = [], []
    for key, version, etag in _requested_keys(doc):
        entry = await ctx.run(_delete_one, ctx, key, version, etag)
        if "Code" in entry:
            errors.append(entry)
        elif not quiet:
            deleted.append(entry)
    return xml_response("DeleteResult", {"Deleted": deleted, "Error": errors})
