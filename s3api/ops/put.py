"""PutObject: stream the body into the engine, verify every digest the client gave, then commit.

Also the conditional-write headers of every write (PutObject, CopyObject, CompleteMultipartUpload),
taken as AWS takes them (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html):
`If-None-Match` only as `*`, `If-Match` only as an ETag, never both; other values answer NotImplemented,
as AWS was measured answering them. The engine judges them atomically (objstore/conditions.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from starlette.responses import Response

from objstore import ObjectRecord
from objstore.conditions import ALWAYS, ANY, Precondition
from objstore.errors import PreconditionFailed
from objstore.limits import human
from objstore.objects import ObjectWriter

from .. import checksums, tagging
from ..body import Payload
from ..conditional import quoted
from ..context import S3Context, version_headers
from ..errors import S3Code, S3Error
from ..http import LOOP_READ_MAX, request_attributes

SMALL_BODY_MAX = LOOP_READ_MAX  # bodies up to this are read whole before the engine sees them

UNSUPPORTED_HEADERS = (
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-object-lock-mode",
)


def reject_unsupported(ctx: S3Context) -> None:
    for name in UNSUPPORTED_HEADERS:
        if name in ctx.headers:
            raise S3Error(S3Code.NotImplemented, f"pyblob does not support {name}.")


def not_implemented(header: str, why: str) -> S3Error:
    """AWS's answer to a conditional header it does not take (measured: 501 with the header named)."""
    return S3Error(S3Code.NotImplemented, Header=header, additionalMessage=why)


def etag_value(header: str) -> str:
    """An ETag as a condition gives it, quoted or not."""
    return header.strip().strip('"')


def write_condition(ctx: S3Context) -> Precondition:
    """The If-None-Match / If-Match of a write; NotImplemented for what AWS refuses."""
    none_match, match = ctx.headers.get("if-none-match"), ctx.headers.get("if-match")
    if none_match is not None and match is not None:
        raise not_implemented("If-Match,If-None-Match", "Multiple conditional request headers present in the request")
    if none_match is not None:
        if none_match.strip() != ANY:
            raise not_implemented(
                "If-None-Match", "We don't accept the provided value of If-None-Match header for this API"
            )
        return Precondition(if_none_match=True)
    if match is not None:
        if match.strip() == ANY:
            raise not_implemented("If-Match", "We don't accept the provided value of If-Match header for this API")
        return Precondition(if_match=etag_value(match))
    return ALWAYS


@contextmanager
def condition_errors(condition: Precondition) -> Iterator[None]:
    """PreconditionFailed as AWS words it, naming the header that failed (<Condition>)."""
    try:
        yield
    except PreconditionFailed as e:
        named = "If-Match" if condition.if_match is not None else "If-None-Match"
        raise S3Error(S3Code.PreconditionFailed, Condition=named) from e


async def stream_into(ctx: S3Context, writer: ObjectWriter, payload: Payload) -> dict[str, str]:
    """Feed the body to `writer` and verify it; returns the checksums to store. Caller closes `writer`."""
    async for piece in payload.pieces():
        await ctx.run(writer.write, piece)
    content = await ctx.run(writer.finish)
    checksums.verify(ctx.headers, payload.trailers, content.md5, content.checksums)
    return checksums.given_values(ctx.headers, payload.trailers, content.checksums)


def _store_small(
    ctx: S3Context, writer: ObjectWriter, payload: Payload, body: bytes, commit: Callable[[], ObjectRecord]
) -> tuple[ObjectRecord, dict[str, str]]:
    """`stream_into` and the commit for a body already read, on one worker thread."""
    try:
        writer.write(body)
        content = writer.finish()
        checksums.verify(ctx.headers, payload.trailers, content.md5, content.checksums)
        return commit(), checksums.given_values(ctx.headers, payload.trailers, content.checksums)
    finally:
        writer.close()  # releases the reservation here too; the caller's close is then a no-op


async def handle_put_object(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html"""
    bucket = await ctx.owned_bucket()
    reject_unsupported(ctx)
    condition = write_condition(ctx)
    content_type, standard, meta = request_attributes(ctx.headers)
    tags = tagging.from_header(ctx.headers.get("x-amz-tagging"))
    payload = ctx.payload()
    payload.require_length()
    ceiling = ctx.config.max_single_put
    if payload.declared is not None and payload.declared > ceiling:
        raise S3Error(
            S3Code.EntityTooLarge,
            f"Your proposed upload of {payload.declared} bytes exceeds the maximum of "
            f"{human(ceiling)} for one PUT; use a multipart upload.",
        )
    algorithms = checksums.with_default(checksums.requested(ctx.headers))
    small = payload.declared is not None and payload.declared <= SMALL_BODY_MAX
    opening = (ctx.store.open_writer, ctx.bucket, ctx.key, algorithms, payload.declared, 0, ceiling)
    # Opening a writer reads a few rows (and writes a volatile, unsynced reservation under a quota):
    # on the loop for a small body, whose whole PUT then takes one thread hand-off.
    writer = ctx.lookup(*opening) if small else await ctx.run(*opening)

    def commit() -> ObjectRecord:
        return writer.commit(
            content_type, standard, meta, condition.if_none_match, "FULL_OBJECT", tags, if_match=condition.if_match
        )

    try:
        if small:
            # Read on the loop, then write, verify, commit and close in one thread call: one
            # hand-off for a small PUT instead of one per step (docs/benchmarks.md, "Serving").
            body = b"".join([piece async for piece in payload.pieces()])
            with condition_errors(condition):
                record, kept = await ctx.run(_store_small, ctx, writer, payload, body, commit)
        else:
            kept = await stream_into(ctx, writer, payload)
            with condition_errors(condition):
                record = await ctx.run(commit)
    finally:
        if small:
            writer.close()  # nothing staged: only the reservation to release, a volatile row
        else:
            await ctx.run(writer.close)
    headers = {"etag": quoted(record.etag), **version_headers(bucket, record)}
    headers.update({f"x-amz-checksum-{alg.lower()}": v for alg, v in kept.items()})
    if kept:
        headers["x-amz-checksum-type"] = "FULL_OBJECT"
    return Response(status_code=200, headers=headers)
