"""PutObject: stream the body into the engine, verify every digest the client gave, then commit."""

from __future__ import annotations

from starlette.responses import Response

from objstore.limits import human
from objstore.store import ObjectWriter

from .. import checksums, tagging
from ..body import Payload
from ..context import S3Context, version_headers
from ..errors import S3Error
from ..http import quoted, request_attributes

UNSUPPORTED_HEADERS = ("x-amz-server-side-encryption", "x-amz-server-side-encryption-customer-algorithm", "x-amz-object-lock-mode")


def reject_unsupported(ctx: S3Context) -> None:
    for name in UNSUPPORTED_HEADERS:
        if name in ctx.headers:
            raise S3Error("NotImplemented", f"pyblob does not support {name}.")


async def stream_into(ctx: S3Context, writer: ObjectWriter, payload: Payload) -> dict[str, str]:
    """Feed the body to `writer` and verify it; returns the checksums to store. Caller closes `writer`."""
    async for piece in payload.pieces():
        await ctx.run(writer.write, piece)
    content = await ctx.run(writer.finish)
    checksums.verify(ctx.headers, payload.trailers, content.md5, content.checksums)
    return checksums.given_values(ctx.headers, payload.trailers, content.checksums)


async def handle_put_object(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html"""
    bucket = await ctx.owned_bucket()
    reject_unsupported(ctx)
    if_none_match = ctx.headers.get("if-none-match")
    if if_none_match is not None and if_none_match.strip() != "*":
        raise S3Error("NotImplemented", "If-None-Match on PutObject supports only '*'.")
    content_type, standard, meta = request_attributes(ctx.headers)
    tags = tagging.from_header(ctx.headers.get("x-amz-tagging"))
    payload = ctx.payload()
    ceiling = ctx.config.max_single_put
    if payload.declared is not None and payload.declared > ceiling:
        raise S3Error("EntityTooLarge", f"Your proposed upload of {payload.declared} bytes exceeds the maximum of "
                      f"{human(ceiling)} for one PUT; use a multipart upload.")
    algorithms = checksums.with_default(checksums.requested(ctx.headers))
    writer = await ctx.run(ctx.store.open_writer, ctx.bucket, ctx.key, algorithms, payload.declared, 0, ceiling)
    try:
        kept = await stream_into(ctx, writer, payload)
        record = await ctx.run(writer.commit, content_type, standard, meta, if_none_match is not None, "FULL_OBJECT", tags)
    finally:
        await ctx.run(writer.close)
    headers = {"etag": quoted(record.etag), **version_headers(bucket, record)}
    headers.update({f"x-amz-checksum-{alg.lower()}": v for alg, v in kept.items()})
    if kept:
        headers["x-amz-checksum-type"] = "FULL_OBJECT"
    return Response(status_code=200, headers=headers)
