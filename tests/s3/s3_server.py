"""`pyblob serve` for the end-to-end S3 tests: credentials, a self-signed certificate, the server.

Used by tests/s3/conftest.py. Kept free of fixtures so other test packages can import it too.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
import json
import os
import ssl
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from ports import free_port
from processes import Server, clean_env, wait_healthy

REGION = "us-east-1"
DOMAIN = "s3.pyblob.test"  # virtual-hosted style: <bucket>.s3.pyblob.test (reached via a Host header)


@dataclass(frozen=True)
class Creds:
    user: str
    access_key: str
    secret_key: str


# Imported through PYBLOB_ADMIN_*; `/`, `+` and `=` must survive every signing path.
ADMIN = Creds("admin", "PYBLOBTESTADMIN", "adm/in+Secret=with/slash+plus=equals==")
# name -> extra `pyblob user add` options: bob for isolation, carol and dave for the limits.
USERS = {"bob": (), "carol": ("--quota", "1MiB"), "dave": ("--max-object-size", "64KiB")}


# environment ------------------------------------------------------------------------------------
def scrub_aws_env(mp: pytest.MonkeyPatch, nowhere: Path) -> None:
    """No AWS_* from the machine; config and credential files that do not exist."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            mp.delenv(name)
    mp.setenv("AWS_CONFIG_FILE", str(nowhere / "config"))
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere / "credentials"))
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")


def server_env(extra: dict[str, str]) -> dict[str, str]:
    """What pyblob processes get: no PYBLOB_* (see `clean_env`) and no AWS_* of the machine."""
    return {k: v for k, v in clean_env(extra).items() if not k.startswith("AWS_")}


# TLS --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TlsCert:
    certfile: Path
    keyfile: Path

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certfile))


def make_self_signed_cert(directory: Path) -> TlsCert:
    """A certificate for 127.0.0.1 and localhost that is its own trust anchor (valid for 2 days).

    Key identifiers and a critical basicConstraints keep it acceptable to OpenSSL's strict checks
    (Python 3.13 turns on VERIFY_X509_STRICT).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pyblob test server")])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    usage = x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    alt_names = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(alt_names, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    tls = TlsCert(directory / "cert.pem", directory / "key.pem")
    tls.certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tls.keyfile.write_bytes(pem_key)
    tls.keyfile.chmod(0o600)
    return tls


# servers ----------------------------------------------------------------------------------------
# Clients made by `Endpoint.client`, closed after each test: an idle keep-alive TLS connection
# holds up the server's shutdown until the TLS close handshake times out.
OPEN_CLIENTS: list[BaseClient] = []


def close_clients() -> None:
    while OPEN_CLIENTS:
        OPEN_CLIENTS.pop().close()


@dataclass
class Endpoint:
    """A running `pyblob serve` with its users, and the ways the tests talk to it.

    Or several nodes behind a proxy (scripts/cluster's front): then `server` is None, `front` is the
    proxy's URL, `data_dir` is the CLI's own and `cli_env` holds the nodes' shared settings (metadata
    and chunk store), which the CLI needs to reach the same store."""

    scheme: str
    server: Server | None
    data_dir: Path
    session: boto3.session.Session
    tls: TlsCert | None
    users: dict[str, Creds] = field(default_factory=dict)
    front: str | None = None
    cli_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        if self.front is not None:
            return self.front
        assert self.server is not None, "an Endpoint has a server or a front"
        return self.server.url

    @property
    def verify(self) -> str | bool:
        """For boto3: our certificate, given explicitly (never AWS_CA_BUNDLE)."""
        return str(self.tls.certfile) if self.tls else True

    def ssl_context(self) -> ssl.SSLContext | bool:
        return self.tls.context() if self.tls else True

    def client(self, creds: Creds = ADMIN, checksums: str = "when_supported", **config: Any) -> BaseClient:
        """A boto3 S3 client: path-style, SigV4, no retries; `config` overrides Config options."""
        settings: dict[str, Any] = {
            "s3": {"addressing_style": "path"},
            "signature_version": "s3v4",
            "request_checksum_calculation": checksums,
            "response_checksum_validation": "when_supported",
            "retries": {"mode": "standard", "max_attempts": 1},
            "connect_timeout": 10,
            "read_timeout": 30,
        }
        settings.update(config)
        client = self.session.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=creds.access_key,
            aws_secret_access_key=creds.secret_key,
            verify=self.verify,
            config=Config(**settings),
        )
        OPEN_CLIENTS.append(client)
        return client

    def http(self) -> httpx.Client:
        """Plain HTTP(S), for presigned URLs and hand-made requests; ignores the environment."""
        return httpx.Client(verify=self.ssl_context(), timeout=30, trust_env=False)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`pyblob ARGS --data-dir <this server's data dir>`, beside the running server (or nodes)."""
        argv = [sys.executable, "-m", "pyblob", *args, "--data-dir", str(self.data_dir)]
        return subprocess.run(
            argv,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
            env=server_env(self.cli_env),
            cwd=self.data_dir.parent,
            stdin=subprocess.DEVNULL,
        )

    def usage(self, user: str) -> tuple[int, int]:
        """(bytes, objects) stored by `user`, as `pyblob user show --json` reports them."""
        shown = json.loads(self.cli("user", "show", user, "--json").stdout)
        return int(shown["usage_bytes"]), int(shown["object_count"])


