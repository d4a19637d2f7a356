"""Joining independently chunked parts (`objstore.chunks.rechunk.Joiner`) as if they were one stream."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st
from objstore_helpers import SMALL, rand

from objstore.chunks import Entry
from objstore.chunks.cdc import cut_all
from objstore.chunks.rechunk import Joiner, Part
from objstore.hashing import chunk_digest

DATA = rand(2_000_000, seed=3)


class MemoryChunks:
    """The blob layer reduced to a dict: `read` by digest, `emit` stores and returns the entry."""

    def __init__(self) -> None:
        self.blobs: dict[bytes, bytes] = {}
        self.emitted = 0

    def put(self, chunk: bytes) -> Entry:
        digest = chunk_digest(chunk)
        self.blobs[digest] = chunk
        return digest, len(chunk)

    def emit(self, chunk: bytes) -> Entry:
        self.emitted += 1
        return self.put(chunk)

    def part(self, data: bytes, inline_max: int = SMALL.inline_max) -> Part:
        """A part as the store keeps it: bytes if tiny, else its own chunk list."""
        if len(data) <= inline_max:
            return data
        return [self.put(c) for c in cut_all(SMALL, data)]


def expected(data: bytes) -> list[Entry]:
    return [(chunk_digest(c), len(c)) for c in cut_all(SMALL, data)]


def join(splits: list[int], data: bytes = DATA) -> tuple[list[Entry], MemoryChunks]:
    mem = MemoryChunks()
    bounds = [0, *sorted(splits), len(data)]
    parts = [mem.part(data[a:b]) for a, b in pairwise(bounds)]
    joined = Joiner(SMALL, mem.blobs.__getitem__, mem.emit).join(parts)
    return joined, mem


def test_one_part_is_its_own_chunk_list() -> None:
    joined, _ = join([])
    assert joined == expected(DATA)


def test_parts_join_to_the_single_stream_chunks() -> None:
    joined, mem = join([300_000, 700_000, 1_100_000, 1_500_000])
    assert joined == expected(DATA)
    # Only a few chunks around each boundary are re-cut, not the whole object.
    assert mem.emitted < len(joined) // 2
    assert b"".join(mem.blobs[d] for d, _ in joined) == DATA


def test_equal_part_sizes_5_and_8_like() -> None:
    for size in (320_000, 512_000):
        joined, _ = join(list(range(size, len(DATA), size)))
        assert joined == expected(DATA)


def test_boundary_on_a_content_cut_needs_no_recut_of_the_next_part() -> None:
    cuts, pos = [], 0
    for c in cut_all(SMALL, DATA):
        pos += len(c)
        cuts.append(pos)
    joined, _ = join([cuts[5], cuts[12]])
    assert joined == expected(DATA)


def test_tiny_inline_last_part_and_tiny_middle_parts() -> None:
    joined, _ = join([len(DATA) - 100])
    assert joined == expected(DATA)
    joined, _ = join([500_000, 500_010, 500_020, 900_000])  # 10-byte parts, stored inline
    assert joined == expected(DATA)


def test_all_parts_inline() -> None:
    data = DATA[:10_000]
    joined, _ = join([3000, 6000, 9000], data)
    assert joined == expected(data)


@settings(max_examples=40, deadline=None)
@given(splits=st.lists(st.integers(1, len(DATA) - 1), max_size=8, unique=True))
def test_any_split_joins_to_the_single_stream_chunks(splits: list[int]) -> None:
    joined, mem = join(splits)
    assert joined == expected(DATA)
    assert all(mem.blobs[d] and len(mem.blobs[d]) == n for d, n in joined)
