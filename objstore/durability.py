"""Making files and renames durable: one `syncfs(2)` where Linux offers it, else fsync each.

Used by the local chunk store (chunks published before the metadata that names them), which opens a
`BatchFlush` when a batch of chunk writes begins and flushes through it.

What a flush can report (Linux's errseq_t; `syncfs` returns writeback errors from Linux 5.8). Every
writeback error of a filesystem advances one error sequence in its superblock (`s_wb_err`); each open
file samples it when it is opened (`f_sb_err`), and `syncfs` on a descriptor reports an error recorded
after that sample once, then advances the sample. A descriptor opened later samples the sequence as it
then is: an error nobody has seen yet is still reported to it, one already reported to another
descriptor (another process's flush, or this process's own earlier one) is not. Background writeback
can fail on our pages before we flush them; if another flush saw that error first and our descriptor
was opened after it, our `syncfs` returns 0 over lost data. Hence the descriptor is opened when the
batch begins, before its first write, and kept until the batch closes.

Guaranteed (Linux >= 5.8, syncfs): a writeback error anywhere on the data filesystem after the batch
began fails the batch's flush, whoever saw it first. Any error, not only one of our pages: a failure
elsewhere on the filesystem fails the batch too, which is safe (the write is refused and retried).
Not guaranteed: before Linux 5.8 `syncfs` reports no writeback error at all (only that it ran); an
error the filesystem cannot attribute to writeback (a disk that silently loses a write) is seen by
no flush. Without syncfs (`BatchFlush.whole_filesystem` false), each chunk file is fsynced through
the descriptor it was written with, before it is closed (the same errseq_t rule, per file); a
directory is fsynced through a descriptor opened at the flush, which reports the journal commit that
fsync itself runs.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

_LIBC = ctypes.CDLL(None, use_errno=True)
_HAS_SYNCFS = hasattr(_LIBC, "syncfs")


class BatchFlush:
    """A descriptor of the filesystem holding `path`, opened now (a batch begins) and flushed later
    with `syncfs`: it reports every writeback error recorded since it was opened (see above)."""

    def __init__(self, path: Path):
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY) if _HAS_SYNCFS else -1

    @property
    def whole_filesystem(self) -> bool:
        """Whether `sync` flushes the whole filesystem; if not, files and dirs are fsynced one by one."""
        return self.fd >= 0

    def sync(self) -> None:
        """Flush the whole filesystem (data and metadata); OSError with the errno syncfs reported."""
        if _LIBC.syncfs(self.fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs failed: {os.strerror(err)}")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
