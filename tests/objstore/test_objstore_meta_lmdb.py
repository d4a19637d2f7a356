"""What is LMDB's own in the LMDB metadata store (`objstore.meta.lmdb`): schema checks on reopening,
copies, first use from threads and after fork, group commit. What every backend must do is in
test_objstore_meta_contract.py."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from objstore.errors import MetadataMapFull, StorageFull
from objstore.meta import ReadTxn, WriteTxn
from objstore.meta.lmdb import META, LmdbMetadataStore
from objstore.store import SCHEMA_VERSION, TABLES

REPO = Path(__file__).resolve().parent.parent.parent


def open_meta(path: Path, durable: bool = False) -> LmdbMetadataStore:
    return LmdbMetadataStore(path, TABLES, 1 << 26, durable, SCHEMA_VERSION)


@pytest.fixture(params=[False, True], ids=["unsynced", "durable"])
def db(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LmdbMetadataStore]:
    """Both commit paths: unsynced (one LMDB transaction per call) and durable (group commit)."""
    d = open_meta(tmp_path / "meta", durable=request.param)
    yield d
    d.close()


def test_newer_schema_is_refused(tmp_path: Path, db: LmdbMetadataStore) -> None:
    db.transact(lambda w: w.put(META, b"schema", str(SCHEMA_VERSION + 1).encode()))
    db.close()
    again = open_meta(tmp_path / "meta")
    with pytest.raises(RuntimeError, match="schema"):
        again.read(lambda r: r.get(META, b"schema"))


def test_an_older_schema_is_brought_up_to_date(tmp_path: Path, db: LmdbMetadataStore) -> None:
    """A data dir of schema 1 (before versions) opens as it is and is recorded as the current schema."""
    db.transact(lambda w: w.put(META, b"schema", b"1"))
    db.close()
    again = open_meta(tmp_path / "meta")
    assert again.read(lambda r: r.get(META, b"schema")) == str(SCHEMA_VERSION).encode()
    again.close()


def test_copy_to_is_a_readable_environment(tmp_path: Path, db: LmdbMetadataStore) -> None:
    db.transact(lambda w: w.put("objects", b"k", b"v"))
    db.copy_to(tmp_path / "snap")
    assert (tmp_path / "snap" / "data.mdb").exists()
    db.transact(lambda w: w.put("objects", b"later", b"v"))
    copy = open_meta(tmp_path / "snap")
    assert copy.read(lambda r: (r.get("objects", b"k"), r.get("objects", b"later"))) == (b"v", None)
    copy.close()
    with pytest.raises(FileExistsError):
        db.copy_to(tmp_path / "snap")


RACE = """
import json, sys, threading, time
import objstore.meta.lmdb as mod
from pathlib import Path

real_open, opens = mod.lmdb.open, []

def slow_open(*args, **kwargs):
    time.sleep(0.2)  # widens the window between "no env yet" and "env set"; changes nothing else
    env = real_open(*args, **kwargs)
    opens.append(1)
    return env

mod.lmdb.open = slow_open
db = mod.LmdbMetadataStore(Path(sys.argv[1]), ("users",), 1 << 26, False, 2)
errors, start = [], threading.Barrier(4)

def first_use():
    start.wait()
    try:
        db.read(lambda r: r.get("meta", b"schema"))
    except BaseException as e:
        errors.append(repr(e))

threads = [threading.Thread(target=first_use) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"errors": errors, "opens": len(opens)}), flush=True)
"""


def run_script(script: str, *args: str) -> dict[str, object]:
    """Run `script` in a child process (a deadlock fails the test instead of hanging the suite)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, *args], cwd=REPO, capture_output=True, text=True, timeout=15
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the child process hung")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_first_use_from_several_threads_opens_the_environment_once(tmp_path: Path) -> None:
    """A server's worker threads may all touch a fresh store at once.

    LMDB must not open the same environment twice in one process (py-lmdb raises "already open";
    when two opens do slip through, closing either breaks LMDB's locking).
    """
    assert run_script(RACE, str(tmp_path / "meta")) == {"errors": [], "opens": 1}


FORK = """
import json, os, sys
from pathlib import Path
from objstore.meta.lmdb import LmdbMetadataStore

db = LmdbMetadataStore(Path(sys.argv[1]), ("users",), 1 << 26, False, 2)
pid = os.fork()  # as a server forks its workers: the store is made, its environment not yet opened
if pid == 0:
    try:
        db.transact(lambda w: w.put("users", b"child", b"1"))
        db.close()
    except BaseException:
        os._exit(1)
    os._exit(0)
_, status = os.waitpid(pid, 0)
seen = db.read(lambda r: r.get("users", b"child"))
print(json.dumps({"child": os.waitstatus_to_exitcode(status), "seen": seen is not None}))
"""


def test_a_store_made_before_fork_opens_in_the_process_that_uses_it(tmp_path: Path) -> None:
    """An environment is never carried across fork(): a store opens it lazily, so one made before the
    fork opens in the child that uses it (whose writes the parent then reads with its own)."""
    assert run_script(FORK, str(tmp_path / "meta")) == {"child": 0, "seen": True}


