"""The `reservations` table of the volatile store: quota held by uploads while their bytes stream in.

Key: user + NUL + reservation id; value: "bytes tag" (`liveness.process_tag` of the process whose
upload holds it). Rows of a process that is gone (`leases.alive`: by pid on this machine, by lease
on another node) are dropped as they are met, so a worker or node that dies takes its reservations
with it. Only `admission.py` calls these functions.
"""

from __future__ import annotations

from . import leases
from .liveness import process_tag
from .meta import WriteTxn, scan

TABLE = "reservations"
TABLES = (TABLE,)


def _row_key(user: str, rid: bytes) -> bytes:
    return user.encode() + b"\0" + rid


def hold(w: WriteTxn, user: str, rid: bytes, nbytes: int) -> None:
    w.put(TABLE, _row_key(user, rid), f"{nbytes} {process_tag()}".encode())


def release(w: WriteTxn, user: str, rid: bytes) -> None:
    w.delete(TABLE, _row_key(user, rid))


def held(w: WriteTxn, user: str, now: float) -> int:
    """Bytes `user`'s uploads in flight hold (any live process); rows of dead processes go."""
    total, dead = 0, []
    for key, value in scan(w, TABLE, user.encode() + b"\0"):
        nbytes, tag = value.decode().split()
        if leases.alive(w, tag, now):
            total += int(nbytes)
        else:
            dead.append(key)
    for key in dead:
        w.delete(TABLE, key)
    return total
