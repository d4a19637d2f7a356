"""Bucket lifecycle: Put/Get/DeleteBucketLifecycleConfiguration. The rules are enforced by the
engine's sweep (`objstore.lifecycle`), run by the server in the background and by `pyblob gc`.

https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketLifecycleConfiguration.html,
https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketLifecycleConfiguration.html,
https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteBucketLifecycle.html
"""

from __future__ import annotations

from starlette.responses import Response

from objstore.lifecycle import from_rows

from .. import lifecycle
from ..context import S3Context, xml_response
from ..errors import S3Code, S3Error


async def handle_put_bucket_lifecycle_configuration(ctx: S3Context) -> Response:
    """Replaces the whole configuration; the engine checks IDs, Days and Dates (InvalidArgument)."""
    await ctx.owned_bucket()
    doc = await ctx.read_xml("LifecycleConfiguration", force_list=lifecycle.FORCE_LIST)
    await ctx.run(ctx.store.set_bucket_lifecycle, ctx.bucket, lifecycle.parse_rules(doc))
    return Response(status_code=200)


async def handle_get_bucket_lifecycle_configuration(ctx: S3Context) -> Response:
    record = await ctx.owned_bucket()
    if not record.lifecycle:
        raise S3Error(S3Code.NoSuchLifecycleConfiguration, BucketName=ctx.bucket)
    return xml_response("LifecycleConfiguration", lifecycle.rules_xml(from_rows(record.lifecycle)))


async def handle_delete_bucket_lifecycle(ctx: S3Context) -> Response:
    await ctx.owned_bucket()
    await ctx.run(ctx.store.set_bucket_lifecycle, ctx.bucket, None)
    return Response(status_code=204)
