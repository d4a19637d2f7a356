"""Chunk reference counts (`objstore.refcount`) and deduplication as the store uses them."""

from __future__ import annotations

from collections import Counter

import pytest
from clocks import Clock
from objstore_helpers import chunk_files, chunk_row, entries_of, rand, read

from objstore import Store, refcount
from objstore.errors import ChunkMissing, FormatError
from objstore.maintenance import collect_garbage, fsck
from objstore.meta import ReadTxn, WriteTxn

D1, D2 = b"\x01" * 32, b"\x02" * 32


def ANY_STORED(digest: bytes) -> bool:
    """Tests of counts: a chunk without a row is taken as stored."""
    return True


def NOTHING_STORED(digest: bytes) -> bool:
    return False


def test_row_round_trip_and_version() -> None:
    row = refcount.ChunkRow(3, 12.5, 65536)
    assert refcount.ChunkRow.decode(row.encode()) == row
    with pytest.raises(FormatError):
        refcount.ChunkRow.decode(b"\x09" + row.encode()[1:])
    deleting = refcount.ChunkRow(0, 12.5, 65536, deleting=True)
    assert refcount.ChunkRow.decode(deleting.encode()) == deleting
    assert row.encode()[0] == 1 and deleting.encode()[0] == 2  # rows not being deleted keep version 1
    for flagged in (
        refcount.ChunkRow(2, 0.0, 65536, quarantined=True),
        refcount.ChunkRow(0, 12.5, 65536, deleting=True, quarantined=True),
    ):
        assert refcount.ChunkRow.decode(flagged.encode()) == flagged and flagged.encode()[0] == 3
        assert not flagged.live


def test_a_quarantined_chunk_is_healed_by_a_writer_that_stored_it(store: Store) -> None:
    store.meta.transact(lambda w: refcount.put(w, D1, refcount.ChunkRow(1, 0.0, 10, quarantined=True)))
    with pytest.raises(ChunkMissing):  # its bytes are aside: a writer that did not store them may not refer to it
        store.meta.transact(lambda w: refcount.add_refs(w, Counter({D1: 1}), {D1: 10}, stored=lambda d: False))
    store.meta.transact(lambda w: refcount.add_refs(w, Counter({D1: 1}), {D1: 10}, stored=lambda d: True))
    row = store.meta.read(lambda r: refcount.get(r, D1))
    assert row == refcount.ChunkRow(2, 0.0, 10)


# GC's protocol: live -> deleting -> gone, and writers that race it ------------------------------
def test_no_reference_to_a_chunk_gc_is_deleting(store: Store) -> None:
    store.meta.transact(lambda w: refcount.put(w, D1, refcount.ChunkRow(0, 5.0, 10, deleting=True)))
    with pytest.raises(ChunkMissing):
        store.meta.transact(lambda w: refcount.add_refs(w, Counter({D1: 1}), {D1: 10}, ANY_STORED))
    assert store.meta.read(lambda r: refcount.get(r, D1)) == refcount.ChunkRow(0, 5.0, 10, deleting=True)


def test_no_reference_to_a_chunk_without_row_or_bytes(store: Store) -> None:
    with pytest.raises(ChunkMissing):
        store.meta.transact(lambda w: refcount.add_refs(w, Counter({D1: 1}), {D1: 10}, NOTHING_STORED))
    assert store.meta.read(lambda r: refcount.get(r, D1)) is None


def test_a_row_is_not_asked_about_its_bytes(store: Store) -> None:
    """A row that is not being deleted vouches for its bytes: no chunk store round trip per chunk."""
    store.meta.transact(lambda w: refcount.add_refs(w, Counter({D1: 1}), {D1: 10}, ANY_STORED))
    store.meta.transact(lambda w: refcount.drop_refs(w, Counter({D1: 1}), now=3.0))
    store.meta.transact(lambda w: refcount.add_refs(w, Counter({D1: 1}), {D1: 10}, NOTHING_STORED))
    assert store.meta.read(lambda r: refcount.get(r, D1)) == refcount.ChunkRow(1, 0.0, 10)


def test_mark_skips_rows_referenced_again_and_marks_orphans(store: Store) -> None:
    store.meta.transact(lambda w: refcount.add_refs(w, Counter({D1: 1}), {D1: 10}, ANY_STORED))
    marked = store.meta.transact(lambda w: refcount.mark_deleting(w, [D1, D2], lambda row: row.count == 0, 9.0))
    assert marked == [D2]  # D1 is referenced; D2 had no row (an orphan) and gets a marked one
    assert store.meta.read(lambda r: refcount.get(r, D2)) == refcount.ChunkRow(0, 9.0, 0, deleting=True)
    assert store.meta.read(refcount.totals).chunks == 2
    assert store.meta.transact(lambda w: refcount.forget_deleted(w, [D1, D2])) == (1, 0)
    assert store.meta.read(lambda r: refcount.get(r, D1)) == refcount.ChunkRow(1, 0.0, 10)
    assert store.meta.read(refcount.totals) == refcount.Totals(1, 10)


