"""Multipart uploads: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts, ListMultipartUploads.

https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateMultipartUpload.html and siblings.
Completion joins the parts' chunk lists in the engine; no object data is copied.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from objstore.completion import CompletionChecks, default_checksum_type
from objstore.errors import NoSuchUpload, VersionIsDeleteMarker
from objstore.limits import MAX_PART_NUMBER, MIN_PART_SIZE
from objstore.records import CompletedUploadRecord, ObjectRecord, PartRecord, UploadRecord
from objstore.versions import NULL

from .. import checksums, tagging
from ..conditional import parse_range, quoted
from ..context import S3Context, owner_xml, xml_response
from ..errors import S3Code, S3Error
from ..http import iso8601, parse_count, request_attributes
from .copy import check_source, owned_source, source_conditions, source_version_headers
from .listing import _encoder, _max_keys
from .put import condition_errors, reject_unsupported, stream_into, write_condition

CHECKSUM_TYPES = ("COMPOSITE", "FULL_OBJECT")
# A Complete document naming 10,000 parts: a Part with its number, ETag and every checksum element
# S3 defines is under 400 bytes (one checksum, as SDKs send, under 200); 512 leaves room for indentation.
MAX_COMPLETE_BODY = MAX_PART_NUMBER * 512


async def _upload(ctx: S3Context) -> UploadRecord:
    """The request's upload, which must belong to its bucket and key (NoSuchUpload otherwise)."""
    bucket = await ctx.owned_bucket()
    upload_id = ctx.query.get("uploadId", "")
    upload = await ctx.run(ctx.store.multipart.get_upload, upload_id)
    if (upload.bucket, upload.key) != (ctx.bucket, ctx.key) or upload.bucket_id not in (0, bucket.id):
        raise NoSuchUpload(upload_id)
    return upload


def _part_number(ctx: S3Context) -> int:
    raw = ctx.query.get("partNumber", "")
    number = parse_count(raw)
    if number is None or not 1 <= number <= MAX_PART_NUMBER:
        raise S3Error(
            S3Code.InvalidArgument,
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
            ArgumentName="partNumber",
            ArgumentValue=raw[:64],
        )
    return number


async def handle_create_multipart_upload(ctx: S3Context) -> Response:
    await ctx.owned_bucket()
    reject_unsupported(ctx)
    content_type, headers, meta = request_attributes(ctx.headers)
    algorithm = ctx.headers.get("x-amz-checksum-algorithm")
    kind = ctx.headers.get("x-amz-checksum-type", "").upper() or None
    if algorithm is not None:
        algorithm = checksums.requested({"x-amz-checksum-algorithm": algorithm})[0]
    if kind is not None and kind not in CHECKSUM_TYPES:
        raise S3Error(S3Code.InvalidRequest, f"x-amz-checksum-type must be one of {CHECKSUM_TYPES}")
    upload = await ctx.run(
        ctx.store.multipart.create_upload,
        ctx.bucket,
        ctx.key,
        content_type=content_type,
        headers=headers,
        meta=meta,
        checksum_algorithm=algorithm,
        checksum_type=kind,
        tags=tagging.from_header(ctx.headers.get("x-amz-tagging")),
    )
    extra = {}
    if algorithm:
        extra = {"x-amz-checksum-algorithm": algorithm, "x-amz-checksum-type": kind or default_checksum_type(algorithm)}
    body = {"Bucket": ctx.bucket, "Key": ctx.key, "UploadId": upload.upload_id}
    return xml_response("InitiateMultipartUploadResult", body, headers=extra)


async def handle_upload_part(ctx: S3Context) -> Response:
    upload = await _upload(ctx)
    number = _part_number(ctx)
    algorithms = checksums.requested(ctx.headers)
    if upload.checksum_algorithm and upload.checksum_algorithm not in algorithms:
        algorithms.append(upload.checksum_algorithm)
    payload = ctx.payload()
    payload.require_length()
    writer = await ctx.run(ctx.store.multipart.open_part_writer, upload.upload_id, number, algorithms, payload.declared)
    try:
        kept = await stream_into(ctx, writer, payload)  # type: ignore[arg-type]
        part = await ctx.run(writer.commit)
    finally:
        await ctx.run(writer.close)
    headers = {"etag": quoted(part.etag)}
    headers.update({f"x-amz-checksum-{alg.lower()}": v for alg, v in kept.items() if alg in algorithms})
    return Response(status_code=200, headers=headers)


