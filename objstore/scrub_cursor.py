"""Where scrub is: the pass under way (how far, since when), when the last one ended, and who runs it.

One row, `scrub_state` / `cursor`, in the metadata, so a pass cut short (a restart, `pyblob scrub`
stopped with Ctrl-C) resumes where it stopped, on any node, and the schedule (a pass every
PYBLOB_SCRUB_INTERVAL_SECONDS after the last ended) survives restarts. The run doing the pass holds
it by name with a heartbeat: another run leaves it alone while the heartbeat is fresh (the server's
background job), or takes it over (`pyblob scrub`), in which case the first stops at its next save.
Times are the wall clock's, as every node reads them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import orjson

from .meta import ReadTxn, WriteTxn

TABLE = "scrub_state"  # b"cursor" -> Cursor (JSON)
TABLES = (TABLE,)
_KEY = b"cursor"
LEASE_SECONDS = 300.0  # a holder silent for this long is gone: its pass is anyone's to resume


@dataclass
class Cursor:
    started: float = 0.0  # when the pass under way began; 0: none is under way
    position: str = ""  # hex digest of the last chunk the pass has checked ("" from the start)
    chunks_checked: int = 0  # by the pass under way, over all its runs
    bytes_checked: int = 0
    last_completed: float = 0.0  # when the last whole pass ended; 0: never
    holder: str = ""  # the run doing the pass now ("" none)
    heartbeat: float = 0.0  # when that run last saved

    def held_by_other(self, me: str, now: float) -> bool:
        return bool(self.holder) and self.holder != me and now - self.heartbeat < LEASE_SECONDS


def get(r: ReadTxn) -> Cursor:
    raw = r.get(TABLE, _KEY)
    if raw is None:
        return Cursor()
    known = {f.name for f in dataclasses.fields(Cursor)}
    return Cursor(**{k: v for k, v in orjson.loads(raw).items() if k in known})


def put(w: WriteTxn, cursor: Cursor) -> None:
    w.put(TABLE, _KEY, orjson.dumps(dataclasses.asdict(cursor)))


def begin(w: WriteTxn, me: str, now: float, restart: bool, take_over: bool) -> Cursor | None:
    """Hold the pass for run `me`: the one under way (a new one if none is, or with `restart`). None
    if another run holds it and `take_over` is not given."""
    cursor = get(w)
    if cursor.held_by_other(me, now) and not take_over:
        return None
    if restart or not cursor.started:
        cursor = Cursor(started=now, last_completed=cursor.last_completed)
    cursor.holder, cursor.heartbeat = me, now
    put(w, cursor)
    return cursor


def advance(
    w: WriteTxn, me: str, position: bytes | None, chunks: int, nbytes: int, now: float, finished: bool, release: bool
) -> Cursor | None:
    """Record run `me`'s progress since its last save: the last chunk checked, the chunks and bytes.
    A finished pass is closed (`last_completed`); with `release` (or finished) the hold is given up.
    Returns the pass as it stands (before closing it), or None if another run took it over."""
    cursor = get(w)
    if cursor.holder != me:
        return None
    cursor.position = position.hex() if position is not None else cursor.position
    cursor.chunks_checked += chunks
    cursor.bytes_checked += nbytes
    cursor.heartbeat = now
    seen = dataclasses.replace(cursor)
    if finished:
        cursor = Cursor(last_completed=now)
    elif release:
        cursor.holder = ""
    put(w, cursor)
    return seen


def due(r: ReadTxn, every: float, now: float) -> bool:
    """Whether a scheduled run has work: a pass under way, or the last ended `every` seconds ago (or never)."""
    cursor = get(r)
    return bool(cursor.started) or now - cursor.last_completed >= every