def test_add_then_drop_records_when_a_count_reaches_zero(store: Store) -> None:
    store.meta.transact(lambda w: refcount.add_refs(w, Counter({D1: 2, D2: 1}), {D1: 10, D2: 20}, ANY_STORED))
    store.meta.transact(lambda w: refcount.drop_refs(w, Counter({D1: 1, D2: 1}), now=100.0))
    assert store.meta.read(lambda r: refcount.get(r, D1)) == refcount.ChunkRow(1, 0.0, 10)
    assert store.meta.read(lambda r: refcount.get(r, D2)) == refcount.ChunkRow(0, 100.0, 20)
    store.meta.transact(lambda w: refcount.add_refs(w, Counter({D2: 1}), {D2: 20}, ANY_STORED))
    assert store.meta.read(lambda r: refcount.get(r, D2)) == refcount.ChunkRow(
        1, 0.0, 20
    )  # referenced again: grace cleared


def test_drop_never_goes_negative_and_ignores_unknown_chunks(store: Store) -> None:

    def add_and_drop(w: WriteTxn) -> None:
        refcount.add_refs(w, Counter({D1: 1}), {D1: 10}, ANY_STORED)
        refcount.drop_refs(w, Counter({D1: 5, D2: 1}), now=7.0)

    store.meta.transact(add_and_drop)

    def check(r: ReadTxn) -> None:
        assert refcount.get(r, D1) == refcount.ChunkRow(0, 7.0, 10)
        assert refcount.get(r, D2) is None

    store.meta.read(check)


def test_same_content_under_two_keys_is_stored_once(store: Store, bucket: str, clock: Clock) -> None:
    data = rand(700_000, seed=11)
    a = store.put_object(bucket, "a", data)
    b = store.put_object(bucket, "b", data)
    ents = entries_of(store, a)
    assert ents == entries_of(store, b) and len(ents) > 3
    digests = {d for d, _ in ents}
    assert chunk_files(store) == {d.hex() for d in digests}
    assert all(chunk_row(store, d).count == 2 for d in digests)  # type: ignore[union-attr]

    store.delete_object(bucket, "a")
    assert all(chunk_row(store, d).count == 1 for d in digests)  # type: ignore[union-attr]
    assert read(store, bucket, "b") == data

    clock.advance(10)
    store.delete_object(bucket, "b")
    deleted_at = clock()
    assert all(chunk_row(store, d) == refcount.ChunkRow(0, deleted_at, n) for d, n in ents)
    assert chunk_files(store) == {d.hex() for d in digests}  # still on disk during the grace period

    clock.advance(store.config.gc_grace_seconds - 1)
    assert collect_garbage(store).chunks_removed == 0
    assert chunk_files(store) == {d.hex() for d in digests}

    clock.advance(2)
    report = collect_garbage(store)
    assert report.chunks_removed == len(digests)
    assert report.bytes_freed == sum(n for _, n in set(ents))
    assert chunk_files(store) == set()
    assert all(chunk_row(store, d) is None for d in digests)
    assert fsck(store).ok


def test_repeated_chunks_inside_one_object_count_once_per_occurrence(store: Store, bucket: str) -> None:
    block = bytes(store.config.chunk_max)  # zeros: always cut at max, so identical chunks
    data = block * 4 + rand(1000)
    rec = store.put_object(bucket, "zeros", data)
    ents = entries_of(store, rec)
    assert ents.count(ents[0]) == 4
    assert chunk_row(store, ents[0][0]).count == 4  # type: ignore[union-attr]
    assert len(chunk_files(store)) == 2
    assert read(store, bucket, "zeros") == data
    store.delete_object(bucket, "zeros")
    assert chunk_row(store, ents[0][0]).count == 0  # type: ignore[union-attr]
    assert fsck(store).ok


def test_chunk_totals_change_by_rows_of_their_own(store: Store, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No row is rewritten by every commit that stores a new chunk (on PostgreSQL such a row makes
    concurrent commits conflict): each adds a change row, which GC folds into the base row."""
    monkeypatch.setattr(refcount, "FOLD_EVERY", 10**9)
    store.put_object(bucket, "first", rand(300_000, seed=1))
    base = store.meta.read(lambda r: r.get(refcount.TOTALS, b"all"))
    for n in range(5):
        store.put_object(bucket, f"k{n}", rand(300_000, seed=10 + n))
    assert store.meta.read(lambda r: r.get(refcount.TOTALS, b"all")) == base  # untouched by the five

    def changes(r: ReadTxn) -> int:
        return sum(1 for key, _ in r.range(refcount.TOTALS) if key != b"all")

    assert store.meta.read(changes) >= 5
    counted = store.meta.read(refcount._count)
    assert store.meta.read(refcount.totals) == counted
    store.delete_object(bucket, "k0")
    collect_garbage(store)
    assert store.meta.read(changes) == 0
    assert store.meta.read(refcount.totals) == store.meta.read(refcount._count)
    assert fsck(store).ok
