"""Files uploaded to get a short link (the REST API, WebSocket and tus uploads).

Each file becomes an object `<link id>/<file name>` in the owner's default bucket (so S3 clients
see it too) and a link that owns it, both created in the object's commit transaction: there is
never an uploaded file without its link, or a link to a file that was not kept. The object goes
through the same writer as an S3 PUT: same quota reservation, size limit and durability.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from typing import TYPE_CHECKING

from .db import Txn
from .errors import StoreError
from .limits import UPLOAD_CEILING
from .links import check_limits
from .records import BucketRecord, LinkRecord, ObjectRecord

if TYPE_CHECKING:
    from .objectwriter import ObjectWriter
    from .store import Store

MAX_NAME_BYTES = 255
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def safe_name(filename: str | None) -> str:
    """The last path segment of a client's file name, without control characters, at most 255 bytes."""
    name = re.split(r"[/\\]", unicodedata.normalize("NFC", filename or ""))[-1]
    name = _UNSAFE.sub("", name).strip()
    while len(name.encode()) > MAX_NAME_BYTES:
        name = name[:-1]
    return name if name not in ("", ".", "..") else "file"


def default_bucket(store: Store, owner: str) -> str:
    """The owner's bucket for uploads, created and remembered in one transaction the first time
    (concurrent first uploads agree on one bucket; a crash leaves none half-made)."""
    user = store.accounts.get_user(owner)
    with store.db.read() as r:
        if user.default_bucket and _owns(r, owner, user.default_bucket):
            return user.default_bucket
    base = re.sub(r"[^a-z0-9-]", "-", owner.lower()).strip("-")[:40] or "user"
    candidates = [f"{base}-files"] + [f"{base}-files-{secrets.token_hex(3)}" for _ in range(8)]
    with store.db.write() as w:
        user = store.accounts.user_in(w, owner)
        if user.default_bucket and _owns(w, owner, user.default_bucket):
            return user.default_bucket  # another request made it meanwhile
        for candidate in candidates:
            if w.get("buckets", candidate.encode()) is None:
                store.create_bucket_in(w, owner, candidate)
            elif not _owns(w, owner, candidate):
                continue
            user.default_bucket = candidate
            w.put("users", owner.encode(), user.encode())
            return candidate
    raise StoreError(f"could not find a free bucket name for {owner!r}")


def _owns(r: Txn, owner: str, bucket: str) -> bool:
    raw = r.get("buckets", bucket.encode())
    return raw is not None and BucketRecord.decode(raw).owner == owner


class LinkUpload:
    """Stream a file in with `write`, then `commit` for its link; `close` drops an unfinished one."""

    def __init__(
        self,
        store: Store,
        owner: str,
        filename: str | None,
        content_type: str | None = None,
        size_hint: int | None = None,
        expires_in: float | None = None,
        max_downloads: int | None = None,
        credit: int = 0,
    ):
        """`credit`: bytes already charged for this file (see `Store.open_writer`), which a subclass's
        `_add_link` must uncharge in the commit's transaction."""
        check_limits(expires_in, max_downloads)
        self.store, self.owner = store, owner
        self.name = safe_name(filename)
        self.content_type = content_type or "application/octet-stream"
        self.options = {"expires_in": expires_in, "max_downloads": max_downloads}
        self.bucket = default_bucket(store, owner)
        with store.db.read() as r:
            self.link_id = store.links.free_id(r)
        self.key = f"{self.link_id}/{self.name}"
        ceiling = store.config.upload_max_file_size or None
        self.writer: ObjectWriter = store.open_writer(self.bucket, self.key, (), size_hint, credit, ceiling, UPLOAD_CEILING)
        self.link: LinkRecord | None = None

    @property
    def size(self) -> int:
        return self.writer.content.hasher.size

    def write(self, data: bytes | memoryview) -> None:
        self.writer.write(data)

    def commit(self) -> LinkRecord:
        self.writer.commit(content_type=self.content_type, if_none_match=True, also=self._add_link)
        assert self.link is not None
        return self.link

    def _add_link(self, w: Txn, record: ObjectRecord) -> None:
        if w.get("links", self.link_id.encode()) is not None:
            raise StoreError("link id taken while uploading; please retry")
        self.link = self.store.links.add(
            w, self.link_id, self.owner, self.bucket, self.key, owns_object=True, name=self.name, **self.options
        )
        user = self.store.accounts.user_in(w, self.owner)
        user.uploads += 1
        user.bytes_uploaded += record.size
        user.last_upload = record.created
        w.put("users", self.owner.encode(), user.encode())

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> LinkUpload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
