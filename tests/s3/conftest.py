"""End-to-end S3 fixtures: `pyblob serve` over HTTP and over HTTPS, its users, and boto3 clients.

Two servers for the whole session, each on a data dir of its own, set up as an operator would (see
`s3_server.py`). The HTTPS one serves a self-signed certificate for 127.0.0.1 made here: boto3
sends aws-chunked bodies with checksum trailers only over https, and that is the path real
deployments take (TLS in front of pyblob).

No AWS_* variable of the machine reaches boto3 or the servers. This machine sets AWS_CA_BUNDLE
globally (boto3 would trust it instead of our certificate), and a developer's AWS_PROFILE or
~/.aws/config (addressing style, checksum settings, ...) would change what boto3 sends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.client import BaseClient
from s3_server import (
    ADMIN,
    Endpoint,
    TlsCert,
    close_clients,
    make_self_signed_cert,
    scrub_aws_env,
    start_endpoint,
    unique_bucket_name,
)

CHECKSUM_MODES = ("when_supported", "when_required")


@pytest.fixture(scope="session")
def nowhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("no-aws-config") / "absent"


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch, nowhere: Path) -> Iterator[None]:
    scrub_aws_env(monkeypatch, nowhere)
    yield
    close_clients()


@pytest.fixture(scope="session")
def boto_session(nowhere: Path) -> boto3.session.Session:
    """One session for every client (loading the S3 model per client would cost seconds).

    Created, and its (absent) config files read, in the scrubbed environment.
    """
    with pytest.MonkeyPatch.context() as mp:
        scrub_aws_env(mp, nowhere)
        core = botocore.session.get_session()
        core.get_scoped_config()
        return boto3.session.Session(botocore_session=core)


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> TlsCert:
    return make_self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def http_endpoint(tmp_path_factory: pytest.TempPathFactory, boto_session: boto3.session.Session) -> Iterator[Endpoint]:
    endpoint = start_endpoint(tmp_path_factory.mktemp("pyblob-http"), boto_session, None)
    yield endpoint
    endpoint.server.stop()


@pytest.fixture(scope="session")
def https_endpoint(
    tmp_path_factory: pytest.TempPathFactory, boto_session: boto3.session.Session, tls_cert: TlsCert
) -> Iterator[Endpoint]:
    endpoint = start_endpoint(tmp_path_factory.mktemp("pyblob-https"), boto_session, tls_cert)
    yield endpoint
    # A response that boto3 raised as ClientError keeps its connection out of the pool (closing
    # the client misses it) until collected; uvicorn's shutdown would wait for its TLS close.
    gc.collect()
    endpoint.server.stop()


@pytest.fixture(params=["http", "https"])
def endpoint(request: pytest.FixtureRequest) -> Endpoint:
    """Each server in turn."""
    return request.getfixturevalue(f"{request.param}_endpoint")  # type: ignore[no-any-return]


@pytest.fixture(params=CHECKSUM_MODES)
def checksum_calculation(request: pytest.FixtureRequest) -> str:
    """boto3's current default ("when_supported") and the opt-out ("when_required")."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def s3(endpoint: Endpoint, checksum_calculation: str) -> BaseClient:
    """The admin's client: over http and https, with each checksum setting."""
    return endpoint.client(ADMIN, checksum_calculation)


@pytest.fixture
def s3_http(http_endpoint: Endpoint) -> BaseClient:
    """The admin's client with boto3's defaults over http, for tests about a single request."""
    return http_endpoint.client(ADMIN)


@pytest.fixture
def bucket(s3: BaseClient) -> str:
    """A new, empty bucket of the admin's, on the server `s3` talks to."""
    name = unique_bucket_name()
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def http_bucket(s3_http: BaseClient) -> str:
    """A new, empty bucket of the admin's on the http server."""
    name = unique_bucket_name()
    s3_http.create_bucket(Bucket=name)
    return name
