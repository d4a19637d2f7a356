"""Resumable uploads (the engine side of tus, https://tus.io/protocols/resumable-upload): a row and segments.

An upload is a `ResumableRecord` in the `resumables` table, which this module owns (key: owner +
NUL + id, so an id is only ever looked up among its owner's uploads). Its bytes so far live where
every node reaches them: in the chunk store, through the same content pipeline as any object
(`content.ContentWriter`: content-defined chunks named by BLAKE3, published before the commit that
references them, with intents over S3 so GC finds a dead writer's chunks), as *segments*
(`segments.py`), each a manifest holding references to its chunks like a multipart part. A
checkpoint (the end of each PATCH, every `CHECKPOINT_BYTES` within a long one, and when the lease
is a third spent) makes the bytes received since the last one a segment: its chunks published,
then one transaction that creates the manifest (`refcount.add_refs`, so `ChunkMissing` if GC took a
chunk meanwhile), records the segment and moves the committed offset on. The committed offset is
the truth: bytes past it (a crash, a dropped connection before the checkpoint) were never
referenced and are taken back (`ChunkSink.close`) or left to GC as orphans. Nothing of an upload
is visible until its finish, and a segment's chunks are referenced, so GC with any grace period
never takes them; `fsck` counts the segments' manifest references (`segments.held_manifests`).
An upload has at most `StoreConfig.resumable_max_segments` segments, counted in its row: a PATCH
to one that has them all is refused before its first byte (`TooManySegments`), and a long PATCH's
checkpoints leave the last for its end (only renewing the lease), so an accepted PATCH is kept whole.

One writer per upload, across processes and nodes: a lease in the row (`writer` token and
`lease_until`), taken in a transaction that finds no live lease (`UploadBusy` otherwise; a
serializable backend makes two takers conflict, and the re-run one sees the other's lease),
renewed by every checkpoint and by a long finish, checked by every transaction that writes for the
holder, and given back when the request ends. A writer killed with kill -9 holds the upload for
at most `LEASE_SECONDS`; one that paused past its lease while another took over finds the token
changed and commits nothing. Lease times are the engine's clock (the wall clock), so the nodes'
clocks must agree to within a small part of `LEASE_SECONDS` (NTP does).

Quota: the declared length is charged to the owner's usage when the upload is created (refused
there, before any byte, when it would not fit) and stays charged while bytes come in, as multipart
parts are; segments add no charge. `fsck` counts it the same way (`charged_bytes`). Once every byte
is in, the segments are streamed in order into a `LinkUpload`, whose commit creates the object and
its link, marks the row done, drops the segments (their manifests' references: chunks shared with
the object go from n to n, never through zero) and takes the charge back, all in one transaction:
the room stays the upload's throughout (the charge is the commit's credit, see
`Objects.open_writer`), and a crash or failure before that commit leaves the upload receiving and
charged, finished again by the next HEAD or PATCH on any node. Done rows are kept until they expire
so a client that lost the last response can still learn its link. Abandoned uploads expire
`expires_after` seconds after their last write; `collect_expired` (run by `pyblob gc`) drops them
with their segments' references and gives their charge back; terminating does the same.

Uploads from versions that kept the bytes in a file `<data dir>/resumable/<id>` (`spool.py`): the
first time such an upload is opened (on the node that has the file), the file's bytes up to the
committed offset become its first segment and the file goes. Where no such file is (lost, or on
another node), the upload restarts at offset 0 rather than invent bytes.

Why segments and not one growing object: stored content is immutable and content-addressed, so an
append cannot extend a manifest in place; a segment per checkpoint costs one manifest and a
metadata row, keeps memory bounded (the chunker's window), and needs no new storage primitive.
Finishing re-reads the segments and streams them through an `ObjectWriter` rather than joining
manifests (as multipart completion does), so the object is cut as one stream (its chunks and ETag
are those of the same bytes PUT at once); the chunks it shares with the segments are not written
again (`ChunkSink` skips live chunks), only those across segment boundaries are new.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from ..accounts import charge
from ..admission import Admission, admit
from ..chunks import ChunkStore
from ..config import MiB, StoreConfig
from ..content import ContentWriter
from ..errors import EntityTooLarge, InvalidArgument, NoSuchUpload, StoreError
from ..inflight import Intents
from ..limits import UPLOAD_CEILING
from ..meta import MetadataStore, ReadTxn, WriteTxn, scan
from ..records import LinkRecord, ResumableRecord
from . import segments, spool
from .uploads import LinkUploads

TABLE = "resumables"
TABLES = (TABLE, *segments.TABLES)

EXPIRES_AFTER = 24 * 3600.0  # an upload not written to for this long is abandoned
MAX_PENDING_PER_USER = 100
CHECKPOINT_BYTES = 64 * MiB  # a long PATCH is made durable (and resumable from) every this many bytes
LOCK_WAIT = 5.0  # how long a request waits for another one on the same upload to let go
LEASE_SECONDS = 30.0  # how long a writer that died (kill -9, a lost node) keeps others out

RECEIVING, DONE = "receiving", "done"
FINISHING = "finishing"  # written by earlier versions while finishing: holds no charge, finished as it is


class OffsetMismatch(StoreError):
    """A write that does not start where the upload's kept bytes end (tus: 409 Conflict)."""

    code = "OffsetMismatch"


