"""Get/Put/DeleteObjectTagging, of the current version or the one `versionId` names, and
Get/Put/DeleteBucketTagging, kept in the bucket's record.

https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObjectTagging.html,
https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketTagging.html
"""

from __future__ import annotations

from starlette.responses import Response

from objstore import BucketRecord

from .. import tagging
from ..context import S3Context, version_headers, xml_response
from ..errors import S3Code, S3Error
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


async def handle_get_bucket_tagging(ctx: S3Context) -> Response:
    """NoSuchTagSet (404) for a bucket without tags, as AWS answers it."""
    record = await ctx.owned_bucket()
    if not record.tags:
        raise S3Error(S3Code.NoSuchTagSet, BucketName=ctx.bucket)
    return xml_response("Tagging", tagging.to_xml(record.tags))


async def handle_put_bucket_tagging(ctx: S3Context) -> Response:
    """Replaces the whole set (an empty one removes it); 204, as AWS answers it."""
    await ctx.owned_bucket()
    tags = tagging.from_xml(await ctx.read_xml("Tagging", force_list=("Tag",)), tagging.BUCKET)
    await ctx.run(ctx.store.set_bucket_tags, ctx.bucket, tags)
    return Response(status_code=204)


async def handle_delete_bucket_tagging(ctx: S3Context) -> Response:
    await ctx.owned_bucket()
    await ctx.run(ctx.store.set_bucket_tags, ctx.bucket, {})
    return Response(status_code=204)
