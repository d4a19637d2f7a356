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
from .errors import EntityTooLarge, QuotaExceeded
from .state import VolatileState, process_tag, tag_alive
from .writer import SizeLimits

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

    def room(self, owner: str, replacing: int = 0, size_hint: int | None = None) -> tuple[SizeLimits, Reservation | None]:
        """How large `owner`'s next stream may grow, holding `size_hint` bytes of quota for it.

        `replacing` bytes (the object it overwrites) are freed when it commits. EntityTooLarge /
        QuotaExceeded when the declared size cannot fit.
        """
        user = self.accounts.get_user(owner)
        max_object = user.max_object_size or None
        if size_hint is not None and max_object is not None and size_hint > max_object:
            raise EntityTooLarge(f"object of {size_hint} bytes exceeds the limit of {max_object}")
        if not user.quota:
            return SizeLimits(max_object=max_object), None
        if size_hint is None:
            held = self.held(owner)
            return SizeLimits(max_object, max(0, user.quota - user.usage_bytes - held + replacing)), None
        reservation = Reservation(owner, secrets.token_bytes(8), size_hint)
        with self.state.write() as w:
            held = self._held(w, owner)
            user = self.accounts.get_user(owner)  # fresh, now that other reservers wait on us
            room = user.quota - user.usage_bytes - held + replacing
            if size_hint > room:
                raise QuotaExceeded(f"storing {size_hint} bytes would exceed the quota ({max(0, room)} bytes left)")
            w.put("reservations", _row_key(owner, reservation.rid), f"{size_hint} {process_tag()}".encode())
        return SizeLimits(max_object, room), reservation

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
