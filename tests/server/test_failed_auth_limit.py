"""Failed logins cost an attacker time: per client address, failed S3 authentications and bad REST
tokens end in a refusal, against a real `pyblob serve`, while successful traffic is never limited.

S3: each failed authentication (a wrong secret, an unknown key, a tampered presigned URL, POST
policy or chunk signature, SigV4 or SigV2) takes a token of the address's bucket; once it is empty
every S3 request of that address, a correct one included, is answered 503 SlowDown before its
signature is checked (a correct guess must not show through). Other addresses are told apart by
`X-Forwarded-For` from a trusted proxy (the test client at 127.0.0.1 is that proxy).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import boto3
import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from processes import RunPyblob, Server, StartServer, isolate_from_aws

from pyblob.failedauth import FailedAuthLimit
from pyblob.ratelimits import Limit, RateLimiter, RateLimits
from pyblob.settings import Settings

SLOW = "0.001"  # tokens per second: nothing refills during a test
LIMIT_NAME = "PYBLOB_RATELIMIT_S3_FAILED_AUTH_RATE"
BUCKET = "vault"


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


def failed_auth_env(rate: str, burst: str) -> dict[str, str]:
    return {
        "PYBLOB_RATELIMIT_S3_FAILED_AUTH_RATE": rate,
        "PYBLOB_RATELIMIT_S3_FAILED_AUTH_BURST": burst,
        "PYBLOB_TRUSTED_PROXIES": "127.0.0.1",
    }


def add_user(run_pyblob: RunPyblob, name: str) -> dict[str, str]:
    result = run_pyblob("user", "add", name, "--json")
    assert result.returncode == 0, result.stderr
    creds: dict[str, str] = json.loads(result.stdout)
    return creds


def wrong(creds: dict[str, str]) -> dict[str, str]:
    """The same key with a secret that differs in its first character (never by chance the same)."""
    first = "y" if creds["secret_key"].startswith("x") else "x"
    return {**creds, "secret_key": first + creds["secret_key"][1:]}


def s3_client(server: Server, creds: dict[str, str], address: str = "", signature: str = "s3v4") -> Any:
    """boto3 with no retries; `address`: the client behind the trusted proxy (added after signing)."""
    client = boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=creds["access_key"],
        aws_secret_access_key=creds["secret_key"],
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}, signature_version=signature),
    )
    if address:

        def forwarded(request: Any, **_: Any) -> None:
            request.headers["X-Forwarded-For"] = address

        client.meta.events.register("before-send.s3.*", forwarded)
    return client


def code_of(call: Callable[[], Any]) -> str:
    try:
        call()
    except ClientError as e:
        return str(e.response["Error"]["Code"])
    return "OK"


def assert_slow_down(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/xml"
    assert "<Code>SlowDown</Code>" in response.text
    assert f"(the limit is {LIMIT_NAME})" in response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["x-amz-request-id"]


def started(start_server: StartServer, run_pyblob: RunPyblob, rate: str, burst: str) -> tuple[Server, dict[str, str]]:
    alice = add_user(run_pyblob, "alice")
    server = start_server(env=failed_auth_env(rate, burst))
    s3_client(server, alice, "192.0.2.1").create_bucket(Bucket=BUCKET)
    return server, alice


def test_bad_secrets_then_slowdown_even_for_the_right_key(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    server, alice = started(start_server, run_pyblob, SLOW, "4")
    attacker = "203.0.113.9"
    bad = s3_client(server, wrong(alice), attacker)
    unknown = s3_client(server, {"access_key": "AKNOSUCHKEY", "secret_key": "s"}, attacker)
    assert [code_of(bad.list_buckets) for _ in range(3)] == ["SignatureDoesNotMatch"] * 3
    assert code_of(unknown.list_buckets) == "InvalidAccessKeyId"  # the fourth and last token
    assert code_of(bad.list_buckets) == "SlowDown"
    good = s3_client(server, alice, attacker)
    with pytest.raises(ClientError) as caught:
        good.head_bucket(Bucket=BUCKET)  # the right key, from that address: refused before its signature is checked
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert int(error["ResponseMetadata"]["HTTPHeaders"]["retry-after"]) >= 1
    raw = httpx.get(f"{server.url}/{BUCKET}/k", headers={"x-forwarded-for": attacker})
    assert_slow_down(raw)  # anonymous too: S3 XML
    assert "<Resource>/vault/k</Resource>" in raw.text
    assert s3_client(server, alice, "203.0.113.10").head_bucket(Bucket=BUCKET)  # another address
    assert s3_client(server, alice).list_buckets()["Buckets"]  # the proxy's own address
    put = httpx.put(f"{server.url}/{BUCKET}/k", content=b"x" * 1000, headers={"x-forwarded-for": attacker})
    assert put.status_code == 503 and put.headers["connection"] == "close"  # body left unread


def test_the_block_lifts_once_a_token_is_back(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    server, alice = started(start_server, run_pyblob, "2", "2")  # a token every half second
    bad, good = s3_client(server, wrong(alice), "203.0.113.9"), s3_client(server, alice, "203.0.113.9")
    assert [code_of(bad.list_buckets) for _ in range(3)] == ["SignatureDoesNotMatch"] * 2 + ["SlowDown"]
    assert code_of(good.list_buckets) == "SlowDown"
    time.sleep(1.1)  # Retry-After said 1 (whole seconds); the bucket is full again by then
    assert code_of(good.list_buckets) == "OK"
    assert [code_of(bad.list_buckets) for _ in range(3)] == ["SignatureDoesNotMatch"] * 2 + ["SlowDown"]
    assert code_of(good.list_buckets) == "SlowDown"


def test_successful_traffic_takes_nothing(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    """Far more requests than the burst, at once, from one address: none is told to slow down."""
    server, alice = started(start_server, run_pyblob, SLOW, "2")
    s3 = s3_client(server, alice, "203.0.113.9")

    def head(_: int) -> str:
        return code_of(lambda: s3.head_object(Bucket=BUCKET, Key="absent"))  # a 404 is no failed login

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(head, range(600))) == {"404"}
    assert code_of(s3_client(server, wrong(alice), "203.0.113.9").list_buckets) == "SignatureDoesNotMatch"


# every way a signature can be wrong ----------------------------------------------------------------
def sign_v4(creds: dict[str, str], method: str, url: str, headers: dict[str, str], payload: str) -> dict[str, str]:
    """Headers signed by botocore's SigV4 signer, with x-amz-content-sha256 given."""

    class FixedPayload(S3SigV4Auth):  # type: ignore[misc]  # botocore has no type information
        def payload(self, request: AWSRequest) -> str:
            return payload

    request = AWSRequest(method=method, url=url, headers={**headers, "x-amz-content-sha256": payload})
    FixedPayload(Credentials(creds["access_key"], creds["secret_key"]), "s3", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def bad_chunk_signature(server: Server, creds: dict[str, str], address: str) -> httpx.Response:
    """A correctly signed aws-chunked PUT whose first chunk signature is wrong."""
    url = f"{server.url}/{BUCKET}/chunked"
    headers = {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "5",
        "content-length": str(len(chunked_body())),
    }
    signed = sign_v4(creds, "PUT", url, headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    response = httpx.put(url, content=chunked_body(), headers={**signed, "x-forwarded-for": address})
    if response.status_code == 403:  # the headers' signature held: the chunk's failed
        assert "The chunk signature does not match." in response.text, response.text
    return response


def chunked_body() -> bytes:
    zeros = b"0" * 64
    return b"5;chunk-signature=" + zeros + b"\r\nhello\r\n0;chunk-signature=" + zeros + b"\r\n\r\n"


def bad_presigned(server: Server, creds: dict[str, str], address: str, signature: str) -> httpx.Response:
    url = s3_client(server, creds, signature=signature).generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "k"}, ExpiresIn=300
    )
    return httpx.get(url, headers={"x-forwarded-for": address})


