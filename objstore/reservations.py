"""The `reservations` table of the volatile store: quota held by uploads while their bytes stream in.

Key: user + NUL + reservation id; value: "bytes pid:start" (`liveness.process_tag` of the process
whose upload holds it). Rows of a process that is gone are dropped as they are met, so a worker
that dies takes its reservations with it. Only `admission.py` calls these functions.
"""

from __future__ import annotations

from .liveness import process_tag, tag_alive
from .meta import WriteTxn, scan

TABLE = "reservations"
TABLES = (TABLE,)


def _row_key(user: str, rid: bytes) -> bytes:
    return user.encode() + b"\0" + rid


def hold(w: WriteTxn, user: str, rid: bytes, nbytes: int) -> None:
    w.put(TABLE, _row_key(user, rid), f"{nbytes} {process_tag()}".encode())


def release(w: WriteTxn, user: str, rid: bytes) -> None:
    w.delete(TABLE, _row_key(user, rid))


def held(w: WriteTxn, user: str) -> int:
    """Bytes `user`'s uploads in flight hold (any live worker); rows of dead processes go."""
    total, dead = 0, []
    for key, value in scan(w, TABLE, user.encode() + b"\0"):
        nbytes, tag = value.decode().split()
        if tag_alive(tag):
            total += int(nbytes)
        else:
            dead.append(key)
    for key in dead:
        w.delete(TABLE, key)
    return total
