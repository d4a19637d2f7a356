"""CopyObject: a new object sharing the source's chunks (no data is copied).

https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html. The `x-amz-copy-source-if-*`
headers are asked of the source; `If-None-Match` / `If-Match` of the destination, as for PutObject.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from starlette.responses import Response

from objstore import ObjectRecord
from objstore.errors import InvalidArgument
from objstore.versions import NULL, check_version_id

from .. import tagging
from ..conditional import check_conditions, quoted
from ..context import S3Context, version_headers, xml_response
from ..errors import S3Code, S3Error
from ..http import iso8601, request_attributes
from .put import condition_errors, reject_unsupported, write_condition

COPY_CONDITIONS = {
    "x-amz-copy-source-if-match": "if-match",
    "x-amz-copy-source-if-none-match": "if-none-match",
    "x-amz-copy-source-if-modified-since": "if-modified-since",
    "x-amz-copy-source-if-unmodified-since": "if-unmodified-since",
}


@dataclass(frozen=True)
class CopySource:
    """The object `x-amz-copy-source` names: a bucket, a key and maybe a version."""

    bucket: str
    key: str
    version_id: str | None  # None: the current version


def parse_copy_source(value: str) -> CopySource:
    """`x-amz-copy-source`: "[/]bucket/key[?versionId=id]", URL-encoded."""
    path, _, query = value.partition("?")
    version = None
    if query:
        name, _, version = query.partition("=")
        if name != "versionId":
            raise S3Error(
                S3Code.InvalidArgument, "Unsupported copy source parameter.", ArgumentName="x-amz-copy-source"
            )
        try:
            check_version_id(version)
        except InvalidArgument as e:
            raise S3Error(
                S3Code.InvalidArgument, "Invalid version id specified", ArgumentName="x-amz-copy-source"
            ) from e
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    if not bucket or not key:
        raise S3Error(
            S3Code.InvalidArgument,
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            ArgumentName="x-amz-copy-source",
        )
    return CopySource(bucket, key, version)


def source_version_headers(source: CopySource, record: ObjectRecord) -> dict[str, str]:
    """`x-amz-copy-source-version-id`, when the copy named a version or copied a non-null one."""
    if source.version_id is None and record.version_id == NULL:
        return {}
    return {"x-amz-copy-source-version-id": record.version_id}


def source_conditions(ctx: S3Context) -> dict[str, str]:
    return {plain: ctx.headers[h] for h, plain in COPY_CONDITIONS.items() if h in ctx.headers}


def check_source(conditions: dict[str, str]) -> Any:
    """A check for the source record: any copy-source condition that fails → 412."""

    def check(source: ObjectRecord) -> None:
        if conditions and check_conditions(conditions, source) is not None:
            raise S3Error(S3Code.PreconditionFailed, Condition=", ".join(f"x-amz-copy-source-{c}" for c in conditions))

    return check


async def owned_source(ctx: S3Context) -> CopySource:
    source = parse_copy_source(ctx.headers["x-amz-copy-source"])
    record = await ctx.run(ctx.store.get_bucket, source.bucket)
    if record.owner != ctx.user:
        raise S3Error(S3Code.AccessDenied, resource=f"/{source.bucket}/{source.key}")
    return source


def _directive(ctx: S3Context, header: str) -> str:
    directive = ctx.headers.get(header, "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error(S3Code.InvalidArgument, f"Unknown {header}.", ArgumentName=header)
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
        raise S3Error(
            S3Code.InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata, storage class, website redirect location or "
            "encryption attributes.",
        )
    return replace or None


async def handle_copy_object(ctx: S3Context) -> Response:
    """Copying an older version onto its own key is how a version is restored: allowed as at AWS."""
    bucket = await ctx.owned_bucket()
    reject_unsupported(ctx)
    condition = write_condition(ctx)
    source = await owned_source(ctx)
    replace = _replacement(ctx, (source.bucket, source.key, source.version_id) == (ctx.bucket, ctx.key, None))
    with condition_errors(condition):
        record, copied = await ctx.run(
            ctx.store.copy_object,
            source.bucket,
            source.key,
            ctx.bucket,
            ctx.key,
            replace,
            check_source(source_conditions(ctx)),
            source.version_id,
            condition,
        )
    body: dict[str, Any] = {"ETag": quoted(record.etag), "LastModified": iso8601(record.created)}
    body.update({f"Checksum{alg}": v for alg, v in record.checksums.items()})
    headers = {**source_version_headers(source, copied), **version_headers(bucket, record)}
    return xml_response("CopyObjectResult", body, headers=headers)
