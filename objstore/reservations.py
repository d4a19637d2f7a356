"""Quota reservations: an upload holds its declared size of the owner's quota while it streams.

Without them, ten concurrent 100 MiB uploads by a user with 150 MiB left would all stream to disk
and nine would fail at commit. With them, the second one is refused before its first byte is kept.
The commit still checks the quota exactly inside its write transaction (`Store.check_replace`):
reservations decide early, the commit decides for sure.

Reservations live in the volatile state environment (`state.py`): every worker sees them, and a
process that dies takes its reservations with it (rows of dead pids are dropped when met).
Usage is read from the metadata environment inside the state write transaction, which serialises
reservers; a commit raises usage before it releases its reservation, so a reserver in between
counts those bytes twice (too strict for an instant), never zero times.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .db import Txn
from .errors import QuotaExceeded
from .limits import S3_CEILING, SizeLimits, over_quota
from .state import VolatileState, process_tag, tag_alive

if TYPE_CHECKING:
    from .accounts import Accounts


@dataclass
class Reservation:
    user: str
    rid: bytes
    nbytes: int


def _row_key(user: str, rid: bytes) -> bytes:
    return user.encode() + b"\0" + rid


class Reservations:
    def __init__(self, state: VolatileState, accounts: "Accounts"):
        self.state = state
        self.accounts = accounts

    def room(
        self, owner: str, replacing: int = 0, size_hint: int | None = None, already: int = 0, ceiling: int | None = None,
        what: str = "an object", ceiling_name: str = S3_CEILING,
    ) -> tuple[SizeLimits, Reservation | None]:
        """How large `owner`'s next stream may grow, holding `size_hint` bytes of quota for it.

        `replacing` bytes (what it overwrites) are freed when it commits; `already` bytes of the same
        object are stored elsewhere (other parts of a multipart upload) and count against the
        per-object limit; `ceiling` is S3's limit for one request. EntityTooLarge / QuotaExceeded
        when the declared size cannot fit.
        """
        user = self.accounts.get_user(owner)
        max_object = max(0, user.max_object_size - already) if user.max_object_size else None
        found = SizeLimits(max_object, None, user, already, ceiling, what, ceiling_name)
        if size_hint is not None:
            found.check(size_hint)
        if not user.quota:
            return found, None
        if size_hint is None:
            found.quota_room = max(0, user.quota - user.usage_bytes - self.held(owner) + replacing)
            return found, None
        reservation = Reservation(owner, secrets.token_bytes(8), size_hint)
        with self.state.write() as w:
            held = self._held(w, owner)
            user = self.accounts.get_user(owner)  # fresh, now that other reservers wait on us
            room = user.quota - user.usage_bytes - held + replacing
            if size_hint > room:
                raise QuotaExceeded(over_quota(user, size_hint, max(0, room)))
            w.put("reservations", _row_key(owner, reservation.rid), f"{size_hint} {process_tag()}".encode())
        found.user, found.quota_room = user, room
        return found, reservation

    def release(self, reservation: Reservation) -> None:
        with self.state.write() as w:
            w.delete("reservations", _row_key(reservation.user, reservation.rid))

    def held(self, owner: str) -> int:
        """Bytes `owner`'s uploads in flight have reserved (any worker)."""
        with self.state.write() as w:
            return self._held(w, owner)

    def _held(self, w: Txn, owner: str) -> int:
        prefix = owner.encode() + b"\0"
        total, dead = 0, []
        cursor = w.cursor("reservations")
        if cursor.set_range(prefix):
            for key, value in cursor:
                if not bytes(key).startswith(prefix):
                    break
                nbytes, tag = bytes(value).decode().split()
                if tag_alive(tag):
                    total += int(nbytes)
                else:
                    dead.append(bytes(key))
        for key in dead:
            w.delete("reservations", key)
        return total
