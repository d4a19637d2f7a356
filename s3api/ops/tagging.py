"""Get/Put/DeleteObjectTagging. https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObjectTagging.html"""

from __future__ import annotations

from starlette.responses import Response

from .. import tagging
from ..context import S3Context, xml_response
from .get import load_object


async def handle_get_object_tagging(ctx: S3Context) -> Response:
    record = await load_object(ctx)
    return xml_response("Tagging", tagging.to_xml(record.tags))


async def handle_put_object_tagging(ctx: S3Context) -> Response:
    await load_object(ctx)
    tags = tagging.from_xml(await ctx.read_xml("Tagging", force_list=("Tag",)))
    await ctx.run(ctx.store.set_object_tags, ctx.bucket, ctx.key, tags)
    return Response(status_code=200)


async def handle_delete_object_tagging(ctx: S3Context) -> Response:
    await load_object(ctx)
    await ctx.run(ctx.store.set_object_tags, ctx.bucket, ctx.key, {})
    return Response(status_code=204)
