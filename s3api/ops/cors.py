"""Bucket CORS: Put/Get/DeleteBucketCors and the preflight OPTIONS request (answered before auth).

https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketCors.html,
https://docs.aws.amazon.com/AmazonS3/latest/API/RESTOPTIONSobject.html
"""

from __future__ import annotations

from starlette.responses import Response

from objstore.errors import NoSuchBucket

from .. import cors
from ..context import S3Context, xml_response
from ..errors import S3Code, S3Error


async def handle_put_bucket_cors(ctx: S3Context) -> Response:
    await ctx.owned_bucket()
    doc = await ctx.read_xml(
        "CORSConfiguration", force_list=("CORSRule", "AllowedOrigin", "AllowedMethod", "AllowedHeader", "ExposeHeader")
    )
    await ctx.run(ctx.store.set_bucket_cors, ctx.bucket, cors.parse_rules(doc))
    return Response(status_code=200)


async def handle_get_bucket_cors(ctx: S3Context) -> Response:
    record = await ctx.owned_bucket()
    if not record.cors:
        raise S3Error(S3Code.NoSuchCORSConfiguration, BucketName=ctx.bucket)
    return xml_response("CORSConfiguration", cors.rules_xml(record.cors))


async def handle_delete_bucket_cors(ctx: S3Context) -> Response:
    await ctx.owned_bucket()
    await ctx.run(ctx.store.set_bucket_cors, ctx.bucket, None)
    return Response(status_code=204)


def _requested_headers(ctx: S3Context) -> list[str]:
    raw = ctx.headers.get("access-control-request-headers", "")
    return [h.strip().lower() for h in raw.split(",") if h.strip()]


async def handle_preflight(ctx: S3Context) -> Response:
    """OPTIONS: allowed only by a matching rule of the bucket; no credentials are involved."""
    origin, method = ctx.headers.get("origin"), ctx.headers.get("access-control-request-method")
    if not origin:
        raise S3Error(S3Code.BadRequest, "Insufficient information. Origin request header needed.")
    if not method:
        raise S3Error(S3Code.AccessDenied, "Invalid Access-Control-Request-Method header.")
    try:
        record = await ctx.run(ctx.store.get_bucket, ctx.bucket)
    except NoSuchBucket:
        record = None
    requested = _requested_headers(ctx)
    rule = cors.match(record.cors if record else None, origin, method, requested)
    if rule is None:
        raise S3Error(
            S3Code.AccessDenied,
            "CORSResponse: This CORS request is not allowed. This is usually because the "
            "evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers "
            "are not whitelisted by the resource's CORS spec.",
        )
    return Response(status_code=200, headers=cors.response_headers(rule, origin, True, requested))
