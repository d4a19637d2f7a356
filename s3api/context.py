"""Everything a handler needs about one S3 request, and the helpers they share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from objstore import BucketRecord, ObjectRecord, Store
from objstore.errors import InvalidArgument, NoSuchBucket
from objstore.limits import MAX_SINGLE_PUT
from objstore.versions import NULL, check_version_id

from . import checksums
from .auth import Identity
from .body import Payload
from .errors import S3Code, S3Error
from .router import Route
from .xml import MAX_XML_BODY, XML_ON_LOOP_MAX, parse, render

T = TypeVar("T")


async def _no_limit() -> None:
    """The rate check of a context made without one: nothing is limited."""


@dataclass(frozen=True)
class S3Config:
    """The S3 layer's settings: region, virtual-host domain, names no bucket may take, PUT size limit."""

    region: str = "us-east-1"
    domain: str = ""  # virtual-hosted style for <bucket>.<domain> when set
    reserved_buckets: frozenset[str] = frozenset()
    max_single_put: int = MAX_SINGLE_PUT  # S3's limit for one PutObject


@dataclass
class S3Context:
    """One S3 request as the handlers see it: the request, store, classified route, query and headers,
    and who signed it once authentication has run."""

    request: Request
    store: Store
    config: S3Config
    request_id: str
    route: Route
    query: dict[str, str]
    headers: dict[str, str]
    identity: Identity = field(default_factory=lambda: Identity("", ""))
    # Takes the per-access-key rate limit's token (SlowDown when none is left); a handler that
    # learns the signer itself (POST Object, signed in its form) calls it then.
    check_rate: Callable[[str], Awaitable[None]] = field(default=lambda access_key: _no_limit())

    @property
    def bucket(self) -> str:
        return self.route.bucket

    @property
    def key(self) -> str:
        return self.route.key

    @property
    def user(self) -> str:
        return self.identity.user

    def payload(self) -> Payload:
        return Payload(self.request, self.identity, self.headers)

    async def read_xml(self, root: str, force_list: tuple[str, ...] = (), limit: int = MAX_XML_BODY) -> dict[str, Any]:
        """A small XML body (configurations, DeleteObjects): at most `limit` bytes, its Content-MD5 or
        x-amz-checksum-* verified, parsed with `force_list` elements always lists."""
        payload = self.payload()
        raw = await payload.read_all(limit)
        checksums.verify_small_body(self.headers, payload.trailers, raw)
        return await self.parse_xml(raw, root, force_list, limit)

    async def parse_xml(
        self, raw: bytes, root: str, force_list: tuple[str, ...] = (), limit: int = MAX_XML_BODY
    ) -> dict[str, Any]:
        """`xml.parse`, in a thread for a body past XML_ON_LOOP_MAX: a DeleteObjects of 1,000 keys or a
        Complete of 10,000 parts takes expat a large part of a second, which the loop must not wait."""
        if len(raw) <= XML_ON_LOOP_MAX:
            return parse(raw, root, force_list=force_list, limit=limit)
        return await self.run(parse, raw, root, force_list=force_list, limit=limit)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Blocking engine work (writes, syncs, chunk reads, listings) off the event loop."""
        return await run_in_threadpool(fn, *args, **kwargs)

    def lookup(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A metadata read of a few rows (a key, a bucket, an object's row), on the event loop.

        LMDB reads are memory-mapped page lookups of microseconds; a thread hand-off costs more than
        that many times over (docs/benchmarks.md, "Serving"), so these run where the request is.
        """
        return fn(*args, **kwargs)

    def version_id(self, name: str = "versionId") -> str | None:
        """The request's version id (query `versionId`), checked for form; None when not given."""
        version = self.query.get(name)
        try:
            check_version_id(version)
        except InvalidArgument as e:
            raise S3Error(
                S3Code.InvalidArgument, "Invalid version id specified", ArgumentName=name, ArgumentValue=version
            ) from e
        return version

    async def owned_bucket(self) -> BucketRecord:
        """The request's bucket if the caller owns it: NoSuchBucket or AccessDenied otherwise."""
        if self.bucket in self.config.reserved_buckets:
            raise NoSuchBucket(self.bucket)
        record = self.lookup(self.store.get_bucket, self.bucket)
        if record.owner != self.user:
            raise S3Error(S3Code.AccessDenied, resource=f"/{self.bucket}")
        return record


def version_headers(bucket: BucketRecord, record: ObjectRecord) -> dict[str, str]:
    """`x-amz-version-id` of a version, as S3 sends it: for any version of a bucket that has had
    versioning, and never for the "null" version of one that has not."""
    if bucket.versioning or record.version_id != NULL:
        return {"x-amz-version-id": record.version_id}
    return {}


def xml_response(root: str, body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(render(root, body), status_code=status, media_type="application/xml", headers=headers)


def owner_xml(user: str) -> dict[str, str]:
    return {"ID": user, "DisplayName": user}