def bad_post_policy(server: Server, creds: dict[str, str], address: str) -> httpx.Response:
    form = s3_client(server, creds).generate_presigned_post(BUCKET, "up.txt", ExpiresIn=300)
    files = {"file": ("up.txt", b"x")}
    return httpx.post(form["url"], data=form["fields"], files=files, headers={"x-forwarded-for": address})


def xml_code(response: httpx.Response) -> str:
    text = response.text
    return text.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in text else str(response.status_code)


def test_every_kind_of_failed_signature_counts(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    server, alice = started(start_server, run_pyblob, SLOW, "2")
    bad = wrong(alice)
    kinds: dict[str, Callable[[str], str]] = {
        "sigv4 header": lambda a: code_of(s3_client(server, bad, a).list_buckets),
        "sigv2 header": lambda a: code_of(s3_client(server, bad, a, signature="s3").list_buckets),
        "unknown key": lambda a: code_of(s3_client(server, {**bad, "access_key": "AKNOSUCH"}, a).list_buckets),
        "sigv4 presigned": lambda a: xml_code(bad_presigned(server, bad, a, "s3v4")),
        "sigv2 presigned": lambda a: xml_code(bad_presigned(server, bad, a, "s3")),
        "post policy": lambda a: xml_code(bad_post_policy(server, bad, a)),
        "chunk signature": lambda a: xml_code(bad_chunk_signature(server, alice, a)),
    }
    seen = {}
    for n, (kind, fail) in enumerate(kinds.items(), start=1):
        address = f"198.51.100.{n}"  # a client of its own for each kind
        seen[kind] = [fail(address) for _ in range(3)]
    failures = {"SignatureDoesNotMatch", "InvalidAccessKeyId"}
    summary = {kind: (codes[0] in failures, codes[0] == codes[1], codes[2]) for kind, codes in seen.items()}
    assert summary == dict.fromkeys(kinds, (True, True, "SlowDown")), seen
    assert xml_code(bad_chunk_signature(server, alice, "198.51.100.99")) == "SignatureDoesNotMatch"
    assert s3_client(server, alice, "198.51.100.99").head_bucket(Bucket=BUCKET)  # its first failure only


def test_on_by_default_with_a_burst_of_dozens(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    defaults = Settings()
    rate, burst = defaults.ratelimit_s3_failed_auth_rate, int(defaults.ratelimit_s3_failed_auth_burst)
    assert 10 <= burst <= 100 and 0 < rate <= 1  # a misconfigured client's retries pass; guessing does not
    alice = add_user(run_pyblob, "alice")
    server = start_server()
    bad = s3_client(server, wrong(alice))
    codes = [code_of(bad.list_buckets) for _ in range(burst + 10)]
    refused = codes.index("SlowDown")
    assert burst <= refused <= burst + 5, codes  # a token or so may come back while they are sent
    assert set(codes[:refused]) == {"SignatureDoesNotMatch"}
    assert code_of(s3_client(server, alice).list_buckets) == "SlowDown"


# a cluster's buckets, without a cluster ---------------------------------------------------------------
class SharedBucketsStandIn:
    """Buckets as a cluster's look to the limit: blocking (a round trip), not read per request;
    `burst` takes per key, then refused with a wait of 30 s."""

    blocking = True

    def __init__(self) -> None:
        self.taken: dict[str, float] = {}

    def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> float:
        if self.taken.get(key, 0.0) + cost > burst:
            return 30.0
        self.taken[key] = self.taken.get(key, 0.0) + cost
        return 0.0


def test_on_a_cluster_a_refused_take_blocks_the_address_in_this_process() -> None:
    now = [0.0]
    buckets = SharedBucketsStandIn()
    limiter = RateLimiter(RateLimits(per_ip={}, per_user={}), lambda: buckets)
    limit = FailedAuthLimit(Limit(rate=0.2, burst=2), limiter, monotonic=lambda: now[0])
    scope: dict[str, Any] = {"type": "http", "client": ("203.0.113.9", 40000)}
    other: dict[str, Any] = {"type": "http", "client": ("203.0.113.10", 40000)}

    async def steps() -> list[int]:
        waits = [await limit.wait(scope)]
        for _ in range(2):
            await limit.failed(scope)
        waits.append(await limit.wait(scope))  # spent, but the shared bucket is not read per request
        await limit.failed(scope)  # refused: this process answers SlowDown from now on
        waits += [await limit.wait(scope), await limit.wait(other)]
        now[0] = 30.5
        waits.append(await limit.wait(scope))
        return waits

    assert anyio.run(steps) == [0, 0, 30, 0, 0]


# REST: bad bearer tokens -------------------------------------------------------------------------
def bearer(client: httpx.Client, token: str) -> httpx.Response:
    return client.get("/api/links/x", headers={"authorization": f"Bearer {token}"})


def test_bad_bearer_tokens_end_in_429_by_default(start_server: StartServer) -> None:
    """The REST surface is limited per address whatever the answer (`ratelimit_rest_ip_*`, on by
    default), so guessed tokens are too: a burst of 401s, then 429 with Retry-After."""
    server = start_server()
    burst = int(Settings().ratelimit_rest_ip_burst)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        answers = [bearer(client, f"pbt_guess{i}") for i in range(burst * 3)]
    codes = [a.status_code for a in answers]
    assert 429 in codes, codes
    refused = codes.index(429)
    assert burst <= refused and set(codes[:refused]) == {401}
    assert int(answers[refused].headers["retry-after"]) >= 1


def test_bad_bearer_tokens_block_the_right_one_from_that_address(
    start_server: StartServer, run_pyblob: RunPyblob
) -> None:
    alice = add_user(run_pyblob, "alice")
    server = start_server(env={"PYBLOB_RATELIMIT_REST_IP_RATE": SLOW, "PYBLOB_RATELIMIT_REST_IP_BURST": "5"})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert [bearer(client, f"pbt_guess{i}").status_code for i in range(5)] == [401] * 5
        assert bearer(client, alice["token"]).status_code == 429
