"""GetObject and HeadObject: conditional requests, a single Range, response overrides, checksums."""

from __future__ import annotations

from starlette.responses import Response, StreamingResponse

from objstore import ObjectRecord

from ..context import S3Context
from ..errors import S3Error
from ..http import OVERRIDES, check_conditions, http_date, object_headers, parse_range, quoted


def check_version_id(ctx: S3Context) -> None:
    """Buckets are unversioned: `versionId=null` names the object itself (rclone sends it)."""
    version = ctx.query.get("versionId")
    if version is not None and version != "null":
        raise S3Error("InvalidArgument", "Invalid version id specified", ArgumentName="versionId", ArgumentValue=version)


async def load_object(ctx: S3Context) -> ObjectRecord:
    await ctx.owned_bucket()
    check_version_id(ctx)
    return await ctx.run(ctx.store.head_object, ctx.bucket, ctx.key)


def _conditional(ctx: S3Context, record: ObjectRecord) -> Response | None:
    status = check_conditions(ctx.headers, record)
    if status == 304:
        return Response(status_code=304, headers={"etag": quoted(record.etag), "last-modified": http_date(record.created)})
    if status == 412:
        raise S3Error("PreconditionFailed", Condition="If-Match" if "if-match" in ctx.headers else "If-Unmodified-Since")
    return None


def _headers(ctx: S3Context, record: ObjectRecord, ranged: bool) -> dict[str, str]:
    checksum_mode = ctx.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED" and not ranged
    headers = object_headers(record, checksum_mode)
    for param, header in OVERRIDES.items():
        if param in ctx.query:
            headers[header] = ctx.query[param]
    return headers


async def handle_get_object(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html"""
    return await _serve(ctx, with_body=True)


async def handle_head_object(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html"""
    return await _serve(ctx, with_body=False)


async def _serve(ctx: S3Context, with_body: bool) -> Response:
    record = await load_object(ctx)
    early = _conditional(ctx, record)
    if early is not None:
        return early
    rng = parse_range(ctx.headers.get("range"), record.size)
    start, end = rng or (0, record.size)
    headers = _headers(ctx, record, rng is not None)
    headers["content-length"] = str(end - start)
    status = 200
    if rng is not None:
        status = 206
        headers["content-range"] = f"bytes {start}-{end - 1}/{record.size}"
    if not with_body:
        return Response(status_code=status, headers=headers)
    body = ctx.store.read_object(record, start, end)
    return StreamingResponse(body, status_code=status, headers=headers)
