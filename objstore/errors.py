"""Errors raised by the storage engine.

Each layer raises its own errors and only the edge translates them: these carry no HTTP status.
The class names follow S3's error codes where an S3 code exists, so the S3 layer can map them by name.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager


class StoreError(Exception):
    """Base class of every error the storage engine raises on purpose."""

    code = "InternalError"


class NoSuchBucket(StoreError):
    code = "NoSuchBucket"


class NoSuchKey(StoreError):
    code = "NoSuchKey"


class NoSuchUpload(StoreError):
    code = "NoSuchUpload"


class NoSuchVersion(StoreError):
    """A version id that is well formed but names no version of the key."""

    code = "NoSuchVersion"

    def __init__(self, key: str, version_id: str):
        super().__init__(key)
        self.key = key
        self.version_id = version_id


class DeleteMarkerIsCurrent(NoSuchKey):
    """The key's latest version is a delete marker: it reads as absent, and S3 says which marker."""

    def __init__(self, key: str, marker_version_id: str):
        super().__init__(key)
        self.marker_version_id = marker_version_id


class VersionIsDeleteMarker(StoreError):
    """A read or tagging of a version that is a delete marker (S3: 405, the marker has no content)."""

    code = "MethodNotAllowed"

    def __init__(self, key: str, version_id: str, last_modified: float):
        super().__init__("The specified method is not allowed against this resource: the version is a delete marker.")
        self.key = key
        self.version_id = version_id
        self.last_modified = last_modified


class InvalidPartNumber(StoreError):
    """A part number past the object's last part (GetObject/HeadObject with partNumber)."""

    code = "InvalidPartNumber"


class BucketAlreadyExists(StoreError):
    code = "BucketAlreadyExists"


class BucketAlreadyOwnedByYou(StoreError):
    code = "BucketAlreadyOwnedByYou"


class BucketNotEmpty(StoreError):
    code = "BucketNotEmpty"


class InvalidObjectKey(StoreError):
    """A key that is empty, not UTF-8 or longer than 1024 bytes (S3 calls the last KeyTooLongError)."""

    code = "KeyTooLongError"


class EntityTooLarge(StoreError):
    """The object is larger than the owner's per-object size limit."""

    code = "EntityTooLarge"


class QuotaExceeded(StoreError):
    """Storing the object would take the owner's logical usage past their quota."""

    code = "QuotaExceeded"


class PreconditionFailed(StoreError):
    """A conditional write (e.g. create only if absent) found its condition false."""

    code = "PreconditionFailed"


class InvalidPart(StoreError):
    code = "InvalidPart"


class NoSuchUser(StoreError):
    code = "NoSuchUser"


class UserAlreadyExists(StoreError):
    code = "UserAlreadyExists"


class NoSuchAccessKey(StoreError):
    code = "InvalidAccessKeyId"


class AccessKeyAlreadyExists(StoreError):
    code = "AccessKeyAlreadyExists"


class InvalidAccessKey(StoreError):
    """An access key id or secret that cannot be used (empty, unprintable, too long)."""

    code = "InvalidArgument"


class ChunkMissing(StoreError):
    """A chunk the request needs is not there to use.

    On a write: a chunk a new object depends on disappeared before the object committed (an upload
    that outlived the GC grace period); nothing is stored and the client may retry. On a read: a chunk
    of the object was found damaged or missing and quarantined (`quarantine.py`, by scrub or fsck), or
    is gone from under the metadata; no byte of it is sent, and the message names the chunk.
    """

    code = "ServiceUnavailable"


class ChunkStoreUnavailable(StoreError):
    """The chunk store (an S3-compatible object store shared by nodes) failed or could not be reached;
    nothing was committed and the client may retry."""

    code = "ServiceUnavailable"


class SealingKeyError(StoreError):
    """The secrets' sealing key is missing, malformed, or not the one the secrets were sealed with:
    refused as the store opens; a node of a cluster set up with another key meets it on a request,
    the server's fault (500)."""

    code = "InternalError"


class ChunkStoreClaimed(StoreError):
    """The chunk store holds another store's chunks (`identity.claim_chunks`): refused at startup."""

    code = "InvalidRequest"


class FormatError(StoreError):
    """A persisted record has a format version this code does not understand."""

    code = "InternalError"


class InvalidArgument(StoreError):
    code = "InvalidArgument"


class InvalidRequest(StoreError):
    code = "InvalidRequest"