class UploadBusy(StoreError):
    """Another request is writing, finishing or removing this upload right now."""

    code = "UploadLocked"


class TooManySegments(InvalidArgument):
    """The upload is kept in as many segments as one may have (`StoreConfig.resumable_max_segments`):
    it takes no more bytes. A 400 as S3's part numbers past 10,000 are; no tus client retries it."""


class TooManyUploads(StoreError):
    """The owner already has `MAX_PENDING_PER_USER` unfinished resumable uploads."""

    code = "TooManyUploads"


def row_key(owner: str, upload_id: str) -> bytes:
    return owner.encode() + b"\0" + upload_id.encode()


def is_valid_id(upload_id: str) -> bool:
    return len(upload_id) == 32 and all(c in "0123456789abcdef" for c in upload_id)


def charged_bytes(r: ReadTxn) -> Counter[str]:
    """Bytes each owner's unfinished uploads hold of their usage (what `create` charged)."""
    held: Counter[str] = Counter()
    for _, raw in r.range(TABLE):
        row = ResumableRecord.decode(raw)
        if row.state == RECEIVING:
            held[row.owner] += row.length
    return held


def drop_owner(w: WriteTxn, owner: str, now: float) -> None:
    """Delete every upload row of `owner` (a removed user's) and their segments' references."""
    prefix = owner.encode() + b"\0"
    for key in [k for k, _ in scan(w, TABLE, prefix)]:
        w.delete(TABLE, key)
    segments.drop(w, prefix, now)


def _put(w: WriteTxn, row: ResumableRecord) -> None:
    w.put(TABLE, row_key(row.owner, row.id), row.encode())


class Lease:
    """One request's hold on an upload: the token it wrote in the row, and the row as it took it."""

    def __init__(self, row: ResumableRecord, token: str, renew_at: float):
        self.row, self.token, self.renew_at = row, token, renew_at
        self.key = row_key(row.owner, row.id)


