"""`pyblob stats` as a real process on a data dir filled through the engine."""

from __future__ import annotations

import json
from pathlib import Path

from processes import RunPyblob

from objstore import Store

BIG = bytes(range(256)) * 4096  # 1 MiB: chunk files, shared by the copies


def fill(data_dir: Path) -> None:
    with Store(data_dir) as store:
        for user, bucket in (("kim", "photos"), ("lee", "backups")):
            store.accounts.create_user(user)
            store.create_bucket(user, bucket)
        store.put_object("photos", "a.bin", BIG)
        store.put_object("photos", "b.bin", BIG)  # the same bytes again
        store.put_object("backups", "c.bin", BIG)
        store.put_object("backups", "note.txt", b"tiny")
        popular = store.links.create("kim", "photos", "a.bin")
        quiet = store.links.create("lee", "backups", "c.bin")
        for _ in range(3):
            store.links.count_download(popular.id, len(BIG))
        store.links.count_download(quiet.id, 10)


def test_stats_as_json_count_everything(run_pyblob: RunPyblob, data_dir: Path) -> None:
    fill(data_dir)
    result = run_pyblob("stats", "--json", "--top", "1")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["users"], report["objects"], report["links"]) == (2, 4, 2)
    assert report["logical_bytes"] == 3 * len(BIG) + 4
    assert report["physical_bytes"] == len(BIG)  # three copies, stored once; "tiny" lives inline
    assert report["dedup_ratio"] >= 3.0 and report["saved_bytes"] == 2 * len(BIG) + 4
    assert [u["user"] for u in report["per_user"]] == ["kim", "lee"]  # most used first
    assert report["per_user"][1] == {"user": "lee", "bytes": len(BIG) + 4, "objects": 2, "quota": None}
    assert report["maintenance"] == {}  # no gc or fsck yet
    [top] = report["top_links"]
    assert (top["owner"], top["key"], top["downloads"], top["bytes_served"]) == ("kim", "a.bin", 3, 3 * len(BIG))


def test_stats_as_a_table(run_pyblob: RunPyblob, data_dir: Path) -> None:
    fill(data_dir)
    result = run_pyblob("stats")
    assert result.returncode == 0, result.stderr
    assert "dedup:" in result.stdout and "3.00x" in result.stdout
    lines = result.stdout.splitlines()
    assert any(line.startswith("kim ") and "2.0 MiB" in line for line in lines)
    assert any(line.startswith("on disk:") and "1.0 MiB in 1 chunks" in line for line in lines)
    assert any("photos/a.bin" in line and " 3 " in line for line in lines)


def test_stats_show_the_last_gc_and_fsck(run_pyblob: RunPyblob, data_dir: Path) -> None:
    fill(data_dir)
    assert run_pyblob("gc").returncode == 0 and run_pyblob("fsck").returncode == 0
    report = json.loads(run_pyblob("stats", "--json").stdout)
    assert set(report["maintenance"]) == {"gc", "fsck"}
    assert (
        report["maintenance"]["fsck"]["runs"] == 1 and report["maintenance"]["fsck"]["last_findings"]["problems"] == 0
    )
    assert "fsck: 1 runs" in run_pyblob("stats").stdout
