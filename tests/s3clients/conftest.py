"""Fixtures for the real-client tests: pyblob over HTTP and HTTPS, moto as a listing oracle, clients.

The servers are started once per session with tests/s3's `s3_server` helpers: the admin key pair is
imported through PYBLOB_ADMIN_ACCESS_KEY / PYBLOB_ADMIN_SECRET_KEY, and its secret holds `/`, `+`
and `=`, which every client must sign with correctly.

`pyblob`, and every fixture built on it, comes twice: one `pyblob serve` (`[one-node]`) and the 3-node
deployment of scripts/cluster through its front, nginx sending each request to the next node
(`[cluster]`; one cluster for the whole run, see s3clients_cluster). So every test of the clients runs
on both, and on the cluster a client's requests, multipart parts included, land on different nodes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# `s3_server` lives beside tests/s3's fixtures; make it importable when only this directory runs.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "s3"))

import boto3
import botocore.session
from botocore.client import BaseClient
from botocore.config import Config
from processes import moto_server
from s3_server import (
    ADMIN,
    REGION,
    Endpoint,
    TlsCert,
    make_self_signed_cert,
    scrub_aws_env,
    start_endpoint,
    unique_bucket_name,
)
from s3clients_cluster import SharedCluster, shared_dir
from s3clients_helpers import AwsCli, AwsCliV2, Rclone, S3cmd


@pytest.fixture(scope="session")
def boto_session(tmp_path_factory: pytest.TempPathFactory) -> boto3.session.Session:
    """One boto3 session, made with no AWS_* of the machine and no config files."""
    with pytest.MonkeyPatch.context() as mp:
        scrub_aws_env(mp, tmp_path_factory.mktemp("no-aws-config"))
        core = botocore.session.get_session()
        core.get_scoped_config()
        return boto3.session.Session(botocore_session=core)


@pytest.fixture(scope="session", params=["one-node", "cluster"])
def pyblob(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, boto_session: boto3.session.Session
) -> Iterator[Endpoint]:
    """`pyblob serve` over plain HTTP, or the 3-node deployment through its front; the admin key pair imported."""
    if request.param == "cluster":
        cluster: SharedCluster = request.getfixturevalue("shared_cluster")
        yield cluster.acquire(tmp_path_factory.mktemp("cluster-cli"), boto_session)
        return
    if runs_on_the_cluster(request.session):
        request.getfixturevalue("shared_cluster")  # the cluster comes up while the tests run on one node
    endpoint = start_endpoint(tmp_path_factory.mktemp("pyblob-http"), boto_session, None)
    yield endpoint
    stop_and_check_log(endpoint)


def runs_on_the_cluster(session: pytest.Session) -> bool:
    """Some selected test uses `pyblob[cluster]` (every worker of xdist collects them all)."""
    return any(
        item.callspec.params.get("pyblob") == "cluster"
        for item in session.items
        if isinstance(item, pytest.Function) and hasattr(item, "callspec")
    )


@pytest.fixture(scope="session")
def shared_cluster() -> Iterator[SharedCluster]:
    """The run's cluster, shared with the other xdist workers and used by this one until its session
    ends (so it is neither stopped nor started again when the tests switch between one node and it)."""
    cluster = SharedCluster(shared_dir())
    cluster.begin()
    yield cluster
    cluster.release()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> TlsCert:
    return make_self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def pyblob_tls(
    tmp_path_factory: pytest.TempPathFactory, boto_session: boto3.session.Session, tls_cert: TlsCert
) -> Iterator[Endpoint]:
    """`pyblob serve --ssl-certfile ... --ssl-keyfile ...` with a self-signed certificate."""
    endpoint = start_endpoint(tmp_path_factory.mktemp("pyblob-https"), boto_session, tls_cert)
    yield endpoint
    stop_and_check_log(endpoint)


def stop_and_check_log(endpoint: Endpoint) -> None:
    """Stop the server; an internal error logged on the way fails the session even if no client saw it."""
    assert endpoint.server is not None
    endpoint.server.stop()
    assert "Traceback" not in endpoint.server.stderr, endpoint.server.stderr


@pytest.fixture(scope="session")
def s3(pyblob: Endpoint) -> BaseClient:
    """boto3 on the HTTP server, to look at what the command-line clients left behind."""
    return pyblob.client(ADMIN)


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m moto.server` on a free loopback port, for the whole session."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture(scope="session")
def moto(moto_url: str, boto_session: boto3.session.Session) -> BaseClient:
    """boto3 on moto, configured like `Endpoint.client` (path-style, SigV4, no retries)."""
    config = Config(
        s3={"addressing_style": "path"}, signature_version="s3v4", retries={"mode": "standard", "max_attempts": 1}
    )
    return boto_session.client(
        "s3",
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id="moto",
        aws_secret_access_key="moto",
        config=config,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The clients' HOME and working directory: nothing of the developer's is read."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def bucket_name() -> str:
    return unique_bucket_name("cli")


@pytest.fixture
def aws(pyblob: Endpoint, home: Path) -> AwsCli:
    return AwsCli(pyblob.url, ADMIN, home)


@pytest.fixture
def aws2(pyblob: Endpoint, home: Path) -> AwsCliV2:
    """aws-cli v2 (Debian's `awscli`), where `aws` is v1 from pip."""
    return AwsCliV2(pyblob.url, ADMIN, home)


@pytest.fixture
def rclone(pyblob: Endpoint, home: Path) -> Rclone:
    return Rclone(pyblob.url, ADMIN, home)


@pytest.fixture(params=["v4", "v2"])
def s3cmd(request: pytest.FixtureRequest, pyblob: Endpoint, home: Path) -> S3cmd:
    """s3cmd signing with SigV4 (its default) and with `signature_v2 = True`."""
    return S3cmd(pyblob.url, ADMIN, home, signature_v2=request.param == "v2")
