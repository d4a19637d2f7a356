"""PostObject: browser-based uploads, a multipart/form-data body whose policy says what it may store.

https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html; the policy and its signature at
.../sigv4-HTTPPOSTConstructPolicy.html and .../sigv4-authentication-HTTPPOST.html (SigV4), and
https://docs.aws.amazon.com/AmazonS3/latest/userguide/HTTPPOSTForms.html (SigV2, what boto3's
`generate_presigned_post` makes on its default settings). The request has no Authorization header:
the form's fields, which come before the `file` part, carry the credential, the signed policy, the
key and the object's attributes. They are read (bounded) and checked, then the file streams into the
store; fields after the file are ignored, as at AWS.
"""

from __future__ import annotations

import posixpath
import re
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from objstore.limits import human
from objstore.objects import ObjectWriter
from objstore.records import ObjectRecord

from .. import checksums, policy, sigv2, sigv4, tagging
from ..auth import Identity
from ..body import BATCH
from ..conditional import quoted
from ..context import S3Context, version_headers
from ..errors import S3Code, S3Error
from ..formdata import Event, FormError, FormParser, PartData, PartEnd, PartStart, boundary_of
from ..http import request_attributes
from ..xml import parse, render
from .put import UNSUPPORTED_HEADERS

MAX_FIELDS = 20 * 1024  # names and values of every field but the file, as AWS bounds the form
_CREDENTIAL = re.compile(r"^(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request$")
# A header name (RFC 9110 section 5.6.2, token): form fields become the object's headers (x-amz-meta-*),
# and a name that no header can carry would make every GET of the object fail.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_URL_SAFE = re.compile(r"[!-~]+")  # printable ASCII, no spaces: a URL as a Location header can carry it
V4_FIELDS = ("x-amz-algorithm", "x-amz-credential", "x-amz-signature")
SUCCESS_STATUSES = {"200": 200, "201": 201, "204": 204}  # anything else answers 204, as AWS does
HARMLESS_ACLS = {"private", "bucket-owner-full-control"}  # pyblob objects are private to the owner
NOT_MULTIPART = "Bucket POST must be of the enclosure-type multipart/form-data"

Events = AsyncGenerator[Event, None]


@dataclass
class Form:
    """The fields of a POST Object form read before its file part, and the file's name."""

    fields: dict[str, str]  # lower-case names
    filename: str  # of the file part, for ${filename}

    def expanded(self) -> dict[str, str]:
        """The fields with ${filename} replaced by the file's name (without any path) in every value,
        as AWS expands them before it checks the policy."""
        name = posixpath.basename(self.filename.replace("\\", "/"))
        return {k: v.replace("${filename}", name) for k, v in self.fields.items()}


@dataclass(frozen=True)
class FormSignature:
    """Who signed the form's policy and how: SigV4 (x-amz-* fields) or SigV2 (AWSAccessKeyId, signature)."""

    access_key: str
    given: str
    expected: Callable[[str], str]  # the signature the access key's secret makes of the policy
    exempt: frozenset[str]  # the fields of this scheme that no condition has to name


