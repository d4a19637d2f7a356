"""Short links: public ids that name an owner's bucket/key, with expiry and a download budget.

A link follows the key, not one version of it: an overwritten object is served in its new form and a
deleted one makes the link answer "no such key". The web edge (`shortlinks`) decides how to render.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from . import keys
from .db import Txn
from .errors import InvalidArgument, LinkExpired, NoSuchBucket, NoSuchKey, NoSuchLink, StoreError
from .records import BucketRecord, LinkRecord, ObjectRecord

if TYPE_CHECKING:
    from .store import Store

# No 0/o, 1/l/i: an id read aloud or copied from a screenshot stays unambiguous.
ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
ID_LENGTH = 8
MAX_ATTEMPTS = 16  # 31^8 ids: a collision is rare, sixteen in a row means something is broken


def new_link_id(length: int = ID_LENGTH) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _check_limits(expires_in: float | None, max_downloads: int | None) -> None:
    if expires_in is not None and not expires_in > 0:
        raise InvalidArgument("expires_in must be a positive number of seconds")
    if max_downloads is not None and (isinstance(max_downloads, bool) or max_downloads < 1):
        raise InvalidArgument("max_downloads must be a positive integer")


def is_spent(link: LinkRecord, now: float) -> bool:
    """Past its expiry time or out of downloads."""
    if link.expires_at is not None and now >= link.expires_at:
        return True
    return link.max_downloads is not None and link.downloads >= link.max_downloads


class Links:
    def __init__(self, store: Store, id_length: int = ID_LENGTH):
        self.store = store
        self.id_length = id_length

    def create(
        self, owner: str, bucket: str, key: str, expires_in: float | None = None, max_downloads: int | None = None
    ) -> LinkRecord:
        """A new link to `owner`'s existing object bucket/key; NoSuchBucket / NoSuchKey otherwise."""
        _check_limits(expires_in, max_downloads)
        with self.store.db.write() as w:
            self._owned_object(w, owner, bucket, key)
            now = self.store.clock()
            link_id = self._free_id(w)
            expires_at = now + expires_in if expires_in is not None else None
            record = LinkRecord(link_id, owner, bucket, key, now, expires_at, max_downloads)
            w.put("links", link_id.encode(), record.encode())
        return record

    def _free_id(self, w: Txn) -> str:
        for _ in range(MAX_ATTEMPTS):
            link_id = new_link_id(self.id_length)
            if w.get("links", link_id.encode()) is None:
                return link_id
        raise StoreError(f"no free link id after {MAX_ATTEMPTS} attempts")

    def _owned_object(self, r: Txn, owner: str, bucket: str, key: str) -> ObjectRecord:
        raw_bucket = r.get("buckets", bucket.encode())
        if raw_bucket is None or BucketRecord.decode(raw_bucket).owner != owner:
            raise NoSuchBucket(bucket)  # another owner's bucket looks the same as none
        record = BucketRecord.decode(raw_bucket)
        raw = r.get("objects", keys.encode(record.id, keys.validate_key(key)))
        if raw is None:
            raise NoSuchKey(key)
        return ObjectRecord.decode(raw)

    def _link(self, r: Txn, link_id: str) -> LinkRecord:
        raw = r.get("links", link_id.encode())
        if raw is None:
            raise NoSuchLink(link_id)
        link = LinkRecord.decode(raw)
        if link.revoked:
            raise NoSuchLink(link_id)
        return link

    def get(self, link_id: str) -> LinkRecord:
        """The live or spent link; NoSuchLink when unknown or revoked."""
        with self.store.db.read() as r:
            return self._link(r, link_id)

    def list(self, owner: str) -> list[LinkRecord]:
        """`owner`'s links that are not revoked, oldest first (a full scan: fine at this size)."""
        with self.store.db.read() as r:
            found = [LinkRecord.decode(bytes(v)) for _, v in r.cursor("links")]
        return sorted((x for x in found if x.owner == owner and not x.revoked), key=lambda x: x.created)

    def revoke(self, link_id: str, owner: str) -> LinkRecord:
        """Turn the link off for good; another owner's link is NoSuchLink, as an unknown one."""
        with self.store.db.write() as w:
            link = self._link(w, link_id)
            if link.owner != owner:
                raise NoSuchLink(link_id)
            link.revoked = True
            w.put("links", link_id.encode(), link.encode())
        return link

    def resolve(self, link_id: str, now: float) -> tuple[LinkRecord, ObjectRecord]:
        """The link and the object it names right now.

        NoSuchLink: unknown or revoked; LinkExpired: past expiry or out of downloads; NoSuchKey: the
        object (or its bucket, or the owner's hold on it) is gone.
        """
        with self.store.db.read() as r:
            link = self._link(r, link_id)
            if is_spent(link, now):
                raise LinkExpired(link_id)
            try:
                return link, self._owned_object(r, link.owner, link.bucket, link.key)
            except NoSuchBucket as exc:
                raise NoSuchKey(link.key) from exc

    def count_download(self, link_id: str) -> LinkRecord:
        """Count one download; LinkExpired if the budget is already spent, so burn-after-N is exact.

        One synced write per download: simple and exact, to be batched later.
        """
        with self.store.db.write() as w:
            link = self._link(w, link_id)
            if link.max_downloads is not None and link.downloads >= link.max_downloads:
                raise LinkExpired(link_id)
            link.downloads += 1
            w.put("links", link_id.encode(), link.encode())
        return link
