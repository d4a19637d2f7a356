"""Content-defined chunking (`objstore.chunks.cdc`): stable cuts whatever the pieces, sizes in bounds."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from objstore_helpers import SMALL, rand
from pyfastcdc import FastCDC

from objstore.chunks.cdc import Chunker, cut_all

DATA = rand(3_000_000, seed=1)


def lengths(chunks: list[bytes]) -> list[int]:
    return [len(c) for c in chunks]


def push_in_pieces(data: bytes, sizes: list[int], window: int = 0) -> list[bytes]:
    chunker = Chunker(SMALL, window)
    out: list[bytes] = []
    pos = 0
    for n in sizes:
        out.extend(chunker.push(data[pos : pos + n]))
        pos += n
    out.extend(chunker.push(data[pos:]))
    out.extend(chunker.finish())
    return out


def test_cut_all_matches_pyfastcdc_on_the_whole_buffer() -> None:
    reference = [
        bytes(c.data)
        for c in FastCDC(SMALL.chunk_avg, min_size=SMALL.chunk_min, max_size=SMALL.chunk_max).cut_buf(DATA)
    ]
    assert cut_all(SMALL, DATA) == reference


def test_chunks_concatenate_to_the_input_and_respect_min_and_max() -> None:
    chunks = cut_all(SMALL, DATA)
    assert b"".join(chunks) == DATA
    assert len(chunks) > 10
    assert all(len(c) <= SMALL.chunk_max for c in chunks)
    assert all(len(c) >= SMALL.chunk_min for c in chunks[:-1])


def test_incompressible_runs_are_cut_at_max() -> None:
    """Constant bytes never match the gear mask: every chunk but the last is exactly `chunk_max`."""
    chunks = cut_all(SMALL, bytes(SMALL.chunk_max * 3 + 10))
    assert lengths(chunks) == [SMALL.chunk_max] * 3 + [10]


def test_empty_and_tiny_inputs() -> None:
    assert cut_all(SMALL, b"") == []
    assert cut_all(SMALL, b"abc") == [b"abc"]


def test_insertion_only_disturbs_chunks_around_it() -> None:
    at = len(DATA) // 2
    edited = DATA[:at] + b"inserted bytes!" * 7 + DATA[at:]
    before, after = cut_all(SMALL, DATA), cut_all(SMALL, edited)
    # Every chunk that ends before the insertion point is cut identically.
    ends, pos = [], 0
    for c in before:
        pos += len(c)
        ends.append(pos)
    untouched = [c for c, end in zip(before, ends, strict=True) if end <= at]
    assert after[: len(untouched)] == untouched
    # And the cuts resynchronise: nearly every chunk is shared.
    shared = set(before) & set(after)
    assert len(shared) >= len(before) - 3
    assert b"".join(after) == edited


def test_deletion_resynchronises_too() -> None:
    at = len(DATA) // 3
    edited = DATA[:at] + DATA[at + 1000 :]
    before, after = cut_all(SMALL, DATA), cut_all(SMALL, edited)
    assert len(set(before) & set(after)) >= len(before) - 3


def test_random_piece_sizes_give_the_same_chunks_as_one_buffer() -> None:
    whole = cut_all(SMALL, DATA)
    rng = random.Random(7)
    for _ in range(5):
        sizes = [rng.choice([1, 17, 4096, 65_537, 300_000, 1_100_000]) for _ in range(40)]
        assert push_in_pieces(DATA, sizes) == whole


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 400_000), max_size=30), window_factor=st.sampled_from([0, 1, 2]))
def test_any_piece_sizes_and_window_give_the_same_chunks(sizes: list[int], window_factor: int) -> None:
    data = DATA[:1_500_000]
    window = window_factor * SMALL.chunk_max  # 0 = the default window, 1 = the joiner's
    assert push_in_pieces(data, sizes, window) == cut_all(SMALL, data)


def test_push_emits_nothing_until_the_window_fills() -> None:
    chunker = Chunker(SMALL)
    assert list(chunker.push(DATA[: 4 * SMALL.chunk_max - 1])) == []
    emitted = list(chunker.push(DATA[4 * SMALL.chunk_max - 1 : 4 * SMALL.chunk_max]))
    assert emitted and all(len(c) <= SMALL.chunk_max for c in emitted)
    # Exactly the cuts whose whole max-size window was seen: the first chunks of the whole buffer.
    assert emitted == cut_all(SMALL, DATA)[: len(emitted)]
    assert sum(map(len, emitted)) > 3 * SMALL.chunk_max
