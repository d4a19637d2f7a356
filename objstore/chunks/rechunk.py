"""Joining independently chunked pieces (multipart parts) as if they had been one stream.

Each part was cut on its own, so its last chunk ends where the part ends, not where content says.
For every boundary we re-cut from the last content-decided cut before it, through the next part,
until a new cut lands on one of that part's own cuts: from there on FastCDC (whose cuts depend only
on the bytes since the previous cut) would cut exactly as the part did, so its remaining chunks are
kept as they are. The result is the chunk list a single PUT of the same bytes produces, which is why
the same file shares its storage whether it arrived whole, in 5 MiB parts or in 8 MiB parts.
The work is a few chunks read and written per boundary, never a copy of the object.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..config import StoreConfig
from .cdc import Chunker
from .interface import Entry

# A part is either a chunk list or, for inline parts, its bytes.
Part = list[Entry] | bytes


class Joiner:
    """Builds the joined chunk list; `emit` stores a newly cut chunk and returns its entry."""

    def __init__(self, config: StoreConfig, read: Callable[[bytes], bytes], emit: Callable[[bytes], Entry]):
        self.config = config
        self.read = read
        self.emit = emit
        self.out: list[Entry] = []
        self.chunker: Chunker | None = None  # re-cutting in progress when set

    def join(self, parts: Sequence[Part]) -> list[Entry]:
        for part in parts:
            self._add_part(part)
        if self.chunker is not None:
            self.out.extend(self.emit(c) for c in self.chunker.finish())
        return self.out

    def _add_part(self, part: Part) -> None:
        if isinstance(part, bytes):
            self._recut(part)
            return
        if self.chunker is None:
            # First part, or the previous part ended on a content-decided cut.
            self.out.extend(part[:-1])
            self._start_recut()
            self._recut(self.read(part[-1][0]))
            return
        self._join_boundary(part)

    def _join_boundary(self, part: list[Entry]) -> None:
        """Re-cut into `part` until a new cut meets one of its own; keep its chunks from there."""
        own_cuts: dict[int, int] = {}
        end = 0
        for i, (_, length) in enumerate(part):
            end += length
            own_cuts[end] = i
        consumed = 0  # bytes of `part` pushed into the chunker before this chunk
        for digest, length in part:
            synced = self._recut(self.read(digest), consumed, own_cuts)
            consumed += length
            if synced is not None:
                rest = part[synced + 1 :]
                self.chunker = None
                if rest:
                    self._add_part(rest)
                return

    def _start_recut(self) -> None:
        self.chunker = Chunker(self.config, window=self.config.chunk_max)
        self._pending = 0  # bytes pushed into the chunker and not yet emitted

    def _recut(self, data: bytes, consumed: int = -1, own_cuts: dict[int, int] | None = None) -> int | None:
        """Push `data`; return the index of the part's chunk a new cut synced with, if any."""
        if self.chunker is None:
            self._start_recut()
        assert self.chunker is not None
        self._pending += len(data)
        for chunk in self.chunker.push(data):
            self.out.append(self.emit(chunk))
            self._pending -= len(chunk)
            if own_cuts is not None:
                # Bytes of the part already cut = everything pushed of it minus what is pending.
                cut_at = consumed + len(data) - self._pending
                if cut_at in own_cuts and cut_at > 0:
                    return own_cuts[cut_at]
        return None
