"""Short links: public ids that name an owner's bucket/key, with expiry and a download budget.

A link follows the key's current version, unless it was made with a `version_id`: an overwritten
object is served in its new form and a deleted one (or one whose current version is a delete
marker) makes the link answer "no such key"; a link to a version serves that version until it is
removed. The web edge (`shortlinks`) decides how to render.

A link that `owns_object` (uploaded for it, at `<link id>/<name>` in the owner's default bucket)
owns that key the same way: deleting or sweeping the link deletes every version there then, also
one an S3 client wrote over it (the link was serving that version, and the key lives under the
link's id). Never another owner's: a bucket of that name that changed hands is left alone.

This module owns the `links` table (link id -> LinkRecord) and `link_owners` (owner + NUL +
sequence -> link id: an owner's links in order); the sweep, the statistics and the uploads call
its functions inside their transactions.

A link is spent when past `expires_at`, out of `max_downloads`, or not downloaded for the idle
period (`StoreConfig.link_idle_seconds`; counted from creation when never downloaded). A spent
link answers LinkExpired at once; the sweep (`sweep.py`) later deletes what it backed and
keeps a tombstone. Download statistics are batched (`stats.py`) except for links with a
download budget, whose count must be exact at the moment of the download.
"""

from __future__ import annotations

import heapq
import re
import secrets
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .. import buckets, keys, versions
from ..accounts import count_downloads
from ..config import StoreConfig
from ..errors import (
    InvalidArgument,
    LinkExpired,
    NoSuchBucket,
    NoSuchKey,
    NoSuchLink,
    NoSuchVersion,
    StoreError,
    VersionIsDeleteMarker,
)
from ..meta import MetadataStore, ReadTxn, WriteTxn, scan
from ..objects import Objects
from ..records import MAX_RECORD_INT, LinkRecord, ObjectRecord

LINKS, OWNERS = "links", "link_owners"
TABLES = (LINKS, OWNERS)
# No 0/o, 1/l/i: an id read aloud or copied from a screenshot stays unambiguous.
ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
ID_LENGTH = 8
MIN_ID_LENGTH, MAX_ID_LENGTH = 6, 32
VALID_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_ATTEMPTS = 16  # 31^8 ids: a collision is rare, sixteen in a row means something is broken
MAX_PAGE = 1000
KEEP = object()  # `Links.change`: leave this limit as it is
MAX_EXPIRES_IN = 100 * 365 * 86400.0  # expiry times must stay representable (and sortable) floats
MAX_DOWNLOADS = MAX_RECORD_INT


def count(r: ReadTxn) -> int:
    """How many links there are (spent, expired and revoked ones until they are swept)."""
    return r.count(LINKS)


def new_link_id(length: int = ID_LENGTH) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def is_valid_id(link_id: str) -> bool:
    """What a link id may be: pyblob's own (ALPHABET), or one kept from pyBlobServer (letters of
    both cases and digits; `pyblob import pyblobserver`)."""
    return VALID_ID.fullmatch(link_id) is not None


def owner_index_key(owner: str, seq: int) -> bytes:
    return owner.encode() + b"\0" + struct.pack(">Q", seq)


def check_limits(expires_in: float | None, max_downloads: int | None) -> None:
    if expires_in is not None and (isinstance(expires_in, bool) or not 0 < expires_in <= MAX_EXPIRES_IN):
        raise InvalidArgument(f"expires_in must be a positive number of seconds, at most {MAX_EXPIRES_IN:.0f}")
    if max_downloads is not None and (isinstance(max_downloads, bool) or not 1 <= max_downloads <= MAX_DOWNLOADS):
        raise InvalidArgument(f"max_downloads must be a positive integer, at most {MAX_DOWNLOADS}")