async def handle_upload_part_copy(ctx: S3Context) -> Response:
    """The source's bytes (or a range of them) stream into a new part; chunks dedupe on disk.
    A part that cannot fit is refused from the range's size, before a byte is copied."""
    upload = await _upload(ctx)
    number = _part_number(ctx)
    copy_source = await owned_source(ctx)
    try:
        source = await ctx.run(ctx.store.head_object, copy_source.bucket, copy_source.key, copy_source.version_id)
    except VersionIsDeleteMarker as e:
        raise S3Error(
            S3Code.InvalidRequest,
            "The source of a copy request may not specifically refer to a delete marker by version id.",
        ) from e
    check_source(source_conditions(ctx))(source)
    rng = _copy_range(ctx.headers.get("x-amz-copy-source-range"), source.size)
    start, end = rng or (0, source.size)
    checksums = [upload.checksum_algorithm] if upload.checksum_algorithm else []
    writer = await ctx.run(ctx.store.multipart.open_part_writer, upload.upload_id, number, checksums, end - start)
    try:
        await ctx.run(_copy_bytes, ctx, source, start, end, writer)
        part = await ctx.run(writer.commit)
    finally:
        await ctx.run(writer.close)
    body = {"ETag": quoted(part.etag), "LastModified": iso8601(part.created)}
    body.update({f"Checksum{alg}": v for alg, v in part.checksums.items()})
    return xml_response("CopyPartResult", body, headers=source_version_headers(copy_source, source))


def _copy_range(header: str | None, size: int) -> tuple[int, int] | None:
    if header is None:
        return None
    rng = parse_range(header, size)
    if rng is None or "-" not in header or header.strip().startswith("bytes=-") or header.strip().endswith("-"):
        raise S3Error(
            S3Code.InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last "
            "are the zero-based offsets of the first and last bytes to copy",
        )
    return rng


def _copy_bytes(ctx: S3Context, source: Any, start: int, end: int, writer: Any) -> None:
    for piece in ctx.store.read_object(source, start, end):
        writer.write(piece)


def _wanted_parts(doc: dict[str, Any]) -> tuple[list[tuple[int, str]], dict[int, dict[str, str]]]:
    """The part list of a Complete request: (number, ETag) pairs, and the checksums given per part."""
    parts = doc.get("Part") or []
    if not parts:
        raise S3Error(S3Code.MalformedXML, "CompleteMultipartUpload needs at least one Part.")
    wanted, sums = [], {}
    for p in parts:
        try:
            number, etag = int(p["PartNumber"]), str(p["ETag"])
        except (KeyError, TypeError, ValueError) as e:
            raise S3Error(S3Code.MalformedXML, "Each Part needs a PartNumber and an ETag.") from e
        wanted.append((number, etag))
        sums[number] = {
            k[len("Checksum") :].upper(): v
            for k, v in p.items()
            if k.startswith("Checksum") and k != "ChecksumType" and isinstance(v, str)
        }
    return wanted, sums


def _completion_checks(ctx: S3Context, part_sums: dict[int, dict[str, str]]) -> CompletionChecks:
    """What the request asserts besides the part list: checksums, their type, the object's size."""
    whole = {
        name[len(checksums.HEADER_PREFIX) :].upper(): value
        for name, value in ctx.headers.items()
        if name.startswith(checksums.HEADER_PREFIX) and name not in checksums.NOT_VALUES
    }
    kind = ctx.headers.get("x-amz-checksum-type", "").upper() or None
    if kind is not None and kind not in CHECKSUM_TYPES:
        raise S3Error(S3Code.InvalidRequest, f"x-amz-checksum-type must be one of {CHECKSUM_TYPES}")
    raw_size = ctx.headers.get("x-amz-mp-object-size")
    size = parse_count(raw_size) if raw_size is not None else None
    if raw_size is not None and size is None:
        raise S3Error(
            S3Code.InvalidArgument,
            "x-amz-mp-object-size must be a number of bytes",
            ArgumentName="x-amz-mp-object-size",
        )
    return CompletionChecks(part_sums, whole, kind, size)


