"""Object keys as LMDB keys, keeping S3's order (binary UTF-8) within LMDB's 511-byte key limit.

An LMDB key is `bucket id (4 bytes) + object key` for keys of up to `SHORT` bytes. A longer key
(S3 allows 1024) is stored as `bucket id + first SHORT bytes + 16-byte BLAKE3 of the whole key`, and
its row holds the full key. Such rows sort exactly where their keys belong relative to every other
key; only keys that share all of their first SHORT bytes form a *group* whose members LMDB orders by
hash, and the listing code sorts each group by full key (see `listing.py`). The two forms are told
apart by length: short forms are at most 4 + SHORT bytes, long forms exactly 4 + SHORT + 16.
"""

from __future__ import annotations

import blake3

from .errors import InvalidObjectKey

MAX_KEY_BYTES = 1024
SHORT = 490
_HASH = 16
BUCKET_ID_BYTES = 4
LONG_FORM_LEN = BUCKET_ID_BYTES + SHORT + _HASH


def validate_key(key: str) -> bytes:
    """The UTF-8 bytes of a valid object key, or InvalidObjectKey."""
    if not key:
        raise InvalidObjectKey("object key must not be empty")
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidObjectKey("object key is not valid UTF-8") from e
    if len(raw) > MAX_KEY_BYTES:
        raise InvalidObjectKey(f"object key is {len(raw)} bytes, the limit is {MAX_KEY_BYTES}")
    return raw


def bucket_prefix(bucket_id: int) -> bytes:
    return bucket_id.to_bytes(BUCKET_ID_BYTES, "big")


def encode(bucket_id: int, raw_key: bytes) -> bytes:
    """The LMDB key of an object key (already UTF-8)."""
    if len(raw_key) <= SHORT:
        return bucket_prefix(bucket_id) + raw_key
    return bucket_prefix(bucket_id) + raw_key[:SHORT] + blake3.blake3(raw_key).digest(_HASH)


def seek_position(bucket_id: int, raw_key: bytes) -> bytes:
    """Where to position a cursor to find the first key >= raw_key (group-aware callers refine)."""
    return bucket_prefix(bucket_id) + raw_key[:SHORT]


def is_long_form(lmdb_key: bytes) -> bool:
    return len(lmdb_key) == LONG_FORM_LEN


def group_of(lmdb_key: bytes) -> bytes:
    """The shared part of a long-form key: bucket id + first SHORT bytes."""
    return lmdb_key[: BUCKET_ID_BYTES + SHORT]


def short_key(lmdb_key: bytes) -> bytes:
    """The object key of a short-form LMDB key."""
    return lmdb_key[BUCKET_ID_BYTES:]
