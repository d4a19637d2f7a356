"""PostObject: browser-based uploads, a multipart/form-data body whose policy says what it may store.

https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html; the policy and its signature at
.../sigv4-HTTPPOSTConstructPolicy.html and .../sigv4-authentication-HTTPPOST.html. The request has
no Authorization header: the form's fields, which come before the `file` part, carry the credential,
the signed policy, the key and the object's attributes. They are read (bounded) and checked, then the
file streams into the store; fields after the file are ignored, as at AWS.
"""

from __future__ import annotations

import posixpath
import re
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from objstore.limits import human
from objstore.records import ObjectRecord
from objstore.store import ObjectWriter

from .. import checksums, policy, sigv4
from ..auth import Identity
from ..body import BATCH
from ..context import S3Context, version_headers
from ..errors import S3Error
from ..formdata import Event, FormParser, PartData, PartEnd, PartStart, boundary_of
from ..http import quoted, request_attributes
from ..xml import render
from .put import UNSUPPORTED_HEADERS

MAX_FIELDS = 20 * 1024  # names and values of every field but the file, as AWS bounds the form
_CREDENTIAL = re.compile(r"^(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request$")
SUCCESS_STATUSES = {"200": 200, "201": 201, "204": 204}  # anything else answers 204, as AWS does
HARMLESS_ACLS = {"private", "bucket-owner-full-control"}  # pyblob objects are private to the owner
NOT_MULTIPART = "Bucket POST must be of the enclosure-type multipart/form-data"

Events = AsyncGenerator[Event, None]


@dataclass
class Form:
    fields: dict[str, str]  # lower-case names
    filename: str  # of the file part, for ${filename}

    def key(self) -> str:
        """The object key, with ${filename} replaced by the file's name (without any path)."""
        if "key" not in self.fields:
            raise S3Error("InvalidArgument", "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
                          ArgumentName="key", ArgumentValue="")
        name = posixpath.basename(self.filename.replace("\\", "/"))
        return self.fields["key"].replace("${filename}", name)


