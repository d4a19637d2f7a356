"""Secrets at rest: S3 secret keys sealed with a key kept outside the data dir, API tokens kept as
hashes, and a data dir that only its owner can read.

Each test runs the real `pyblob` commands and `pyblob serve`, and reads the data dir's files as an
attacker holding a copy of them would: byte for byte.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from processes import RunPyblob, StartServer, isolate_from_aws, user_s3_client


@pytest.fixture(autouse=True)
def _no_machine_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


@pytest.fixture
def sealing(tmp_path: Path) -> dict[str, str]:
    """The environment naming a fresh sealing key, in a file outside the data dir."""
    key_file = tmp_path / "keys" / "sealing.key"
    key_file.parent.mkdir()
    key_file.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    return {"PYBLOB_SEALING_KEY_FILE": str(key_file)}


def add_user(run_pyblob: RunPyblob, name: str, env: dict[str, str] | None = None) -> dict[str, str]:
    made = run_pyblob("user", "add", name, "--json", env=env)
    assert made.returncode == 0, made.stderr
    creds: dict[str, str] = json.loads(made.stdout)
    return creds


def files_holding(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_sealed_secrets_authenticate_and_are_nowhere_in_the_data_dir(
    start_server: StartServer, run_pyblob: RunPyblob, data_dir: Path, sealing: dict[str, str]
) -> None:
    alice = add_user(run_pyblob, "alice", sealing)
    server = start_server(env=sealing)
    s3 = user_s3_client(server.url, alice)
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k", Body=b"sealed")
    assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == b"sealed"
    key = add_user(run_pyblob, "bob", sealing)  # made while the server runs: authenticates at once
    assert user_s3_client(server.url, key).list_buckets()["Buckets"] == []

    assert files_holding(data_dir, alice["access_key"])  # the rows are there...
    for secret in (alice["secret_key"], key["secret_key"], alice["token"], key["token"]):
        assert files_holding(data_dir, secret) == []  # ...the secrets and tokens are not


def test_a_store_sealed_with_a_key_does_not_open_without_it_or_with_another(
    run_pyblob: RunPyblob, start_server: StartServer, sealing: dict[str, str]
) -> None:
    add_user(run_pyblob, "alice", sealing)
    without = run_pyblob("user", "list")
    assert without.returncode == 2
    assert "are sealed" in without.stderr and "PYBLOB_SEALING_KEY" in without.stderr
    other = {"PYBLOB_SEALING_KEY": base64.b64encode(os.urandom(32)).decode()}
    wrong = run_pyblob("user", "list", env=other)
    assert wrong.returncode == 2 and "sealed with another sealing key" in wrong.stderr
    with pytest.raises(AssertionError, match="are sealed"):  # the server refuses to start, saying why
        start_server()


def test_setting_a_key_seals_the_secrets_already_stored(
    start_server: StartServer, run_pyblob: RunPyblob, sealing: dict[str, str]
) -> None:
    alice = add_user(run_pyblob, "alice")  # before any sealing key
    listed = run_pyblob("key", "list", "alice", "--json", env=sealing)  # opening with the key seals
    assert listed.returncode == 0, listed.stderr
    assert run_pyblob("user", "list").returncode == 2  # sealed now: the key is needed from here on
    server = start_server(env=sealing)
    assert user_s3_client(server.url, alice).list_buckets()["Buckets"] == []


@pytest.mark.parametrize(
    ("value", "message"),
    [("not base64!", "not base64"), (base64.b64encode(b"short").decode(), "it must be 32")],
)
def test_a_malformed_key_is_refused_by_name(run_pyblob: RunPyblob, value: str, message: str) -> None:
    result = run_pyblob("user", "list", env={"PYBLOB_SEALING_KEY": value})
    assert result.returncode == 2 and "PYBLOB_SEALING_KEY" in result.stderr and message in result.stderr


def test_a_key_file_inside_the_data_dir_is_refused(run_pyblob: RunPyblob, data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    inside = data_dir / "sealing.key"
    inside.write_text(base64.b64encode(os.urandom(32)).decode())
    result = run_pyblob("user", "list", env={"PYBLOB_SEALING_KEY_FILE": str(inside)})
    assert result.returncode == 2 and "inside the data dir" in result.stderr


def test_everything_in_the_data_dir_is_the_owner_s_alone(
    start_server: StartServer, run_pyblob: RunPyblob, data_dir: Path
) -> None:
    alice = add_user(run_pyblob, "alice")
    server = start_server()
    s3 = user_s3_client(server.url, alice)
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="big", Body=os.urandom(3 * 1024 * 1024))  # chunk files
    s3.put_object(Bucket="bkt", Key="small", Body=b"inline")
    paths = [data_dir, *data_dir.rglob("*")]
    assert len(paths) > 10
    shared = [p for p in paths if stat.S_IMODE(p.lstat().st_mode) & 0o077]
    assert shared == []
