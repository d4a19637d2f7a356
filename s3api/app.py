"""The S3 surface as one Starlette endpoint: identify, authenticate, dispatch, render errors.

Mounted by the composition package after pyblob's own routes, so `/health`, `/s/...` and the REST
API are matched first and everything else is S3 (route table first, then S3, no guessing).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from objstore import Store
from objstore.errors import StoreError

from . import cors, requestinfo
from .auth import PresignLimit, RequestView, authenticate, is_anonymous, parse_query
from .conditional import ConditionFailed, RangeNotSatisfiable
from .context import S3Config, S3Context
from .errors import S3Code, S3Error, from_conditional, from_store_error, slow_down
from .http import check_header_section
from .ops import attributes, bucket, copy, delete, get, listing, multipart, post, put
from .ops import cors as cors_ops
from .ops import lifecycle as lifecycle_ops
from .ops import tagging as tagging_ops
from .router import Op, classify
from .xml import render

log = logging.getLogger("pyblob.s3")
Handler = Callable[[S3Context], Awaitable[Response]]

HANDLERS: dict[Op, Handler] = {
    Op.ListBuckets: bucket.handle_list_buckets,
    Op.CreateBucket: bucket.handle_create_bucket,
    Op.DeleteBucket: bucket.handle_delete_bucket,
    Op.HeadBucket: bucket.handle_head_bucket,
    Op.GetBucketLocation: bucket.handle_get_bucket_location,
    Op.GetBucketVersioning: bucket.handle_get_bucket_versioning,
    Op.PutBucketVersioning: bucket.handle_put_bucket_versioning,
    Op.GetBucketAcl: bucket.handle_get_bucket_acl,
    Op.ListObjects: listing.handle_list_objects,
    Op.ListObjectsV2: listing.handle_list_objects_v2,
    Op.ListObjectVersions: listing.handle_list_object_versions,
    Op.GetObject: get.handle_get_object,
    Op.HeadObject: get.handle_head_object,
    Op.PutObject: put.handle_put_object,
    Op.DeleteObject: delete.handle_delete_object,
    Op.DeleteObjects: delete.handle_delete_objects,
    Op.CopyObject: copy.handle_copy_object,
    Op.CreateMultipartUpload: multipart.handle_create_multipart_upload,
    Op.UploadPart: multipart.handle_upload_part,
    Op.UploadPartCopy: multipart.handle_upload_part_copy,
    Op.CompleteMultipartUpload: multipart.handle_complete_multipart_upload,
    Op.AbortMultipartUpload: multipart.handle_abort_multipart_upload,
    Op.ListParts: multipart.handle_list_parts,
    Op.ListMultipartUploads: multipart.handle_list_multipart_uploads,
    Op.PutBucketCors: cors_ops.handle_put_bucket_cors,
    Op.GetBucketCors: cors_ops.handle_get_bucket_cors,
    Op.DeleteBucketCors: cors_ops.handle_delete_bucket_cors,
    Op.GetObjectTagging: tagging_ops.handle_get_object_tagging,
    Op.PutObjectTagging: tagging_ops.handle_put_object_tagging,
    Op.DeleteObjectTagging: tagging_ops.handle_delete_object_tagging,
    Op.GetBucketTagging: tagging_ops.handle_get_bucket_tagging,
    Op.PutBucketTagging: tagging_ops.handle_put_bucket_tagging,
    Op.DeleteBucketTagging: tagging_ops.handle_delete_bucket_tagging,
    Op.GetObjectAttributes: attributes.handle_get_object_attributes,
    Op.PostObject: post.handle_post_object,
    Op.PutBucketLifecycleConfiguration: lifecycle_ops.handle_put_bucket_lifecycle_configuration,
    Op.GetBucketLifecycleConfiguration: lifecycle_ops.handle_get_bucket_lifecycle_configuration,
    Op.DeleteBucketLifecycle: lifecycle_ops.handle_delete_bucket_lifecycle,
}


def decoded_path(raw_path: str) -> str:
    """The request path, percent-decoded as UTF-8; 400 InvalidURI when it is not UTF-8, as AWS answers
    (decoding with replacement would look up another key, one with U+FFFD in it)."""
    try:
        return unquote(raw_path, errors="strict")
    except UnicodeDecodeError as e:
        raise S3Error(S3Code.InvalidURI, "Couldn't parse the specified URI.") from e


def split_path(path: str, host: str, domain: str) -> tuple[str, str, bool]:
    """(bucket, key, virtual-hosted?) from a decoded path and the Host header.

    Virtual-hosted style when Host is <bucket>.<domain>; path style otherwise.
    """
    hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    if domain and hostname.endswith("." + domain):
        return hostname[: -len(domain) - 1], path[1:], True
    bucket, _, key = path[1:].partition("/")
    return bucket, key, False


def has_body(request: Request) -> bool:
    return "transfer-encoding" in request.headers or request.headers.get("content-length", "0") not in ("", "0")


def header_text(raw: bytes) -> str:
    """A header value as text: UTF-8, as SDKs send non-ASCII text (boto3 signs those bytes, and S3
    verifies them), else ISO-8859-1 (HTTP's historical charset)."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def request_headers(request: Request) -> dict[str, str]:
    """Lower-case names to values; a repeated header is one comma-separated value, without spaces, as
    SigV4 and SigV2 sign it."""
    found: dict[str, list[str]] = {}
    for name, value in request.scope["headers"]:
        found.setdefault(name.decode("latin-1").lower(), []).append(header_text(value))
    return {name: ",".join(values) for name, values in found.items()}


# The answers of a failed authentication: an unknown key, or a signature (of the headers, a presigned
# URL, a POST policy, a chunk or a trailer) made with another secret. Not AccessDenied: an expired URL
# or a bucket of another account is no guess at a secret, and a working client meets those.
FAILED_AUTHENTICATION = frozenset({S3Code.InvalidAccessKeyId.name, S3Code.SignatureDoesNotMatch.name})


class FailedAuthLimit(Protocol):
    """Failed authentications counted per client, by the layer that keeps the limit: `wait(scope)`
    is the whole seconds that client must wait before anything of its request is checked (0: go on),
    `failed(scope)` counts one and answers the same for the client from then on; `name` is the
    setting SlowDown's message names."""

    name: str

    async def wait(self, scope: Scope) -> int: ...

    async def failed(self, scope: Scope) -> int: ...


class S3App:
    """The S3 endpoint over a store. `rate_limit(access_key)`: the whole seconds that key must wait
    (0: go on; the composition layer keeps the limits), asked once it is authenticated;
    `rate_limit_name` names the setting behind it in SlowDown's message. `failed_auth`: asked before
    anything else, told of every failed authentication."""

    def __init__(
        self,
        get_store: Callable[[], Store],
        config: S3Config,
        rate_limit: Callable[[str], Awaitable[int]] | None = None,
        rate_limit_name: str = "",
        presign_v2: PresignLimit = PresignLimit(),
        failed_auth: FailedAuthLimit | None = None,
    ):
        self.get_store = get_store
        self.config = config
        self.rate_limit = rate_limit
        self.rate_limit_name = rate_limit_name
        self.presign_v2 = presign_v2
        self.failed_auth = failed_auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The S3 endpoint as a plain ASGI app, for a composition that routes S3 paths to it directly."""
        response = await self.endpoint(Request(scope, receive))
        await response(scope, receive, send)

    async def endpoint(self, request: Request) -> Response:
        """The Starlette endpoint for every S3 path."""
        request_id = requestinfo.request_id()
        try:
            await self._check_failed_auth(request)
            response = await self._handle(request, request_id)
            # Appended, not set through `response.headers` (which searches the list): no handler
            # sets them, and the error responses below carry them already.
            raw_id = request_id.encode()
            response.raw_headers += ((b"x-amz-request-id", raw_id), (b"x-amz-id-2", raw_id))
        except S3Error as e:
            if e.code in FAILED_AUTHENTICATION and self.failed_auth is not None:
                wait = await self.failed_auth.failed(request.scope)
                if wait > 0:  # the allowance is spent: this failure is the first SlowDown
                    e = slow_down(wait, self.failed_auth.name)
            response = self._error(request, e, request_id)
        except StoreError as e:
            response = self._error(request, from_store_error(e, request.method), request_id)
        except (ConditionFailed, RangeNotSatisfiable) as e:
            response = self._error(request, from_conditional(e), request_id)
        except Exception:
            log.exception("internal error on %s %s", request.method, request.url.path)
            response = self._error(
                request,
                S3Error(S3Code.InternalError, "We encountered an internal error. Please try again."),
                request_id,
            )
        if request.method != "OPTIONS" and "origin" in request.headers:
            await self._add_cors(request, response)
        if response.status_code >= 400 and has_body(request):
            # The body may be unread (an error found before it, or a client that waits for a
            # 100 Continue it will not get, as botocore does): leftover bytes would be parsed as
            # the next request on this connection, so end the connection with the response.
            response.headers["connection"] = "close"
        return response

    async def _handle(self, request: Request, request_id: str) -> Response:
        check_header_section(request.scope["headers"], request.scope.get("query_string", b""))
        raw_path = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1").split("?", 1)[0]
        query = parse_query(request.scope.get("query_string", b"").decode("latin-1"))
        headers = request_headers(request)
        bucket_name, key, virtual = split_path(decoded_path(raw_path), headers.get("host", ""), self.config.domain)
        if not bucket_name and (key or virtual):  # `//key`: an empty name would reach the engine
            raise S3Error(S3Code.InvalidBucketName, "The specified bucket is not valid.", BucketName="")
        route = classify(request.method, bucket_name, key, dict(query), headers)
        info = requestinfo.current.get()
        if info is not None:
            info.operation, info.bucket, info.key = route.op.value if route.op else "", route.bucket, route.key
        if route.op is None:
            raise S3Error(
                S3Code.MethodNotAllowed,
                resource=request.url.path,
                Method=request.method,
                ResourceType="OBJECT" if key else "BUCKET",
            )
        ctx = S3Context(request, self.get_store(), self.config, request_id, route, dict(query), headers)
        ctx.check_rate = self._check_rate
        if route.op is Op.Preflight:
            return await cors_ops.handle_preflight(ctx)  # before authentication, as S3 answers it
        view = RequestView(request.method, raw_path, query, headers, bucket_name if virtual else "")
        if route.op is not Op.PostObject:  # POST Object is signed in its form (ops/post.py)
            if bucket_name and is_anonymous(view):  # bucket names are global: AWS says 404 to anyone
                ctx.lookup(ctx.store.get_bucket, bucket_name)
            ctx.identity = ctx.lookup(authenticate, view, ctx.store.accounts, time.time(), self.presign_v2)
            await ctx.check_rate(ctx.identity.access_key)
        handler = HANDLERS.get(route.op)
        if handler is None:
            if route.bucket:  # another account's bucket is AccessDenied (a missing one NoSuchBucket) first, as at AWS
                await ctx.owned_bucket()
            raise S3Error(S3Code.NotImplemented, f"{route.op.value} is not implemented by pyblob.")
        try:
            return await handler(ctx)
        finally:
            if info is not None:  # POST Object learns its signer in the handler
                info.user, info.access_key = ctx.identity.user, ctx.identity.access_key

    async def _add_cors(self, request: Request, response: Response) -> None:
        """CORS headers on an actual (non-preflight) response, errors included, from the bucket's rules."""
        bucket_name, _, _ = split_path(request.url.path, request.headers.get("host", ""), self.config.domain)
        if not bucket_name or bucket_name in self.config.reserved_buckets:
            return
        try:
            record = self.get_store().get_bucket(bucket_name)  # one row, on the loop (S3Context.lookup)
        except StoreError:
            return
        origin = request.headers["origin"]
        rule = cors.match(record.cors, origin, request.method)
        if rule is not None:
            response.headers.update(cors.response_headers(rule, origin, preflight=False))

    async def _check_failed_auth(self, request: Request) -> None:
        """SlowDown, before the signature is looked at, for a client whose failures spent its allowance:
        a right guess must not show through."""
        limit = self.failed_auth
        wait = await limit.wait(request.scope) if limit is not None else 0
        if wait > 0 and limit is not None:
            raise slow_down(wait, limit.name)

    async def _check_rate(self, access_key: str) -> None:
        wait = await self.rate_limit(access_key) if self.rate_limit is not None and access_key else 0
        if wait > 0:
            raise slow_down(wait, self.rate_limit_name)

    def _error(self, request: Request, error: S3Error, request_id: str) -> Response:
        return error_response(request, error, request_id)


def error_response(request: Request, error: S3Error, request_id: str) -> Response:
    """An S3 error as S3 answers it: XML (no body for HEAD) with the error's own headers."""
    requestinfo.note_error(error.code)
    if not error.resource:
        error.resource = request.url.path
    body = b"" if request.method == "HEAD" else render("Error", error.body(request_id)["Error"], namespace=False)
    headers = {**error.headers, "x-amz-request-id": request_id, "x-amz-id-2": request_id}
    return Response(body, status_code=error.status, media_type="application/xml", headers=headers)
