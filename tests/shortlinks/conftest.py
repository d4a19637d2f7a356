"""End-to-end fixtures for short links: one `pyblob serve`, users alice and bob, alice's boto3 client.

No AWS_* variable of the machine reaches boto3 (AWS_CA_BUNDLE, AWS_PROFILE, ~/.aws/config would
change what it sends); config and credential files point nowhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from processes import RunPyblob, Server, StartServer, isolate_from_aws
from shortlinks_site import BUCKET, Site

# These tests fire hundreds of requests from one address (concurrent downloads, two workers): the
# per-address and per-user limits stay off here; tests/server/test_rate_limits.py tests them.
NO_RATE_LIMITS = {
    f"PYBLOB_RATELIMIT_{name}_RATE": "0" for name in ("LINKS_IP", "REST_IP", "REST_USER", "S3_IP", "S3_KEY")
}


@pytest.fixture
def start_server(start_server: StartServer) -> StartServer:
    """`start_server` of tests/conftest.py, without rate limits unless a test sets them."""

    def start(*args: str, env: dict[str, str] | None = None) -> Server:
        return start_server(*args, env={**NO_RATE_LIMITS, **(env or {})})

    return start


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


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
