"""Room for deletes on a full disk: a floor of free space uploads leave, and a reserve file.

A delete writes too: LMDB copies every page it changes, to a free page or a new one at the end of its
file, so on a disk filled to its last byte DELETEs (and `pyblob gc`) fail with ENOSPC (measured on a
tmpfs, see tests/reliability/test_disk_full.py). Two things keep room for them:

- The floor: uploads are refused with StorageFull (507) while less than `min_free` bytes are free,
  before their first byte (`Admission.room`) and before each chunk file they would write (the local
  chunk store), so concurrent uploads overshoot it by a chunk each at most. Every other write
  (deletes, short-link statistics, rate-limit buckets) may use the room under it. MinIO keeps a
  minimum of free space per drive the same way.
- The reserve: with a floor, the data dir also holds `reserve`, RESERVE_BYTES allocated on the disk.
  When something else fills the disk anyway, the first metadata commit that meets ENOSPC deletes the
  file (`release`) and runs again in the room it leaves. It comes back before an upload once the disk
  has the floor and the reserve free again.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .errors import StorageFull

RESERVE_FILE = "reserve"
RESERVE_BYTES = 1024 * 1024  # a few hundred LMDB pages: the deletes and the gc that free the disk


class DiskFloor:
    """Free space of the filesystem holding the data dir `root`, the floor uploads keep above (0: none,
    and no reserve either), and the reserve file."""

    def __init__(self, root: Path, min_free: int):
        self.root = root
        self.min_free = min_free
        self.reserve = RESERVE_BYTES if min_free > 0 else 0
        self.reserve_path = root / RESERVE_FILE

    def free(self) -> int:
        """Bytes an unprivileged writer may still use (root's reserved blocks left out)."""
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def check(self, incoming: int = 0) -> None:
        """StorageFull if writing `incoming` more bytes would leave less than the floor free."""
        if self.min_free > 0 and self.free() - incoming < self.min_free:
            raise StorageFull(StorageFull.FLOOR)

    def before_upload(self) -> None:
        """`check`, and the reserve made again if it was used and the disk has room for it."""
        if self.min_free > 0:
            self.check()
            self.keep_reserve()

    def keep_reserve(self) -> None:
        """The reserve file in place, unless the disk lacks the room for it and the floor (then later)."""
        if not self.reserve or self.reserve_path.exists() or self.free() < self.min_free + self.reserve:
            return
        made = self.root / f".{RESERVE_FILE}.{secrets.token_hex(6)}"
        fd = os.open(made, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, self.reserve)  # blocks of its own, not a sparse file
        except OSError:
            os.unlink(made)
            return
        finally:
            os.close(fd)
        os.replace(made, self.reserve_path)

    def release(self) -> None:
        """Give the reserve's room to the commits that found the disk full."""
        try:
            self.reserve_path.unlink()
        except FileNotFoundError:
            pass
