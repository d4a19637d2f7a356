"""Chunk bytes: the chunk store interface (`interface.py`) and its local-directory implementation
(`localdir.py`), content-defined chunking (`cdc.py`) and the joining of multipart parts (`rechunk.py`)."""

from .interface import ChunkBatch, ChunkStore, Entry, FileRegion, StoredChunk

__all__ = ["ChunkBatch", "ChunkStore", "Entry", "FileRegion", "StoredChunk"]
