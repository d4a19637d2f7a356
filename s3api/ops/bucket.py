"""Bucket operations: ListBuckets, CreateBucket, DeleteBucket, HeadBucket, location, versioning, ACL."""

from __future__ import annotations

import re

from starlette.responses import Response

from objstore import versions
from objstore.errors import BucketAlreadyOwnedByYou

from ..context import S3Context, owner_xml, xml_response
from ..errors import S3Code, S3Error
from ..http import iso8601
from ..xml import parse

MAX_CREATE_BODY = 64 * 1024
_IP_LIKE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^(EU|[a-z]{2}(-[a-z]+)+-[0-9]{1,2})$")  # AWS's names (and the legacy "EU")


def validate_bucket_name(name: str, reserved: frozenset[str]) -> None:
    """S3's naming rules (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html)."""
    bad = (
        not _NAME.match(name)
        or ".." in name
        or ".-" in name
        or "-." in name
        or _IP_LIKE.match(name)
        or name.startswith(("xn--", "sthree-", "amzn-s3-demo-"))
        or name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"))
    )
    if bad:
        raise S3Error(S3Code.InvalidBucketName, "The specified bucket is not valid.", BucketName=name)
    if name in reserved:
        raise S3Error(
            S3Code.InvalidBucketName, f"The bucket name {name!r} is reserved for pyblob's own routes.", BucketName=name
        )


async def handle_list_buckets(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListBuckets.html"""
    buckets = await ctx.run(ctx.store.list_buckets, ctx.user)
    entries = [
        {"Name": b.name, "CreationDate": iso8601(b.created), "BucketRegion": b.region}
        for b in sorted(buckets, key=lambda b: b.name)
    ]
    return xml_response("ListAllMyBucketsResult", {"Owner": owner_xml(ctx.user), "Buckets": {"Bucket": entries}})


async def handle_create_bucket(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html

    The bucket's region is its LocationConstraint (any well-formed region name: one server stands
    for whichever region clients name), else the server's. Creating again a bucket you own answers
    200 when it is in us-east-1, as AWS still does there, and BucketAlreadyOwnedByYou elsewhere.
    """
    validate_bucket_name(ctx.bucket, ctx.config.reserved_buckets)
    region = await _location_constraint(ctx) or ctx.config.region
    try:
        await ctx.run(ctx.store.create_bucket, ctx.user, ctx.bucket, region)
    except BucketAlreadyOwnedByYou:
        if (await ctx.owned_bucket()).region != "us-east-1":
            raise
    return Response(status_code=200, headers={"location": f"/{ctx.bucket}"})


async def _location_constraint(ctx: S3Context) -> str:
    raw = await ctx.payload().read_all(MAX_CREATE_BODY)
    if not raw.strip():
        return ""
    location = parse(raw, "CreateBucketConfiguration").get("LocationConstraint") or ""
    if not isinstance(location, str) or (location and not _REGION.match(location)):
        raise S3Error(
            S3Code.InvalidLocationConstraint,
            "The specified location-constraint is not valid",
            LocationConstraint=str(location),
        )
    return location


async def handle_delete_bucket(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteBucket.html"""
    await ctx.owned_bucket()
    await ctx.run(ctx.store.delete_bucket, ctx.bucket)
    return Response(status_code=204)


async def handle_head_bucket(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html"""
    record = await ctx.owned_bucket()
    return Response(status_code=200, headers={"x-amz-bucket-region": record.region})


async def handle_get_bucket_location(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketLocation.html

    us-east-1 is answered as an empty LocationConstraint, as AWS does.
    """
    record = await ctx.owned_bucket()
    region = "" if record.region == "us-east-1" else record.region
    return xml_response("LocationConstraint", {"#text": region} if region else {})


async def handle_get_bucket_versioning(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketVersioning.html

    A bucket that never had versioning answers an empty configuration, as AWS does.
    """
    record = await ctx.owned_bucket()
    return xml_response("VersioningConfiguration", {"Status": record.versioning} if record.versioning else {})


async def handle_put_bucket_versioning(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketVersioning.html

    Enabled or Suspended. MFA delete is not supported: asking for it answers NotImplemented.
    """
    await ctx.owned_bucket()
    if "x-amz-mfa" in ctx.headers:
        raise S3Error(S3Code.NotImplemented, "pyblob does not support MFA delete (x-amz-mfa).")
    doc = await ctx.read_xml("VersioningConfiguration")
    mfa = doc.get("MfaDelete") or doc.get("MFADelete")
    if mfa not in (None, "Disabled"):
        raise S3Error(S3Code.NotImplemented, "pyblob does not support MFA delete; MfaDelete may only be Disabled.")
    status = doc.get("Status")
    if status is None:
        raise S3Error(
            S3Code.IllegalVersioningConfigurationException,
            "The Versioning element must be specified: Status is Enabled or Suspended.",
        )
    if status not in versions.STATES:
        raise S3Error(
            S3Code.MalformedXML,
            "The XML you provided was not well-formed or did not validate against our "
            "published schema: Status is Enabled or Suspended.",
        )
    await ctx.run(ctx.store.set_bucket_versioning, ctx.bucket, status)
    return Response(status_code=200)


async def handle_get_bucket_acl(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketAcl.html: the owner has full control."""
    await ctx.owned_bucket()
    return xml_response("AccessControlPolicy", acl_body(ctx.user))


def acl_body(user: str) -> dict[str, object]:
    grant = {
        "Grantee": {
            "@xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "@xsi:type": "CanonicalUser",
            **owner_xml(user),
        },
        "Permission": "FULL_CONTROL",
    }
    return {"Owner": owner_xml(user), "AccessControlList": {"Grant": [grant]}}