class Resumables:
    """tus uploads of one owner at a time: create, append at the kept offset, finish into a link, expire."""

    def __init__(
        self,
        meta: MetadataStore,
        chunks: ChunkStore,
        config: StoreConfig,
        clock: Callable[[], float],
        admission: Admission,
        uploads: LinkUploads,
        intents: Intents | None = None,
        legacy_dir: Path | None = None,
        expires_after: float = EXPIRES_AFTER,
        max_pending: int = MAX_PENDING_PER_USER,
        lock_wait: float = LOCK_WAIT,
        lease_seconds: float = LEASE_SECONDS,
    ):
        self.meta = meta
        self.chunks = chunks
        self.config = config
        self.clock = clock
        self.admission = admission
        self.uploads = uploads
        self.intents = intents
        self.legacy_dir = legacy_dir  # where older versions kept each upload's bytes in a file
        self.expires_after = expires_after
        self.max_pending = max_pending
        self.lock_wait = lock_wait
        self.lease_seconds = lease_seconds

    # creation, lookup, termination -----------------------------------------------------------
    def create(self, owner: str, length: int, filename: str = "", filetype: str = "") -> ResumableRecord:
        """A new upload of `length` bytes, charged to `owner` at once (EntityTooLarge / QuotaExceeded)."""
        if length < 0:
            raise InvalidArgument("the upload length must not be negative")
        # The reservation sees other uploads in flight; it is released once usage carries the bytes.
        ceiling = self.config.upload_max_file_size or None
        _, reservation = self.admission.room(
            owner, 0, length, ceiling=ceiling, what="a file", ceiling_name=UPLOAD_CEILING
        )
        try:
            return self.meta.transact(lambda w: self._add(w, owner, length, filename, filetype))
        finally:
            if reservation is not None:
                self.admission.release(reservation)

    def _add(self, w: WriteTxn, owner: str, length: int, filename: str, filetype: str) -> ResumableRecord:
        admit(w, owner, length, new_objects=1)
        if self._pending(w, owner) >= self.max_pending:
            raise TooManyUploads(f"{self.max_pending} resumable uploads are unfinished; finish or delete some")
        now = self.clock()
        row = ResumableRecord(
            secrets.token_hex(16), owner, length, now, now + self.expires_after, filename=filename, filetype=filetype
        )
        _put(w, row)
        charge(w, owner, length, 0)
        return row

    def _pending(self, r: ReadTxn, owner: str) -> int:
        return sum(ResumableRecord.decode(raw).state != DONE for _, raw in scan(r, TABLE, owner.encode() + b"\0"))

    def get(self, owner: str, upload_id: str) -> ResumableRecord:
        """`owner`'s upload; NoSuchUpload for an unknown id or another owner's."""
        return self.meta.read(lambda r: _row(r, owner, upload_id))

    def terminate(self, owner: str, upload_id: str) -> None:
        """Drop the upload and its bytes (tus termination); a done one's file and link stay."""
        if self.get(owner, upload_id).state == DONE:
            self.meta.transact(lambda w: w.delete(TABLE, row_key(owner, upload_id)))
            return
        self._drop(self._take(owner, upload_id))

    def _drop(self, lease: Lease, only_if: Callable[[ResumableRecord], bool] = lambda row: True) -> bool:
        """Delete the row and its segments (giving back what it charged) if `only_if`; else let go."""
        now = self.clock()

        def drop(w: WriteTxn) -> bool:
            row = self._held(w, lease)
            if not only_if(row):
                return False
            w.delete(TABLE, lease.key)
            segments.drop_upload(w, lease.key, now)
            if row.state == RECEIVING:
                charge(w, row.owner, -row.length, 0)
            return True

        try:
            dropped = self.meta.transact(drop)
        except BaseException:
            self._let_go(lease)
            raise
        if not dropped:
            self._let_go(lease)
        elif (path := self._legacy_file(lease.row.id)) is not None:
            path.unlink(missing_ok=True)
        return dropped

    # the lease ---------------------------------------------------------------------------------
    def _take(self, owner: str, upload_id: str, wait: float | None = None) -> Lease:
        """Take the upload's lease, waiting up to `wait` seconds for a live one to be given back
        (polling with reads: a waiting request writes only when the lease looks free)."""
        token = secrets.token_hex(16)
        deadline = time.monotonic() + (self.lock_wait if wait is None else wait)
        while True:
            if not self._leased(self.get(owner, upload_id)):
                try:
                    row = self.meta.transact(lambda w: self._claim(w, owner, upload_id, token))
                    return Lease(row, token, self.clock() + self.lease_seconds / 3)
                except UploadBusy:
                    pass  # another request took it between the read and the claim
            if time.monotonic() >= deadline:
                raise UploadBusy("another request is using this upload; try again shortly")
            time.sleep(0.1)

    def _leased(self, row: ResumableRecord) -> bool:
        return bool(row.writer) and row.lease_until > self.clock()

    def _claim(self, w: WriteTxn, owner: str, upload_id: str, token: str) -> ResumableRecord:
        row = _row(w, owner, upload_id)
        if self._leased(row):
            raise UploadBusy("another request is using this upload; try again shortly")
        row.writer, row.lease_until = token, self.clock() + self.lease_seconds
        _put(w, row)
        return row

    def _held(self, w: WriteTxn, lease: Lease) -> ResumableRecord:
        """The row, still leased to `lease` (UploadBusy if another took it over after it ran out)."""
        row = _row(w, lease.row.owner, lease.row.id)
        if row.writer != lease.token:
            raise UploadBusy("this request's hold on the upload ran out and another request took it")
        return row

    def _renew(self, w: WriteTxn, lease: Lease, row: ResumableRecord, release: bool = False) -> None:
        """Write `row` (read with `_held`) with the lease moved on, or given back."""
        now = self.clock()
        row.writer, row.lease_until = ("", 0.0) if release else (lease.token, now + self.lease_seconds)
        _put(w, row)
        lease.row, lease.renew_at = row, now + self.lease_seconds / 3

    def _keep_alive(self, lease: Lease) -> None:
        """Renew the lease once a third of it is spent (a long finish)."""
        if self.clock() >= lease.renew_at:
            self.meta.transact(lambda w: self._renew(w, lease, self._held(w, lease)))

    def _let_go(self, lease: Lease) -> None:
        """Give the lease back; after a failure, so anything going wrong here is left to expiry."""
        try:
            self.meta.transact(lambda w: self._renew(w, lease, self._held(w, lease), release=True))
        except Exception:
            pass

    # writing -----------------------------------------------------------------------------------
    def open_append(self, owner: str, upload_id: str, offset: int) -> Appender:
        """A writer at `offset`, which must be where the kept bytes end (OffsetMismatch otherwise).

        Holds the upload's lease until `close` (UploadBusy if another request holds it).
        """
        lease = self._take(owner, upload_id)
        try:
            row = self._adopt_legacy(lease)
            if row.state != RECEIVING or offset != row.offset:
                raise OffsetMismatch(f"the upload is at offset {row.offset}, not {offset}")
            row.segments = self.meta.read(lambda r: self._count_segments(r, row))
            return Appender(self, lease)
        except BaseException:
            self._let_go(lease)
            raise

    def _count_segments(self, r: ReadTxn, row: ResumableRecord) -> int:
        """The upload's segments; TooManySegments when none is left for another checkpoint."""
        used = segments.count(r, row_key(row.owner, row.id), row.segments, row.offset)
        if used >= (cap := self.config.resumable_max_segments):
            raise TooManySegments(
                f"upload {row.id} is kept in {used} segments, the most one upload may have "
                f"(PYBLOB_TUS_MAX_SEGMENTS={cap}; each PATCH request makes one): it takes no more bytes; "
                "delete it and upload the file again in fewer, larger PATCH requests"
            )
        return used

    def _segment_writer(self) -> ContentWriter:
        return ContentWriter(self.meta, self.chunks, self.config, intents=self.intents)

    def _keep(self, lease: Lease, content: ContentWriter | None, start: int, release: bool) -> ResumableRecord:
        """A checkpoint: `content` (the bytes from `start`) becomes a segment, the offset moves past
        it, the lease is renewed or given back, in one transaction after the chunks are published."""

        def advance(w: WriteTxn) -> ResumableRecord:
            row = self._held(w, lease)
            if row.offset != start or row.state != RECEIVING:
                raise OffsetMismatch(f"resumable upload {row.id} moved on while leased")  # not expected
            size = content.finish().size if content is not None else 0
            if content is not None and size:
                row.segments = self._count_segments(w, row)
                segments.add(w, lease.key, start, content.install(w), size)
                row.offset, row.segments = start + size, row.segments + 1
            row.expires = self.clock() + self.expires_after
            self._renew(w, lease, row, release)
            return row

        return self._commit(content, advance)

    def _commit(self, content: ContentWriter | None, body: Callable[[WriteTxn], ResumableRecord]) -> ResumableRecord:
        """Publish `content`'s chunks, run `body` (which installs it) in a transaction, and close it
        (taking its chunks back unless the commit referenced them)."""
        try:
            if content is not None:
                content.publish()
            row = self.meta.transact(body)
            if content is not None:
                content.committed()
            return row
        finally:
            if content is not None:
                content.close()

    # finishing ---------------------------------------------------------------------------------
    def finish(self, owner: str, upload_id: str) -> ResumableRecord:
        """Once every byte is in: store the file with a short link. Idempotent; retried after failures.

        Returns the row as it is then (done with its link, or still short of bytes).
        """
        row = self.get(owner, upload_id)
        if row.state == DONE or row.offset < row.length:
            return row
        lease = self._take(owner, upload_id)
        try:
            row = self._adopt_legacy(lease)
            if row.state == DONE or row.offset < row.length:
                self._let_go(lease)
                return row
            self._store_file(lease)
        except BaseException:
            self._let_go(lease)
            raise
        return self.get(owner, upload_id)

    def _store_file(self, lease: Lease) -> LinkRecord:
        """Stream the segments into a `LinkUpload`; its commit marks the row done, drops the
        segments and uncharges the upload."""
        row = lease.row
        credit = row.length if row.state == RECEIVING else 0
        kept = self.meta.read(lambda r: segments.of_upload(r, lease.key))

        def mark_done(w: WriteTxn, link: LinkRecord) -> None:
            current = self._held(w, lease)
            if current.state != row.state or current.offset != row.length:
                raise StoreError(f"resumable upload {row.id} changed while it was being finished")
            segments.drop_upload(w, lease.key, self.clock())
            charge(w, row.owner, -credit, 0)  # the object's own charge replaces it
            current.state, current.link, current.segments = DONE, link.id, 0
            current.expires = self.clock() + self.expires_after
            self._renew(w, lease, current, release=True)

        # No size hint, so no reservation: the charge already holds the room.
        with self.uploads.open(row.owner, row.filename, row.filetype or None, credit=credit, also=mark_done) as upload:
            for segment in kept:
                if segment.start != upload.size:
                    raise StoreError(f"resumable upload {row.id} has a gap at byte {upload.size}")
                for piece in self._read(segment):
                    upload.write(piece)
                    self._keep_alive(lease)
            if upload.size != row.length:
                raise StoreError(f"resumable upload {row.id} keeps {upload.size} bytes, not {row.length}")
            return upload.commit()

    def _read(self, segment: segments.Segment) -> Iterator[bytes]:
        found = self.meta.read(lambda r: segments.content(r, segment))
        if isinstance(found, bytes):
            yield found
        else:
            yield from self.chunks.read_spans((digest, 0, length) for digest, length in found)

    # uploads of older versions -------------------------------------------------------------------
    def _legacy_file(self, upload_id: str) -> Path | None:
        return (
            spool.path(self.legacy_dir, upload_id) if self.legacy_dir is not None and is_valid_id(upload_id) else None
        )

    def _adopt_legacy(self, lease: Lease) -> ResumableRecord:
        """The leased row, with the bytes an older version kept in a file taken in as its first
        segment (the file then goes); at offset 0 again if those bytes are nowhere to be found."""
        row, path = lease.row, self._legacy_file(lease.row.id)
        if row.state == DONE:
            return row
        if row.offset == 0 or self.meta.read(lambda r: segments.exists(r, lease.key)):
            if path is not None:
                path.unlink(missing_ok=True)  # bytes past the committed offset, or taken in already
            return row
        content = spool.read_prefix(path, row.offset, self._segment_writer) if path is not None else None
        row = self._take_in(lease, content) if content is not None else self._restart(lease)
        if path is not None:
            path.unlink(missing_ok=True)
        return row

    def _take_in(self, lease: Lease, content: ContentWriter) -> ResumableRecord:
        """An older version's bytes become the first segment; the offset stays where it was."""
        size = content.finish().size

        def adopt(w: WriteTxn) -> ResumableRecord:
            row = self._held(w, lease)
            if row.offset != size or segments.exists(w, lease.key):
                raise OffsetMismatch(f"resumable upload {row.id} moved on while leased")  # not expected
            segments.add(w, lease.key, 0, content.install(w), size)
            row.segments = 1
            self._renew(w, lease, row)
            return row

        return self._commit(content, adopt)

    def _restart(self, lease: Lease) -> ResumableRecord:
        def restart(w: WriteTxn) -> ResumableRecord:
            row = self._held(w, lease)
            row.offset = 0
            self._renew(w, lease, row)
            return row

        return self.meta.transact(restart)

    # expiry --------------------------------------------------------------------------------------
    def collect_expired(self, now: float | None = None) -> int:
        """Drop uploads past their expiry (those in use are left for next time) and orphan files."""
        now = self.clock() if now is None else now
        rows = self.meta.read(lambda r: [ResumableRecord.decode(raw) for _, raw in r.range(TABLE)])
        dropped = sum(self._expire(row, now) for row in rows if row.expires <= now)
        if self.legacy_dir is not None:
            spool.remove_orphans(self.legacy_dir, {row.id for row in rows})
        return dropped

    def _expire(self, row: ResumableRecord, now: float) -> bool:
        try:
            lease = self._take(row.owner, row.id, wait=0)
        except (NoSuchUpload, UploadBusy):
            return False
        return self._drop(lease, only_if=lambda current: current.expires <= now)


