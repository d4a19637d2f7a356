"""The volatile store (`LmdbVolatileStore`): nothing in it must survive a crash, so it never stops a start."""

from __future__ import annotations

from pathlib import Path

import pytest

from objstore.meta.lmdb import LmdbVolatileStore
from objstore.reservations import TABLE


def put_row(path: Path) -> None:
    s = LmdbVolatileStore(path, (TABLE,))
    s.transact(lambda w: w.put(TABLE, b"k", b"v"))
    s.close()


def has_row(path: Path) -> bool:
    s = LmdbVolatileStore(path, (TABLE,))
    try:
        return s.read(lambda r: r.get(TABLE, b"k")) is not None
    finally:
        s.close()


def test_rows_stay_within_one_boot(tmp_path: Path) -> None:
    put_row(tmp_path / "state")
    assert has_row(tmp_path / "state")


def test_a_new_boot_starts_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a power loss an unsynced environment may be torn: it is recreated, never read."""
    monkeypatch.setattr("objstore.meta.lmdb.boot_id", lambda: "first")
    put_row(tmp_path / "state")
    monkeypatch.setattr("objstore.meta.lmdb.boot_id", lambda: "second")
    assert not has_row(tmp_path / "state")


def test_an_unreadable_environment_is_recreated(tmp_path: Path) -> None:
    put_row(tmp_path / "state")
    (tmp_path / "state" / "data.mdb").write_bytes(b"\x00garbage" * 100)
    assert not has_row(tmp_path / "state")
    put_row(tmp_path / "state")
    assert has_row(tmp_path / "state")
