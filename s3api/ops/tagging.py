"""Get/Put/DeleteObjectTagging, of the current version or the one `versionId` names.

https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObjectTagging.html
"""

from __future__ import annotations

from starlette.responses import Response

from objstore import BucketRecord

from .. import tagging
from ..context import S3Context, version_headers, xml_response
from .get import load_object


async def handle_get_object_tagging(ctx: S3Context) -> Response:
    bucket, record = await load_object(ctx)
    return xml_response("Tagging", tagging.to_xml(record.tags), headers=version_headers(bucket, record))


async def handle_put_object_tagging(ctx: S3Context) -> Response:
    bucket, _ = await load_object(ctx)
    tags = tagging.from_xml(await ctx.read_xml("Tagging", force_list=("Tag",)))
    return await _set_tags(ctx, bucket, tags, 200)


async def handle_delete_object_tagging(ctx: S3Context) -> Response:
    bucket, _ = await load_object(ctx)
    return await _set_tags(ctx, bucket, {}, 204)


async def _set_tags(ctx: S3Context, bucket: BucketRecord, tags: dict[str, str], status: int) -> Response:
    record = await ctx.run(ctx.store.set_object_tags, ctx.bucket, ctx.key, tags, ctx.version_id())
    return Response(status_code=status, headers=version_headers(bucket, record))
