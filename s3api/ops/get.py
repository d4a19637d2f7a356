"""GetObject and HeadObject: versions, conditional requests, a single Range or a part, response overrides, checksums."""

from __future__ import annotations

from starlette.responses import Response, StreamingResponse

from objstore import BucketRecord, ObjectRecord
from objstore.limits import MAX_PART_NUMBER
from objstore.manifests import PartInfo

from ..activecontent import SANDBOX_HEADERS, needs_sandbox
from ..conditional import not_modified, parse_range, span
from ..context import S3Context, version_headers
from ..errors import S3Code, S3Error
from ..http import LOOP_READ_MAX, OVERRIDES, WHOLE_READ_MAX, check_header_value, object_headers, parse_count
from ..objectbody import ObjectBody, offers_zero_copy


async def load_object(ctx: S3Context) -> tuple[BucketRecord, ObjectRecord]:
    """The request's bucket and the version it names (the current one without `versionId`)."""
    bucket = await ctx.owned_bucket()
    record = ctx.lookup(ctx.store.head_object, ctx.bucket, ctx.key, ctx.version_id())
    return bucket, record


def part_number(ctx: S3Context) -> int | None:
    """The `partNumber` of a GetObject/HeadObject: 1-10,000, and never with a Range."""
    raw = ctx.query.get("partNumber")
    if raw is None:
        return None
    number = parse_count(raw)
    if number is None or not 1 <= number <= MAX_PART_NUMBER:
        raise S3Error(
            S3Code.InvalidArgument,
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
            ArgumentName="partNumber",
            ArgumentValue=raw,
        )
    if "range" in ctx.headers:
        raise S3Error(S3Code.InvalidRequest, "Cannot specify both Range header and partNumber query parameter")
    return number


def _headers(
    ctx: S3Context, bucket: BucketRecord, record: ObjectRecord, ranged: bool, extra: dict[str, str]
) -> dict[str, str]:
    checksum_mode = ctx.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED" and not ranged
    headers = object_headers(record, checksum_mode)
    headers.update(version_headers(bucket, record))
    headers.update(extra)
    if needs_sandbox(headers.get("content-type", "")):
        headers.update(SANDBOX_HEADERS)  # see activecontent.py: no user script on our origin
    return headers


def overrides(ctx: S3Context) -> dict[str, str]:
    """The response-* parameters, as headers; each must be one (a CR/LF would split the response)."""
    found: dict[str, str] = {}
    for param, header in OVERRIDES.items():
        if param in ctx.query:
            value = ctx.query[param]
            try:
                check_header_value(value)
            except S3Error:
                shown = {"ArgumentValue": value} if value.isprintable() else {}  # XML cannot carry control characters
                raise S3Error(
                    S3Code.InvalidArgument,
                    "Header value cannot be represented using ISO-8859-1.",
                    ArgumentName=param,
                    **shown,
                ) from None
            found[header] = value
    return found


async def handle_get_object(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html"""
    return await _serve(ctx, with_body=True)


async def handle_head_object(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html"""
    return await _serve(ctx, with_body=False)


async def _serve(ctx: S3Context, with_body: bool) -> Response:
    number, extra = part_number(ctx), overrides(ctx)
    bucket, record = await load_object(ctx)
    fresh = not_modified(ctx.headers, record)  # a failed condition raises ConditionFailed: 412
    if fresh is not None:
        return Response(status_code=304, headers=fresh)
    part = ctx.lookup(ctx.store.object_part, record, number) if number is not None else None
    rng = _part_range(record, part) if part is not None else parse_range(ctx.headers.get("range"), record.size)
    sent = span(rng, record.size)
    whole = rng is None or (part is not None and not record.parts_count)  # part 1 of a single PUT is all of it
    headers = _headers(ctx, bucket, record, not whole, extra)
    if part is None:
        headers.pop("x-amz-mp-parts-count", None)  # S3 tells the part count only to part requests
    elif record.parts_count:
        headers.update(_part_checksums(ctx, record, part))
    headers.update(sent.headers())
    if not with_body:
        return Response(status_code=sent.status, headers=headers)
    length = sent.end - sent.start
    if length <= LOOP_READ_MAX:  # inline in LMDB, or one chunk file in the page cache: microseconds
        body = b"".join(ctx.store.read_object(record, sent.start, sent.end))
        return Response(body, status_code=sent.status, headers=headers)
    if offers_zero_copy(ctx.request.scope):  # sent from the chunk files by the kernel
        return ObjectBody(ctx.store.read_regions(record, sent.start, sent.end), sent.status, headers)
    if length <= WHOLE_READ_MAX:  # one thread hand-off for all of it, not one per piece
        body = await ctx.run(_read_all, ctx, record, sent.start, sent.end)
        return Response(body, status_code=sent.status, headers=headers)
    return StreamingResponse(
        ctx.store.read_object(record, sent.start, sent.end), status_code=sent.status, headers=headers
    )


def _read_all(ctx: S3Context, record: ObjectRecord, start: int, end: int) -> bytes:
    return b"".join(ctx.store.read_object(record, start, end))


def _part_range(record: ObjectRecord, part: PartInfo) -> tuple[int, int] | None:
    """The bytes of a part, as a range: part 1 of an object not uploaded in parts is a range over
    all of it, as at AWS (206 with Content-Range); an empty object has no range to give."""
    return (part.offset, part.offset + part.size) if part.size else None


def _part_checksums(ctx: S3Context, record: ObjectRecord, part: PartInfo) -> dict[str, str]:
    """With `x-amz-checksum-mode: ENABLED`, a part's own checksum where it verifies what is sent: the
    parts of a COMPOSITE object, or the only part of one (a FULL_OBJECT one has none per part)."""
    if ctx.headers.get("x-amz-checksum-mode", "").upper() != "ENABLED":
        return {}
    if record.checksum_type != "COMPOSITE" and record.parts_count != 1:
        return {}
    found = {f"x-amz-checksum-{alg.lower()}": part.checksums[alg] for alg in record.checksums if alg in part.checksums}
    return {**found, "x-amz-checksum-type": record.checksum_type} if found else {}
