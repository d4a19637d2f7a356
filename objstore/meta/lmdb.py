"""The metadata store on LMDB: one environment per data dir, named tables, one writer at a time.

The only module that imports `lmdb`. LMDB serialises writers itself (across threads and processes),
so a transaction function runs exactly once here; side effects registered with `on_commit` run
after the commit, in the caller's thread. Durable commits are grouped (`GroupCommit`): concurrent
write transactions of one process share one synced LMDB commit, each in a nested transaction of its
own, so a failing one takes nothing of the others with it. An environment must never be carried
across fork(): a store opens its environment lazily, in the process that uses it, and again after
a fork.

Two kinds share the code: `LmdbMetadataStore` (the data dir's `meta/`, synced commits, a schema
version) and `LmdbVolatileStore` (`state/`, shared by the workers but never synced: nothing in it
must survive a crash; see the class).

A full disk and a full map are the engine's StorageFull (507 at the edges), never a bare LMDB error:
a commit that meets ENOSPC or EDQUOT stores nothing, calls `on_disk_full` (which frees the data dir's
reserve, objstore/diskspace.py) and runs once more, then raises StorageFull; a map that fills
(MDB_MAP_FULL) grows on its own, doubling up to its cap (`max_map_size`, 0: as far as the machine can
map it), and the transaction runs again; at the cap it raises MetadataMapFull. Any other EIO (a
failed write or sync of the commit) is StorageIOError (503): the commit stored nothing and is not run
again; an EIO of a read is StorageIOError too, saying so. (LMDB reads through its memory map: a disk
that fails a page it maps in raises SIGBUS, which ends the process as a crash does; what comes back
as an error is what LMDB reads or writes with a system call.)
Resizing needs the process to have no transaction open (`gate.py`); a process whose map another
one grew adopts the new size when LMDB says so (MDB_MAP_RESIZED) and runs its transaction again.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from ..errors import DISK_FULL_ERRNOS, MetadataMapFull, StorageIOError, storage_full
from .gate import Gate
from .interface import MAX_KEY_BYTES, META, ReadTxn, Row, WriteTxn, record_schema

T = TypeVar("T")
A = TypeVar("A")


class _Process:
    """This process's id, kept up to date across fork() without a getpid system call per transaction."""

    pid = os.getpid()

    @classmethod
    def forked(cls) -> None:
        cls.pid = os.getpid()


os.register_at_fork(after_in_child=_Process.forked)
Tables = dict[str, Any]  # table name -> lmdb database handle
_UNREADABLE = (lmdb.InvalidError, lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.VersionMismatchError)
RESIZE_WAIT = 10.0  # seconds a resize waits for this process's transactions to end (gate.py)
MAX_RESIZES = 16  # per transaction: each doubles the map (or adopts another process's size)
SHORT_WRITE_ROOM = 1 << 20  # free bytes under which LMDB's EIO is a disk that filled up (`_disk_filled`)