async def handle_post_object(ctx: S3Context) -> Response:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html"""
    try:
        boundary = boundary_of(ctx.headers.get("content-type", ""))
    except FormError as e:
        raise malformed(e) from e
    if boundary is None:
        raise S3Error(S3Code.PreconditionFailed, NOT_MULTIPART, Condition=NOT_MULTIPART)
    async with aclosing(body_events(ctx.request, FormParser(boundary))) as events:
        fields = (await read_fields(events)).expanded()
        key = object_key(fields)
        doc = await authorize(ctx, fields)
        reject_unsupported(fields)
        record = await store_file(ctx, events, fields, key, doc)
    response = success_response(ctx, fields, key, record.etag)
    response.headers.update(version_headers(await ctx.owned_bucket(), record))
    return response


def object_key(fields: dict[str, str]) -> str:
    """The `key` field, ${filename} expanded: empty when it is all and the file part names no file."""
    if "key" not in fields:
        raise missing_field("key")
    if not fields["key"]:
        raise S3Error(
            S3Code.InvalidArgument, "User key must have a length greater than 0.", ArgumentName="key", ArgumentValue=""
        )
    return fields["key"]


def missing_field(name: str) -> S3Error:
    return S3Error(
        S3Code.InvalidArgument,
        f"Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields.",
        ArgumentName=name,
        ArgumentValue="",
    )


def malformed(error: FormError) -> S3Error:
    return S3Error(
        S3Code.MalformedPOSTRequest, f"The body of your POST request is not well-formed multipart/form-data: {error}"
    )


async def body_events(request: Request, parser: FormParser) -> Events:
    """The form's events as the body arrives; S3's errors for a malformed or cut-short body."""
    try:
        async for data in request.stream():
            for event in parser.feed(data):
                yield event
        parser.finish()
    except ClientDisconnect as e:
        raise S3Error(S3Code.IncompleteBody, "The client closed the connection before the body ended.") from e
    except FormError as e:
        raise malformed(e) from e


async def read_fields(events: Events) -> Form:
    """The fields before the `file` part, at most MAX_FIELDS bytes in all."""
    fields: dict[str, str] = {}
    name, value, total = "", bytearray(), 0
    async for event in events:
        if isinstance(event, PartStart):
            if event.name.lower() == "file":
                return Form(fields, event.filename or "")
            name, value = field_name(event.name), bytearray()
            total += len(name)
        elif isinstance(event, PartData):
            value += event.data
            total += len(event.data)
        else:
            add_field(fields, name, bytes(value))
        if total > MAX_FIELDS:
            raise S3Error(
                S3Code.MaxPostPreDataLengthExceededError,
                "Your POST request fields preceding the upload file were too large.",
            )
    raise S3Error(
        S3Code.InvalidArgument,
        "POST requires exactly one file upload per request.",
        ArgumentName="file",
        ArgumentValue="0",
    )


def field_name(name: str) -> str:
    """The lower-case name of a field; InvalidArgument when no header could be named so."""
    if not _TOKEN.fullmatch(name):
        shown = name.encode("unicode_escape").decode("ascii")  # no control characters in the XML answer
        raise S3Error(
            S3Code.InvalidArgument,
            f"The form field name '{shown}' is not a valid HTTP header field name.",
            ArgumentName="field name",
            ArgumentValue=shown,
        )
    return name.lower()


def add_field(fields: dict[str, str], name: str, raw: bytes) -> None:
    """A field given more than once has its values joined with commas, as the policy then names it
    (HTTPPOSTForms.html, "Conditions")."""
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise S3Error(S3Code.InvalidArgument, f"The form field {name} is not UTF-8.", ArgumentName=name) from e
    fields[name] = f"{fields[name]},{value}" if name in fields else value


async def authorize(ctx: S3Context, fields: dict[str, str]) -> policy.Policy:
    """Check the signature of the policy, then the policy, then that the signer owns the bucket."""
    if "policy" not in fields:
        raise S3Error(S3Code.AccessDenied, "Access Denied")  # an anonymous upload: pyblob has no public buckets
    signed = form_signature(fields)
    record = ctx.lookup(ctx.store.accounts.lookup_key, signed.access_key) if signed.access_key else None
    if record is None:
        raise S3Error(S3Code.InvalidAccessKeyId, AWSAccessKeyId=signed.access_key)
    if not sigv4.signatures_match(signed.expected(record.secret_key), signed.given):
        raise S3Error(S3Code.SignatureDoesNotMatch)
    doc = policy.parse(fields["policy"])
    # The bucket is an input like the fields: a policy must name it ("Extra input fields: bucket").
    policy.check(doc, {**fields, "bucket": ctx.bucket}, ctx.bucket, time.time(), signed.exempt)
    ctx.identity = Identity(record.user, signed.access_key)
    await ctx.check_rate(signed.access_key)  # the form's signer spends a token, as any signed request
    await ctx.owned_bucket()
    return doc


def form_signature(fields: dict[str, str]) -> FormSignature:
    """SigV4 when the form has any of its x-amz-* fields, else SigV2."""
    if any(name in fields for name in V4_FIELDS):
        return v4_signature(fields)
    for name in ("AWSAccessKeyId", "signature"):
        if name.lower() not in fields:
            raise missing_field(name)
    return FormSignature(
        fields["awsaccesskeyid"],
        fields["signature"],
        lambda secret: sigv2.post_policy_signature(secret, fields["policy"]),
        policy.EXEMPT_V2,
    )


def v4_signature(fields: dict[str, str]) -> FormSignature:
    if fields.get("x-amz-algorithm") != sigv4.ALGORITHM:
        raise S3Error(
            S3Code.InvalidArgument,
            "POST form field x-amz-algorithm must be AWS4-HMAC-SHA256.",
            ArgumentName="x-amz-algorithm",
            ArgumentValue=fields.get("x-amz-algorithm", ""),
        )
    m = _CREDENTIAL.match(fields.get("x-amz-credential", ""))
    if m is None:
        raise S3Error(
            S3Code.InvalidArgument,
            "POST form field x-amz-credential must be <key>/<date>/<region>/<service>/aws4_request.",
            ArgumentName="x-amz-credential",
            ArgumentValue=fields.get("x-amz-credential", ""),
        )
    if "x-amz-signature" not in fields:
        raise missing_field("x-amz-signature")
    scope = m["date"], m["region"], m["service"]
    return FormSignature(
        m["key"],
        fields["x-amz-signature"].lower(),
        lambda secret: policy.signature(fields["policy"], secret, *scope),
        policy.EXEMPT,
    )


def reject_unsupported(fields: dict[str, str]) -> None:
    for name in UNSUPPORTED_HEADERS:
        if name in fields:
            raise S3Error(S3Code.NotImplemented, f"pyblob does not support {name} on POST Object.")
    if fields.get("acl", "private") not in HARMLESS_ACLS:
        raise S3Error(S3Code.NotImplemented, "pyblob does not support canned ACLs other than private.")


def form_tags(fields: dict[str, str]) -> dict[str, str]:
    """The `tagging` field: a Tagging XML document, as PutObjectTagging's body."""
    if "tagging" not in fields:
        return {}
    return tagging.from_xml(parse(fields["tagging"].encode(), "Tagging", force_list=("Tag",)))


