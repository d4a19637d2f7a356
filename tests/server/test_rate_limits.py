"""Rate limits against a real `pyblob serve`: 429 for short links and REST, 503 SlowDown for S3.

Each server gets tiny buckets through PYBLOB_RATELIMIT_* (a burst of a few requests, a refill too
slow to matter within the test unless the test waits for it), so the Nth request is refused
deterministically without sleeping.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import websockets.exceptions
import websockets.sync.client
from botocore.config import Config
from botocore.exceptions import ClientError
from processes import RunPyblob, Server, StartServer, isolate_from_aws

from pyblob.ratelimits import client_address
from pyblob.routes import RESERVED_PATHS, surface_of

SLOW = "0.001"  # tokens per second: nothing refills during a test


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


def limits(**values: str) -> dict[str, str]:
    """`links_ip_rate="1"` -> `PYBLOB_RATELIMIT_LINKS_IP_RATE=1`; `trusted_proxies` as it is."""
    return {("PYBLOB_" if k == "trusted_proxies" else "PYBLOB_RATELIMIT_") + k.upper(): v for k, v in values.items()}


def add_user(run_pyblob: RunPyblob, name: str) -> dict[str, str]:
    result = run_pyblob("user", "add", name, "--json")
    assert result.returncode == 0, result.stderr
    creds: dict[str, str] = json.loads(result.stdout)
    return creds


def s3_client(server: Server, creds: dict[str, str], **retries: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=creds["access_key"],
        aws_secret_access_key=creds["secret_key"],
        config=Config(s3={"addressing_style": "path"}, retries=retries or {"total_max_attempts": 1}),
    )


def statuses(url: str, n: int, **kwargs: Any) -> list[int]:
    return [httpx.get(url, **kwargs).status_code for _ in range(n)]


def assert_429(response: httpx.Response) -> None:
    assert response.status_code == 429
    assert re.fullmatch(
        r"rate limit exceeded \(the limit is PYBLOB_RATELIMIT_(LINKS|REST)_(IP|USER)_RATE\)", response.json()["detail"]
    )
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["cache-control"] == "no-store"


# the classification, without a server ------------------------------------------------------------
SURFACES = {
    "/s/AbCdEfGh": "links",
    "/s": "links",
    "/upload": "rest",
    "/upload_tus/abc": "rest",
    "/upload_socket": "rest",
    "/list": "rest",
    "/delete_all": "rest",
    "/user/me": "rest",
    "/auth": "rest",
    "/api/links/x": "rest",
    "/health": None,
    "/docs": None,
    "/openapi.json": None,
    "/": "s3",
    "/photos/cat.jpg": "s3",
    "/uploads/file": "s3",  # a bucket whose name starts like a REST path
    "/sx/key": "s3",
}


def test_surfaces_by_first_path_segment() -> None:
    assert {path: surface_of(path) for path in SURFACES} == SURFACES
    assert all(surface_of(f"/{segment}/x") != "s3" for segment in RESERVED_PATHS)  # none left to S3


def test_bucket_names_of_client_addresses() -> None:
    def name(host: str) -> str:
        return client_address({"client": (host, 1234)})

    assert name("198.51.100.7") == "198.51.100.7"
    assert name("::ffff:198.51.100.7") == "198.51.100.7"
    assert name("2001:db8:1:2:3:4:5:6") == name("2001:db8:1:2::9") == "2001:db8:1:2::/64"
    assert client_address({"client": None}) == "-"


# short links and REST ----------------------------------------------------------------------------
def test_short_links_burst_then_429(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    alice = add_user(run_pyblob, "alice")
    server = start_server(env=limits(links_ip_rate=SLOW, links_ip_burst="5"))
    s3 = s3_client(server, alice)
    s3.create_bucket(Bucket="files")
    s3.put_object(Bucket="files", Key="a.txt", Body=b"hello")
    auth = {"authorization": f"Bearer {alice['token']}"}
    link = httpx.post(f"{server.url}/api/links", json={"bucket": "files", "key": "a.txt"}, headers=auth).json()
    assert statuses(f"{server.url}/s/{link['id']}", 5) == [200] * 5
    assert_429(httpx.get(f"{server.url}/s/{link['id']}"))
    assert_429(httpx.get(f"{server.url}/s/nosuchlink"))  # the address's bucket, whatever the link
    assert httpx.get(f"{server.url}/api/links/{link['id']}", headers=auth).status_code == 200  # rest: its own
    assert s3.head_object(Bucket="files", Key="a.txt")["ContentLength"] == 5  # S3: its own
    assert statuses(f"{server.url}/health", 20) == [200] * 20  # never limited


def test_links_refill_at_the_rate(start_server: StartServer) -> None:
    server = start_server(env=limits(links_ip_rate="2", links_ip_burst="2"))
    with httpx.Client() as client:  # three requests well within the half second a token takes
        assert [client.get(f"{server.url}/s/nosuchlink").status_code for _ in range(3)] == [404, 404, 429]
        time.sleep(1.25)  # two and a half tokens back, capped at the burst of 2
        assert [client.get(f"{server.url}/s/nosuchlink").status_code for _ in range(3)] == [404, 404, 429]


def test_rest_per_address_counts_unauthenticated_requests(start_server: StartServer) -> None:
    server = start_server(env=limits(rest_ip_rate=SLOW, rest_ip_burst="3"))
    assert statuses(f"{server.url}/api/links/x", 3) == [401] * 3
    assert_429(httpx.get(f"{server.url}/api/links/x"))
    assert_429(httpx.post(f"{server.url}/api/links", json={"bucket": "b", "key": "k"}))


def test_rest_per_user_after_authentication(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    alice, bob = add_user(run_pyblob, "alice"), add_user(run_pyblob, "bob")
    server = start_server(env=limits(rest_ip_rate="0", rest_user_rate=SLOW, rest_user_burst="2"))

    def get(token: str) -> httpx.Response:
        return httpx.get(f"{server.url}/api/links/nosuchlink", headers={"authorization": f"Bearer {token}"})

    assert [get(alice["token"]).status_code for _ in range(2)] == [404, 404]
    assert_429(get(alice["token"]))
    assert get(bob["token"]).status_code == 404  # another user, another bucket
    assert get("pbt_wrong").status_code == 401  # no user known: only the address limit applies


def test_websocket_upgrades_count_as_rest(start_server: StartServer) -> None:
    server = start_server(env=limits(rest_ip_rate=SLOW, rest_ip_burst="1"))
    url = server.url.replace("http://", "ws://") + "/upload_socket"
    with websockets.sync.client.connect(url, open_timeout=10):
        pass  # accepted: the one token is spent
    with pytest.raises(websockets.exceptions.InvalidStatus) as caught, websockets.sync.client.connect(url):
        pass
    assert caught.value.response.status_code == 429
    assert int(caught.value.response.headers["retry-after"]) >= 1


# S3 ----------------------------------------------------------------------------------------------
def test_s3_per_address_answers_slowdown_xml(start_server: StartServer) -> None:
    server = start_server(env=limits(s3_ip_rate=SLOW, s3_ip_burst="3"))
    assert statuses(server.url + "/", 3) == [403] * 3  # anonymous, yet it spent tokens
    refused = httpx.get(server.url + "/some-bucket/key")
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/xml"
    assert "<Code>SlowDown</Code>" in refused.text
    assert (
        "<Message>Please reduce your request rate (the limit is PYBLOB_RATELIMIT_S3_IP_RATE).</Message>" in refused.text
    )
    assert "<Resource>/some-bucket/key</Resource>" in refused.text
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-amz-request-id"]
    put = httpx.put(server.url + "/some-bucket/key", content=b"x" * 1000)
    assert put.status_code == 503 and put.headers["connection"] == "close"  # body left unread


def test_s3_per_key_slowdown_for_boto3_without_retries(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    alice, bob = add_user(run_pyblob, "alice"), add_user(run_pyblob, "bob")
    server = start_server(env=limits(s3_key_rate=SLOW, s3_key_burst="3"))
    s3 = s3_client(server, alice)
    for _ in range(3):
        s3.list_buckets()
    with pytest.raises(ClientError) as caught:
        s3.list_buckets()
    error = caught.value.response
    assert error["Error"]["Code"] == "SlowDown"
    assert "PYBLOB_RATELIMIT_S3_KEY_RATE" in error["Error"]["Message"]
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert int(error["ResponseMetadata"]["HTTPHeaders"]["retry-after"]) >= 1
    s3_client(server, bob).list_buckets()  # another key, another bucket


def test_boto3_retries_past_slowdown(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    alice = add_user(run_pyblob, "alice")
    server = start_server(env=limits(s3_key_rate="2", s3_key_burst="2"))
    s3 = s3_client(server, alice, mode="standard", max_attempts=10)
    start = time.monotonic()
    for _ in range(6):  # 2 at once, then one per half second: boto3 backs off and gets through
        s3.list_buckets()
    assert time.monotonic() - start < 20
    refused = server_log_count(server, '" 503')
    assert refused >= 1


def test_s3_per_key_holds_whatever_the_address(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    alice, bob = add_user(run_pyblob, "alice"), add_user(run_pyblob, "bob")
    env = limits(s3_key_rate=SLOW, s3_key_burst="3", s3_ip_rate=SLOW, s3_ip_burst="100", trusted_proxies="127.0.0.1")
    server = start_server(env=env)
    s3 = s3_client(server, alice)
    hops = iter(f"203.0.113.{i}" for i in range(1, 100))

    def forwarded(request: Any, **_: Any) -> None:
        request.headers["X-Forwarded-For"] = next(hops)  # after signing: not a signed header

    s3.meta.events.register("before-send.s3.*", forwarded)
    for _ in range(3):
        s3.list_buckets()
    with pytest.raises(ClientError) as caught:
        s3.list_buckets()
    assert caught.value.response["Error"]["Code"] == "SlowDown"
    s3_client(server, bob).list_buckets()


def server_log_count(server: Server, needle: str) -> int:
    return sum(needle in line for line in (server.stdout + server.stderr).splitlines())


# client addresses --------------------------------------------------------------------------------
def get_from(server: Server, forwarded_for: str) -> int:
    return httpx.get(f"{server.url}/s/nosuchlink", headers={"x-forwarded-for": forwarded_for}).status_code


def test_forwarded_for_from_a_trusted_proxy(start_server: StartServer) -> None:
    server = start_server(env=limits(links_ip_rate=SLOW, links_ip_burst="2", trusted_proxies="10.9.9.9, 127.0.0.0/8"))
    assert [get_from(server, "198.51.100.1") for _ in range(3)] == [404, 404, 429]
    assert get_from(server, "198.51.100.2") == 404  # another client behind the proxy
    assert get_from(server, "192.0.2.66, 198.51.100.1") == 429  # the client's own left part: ignored
    assert get_from(server, "198.51.100.3, 10.9.9.9") == 404  # through two trusted proxies
    assert get_from(server, "198.51.100.3, 10.9.9.9") == 404
    assert get_from(server, "198.51.100.3") == 429
    assert get_from(server, "2001:db8:1:2::1") == 404  # IPv6: one bucket per /64
    assert get_from(server, "2001:db8:1:2::ffff") == 404
    assert get_from(server, "2001:db8:1:2:aaaa::1") == 429
    assert statuses(f"{server.url}/s/nosuchlink", 2) == [404, 404]  # no header: the proxy itself


def test_forwarded_for_ignored_from_other_peers(start_server: StartServer) -> None:
    server = start_server(env=limits(links_ip_rate=SLOW, links_ip_burst="2"))
    assert [get_from(server, f"198.51.100.{i}") for i in range(1, 4)] == [404, 404, 429]


def test_bad_trusted_proxies_stop_the_start(run_pyblob: RunPyblob) -> None:
    result = run_pyblob("serve", "--port", "1", env={"PYBLOB_TRUSTED_PROXIES": "127.0.0.1, proxy.local"})
    assert result.returncode == 2
    assert "PYBLOB_TRUSTED_PROXIES" in result.stderr and "Traceback" not in result.stderr


# several workers ---------------------------------------------------------------------------------
def worker_pids(server: Server) -> list[int]:
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
    return [int(pid) for pid in children]


def peer_ports(pid: int, server_port: int) -> set[int]:
    """Client ports of the established connections process `pid` holds to `server_port` (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, remote_port = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
        if local_port == server_port and fields[3] == "01" and fields[9] in inodes:
            ports.add(remote_port)
    return ports


@pytest.fixture
def clients() -> Iterator[list[httpx.Client]]:
    made: list[httpx.Client] = []
    yield made
    for client in made:
        client.close()


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="finds which worker served through Linux /proc")
def test_the_limit_is_global_across_workers(start_server: StartServer, clients: list[httpx.Client]) -> None:
    server = start_server("--workers", "2", env=limits(links_ip_rate=SLOW, links_ip_burst="10"))
    got = []
    for _ in range(24):  # each on a connection of its own, kept open to see which worker has it
        client = httpx.Client(timeout=10)
        clients.append(client)
        got.append(client.get(f"{server.url}/s/nosuchlink").status_code)
    assert got == [404] * 10 + [429] * 14
    port = int(server.url.rsplit(":", 1)[1])
    served = [peer_ports(pid, port) for pid in worker_pids(server)]
    assert len([ports for ports in served if ports]) == 2, f"both workers should have served: {served}"


