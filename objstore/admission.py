"""The one quota gate: whether an upload may start, may go on, and may be kept.

Every upload path asks it, in two steps:

- `Admission.room`, before the first byte: the free space kept on the data dir's disk for deletes
  (`diskspace.py`), the per-object limit, S3's ceiling for one request and the quota, less what
  uploads in flight (any worker) have reserved; it reserves the declared size (`size_hint`) so ten
  concurrent uploads by a user with room for one are refused at once, not at their commits. It
  returns the `SizeLimits` the stream is checked against as its bytes arrive.
- `admit`, inside the transaction that keeps the bytes: the exact check on the owner's row, with
  what the write frees (the versions it replaces, the part it overwrites, a resumable upload's
  charge). Reservations decide early; `admit` decides for sure.

Reservations live in the volatile store (`reservations.py`): `state/` of the data dir on one node, an
unlogged PostgreSQL table shared by every node over PostgreSQL. Usage is read from the metadata store
inside the volatile write transaction, which serialises reservers; a commit raises usage before it
releases its reservation, so a reserver in between counts those bytes twice (too strict for an
instant), never zero times. In a shared volatile store a process keeps its lease while it holds
reservations (`leases.LeaseKeeper`), so that other nodes keep counting its uploads.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import accounts, leases, reservations
from .errors import QuotaExceeded
from .limits import S3_CEILING, SizeLimits, check_object_count, check_object_size, check_quota, over_quota
from .meta import MetadataStore, ReadTxn, WriteTxn
from .records import UserRecord

TABLES = (*reservations.TABLES, *leases.TABLES)  # in the volatile store


@dataclass
class Reservation:
    user: str
    rid: bytes
    nbytes: int


def admit(
    r: ReadTxn, owner: str, size: int, *, already: int = 0, freed_bytes: int = 0, new_objects: int = 0
) -> UserRecord:
    """Whether `owner` may keep `size` more bytes of one object (`already` of it stored elsewhere:
    the other parts of an upload), freeing `freed_bytes` and adding `new_objects`; EntityTooLarge or
    QuotaExceeded naming the limit otherwise. Inside the transaction that keeps them."""
    user = accounts.require_user(r, owner, with_usage=False)
    if user.quota or user.max_objects:  # only then is the usage needed (and read, with its changes)
        user = accounts.require_user(r, owner)
    check_object_size(user, already + size)
    check_quota(user, size - freed_bytes)
    check_object_count(user, new_objects)
    return user


class Admission:
    """Reservations of quota for uploads in flight, and the limits a stream is checked against."""

    def __init__(
        self,
        meta: MetadataStore,
        volatile: MetadataStore,
        lease: leases.LeaseKeeper | None = None,
        disk_floor: Callable[[], None] | None = None,
    ):
        self.meta = meta
        self.volatile = volatile
        self.lease = lease or leases.LeaseKeeper(volatile, shared=False)
        self.disk_floor = disk_floor  # StorageFull when the data dir's disk is down to its floor

    def room(
        self,
        owner: str,
        replacing: int = 0,
        size_hint: int | None = None,
        already: int = 0,
        ceiling: int | None = None,
        what: str = "an object",
        ceiling_name: str = S3_CEILING,
    ) -> tuple[SizeLimits, Reservation | None]:
        """How large `owner`'s next stream may grow, holding `size_hint` bytes of quota for it.

        `replacing` bytes (what it overwrites) are freed when it commits; `already` bytes of the same
        object are stored elsewhere (other parts of a multipart upload) and count against the
        per-object limit; `ceiling` is the server's limit for one request. EntityTooLarge /
        QuotaExceeded when the declared size cannot fit, StorageFull when the disk is down to the free
        space kept for deletes (`diskspace.py`). Give the reservation back with `release`.
        """
        if self.disk_floor is not None:
            self.disk_floor()
        user = self._user(owner)
        max_object = max(0, user.max_object_size - already) if user.max_object_size else None
        found = SizeLimits(max_object, None, user, already, ceiling, what, ceiling_name)
        if size_hint is not None:
            found.check(size_hint)
        if not user.quota:
            return found, None
        if size_hint is None:
            found.quota_room = max(0, user.quota - user.usage_bytes - self.held(owner) + replacing)
            return found, None
        hint = size_hint
        reservation = Reservation(owner, secrets.token_bytes(8), hint)

        def reserve(w: WriteTxn) -> tuple[UserRecord, int]:
            now = time.time()
            held = reservations.held(w, owner, now)
            fresh = self._user(owner)  # fresh, now that other reservers wait on us
            room = fresh.quota - fresh.usage_bytes - held + replacing
            if hint > room:
                raise QuotaExceeded(over_quota(fresh, hint, max(0, room)))
            reservations.hold(w, owner, reservation.rid, hint)
            self.lease.renew_in(w, now)
            return fresh, room

        found.user, found.quota_room = self.volatile.transact(reserve)
        self.lease.hold(reservation.rid)
        return found, reservation

    def release(self, reservation: Reservation) -> None:
        self.volatile.transact(lambda w: reservations.release(w, reservation.user, reservation.rid))
        self.lease.drop(reservation.rid)

    def held(self, owner: str) -> int:
        """Bytes `owner`'s uploads in flight have reserved (any worker, any node)."""
        return self.volatile.transact(lambda w: reservations.held(w, owner, time.time()))

    def _user(self, owner: str) -> UserRecord:
        """The user, with its usage only if a quota needs it (see `admit`)."""

        def user(r: ReadTxn) -> UserRecord:
            found = accounts.require_user(r, owner, with_usage=False)
            return accounts.require_user(r, owner) if found.quota or found.max_objects else found

        return self.meta.read(user)
