"""Manifests (`objstore.manifests`): paged chunk lists, reference counts, chunk counts in the same txn."""

from __future__ import annotations

import pytest

from objstore import Store, manifests, refcount
from objstore.errors import FormatError
from objstore.hashing import chunk_digest
from objstore.meta import ReadTxn, WriteTxn, scan


def ANY_STORED(digest: bytes) -> bool:
    """These tests are about counts: a chunk without a row is taken as stored."""
    return True


def entries(n: int, size: int = 100) -> list[manifests.Entry]:
    return [(chunk_digest(i.to_bytes(4, "big")), size + i) for i in range(n)]


def test_head_round_trip_and_version_check() -> None:
    head = manifests.ManifestHead(3, 12345, manifests.KIND_INLINE, b"tiny")
    assert manifests.ManifestHead.decode(head.encode()) == head
    damaged = manifests.ManifestHead(3, 12345, manifests.KIND_INLINE, b"tiny", damaged=True)
    assert manifests.ManifestHead.decode(damaged.encode()) == damaged  # version 2: with the mark
    with pytest.raises(FormatError):
        manifests.ManifestHead.decode(b"\x03" + head.encode()[1:])


def test_create_chunked_counts_one_reference_per_entry(store: Store) -> None:
    ents = entries(3)
    ents.append(ents[0])  # the same chunk twice in one manifest counts twice
    mid = store.meta.transact(lambda w: manifests.create_chunked(w, ents, stored=ANY_STORED))

    def check(r: ReadTxn) -> None:
        head = manifests.get_head(r, mid)
        assert head is not None and (head.refs, head.kind) == (1, manifests.KIND_CHUNKS)
        assert head.size == sum(n for _, n in ents)
        assert manifests.all_entries(r, mid) == ents
        assert refcount.get(r, ents[0][0]).count == 2  # type: ignore[union-attr]
        assert refcount.get(r, ents[1][0]).count == 1  # type: ignore[union-attr]

    store.meta.read(check)


def test_pages_split_large_lists_and_seek_by_offset(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifests, "PAGE_ENTRIES", 4)
    ents = entries(10)
    mid = store.meta.transact(lambda w: manifests.create_chunked(w, ents, stored=ANY_STORED))
    offsets = [0]
    for _, n in ents:
        offsets.append(offsets[-1] + n)

    def check(r: ReadTxn) -> None:
        assert len(list(scan(r, manifests.PAGES, mid))) == 3
        assert manifests.all_entries(r, mid) == ents
        # The page holding byte p starts at the offset of entry 0, 4 or 8.
        for p in (0, offsets[3], offsets[4], offsets[4] + 1, offsets[9], offsets[10] - 1):
            start, page = manifests.page_at(r, mid, p)  # type: ignore[misc]
            first = {0: 0, offsets[4]: 4, offsets[8]: 8}[start]
            assert page == ents[first : first + 4]
            assert start <= p
        from_mid = list(manifests.iter_entries(r, mid, offsets[6] + 5))
        assert [(d, n) for _, d, n in from_mid] == ents[6:]
        assert [o for o, _, _ in from_mid] == offsets[6:10]
        assert manifests.page_at(r, manifests.new_id(), 0) is None

    store.meta.read(check)


def test_page_lookup_never_crosses_into_another_manifest(store: Store) -> None:
    a, b = store.meta.transact(
        lambda w: (
            manifests.create_chunked(w, entries(2), ANY_STORED),
            manifests.create_chunked(w, entries(3), ANY_STORED),
        )
    )
    assert store.meta.read(lambda r: manifests.all_entries(r, a)) == entries(2)
    assert store.meta.read(lambda r: manifests.all_entries(r, b)) == entries(3)


def test_drop_ref_to_zero_removes_pages_and_drops_chunk_counts(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifests, "PAGE_ENTRIES", 2)
    ents = entries(5)

    def create(w: WriteTxn) -> bytes:
        mid = manifests.create_chunked(w, ents, stored=ANY_STORED)
        manifests.add_ref(w, mid)
        return mid

    mid = store.meta.transact(create)
    store.meta.transact(lambda w: manifests.drop_ref(w, mid, now=50.0))
    assert store.meta.read(lambda r: manifests.get_head(r, mid).refs) == 1  # type: ignore[union-attr]
    assert store.meta.read(lambda r: refcount.get(r, ents[0][0]).count) == 1  # type: ignore[union-attr]
    store.meta.transact(lambda w: manifests.drop_ref(w, mid, now=60.0))

    def check(r: ReadTxn) -> None:
        assert manifests.get_head(r, mid) is None
        assert list(r.range(manifests.PAGES)) == []
        for d, n in ents:
            assert refcount.get(r, d) == refcount.ChunkRow(0, 60.0, n)

    store.meta.read(check)


def test_inline_manifest_holds_bytes_and_no_chunk_refs(store: Store) -> None:
    mid = store.meta.transact(lambda w: manifests.create_inline(w, b"hello"))
    head = store.meta.read(lambda r: manifests.get_head(r, mid))
    assert head == manifests.ManifestHead(1, 5, manifests.KIND_INLINE, b"hello")
    assert store.meta.read(lambda r: list(refcount.all_rows(r))) == []
    store.meta.transact(lambda w: manifests.drop_ref(w, mid, 1.0))
    assert store.meta.read(lambda r: manifests.get_head(r, mid)) is None


def test_missing_manifest_is_a_format_error(store: Store) -> None:
    with pytest.raises(FormatError):
        store.meta.transact(lambda w: manifests.drop_ref(w, manifests.new_id(), 1.0))