def test_s3_keys_are_not_limited_by_default(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    """More than the old default's burst of 1,000 from one key, at once: none is told to slow down."""
    from concurrent.futures import ThreadPoolExecutor

    alice = add_user(run_pyblob, "alice")
    server = start_server()
    s3 = s3_client(server, alice)
    s3.create_bucket(Bucket="many")

    def head(_: int) -> int:
        try:
            return int(s3.head_bucket(Bucket="many")["ResponseMetadata"]["HTTPStatusCode"])
        except ClientError as e:
            return int(e.response["ResponseMetadata"]["HTTPStatusCode"])

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(head, range(1200)))
    assert answers == [200] * 1200


def test_form_uploads_spend_their_signer_s_tokens(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    """POST Object is signed in its form, not its headers: its signer is known only once the form is
    read, and is limited from then on like any other request of that key."""
    alice = add_user(run_pyblob, "alice")
    server = start_server(env=limits(s3_key_rate=SLOW, s3_key_burst="2"))
    s3 = s3_client(server, alice)
    s3.create_bucket(Bucket="forms")  # one token
    form = s3.generate_presigned_post("forms", "up.txt", ExpiresIn=300)
    statuses = [
        httpx.post(form["url"], data=form["fields"], files={"file": ("up.txt", b"x")}).status_code for _ in range(2)
    ]
    assert statuses == [204, 503]
