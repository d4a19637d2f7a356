"""A fault injector for real pyblob processes (issue 15): fail or kill the process at one step of the
write, delete and read paths.

`tests/faultrun.py` installs it in a `pyblob` process (the server, `pyblob gc`) before the command
line runs. The test arms a fault by writing a `Fault` as JSON to the control file named by
`FAULT_CONTROL_FILE`; the process reads it again whenever the file changes (the test replaces it
atomically), so a running server is armed and disarmed without a restart. Each firing is appended
to `<control file>.fired`, so the test knows the fault was met, not just armed.

The steps, each wrapped at the call pyblob's own code makes:

| step | where |
|---|---|
| `write` | `os.write` of a chunk file into its staging dir (`objstore/chunks/localdir.py`) |
| `fsync` | the flush of staged chunk files (`LocalChunkStore._sync_files`: syncfs, or an fsync each) |
| `rename` | `os.rename` of a staged chunk into `chunks/` |
| `dirsync` | the flush of the renames (`LocalChunkStore._sync_dirs`: syncfs, or an fsync of each dir) |
| `commit` | the LMDB commit of a group of metadata transactions (`objstore/meta/lmdb.py`): raised as LMDB
  raises it, an `lmdb.Error` carrying the errno |
| `unlink` | `Path.unlink` of a chunk file (GC) |
| `read` | `os.pread` / `os.read` of a chunk file (`objstore/chunks/localdir.py`: GET, `/s/`, scrub) and the
  server's copy of a file region where it cannot `sendfile` (`pyblob/boundedhttp.py`) |
| `sendfile` | `os.sendfile` of a chunk file's region to a client's socket (`pyblob/boundedhttp.py`) |
| `metaread` | a read transaction of the metadata (`LmdbStore._snapshot`, `objstore/meta/lmdb.py`): raised as
  an `lmdb.Error` carrying the errno. LMDB reads through its memory map, where a disk's EIO is a SIGBUS
  that kills the process (a crash); this step is the error LMDB reports through a system call |

Faults: ENOSPC, EDQUOT and EIO raise the OSError of that errno instead of the call; `crash` sends the
process SIGKILL before the call, a crash between the step before and this one. A fault matches the
`nth` call of its step whose path holds `path` (and, with `during`, that runs under a function of
that name, e.g. `delete_unreferenced` for GC's commits), in processes of `command` (`serve`, `gc`).
It fires `times` times from there (a full disk stays full; an EIO comes once, so a retry that
would paper over it is caught).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any, cast

CONTROL_ENV = "FAULT_CONTROL_FILE"
STEPS = ("write", "fsync", "rename", "dirsync", "commit", "unlink", "read", "sendfile", "metaread")
ERRNOS = {"ENOSPC": errno.ENOSPC, "EDQUOT": errno.EDQUOT, "EIO": errno.EIO}
CRASH = "crash"
FAULTS = (*ERRNOS, CRASH)


@dataclasses.dataclass(frozen=True)
class Fault:
    step: str
    fault: str
    path: str = ""  # a substring of the path the call touches
    nth: int = 1  # the first matching call that fails
    times: int = 1  # how many matching calls fail from the nth on
    during: str = ""  # a function that must be on the calling thread's stack
    command: str = "serve"  # the pyblob subcommand of the processes it applies to
    tag: str = ""  # names the arming in the fired log

    def __post_init__(self) -> None:
        if self.step not in STEPS or self.fault not in FAULTS:
            raise ValueError(f"unknown step or fault: {self.step} {self.fault}")


class Control:
    """The test's side: arm, disarm, and what fired."""

    def __init__(self, path: Path):
        self.path = path
        self.fired_log = Path(f"{path}.fired")

    def arm(self, fault: Fault) -> None:
        self._write(json.dumps(dataclasses.asdict(fault)))

    def disarm(self) -> None:
        self._write("")

    def fired(self, tag: str) -> int:
        """How many times the fault armed under `tag` fired."""
        return len(self.fired_paths(tag))

    def fired_paths(self, tag: str) -> list[str]:
        """The path of each call the fault armed under `tag` failed."""
        if not self.fired_log.exists():
            return []
        lines = [json.loads(line) for line in self.fired_log.read_text().splitlines()]
        return [line["path"] for line in lines if line["tag"] == tag]

    def _write(self, text: str) -> None:
        staged = self.path.with_name(self.path.name + ".new")
        staged.write_text(text)
        os.replace(staged, self.path)  # a new inode: the process sees the change


