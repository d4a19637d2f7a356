"""CopyObject: a new object sharing the source's chunks (no data is copied).

https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from starlette.responses import Response

from objstore import ObjectRecord

from .. import tagging
from ..context import S3Context, xml_response
from ..errors import S3Error
from ..http import check_conditions, iso8601, quoted, request_attributes
from .put import reject_unsupported

COPY_CONDITIONS = {
    "x-amz-copy-source-if-match": "if-match",
    "x-amz-copy-source-if-none-match": "if-none-match",
    "x-amz-copy-source-if-modified-since": "if-modified-since",
    "x-amz-copy-source-if-unmodified-since": "if-unmodified-since",
}


def parse_copy_source(value: str) -> tuple[str, str]:
    """(bucket, key) of `x-amz-copy-source`: "[/]bucket/key[?versionId=null]", URL-encoded."""
    path, _, query = value.partition("?")
    if query and query not in ("versionId=null",):
        raise S3Error("InvalidArgument", "Invalid version id specified", ArgumentName="x-amz-copy-source")
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    if not bucket or not key:
        raise S3Error("InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey", ArgumentName="x-amz-copy-source")
    return bucket, key


def source_conditions(ctx: S3Context) -> dict[str, str]:
    return {plain: ctx.headers[h] for h, plain in COPY_CONDITIONS.items() if h in ctx.headers}


def check_source(conditions: dict[str, str]) -> Any:
    """A check for the source record: any copy-source condition that fails → 412."""
    def check(source: ObjectRecord) -> None:
        if conditions and check_conditions(conditions, source) is not None:
            raise S3Error("PreconditionFailed", Condition=", ".join(f"x-amz-copy-source-{c}" for c in conditions))
    return check


async def owned_source(ctx: S3Context) -> tuple[str, str]:
    bucket, key = parse_copy_source(ctx.headers["x-amz-copy-source"])
    record = await ctx.run(ctx.store.get_bucket, bucket)
    if record.owner != ctx.user:
        raise S3Error("AccessDenied", resource=f"/{bucket}/{key}")
    return bucket, key


def _directive(ctx: S3Context, header: str) -> str:
    directive = ctx.headers.get(header, "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", f"Unknown {header}.", ArgumentName=header)
    return directive


def _replacement(ctx: S3Context, same_object: bool) -> dict[str, Any] | None:
    """New attributes per x-amz-metadata-directive and x-amz-tagging-directive (both COPY by default)."""
    replace: dict[str, Any] = {}
    if _directive(ctx, "x-amz-metadata-directive") == "REPLACE":
        content_type, headers, meta = request_attributes(ctx.headers)
        replace.update(content_type=content_type, headers=headers, meta=meta)
    if _directive(ctx, "x-amz-tagging-directive") == "REPLACE":
        replace["tags"] = tagging.from_header(ctx.headers.get("x-amz-tagging"))
    if same_object and not replace:
        raise S3Error("InvalidRequest", "This copy request is illegal because it is trying to copy an object to itself "
                      "without changing the object's metadata, storage class, website redirect location or encryption attributes.")
    return replace or None


async def handle_copy_object(ctx: S3Context) -> Response:
    await ctx.owned_bucket()
    reject_unsupported(ctx)
    src_bucket, src_key = await owned_source(ctx)
    replace = _replacement(ctx, (src_bucket, src_key) == (ctx.bucket, ctx.key))
    record = await ctx.run(ctx.store.copy_object, src_bucket, src_key, ctx.bucket, ctx.key, replace, check_source(source_conditions(ctx)))
    body: dict[str, Any] = {"ETag": quoted(record.etag), "LastModified": iso8601(record.created)}
    body.update({f"Checksum{alg}": v for alg, v in record.checksums.items()})
    return xml_response("CopyObjectResult", body)