async def handle_complete_multipart_upload(ctx: S3Context) -> Response:
    """Safe to retry: a Complete of an upload completed moments ago, with the same part list, gets
    the same answer (clients retry it after a timeout or a dropped connection).

    If-None-Match / If-Match are judged when the object is made visible, atomically. A retry of a
    Complete that succeeded is answered from memory without judging them again: its own first
    attempt is what made the key exist (or changed its ETag). One that failed left the upload in
    place, so its retry is judged afresh. AWS also answers 409 ConditionalRequestConflict when the
    key was written after the upload began even though the condition holds now; pyblob judges only
    the key as it is at completion, so it never answers 409.
    """
    bucket = await ctx.owned_bucket()
    condition = write_condition(ctx)
    raw = await ctx.payload().read_all(MAX_COMPLETE_BODY)
    doc = await ctx.parse_xml(raw, "CompleteMultipartUpload", ("Part",), MAX_COMPLETE_BODY)
    wanted, part_sums = _wanted_parts(doc)
    checks = _completion_checks(ctx, part_sums)
    upload_id = ctx.query.get("uploadId", "")
    try:
        upload = await _upload(ctx)
        with condition_errors(condition):
            done: ObjectRecord | CompletedUploadRecord = await ctx.run(
                ctx.store.multipart.complete_upload, upload.upload_id, wanted, MIN_PART_SIZE, checks, condition
            )
    except NoSuchUpload:
        done = await ctx.run(ctx.store.multipart.completed, upload_id, ctx.bucket, ctx.key, wanted)
    body: dict[str, Any] = {
        "Location": f"/{ctx.bucket}/{ctx.key}",
        "Bucket": ctx.bucket,
        "Key": ctx.key,
        "ETag": quoted(done.etag),
    }
    for alg, value in done.checksums.items():
        body[f"Checksum{alg}"] = value
        body["ChecksumType"] = done.checksum_type
    headers = {"x-amz-version-id": done.version_id} if bucket.versioning or done.version_id != NULL else {}
    return xml_response("CompleteMultipartUploadResult", body, headers=headers)


async def handle_abort_multipart_upload(ctx: S3Context) -> Response:
    upload = await _upload(ctx)
    await ctx.run(ctx.store.multipart.abort_upload, upload.upload_id)
    return Response(status_code=204)


async def handle_list_parts(ctx: S3Context) -> Response:
    upload = await _upload(ctx)
    marker = parse_count(ctx.query.get("part-number-marker", "0") or "0")
    if marker is None:
        raise S3Error(
            S3Code.InvalidArgument, "part-number-marker must be an integer", ArgumentName="part-number-marker"
        )
    max_parts = _max_keys(ctx, "max-parts")
    parts = [p for p in await ctx.run(ctx.store.multipart.list_parts, upload.upload_id) if p.number > marker]
    page, truncated = parts[:max_parts], len(parts) > max_parts
    body: dict[str, Any] = {
        "Bucket": ctx.bucket,
        "Key": ctx.key,
        "UploadId": upload.upload_id,
        "PartNumberMarker": str(marker),
        "MaxParts": str(max_parts),
        "IsTruncated": str(truncated).lower(),
    }
    if page:
        body["NextPartNumberMarker"] = str(page[-1].number)
    body["Part"] = [_part_xml(p) for p in page]
    body.update({"Initiator": owner_xml(upload.owner), "Owner": owner_xml(upload.owner), "StorageClass": "STANDARD"})
    if upload.checksum_algorithm:
        body["ChecksumAlgorithm"] = upload.checksum_algorithm
        body["ChecksumType"] = upload.checksum_type or default_checksum_type(upload.checksum_algorithm)
    return xml_response("ListPartsResult", body)


