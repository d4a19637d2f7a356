"""The `process_leases` table of the volatile store: how long a process of another node is believed
alive, for the rows it owns there (quota reservations, chunk upload intents).

A process of this pid space is checked directly (`liveness.tag_alive`). One of another node cannot
be: when the volatile store is shared by nodes (PostgreSQL), such a process is alive while its
lease row (key: its `process_tag`; value: the wall-clock time it runs out) is in the future. A
process renews its own lease while it owns rows (`LeaseKeeper`), so a node that dies takes its rows
with it a lease period later. Expired leases are dropped whenever one is renewed.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from .liveness import is_local, process_tag, tag_alive
from .meta import MetadataStore, ReadTxn, WriteTxn, scan

TABLE = "process_leases"
TABLES = (TABLE,)
LEASE_FOR = 60.0  # seconds another node counts this process's rows without hearing from it
RENEW_EVERY = 15.0  # while it owns any

log = logging.getLogger("objstore.leases")


def renew(w: WriteTxn, until: float) -> None:
    """This process is alive until `until`, for nodes that cannot check its pid."""
    w.put(TABLE, process_tag().encode(), repr(until).encode())


def sweep(w: WriteTxn, now: float) -> None:
    """Drop the leases that ran out (the renewing thread's, every `RENEW_EVERY`: a read of the whole
    table, which a transaction on the write path must not make)."""
    for key, value in list(scan(w, TABLE, b"")):
        if float(value) <= now:
            w.delete(TABLE, key)


def alive(r: ReadTxn, tag: str, now: float) -> bool:
    """Whether the process `tag` names still runs: by its pid here, by its lease elsewhere."""
    if is_local(tag):
        return tag_alive(tag)
    lease = r.get(TABLE, tag.encode())
    return lease is not None and float(lease) > now


class LeaseKeeper:
    """Keeps this process's lease in a shared volatile store while it owns rows there: `hold(token)`
    when it takes one (in the same transaction, `renew_in`), `drop(token)` when it lets go; a thread
    per process renews every `RENEW_EVERY` seconds meanwhile. Does nothing when `shared` is False
    (one node: every process is checked by its pid)."""

    def __init__(self, volatile: MetadataStore, shared: bool):
        self.volatile = volatile
        self.shared = shared
        self._holding: set[object] = set()
        self._lock = threading.Lock()
        self._renewer_pid = 0
        self._renewed = (0, 0.0)  # (pid, when) of the last renewal this process committed

    def renew_in(self, w: WriteTxn, now: float) -> None:
        """Inside a transaction that takes a row this process will own: the lease, unless this
        process renewed it lately. Not each time: every transaction of the process writing its one
        lease row would make them conflict with each other."""
        pid, when = self._renewed
        if not self.shared or (pid == os.getpid() and now - when < RENEW_EVERY):
            return
        renew(w, now + LEASE_FOR)
        w.on_commit(lambda: setattr(self, "_renewed", (os.getpid(), now)))

    def hold(self, token: object) -> None:
        if not self.shared:
            return
        with self._lock:
            self._holding.add(token)
            if self._renewer_pid == os.getpid():
                return
            self._renewer_pid = os.getpid()
        threading.Thread(target=self._renew, name="pyblob-lease", daemon=True).start()

    def drop(self, token: object) -> None:
        with self._lock:
            self._holding.discard(token)

    def _renew(self) -> None:
        while True:
            time.sleep(RENEW_EVERY)
            with self._lock:
                if not self._holding:
                    continue
            try:
                self.volatile.transact(self._renew_and_sweep)
            except Exception:  # a failover, a lost connection: the next round tries again, well within the lease
                log.warning("could not renew this process's lease", exc_info=True)

    def _renew_and_sweep(self, w: WriteTxn) -> None:
        now = time.time()
        renew(w, now + LEASE_FOR)
        sweep(w, now)
        w.on_commit(lambda: setattr(self, "_renewed", (os.getpid(), now)))
