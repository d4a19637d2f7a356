"""The `reservations` and `process_leases` tables of the volatile store: quota held by uploads while
their bytes stream in, and how long a process of another node is believed alive.

Reservation key: user + NUL + reservation id; value: "bytes tag" (`liveness.process_tag` of the
process whose upload holds it). Rows of a process that is gone are dropped as they are met, so a
worker that dies takes its reservations with it. Only `admission.py` calls these functions.

Whether a process is gone is checked directly when it runs in this pid space (`liveness.is_local`).
When the volatile store is shared by nodes (PostgreSQL), a process of another node is alive while its
lease row (key: its tag; value: the wall-clock time it runs out) is in the future; a process renews
its own lease while it holds reservations (`Admission`), so a node that dies takes its reservations
with it a lease period later. Expired leases are dropped whenever one is renewed.
"""

from __future__ import annotations

from .liveness import is_local, process_tag, tag_alive
from .meta import WriteTxn, scan

TABLE = "reservations"
LEASES = "process_leases"
TABLES = (TABLE, LEASES)


def _row_key(user: str, rid: bytes) -> bytes:
    return user.encode() + b"\0" + rid


def hold(w: WriteTxn, user: str, rid: bytes, nbytes: int) -> None:
    w.put(TABLE, _row_key(user, rid), f"{nbytes} {process_tag()}".encode())


def release(w: WriteTxn, user: str, rid: bytes) -> None:
    w.delete(TABLE, _row_key(user, rid))


def renew_lease(w: WriteTxn, until: float, now: float) -> None:
    """This process is alive until `until`, for nodes that cannot check its pid; leases that ran out go."""
    for key, value in list(scan(w, LEASES, b"")):
        if float(value) <= now:
            w.delete(LEASES, key)
    w.put(LEASES, process_tag().encode(), repr(until).encode())


def _alive(w: WriteTxn, tag: str, now: float) -> bool:
    if is_local(tag):
        return tag_alive(tag)
    lease = w.get(LEASES, tag.encode())
    return lease is not None and float(lease) > now


def held(w: WriteTxn, user: str, now: float) -> int:
    """Bytes `user`'s uploads in flight hold (any live process); rows of dead processes go."""
    total, dead = 0, []
    for key, value in scan(w, TABLE, user.encode() + b"\0"):
        nbytes, tag = value.decode().split()
        if _alive(w, tag, now):
            total += int(nbytes)
        else:
            dead.append(key)
    for key in dead:
        w.delete(TABLE, key)
    return total
