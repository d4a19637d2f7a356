"""The metadata store: what the engine asks of the database under it, and nothing more.

Every metadata access is a transaction run as a function: `transact(fn)` for a write, `read(fn)`
for a consistent read. A backend with optimistic concurrency may run `fn` again on a serialization
conflict, so `fn` touches only its transaction and leaves side effects to `on_commit` (STYLE.md,
habit 15). Rows are bytes under byte keys in named tables, compared as bytes (LMDB's order, and
PostgreSQL's for `bytea`); `range` replaces cursors; `next_id` gives sequences.

Two implementations: LMDB (`lmdb.py`, the default: one writer at a time across processes) and
PostgreSQL (`postgres.py`: several nodes over one database, SERIALIZABLE transactions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

T = TypeVar("T")
Row = tuple[bytes, bytes]
MAX_KEY_BYTES = 511  # the longest key a row may have, on every backend (LMDB's MDB_MAXKEYSIZE by default)
META = "meta"  # the backend's own table: the schema version and the sequences


class ReadTxn(Protocol):
    def get(self, table: str, key: bytes) -> bytes | None:
        """The row under `key`, or None (also for a key no row could have: empty, or too long)."""
        ...

    def range(
        self,
        table: str,
        start: bytes = b"",
        end: bytes | None = None,
        *,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Iterator[Row]:
        """Rows with `start <= key < end` (no upper bound without `end`), in key order, or the
        reverse order with `reverse`; at most `limit`. Consume it inside the transaction."""
        ...

    def count(self, table: str) -> int:
        """How many rows the table holds."""
        ...


class WriteTxn(ReadTxn, Protocol):
    def put(self, table: str, key: bytes, value: bytes) -> None: ...

    def delete(self, table: str, key: bytes) -> bool:
        """Remove the row; False if there was none."""
        ...

    def next_id(self, counter: str) -> int:
        """The next value of a named sequence (1, 2, ...), in this transaction."""
        ...

    def on_commit(self, fn: Callable[[], None]) -> None:
        """Run `fn` once this transaction has committed (never if it aborts or is run again)."""
        ...


class MetadataStore(Protocol):
    def transact(self, fn: Callable[[WriteTxn], T]) -> T:
        """Run `fn` in a write transaction and commit; its result, or its exception (nothing kept)."""
        ...

    def read(self, fn: Callable[[ReadTxn], T]) -> T:
        """Run `fn` in a read transaction: a consistent snapshot, kept short."""
        ...

    def copy_to(self, dest: Path) -> None:
        """A consistent copy of every table, which a new store of the same kind can open."""
        ...

    def close(self) -> None: ...


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key that starts with `prefix` (None: no such key)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def scan(txn: ReadTxn, table: str, prefix: bytes, **kwargs: object) -> Iterator[Row]:
    """Rows whose key starts with `prefix` (`range` over the prefix)."""
    return txn.range(table, prefix, prefix_end(prefix), **kwargs)  # type: ignore[arg-type]


def record_schema(w: WriteTxn, schema: int) -> None:
    """On opening: a newer schema is refused; an older one, whose rows read as they are, is recorded
    as ours (every backend keeps it in META under `schema`)."""
    found = w.get(META, b"schema")
    if found is not None and int(found) > schema:
        raise RuntimeError(f"the metadata has schema {int(found)}, this pyblob knows {schema}")
    if found is None or int(found) < schema:
        w.put(META, b"schema", str(schema).encode())
