"""Content-defined chunking over a pushed stream, using pyfastcdc (FastCDC 2020, Cython).

pyfastcdc pulls from a reader; uploads arrive as pushed pieces, so `Chunker` buffers a bounded window
and emits a chunk only once its end is decided by content (or by `max`). A cut depends only on the
bytes from the previous cut, which is why the same bytes cut the same way whatever the pieces were.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

from pyfastcdc import FastCDC

from ..config import StoreConfig


def new_cdc(config: StoreConfig) -> FastCDC:
    return FastCDC(config.chunk_avg, min_size=config.chunk_min, max_size=config.chunk_max)


class Chunker:
    """Feed bytes with `push`, collect finished chunks; `finish` flushes the tail."""

    def __init__(self, config: StoreConfig, window: int = 0):
        self._cdc = new_cdc(config)
        self._max = config.chunk_max
        # How much to gather before cutting: larger windows mean fewer calls into pyfastcdc.
        self._window = window or 4 * config.chunk_max
        self._buf = bytearray()

    def push(self, data: bytes | memoryview) -> Iterator[bytes]:
        self._buf += data
        if len(self._buf) >= self._window:
            yield from self._cut(final=False)

    def finish(self) -> Iterator[bytes]:
        yield from self._cut(final=True)

    def _cut(self, final: bool) -> Iterator[bytes]:
        buf = self._buf
        cuts = self._cut_points(final)
        with memoryview(buf) as view:
            chunks = [bytes(view[a:b]) for a, b in pairwise([0, *cuts])]
        del buf[: cuts[-1] if cuts else 0]
        yield from chunks

    def _cut_points(self, final: bool) -> list[int]:
        """Ends of the chunks decided so far; pyfastcdc's views of the buffer are dropped on return."""
        ends: list[int] = []
        size = len(self._buf)
        for chunk in self._cdc.cut_buf(self._buf):
            # A chunk whose window reaches past the buffer may still grow: keep it for later.
            if not final and chunk.offset + self._max > size:
                break
            ends.append(chunk.offset + chunk.length)
        return ends


def cut_all(config: StoreConfig, data: bytes | memoryview) -> list[bytes]:
    """Cut a whole in-memory buffer (tests and boundary re-chunking)."""
    chunker = Chunker(config)
    out = list(chunker.push(data))
    out.extend(chunker.finish())
    return out
