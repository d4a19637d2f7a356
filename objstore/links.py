"""Short links: public ids that name an owner's bucket/key, with expiry and a download budget.

A link follows the key's current version, unless it was made with a `version_id`: an overwritten
object is served in its new form and a deleted one (or one whose current version is a delete
marker) makes the link answer "no such key"; a link to a version serves that version until it is
removed. The web edge (`shortlinks`) decides how to render.

A link that `owns_object` (uploaded for it, at `<link id>/<name>` in the owner's default bucket)
owns that key the same way: deleting or sweeping the link deletes every version there then, also
one an S3 client wrote over it (the link was serving that version, and the key lives under the
link's id). Never another owner's: a bucket of that name that changed hands is left alone.

A link is spent when past `expires_at`, out of `max_downloads`, or not downloaded for the idle
period (`StoreConfig.link_idle_seconds`; counted from creation when never downloaded). A spent
link answers LinkExpired at once; the sweep (`linksweep.py`) later deletes what it backed and
keeps a tombstone. Download statistics are batched (`linkstats.py`) except for links with a
download budget, whose count must be exact at the moment of the download.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import keys, versions
from .db import Txn
from .errors import (
    InvalidArgument,
    LinkExpired,
    NoSuchBucket,
    NoSuchKey,
    NoSuchLink,
    NoSuchVersion,
    StoreError,
    VersionIsDeleteMarker,
)
from .records import BucketRecord, LinkRecord, ObjectRecord

if TYPE_CHECKING:
    from .store import Store

# No 0/o, 1/l/i: an id read aloud or copied from a screenshot stays unambiguous.
ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
ID_LENGTH = 8
MIN_ID_LENGTH, MAX_ID_LENGTH = 6, 32
MAX_ATTEMPTS = 16  # 31^8 ids: a collision is rare, sixteen in a row means something is broken
MAX_PAGE = 1000


def new_link_id(length: int = ID_LENGTH) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def is_valid_id(link_id: str) -> bool:
    return MIN_ID_LENGTH <= len(link_id) <= MAX_ID_LENGTH and all(c in ALPHABET for c in link_id)


def owner_index_key(owner: str, seq: int) -> bytes:
    return owner.encode() + b"\0" + struct.pack(">Q", seq)


MAX_EXPIRES_IN = 100 * 365 * 86400.0  # expiry times must stay representable (and sortable) floats


def check_limits(expires_in: float | None, max_downloads: int | None) -> None:
    if expires_in is not None and (isinstance(expires_in, bool) or not 0 < expires_in <= MAX_EXPIRES_IN):
        raise InvalidArgument(f"expires_in must be a positive number of seconds, at most {MAX_EXPIRES_IN:.0f}")
    if max_downloads is not None and (isinstance(max_downloads, bool) or max_downloads < 1):
        raise InvalidArgument("max_downloads must be a positive integer")


def is_spent(link: LinkRecord, now: float, idle_seconds: float = 0) -> bool:
    """Past its expiry time, out of downloads, idle too long, or already swept."""
    if link.expired or (link.expires_at is not None and now >= link.expires_at):
        return True
    if idle_seconds > 0 and now >= (link.last_download or link.created) + idle_seconds:
        return True
    return link.max_downloads is not None and link.downloads >= link.max_downloads


@dataclass
class LinkPage:
    links: list[LinkRecord]
    next_cursor: str | None  # pass back as `before` for the next (older) page


class Links:
    def __init__(self, store: Store, id_length: int = ID_LENGTH):
        if not MIN_ID_LENGTH <= id_length <= MAX_ID_LENGTH:
            raise InvalidArgument(f"link ids must be {MIN_ID_LENGTH}-{MAX_ID_LENGTH} characters")
        self.store = store
        self.id_length = id_length

    @property
    def idle_seconds(self) -> float:
        return self.store.config.link_idle_seconds

    def create(
        self, owner: str, bucket: str, key: str, expires_in: float | None = None, max_downloads: int | None = None,
        version_id: str | None = None,
    ) -> LinkRecord:
        """A new link to `owner`'s existing object bucket/key (its current version, or `version_id`);
        NoSuchBucket / NoSuchKey / NoSuchVersion otherwise."""
        check_limits(expires_in, max_downloads)
        versions.check_version_id(version_id)
        with self.store.db.write() as w:
            self.owned_object(w, owner, bucket, key, version_id)
            return self.add(w, self.free_id(w), owner, bucket, key, expires_in=expires_in, max_downloads=max_downloads,
                            version_id=version_id)

    def add(self, w: Txn, link_id: str, owner: str, bucket: str, key: str, **attrs: object) -> LinkRecord:
        """Write a new link row and its owner-index entry inside `w`."""
        expires_in = attrs.pop("expires_in", None)
        now = self.store.clock()
        expires_at = now + float(expires_in) if expires_in is not None else None  # type: ignore[arg-type]
        seq = self.store.db.next_id(w, "link")
        record = LinkRecord(link_id, owner, bucket, key, now, expires_at, seq=seq, **attrs)  # type: ignore[arg-type]
        w.put("links", link_id.encode(), record.encode())
        w.put("link_owners", owner_index_key(owner, seq), link_id.encode())
        return record

    def free_id(self, r: Txn) -> str:
        for _ in range(MAX_ATTEMPTS):
            link_id = new_link_id(self.id_length)
            if r.get("links", link_id.encode()) is None:
                return link_id
        raise StoreError(f"no free link id after {MAX_ATTEMPTS} attempts")

    def owned_object(self, r: Txn, owner: str, bucket: str, key: str, version_id: str | None = None) -> ObjectRecord:
        raw_bucket = r.get("buckets", bucket.encode())
        if raw_bucket is None or BucketRecord.decode(raw_bucket).owner != owner:
            raise NoSuchBucket(bucket)  # another owner's bucket looks the same as none
        record = BucketRecord.decode(raw_bucket)
        return versions.resolve(r, record.id, keys.validate_key(key), version_id)

    def row(self, r: Txn, link_id: str) -> LinkRecord:
        """The link's row; NoSuchLink when unknown or revoked."""
        raw = r.get("links", link_id.encode()) if is_valid_id(link_id) else None
        if raw is None:
            raise NoSuchLink(link_id)
        link = LinkRecord.decode(raw)
        if link.revoked:
            raise NoSuchLink(link_id)
        return link

    def get(self, link_id: str) -> LinkRecord:
        """The live or spent link; NoSuchLink when unknown or revoked."""
        with self.store.db.read() as r:
            return self.row(r, link_id)

    def get_owned(self, link_id: str, owner: str) -> LinkRecord:
        """As `get`, and another owner's link is NoSuchLink too (ids are no oracle)."""
        link = self.get(link_id)
        if link.owner != owner:
            raise NoSuchLink(link_id)
        return link

    def list(self, owner: str, limit: int = MAX_PAGE, before: str | None = None) -> LinkPage:
        """`owner`'s links that are neither revoked nor swept, newest first, a page at a time."""
        limit = max(1, min(limit, MAX_PAGE))
        prefix = owner.encode() + b"\0"
        start = prefix + bytes.fromhex(before) if before else prefix + b"\xff" * 8
        found: list[LinkRecord] = []
        with self.store.db.read() as r:
            cursor = r.cursor("link_owners")
            positioned = cursor.prev() if cursor.set_range(start) else cursor.last()
            while positioned and bytes(cursor.key()).startswith(prefix) and len(found) <= limit:
                raw = r.get("links", bytes(cursor.value()))
                if raw is not None:
                    found.append(LinkRecord.decode(raw))
                positioned = cursor.prev()
        more = len(found) > limit
        found = found[:limit]
        return LinkPage(found, struct.pack(">Q", found[-1].seq).hex() if more else None)

    def revoke(self, link_id: str, owner: str) -> LinkRecord:
        """Turn the link off for good; another owner's link is NoSuchLink, as an unknown one.

        A file uploaded only for this link goes with it (as `delete`): nothing could reach it but
        S3, and it would hold quota out of sight of the file list.
        """
        with self.store.db.write() as w:
            link = self.row(w, link_id)
            if link.owner != owner:
                raise NoSuchLink(link_id)
            link.revoked = True
            w.put("links", link_id.encode(), link.encode())
            self.unindex(w, link)
            if link.owns_object:
                self.drop_object(w, link)
        return link

    def delete(self, link_id: str, owner: str) -> LinkRecord:
        """Remove the link and, when it was uploaded for it, its object (quota given back)."""
        with self.store.db.write() as w:
            link = self.row(w, link_id)
            if link.owner != owner:
                raise NoSuchLink(link_id)
            self.drop(w, link)
        return link

    def drop(self, w: Txn, link: LinkRecord) -> None:
        """Delete the link row, its index entry and an object it owns, inside `w`."""
        w.delete("links", link.id.encode())
        self.unindex(w, link)
        if link.owns_object:
            self.drop_object(w, link)

    def unindex(self, w: Txn, link: LinkRecord) -> None:
        w.delete("link_owners", owner_index_key(link.owner, link.seq))

    def drop_object(self, w: Txn, link: LinkRecord) -> bool:
        """Delete the object a link owns, inside `w`; never in another owner's bucket of that name."""
        raw_bucket = w.get("buckets", link.bucket.encode())
        if raw_bucket is None or BucketRecord.decode(raw_bucket).owner != link.owner:
            return False
        return self.store.purge_key_in(w, link.bucket, link.key)

    def objects(self, links: Sequence[LinkRecord]) -> Sequence[ObjectRecord | None]:
        """The objects `links` name right now, None where gone, read in one transaction (for listings)."""
        found: list[ObjectRecord | None] = []
        with self.store.db.read() as r:
            for link in links:
                try:
                    found.append(self.owned_object(r, link.owner, link.bucket, link.key, link.version_id))
                except (NoSuchBucket, NoSuchKey, NoSuchVersion, VersionIsDeleteMarker):
                    found.append(None)
        return found

    def resolve(self, link_id: str, now: float) -> tuple[LinkRecord, ObjectRecord]:
        """The link and the object it names right now.

        NoSuchLink: unknown or revoked; LinkExpired: spent (see `is_spent`); NoSuchKey: the
        object (or its bucket, or the owner's hold on it) is gone.
        """
        with self.store.db.read() as r:
            link = self.row(r, link_id)
            if is_spent(link, now, self.idle_seconds):
                raise LinkExpired(link_id)
            try:
                return link, self.owned_object(r, link.owner, link.bucket, link.key, link.version_id)
            except (NoSuchBucket, NoSuchVersion, VersionIsDeleteMarker) as exc:
                raise NoSuchKey(link.key) from exc

    def count_download(self, link_id: str, nbytes: int = 0) -> LinkRecord:
        """Count one download now; LinkExpired if the budget is already spent, so burn-after-N is
        exact. For links with `max_downloads`; others go through `linkstats.DownloadStats`."""
        with self.store.db.write() as w:
            link = self.row(w, link_id)
            if link.max_downloads is not None and link.downloads >= link.max_downloads:
                raise LinkExpired(link_id)
            now = self.store.clock()
            link.downloads += 1
            link.bytes_served += nbytes
            link.last_download = now
            w.put("links", link_id.encode(), link.encode())
            self.store.accounts.count_downloads(w, link.owner, 1, nbytes, now)
        return link