async def handle_post_object(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html"""
    boundary = boundary_of(ctx.headers.get("content-type", ""))
    if boundary is None:
        raise S3Error("PreconditionFailed", NOT_MULTIPART, Condition=NOT_MULTIPART)
    async with aclosing(body_events(ctx.request, FormParser(boundary))) as events:
        form = await read_fields(events)
        key = form.key()
        doc = await authorize(ctx, form.fields, key)
        reject_unsupported(form.fields)
        record = await store_file(ctx, events, form, key, doc)
    response = success_response(ctx, form.fields, key, record.etag)
    response.headers.update(version_headers(await ctx.owned_bucket(), record))
    return response


async def body_events(request: Request, parser: FormParser) -> Events:
    try:
        async for data in request.stream():
            for event in parser.feed(data):
                yield event
    except ClientDisconnect as e:
        raise S3Error("IncompleteBody", "The client closed the connection before the body ended.") from e
    parser.finish()


async def read_fields(events: Events) -> Form:
    """The fields before the `file` part, at most MAX_FIELDS bytes in all, each given once."""
    fields: dict[str, str] = {}
    name, value, total = "", bytearray(), 0
    async for event in events:
        if isinstance(event, PartStart):
            if event.name.lower() == "file":
                return Form(fields, event.filename or "")
            name, value = event.name.lower(), bytearray()
            total += len(name)
        elif isinstance(event, PartData):
            value += event.data
            total += len(event.data)
        else:
            fields[name] = field_value(fields, name, bytes(value))
        if total > MAX_FIELDS:
            raise S3Error("MaxPostPreDataLengthExceededError", "Your POST request fields preceding the upload file were too large.")
    raise S3Error("InvalidArgument", "POST requires exactly one file upload per request.", ArgumentName="file", ArgumentValue="0")


def field_value(fields: dict[str, str], name: str, raw: bytes) -> str:
    if name in fields:
        raise S3Error("InvalidArgument", f"The form field {name} was given more than once.", ArgumentName=name)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise S3Error("InvalidArgument", f"The form field {name} is not UTF-8.", ArgumentName=name) from e


async def authorize(ctx: S3Context, fields: dict[str, str], key: str) -> policy.Policy:
    """Check the signature of the policy, then the policy, then that the signer owns the bucket."""
    if "policy" not in fields:
        raise S3Error("AccessDenied", "Access Denied")  # an anonymous upload: pyblob has no public buckets
    if fields.get("x-amz-algorithm") != sigv4.ALGORITHM:
        raise S3Error("InvalidArgument", "POST form fields x-amz-algorithm must be AWS4-HMAC-SHA256 (SigV2 POST is not supported).",
                      ArgumentName="x-amz-algorithm", ArgumentValue=fields.get("x-amz-algorithm", ""))
    m = _CREDENTIAL.match(fields.get("x-amz-credential", ""))
    if m is None or "x-amz-signature" not in fields:
        raise S3Error("InvalidArgument", "POST requires the x-amz-credential and x-amz-signature fields, well formed.",
                      ArgumentName="x-amz-credential", ArgumentValue=fields.get("x-amz-credential", ""))
    record = await ctx.run(ctx.store.accounts.lookup_key, m["key"])
    if record is None:
        raise S3Error("InvalidAccessKeyId", AWSAccessKeyId=m["key"])
    expected = policy.signature(fields["policy"], record.secret_key, m["date"], m["region"], m["service"])
    if not sigv4.signatures_match(expected, fields["x-amz-signature"].lower()):
        raise S3Error("SignatureDoesNotMatch")
    doc = policy.parse(fields["policy"])
    policy.check(doc, {**fields, "key": key}, ctx.bucket, time.time())
    ctx.identity = Identity(record.user, m["key"])
    await ctx.owned_bucket()
    return doc


def reject_unsupported(fields: dict[str, str]) -> None:
    for name in (*UNSUPPORTED_HEADERS, "tagging"):
        if name in fields:
            raise S3Error("NotImplemented", f"pyblob does not support {name} on POST Object.")
    if fields.get("acl", "private") not in HARMLESS_ACLS:
        raise S3Error("NotImplemented", "pyblob does not support canned ACLs other than private.")


async def store_file(ctx: S3Context, events: Events, form: Form, key: str, doc: policy.Policy) -> ObjectRecord:
    """Stream the file into a new version; commit once the body has ended well formed."""
    content_type, standard, meta = request_attributes(form.fields)
    writer = await ctx.run(ctx.store.open_writer, ctx.bucket, key, checksums.with_default([]), None)
    try:
        size = await stream_file(ctx, events, writer, doc)
        await skip_rest(events)
        policy.check_length(doc, size, final=True)
        return await ctx.run(writer.commit, content_type, standard, meta)
    finally:
        await ctx.run(writer.close)


async def stream_file(ctx: S3Context, events: Events, writer: ObjectWriter, doc: policy.Policy) -> int:
    """The file part's bytes into `writer`, content-length-range enforced as they arrive."""
    size, batch = 0, bytearray()
    async for event in events:
        if isinstance(event, PartEnd):
            break
        assert isinstance(event, PartData)
        size += len(event.data)
        policy.check_length(doc, size, final=False)
        if size > ctx.config.max_single_put:
            raise S3Error("EntityTooLarge", f"Your proposed upload exceeds the maximum of {human(ctx.config.max_single_put)} "
                          "for one upload.")
        batch += event.data
        if len(batch) >= BATCH:
            await ctx.run(writer.write, bytes(batch))
            batch.clear()
    if batch:
        await ctx.run(writer.write, bytes(batch))
    return size


async def skip_rest(events: Events) -> None:
    """Fields after the file are ignored, as at AWS, but bounded all the same."""
    total = 0
    async for event in events:
        total += len(event.data) if isinstance(event, PartData) else 0
        if total > MAX_FIELDS:
            raise S3Error("MaxPostPreDataLengthExceededError", "Your POST request fields after the upload file were too large.")


def success_response(ctx: S3Context, fields: dict[str, str], key: str, etag: str) -> Response:
    """303 to success_action_redirect, else success_action_status: 200, 201 (PostResponse) or 204."""
    location = object_url(ctx, key)
    headers = {"etag": quoted(etag), "location": location}
    redirect = fields.get("success_action_redirect") or fields.get("redirect", "")
    if urlsplit(redirect).scheme in ("http", "https"):
        query = urlencode({"bucket": ctx.bucket, "key": key, "etag": quoted(etag)})
        headers["location"] = redirect + ("&" if urlsplit(redirect).query else "?") + query
        return Response(status_code=303, headers=headers)
    status = SUCCESS_STATUSES.get(fields.get("success_action_status", ""), 204)
    if status != 201:
        return Response(status_code=status, headers=headers)
    body = {"Location": location, "Bucket": ctx.bucket, "Key": key, "ETag": quoted(etag)}
    return Response(render("PostResponse", body, namespace=False), status_code=201, media_type="application/xml", headers=headers)


def object_url(ctx: S3Context, key: str) -> str:
    """The new object's URL: the request's (path style or virtual-hosted) with the key appended."""
    url = ctx.request.url
    return f"{url.scheme}://{url.netloc}{url.path.rstrip('/')}/{quote(key, safe='/~')}"
