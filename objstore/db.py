"""The LMDB environment: one per data dir, named databases, synced commits, one writer at a time.

LMDB serialises writers itself (across threads and processes); we add the habit of running
follow-up side effects (unlinking files) only after the transaction that made them safe committed.
An environment must never be carried across fork(): `Database` remembers the pid that opened it.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import lmdb

TABLES = (
    "meta",  # schema version, id counters
    "users",  # user name -> UserRecord
    "keys",  # access key id -> AccessKeyRecord
    "tokens",  # sha256(token) -> TokenRecord
    "buckets",  # bucket name -> BucketRecord
    "objects",  # bucket id + encoded object key -> ObjectRecord: the latest version (see versions.py)
    "versions",  # bucket id + key hash + inverted sequence -> ObjectRecord: noncurrent versions
    "null_versions",  # bucket id + key hash -> sequence of the key's noncurrent "null" version
    "manifests",  # manifest id -> ManifestHead (reference count, size, inline data)
    "mpages",  # manifest id + start offset -> packed chunk entries
    "chunks",  # BLAKE3 digest -> ChunkRow (reference count, zero-since time)
    "uploads",  # upload id -> UploadRecord
    "parts",  # upload id + part number -> PartRecord
    "completed",  # upload id -> CompletedUploadRecord: recently completed uploads (retried Completes)
    "completed_order",  # completion time (big-endian) + upload id -> b"": the oldest go first
    "manifest_parts",  # manifest id + part number -> the part's offset, size and checksums
    "links",  # short link id -> LinkRecord
    "link_owners",  # owner + NUL + sequence (big-endian) -> link id: an owner's links in order
    "resumables",  # owner + NUL + upload id -> ResumableRecord (tus uploads, see resumable.py)
)

# 2: object versions (`versions` table, version fields of objects), completed uploads, part layouts.
# Rows of 1 read as they are (new fields have defaults, new tables start empty), so opening a data
# dir of 1 only records 2; a pyblob that knows only 1 then refuses the data dir instead of
# misreading versions it does not know about.
SCHEMA_VERSION = 2
MAX_KEY_BYTES = 511  # LMDB's key size limit (liblmdb's default MDB_MAXKEYSIZE)


class Txn:
    """A write transaction plus the side effects to run once it has committed."""

    def __init__(self, txn: lmdb.Transaction, dbs: dict[str, lmdb._Database]):
        self.txn = txn
        self.dbs = dbs
        self._after: list[Callable[[], None]] = []

    def get(self, table: str, key: bytes) -> bytes | None:
        """The row under `key`, or None; a key longer than LMDB can store names no row (and a client
        may send one: an access key id, a bucket name, an upload id of any length)."""
        if not key or len(key) > MAX_KEY_BYTES:
            return None
        return self.txn.get(key, db=self.dbs[table])

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self.txn.put(key, value, db=self.dbs[table])

    def delete(self, table: str, key: bytes) -> bool:
        if not key or len(key) > MAX_KEY_BYTES:
            return False
        return bool(self.txn.delete(key, db=self.dbs[table]))

    def cursor(self, table: str) -> lmdb.Cursor:
        return self.txn.cursor(db=self.dbs[table])

    def count(self, table: str) -> int:
        """How many rows the table holds (LMDB keeps the number: no scan)."""
        return int(self.txn.stat(self.dbs[table])["entries"])

    def on_commit(self, fn: Callable[[], None]) -> None:
        self._after.append(fn)


Tables = dict[str, "lmdb._Database"]


def next_id(w: Txn, counter: str) -> int:
    """The next value of a counter kept in the `meta` table, inside the caller's write transaction."""
    key = b"seq:" + counter.encode()
    value = int(w.get("meta", key) or b"0") + 1
    w.put("meta", key, str(value).encode())
    return value


def open_tables(env: lmdb.Environment, names: tuple[str, ...]) -> Tables:
    """The named databases of `env`; the environment is closed if one cannot be opened."""
    try:
        return {name: env.open_db(name.encode()) for name in names}
    except BaseException:
        env.close()
        raise


class LazyEnvironment:
    """An LMDB environment opened lazily in the process that uses it, never carried across fork().

    Subclasses say how to open it (`_open`) and what to do once it is open (`_opened`).
    """

    def __init__(self, path: Path):
        self.path = path
        self._env: lmdb.Environment | None = None
        self._pid = 0
        self._dbs: Tables = {}
        self._open_lock = threading.Lock()

    @property
    def env(self) -> lmdb.Environment:
        if self._env is None or self._pid != os.getpid():
            with self._open_lock:  # server threads may all touch a fresh store at once
                if self._env is None or self._pid != os.getpid():
                    env, self._dbs = self._open()
                    self._env, self._pid = env, os.getpid()
                    self._opened()
        assert self._env is not None
        return self._env

    def _open(self) -> tuple[lmdb.Environment, Tables]:
        raise NotImplementedError

    def _opened(self) -> None:
        """Runs once the environment is open in this process."""

    @contextmanager
    def write(self) -> Iterator[Txn]:
        env = self.env
        txn = Txn(env.begin(write=True), self._dbs)
        try:
            yield txn
        except BaseException:
            txn.txn.abort()
            raise
        txn.txn.commit()
        for fn in txn._after:
            fn()

    @contextmanager
    def read(self) -> Iterator[Txn]:
        env = self.env
        with env.begin(buffers=False) as raw:
            yield Txn(raw, self._dbs)

    def close(self) -> None:
        if self._env is not None and self._pid == os.getpid():
            self._env.close()
        self._env = None


class Database(LazyEnvironment):
    """The metadata: synced commits (unless not durable), the schema version checked on open."""

    def __init__(self, path: Path, map_size: int, durable: bool = True):
        super().__init__(path)
        self.map_size = map_size
        self.durable = durable

    def _open(self) -> tuple[lmdb.Environment, Tables]:
        self.path.mkdir(parents=True, exist_ok=True)
        env = lmdb.open(
            str(self.path),
            map_size=self.map_size,
            max_dbs=len(TABLES) + 1,
            max_readers=1024,
            sync=self.durable,
            metasync=self.durable,
            readahead=False,
        )
        return env, open_tables(env, TABLES)

    def _opened(self) -> None:
        self._check_schema()

    def _check_schema(self) -> None:
        with self.write() as w:
            found = w.get("meta", b"schema")
            if found is not None and int(found) > SCHEMA_VERSION:
                raise RuntimeError(f"data dir has schema {int(found)}, this pyblob knows {SCHEMA_VERSION}")
            if found is None or int(found) < SCHEMA_VERSION:
                w.put("meta", b"schema", str(SCHEMA_VERSION).encode())

    def next_id(self, w: Txn, counter: str) -> int:
        return next_id(w, counter)

    def copy_to(self, dest: Path) -> None:
        """A consistent copy of the environment (compacted), readable by a fresh `Database`."""
        dest.mkdir(parents=True, exist_ok=False)
        self.env.copy(str(dest), compact=True)