class Appender:
    """Bytes of one PATCH, appended at the kept offset; `close` checkpoints and lets go of the upload."""

    def __init__(self, resumables: Resumables, lease: Lease):
        self.resumables = resumables
        self.lease = lease
        self.row = lease.row
        self.kept = self.row.offset  # what the metadata says
        self.written = self.row.offset  # what came, kept or not
        self.content: ContentWriter | None = None  # the bytes since the last checkpoint
        self.closed = False

    @property
    def remaining(self) -> int:
        return self.row.length - self.written

    def write(self, data: bytes | memoryview) -> None:
        """Append; EntityTooLarge (nothing of `data` written) if it goes past the declared length.
        `data` is hashed on another thread: pass bytes, or don't reuse it."""
        if len(data) > self.remaining:
            raise EntityTooLarge(f"the body goes past the upload's length of {self.row.length} bytes")
        if self.content is None:
            self.content = self.resumables._segment_writer()
        self.content.write(data)
        self.written += len(data)
        if self.written - self.kept >= CHECKPOINT_BYTES or self.resumables.clock() >= self.lease.renew_at:
            self._checkpoint_within()

    def _checkpoint_within(self) -> None:
        """A checkpoint within the PATCH while more than one segment is left; else the lease alone is
        renewed, so the PATCH's end always has its segment and an accepted PATCH is never cut short."""
        if self.resumables.config.resumable_max_segments - self.row.segments > 1:
            self.checkpoint()
        else:
            self.resumables._keep_alive(self.lease)

    def checkpoint(self, release: bool = False) -> ResumableRecord:
        """Make the bytes written since the last checkpoint a segment and commit the new offset
        (pushing the expiry and the lease back, or with `release` giving the lease back)."""
        content, self.content = self.content, None
        self.row = self.resumables._keep(self.lease, content, self.kept, release)
        self.kept = self.written = self.row.offset
        return self.row

    def close(self) -> ResumableRecord:
        """Checkpoint what was written, then let go of the upload; safe to call more than once."""
        if self.closed:
            return self.row
        self.closed = True
        try:
            return self.checkpoint(release=True)
        except BaseException:
            self.resumables._let_go(self.lease)
            raise


def _row(r: ReadTxn, owner: str, upload_id: str) -> ResumableRecord:
    raw = r.get(TABLE, row_key(owner, upload_id)) if is_valid_id(upload_id) else None
    if raw is None:
        raise NoSuchUpload(upload_id)
    return ResumableRecord.decode(raw)