class Injector:
    """The process's side: reads the armed fault, counts matching calls, fires."""

    def __init__(self, control: Path, command: str):
        self.control = control
        self.command = command
        self.lock = threading.Lock()
        self.seen_file: tuple[int, int] | None = None
        self.fault: Fault | None = None
        self.calls = 0

    def check(self, step: str, path: str | Callable[[], str]) -> None:
        """Raise the armed OSError, or crash, if this call is the one to fail; else nothing."""
        code = self.due(step, path)
        if code:
            raise OSError(code, os.strerror(code), path if isinstance(path, str) else path())

    def due(self, step: str, path: str | Callable[[], str]) -> int:
        """The errno this call must fail with (0: none); kills the process for a crash."""
        fault = self._current()
        if fault is None or fault.step != step or fault.command != self.command:
            return 0
        where = path if isinstance(path, str) else path()
        if fault.path not in where or (fault.during and not _on_stack(fault.during)):
            return 0
        with self.lock:
            self.calls += 1
            if not fault.nth <= self.calls < fault.nth + fault.times:
                return 0
            self._log(fault, where)
        if fault.fault == CRASH:
            os.kill(os.getpid(), signal.SIGKILL)
        return ERRNOS[fault.fault]

    def _current(self) -> Fault | None:
        try:
            st = os.stat(self.control)
        except FileNotFoundError:
            return None
        with self.lock:
            if self.seen_file != (st.st_ino, st.st_mtime_ns):
                self.seen_file = (st.st_ino, st.st_mtime_ns)
                text = self.control.read_text()
                self.fault = Fault(**json.loads(text)) if text else None
                self.calls = 0
            return self.fault

    def _log(self, fault: Fault, where: str) -> None:
        line = json.dumps({"tag": fault.tag, "step": fault.step, "path": where, "pid": os.getpid()})
        with open(f"{self.control}.fired", "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())  # a crash that follows must not lose the record


def _on_stack(name: str) -> bool:
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == name:
            return True
        frame = frame.f_back
    return False


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


class _FaultyOs:
    """`os` as the local chunk store sees it: `write` and `rename` pass the injector first."""

    def __init__(self, injector: Injector):
        self._injector = injector

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        self._injector.check("write", lambda: _fd_path(fd))
        return os.write(fd, data)

    def rename(self, src: Any, dst: Any) -> None:
        self._injector.check("rename", f"{src} -> {dst}")
        os.rename(src, dst)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        self._injector.check("read", lambda: _fd_path(fd))
        return os.pread(fd, size, offset)

    def read(self, fd: int, size: int) -> bytes:
        self._injector.check("read", lambda: _fd_path(fd))
        return os.read(fd, size)

    def sendfile(self, out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        self._injector.check("sendfile", lambda: _fd_path(in_fd))
        return os.sendfile(out_fd, in_fd, offset, count)


def _joined(paths: Iterable[Path]) -> str:
    return " ".join(str(p) for p in paths)


def install() -> None:
    """Wrap the steps in this process, if `FAULT_CONTROL_FILE` is set."""
    control = os.environ.get(CONTROL_ENV)
    if not control:
        return
    injector = Injector(Path(control), sys.argv[1] if len(sys.argv) > 1 else "")
    _wrap_chunk_store(injector)
    _wrap_commit(injector)
    _wrap_unlink(injector)
    _wrap_reads(injector)


def _wrap_chunk_store(injector: Injector) -> None:
    from objstore.chunks import localdir

    localdir.os = _FaultyOs(injector)  # type: ignore[attr-defined,assignment]
    store = localdir.LocalChunkStore
    sync_files, sync_dirs = store._sync_files, store._sync_dirs

    def faulty_sync_files(self: localdir.LocalChunkStore, files: Iterable[Path], flush: Any) -> None:
        files = list(files)
        injector.check("fsync", _joined(files))
        sync_files(self, files, flush)

    def faulty_sync_dirs(self: localdir.LocalChunkStore, dirs: Iterable[Path], flush: Any) -> None:
        dirs = list(dirs)
        injector.check("dirsync", _joined(dirs))
        sync_dirs(self, dirs, flush)

    store._sync_files = faulty_sync_files  # type: ignore[method-assign]
    store._sync_dirs = faulty_sync_dirs  # type: ignore[method-assign]


def _wrap_unlink(injector: Injector) -> None:
    unlink = Path.unlink

    def faulty_unlink(self: Path, missing_ok: bool = False) -> None:
        injector.check("unlink", str(self))
        unlink(self, missing_ok=missing_ok)

    Path.unlink = faulty_unlink  # type: ignore[method-assign]


def _wrap_commit(injector: Injector) -> None:
    """The group commit runs its transactions in a parent LMDB transaction and commits that: the
    parent is handed out wrapped, so its commit fails (or the process dies) after the functions ran."""
    import lmdb

    from objstore.meta import lmdb as lmdb_meta

    commit_group = lmdb_meta._commit_group

    def faulty_commit_group(env: lmdb.Environment, dbs: Any, group: Any) -> None:
        commit_group(cast(lmdb.Environment, _FaultyEnv(env, injector)), dbs, group)

    lmdb_meta._commit_group = faulty_commit_group


def _wrap_reads(injector: Injector) -> None:
    """The server's sends of file regions (sendfile, and its copying fallback), and metadata reads."""
    from objstore.meta import lmdb as lmdb_meta
    from pyblob import boundedhttp

    boundedhttp.os = _FaultyOs(injector)  # type: ignore[attr-defined,assignment]
    snapshot = lmdb_meta.LmdbStore._snapshot

    def faulty_snapshot(self: lmdb_meta.LmdbStore, env: Any, fn: Any) -> Any:
        code = injector.due("metaread", lambda: str(env.path()))
        if code:
            raise _lmdb_error(code, "mdb_txn_begin")
        return snapshot(self, env, fn)

    lmdb_meta.LmdbStore._snapshot = faulty_snapshot  # type: ignore[method-assign]


def _lmdb_error(code: int, call: str) -> Exception:
    """The error LMDB raises for a call that failed with `code`, carrying the errno as its own do."""
    import lmdb

    error = (lmdb.DiskError if code == errno.ENOSPC else lmdb.Error)(f"{call}: {os.strerror(code)}")
    error.code = code  # type: ignore[misc]  # as LMDB's own errors carry it
    return error


class _FaultyEnv:
    def __init__(self, env: Any, injector: Injector):
        self._env = env
        self._injector = injector

    def begin(self, **kwargs: Any) -> Any:
        txn = self._env.begin(**kwargs)
        if kwargs.get("write") and kwargs.get("parent") is None:
            return _FaultyCommit(txn, self._injector, self._env.path())
        return txn


class _FaultyCommit:
    """A parent write transaction whose commit (at the end of its `with`) goes through the injector."""

    def __init__(self, txn: Any, injector: Injector, path: str):
        self._txn = txn
        self._injector = injector
        self._path = path

    def __enter__(self) -> Any:
        return self._txn.__enter__()

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> Any:
        if kind is None:
            code = self._injector.due("commit", self._path)
            if code:
                self._txn.abort()
                raise _lmdb_error(code, "mdb_txn_commit")
        return self._txn.__exit__(kind, exc, tb)