def is_spent(link: LinkRecord, now: float, idle_seconds: float = 0) -> bool:
    """Past its expiry time, out of downloads, idle too long, or already swept."""
    if link.expired or (link.expires_at is not None and now >= link.expires_at):
        return True
    if idle_seconds > 0 and now >= max(link.last_download or link.created, link.imported or 0.0) + idle_seconds:
        return True
    return link.max_downloads is not None and link.downloads >= link.max_downloads


# Inside the caller's transaction ---------------------------------------------------------------
def find(r: ReadTxn, link_id: str) -> LinkRecord | None:
    """The link's row as stored (revoked and swept ones too), or None."""
    raw = r.get(LINKS, link_id.encode()) if link_id else None
    return LinkRecord.decode(raw) if raw is not None else None


def put(w: WriteTxn, link: LinkRecord) -> None:
    w.put(LINKS, link.id.encode(), link.encode())


def rows_after(r: ReadTxn, after: str, limit: int) -> list[LinkRecord]:
    """Up to `limit` links by id after `after` ("" for the first)."""
    start = after.encode() + b"\0" if after else b""
    return [LinkRecord.decode(v) for _, v in r.range(LINKS, start, limit=limit)]


def most_downloaded(r: ReadTxn, limit: int) -> list[LinkRecord]:
    """The `limit` links with the most downloads (then bytes served), read in one pass."""
    rows = (LinkRecord.decode(v) for _, v in r.range(LINKS))
    return heapq.nlargest(limit, rows, key=lambda link: (link.downloads, link.bytes_served))


def add_downloads(w: WriteTxn, link_id: str, downloads: int, nbytes: int, last: float) -> bool:
    """Add downloads to a link's and its owner's statistics; False if the link is gone."""
    link = find(w, link_id)
    if link is None:
        return False
    link.downloads += downloads
    link.bytes_served += nbytes
    link.last_download = max(link.last_download or 0.0, last)
    put(w, link)
    count_downloads(w, link.owner, downloads, nbytes, last)
    return True


def drop_owner(w: WriteTxn, owner: str) -> None:
    """Delete every link of `owner` (a removed user's: a later user of that name must not inherit them)."""
    doomed = [k for k, v in w.range(LINKS) if LinkRecord.decode(v).owner == owner]
    for k in doomed:
        w.delete(LINKS, k)
    for k in [k for k, _ in scan(w, OWNERS, owner.encode() + b"\0")]:
        w.delete(OWNERS, k)


@dataclass
class LinkPage:
    links: list[LinkRecord]
    next_cursor: str | None  # pass back as `before` for the next (older) page


