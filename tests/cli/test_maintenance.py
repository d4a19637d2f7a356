"""`pyblob gc|fsck|snapshot` as real processes on a data dir filled through the engine."""

from __future__ import annotations

import shutil
from pathlib import Path

from processes import RunPyblob

from objstore import Store, accounts

BIG = bytes(range(256)) * 1024  # 256 KiB: stored as chunk files, not inline


def fill(data_dir: Path) -> Store:
    store = Store(data_dir)
    store.accounts.create_user("kim")
    store.create_bucket("kim", "photos")
    store.put_object("photos", "cat.jpg", BIG)
    return store


def test_gc_reports_what_it_did(run_pyblob: RunPyblob, data_dir: Path) -> None:
    fill(data_dir).close()
    result = run_pyblob("gc")
    assert result.returncode == 0, result.stderr
    assert "chunks removed:" in result.stdout and "uploads aborted:" in result.stdout


def test_fsck_clean_then_missing_chunk_exits_1(run_pyblob: RunPyblob, data_dir: Path) -> None:
    store = fill(data_dir)
    chunk = next(p for p in store.chunks.chunks.rglob("*") if p.is_file())
    store.close()
    clean = run_pyblob("fsck")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 problems found" in clean.stdout

    chunk.unlink()
    broken = run_pyblob("fsck", "--repair")
    assert broken.returncode == 1
    assert "is missing" in broken.stdout
    assert "problems remain" in broken.stdout  # a lost chunk cannot be repaired


def test_fsck_repair_fixes_drifted_usage(run_pyblob: RunPyblob, data_dir: Path) -> None:
    store = fill(data_dir)
    store.meta.transact(lambda w: accounts.charge(w, "kim", 999, 0))
    store.close()
    assert run_pyblob("fsck").returncode == 1
    repaired = run_pyblob("fsck", "--repair")
    assert repaired.returncode == 0, repaired.stdout
    assert "after repair: 0 problems remain" in repaired.stdout
    assert run_pyblob("fsck").returncode == 0


def test_snapshot_restores_as_the_readme_says(run_pyblob: RunPyblob, data_dir: Path, tmp_path: Path) -> None:
    fill(data_dir).close()
    snap = tmp_path / "backup" / "meta"
    result = run_pyblob("snapshot", str(snap))
    assert result.returncode == 0, result.stderr

    restored = tmp_path / "restored"
    shutil.copytree(snap, restored / "meta")
    shutil.copytree(data_dir / "chunks", restored / "chunks")
    store = Store(restored)
    try:
        assert b"".join(store.read_object(store.head_object("photos", "cat.jpg"))) == BIG
    finally:
        store.close()

    again = run_pyblob("snapshot", str(snap))
    assert again.returncode == 2
    assert "Traceback" not in again.stderr
