"""End-to-end fixtures for short links: one `pyblob serve`, users alice and bob, alice's boto3 client.

No AWS_* variable of the machine reaches boto3 (AWS_CA_BUNDLE, AWS_PROFILE, ~/.aws/config would
change what it sends); config and credential files point nowhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from processes import RunPyblob, StartServer
from shortlinks_site import BUCKET, Site


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent" / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent" / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def add_user(run_pyblob: RunPyblob, name: str) -> dict[str, str]:
    result = run_pyblob("user", "add", name, "--json")
    assert result.returncode == 0, result.stderr
    creds: dict[str, str] = json.loads(result.stdout)
    return creds


@pytest.fixture
def site(run_pyblob: RunPyblob, start_server: StartServer) -> Iterator[Site]:
    alice, bob = add_user(run_pyblob, "alice"), add_user(run_pyblob, "bob")
    server = start_server()
    s3 = boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=alice["access_key"],
        aws_secret_access_key=alice["secret_key"],
        config=Config(s3={"addressing_style": "path"}),
    )
    s3.create_bucket(Bucket=BUCKET)
    yield Site(server.url, {"alice": alice["token"], "bob": bob["token"]}, s3)
    s3.close()
