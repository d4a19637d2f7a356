"""Resumable uploads (the engine side of tus, https://tus.io/protocols/resumable-upload): a row and a file.

An upload is a `ResumableRecord` in the `resumables` table, which this module owns (key: owner +
NUL + id, so an id is only ever looked up among its owner's uploads), and an append-only file
`<data dir>/resumable/<id>`.
Each write appends to the file; `Appender.checkpoint` fsyncs it and only then commits the new
offset, so the committed offset is the truth: bytes past it (a crash, a dropped connection before the
checkpoint) are cut off when the upload is next opened for writing. One writer per upload at a
time, across worker processes: an flock on the file, held while bytes are appended, the upload is
finished, terminated or expired.

Quota: the declared length is charged to the owner's usage when the upload is created (refused
there, before any byte, when it would not fit) and stays charged while bytes come in, as multipart
parts are. `fsck` counts it the same way (`charged_bytes`). Once every byte is in, the file is
streamed into a `LinkUpload`, whose commit creates the object and its link, marks the row done and
takes the charge back, all in one transaction: the room stays the upload's throughout (the charge
is the commit's credit, see `Objects.open_writer`), and a crash or failure before that commit leaves
the upload receiving and charged, finished again by the next HEAD or PATCH. While a file is being
finished its bytes are on disk twice (here and as chunks). Done rows are kept until they expire so a
client that lost the last response can still learn its link.

Abandoned uploads expire `expires_after` seconds after their last write; `collect_expired` (run by
`pyblob gc`) drops them and gives their bytes back.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Self

from ..accounts import charge
from ..admission import Admission, admit
from ..config import MiB, StoreConfig
from ..durability import fsync_dir
from ..errors import EntityTooLarge, InvalidArgument, NoSuchUpload, StoreError
from ..limits import UPLOAD_CEILING
from ..meta import MetadataStore, ReadTxn, WriteTxn, scan
from ..records import LinkRecord, ResumableRecord
from .uploads import LinkUploads

TABLE = "resumables"
TABLES = (TABLE,)

EXPIRES_AFTER = 24 * 3600.0  # an upload not written to for this long is abandoned
MAX_PENDING_PER_USER = 100
CHECKPOINT_BYTES = 64 * MiB  # a long PATCH is made durable (and resumable from) every this many bytes
READ_BLOCK = 1 * MiB
LOCK_WAIT = 5.0  # how long a request waits for another one on the same upload to let go
ORPHAN_MIN_AGE = 3600.0  # a file without a row may belong to an upload being created right now

RECEIVING, DONE = "receiving", "done"
FINISHING = "finishing"  # written by earlier versions while finishing: holds no charge, finished as it is


class OffsetMismatch(StoreError):
    """A write that does not start where the upload's kept bytes end (tus: 409 Conflict)."""

    code = "OffsetMismatch"


class UploadBusy(StoreError):
    """Another request is writing, finishing or removing this upload right now."""

    code = "UploadLocked"


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


def drop_owner(w: WriteTxn, owner: str) -> None:
    """Delete every upload row of `owner` (a removed user's; their files go as orphans)."""
    for key in [k for k, _ in scan(w, TABLE, owner.encode() + b"\0")]:
        w.delete(TABLE, key)


def _put(w: WriteTxn, row: ResumableRecord) -> None:
    w.put(TABLE, row_key(row.owner, row.id), row.encode())


