"""`pyblob scrub` as a real process beside a running `pyblob serve`: a byte flipped in a chunk file is
found, the chunk quarantined, its object named, and boto3's GET of that object refused with a clear
error instead of wrong bytes; and the server's own background scrub does the same on its schedule."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from processes import RunPyblob, StartServer, isolate_from_aws, user_s3_client

CAT = random.Random(1).randbytes(1_500_000)  # a few chunks of the default 128 KiB..2 MiB
DOG = random.Random(2).randbytes(600_000)


@pytest.fixture(autouse=True)
def no_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


def chunk_files(data_dir: Path) -> set[Path]:
    return {p for p in (data_dir / "chunks").rglob("*") if p.is_file()}


def s3(url: str, creds: dict[str, str]) -> BaseClient:
    """boto3 as `user_s3_client` makes it, without retries: the test sees the server's first answer."""
    return user_s3_client(url, creds, attempts=1)


def flip_a_byte(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))
    return bytes(data)


def fill(client: BaseClient, data_dir: Path) -> Path:
    """cat.jpg and dog.jpg in bucket photos; one of cat.jpg's chunk files (dog.jpg has its own)."""
    client.create_bucket(Bucket="photos")
    client.put_object(Bucket="photos", Key="cat.jpg", Body=CAT)
    cats = chunk_files(data_dir)
    client.put_object(Bucket="photos", Key="dog.jpg", Body=DOG)
    assert len(cats) >= 2 and chunk_files(data_dir) > cats
    return sorted(cats)[0]


def get(client: BaseClient, key: str) -> bytes:
    body: bytes = client.get_object(Bucket="photos", Key=key)["Body"].read()
    return body


def test_a_clean_store_scrubs_clean(
    start_server: StartServer, run_pyblob: RunPyblob, alice: dict[str, str], data_dir: Path
) -> None:
    server = start_server()
    fill(s3(server.url, alice), data_dir)
    result = run_pyblob("scrub", "--rate", "unlimited")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "quarantined: 0" in result.stdout.replace("  ", " ") and "finished" in result.stdout
    report = json.loads(run_pyblob("scrub", "--json").stdout)
    assert report["ok"] and report["finished"] and report["chunks_checked"] == len(chunk_files(data_dir))
    assert report["rate_limit"] == 10 * 1024 * 1024  # PYBLOB_SCRUB_RATE's default


def test_a_flipped_byte_is_found_quarantined_named_and_never_served(
    start_server: StartServer, run_pyblob: RunPyblob, alice: dict[str, str], data_dir: Path
) -> None:
    server = start_server()
    client = s3(server.url, alice)
    victim = fill(client, data_dir)
    changed = flip_a_byte(victim)

    result = run_pyblob("scrub", "--rate", "unlimited")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"chunk {victim.name}" in result.stdout and "corrupt, quarantined" in result.stdout
    assert "  photos/cat.jpg (version null)" in result.stdout and "dog.jpg" not in result.stdout
    assert not victim.exists() and (data_dir / "quarantine" / victim.name).read_bytes() == changed

    with pytest.raises(ClientError) as refused:
        get(client, "cat.jpg")
    error = refused.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert error["Error"]["Code"] == "ServiceUnavailable"
    assert victim.name in error["Error"]["Message"] and "damaged" in error["Error"]["Message"]
    with pytest.raises(ClientError) as small:  # a small range is read before the answer, not sent from the file
        client.get_object(Bucket="photos", Key="cat.jpg", Range="bytes=0-99")
    assert small.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert get(client, "dog.jpg") == DOG  # objects that do not need the chunk are served

    report = json.loads(run_pyblob("scrub", "--json").stdout)  # a later run still names it
    assert [q["chunk"] for q in report["quarantined"]] == [victim.name]
    assert report["quarantined"][0]["objects"] == [
        {"bucket": "photos", "key": "cat.jpg", "version_id": "null", "upload_id": None, "part_number": None}
    ]

    client.put_object(Bucket="photos", Key="cat-again.jpg", Body=CAT)  # the same bytes heal the chunk
    assert get(client, "cat.jpg") == CAT
    healed = run_pyblob("scrub")
    assert healed.returncode == 0, healed.stdout


def test_the_server_scrubs_in_the_background(
    start_server: StartServer, run_pyblob: RunPyblob, alice: dict[str, str], data_dir: Path
) -> None:
    server = start_server(env={"PYBLOB_SCRUB_INTERVAL_SECONDS": "1", "PYBLOB_SCRUB_RATE": "0"})
    client = s3(server.url, alice)
    victim = fill(client, data_dir)
    flip_a_byte(victim)
    deadline = time.monotonic() + 30
    while victim.exists():
        assert time.monotonic() < deadline, f"no background scrub quarantined the chunk:\n{server.stderr}"
        time.sleep(0.2)
    with pytest.raises(ClientError) as refused:
        get(client, "cat.jpg")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    stats = json.loads(run_pyblob("stats", "--json").stdout)
    assert stats["maintenance"]["scrub"]["last_findings"]["quarantined"] == 1
    assert "scrub: 1 corrupt" in server.stderr