def test_concurrent_durable_transactions_each_commit_once_and_fail_alone(tmp_path: Path) -> None:
    """Group commit: 16 threads × 25 transactions, every fifth one failing after its writes. Each
    caller gets its own result, its own side effects (in its own thread) and its own exception; the
    failed ones leave nothing; the sequence counts every committed transaction exactly once."""
    store = open_meta(tmp_path / "meta", durable=True)
    outcomes: list[tuple[str, object]] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(25):
            key = f"{n:02d}-{i:02d}".encode()
            effects: list[int] = []

            def write(w: WriteTxn, key: bytes = key, i: int = i, effects: list[int] = effects) -> int:
                w.put("buckets", key, b"row")
                w.on_commit(lambda: effects.append(threading.get_ident()))
                if i % 5 == 4:
                    raise ValueError(key.decode())
                return w.next_id("test")

            try:
                got: object = store.transact(write)
            except ValueError as e:
                got = e
            with lock:
                outcomes.append((key.decode(), got))
                assert effects == ([] if isinstance(got, ValueError) else [threading.get_ident()])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = {key for key, got in outcomes if isinstance(got, ValueError)}
    assert failed == {f"{n:02d}-{i:02d}" for n in range(16) for i in range(4, 25, 5)}
    assert all(str(got) == key for key, got in outcomes if key in failed)
    ids = sorted(got for key, got in outcomes if key not in failed)
    assert ids == list(range(1, 16 * 20 + 1))  # each committed transaction drew one id, once
    stored = {k.decode() for k, _ in store.read(lambda r: list(r.range("buckets")))}
    assert stored == {key for key, _ in outcomes} - failed
    store.close()


# A full map (issue 15) --------------------------------------------------------------------------------
SMALL_MAP = 128 * 1024  # a few dozen rows of ROW bytes fill it


def fill_rows(store: LmdbMetadataStore, count: int, prefix: bytes = b"row") -> int:
    """`count` rows of ROW bytes, one transaction each; how many committed before MetadataMapFull."""
    for n in range(count):
        try:
            store.transact(lambda w, n=n: w.put("buckets", prefix + b"%05d" % n, ROW))
        except MetadataMapFull:
            return n
    return count


ROW = b"x" * 1000


@pytest.mark.parametrize("durable", [False, True], ids=["unsynced", "durable"])
def test_a_full_map_grows_and_the_transaction_runs_again(tmp_path: Path, durable: bool) -> None:
    store = LmdbMetadataStore(tmp_path / "meta", TABLES, SMALL_MAP, durable, SCHEMA_VERSION)
    assert fill_rows(store, 2000) == 2000
    assert store.env.info()["map_size"] >= 16 * SMALL_MAP
    assert store.read(lambda r: r.count("buckets")) == 2000
    store.close()


@pytest.mark.parametrize("durable", [False, True], ids=["unsynced", "durable"])
def test_a_map_at_its_cap_refuses_with_metadata_map_full_and_keeps_nothing(tmp_path: Path, durable: bool) -> None:
    store = LmdbMetadataStore(tmp_path / "meta", TABLES, SMALL_MAP, durable, SCHEMA_VERSION, 4 * SMALL_MAP)
    stored = fill_rows(store, 2000)
    assert 0 < stored < 2000
    assert store.env.info()["map_size"] == 4 * SMALL_MAP
    assert store.read(lambda r: (r.count("buckets"), r.get("buckets", b"row%05d" % stored))) == (stored, None)
    assert fill_rows(store, 100, b"more") < 100  # still full: the cap holds
    with pytest.raises(MetadataMapFull, match="metadata map") as refused:
        store.transact(lambda w: w.put("buckets", b"big", ROW * 100))
    assert isinstance(refused.value, StorageFull)
    assert store.env.info()["map_size"] == 4 * SMALL_MAP
    store.close()


def test_a_resize_waits_for_the_readers_of_the_process(tmp_path: Path) -> None:
    """A read in progress on another thread holds the map in place: the writer that fills the map
    waits for it to end, grows the map, and both succeed."""
    store = LmdbMetadataStore(tmp_path / "meta", TABLES, SMALL_MAP, False, SCHEMA_VERSION)
    store.transact(lambda w: w.put("buckets", b"seen", b"before"))
    reading, release = threading.Event(), threading.Event()
    seen: list[bytes | None] = []

    def slow_read() -> None:
        def hold(r: ReadTxn) -> None:
            reading.set()
            release.wait(10)
            seen.append(r.get("buckets", b"seen"))

        store.read(hold)

    reader = threading.Thread(target=slow_read)
    reader.start()
    reading.wait(10)
    threading.Timer(0.3, release.set).start()  # the writer below fills the map meanwhile
    started = time.monotonic()
    assert fill_rows(store, 500) == 500
    assert time.monotonic() - started >= 0.25  # the resize waited for the reader
    reader.join(10)
    assert seen == [b"before"]
    store.close()


GROW_ELSEWHERE = """
import sys
from pathlib import Path
from objstore.meta.lmdb import LmdbMetadataStore
from objstore.store import SCHEMA_VERSION, TABLES

db = LmdbMetadataStore(Path(sys.argv[1]), TABLES, int(sys.argv[2]), False, SCHEMA_VERSION)
for n in range(1000):
    db.transact(lambda w, n=n: w.put("buckets", b"other%05d" % n, b"y" * 1000))
db.close()
print("{}")
"""


def test_a_map_another_process_grew_is_adopted(tmp_path: Path) -> None:
    """Another process grows the map past this one's: the next transaction here takes the new size
    (LMDB's MDB_MAP_RESIZED) and runs, reads and writes alike."""
    store = LmdbMetadataStore(tmp_path / "meta", TABLES, SMALL_MAP, False, SCHEMA_VERSION)
    store.transact(lambda w: w.put("buckets", b"mine", b"1"))
    assert run_script(GROW_ELSEWHERE, str(tmp_path / "meta"), str(SMALL_MAP)) == {}
    assert store.read(lambda r: r.count("buckets")) == 1001
    store.transact(lambda w: w.put("buckets", b"mine again", b"2"))
    assert store.env.info()["map_size"] > SMALL_MAP
    store.close()
