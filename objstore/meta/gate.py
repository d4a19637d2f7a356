"""A gate every transaction of a process passes through, which one thread may close to work alone.

LMDB's map may be resized only while the process has no transaction open (`mdb_env_set_mapsize`:
"the caller must ensure it explicitly"): the map is unmapped and mapped again, so a reader still on
the old one would read freed memory. Transactions `enter` and `leave`; `close` shuts the gate to
newcomers and waits for those inside to leave, so that the closer works with no transaction open.

Entering costs a read of a flag and a counter of the thread's own, no lock (every read of the
metadata passes here): a thread counts itself in, then looks at the flag, and backs off if it is
set; a closer sets the flag, then looks at the counters. Under the GIL one of the two sees the
other. A thread already inside passes again without waiting (a write started inside a read), so it
never waits on itself. A closer waits a bounded time: a thread inside that waits on something the
closer holds would otherwise wait forever with it; the closer then gives up, and the caller reports
that the resize could not be done.
"""

from __future__ import annotations

import threading
import time
import weakref

POLL = 0.001  # seconds between a closer's looks at the threads inside


class _Inside:
    """One thread's depth inside the gate (only that thread changes it)."""

    __slots__ = ("__weakref__", "depth")

    def __init__(self) -> None:
        self.depth = 0


class Gate:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opened = threading.Condition(self._lock)
        self._closed = False
        self._local = threading.local()
        self._threads: weakref.WeakSet[_Inside] = weakref.WeakSet()  # a thread's entry goes with it

    def _mine(self) -> _Inside:
        try:
            return self._local.inside  # type: ignore[no-any-return]
        except AttributeError:
            inside = self._local.inside = _Inside()
            with self._lock:
                self._threads.add(inside)
            return inside

    def enter(self) -> _Inside:
        """Count the calling thread in. It leaves by `inside.depth -= 1` on what this returned (no method
        call: every read of the metadata passes here)."""
        try:
            inside: _Inside = self._local.inside
        except AttributeError:
            inside = self._mine()
        inside.depth += 1
        if self._closed and inside.depth == 1:  # closed before we came in: wait outside
            with self._lock:
                inside.depth = 0
                while self._closed:
                    self._opened.wait()
                inside.depth = 1
        return inside

    def close(self, timeout: float) -> bool:
        """Close the gate and wait until nobody is inside: True, the caller then works alone and must
        `open` it again; False (after `timeout` seconds, or from a thread inside), and the gate is open."""
        if self._mine().depth:
            return False
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._closed:  # another closer first
                if not self._opened.wait(max(0.0, deadline - time.monotonic())):
                    return False
            self._closed = True
            threads = list(self._threads)
        while any(t.depth for t in threads):
            if time.monotonic() > deadline:
                self.open()
                return False
            time.sleep(POLL)
        return True

    def open(self) -> None:
        with self._lock:
            self._closed = False
            self._opened.notify_all()
