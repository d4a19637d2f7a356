"""The metadata store interface (`interface.py`) and its LMDB implementation (`lmdb.py`)."""

from .interface import MetadataStore, ReadTxn, Row, WriteTxn, prefix_end, scan

__all__ = ["MetadataStore", "ReadTxn", "Row", "WriteTxn", "prefix_end", "scan"]
