"""Quarantine: chunks whose bytes were found changed or gone, taken out of service, and the objects
they belong to.

A damaged chunk (scrub or fsck read bytes that do not hash to its name, or none at all) is
1. moved aside by the chunk store, kept for inspection (`<data dir>/quarantine/`, or the S3 store's
   `quarantine/` prefix);
2. marked in its row (`refcount.quarantine`): it is no longer `live`, so the next writer of the same
   bytes stores them again, which heals it (`refcount.add_refs`), and GC still collects it once
   nothing needs it;
3. named in every manifest that lists it (`manifests.mark_damaged`), so that reads of those objects
   answer a clear error (`ChunkMissing`, a 503 naming the chunk) instead of wrong bytes or a
   broken response.

The bytes move before the row is marked: a writer that meets neither (the mark not yet committed)
references bytes that are gone, and the manifests it makes are found by the walk of step 3, which
runs after the mark. No index maps a chunk to its manifests, so step 3 and the report of the objects
(`holders`) walk every manifest page; fine for the rare damage and for a report.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from . import buckets, manifests, multipart, refcount, versions
from .chunks import ChunkStore
from .meta import MetadataStore, ReadTxn, WriteTxn

STEP = 1000  # rows read per read transaction by the walks here


@dataclass
class Holder:
    """What needs a damaged chunk: a version of an object, or a part of a multipart upload in progress."""

    bucket: str
    key: str
    version_id: str | None = None  # an object's version ("null" where the bucket never had versioning)
    upload_id: str | None = None  # a part's upload
    part_number: int | None = None

    def describe(self) -> str:
        if self.upload_id is not None:
            return f"{self.bucket}/{self.key} (part {self.part_number} of upload {self.upload_id})"
        return f"{self.bucket}/{self.key} (version {self.version_id})"


def quarantine(meta: MetadataStore, chunks: ChunkStore, digest: bytes) -> bool:
    """Steps 1 and 2 for one chunk: its bytes (if any) moved aside, its row marked. True if it was
    marked (False for a chunk without a row, or one GC is deleting: nothing reads it any more)."""
    chunks.quarantine(digest)
    return mark(meta, digest)


def mark(meta: MetadataStore, digest: bytes) -> bool:
    """Step 2 alone, for a chunk whose bytes are already aside or gone."""
    marked: bool = meta.transact(partial(refcount.quarantine, digest=digest))
    return marked


def release(meta: MetadataStore, digest: bytes) -> bool:
    """Take the mark off a chunk whose right bytes are back (restored from a backup); True if marked."""
    released: bool = meta.transact(partial(refcount.release, digest=digest))
    return released


def mark_manifests(meta: MetadataStore, digests: set[bytes]) -> dict[bytes, set[bytes]]:
    """Step 3: every manifest listing one of `digests` marked damaged; returns them, with the digests
    each lists."""
    found = manifests_listing(meta, digests)
    mids = sorted(found)
    for i in range(0, len(mids), STEP):
        meta.transact(partial(_mark, mids=mids[i : i + STEP]))
    return found


def _mark(w: WriteTxn, mids: list[bytes]) -> None:
    for mid in mids:
        manifests.mark_damaged(w, mid)


def manifests_listing(meta: MetadataStore, digests: set[bytes]) -> dict[bytes, set[bytes]]:
    """The manifests that list any of `digests` (a walk of every page), with the digests each lists."""
    found: dict[bytes, set[bytes]] = {}
    after: bytes | None = b""
    while digests and after is not None:
        step, after = meta.read(partial(manifests.holding, digests=digests, after=after, limit=STEP))
        for mid, listed in step.items():
            found.setdefault(mid, set()).update(listed)
    return found


def clear_healed(meta: MetadataStore) -> int:
    """Take the damaged mark off manifests none of whose chunks is quarantined any more (healed by a
    writer, or restored); how many. A walk of every manifest head."""
    cleared = 0
    after: bytes | None = b""
    while after is not None:
        damaged, after = meta.read(partial(manifests.damaged_after, after=after, limit=STEP))
        for mid in damaged:
            cleared += meta.transact(partial(_clear_if_healed, mid=mid))
    return cleared


def _clear_if_healed(w: WriteTxn, mid: bytes) -> bool:
    return manifests.quarantined_chunk(w, mid) is None and manifests.mark_damaged(w, mid, damaged=False)


def quarantined(meta: MetadataStore) -> list[tuple[bytes, refcount.ChunkRow]]:
    """Every chunk quarantined now, with its row (a walk of every chunk row)."""
    found: list[tuple[bytes, refcount.ChunkRow]] = []
    after: bytes | None = None
    while True:
        rows = meta.read(partial(refcount.rows_after, after=after, limit=STEP))
        found += [(digest, row) for digest, row in rows if row.quarantined]
        if len(rows) < STEP:
            return found
        after = rows[-1][0]


def holders(meta: MetadataStore, digests: set[bytes]) -> dict[bytes, list[Holder]]:
    """For each of `digests`, the object versions and upload parts whose content lists it."""
    listing = manifests_listing(meta, digests)
    return meta.read(partial(_holders, listing=listing, digests=digests))


def _holders(r: ReadTxn, listing: dict[bytes, set[bytes]], digests: set[bytes]) -> dict[bytes, list[Holder]]:
    found: dict[bytes, list[Holder]] = {digest: [] for digest in digests}
    by_hex = {mid.hex(): listed for mid, listed in listing.items()}
    names = {b.id: b.name for b in buckets.all_buckets(r)}
    for bucket_id, record in versions.with_content(r, set(by_hex)):
        holder = Holder(names.get(bucket_id, f"#{bucket_id}"), record.key, version_id=record.version_id)
        for digest in by_hex[record.manifest]:
            found[digest].append(holder)
    for upload, part in multipart.part_refs(r):
        if upload is not None and part.manifest in by_hex:
            holder = Holder(upload.bucket, upload.key, upload_id=upload.upload_id, part_number=part.number)
            for digest in by_hex[part.manifest]:
                found[digest].append(holder)
    return found
