"""DeleteObject and DeleteObjects (up to 1000 keys, Quiet mode, per-key errors)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from objstore.errors import StoreError

from .. import checksums
from ..context import S3Context, xml_response
from ..errors import S3Error
from .get import check_version_id

MAX_DELETE_KEYS = 1000


async def handle_delete_object(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObject.html (204 whether or not it existed)"""
    await ctx.owned_bucket()
    check_version_id(ctx)
    await ctx.run(ctx.store.delete_object, ctx.bucket, ctx.key)
    return Response(status_code=204)


def _requested_keys(doc: dict[str, Any]) -> list[tuple[str, str | None]]:
    objects = doc.get("Object") or []
    if not objects or len(objects) > MAX_DELETE_KEYS:
        raise S3Error("MalformedXML", f"Delete takes 1 to {MAX_DELETE_KEYS} objects.")
    out = []
    for obj in objects:
        if not isinstance(obj, dict) or not isinstance(obj.get("Key"), str):
            raise S3Error("MalformedXML", "Each Object needs a Key.")
        out.append((obj["Key"], obj.get("VersionId")))
    return out


def _delete_one(ctx: S3Context, key: str, version: str | None) -> dict[str, str] | None:
    """None when deleted, else the per-key error entry."""
    if version not in (None, "null"):
        return {"Key": key, "VersionId": version, "Code": "NoSuchVersion", "Message": "The specified version does not exist."}
    try:
        ctx.store.delete_object(ctx.bucket, key)
    except StoreError as e:
        return {"Key": key, "Code": e.code, "Message": str(e)}
    return None


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
        error = await ctx.run(_delete_one, ctx, key, version)
        if error is not None:
            errors.append(error)
        elif not quiet:
            deleted.append({"Key": key, **({"VersionId": version} if version else {})})
    return xml_response("DeleteResult", {"Deleted": deleted, "Error": errors})
