"""A store's identity, and the chunk store it owns.

A store (its metadata) gets a random id on first use, kept in the `meta` table; `pyblob migrate`
copies it with the rest, so a moved store keeps its id. A chunk store shared over the network (an
S3 bucket and prefix) is claimed by the first store that opens it, and refused to any other: two
stores over one prefix would each take the other's chunks for garbage (and deduplicate into
chunks the other may delete), so a second deployment pointed at the same bucket by mistake stops
at startup instead of losing data.
"""

from __future__ import annotations

import secrets

from .chunks import ChunkStore
from .errors import ChunkStoreClaimed
from .meta import MetadataStore, WriteTxn
from .meta.interface import META

STORE_ID = b"store-id"  # in the `meta` table


def store_id(meta: MetadataStore) -> str:
    """The store's id, made on first use (16 random bytes, hex)."""

    def get_or_make(w: WriteTxn) -> bytes:
        found = w.get(META, STORE_ID)
        if found is None:
            found = secrets.token_hex(16).encode()
            w.put(META, STORE_ID, found)
        return found

    return meta.transact(get_or_make).decode()


def adopt_id(meta: MetadataStore, new_id: str) -> str:
    """Give the store `new_id` (a store moved in by `pyblob migrate` keeps its source's); its old id."""

    def swap(w: WriteTxn) -> bytes:
        old = w.get(META, STORE_ID) or b""
        w.put(META, STORE_ID, new_id.encode())
        return old

    return meta.transact(swap).decode()


def claim_chunks(chunks: ChunkStore, owner: str, replacing: str | None = None) -> None:
    """`chunks` is `owner`'s from now on, unless another store than `replacing` claimed it first
    (ChunkStoreClaimed)."""
    holder = chunks.claim(owner, replacing)
    if holder != owner:
        raise ChunkStoreClaimed(
            f"the chunk store belongs to another pyblob store (id {holder}, this one is {owner}): give this "
            "store a bucket or prefix of its own (PYBLOB_CHUNK_STORE), or use the metadata store that owns it"
        )
