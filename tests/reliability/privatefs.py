"""A command run on a small tmpfs mounted in a private mount namespace, so nothing stays mounted.

`private_tmpfs_command(directory, size, argv)` is `argv` wrapped so that it runs with a fresh tmpfs of
`size` bytes mounted on `directory` (owned by root, or by `owner`'s uid and gid: a server that runs as
another user, as PostgreSQL does), seen by it and its children only; the mount goes away with the
last of them, whatever happens to the test. As root: a mount namespace of its own (`unshare --mount`).
Not root: a user namespace where we are root, and a mount namespace in it (`unshare --user
--map-root-user --mount`), which needs unprivileged user namespaces. The first way that mounts here is
used; when neither does, the test fails and says why each did not (a disk-full test that cannot make
a full disk must not pass as skipped).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# sh -c SCRIPT sh DIR OPTIONS ARGV...: mount, then become ARGV (same pid, in the namespace)
MOUNT_THEN_EXEC = 'mount -t tmpfs -o "$2" pyblob-test "$1" && shift 2 && exec "$@"'
AS_ROOT = ("unshare", "--mount", "--propagation", "private")
AS_USER = ("unshare", "--user", "--map-root-user", "--mount", "--propagation", "private")


def private_tmpfs_command(
    directory: Path, size: int, argv: list[str], owner: tuple[int, int] | None = None
) -> list[str]:
    """`argv` run with a private tmpfs of `size` bytes on `directory` (which must exist), its root
    owned by `owner` (uid, gid) when given."""
    options = f"size={size},mode=0700" + (f",uid={owner[0]},gid={owner[1]}" if owner else "")
    return [*namespace_way(), "sh", "-c", MOUNT_THEN_EXEC, "sh", str(directory), options, *argv]


@functools.cache
def namespace_way() -> tuple[str, ...]:
    """The `unshare` prefix that can mount a tmpfs on this machine; fails the test when none can."""
    if shutil.which("unshare") is None:
        pytest.fail("a disk-full test needs `unshare` (util-linux) to mount a private tmpfs; it is not installed")
    ways = (AS_ROOT, AS_USER) if os.geteuid() == 0 else (AS_USER,)
    refusals = []
    with tempfile.TemporaryDirectory(prefix="pyblob-privatefs-") as probe:
        for way in ways:
            tried = subprocess.run(
                [*way, "sh", "-c", MOUNT_THEN_EXEC, "sh", probe, "size=65536,mode=0700", "true"],
                capture_output=True,
                text=True,
                timeout=30,
                stdin=subprocess.DEVNULL,
            )
            if tried.returncode == 0:
                return way
            refusals.append(f"`{' '.join(way)}`: exit {tried.returncode}: {tried.stderr.strip()}")
    pytest.fail(
        "cannot mount a tmpfs in a private mount namespace here, so no small disk to fill:\n  "
        + "\n  ".join(refusals)
        + "\nRun as root, or allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
        "user.max_user_namespaces > 0; AppArmor: kernel.apparmor_restrict_unprivileged_userns=0)."
    )