class Links:
    """Short links: create, resolve, count downloads, list, revoke and delete (objects they own too)."""

    def __init__(self, meta: MetadataStore, config: StoreConfig, clock: Callable[[], float], objects: Objects):
        if not MIN_ID_LENGTH <= config.link_id_length <= MAX_ID_LENGTH:
            raise InvalidArgument(f"link ids must be {MIN_ID_LENGTH}-{MAX_ID_LENGTH} characters")
        self.meta = meta
        self.config = config
        self.clock = clock
        self.objects = objects
        self.id_length = config.link_id_length

    @property
    def idle_seconds(self) -> float:
        return self.config.link_idle_seconds

    def create(
        self,
        owner: str,
        bucket: str,
        key: str,
        expires_in: float | None = None,
        max_downloads: int | None = None,
        version_id: str | None = None,
    ) -> LinkRecord:
        """A new link to `owner`'s existing object bucket/key (its current version, or `version_id`);
        NoSuchBucket / NoSuchKey / NoSuchVersion otherwise."""
        check_limits(expires_in, max_downloads)
        versions.check_version_id(version_id)

        def create(w: WriteTxn) -> LinkRecord:
            owned_object(w, owner, bucket, key, version_id)
            return self.add(
                w,
                self.free_id(w),
                owner,
                bucket,
                key,
                expires_in=expires_in,
                max_downloads=max_downloads,
                version_id=version_id,
            )

        return self.meta.transact(create)

    def add(self, w: WriteTxn, link_id: str, owner: str, bucket: str, key: str, **attrs: object) -> LinkRecord:
        """Write a new link row and its owner-index entry inside `w`."""
        expires_in = attrs.pop("expires_in", None)
        created = attrs.pop("created", None)  # an imported link keeps its creation time
        now = self.clock() if created is None else float(created)  # type: ignore[arg-type]
        expires_at = now + float(expires_in) if expires_in is not None else None  # type: ignore[arg-type]
        seq = w.next_id("link")
        record = LinkRecord(link_id, owner, bucket, key, now, expires_at, seq=seq, **attrs)  # type: ignore[arg-type]
        put(w, record)
        w.put(OWNERS, owner_index_key(owner, seq), link_id.encode())
        return record

    def free_id(self, r: ReadTxn) -> str:
        for _ in range(MAX_ATTEMPTS):
            link_id = new_link_id(self.id_length)
            if r.get(LINKS, link_id.encode()) is None:
                return link_id
        raise StoreError(f"no free link id after {MAX_ATTEMPTS} attempts")

    def get(self, link_id: str) -> LinkRecord:
        """The live or spent link; NoSuchLink when unknown or revoked."""
        return self.meta.read(lambda r: _row(r, link_id))

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
        end = prefix + bytes.fromhex(before) if before else prefix + b"\xff" * 8

        def page(r: ReadTxn) -> list[LinkRecord]:
            found = []
            for _, link_id in r.range(OWNERS, prefix, end, reverse=True, limit=limit + 1):
                link = find(r, link_id.decode())
                if link is not None:
                    found.append(link)
            return found

        found = self.meta.read(page)
        more = len(found) > limit
        found = found[:limit]
        return LinkPage(found, struct.pack(">Q", found[-1].seq).hex() if more else None)

    def revoke(self, link_id: str, owner: str) -> LinkRecord:
        """Turn the link off for good; another owner's link is NoSuchLink, as an unknown one.

        A file uploaded only for this link goes with it (as `delete`): nothing could reach it but
        S3, and it would hold quota out of sight of the file list.
        """

        def revoke(w: WriteTxn) -> LinkRecord:
            link = _row(w, link_id)
            if link.owner != owner:
                raise NoSuchLink(link_id)
            link.revoked = True
            put(w, link)
            self.unindex(w, link)
            if link.owns_object:
                self.drop_object(w, link)
            return link

        return self.meta.transact(revoke)

    def change(
        self,
        link_id: str,
        owner: str,
        expires_in: float | object | None = KEEP,
        max_downloads: int | object | None = KEEP,
    ) -> LinkRecord:
        """New limits for a live link: `expires_in` seconds from now (None: never), `max_downloads`
        (None: no limit); `KEEP` leaves one as it is. A revoked or swept link is NoSuchLink."""

        def change(w: WriteTxn) -> LinkRecord:
            link = _row(w, link_id)
            if link.owner != owner or link.revoked or link.expired:
                raise NoSuchLink(link_id)
            if expires_in is not KEEP:
                assert expires_in is None or isinstance(expires_in, (int, float))
                check_limits(expires_in, None)
                link.expires_at = None if expires_in is None else self.clock() + expires_in
            if max_downloads is not KEEP:
                assert max_downloads is None or isinstance(max_downloads, int)
                check_limits(None, max_downloads)
                link.max_downloads = max_downloads
            put(w, link)
            return link

        return self.meta.transact(change)

    def delete(self, link_id: str, owner: str) -> LinkRecord:
        """Remove the link and, when it was uploaded for it, its object (quota given back)."""

        def delete(w: WriteTxn) -> LinkRecord:
            link = _row(w, link_id)
            if link.owner != owner:
                raise NoSuchLink(link_id)
            self.drop(w, link)
            return link

        return self.meta.transact(delete)

    def drop(self, w: WriteTxn, link: LinkRecord) -> None:
        """Delete the link row, its index entry and an object it owns, inside `w`."""
        w.delete(LINKS, link.id.encode())
        self.unindex(w, link)
        if link.owns_object:
            self.drop_object(w, link)

    def unindex(self, w: WriteTxn, link: LinkRecord) -> None:
        w.delete(OWNERS, owner_index_key(link.owner, link.seq))

    def drop_object(self, w: WriteTxn, link: LinkRecord) -> bool:
        """Delete the object a link owns, inside `w`; never in another owner's bucket of that name."""
        if buckets.owned(w, link.owner, link.bucket) is None:
            return False
        return self.objects.purge_key_in(w, link.bucket, link.key)

    def objects_of(self, links: Sequence[LinkRecord]) -> Sequence[ObjectRecord | None]:
        """The objects `links` name right now, None where gone, read in one transaction (for listings)."""

        def lookup(r: ReadTxn) -> list[ObjectRecord | None]:
            found: list[ObjectRecord | None] = []
            for link in links:
                try:
                    found.append(owned_object(r, link.owner, link.bucket, link.key, link.version_id))
                except (NoSuchBucket, NoSuchKey, NoSuchVersion, VersionIsDeleteMarker):
                    found.append(None)
            return found

        return self.meta.read(lookup)

    def resolve(self, link_id: str, now: float) -> tuple[LinkRecord, ObjectRecord]:
        """The link and the object it names right now.

        NoSuchLink: unknown or revoked; LinkExpired: spent (see `is_spent`); NoSuchKey: the
        object (or its bucket, or the owner's hold on it) is gone.
        """

        def resolve(r: ReadTxn) -> tuple[LinkRecord, ObjectRecord]:
            link = _row(r, link_id)
            if is_spent(link, now, self.idle_seconds):
                raise LinkExpired(link_id)
            try:
                return link, owned_object(r, link.owner, link.bucket, link.key, link.version_id)
            except (NoSuchBucket, NoSuchVersion, VersionIsDeleteMarker) as exc:
                raise NoSuchKey(link.key) from exc

        return self.meta.read(resolve)

    def count_download(self, link_id: str, nbytes: int = 0) -> LinkRecord:
        """Count one download now; LinkExpired if the budget is already spent, so burn-after-N is
        exact. For links with `max_downloads`; others go through `stats.DownloadStats`."""

        def count(w: WriteTxn) -> LinkRecord:
            link = _row(w, link_id)
            if link.max_downloads is not None and link.downloads >= link.max_downloads:
                raise LinkExpired(link_id)
            add_downloads(w, link_id, 1, nbytes, self.clock())
            return _row(w, link_id)

        return self.meta.transact(count)

    def exists(self, link_id: str) -> bool:
        """Whether a link row has this id (revoked and swept ones included)."""
        return self.meta.read(lambda r: find(r, link_id)) is not None

    def most_downloaded(self, limit: int) -> Sequence[LinkRecord]:
        return self.meta.read(lambda r: most_downloaded(r, limit))

    def all_owned_by(self, owner: str) -> Iterator[LinkPage]:
        """Every page of `owner`'s live links, newest first (each page read when asked for)."""
        before: str | None = None
        while True:
            page = self.list(owner, before=before)
            yield page
            if page.next_cursor is None:
                return
            before = page.next_cursor


def owned_object(r: ReadTxn, owner: str, bucket: str, key: str, version_id: str | None = None) -> ObjectRecord:
    """`owner`'s object bucket/key (or that version); another owner's bucket looks the same as none."""
    record = buckets.owned(r, owner, bucket)
    if record is None:
        raise NoSuchBucket(bucket)
    return versions.resolve(r, record.id, keys.validate_key(key), version_id)


def _row(r: ReadTxn, link_id: str) -> LinkRecord:
    """The link's row; NoSuchLink when unknown or revoked."""
    link = find(r, link_id) if is_valid_id(link_id) else None
    if link is None or link.revoked:
        raise NoSuchLink(link_id)
    return link
