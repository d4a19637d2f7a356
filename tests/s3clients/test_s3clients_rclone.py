"""rclone (S3 provider "Other", default upload cutoff) against `pyblob serve`.

copy, sync, lsjson, check (MD5), delete and purge; files stay under 5 MiB, below every multipart
threshold. rclone logs to stderr; `-v` makes it name each file it copies or deletes.
"""

from __future__ import annotations

import json
from pathlib import Path

from botocore.client import BaseClient
from s3clients_helpers import TREE, Rclone, digests, make_tree, md5s


def lsjson(rclone: Rclone, path: str) -> dict[str, dict[str, object]]:
    """Path -> entry for every file under `path`, with its MD5 as the server reports it."""
    out = rclone("lsjson", "--recursive", "--files-only", "--hash", f"{rclone.remote}:{path}").stdout
    return {entry["Path"]: entry for entry in json.loads(out)}


def logged(stderr: str, what: str) -> list[str]:
    return [line for line in stderr.splitlines() if what in line]


def test_copy_lsjson_check_md5_and_copy_back(rclone: Rclone, bucket_name: str, tmp_path: Path) -> None:
    local = tmp_path / "tree"
    expected = make_tree(local)
    rclone("mkdir", f"{rclone.remote}:{bucket_name}")
    copied = rclone("copy", "-v", str(local), f"{rclone.remote}:{bucket_name}/copy")
    assert len(logged(copied.stderr, "Copied (new)")) == len(TREE), copied.stderr

    listing = lsjson(rclone, f"{bucket_name}/copy")
    assert {path: entry["Size"] for path, entry in listing.items()} == TREE
    assert {path: entry["Hashes"] for path, entry in listing.items()} == {p: {"md5": h} for p, h in md5s(local).items()}

    checked = rclone("check", str(local), f"{rclone.remote}:{bucket_name}/copy")
    assert "0 differences found" in checked.stderr and f"{len(TREE)} matching files" in checked.stderr, checked.stderr
    assert "hashes could not be checked" not in checked.stderr, checked.stderr

    back = tmp_path / "back"
    rclone("copy", f"{rclone.remote}:{bucket_name}/copy", str(back))
    assert digests(back) == expected

    # Same size, one byte changed: only the MD5 tells them apart.
    changed = local / "nested/big.bin"
    data = bytearray(changed.read_bytes())
    data[12345] ^= 0xFF
    changed.write_bytes(bytes(data))
    differs = rclone("check", str(local), f"{rclone.remote}:{bucket_name}/copy", check=False)
    assert differs.returncode != 0 and "1 differences found" in differs.stderr, differs.stderr


def test_sync_twice_then_delete_and_purge(rclone: Rclone, s3: BaseClient, bucket_name: str, tmp_path: Path) -> None:
    local = tmp_path / "tree"
    expected = make_tree(local)
    target = f"{rclone.remote}:{bucket_name}/sync"
    rclone("mkdir", f"{rclone.remote}:{bucket_name}")

    first = rclone("sync", "-v", "--stats-one-line", str(local), target)
    assert len(logged(first.stderr, "Copied (new)")) == len(TREE), first.stderr
    again = rclone("sync", "-v", "--stats-one-line", str(local), target)
    assert "There was nothing to transfer" in again.stderr, again.stderr
    assert not logged(again.stderr, "Copied"), again.stderr

    (local / "top.txt").unlink()
    pruned = rclone("sync", "-v", str(local), target)
    assert [line.split("INFO  : ")[-1] for line in logged(pruned.stderr, ": Deleted")] == ["top.txt: Deleted"]
    back = tmp_path / "back"
    rclone("sync", target, str(back))
    assert digests(back) == {k: v for k, v in expected.items() if k != "top.txt"}

    rclone("delete", "--include", "*.txt", target)
    assert sorted(lsjson(rclone, f"{bucket_name}/sync")) == sorted(p for p in TREE if not p.endswith(".txt"))

    rclone("purge", f"{rclone.remote}:{bucket_name}")
    assert bucket_name not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
