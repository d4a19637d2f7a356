"""Conditional writes and deletes: what a request asks of a key's current version.

A write or delete judges its condition inside the write transaction that makes the change, and LMDB
admits one writer at a time, so nothing can change the key between the check and the change: of
two writers racing on the same condition, exactly one passes. (S3 answers 409
ConditionalRequestConflict when it cannot decide such a race; here there is never one to decide.)

S3's rules (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html,
https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html): only the current
version counts, and a current delete marker is no object. `if_none_match`: the key must have no
object. `if_match`: the key's object must have this ETag, or be any object for `ANY`; with no object
at all the answer is NoSuchKey, not PreconditionFailed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import NoSuchKey, PreconditionFailed
from .records import ObjectRecord

ANY = "*"


@dataclass(frozen=True)
class Precondition:
    if_none_match: bool = False  # the key must have no current object
    if_match: str | None = None  # the current object's ETag (no quotes), or ANY

    def check(self, key: str, latest: ObjectRecord | None) -> None:
        """Raise unless the condition holds for `latest`, the key's latest version (or None)."""
        found = latest if latest is not None and not latest.delete_marker else None
        if self.if_match is not None:
            if found is None:
                raise NoSuchKey(key)
            if self.if_match not in (ANY, found.etag):
                raise PreconditionFailed(f"{key}: the current object's ETag is not {self.if_match}")
        if self.if_none_match and found is not None:
            raise PreconditionFailed(f"{key} exists")


ALWAYS = Precondition()  # no condition: every state of the key will do
