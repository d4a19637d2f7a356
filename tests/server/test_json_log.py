"""`PYBLOB_LOG_FORMAT=json`: one JSON object per request on standard error, carrying the id the
answer carried (`x-amz-request-id`, or `request_id` in a REST error body), so a user's complaint can
be found in the log. A real server, driven by boto3 and httpx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from processes import Server, StartServer, isolate_from_aws, user_s3_client

BUCKET = "logged"


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


@pytest.fixture
def server(start_server: StartServer, alice: dict[str, str]) -> Server:
    return start_server(env={"PYBLOB_LOG_FORMAT": "json"})


@pytest.fixture
def s3(server: Server, alice: dict[str, str]) -> Iterator[BaseClient]:
    client = user_s3_client(server.url, alice)
    yield client
    client.close()


def log_lines(server: Server) -> list[dict[str, Any]]:
    server.stop()  # flushes the log
    lines = [line for line in server.stderr.splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]


def test_each_s3_request_is_one_json_line_with_its_request_id(
    server: Server, s3: BaseClient, alice: dict[str, str]
) -> None:
    s3.create_bucket(Bucket=BUCKET)
    body = b"x" * 100_000  # above 64 KiB: sent from its chunk file, counted all the same
    put = s3.put_object(Bucket=BUCKET, Key="dir/file.bin", Body=body)
    got = s3.get_object(Bucket=BUCKET, Key="dir/file.bin")
    assert got["Body"].read() == body
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=BUCKET, Key="nothing-here")
    missing_id = missing.value.response["ResponseMetadata"]["RequestId"]
    lines = {line["request_id"]: line for line in log_lines(server)}

    put_line = lines[put["ResponseMetadata"]["RequestId"]]
    assert put_line["operation"] == "PutObject" and put_line["status"] == 200 and put_line["surface"] == "s3"
    assert (put_line["bucket"], put_line["key"]) == (BUCKET, "dir/file.bin")
    assert (put_line["user"], put_line["access_key"]) == ("alice", alice["access_key"])
    assert put_line["bytes_in"] >= len(body) and put_line["bytes_out"] == 0  # aws-chunked framing adds some
    get_line = lines[got["ResponseMetadata"]["RequestId"]]
    assert (get_line["operation"], get_line["status"], get_line["bytes_out"]) == ("GetObject", 200, len(body))
    assert get_line["method"] == "GET" and get_line["path"] == f"/{BUCKET}/dir/file.bin"
    assert get_line["client"] == "127.0.0.1" and get_line["time"].endswith("Z") and get_line["duration_ms"] >= 0
    error_line = lines[missing_id]
    assert (error_line["operation"], error_line["status"], error_line["key"]) == ("GetObject", 404, "nothing-here")
    assert error_line["bytes_out"] > 0 and error_line["error"] == "NoSuchKey"


def test_a_rest_error_body_names_the_log_line_of_its_request(server: Server, alice: dict[str, str]) -> None:
    auth = {"authorization": f"Bearer {alice['token']}"}
    missing = httpx.get(f"{server.url}/api/links/nosuchlinkid", headers=auth)
    assert missing.status_code == 404
    request_id = missing.json()["request_id"]
    refused = httpx.get(f"{server.url}/api/links", headers={"authorization": "Bearer wrong"})
    assert refused.status_code == 401
    health = httpx.get(f"{server.url}/health")
    assert health.status_code == 200
    lines = log_lines(server)
    line = next(line for line in lines if line["request_id"] == request_id)
    assert (line["surface"], line["user"], line["status"], line["operation"]) == ("rest", "alice", 404, None)
    assert line["error"] == "NoSuchLink"
    refused_line = next(line for line in lines if line["request_id"] == refused.json()["request_id"])
    assert (refused_line["status"], refused_line["user"]) == (401, None)
    assert {line["surface"] for line in lines if line["path"] == "/health"} == {"web"}  # the start polls it too
    assert len({line["request_id"] for line in lines}) == len(lines)  # every line has an id of its own


def test_presigned_credentials_stay_out_of_json_lines(server: Server, s3: BaseClient) -> None:
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"v")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "k"})
    assert httpx.get(url).status_code == 200
    signature = url.rsplit("X-Amz-Signature=", 1)[1]
    lines = log_lines(server)
    presigned = [line for line in lines if "X-Amz-Signature=REDACTED" in line["path"]]
    assert len(presigned) == 1 and presigned[0]["access_key"] is not None
    assert signature not in json.dumps(lines)