def _part_xml(p: PartRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "PartNumber": str(p.number),
        "LastModified": iso8601(p.created),
        "ETag": quoted(p.etag),
        "Size": str(p.size),
    }
    entry.update({f"Checksum{alg}": v for alg, v in p.checksums.items()})
    return entry


async def handle_list_multipart_uploads(ctx: S3Context) -> Response:
    bucket = await ctx.owned_bucket()
    enc, q = _encoder(ctx), ctx.query
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    key_marker, id_marker, max_uploads = (
        q.get("key-marker", ""),
        q.get("upload-id-marker", ""),
        _max_keys(ctx, "max-uploads"),
    )
    uploads = [
        u
        for u in await ctx.run(ctx.store.multipart.list_uploads, ctx.bucket)
        if u.key.startswith(prefix) and u.bucket_id in (0, bucket.id)  # not a deleted namesake's
    ]
    items = _roll_up(_after_markers(uploads, key_marker, id_marker), prefix, delimiter, max_uploads + 1, key_marker)
    truncated, items = len(items) > max_uploads, items[:max_uploads]
    entries = [i for i in items if isinstance(i, UploadRecord)]
    prefixes = [i for i in items if isinstance(i, str)]
    body: dict[str, Any] = {"Bucket": ctx.bucket, "KeyMarker": enc(key_marker), "UploadIdMarker": id_marker}
    if truncated and items:
        last = items[-1]
        body["NextKeyMarker"] = enc(last.key if isinstance(last, UploadRecord) else last)
        body["NextUploadIdMarker"] = last.upload_id if isinstance(last, UploadRecord) else ""
    body.update({"MaxUploads": str(max_uploads), "IsTruncated": str(truncated).lower(), "Prefix": enc(prefix)})
    if delimiter:
        body["Delimiter"] = enc(delimiter)
    body["Upload"] = [
        {
            "Key": enc(u.key),
            "UploadId": u.upload_id,
            "Initiator": owner_xml(u.owner),
            "Owner": owner_xml(u.owner),
            "StorageClass": "STANDARD",
            "Initiated": iso8601(u.created),
        }
        for u in entries
    ]
    body["CommonPrefixes"] = [{"Prefix": enc(p)} for p in prefixes]
    return xml_response("ListMultipartUploadsResult", body)


def _after_markers(uploads: list[UploadRecord], key_marker: str, id_marker: str) -> list[UploadRecord]:
    """Uploads after the markers: later keys, or the marker's key's uploads listed after the marker's.

    A key's uploads are listed in initiation order, as AWS lists them, so the upload-id marker is a
    position in that order: comparing the random ids would skip or repeat uploads between pages.
    """
    if not key_marker:
        return uploads
    later = [u for u in uploads if u.key > key_marker]
    same_ids = [u.upload_id for u in uploads if u.key == key_marker]
    if id_marker not in same_ids:
        return later
    return [u for u in uploads if u.key == key_marker][same_ids.index(id_marker) + 1 :] + later


def _roll_up(
    uploads: list[UploadRecord], prefix: str, delimiter: str, limit: int, key_marker: str = ""
) -> list[UploadRecord | str]:
    """Uploads and common prefixes in key order, at most `limit` of them.

    A common prefix that does not sort after the key marker was listed already (a page that ends on
    a prefix gives it as NextKeyMarker): listing it again would page forever.
    """
    items: list[UploadRecord | str] = []
    for u in uploads:
        cut = u.key.find(delimiter, len(prefix)) if delimiter else -1
        if cut >= 0:
            common = u.key[: cut + len(delimiter)]
            if (items and items[-1] == common) or common <= key_marker:
                continue
            item: UploadRecord | str = common
        else:
            item = u
        if len(items) >= limit:
            break
        items.append(item)
    return items
