"""Files uploaded to get a short link (the REST API, WebSocket and tus uploads).

Each file becomes an object `<link id>/<file name>` in the owner's default bucket (so S3 clients
see it too) and a link that owns it, both created in the object's commit transaction: there is
never an uploaded file without its link, or a link to a file that was not kept. The object goes
through the same writer as an S3 PUT: same quota gate, size limit and durability.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Callable

from .. import accounts, buckets
from ..config import StoreConfig
from ..errors import StoreError
from ..limits import UPLOAD_CEILING
from ..meta import MetadataStore, ReadTxn, WriteTxn
from ..objects import Objects, ObjectWriter
from ..records import LinkRecord, ObjectRecord
from .links import Links, check_limits, find

MAX_NAME_BYTES = 255
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def safe_name(filename: str | None) -> str:
    """The last path segment of a client's file name, without control characters, at most 255 bytes."""
    name = re.split(r"[/\\]", unicodedata.normalize("NFC", filename or ""))[-1]
    name = _UNSAFE.sub("", name).strip()
    while len(name.encode()) > MAX_NAME_BYTES:
        name = name[:-1]
    return name if name not in ("", ".", "..") else "file"


class LinkUploads:
    """Where files uploaded for a short link go (the owner's default bucket), and the uploads themselves."""

    def __init__(
        self, meta: MetadataStore, config: StoreConfig, clock: Callable[[], float], objects: Objects, links: Links
    ):
        self.meta = meta
        self.config = config
        self.clock = clock
        self.objects = objects
        self.links = links

    def open(
        self,
        owner: str,
        filename: str | None,
        content_type: str | None = None,
        size_hint: int | None = None,
        expires_in: float | None = None,
        max_downloads: int | None = None,
        credit: int = 0,
        also: Callable[[WriteTxn, LinkRecord], None] | None = None,
        link_id: str | None = None,
        link_fields: dict[str, object] | None = None,
    ) -> LinkUpload:
        """A new upload of one file for a link. `credit`: bytes already charged for this file (see
        `Objects.open_writer`), which `also` must uncharge: it runs in the commit's transaction.
        `link_id` and `link_fields` (created, downloads, ...): a link carried over from elsewhere."""
        check_limits(expires_in, max_downloads)
        bucket = self.default_bucket(owner)
        link_id = link_id or self.meta.read(self.links.free_id)
        name = safe_name(filename)
        key = f"{link_id}/{name}"
        ceiling = self.config.upload_max_file_size or None
        writer = self.objects.open_writer(bucket, key, (), size_hint, credit, ceiling, UPLOAD_CEILING)
        options: dict[str, object] = {"expires_in": expires_in, "max_downloads": max_downloads, **(link_fields or {})}
        return LinkUpload(self.links, writer, owner, bucket, link_id, name, content_type, options, also)

    def default_bucket(self, owner: str) -> str:
        """The owner's bucket for uploads, created and remembered in one transaction the first time
        (concurrent first uploads agree on one bucket; a crash leaves none half-made)."""

        def known(r: ReadTxn) -> str | None:
            user = accounts.require_user(r, owner)
            return user.default_bucket if user.default_bucket and buckets.owned(r, owner, user.default_bucket) else None

        found = self.meta.read(known)
        if found is not None:
            return found
        base = re.sub(r"[^a-z0-9-]", "-", owner.lower()).strip("-")[:40] or "user"
        candidates = [f"{base}-files"] + [f"{base}-files-{secrets.token_hex(3)}" for _ in range(8)]

        def create(w: WriteTxn) -> str:
            made = known(w)
            if made is not None:
                return made  # another request made it meanwhile
            for candidate in candidates:
                if buckets.get(w, candidate) is None:
                    buckets.create(w, owner, candidate, buckets.DEFAULT_REGION, self.clock())
                elif buckets.owned(w, owner, candidate) is None:
                    continue
                accounts.set_default_bucket(w, owner, candidate)
                return candidate
            raise StoreError(f"could not find a free bucket name for {owner!r}")

        return self.meta.transact(create)


class LinkUpload:
    """Stream a file in with `write`, then `commit` for its link; `close` drops an unfinished one."""

    def __init__(
        self,
        links: Links,
        writer: ObjectWriter,
        owner: str,
        bucket: str,
        link_id: str,
        name: str,
        content_type: str | None,
        options: dict[str, object],
        also: Callable[[WriteTxn, LinkRecord], None] | None = None,
    ):
        self.links = links
        self.writer = writer
        self.owner, self.bucket, self.link_id, self.name = owner, bucket, link_id, name
        self.key = f"{link_id}/{name}"
        self.content_type = content_type or "application/octet-stream"
        self.options = options
        self.also = also
        self.link: LinkRecord | None = None

    @property
    def size(self) -> int:
        return self.writer.size

    def write(self, data: bytes | memoryview) -> None:
        self.writer.write(data)

    def commit(self) -> LinkRecord:
        self.writer.commit(content_type=self.content_type, if_none_match=True, also=self._add_link)
        assert self.link is not None
        return self.link

    def _add_link(self, w: WriteTxn, record: ObjectRecord) -> None:
        if find(w, self.link_id) is not None:
            raise StoreError("link id taken while uploading; please retry")
        self.link = self.links.add(
            w, self.link_id, self.owner, self.bucket, self.key, owns_object=True, name=self.name, **self.options
        )
        accounts.count_upload(w, self.owner, record.size, record.created)
        if self.also is not None:
            self.also(w, self.link)

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> LinkUpload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
