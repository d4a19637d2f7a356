"""Writing one object: stream its content in, then make it visible atomically (or drop it).

`Store.open_writer` makes one; S3's PutObject and POST Object, and the uploads behind short links,
stream through it. Nothing is visible until `commit`, whose transaction re-checks the condition,
the limits and the bucket, and installs the content's manifest with the object row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

from .conditions import Precondition
from .db import Txn
from .records import BucketRecord, ObjectRecord
from .writer import Content, ContentWriter

if TYPE_CHECKING:
    from .store import Store


class ObjectWriter:
    """Streams one object's content; `commit` makes it visible atomically, `close` drops it."""

    def __init__(
        self, store: "Store", bucket: BucketRecord, raw_key: bytes, checksums: Iterable[str], content: ContentWriter, credit: int = 0
    ):
        self.store = store
        self.bucket = bucket
        self.raw_key = raw_key
        self.content = content
        self.credit = credit

    def write(self, data: bytes | memoryview) -> None:
        self.content.write(data)

    def finish(self) -> Content:
        """Digests of the whole stream, to verify client checksums before committing."""
        return self.content.finish()

    def commit(
        self,
        content_type: str = "binary/octet-stream",
        headers: dict[str, str] | None = None,
        meta: dict[str, str] | None = None,
        if_none_match: bool = False,
        checksum_type: str = "FULL_OBJECT",
        tags: dict[str, str] | None = None,
        also: Callable[[Txn, ObjectRecord], None] | None = None,
        if_match: str | None = None,
    ) -> ObjectRecord:
        """Make the object visible; `also` adds rows of the caller's in the same transaction.

        `if_none_match` / `if_match`: only if the key has no object / its object has this ETag
        (see conditions.py), judged again inside the transaction that makes the object visible."""
        content = self.finish()
        store = self.store
        condition = Precondition(if_none_match, if_match)
        try:
            with store.db.read() as r:
                store.check_replace(r, self.bucket, self.raw_key, content.size, condition, self.credit)
            self.content.publish()
            with store.db.write() as w:
                bucket = store._bucket(w, self.bucket.name)
                mid = self.content.install(w)
                record = ObjectRecord(
                    key=self.raw_key.decode(),
                    size=content.size,
                    etag=content.md5,
                    manifest=mid.hex(),
                    owner=bucket.owner,
                    created=store.clock(),
                    content_type=content_type,
                    headers=dict(headers or {}),
                    meta=dict(meta or {}),
                    checksums=content.checksums,
                    checksum_type=checksum_type,
                    blake3=content.blake3,
                    tags=dict(tags or {}),
                )
                record = store.replace_object(w, bucket, self.raw_key, record, condition, self.credit)
                if also is not None:
                    also(w, record)
        finally:
            self.close()
        return record

    def close(self) -> None:
        self.content.close()

    def __enter__(self) -> "ObjectWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