class LmdbTxn:
    """A read or write transaction; implements `ReadTxn` and, when writable, `WriteTxn`."""

    def __init__(self, txn: lmdb.Transaction, dbs: Tables):
        self.txn = txn
        self.dbs = dbs
        self.after: list[Callable[[], None]] = []

    def get(self, table: str, key: bytes) -> bytes | None:
        if not key or len(key) > MAX_KEY_BYTES:
            return None  # no row can have such a key (a client may send one)
        found = self.txn.get(key, db=self.dbs[table])
        return bytes(found) if found is not None else None

    def range(
        self,
        table: str,
        start: bytes = b"",
        end: bytes | None = None,
        *,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Iterator[Row]:
        if limit is not None and limit <= 0:
            return
        cursor = self.txn.cursor(db=self.dbs[table])
        rows = _backward(cursor, start, end) if reverse else _forward(cursor, start, end)
        for n, row in enumerate(rows, 1):
            yield row
            if limit is not None and n >= limit:
                return

    def count(self, table: str) -> int:
        return int(self.txn.stat(self.dbs[table])["entries"])

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self.txn.put(key, value, db=self.dbs[table])

    def delete(self, table: str, key: bytes) -> bool:
        if not key or len(key) > MAX_KEY_BYTES:
            return False
        return bool(self.txn.delete(key, db=self.dbs[table]))

    def next_id(self, counter: str) -> int:
        key = b"seq:" + counter.encode()
        value = int(self.get(META, key) or b"0") + 1
        self.put(META, key, str(value).encode())
        return value

    def on_commit(self, fn: Callable[[], None]) -> None:
        self.after.append(fn)


def _copy(env: lmdb.Environment, dest: Path) -> None:
    env.copy(str(dest), compact=True)


def _forward(cursor: lmdb.Cursor, start: bytes, end: bytes | None) -> Iterator[Row]:
    positioned = cursor.set_range(start) if start else cursor.first()
    while positioned:
        key = bytes(cursor.key())
        if end is not None and key >= end:
            return
        yield key, bytes(cursor.value())
        positioned = cursor.next()


def _backward(cursor: lmdb.Cursor, start: bytes, end: bytes | None) -> Iterator[Row]:
    if end is None:
        positioned = cursor.last()
    elif cursor.set_range(end):
        positioned = cursor.prev()
    else:
        positioned = cursor.last()
    while positioned:
        key = bytes(cursor.key())
        if key < start:
            return
        yield key, bytes(cursor.value())
        positioned = cursor.prev()


class LmdbStore:
    """An LMDB environment holding `tables`, opened lazily in the process that uses it, whose map starts
    at `map_size` bytes and grows up to `max_map_size` (0: no cap); `on_disk_full` makes room when a
    commit finds the disk full."""

    def __init__(
        self,
        path: Path,
        tables: tuple[str, ...],
        map_size: int,
        max_map_size: int = 0,
        on_disk_full: Callable[[], None] | None = None,
    ):
        self.path = path
        self.tables = (META, *sorted(set(tables) - {META}))
        self.map_size = map_size
        self.max_map_size = max_map_size
        self.on_disk_full = on_disk_full
        self._env: lmdb.Environment | None = None
        self._pid = 0
        self._dbs: Tables = {}
        self._open_lock = threading.Lock()
        self._gate = Gate()
        self._resize_lock = threading.Lock()
        self._mapped = 0  # this process's map size

    @property
    def env(self) -> lmdb.Environment:
        if self._env is None or self._pid != _Process.pid:
            with self._open_lock:  # server threads may all touch a fresh store at once
                if self._env is None or self._pid != _Process.pid:
                    env = self._open()
                    try:
                        self._dbs = {name: env.open_db(name.encode()) for name in self.tables}
                    except BaseException:
                        env.close()
                        raise
                    # fresh in each process: a lock is never carried across fork()
                    self._gate, self._resize_lock = Gate(), threading.Lock()
                    self._mapped = env.info()["map_size"]
                    self._env, self._pid = env, _Process.pid
                    self._opened()
        assert self._env is not None
        return self._env

    def _open(self) -> lmdb.Environment:
        raise NotImplementedError

    def _opened(self) -> None:
        """Runs once the environment is open in this process."""

    def transact(self, fn: Callable[[WriteTxn], T]) -> T:
        return self._run(self._commit, fn)

    def _commit(self, env: lmdb.Environment, fn: Callable[[WriteTxn], T]) -> T:
        txn = LmdbTxn(env.begin(write=True), self._dbs)
        try:
            result = fn(txn)
        except BaseException:
            txn.txn.abort()
            raise
        txn.txn.commit()
        for after in txn.after:
            after()
        return result

    def read(self, fn: Callable[[ReadTxn], T]) -> T:
        return self._run(self._snapshot, fn)

    def _snapshot(self, env: lmdb.Environment, fn: Callable[[ReadTxn], T]) -> T:
        with env.begin(buffers=False) as raw:
            return fn(LmdbTxn(raw, self._dbs))

    def _run(self, attempt: Callable[[lmdb.Environment, A], T], fn: A) -> T:
        """`attempt(env, fn)` through the gate, run again once the map has grown (or taken the size
        another process grew it to); a full disk or a map that cannot grow is StorageFull."""
        made_room = False
        for _ in range(MAX_RESIZES):
            seen = self._mapped
            try:
                env = self._env if self._pid == _Process.pid and self._env is not None else self.env
                seen = self._mapped
                inside = self._gate.enter()
                try:
                    return attempt(env, fn)
                finally:
                    inside.depth -= 1  # out of the gate
            except lmdb.MapResizedError:
                wanted = 0  # adopt the size recorded in the environment
            except lmdb.MapFullError as e:
                wanted = self._grown(seen)
                if not wanted:
                    raise MetadataMapFull(MetadataMapFull.MAP) from e
            except lmdb.Error as e:
                if e.code not in DISK_FULL_ERRNOS and not (e.code == errno.EIO and self._disk_filled()):
                    if e.code == errno.EIO and attempt == self._snapshot:
                        raise StorageIOError.reading("the metadata") from e
                    if e.code == errno.EIO:
                        raise StorageIOError() from e  # stored nothing; never run again (see StorageIOError)
                    raise
                if made_room or self.on_disk_full is None:
                    raise storage_full(errno.EDQUOT if e.code == errno.EDQUOT else errno.ENOSPC) from e
                self.on_disk_full()
                made_room = True
                continue
            if not self._resize(seen, wanted):
                raise MetadataMapFull(MetadataMapFull.MAP)
        raise MetadataMapFull(MetadataMapFull.MAP)

    def _disk_filled(self) -> bool:
        """Whether the disk under the environment is (nearly) out of space. LMDB answers EIO for a short
        write ("short write, filesystem full?", mdb_page_flush): that is how a commit meets a disk that
        fills up halfway through its pages."""
        try:
            st = os.statvfs(self.path)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < SHORT_WRITE_ROOM

    def _grown(self, size: int) -> int:
        """The next map size after `size`: doubled, within the cap; 0 at the cap."""
        grown = 2 * size if not self.max_map_size else min(2 * size, self.max_map_size)
        return grown if grown > size else 0

    def _resize(self, seen: int, wanted: int) -> bool:
        """Map `wanted` bytes (0: the environment's size) unless another thread resized since `seen`;
        False when the process's transactions did not end in time or the mapping failed."""
        with self._resize_lock:
            if self._mapped != seen or self._env is None:
                return True  # resized (or closed) meanwhile: the caller runs its transaction again
            if not self._gate.close(RESIZE_WAIT):
                return False
            try:
                self._env.set_mapsize(wanted)
                self._mapped = self._env.info()["map_size"]
                return True
            except lmdb.Error:
                # The old map is gone with the failed new one: reopen the environment on next use.
                self._env.close()
                self._env = None
                return False
            finally:
                self._gate.open()

    def copy_to(self, dest: Path) -> None:
        """A consistent copy of the environment (compacted), readable by a fresh store."""
        dest.mkdir(parents=True, exist_ok=False)
        self._run(_copy, dest)

    def close(self) -> None:
        if self._env is not None and self._pid == _Process.pid:
            self._env.close()
        self._env = None


class _Pending:
    """A write transaction waiting for the group commit: its function, then its outcome. `wake` is
    set when it is done, or when its thread is to lead the next group."""

    def __init__(self, fn: Callable[[WriteTxn], Any]):
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None
        self.after: list[Callable[[], None]] = []
        self.done = False
        self.wake = threading.Event()


class GroupCommit:
    """Concurrent durable write transactions share one synced commit.

    A thread whose transaction arrives while none is being committed leads: it runs every function
    waiting at that moment, each in a nested transaction of one LMDB write transaction (a function
    that raises is rolled back alone), commits it with one sync, and wakes the others; whatever
    arrived meanwhile forms the next group. Each function still runs exactly once and sees the
    writes of those before it, so the outcome is that of running them one after another; none is
    answered before the commit that holds it is on disk. A 4 KiB PUT paid one sync of its own
    before; under load they now share them (docs/benchmarks.md, "Serving").
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: list[_Pending] = []
        self.leading = False

    def run(self, env: lmdb.Environment, dbs: Tables, fn: Callable[[WriteTxn], T]) -> T:
        mine = _Pending(fn)
        with self.lock:
            self.pending.append(mine)
            lead = not self.leading
            self.leading = True
        if not lead:
            mine.wake.wait()  # done, or handed the lead (then still pending, first in line)
        if not mine.done:
            self._lead(env, dbs)
        if mine.error is not None:
            raise mine.error
        for after in mine.after:
            after()
        return mine.result  # type: ignore[no-any-return]

    def _lead(self, env: lmdb.Environment, dbs: Tables) -> None:
        """Commit what is waiting (the leader's own transaction included), wake its owners, and hand
        the lead to the first of those that arrived meanwhile: each thread is woken once."""
        with self.lock:
            group, self.pending = self.pending, []
        try:
            _commit_group(env, dbs, group)
        finally:
            with self.lock:
                successor = self.pending[0] if self.pending else None
                self.leading = successor is not None
            for item in group:
                item.wake.set()
            if successor is not None:
                successor.wake.set()


def _commit_group(env: lmdb.Environment, dbs: Tables, group: list[_Pending]) -> None:
    """Run `group` in one write transaction, each function in a nested one; commit (synced)."""
    try:
        with env.begin(write=True) as parent:
            for item in group:
                child = LmdbTxn(env.begin(write=True, parent=parent), dbs)
                try:
                    item.result = item.fn(child)
                except BaseException as e:
                    child.txn.abort()
                    item.error = e
                    continue
                child.txn.commit()
                item.after = child.after
    except BaseException as e:  # the commit itself failed: nothing of the group is stored
        for item in group:
            if item.error is None:
                item.error, item.after = e, []
    for item in group:
        item.done = True


class LmdbMetadataStore(LmdbStore):
    """The data dir's metadata: synced commits (unless not durable), the schema version checked on open."""

    def __init__(
        self,
        path: Path,
        tables: tuple[str, ...],
        map_size: int,
        durable: bool,
        schema: int,
        max_map_size: int = 0,
        on_disk_full: Callable[[], None] | None = None,
    ):
        super().__init__(path, tables, map_size, max_map_size, on_disk_full)
        self.durable = durable
        self.schema = schema

    def _open(self) -> lmdb.Environment:
        self.path.mkdir(parents=True, exist_ok=True)
        return lmdb.open(
            str(self.path),
            map_size=self.map_size,
            max_dbs=len(self.tables) + 1,
            max_readers=1024,
            sync=self.durable,
            metasync=self.durable,
            readahead=False,
        )

    def _opened(self) -> None:
        self._group = GroupCommit()  # fresh in each process: a lock is never carried across fork()
        self.transact(self._check_schema)

    def transact(self, fn: Callable[[WriteTxn], T]) -> T:
        if not self.durable:
            return super().transact(fn)
        return self._run(self._group_commit, fn)

    def _group_commit(self, env: lmdb.Environment, fn: Callable[[WriteTxn], T]) -> T:
        return self._group.run(env, self._dbs, fn)

    def _check_schema(self, w: WriteTxn) -> None:
        record_schema(w, self.schema)


STATE_MAP_SIZE = 256 * 1024 * 1024  # bounds the state: its owners keep it far below this
BOOT_FILE = "boot"  # the boot id the environment was created under
OPEN_LOCK = "open.lock"


def boot_id() -> str:
    """This boot of the machine (Linux); "" where unknown, and then only unreadable files are recreated."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


class LmdbVolatileStore(LmdbStore):
    """State shared by the worker processes that need not survive a crash (quota reservations,
    rate-limit buckets), opened with `sync=False`: a commit costs microseconds, not an fsync.

    An unsynced environment survives `kill -9` (its pages are in the OS cache) but may be torn by a
    power loss, and reading a torn LMDB file can crash the process. So it is never read across a
    reboot: it remembers the boot id it was created under and the first process of a new boot
    recreates it (under an flock, so workers starting together agree). One that LMDB refuses to open
    (not an LMDB file, corrupt) is recreated too: the server starts with empty state, never refuses to.
    """

    def __init__(self, path: Path, tables: tuple[str, ...], on_disk_full: Callable[[], None] | None = None):
        # full at its bound: StorageFull
        super().__init__(path, tables, STATE_MAP_SIZE, STATE_MAP_SIZE, on_disk_full)

    def _open(self) -> lmdb.Environment:
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / OPEN_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            boot = boot_id()
            if boot and self._recorded_boot() != boot:
                self._recreate(boot)
            try:
                return self._open_env()
            except _UNREADABLE:
                self._recreate(boot)
                return self._open_env()
        finally:
            os.close(fd)  # drops the flock

    def _open_env(self) -> lmdb.Environment:
        return lmdb.open(
            str(self.path),
            map_size=self.map_size,
            max_dbs=len(self.tables) + 1,
            max_readers=1024,
            sync=False,
            metasync=False,
            readahead=False,
        )

    def _recorded_boot(self) -> str | None:
        try:
            return (self.path / BOOT_FILE).read_text().strip()
        except OSError:
            return None

    def _recreate(self, boot: str) -> None:
        for name in ("data.mdb", "lock.mdb"):
            (self.path / name).unlink(missing_ok=True)
        (self.path / BOOT_FILE).write_text(boot + "\n")
