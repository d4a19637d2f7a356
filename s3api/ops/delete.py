"""DeleteObject and DeleteObjects (up to 1000 keys, Quiet mode, per-key errors), by version too.

In a versioned bucket a delete without a version id adds a delete marker; with one it removes that
version for good. A version id that names nothing is no error: S3 deletes are idempotent.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from objstore.errors import InvalidArgument, StoreError
from objstore.store import Deletion

from .. import checksums
from ..context import S3Context, xml_response
from ..errors import S3Error

MAX_DELETE_KEYS = 1000


def deletion_headers(done: Deletion) -> dict[str, str]:
    headers = {"x-amz-version-id": done.version_id} if done.version_id is not None else {}
    if done.delete_marker:
        headers["x-amz-delete-marker"] = "true"
    return headers


async def handle_delete_object(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObject.html (204 whether or not it existed)"""
    await ctx.owned_bucket()
    done = await ctx.run(ctx.store.delete_object, ctx.bucket, ctx.key, ctx.version_id())
    return Response(status_code=204, headers=deletion_headers(done))


def _requested_keys(doc: dict[str, Any]) -> list[tuple[str, str | None]]:
    objects = doc.get("Object") or []
    if not objects or len(objects) > MAX_DELETE_KEYS:
        raise S3Error("MalformedXML", f"Delete takes 1 to {MAX_DELETE_KEYS} objects.")
    out = []
    for obj in objects:
        if not isinstance(obj, dict) or not isinstance(obj.get("Key"), str):
            raise S3Error("MalformedXML", "Each Object needs a Key.")
        version = obj.get("VersionId")
        if version is not None and not isinstance(version, str):
            raise S3Error("MalformedXML", "VersionId must be text.")
        out.append((obj["Key"], version))
    return out


def _delete_one(ctx: S3Context, key: str, version: str | None) -> dict[str, str]:
    """The Deleted entry of one key, or its Error entry (with `Code`)."""
    try:
        done = ctx.store.delete_object(ctx.bucket, key, version)
    except InvalidArgument:  # a malformed version id: per key, S3 says the version does not exist
        return {"Key": key, "VersionId": version or "", "Code": "NoSuchVersion", "Message": "The specified version does not exist."}
    except StoreError as e:
        entry = {"Key": key, "Code": e.code, "Message": str(e)}
        return {**entry, "VersionId": version} if version is not None else entry
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
        raise S3Error("InvalidRequest", "Missing required header for this request: Content-MD5 or x-amz-checksum-*")
    doc = await ctx.read_xml("Delete", force_list=("Object",))
    quiet = str(doc.get("Quiet", "false")).strip().lower() == "true"
    deleted, errors = [], []
    for key, version in _requested_keys(doc):
        entry = await ctx.run(_delete_one, ctx, key, version)
        if "Code" in entry:
            errors.append(entry)
        elif not quiet:
            deleted.append(entry)
    return xml_response("DeleteResult", {"Deleted": deleted, "Error": errors})
