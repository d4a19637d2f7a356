"""The storage engine's dedup goal through the S3 API: the same 64 MiB uploaded by a single PUT, in
5 MiB parts and in 8 MiB parts takes little more than one copy on disk once GC has run."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from processes import RunPyblob, StartServer

SIZE = 64 * 1024 * 1024
KEY_ID, SECRET = "DEDUPTESTKEY", "dedup/secret+key="


def _disk(data_dir: Path) -> int:
    return sum(f.stat().st_size for f in (data_dir / "chunks").rglob("*") if f.is_file())


def test_single_put_and_both_part_sizes_share_one_copy(
    start_server: StartServer, run_pyblob: RunPyblob, data_dir: Path, tmp_path: Path
) -> None:
    env = {"PYBLOB_ADMIN_ACCESS_KEY": KEY_ID, "PYBLOB_ADMIN_SECRET_KEY": SECRET, "PYBLOB_GC_GRACE_SECONDS": "0"}
    server = start_server(env=env)
    s3 = boto3.session.Session().client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )
    data = os.urandom(SIZE)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    s3.create_bucket(Bucket="dedup")
    s3.put_object(Bucket="dedup", Key="single", Body=data)
    one_copy = _disk(data_dir)
    for part_mib in (5, 8):
        chunk = part_mib * 1024 * 1024
        s3.upload_file(
            str(source),
            "dedup",
            f"parts-{part_mib}",
            Config=TransferConfig(multipart_threshold=chunk, multipart_chunksize=chunk),
        )
        assert s3.head_object(Bucket="dedup", Key=f"parts-{part_mib}")["ETag"].endswith(f'-{-(-SIZE // chunk)}"')
    before_gc = _disk(data_dir)
    assert run_pyblob("gc", env=env).returncode == 0
    after_gc = _disk(data_dir)
    print(
        f"one copy {one_copy} bytes; three layouts {before_gc} before gc, "
        f"{after_gc} after ({after_gc / one_copy:.4f} x)"
    )
    assert one_copy >= SIZE
    assert after_gc <= 1.01 * one_copy  # the parts' boundary chunks were re-cut into the single-PUT chunks
    for key in ("single", "parts-5", "parts-8"):
        body = s3.get_object(Bucket="dedup", Key=key)["Body"].read()
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert run_pyblob("fsck", env=env).returncode == 0
