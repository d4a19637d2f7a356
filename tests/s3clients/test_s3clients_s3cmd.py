"""s3cmd against `pyblob serve`, signing with SigV4 and with `signature_v2 = True` (the `s3cmd` fixture).

mb, put, get, ls, del and sync; files under 15 MiB, s3cmd's multipart threshold.
"""

from __future__ import annotations

from pathlib import Path

from botocore.client import BaseClient
from s3clients_helpers import TREE, S3cmd, digests, make_tree, random_file, sha256


def listed(s3cmd: S3cmd, url: str) -> dict[str, int]:
    """s3:// URL -> size from `s3cmd ls --recursive` (columns: date, time, size, URL with its spaces)."""
    lines = s3cmd("ls", "--recursive", url).stdout.splitlines()
    return {name: int(size) for _, _, size, name in (line.split(maxsplit=3) for line in lines)}


def uploads(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("upload:")]


def test_mb_put_ls_get_del(s3cmd: S3cmd, s3: BaseClient, bucket_name: str, tmp_path: Path) -> None:
    base = f"s3://{bucket_name}"
    assert f"Bucket '{base}/' created" in s3cmd("mb", base).stdout
    source = random_file(tmp_path / "source.bin", 3 << 20)
    small = random_file(tmp_path / "small.txt", 10)
    s3cmd("put", str(source), f"{base}/dir/é ü+&=.bin")
    s3cmd("put", str(small), f"{base}/dir/")

    assert listed(s3cmd, base) == {f"{base}/dir/small.txt": 10, f"{base}/dir/é ü+&=.bin": 3 << 20}
    debug = s3cmd("--debug", "ls", f"{base}/dir/").stderr
    assert ("'Authorization': 'AWS " if s3cmd.signature_v2 else "'Authorization': 'AWS4-HMAC-SHA256 ") in debug
    back = tmp_path / "back.bin"
    s3cmd("get", f"{base}/dir/é ü+&=.bin", str(back))
    assert sha256(back) == sha256(source)

    deleted = s3cmd("del", f"{base}/dir/é ü+&=.bin")
    assert f"delete: '{base}/dir/é ü+&=.bin'" in deleted.stdout
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket_name)["Contents"]] == ["dir/small.txt"]


def test_sync_up_twice_and_down(s3cmd: S3cmd, bucket_name: str, tmp_path: Path) -> None:
    base = f"s3://{bucket_name}"
    s3cmd("mb", base)
    local = tmp_path / "tree"
    expected = make_tree(local)

    first = s3cmd("sync", f"{local}/", f"{base}/tree/")
    assert len(uploads(first.stdout)) == len(TREE), first.stdout
    assert listed(s3cmd, f"{base}/tree/") == {f"{base}/tree/{rel}": size for rel, size in TREE.items()}
    again = s3cmd("sync", f"{local}/", f"{base}/tree/")
    assert uploads(again.stdout) == [], again.stdout

    back = tmp_path / "back"
    s3cmd("sync", f"{base}/tree/", f"{back}/")
    assert digests(back) == expected
