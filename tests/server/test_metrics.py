"""`/metrics` (PYBLOB_METRICS_TOKEN): scraped from a real two-worker server after boto3 and httpx
traffic, the figures must be what the test did, whichever worker answers the scrape."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError
from processes import RunPyblob, Server, StartServer, isolate_from_aws, user_s3_client
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "scrape-token-for-the-test-0001"
BUCKET = "measured"
MiB = 1024 * 1024

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


def scrape(server: Server, token: str = TOKEN) -> httpx.Response:
    return httpx.get(f"{server.url}/metrics", headers={"authorization": f"Bearer {token}"})


def samples(server: Server) -> Samples:
    response = scrape(server)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_without_the_setting_there_is_nothing_to_scrape(start_server: StartServer) -> None:
    server = start_server()
    assert scrape(server).status_code == 404
    anonymous = httpx.get(f"{server.url}/metrics")  # S3's, as before: a bucket named metrics
    assert anonymous.status_code == 404 and b"<Code>NoSuchBucket</Code>" in anonymous.content


def test_a_wrong_or_missing_token_gets_a_404(start_server: StartServer) -> None:
    server = start_server(env={"PYBLOB_METRICS_TOKEN": TOKEN})
    assert scrape(server, "not-the-token").status_code == 404
    assert httpx.get(f"{server.url}/metrics").status_code == 404
    assert scrape(server).status_code == 200


def test_scrapes_count_what_happened_across_two_workers(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    made = run_pyblob("user", "add", "alice", "--quota", "3MiB", "--json")
    assert made.returncode == 0, made.stderr
    alice = json.loads(made.stdout)
    server = start_server("--workers", "2", env={"PYBLOB_METRICS_TOKEN": TOKEN})
    s3 = user_s3_client(server.url, alice)
    s3.create_bucket(Bucket=BUCKET)
    body = bytes(range(256)) * 4096  # 1 MiB: chunk files, so the copy below shares them
    for key in ("one", "two"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    for _ in range(5):
        assert s3.get_object(Bucket=BUCKET, Key="one")["Body"].read() == body
    with pytest.raises(ClientError):
        s3.get_object(Bucket=BUCKET, Key="absent")
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=BUCKET, Key="three", Body=body + body)  # past the 3 MiB quota
    assert refused.value.response["Error"]["Code"] == "QuotaExceeded"
    made_link = httpx.post(
        f"{server.url}/api/links",
        json={"bucket": BUCKET, "key": "one"},
        headers={"authorization": f"Bearer {alice['token']}"},
    )
    assert made_link.status_code == 201, made_link.text

    scrapes = [samples(server) for _ in range(6)]  # new connections: both workers answer some
    for found in scrapes:
        assert value(found, "pyblob_requests_total", surface="s3", operation="PutObject", status="200") == 2
        assert value(found, "pyblob_requests_total", surface="s3", operation="GetObject", status="200") == 5
        assert value(found, "pyblob_requests_total", surface="s3", operation="GetObject", status="404") == 1
        assert value(found, "pyblob_requests_total", surface="s3", operation="PutObject", status="403") == 1
        assert value(found, "pyblob_requests_total", surface="rest", operation="POST /api", status="201") == 1
        assert value(found, "pyblob_refusals_total", reason="quota") == 1
        assert value(found, "pyblob_request_duration_seconds_count", surface="s3", operation="GetObject") == 6
        assert value(found, "pyblob_sent_bytes_total", surface="s3") >= 5 * len(body)
        assert value(found, "pyblob_received_bytes_total", surface="s3") >= 2 * len(body)
        assert value(found, "pyblob_objects") == 2 and value(found, "pyblob_logical_bytes") == 2 * len(body)
        assert value(found, "pyblob_users") == 1 and value(found, "pyblob_links") == 1  # alice (no admin made)
        assert value(found, "pyblob_physical_bytes") <= len(body)  # the two copies share their chunks
        assert value(found, "pyblob_dedup_ratio") >= 2.0
        assert value(found, "pyblob_open_connections") >= 1  # the scrape's own
        assert value(found, "pyblob_requests_in_flight") == 0  # a scrape is not one of them
    # Scrapes are counted too, on a surface of their own: each later one has seen at least as many.
    scraped = [
        value(f, "pyblob_requests_total", surface="web", operation="GET /metrics", status="200") for f in scrapes
    ]
    assert scraped == sorted(scraped) and scraped[-1] >= 1


def test_background_sweeps_and_what_they_found_are_counted(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    made = run_pyblob("user", "add", "alice", "--json")
    alice = json.loads(made.stdout)
    env = {"PYBLOB_METRICS_TOKEN": TOKEN, "PYBLOB_LINK_SWEEP_INTERVAL_SECONDS": "1"}
    server = start_server(env=env)
    s3 = user_s3_client(server.url, alice)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="brief", Body=b"gone soon")
    made_link = httpx.post(
        f"{server.url}/api/links",
        json={"bucket": BUCKET, "key": "brief", "expires_in": 1},
        headers={"authorization": f"Bearer {alice['token']}"},
    )
    assert made_link.status_code == 201, made_link.text
    deadline = time.monotonic() + 20
    while True:
        found = samples(server)
        expired = value(found, "pyblob_background_findings_total", job="link sweep", kind="links_expired")
        if expired or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert expired == 1
    assert value(found, "pyblob_background_runs_total", job="link sweep", outcome="ok") >= 1
    assert value(found, "pyblob_background_runs_total", job="link sweep", outcome="failed") == 0


def test_gc_and_fsck_beside_the_server_show_in_its_metrics(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    server = start_server(env={"PYBLOB_METRICS_TOKEN": TOKEN})
    for command in ("gc", "fsck", "gc"):
        done = run_pyblob(command)
        assert done.returncode == 0, done.stdout + done.stderr
    found = samples(server)
    assert value(found, "pyblob_maintenance_runs_total", job="gc") == 2
    assert value(found, "pyblob_maintenance_runs_total", job="fsck") == 1
    assert value(found, "pyblob_maintenance_last_findings", job="fsck", kind="problems") == 0
    assert value(found, "pyblob_maintenance_last_run_timestamp_seconds", job="gc") > time.time() - 300