async def store_file(
    ctx: S3Context, events: Events, fields: dict[str, str], key: str, doc: policy.Policy
) -> ObjectRecord:
    """Stream the file into a new version; commit once the body has ended well formed and its
    Content-MD5 and x-amz-checksum-* fields, if any, match it."""
    content_type, standard, meta = request_attributes(fields)
    tags = form_tags(fields)
    algorithms = checksums.with_default(checksums.requested(fields))
    writer = await ctx.run(ctx.store.open_writer, ctx.bucket, key, algorithms, None)
    try:
        size = await stream_file(ctx, events, writer, doc)
        await skip_rest(events)
        policy.check_length(doc, size, final=True)
        content = await ctx.run(writer.finish)
        checksums.verify(fields, {}, content.md5, content.checksums)
        return await ctx.run(writer.commit, content_type, standard, meta, tags=tags)
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
            raise S3Error(
                S3Code.EntityTooLarge,
                f"Your proposed upload exceeds the maximum of {human(ctx.config.max_single_put)} for one upload.",
            )
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
            raise S3Error(
                S3Code.MaxPostPreDataLengthExceededError,
                "Your POST request fields after the upload file were too large.",
            )


def success_response(ctx: S3Context, fields: dict[str, str], key: str, etag: str) -> Response:
    """303 to success_action_redirect, else success_action_status: 200, 201 (PostResponse) or 204."""
    location = object_url(ctx, key)
    headers = {"etag": quoted(etag), "location": location}
    redirect = redirect_target(fields)
    if redirect is not None:
        query = urlencode({"bucket": ctx.bucket, "key": key, "etag": quoted(etag)})
        headers["location"] = redirect + ("&" if urlsplit(redirect).query else "?") + query
        return Response(status_code=303, headers=headers)
    status = SUCCESS_STATUSES.get(fields.get("success_action_status", ""), 204)
    if status != 201:
        return Response(status_code=status, headers=headers)
    body = {"Location": location, "Bucket": ctx.bucket, "Key": key, "ETag": quoted(etag)}
    return Response(
        render("PostResponse", body, namespace=False), status_code=201, media_type="application/xml", headers=headers
    )


def redirect_target(fields: dict[str, str]) -> str | None:
    """success_action_redirect (or the deprecated `redirect`) when it is an http(s) URL that a Location
    header carries as it is; AWS ignores a URL it cannot interpret (HTTPPOSTForms.html, "Redirection")."""
    url = fields.get("success_action_redirect") or fields.get("redirect", "")
    try:
        scheme = urlsplit(url).scheme
    except ValueError:  # e.g. an unclosed [IPv6] host
        return None
    return url if _URL_SAFE.fullmatch(url) and scheme in ("http", "https") else None


def object_url(ctx: S3Context, key: str) -> str:
    """The new object's URL: the request's (path style or virtual-hosted) with the key appended."""
    url = ctx.request.url
    return f"{url.scheme}://{url.netloc}{url.path.rstrip('/')}/{quote(key, safe='/~')}"