def start_endpoint(root: Path, session: boto3.session.Session, tls: TlsCert | None) -> Endpoint:
    """`pyblob serve` on a free port of 127.0.0.1 with the admin imported, then the other USERS."""
    data_dir, log_dir = root / "data", root / "log"
    log_dir.mkdir()
    scheme = "https" if tls else "http"
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "pyblob",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    if tls:
        argv += ["--ssl-certfile", str(tls.certfile), "--ssl-keyfile", str(tls.keyfile)]
    env = server_env(
        {
            "PYBLOB_ADMIN_ACCESS_KEY": ADMIN.access_key,
            "PYBLOB_ADMIN_SECRET_KEY": ADMIN.secret_key,
            "PYBLOB_DOMAIN": DOMAIN,
            # The session's tests send hundreds of deliberately failing signatures from 127.0.0.1 to
            # this one server; the failed-login limit (tests/server/test_failed_auth_limit.py) would
            # answer SlowDown in their place.
            "PYBLOB_RATELIMIT_S3_FAILED_AUTH_RATE": "0",
        }
    )
    with open(log_dir / "stdout", "wb") as out, open(log_dir / "stderr", "wb") as err:
        proc = subprocess.Popen(
            argv, cwd=root, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True
        )
    server = Server(proc, f"{scheme}://127.0.0.1:{port}", log_dir)
    endpoint = Endpoint(scheme, server, data_dir, session, tls)
    try:
        wait_healthy(server, verify=endpoint.ssl_context())
        add_users(endpoint)
    except BaseException:
        server.stop()
        raise
    return endpoint


def add_users(endpoint: Endpoint) -> None:
    """The admin (imported at the first start), then the other USERS made with `pyblob user add`."""
    endpoint.users["admin"] = ADMIN
    for name, options in USERS.items():
        made = json.loads(endpoint.cli("user", "add", name, *options, "--json").stdout)
        endpoint.users[name] = Creds(made["user"], made["access_key"], made["secret_key"])


_names = itertools.count()


def unique_bucket_name(prefix: str = "b") -> str:
    """A valid bucket name no other test uses."""
    return f"{prefix}-{next(_names)}-{uuid.uuid4().hex[:10]}"


def failure(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    """(HTTP status, S3 error code) of a failed boto3 call."""
    response = excinfo.value.response
    return int(response["ResponseMetadata"]["HTTPStatusCode"]), str(response["Error"]["Code"])
