"""The `MetadataStore` interface, on every backend: LMDB's two commit paths (one transaction per
call, and the group commit of durable stores) and PostgreSQL (a real server, `tests/postgres.py`).
Reads and writes, ranges, counts, sequences, after-commit side effects, the recorded schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from objstore.meta import MetadataStore, ReadTxn, WriteTxn, scan
from objstore.meta.interface import MAX_KEY_BYTES, META
from objstore.store import SCHEMA_VERSION, TABLES


@pytest.fixture(params=["lmdb-unsynced", "lmdb-durable", "postgresql"])
def db(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[MetadataStore]:
    store: MetadataStore
    if request.param == "postgresql":
        from objstore.meta.postgres import PostgresMetadataStore

        store = PostgresMetadataStore(request.getfixturevalue("pg_database"), TABLES, SCHEMA_VERSION)
    else:
        from objstore.meta.lmdb import LmdbMetadataStore

        durable = request.param == "lmdb-durable"
        store = LmdbMetadataStore(tmp_path / "meta", TABLES, 1 << 26, durable, SCHEMA_VERSION)
    yield store
    store.close()


def put_rows(db: MetadataStore, table: str, keys: list[bytes]) -> None:
    def put(w: WriteTxn) -> None:
        for key in keys:
            w.put(table, key, key.upper())

    db.transact(put)


def keys_of(db: MetadataStore, table: str, **kwargs: object) -> list[bytes]:
    return db.read(lambda r: [k for k, _ in r.range(table, **kwargs)])  # type: ignore[arg-type]


def test_tables_exist_and_schema_is_recorded(db: MetadataStore) -> None:
    def check(r: ReadTxn) -> None:
        assert r.get(META, b"schema") == str(SCHEMA_VERSION).encode()
        for table in TABLES:
            assert list(r.range(table)) == []

    db.read(check)


def test_transact_and_read_return_what_the_function_returns(db: MetadataStore) -> None:
    assert db.transact(lambda w: w.put("users", b"u", b"1") or "done") == "done"
    assert db.read(lambda r: r.get("users", b"u")) == b"1"


def test_commit_runs_side_effects_after_the_data_is_visible(db: MetadataStore) -> None:
    seen: list[bytes | None] = []

    def after() -> None:
        seen.append(db.read(lambda r: r.get("users", b"u")))

    def write(w: WriteTxn) -> None:
        w.put("users", b"u", b"1")
        w.on_commit(after)
        assert seen == []

    db.transact(write)
    assert seen == [b"1"]


def test_an_exception_aborts_and_skips_side_effects(db: MetadataStore) -> None:
    ran: list[int] = []

    def write(w: WriteTxn) -> None:
        w.put("users", b"u", b"1")
        w.on_commit(lambda: ran.append(1))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        db.transact(write)
    assert ran == []
    assert db.read(lambda r: r.get("users", b"u")) is None


def test_delete_reports_whether_the_key_existed(db: MetadataStore) -> None:
    def write(w: WriteTxn) -> None:
        w.put("buckets", b"b", b"x")
        assert w.delete("buckets", b"b") is True
        assert w.delete("buckets", b"b") is False

    db.transact(write)


def test_keys_no_row_can_have_read_as_none_and_delete_nothing(db: MetadataStore) -> None:
    """Clients may send an access key id, a bucket name or an upload id of any length."""
    too_long = b"k" * (MAX_KEY_BYTES + 1)

    def write(w: WriteTxn) -> None:
        assert w.get("keys", too_long) is None
        assert w.get("keys", b"") is None
        assert w.delete("keys", too_long) is False
        assert w.delete("keys", b"") is False
        w.put("keys", b"k" * MAX_KEY_BYTES, b"v")  # the longest key a row may have

    db.transact(write)
    assert db.read(lambda r: r.get("keys", b"k" * MAX_KEY_BYTES)) == b"v"


def test_range_is_in_key_order_within_its_bounds(db: MetadataStore) -> None:
    put_rows(db, "objects", [b"d", b"a", b"c", b"b"])
    assert keys_of(db, "objects") == [b"a", b"b", b"c", b"d"]
    assert keys_of(db, "objects", start=b"b") == [b"b", b"c", b"d"]
    assert keys_of(db, "objects", start=b"bb") == [b"c", b"d"]
    assert keys_of(db, "objects", start=b"b", end=b"d") == [b"b", b"c"]
    assert keys_of(db, "objects", end=b"c") == [b"a", b"b"]
    assert keys_of(db, "objects", start=b"e") == []
    assert keys_of(db, "objects", start=b"c", end=b"c") == []
    assert db.read(lambda r: list(r.range("objects", b"c"))) == [(b"c", b"C"), (b"d", b"D")]


def test_range_in_reverse_keeps_the_same_bounds(db: MetadataStore) -> None:
    put_rows(db, "objects", [b"a", b"b", b"c", b"d"])
    assert keys_of(db, "objects", reverse=True) == [b"d", b"c", b"b", b"a"]
    assert keys_of(db, "objects", start=b"b", end=b"d", reverse=True) == [b"c", b"b"]
    assert keys_of(db, "objects", end=b"cc", reverse=True) == [b"c", b"b", b"a"]
    assert keys_of(db, "objects", end=b"z", reverse=True) == [b"d", b"c", b"b", b"a"]
    assert keys_of(db, "objects", end=b"a", reverse=True) == []
    assert keys_of(db, "objects", start=b"bb", reverse=True) == [b"d", b"c"]


def test_range_stops_at_its_limit(db: MetadataStore) -> None:
    put_rows(db, "objects", [b"a", b"b", b"c", b"d"])
    assert keys_of(db, "objects", limit=2) == [b"a", b"b"]
    assert keys_of(db, "objects", start=b"b", limit=10) == [b"b", b"c", b"d"]
    assert keys_of(db, "objects", reverse=True, limit=1) == [b"d"]
    assert keys_of(db, "objects", end=b"d", reverse=True, limit=2) == [b"c", b"b"]
    assert keys_of(db, "objects", limit=0) == []


def test_scan_reads_one_prefix(db: MetadataStore) -> None:
    put_rows(db, "objects", [b"a", b"a\x00", b"a\x01x", b"a\xff", b"a\xff\xff", b"b", b"\xff", b"\xff\x01"])
    assert db.read(lambda r: [k for k, _ in scan(r, "objects", b"a")]) == [
        b"a",
        b"a\x00",
        b"a\x01x",
        b"a\xff",
        b"a\xff\xff",
    ]
    assert db.read(lambda r: [k for k, _ in scan(r, "objects", b"a\xff")]) == [b"a\xff", b"a\xff\xff"]
    assert db.read(lambda r: [k for k, _ in scan(r, "objects", b"\xff")]) == [b"\xff", b"\xff\x01"]
    assert db.read(lambda r: [k for k, _ in scan(r, "objects", b"a", reverse=True, limit=2)]) == [
        b"a\xff\xff",
        b"a\xff",
    ]


def test_count_is_the_number_of_rows(db: MetadataStore) -> None:
    assert db.read(lambda r: r.count("objects")) == 0
    put_rows(db, "objects", [b"a", b"b", b"c"])
    db.transact(lambda w: w.delete("objects", b"b"))
    assert db.read(lambda r: r.count("objects")) == 2
    assert db.read(lambda r: r.count("users")) == 0


def test_next_id_counts_per_counter(db: MetadataStore) -> None:
    def first(w: WriteTxn) -> None:
        assert [w.next_id("bucket") for _ in range(3)] == [1, 2, 3]
        assert w.next_id("other") == 1

    db.transact(first)
    assert db.transact(lambda w: w.next_id("bucket")) == 4


def test_next_id_of_an_aborted_transaction_is_given_again(db: MetadataStore) -> None:
    def aborted(w: WriteTxn) -> None:
        assert w.next_id("bucket") == 1
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        db.transact(aborted)
    assert db.transact(lambda w: w.next_id("bucket")) == 1


def test_ranges_longer_than_one_page_neither_skip_nor_repeat(db: MetadataStore) -> None:
    """PostgreSQL reads a range in pages of 512 rows (`postgres.BATCH`)."""
    keys = [i.to_bytes(2, "big") for i in range(1300)]
    put_rows(db, "objects", keys)
    assert keys_of(db, "objects") == keys
    assert keys_of(db, "objects", reverse=True) == keys[::-1]
    assert keys_of(db, "objects", start=keys[100], limit=1000) == keys[100:1100]
    assert keys_of(db, "objects", end=keys[1200], reverse=True, limit=700) == keys[500:1200][::-1]
