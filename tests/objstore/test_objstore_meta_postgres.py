"""What is PostgreSQL's own in its metadata store (`objstore.meta.postgres`): transactions that lose
a serialization conflict are run again and commit once, from threads and from processes at once;
the schema is checked as LMDB's is; snapshots are refused for pg_dump; a store made before fork
opens its own pool in the child."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from objstore.meta import WriteTxn
from objstore.meta.interface import META
from objstore.meta.postgres import PostgresMetadataStore
from objstore.store import SCHEMA_VERSION, TABLES

INCREMENTS = 40


@pytest.fixture
def db(pg_database: str) -> Iterator[PostgresMetadataStore]:
    store = PostgresMetadataStore(pg_database, TABLES, SCHEMA_VERSION)
    yield store
    store.close()


def increment(db: PostgresMetadataStore, committed: list[int], calls: list[int]) -> None:
    """Read-modify-write of one row: lost updates if two commits ever saw the same value."""

    def bump(w: WriteTxn) -> None:
        calls.append(1)
        value = int(w.get("users", b"counter") or b"0")
        w.put("users", b"counter", str(value + 1).encode())
        w.on_commit(lambda: committed.append(1))

    db.transact(bump)


def counter(db: PostgresMetadataStore) -> int:
    return int(db.read(lambda r: r.get("users", b"counter")) or b"0")


def test_conflicting_transactions_from_threads_each_commit_once(db: PostgresMetadataStore) -> None:
    committed: list[int] = []
    calls: list[int] = []
    threads = [
        threading.Thread(target=lambda: [increment(db, committed, calls) for _ in range(INCREMENTS)]) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter(db) == 8 * INCREMENTS  # no update lost
    assert len(committed) == 8 * INCREMENTS  # each side effect once, after its commit
    assert len(calls) > len(committed)  # conflicts happened, and were run again


def test_conflicting_transactions_from_processes_each_commit_once(db: PostgresMetadataStore, pg_database: str) -> None:
    """Two processes (two nodes, as far as the database can tell) on the same hot row."""
    code = (
        "import sys, threading; sys.path.insert(0, sys.argv[2]); "
        "from objstore.meta.postgres import PostgresMetadataStore; "
        "from objstore.store import SCHEMA_VERSION, TABLES; "
        "from test_objstore_meta_postgres import increment, INCREMENTS; "
        "db = PostgresMetadataStore(sys.argv[1], TABLES, SCHEMA_VERSION); done = []; "
        "work = lambda: [increment(db, done, []) for _ in range(INCREMENTS)]; "
        "ts = [threading.Thread(target=work) for _ in range(4)]; "
        "[t.start() for t in ts]; [t.join() for t in ts]; print(len(done))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    here = os.path.dirname(os.path.abspath(__file__))
    procs = [
        subprocess.Popen([sys.executable, "-c", code, pg_database, here], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert [int(o) for o in outputs] == [4 * INCREMENTS, 4 * INCREMENTS]
    assert counter(db) == 2 * 4 * INCREMENTS


def test_a_newer_schema_is_refused_and_an_older_one_brought_up_to_date(
    db: PostgresMetadataStore, pg_database: str
) -> None:
    db.transact(lambda w: w.put(META, b"schema", str(SCHEMA_VERSION + 1).encode()))
    db.close()
    with pytest.raises(RuntimeError, match="schema"):
        PostgresMetadataStore(pg_database, TABLES, SCHEMA_VERSION).read(lambda r: None)
    older = PostgresMetadataStore(pg_database, TABLES, SCHEMA_VERSION + 2)
    assert older.read(lambda r: r.get(META, b"schema")) == str(SCHEMA_VERSION + 2).encode()
    older.close()


def test_a_snapshot_is_left_to_pg_dump(db: PostgresMetadataStore, tmp_path: object) -> None:
    with pytest.raises(NotImplementedError, match="pg_dump"):
        db.copy_to(tmp_path)  # type: ignore[arg-type]


def test_a_store_made_before_fork_opens_its_own_pool_in_the_child(db: PostgresMetadataStore) -> None:
    db.transact(lambda w: w.put("users", b"parent", b"1"))
    pid = os.fork()
    if pid == 0:  # the child: the parent's connections must not be used here
        try:
            db.transact(lambda w: w.put("users", b"child", b"1"))
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert db.read(lambda r: (r.get("users", b"parent"), r.get("users", b"child"))) == (b"1", b"1")


def test_counters_are_sequences_that_go_on_from_a_counter_kept_in_a_row(db: PostgresMetadataStore) -> None:
    """A store written by an older pyblob (or migrated from LMDB) kept its counters in `meta` rows:
    the sequence starts after them, and ids never repeat, from any number of threads."""
    db.transact(lambda w: w.put(META, b"seq:version", b"41"))
    assert db.transact(lambda w: w.next_id("version")) == 42
    drawn: list[int] = []

    def draw() -> None:
        for _ in range(20):
            drawn.append(db.transact(lambda w: w.next_id("version")))

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(drawn)) == 80 and min(drawn) > 42
    other = PostgresMetadataStore(db.url, TABLES, SCHEMA_VERSION)  # another node: the row is stale now
    assert other.transact(lambda w: w.next_id("version")) > max(drawn)
    other.close()
    with pytest.raises(ValueError):
        db.transact(lambda w: w.next_id("Robert'); DROP TABLE"))