class BadDigest(StoreError):
    """A checksum the client gave does not match the content."""

    code = "BadDigest"


class InvalidPartOrder(StoreError):
    code = "InvalidPartOrder"


class EntityTooSmall(StoreError):
    code = "EntityTooSmall"


class InvalidToken(StoreError):
    """A REST API bearer token that is unknown (never issued, rotated away or revoked)."""

    code = "InvalidToken"


class NoSuchLink(StoreError):
    """A short link id that was never issued, or was revoked."""

    code = "NoSuchLink"


class LinkExpired(StoreError):
    """A short link past its expiry time or out of downloads."""

    code = "LinkExpired"


class StorageFull(StoreError):
    """The server has no room for what is being written: nothing of it was kept, and deleting frees room.

    Raised for a filesystem that says ENOSPC or EDQUOT (`disk_full_errors`), for free space down to the
    floor uploads leave for deletes (`diskspace.py`), for a metadata map that cannot grow
    (`MetadataMapFull`), and on a cluster for a PostgreSQL that says disk_full (SQLSTATE 53100,
    `meta/postgres.py`) and an object store that says it is full (`chunks/s3.py`). The message says
    which; the edges answer 507 Insufficient Storage (RFC 4918), as MinIO answers its XMinioStorageFull.
    """

    code = "StorageFull"

    NO_SPACE = "The server's storage is full: no space left on its disk. Delete objects to make room."
    NO_QUOTA = (
        "The server's storage is full: the disk quota of its data directory is used up. Delete objects to make room."
    )
    FLOOR = (
        "The server's storage is full: its disk is down to the space kept free for deletes. "
        "Delete objects to make room."
    )
    DATABASE = (
        "The server's storage is full: its metadata database (PostgreSQL) has no space left on its disk. "
        "Delete objects, or give the database more room."
    )
    CHUNK_STORE = (
        "The server's storage is full: its chunk store (the S3-compatible object store) has no room "
        "({answer}). Delete objects, or give the chunk store more room."
    )


class MetadataMapFull(StorageFull):
    """The LMDB metadata map is full and may not grow further (its cap) or could not (the mapping failed)."""

    MAP = (
        "The server's storage is full: its metadata map (LMDB) is full and cannot grow further. "
        "Delete objects to make room."
    )


class StorageIOError(StoreError):
    """The server's disk failed a write or its flush (EIO): nothing of the write was kept or acknowledged.
    Or it failed a read (`reading`): nothing of what could not be read was sent.

    A failed flush is never retried and called good (PostgreSQL's "fsyncgate": after a failed fsync the
    kernel may have dropped the dirty pages, and a second fsync succeeds with the data lost): the write
    fails, its staged files go with it, and a retry by the client writes everything again. The edges
    answer 503, naming the cause, with a request id.
    """

    code = "StorageIOError"

    IO = (
        "The server's storage failed: an I/O error (EIO) on its disk. Nothing of this write was kept; "
        "retry later, and tell the server's administrator if it goes on."
    )

    READ = (
        "The server's storage failed: an I/O error (EIO) on its disk reading {what}. None of its bytes were "
        "sent; retry later, and tell the server's administrator if it goes on."
    )

    def __init__(self, message: str = IO):
        super().__init__(message)

    @classmethod
    def reading(cls, what: str) -> StorageIOError:
        """The error of a read of `what` ("chunk <hex>", "the metadata") that met EIO."""
        return cls(cls.READ.format(what=what))


# What a filesystem answers when it has no room for a write: out of space, or the owner's disk quota.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def storage_full(code: int) -> StorageFull:
    """The StorageFull of a write refused with `code` (one of DISK_FULL_ERRNOS)."""
    return StorageFull(StorageFull.NO_QUOTA if code == errno.EDQUOT else StorageFull.NO_SPACE)


@contextmanager
def disk_full_errors() -> Iterator[None]:
    """An OSError that says the disk is full becomes StorageFull (chained); any other passes as it is."""
    try:
        yield
    except OSError as e:
        if e.errno in DISK_FULL_ERRNOS:
            raise storage_full(e.errno) from e
        raise


@contextmanager
def disk_errors() -> Iterator[None]:
    """`disk_full_errors`, and an EIO as StorageIOError (chained); any other OSError passes as it is."""
    try:
        with disk_full_errors():
            yield
    except OSError as e:
        if e.errno == errno.EIO:
            raise StorageIOError() from e
        raise
