"""GetObjectAttributes: what HeadObject and ListParts tell, in one call, by version too.

https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObjectAttributes.html. The attributes asked
for in `x-amz-object-attributes` are answered in AWS's order. `ObjectParts` is for objects uploaded
in parts; as at AWS, the parts themselves are listed only when the object has a COMPOSITE additional
checksum (the per-part values are what verifies it; a FULL_OBJECT checksum needs none), paged by
`x-amz-max-parts` / `x-amz-part-number-marker`. A COMPOSITE checksum is given without the `-N`
part count that HeadObject appends: the count is in `PartsCount`.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from objstore import ObjectRecord
from objstore.limits import MAX_PART_NUMBER

from ..conditional import http_date
from ..context import S3Context, version_headers, xml_response
from ..errors import S3Code, S3Error
from ..http import parse_count
from .get import load_object

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
MAX_PARTS = 1000


def requested_attributes(ctx: S3Context) -> set[str]:
    raw = ctx.headers.get("x-amz-object-attributes", "")
    names = {name.strip() for name in raw.split(",") if name.strip()}
    if not names:
        raise S3Error(
            S3Code.InvalidArgument,
            "x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty",
            ArgumentName="x-amz-object-attributes",
        )
    unknown = names - set(ATTRIBUTES)
    if unknown:
        raise S3Error(
            S3Code.InvalidArgument,
            "Invalid attribute name specified.",
            ArgumentName="x-amz-object-attributes",
            ArgumentValue=sorted(unknown)[0],
        )
    return names


def _number(ctx: S3Context, header: str, default: int, most: int) -> int:
    raw = ctx.headers.get(header, str(default))
    value = parse_count(raw)
    if value is None:
        raise S3Error(
            S3Code.InvalidArgument,
            f"{header} must be a non-negative integer",
            ArgumentName=header,
            ArgumentValue=raw[:64],
        )
    return min(value, most)


async def handle_get_object_attributes(ctx: S3Context) -> Response:
    wanted = requested_attributes(ctx)
    marker = _number(ctx, "x-amz-part-number-marker", 0, MAX_PART_NUMBER)
    max_parts = _number(ctx, "x-amz-max-parts", MAX_PARTS, MAX_PARTS)
    bucket, record = await load_object(ctx)
    body: dict[str, Any] = {}
    if "ETag" in wanted:
        body["ETag"] = record.etag
    if "Checksum" in wanted and record.checksums:
        values = {f"Checksum{alg}": v.split("-")[0] for alg, v in record.checksums.items()}
        body["Checksum"] = {**values, "ChecksumType": record.checksum_type}
    if "ObjectParts" in wanted and record.parts_count:
        body["ObjectParts"] = await _object_parts(ctx, record, marker, max_parts)
    if "StorageClass" in wanted:
        body["StorageClass"] = "STANDARD"
    if "ObjectSize" in wanted:
        body["ObjectSize"] = str(record.size)
    headers = {"last-modified": http_date(record.created), **version_headers(bucket, record)}
    return xml_response("GetObjectAttributesResponse", body, headers=headers)


async def _object_parts(ctx: S3Context, record: ObjectRecord, marker: int, max_parts: int) -> dict[str, Any]:
    listed = bool(record.checksums) and record.checksum_type == "COMPOSITE"
    parts = await ctx.run(ctx.store.object_parts, record, marker, max_parts + 1) if listed else []
    page, truncated = parts[:max_parts], len(parts) > max_parts
    # `TotalPartsCount` in the SDKs is `PartsCount` on the wire (the API reference and the service model).
    body: dict[str, Any] = {"PartsCount": str(record.parts_count), "PartNumberMarker": str(marker)}
    if page:
        body["NextPartNumberMarker"] = str(page[-1].number)
    body.update({"MaxParts": str(max_parts), "IsTruncated": str(truncated).lower()})
    body["Part"] = [
        {
            **{f"Checksum{alg}": part.checksums[alg] for alg in record.checksums if alg in part.checksums},
            "PartNumber": str(part.number),
            "Size": str(part.size),
        }
        for part in page
    ]
    return body
