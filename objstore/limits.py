"""Limits on what a user may store, and S3's own ceilings: one place decides, and says why not.

Two kinds of limit apply to every write:

- S3's ceilings, the same for everyone (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html):
  5 GiB in one PUT or one part, 5 TiB per object, 10,000 parts, 5 MiB per part but the last.
- Each user's own, set by the admin (`pyblob quota set`) or taken from the defaults for new users
  (`PYBLOB_MAX_OBJECT_SIZE`, `PYBLOB_DEFAULT_QUOTA`; 0 = unlimited, the default): a per-object size,
  a quota of logical bytes (every version of every object, and parts of uploads in progress) and
  optionally a number of objects.

Every refusal names the limit, its value and what changes it, so a client's error message is enough
for the admin to act on.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import GiB, MiB, TiB
from .errors import EntityTooLarge, QuotaExceeded
from .records import UserRecord
from .sizes import format_size

MAX_SINGLE_PUT = 5 * GiB
MAX_PART_SIZE = 5 * GiB
MAX_OBJECT_SIZE = 5 * TiB
MIN_PART_SIZE = 5 * MiB
MAX_PART_NUMBER = 10000


def human(n: int) -> str:
    """`n` bytes as people read them: `10MiB`, `1.5GiB`, `1234 bytes`."""
    for unit, power in (("TiB", 4), ("GiB", 3), ("MiB", 2), ("KiB", 1)):
        if n >= 1024**power:
            exact = format_size(n)
            return exact if exact.endswith(unit) else f"{n / 1024**power:.1f}{unit}"
    return f"{n} bytes"


def check_object_size(user: UserRecord, size: int, partial: bool = False) -> None:
    """EntityTooLarge when an object of `size` bytes (`partial`: already past that) cannot be kept."""
    if size > MAX_OBJECT_SIZE:
        raise EntityTooLarge(too_large(size, MAX_OBJECT_SIZE, None, partial))
    if user.max_object_size and size > user.max_object_size:
        raise EntityTooLarge(too_large(size, user.max_object_size, user.name, partial))


S3_CEILING = "S3's maximum"
UPLOAD_CEILING = "the upload limit set by PYBLOB_UPLOAD_MAX_FILE_SIZE"


def too_large(
    size: int, limit: int, user: str | None, partial: bool = False, what: str = "an object", ceiling: str = S3_CEILING
) -> str:
    more = "+" if partial else ""
    if user is None:
        return f"{what} of {size}{more} bytes exceeds {ceiling} of {human(limit)}"
    return (
        f"{what} of {size}{more} bytes exceeds the per-object limit of {user} ({human(limit)}); "
        f"an admin can raise it with `pyblob quota set {user} SIZE --max-object-size SIZE`"
    )


def upload_limit(user: UserRecord, upload_max: int) -> int:
    """The largest file `user` may upload through the REST API, tus or WebSocket (0: no limit):
    their per-object limit, or the server's PYBLOB_UPLOAD_MAX_FILE_SIZE if that is lower."""
    return min((n for n in (user.max_object_size, upload_max) if n), default=0)


def check_upload_size(user: UserRecord, size: int, upload_max: int) -> None:
    """EntityTooLarge when a file of `size` bytes cannot be uploaded (see `upload_limit`)."""
    check_object_size(user, size)
    if upload_max and size > upload_max:
        raise EntityTooLarge(too_large(size, upload_max, None, what="a file", ceiling=UPLOAD_CEILING))


def check_quota(user: UserRecord, needed: int, held: int = 0) -> None:
    """QuotaExceeded when `needed` more bytes (besides `held` reserved by uploads in flight) do not fit."""
    if user.quota and needed > 0 and user.usage_bytes + held + needed > user.quota:
        left = max(0, user.quota - user.usage_bytes - held)
        raise QuotaExceeded(over_quota(user, needed, left))


def over_quota(user: UserRecord, needed: int, left: int, partial: bool = False) -> str:
    more = "+" if partial else ""
    return (
        f"storing {needed}{more} bytes would exceed the quota of {user.name} ({human(user.quota)}, "
        f"{human(left)} left); an admin can raise it with `pyblob quota set {user.name} SIZE`"
    )


def check_object_count(user: UserRecord, new_objects: int) -> None:
    if user.max_objects and new_objects > 0 and user.object_count + new_objects > user.max_objects:
        raise QuotaExceeded(
            f"the quota of {user.name} is {user.max_objects} objects, all in use; "
            f"an admin can raise it with `pyblob quota set {user.name} SIZE --max-objects N`"
        )


@dataclass
class SizeLimits:
    """How large one stream may grow before it is refused, checked as its bytes arrive.

    `max_object`: the bytes this stream may have (a user's per-object limit, less what the same
    object already holds elsewhere: the other parts of a multipart upload); `quota_room`: what is
    left of the quota; `ceiling`: the server's limit for one request (S3's 5 GiB for a PUT or a part,
    or PYBLOB_UPLOAD_MAX_FILE_SIZE), named by `ceiling_name`. `user` names the owner in errors.
    """

    max_object: int | None = None
    quota_room: int | None = None
    user: UserRecord | None = None
    already: int = 0
    ceiling: int | None = None
    what: str = "an object"
    ceiling_name: str = S3_CEILING

    def check(self, size: int) -> None:
        if self.ceiling is not None and size > self.ceiling:
            raise EntityTooLarge(too_large(size, self.ceiling, None, True, self.what, self.ceiling_name))
        if self.max_object is not None and size > self.max_object:
            name = self.user.name if self.user is not None else None
            raise EntityTooLarge(too_large(self.already + size, self.already + self.max_object, name, True))
        if self.quota_room is not None and size > self.quota_room:
            if self.user is None:
                raise QuotaExceeded(f"{size}+ bytes exceed the {self.quota_room} bytes left in the quota")
            raise QuotaExceeded(over_quota(self.user, size, self.quota_room, True))
