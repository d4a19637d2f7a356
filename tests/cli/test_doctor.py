"""`pyblob doctor` as a real process against a real server: straight, and behind each of two
misconfigured proxies (tests/proxies.py) whose problem it must name."""

from __future__ import annotations

import subprocess

from processes import RunPyblob, Server, StartServer, user_s3_client
from proxies import proxy


def doctor(run_pyblob: RunPyblob, endpoint: str, creds: dict[str, str] | None) -> subprocess.CompletedProcess[str]:
    args = ["doctor", "--endpoint", endpoint]
    if creds:
        args += ["--access-key", creds["access_key"], "--secret-key", creds["secret_key"], "--token", creds["token"]]
    return run_pyblob(*args, with_data_dir=False)


def test_a_healthy_server_passes_and_is_left_as_it_was(
    start_server: StartServer, run_pyblob: RunPyblob, alice: dict[str, str]
) -> None:
    server: Server = start_server()
    result = doctor(run_pyblob, server.url, alice)
    assert result.returncode == 0, result.stdout + result.stderr
    for check in ("reachable", "clock", "sigv4", "path-style", "presigned url", "aws-chunked upload"):
        assert f"PASS  {check}:" in result.stdout, result.stdout
    for check in ("multipart upload", "cors preflight", "short link"):
        assert f"PASS  {check}:" in result.stdout, result.stdout
    assert "SKIP  virtual-hosted:" in result.stdout and "0 failed" in result.stdout
    buckets = user_s3_client(server.url, alice).list_buckets()["Buckets"]
    assert not [b for b in buckets if b["Name"].startswith("pyblob-doctor-")]  # cleaned up


def test_without_credentials_the_s3_checks_are_skipped(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    server = start_server()
    result = doctor(run_pyblob, server.url, None)
    assert result.returncode == 0, result.stdout
    assert "PASS  reachable:" in result.stdout and "SKIP  sigv4: no --access-key" in result.stdout


def test_a_proxy_that_rewrites_host_is_named(
    start_server: StartServer, run_pyblob: RunPyblob, alice: dict[str, str]
) -> None:
    server = start_server()
    with proxy(server.url, rewrite_host=True) as url:
        result = doctor(run_pyblob, url, alice)
    assert result.returncode == 1
    assert "FAIL  sigv4: CreateBucket: the server saw Host" in result.stdout, result.stdout
    assert "proxy_set_header Host $http_host" in result.stdout


def test_a_proxy_that_limits_bodies_is_named(
    start_server: StartServer, run_pyblob: RunPyblob, alice: dict[str, str]
) -> None:
    server = start_server()
    with proxy(server.url, max_body=1024 * 1024) as url:
        result = doctor(run_pyblob, url, alice)
    assert result.returncode == 1
    assert "PASS  sigv4:" in result.stdout and "PASS  aws-chunked upload:" in result.stdout  # small bodies pass
    assert "FAIL  multipart upload: UploadPart of 8 MiB: nginx refused the body with 413" in result.stdout, (
        result.stdout
    )
    assert "client_max_body_size 0" in result.stdout
    buckets = user_s3_client(server.url, alice).list_buckets()["Buckets"]
    assert not [b for b in buckets if b["Name"].startswith("pyblob-doctor-")]
