"""What every importer counts of the bytes it brought in, and what deduplication saved of them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DedupTally:
    bytes_imported: int = 0
    bytes_inline: int = 0  # of small objects, kept in the metadata: never in chunks, never deduplicated
    physical_added: int = 0  # chunk bytes the import added on disk

    @property
    def bytes_saved(self) -> int:
        """What deduplication saved: bytes imported that needed no new chunk on disk."""
        return max(0, self.bytes_imported - self.bytes_inline - self.physical_added)
