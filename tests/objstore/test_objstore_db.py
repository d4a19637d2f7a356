"""The LMDB environment (`objstore.db`): commit/abort, after-commit side effects, ids, schema, copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from objstore.db import SCHEMA_VERSION, TABLES, Database


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database(tmp_path / "meta", map_size=1 << 26, durable=False)
    yield d
    d.close()


def test_tables_exist_and_schema_is_recorded(db: Database) -> None:
    with db.read() as r:
        assert r.get("meta", b"schema") == str(SCHEMA_VERSION).encode()
        for table in TABLES:
            assert list(r.cursor(table)) == [] or table == "meta"


def test_commit_runs_side_effects_after_the_data_is_visible(db: Database) -> None:
    seen: list[bytes | None] = []

    def after() -> None:
        with db.read() as r:
            seen.append(r.get("users", b"u"))

    with db.write() as w:
        w.put("users", b"u", b"1")
        w.on_commit(after)
        assert seen == []
    assert seen == [b"1"]


def test_an_exception_aborts_and_skips_side_effects(db: Database) -> None:
    ran: list[int] = []
    with pytest.raises(RuntimeError):
        with db.write() as w:
            w.put("users", b"u", b"1")
            w.on_commit(lambda: ran.append(1))
            raise RuntimeError("boom")
    assert ran == []
    with db.read() as r:
        assert r.get("users", b"u") is None


def test_delete_reports_whether_the_key_existed(db: Database) -> None:
    with db.write() as w:
        w.put("buckets", b"b", b"x")
        assert w.delete("buckets", b"b") is True
        assert w.delete("buckets", b"b") is False


def test_next_id_counts_per_counter(db: Database) -> None:
    with db.write() as w:
        assert [db.next_id(w, "bucket") for _ in range(3)] == [1, 2, 3]
        assert db.next_id(w, "other") == 1
    with db.write() as w:
        assert db.next_id(w, "bucket") == 4


def test_newer_schema_is_refused(tmp_path: Path, db: Database) -> None:
    with db.write() as w:
        w.put("meta", b"schema", str(SCHEMA_VERSION + 1).encode())
    db.close()
    again = Database(tmp_path / "meta", map_size=1 << 26, durable=False)
    with pytest.raises(RuntimeError, match="schema"):
        _ = again.env


def test_an_older_schema_is_brought_up_to_date(tmp_path: Path, db: Database) -> None:
    """A data dir of schema 1 (before versions) opens as it is and is recorded as the current schema."""
    with db.write() as w:
        w.put("meta", b"schema", b"1")
    db.close()
    again = Database(tmp_path / "meta", map_size=1 << 26, durable=False)
    with again.read() as r:
        assert r.get("meta", b"schema") == str(SCHEMA_VERSION).encode()
    again.close()


def test_copy_to_is_a_readable_environment(tmp_path: Path, db: Database) -> None:
    with db.write() as w:
        w.put("objects", b"k", b"v")
    db.copy_to(tmp_path / "snap")
    assert (tmp_path / "snap" / "data.mdb").exists()
    with db.write() as w:
        w.put("objects", b"later", b"v")
    copy = Database(tmp_path / "snap", map_size=1 << 26, durable=False)
    with copy.read() as r:
        assert r.get("objects", b"k") == b"v"
        assert r.get("objects", b"later") is None
    copy.close()
    with pytest.raises(FileExistsError):
        db.copy_to(tmp_path / "snap")


RACE = """
import json, sys, threading, time
import objstore.db as mod
from pathlib import Path

real_open, opens = mod.lmdb.open, []

def slow_open(*args, **kwargs):
    time.sleep(0.2)  # widens the window between "no env yet" and "env set"; changes nothing else
    env = real_open(*args, **kwargs)
    opens.append(1)
    return env

mod.lmdb.open = slow_open
db = mod.Database(Path(sys.argv[1]), map_size=1 << 26, durable=False)
errors, start = [], threading.Barrier(4)

def first_use():
    start.wait()
    try:
        with db.read() as r:
            r.get("meta", b"schema")
    except BaseException as e:
        errors.append(repr(e))

threads = [threading.Thread(target=first_use) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"errors": errors, "opens": len(opens)}), flush=True)
"""


def test_first_use_from_several_threads_opens_the_environment_once(tmp_path: Path) -> None:
    """A server's worker threads may all touch a fresh `Database` at once.

    LMDB must not open the same environment twice in one process (py-lmdb raises "already open";
    when two opens do slip through, closing either breaks LMDB's locking). The race runs in a
    child process so that a deadlock fails this test instead of hanging the suite.
    """
    import json
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent.parent
    try:
        done = subprocess.run([sys.executable, "-c", RACE, str(tmp_path / "meta")], cwd=repo,
                              capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("threads opening the environment at once deadlocked")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == {"errors": [], "opens": 1}
