"""Errors raised by the storage engine.

Each layer raises its own errors and only the edge translates them: these carry no HTTP status.
The class names follow S3's error codes where an S3 code exists, so the S3 layer can map them by name.
"""


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
    """A chunk a new object depends on disappeared before the object committed.

    Only possible when an upload outlives the GC grace period; nothing is stored and the client may retry.
    """

    code = "ServiceUnavailable"


class ChunkStoreUnavailable(StoreError):
    """The chunk store (an S3-compatible object store shared by nodes) failed or could not be reached;
    nothing was committed and the client may retry."""

    code = "ServiceUnavailable"


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