class Resumables:
    """tus uploads of one owner at a time: create, append at the kept offset, finish into a link, expire."""

    def __init__(
        self,
        meta: MetadataStore,
        config: StoreConfig,
        clock: Callable[[], float],
        spool: Path,
        admission: Admission,
        uploads: LinkUploads,
        expires_after: float = EXPIRES_AFTER,
        max_pending: int = MAX_PENDING_PER_USER,
        lock_wait: float = LOCK_WAIT,
    ):
        self.meta = meta
        self.config = config
        self.clock = clock
        self.dir = spool
        self.admission = admission
        self.uploads = uploads
        self.expires_after = expires_after
        self.max_pending = max_pending
        self.lock_wait = lock_wait

    def path(self, upload_id: str) -> Path:
        return self.dir / upload_id

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
        with self._locked(owner, upload_id):
            self._drop(owner, upload_id)

    def _drop(self, owner: str, upload_id: str, only_if: Callable[[ResumableRecord], bool] = lambda row: True) -> bool:
        """Delete the row (giving back what it charged) and then its file; call holding the lock."""

        def drop(w: WriteTxn) -> bool:
            raw = w.get(TABLE, row_key(owner, upload_id))
            row = ResumableRecord.decode(raw) if raw is not None else None
            if row is None or not only_if(row):
                return False
            w.delete(TABLE, row_key(owner, upload_id))
            if row.state == RECEIVING:
                charge(w, owner, -row.length, 0)
            return True

        if not self.meta.transact(drop):
            return False
        self.path(upload_id).unlink(missing_ok=True)
        return True

    # writing -----------------------------------------------------------------------------------
    def _locked(self, owner: str, upload_id: str, wait: float | None = None) -> Locked:
        self.get(owner, upload_id)  # unknown ids never reach the file system
        if not self.dir.is_dir():
            self.dir.mkdir(mode=0o700, exist_ok=True)
            if self.config.durable:
                fsync_dir(self.dir.parent)
        return Locked(self, owner, upload_id, self.lock_wait if wait is None else wait)

    def open_append(self, owner: str, upload_id: str, offset: int) -> Appender:
        """A writer at `offset`, which must be where the kept bytes end (OffsetMismatch otherwise).

        Holds the upload's lock until `close` (UploadBusy if another request keeps it).
        """
        locked = self._locked(owner, upload_id)
        try:
            if locked.row.state == RECEIVING and os.fstat(locked.fd).st_size < locked.row.offset:
                locked.row = self._restart(locked.row)
            if locked.row.state != RECEIVING or offset != locked.row.offset:
                raise OffsetMismatch(f"the upload is at offset {locked.row.offset}, not {offset}")
            return Appender(self, locked)
        except BaseException:
            locked.close()
            raise

    def _restart(self, row: ResumableRecord) -> ResumableRecord:
        """Kept bytes missing from the file (lost with an unsynced disk): start over at 0, never pad."""

        def restart(w: WriteTxn) -> ResumableRecord:
            current = _row(w, row.owner, row.id)
            current.offset = 0
            _put(w, current)
            return current

        return self.meta.transact(restart)

    # finishing ---------------------------------------------------------------------------------
    def finish(self, owner: str, upload_id: str) -> ResumableRecord:
        """Once every byte is in: store the file with a short link. Idempotent; retried after failures.

        Returns the row as it is then (done with its link, or still short of bytes).
        """
        row = self.get(owner, upload_id)
        if row.state == DONE or row.offset < row.length:
            return row
        with self._locked(owner, upload_id) as locked:
            row = locked.row
            if row.state == DONE or row.offset < row.length:
                return row
            self._store_file(locked.fd, row)
            self.path(upload_id).unlink(missing_ok=True)
        return self.get(owner, upload_id)

    def _store_file(self, fd: int, row: ResumableRecord) -> LinkRecord:
        """Stream the kept bytes into a `LinkUpload`; its commit marks the row done and uncharges it."""
        credit = row.length if row.state == RECEIVING else 0

        def mark_done(w: WriteTxn, link: LinkRecord) -> None:
            current = _row(w, row.owner, row.id)
            if current.state != row.state or current.offset != row.length:
                raise StoreError(f"resumable upload {row.id} changed while it was being finished")
            charge(w, row.owner, -credit, 0)  # the object's own charge replaces it
            current.state, current.link = DONE, link.id
            current.expires = self.clock() + self.expires_after
            _put(w, current)

        # No size hint, so no reservation: the charge already holds the room.
        with self.uploads.open(row.owner, row.filename, row.filetype or None, credit=credit, also=mark_done) as upload:
            pos = 0
            while pos < row.length:
                piece = os.pread(fd, min(READ_BLOCK, row.length - pos), pos)
                if not piece:
                    raise StoreError(f"resumable upload {row.id} has fewer bytes on disk than its offset")
                upload.write(piece)
                pos += len(piece)
            return upload.commit()

    # expiry --------------------------------------------------------------------------------------
    def collect_expired(self, now: float | None = None) -> int:
        """Drop uploads past their expiry (those in use are left for next time) and orphan files."""
        now = self.clock() if now is None else now
        rows = self.meta.read(lambda r: [ResumableRecord.decode(raw) for _, raw in r.range(TABLE)])
        dropped = sum(self._expire(row, now) for row in rows if row.expires <= now)
        self._remove_orphans({row.id for row in rows})
        return dropped

    def _expire(self, row: ResumableRecord, now: float) -> bool:
        try:
            with self._locked(row.owner, row.id, wait=0):
                return self._drop(row.owner, row.id, only_if=lambda current: current.expires <= now)
        except (NoSuchUpload, UploadBusy):
            return False

    def _remove_orphans(self, known: set[str]) -> None:
        """Files whose row is gone and that nobody touched for a while (see `_locked`)."""
        if not self.dir.is_dir():
            return
        cutoff = time.time() - ORPHAN_MIN_AGE
        for path in self.dir.iterdir():
            try:
                if path.name not in known and path.stat().st_mtime <= cutoff:
                    path.unlink()
            except FileNotFoundError:
                pass


