"""The `chunk_intents` table of the volatile store: chunks being uploaded to a chunk store that others
can read before the writer commits (S3), so that GC finds what a crashed writer left without listing
the whole bucket.

A writer records an intent (key: digest + NUL + its process tag; value: when) before it uploads a
new chunk, and forgets its intents once its commit made the chunks referenced, or once it took them
back after a failure; if taking them back failed, it marks them abandoned. An intent left behind
belongs to a writer that died between the two, or gave up: GC (`maintenance.py`) drops it once the
chunk has a row (someone committed it) or, when its writer is gone (`leases.alive`), abandoned it or
has held it for longer than any request lasts, deletes the chunk as an orphan first.

The table is volatile (no fsync; over PostgreSQL an unlogged table, emptied by a crash of the
database or a failover): an intent lost that way leaves its chunk, if its writer also died, to the
full orphan scan that lists the bucket (`pyblob gc --scan-orphans`). Losing one never loses data,
only space.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from . import leases
from .liveness import process_tag
from .meta import MetadataStore, ReadTxn, WriteTxn

TABLE = "chunk_intents"
TABLES = (TABLE,)
DIGEST = 32
ABANDONED = "abandoned"


def _key(digest: bytes, tag: str) -> bytes:
    return digest + b"\0" + tag.encode()


def record(w: WriteTxn, digests: list[bytes], now: float) -> None:
    tag = process_tag()
    for digest in digests:
        w.put(TABLE, _key(digest, tag), repr(now).encode())


def forget(w: WriteTxn, digests: list[bytes]) -> None:
    tag = process_tag()
    for digest in digests:
        w.delete(TABLE, _key(digest, tag))


def abandon(w: WriteTxn, digests: list[bytes], now: float) -> None:
    tag = process_tag()
    for digest in digests:
        w.put(TABLE, _key(digest, tag), f"{now!r} {ABANDONED}".encode())


def left_behind(r: ReadTxn, before: float) -> Iterator[tuple[bytes, str, float, bool]]:
    """(digest, writer tag, when, abandoned) of intents recorded before `before`."""
    for key, value in r.range(TABLE):
        when, _, mark = value.decode().partition(" ")
        if float(when) < before:
            yield key[:DIGEST], key[DIGEST + 1 :].decode(), float(when), mark == ABANDONED


def drop(w: WriteTxn, intents: list[tuple[bytes, str]]) -> None:
    """GC's: (digest, writer tag) intents it has dealt with."""
    for digest, tag in intents:
        w.delete(TABLE, _key(digest, tag))


class Intents:
    """A writer process's intents in the volatile store, with its lease kept while it has any."""

    def __init__(self, volatile: MetadataStore, lease: leases.LeaseKeeper):
        self.volatile = volatile
        self.lease = lease

    def record(self, token: object, digests: list[bytes]) -> None:
        """Before uploading `digests` for the writer `token`."""

        def write(w: WriteTxn) -> None:
            now = time.time()
            record(w, digests, now)
            self.lease.renew_in(w, now)

        self.volatile.transact(write)
        self.lease.hold(token)

    def forget(self, token: object, digests: list[bytes]) -> None:
        """Once the writer's chunks are referenced, or taken back."""
        try:
            if digests:
                self.volatile.transact(lambda w: forget(w, digests))
        finally:
            self.lease.drop(token)

    def abandon(self, token: object, digests: list[bytes]) -> None:
        """The writer could not take its chunks back: GC may, though this process lives on."""
        try:
            self.volatile.transact(lambda w: abandon(w, digests, time.time()))
        finally:
            self.lease.drop(token)