class Locked:
    """An upload's file, flocked (one request at a time, across processes), and its row read under the lock."""

    def __init__(self, resumables: Resumables, owner: str, upload_id: str, wait: float):
        path = resumables.path(upload_id)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock(self.fd, wait)
            self.row = resumables.get(owner, upload_id)
        except NoSuchUpload:
            path.unlink(missing_ok=True)  # gone while we waited: our open made the file anew
            self.close()
            raise
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing drops the lock
            self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Appender:
    """Bytes of one PATCH, appended at the kept offset; `close` checkpoints and lets go of the upload."""

    def __init__(self, resumables: Resumables, locked: Locked):
        self.resumables = resumables
        self.locked = locked
        self.fd = locked.fd
        self.row = locked.row
        self.kept = self.row.offset  # what LMDB says
        self.written = self.row.offset  # what the file has
        os.ftruncate(self.fd, self.kept)  # cut what a crash or a dropped request left past the kept bytes
        os.lseek(self.fd, self.kept, os.SEEK_SET)

    @property
    def remaining(self) -> int:
        return self.row.length - self.written

    def write(self, data: bytes | memoryview) -> None:
        """Append; EntityTooLarge (nothing of `data` written) if it goes past the declared length."""
        if len(data) > self.remaining:
            raise EntityTooLarge(f"the body goes past the upload's length of {self.row.length} bytes")
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.written += len(data)
        if self.written - self.kept >= CHECKPOINT_BYTES:
            self.checkpoint()

    def checkpoint(self) -> ResumableRecord:
        """Make the written bytes durable, then commit the new offset (and push the expiry back)."""
        if self.written == self.kept:
            return self.row
        resumables = self.resumables
        if resumables.config.durable:
            os.fsync(self.fd)
            if self.kept == 0:
                fsync_dir(resumables.dir)  # the file's name, the first time it holds kept bytes

        def advance(w: WriteTxn) -> ResumableRecord:
            row = _row(w, self.row.owner, self.row.id)
            if row.state != RECEIVING or row.offset != self.kept:
                raise OffsetMismatch(f"resumable upload {row.id} moved on while locked")  # not expected
            row.offset, row.expires = self.written, resumables.clock() + resumables.expires_after
            _put(w, row)
            return row

        self.row, self.kept = resumables.meta.transact(advance), self.written
        return self.row

    def close(self) -> ResumableRecord:
        """Checkpoint what was written, then release the upload; safe to call more than once."""
        try:
            return self.checkpoint() if self.locked.fd >= 0 else self.row
        finally:
            self.locked.close()


def _row(r: ReadTxn, owner: str, upload_id: str) -> ResumableRecord:
    raw = r.get(TABLE, row_key(owner, upload_id)) if is_valid_id(upload_id) else None
    if raw is None:
        raise NoSuchUpload(upload_id)
    return ResumableRecord.decode(raw)


def _lock(fd: int, wait: float) -> None:
    """An exclusive flock on `fd`, polling for up to `wait` seconds; UploadBusy after that."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            raise UploadBusy("another request is using this upload; try again shortly")
        time.sleep(0.05)
