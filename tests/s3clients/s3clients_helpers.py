"""The real S3 command-line clients (aws-cli v1 and v2, rclone, s3cmd), run against a running server.

Each client runs as a subprocess with a scrubbed environment: no AWS_*, RCLONE_* or proxy variable of
the machine (this one sets AWS_CA_BUNDLE globally; rclone refuses to start with it
(LoadCustomCABundleError) and aws-cli would trust it instead of our certificate), HOME in a
temporary directory, and a configuration file of the test's own. Retries are off where the client
allows it, so a failed request fails the test instead of being papered over.

Named `s3clients_helpers` (not `helpers`): test directories are not packages, so module names must
be unique across the test tree.
"""

from __future__ import annotations

import hashlib
import os
import random
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from s3_server import REGION, Creds

CLIENT_TIMEOUT = 120
SCRUBBED_PREFIXES = ("AWS_", "RCLONE_", "PYBLOB_", "S3CMD_", "XDG_")
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


# the tools --------------------------------------------------------------------------------------
def aws_executable() -> str:
    """aws-cli v1 from the test extras, beside this interpreter (pip puts it in the venv's bin)."""
    path = Path(sys.executable).parent / "aws"
    if not path.exists():
        pytest.fail(
            f"aws-cli is not installed at {path}: `pip install -e '.[test]'` (scripts/test does it)", pytrace=False
        )
    return str(path)


# Debian's `awscli` package (2.x on bookworm) installs here; the venv's bin, which may come first on
# PATH, holds v1 under the same name, so v2 is never looked up on PATH.
AWS_V2_PATH = Path("/usr/bin/aws")


def aws_v2_executable() -> str:
    """aws-cli v2 from Debian: scripts/test installs the `awscli` package when it runs as root."""
    if not AWS_V2_PATH.exists():
        pytest.fail(
            f"aws-cli v2 is not installed at {AWS_V2_PATH}: run scripts/test as root (it apt-get installs "
            "the Debian package `awscli`), or `apt-get install --no-install-recommends awscli`",
            pytrace=False,
        )
    return str(AWS_V2_PATH)


def debian_tool(name: str) -> str:
    """rclone or s3cmd from Debian: scripts/test installs them when it runs as root."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: run scripts/test as root (it apt-get installs {name}), "
            f"or `apt-get install --no-install-recommends {name}`",
            pytrace=False,
        )
    return path


def client_env(home: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The machine's environment without AWS_*, RCLONE_*, XDG_* or proxies; HOME is `home`."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES) and k.lower() not in PROXY_VARIABLES
    }
    env.update(HOME=str(home), LC_ALL="C.UTF-8", PYTHONUTF8="1", PYTHONIOENCODING="utf-8")
    env.update(extra)
    return env


def run(argv: list[str], env: dict[str, str], cwd: Path, check: bool) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"`{shlex.join(argv)}` exited with {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}",
            pytrace=False,
        )
    return proc


# the clients ------------------------------------------------------------------------------------
class AwsCli:
    """aws-cli v1 (pip, in the venv): `aws --endpoint-url URL ...` with the credentials in the
    environment and empty config files."""

    major = 1
    config = ""

    def __init__(self, url: str, creds: Creds, home: Path, ca_bundle: Path | None = None):
        self.argv = [self.executable(), "--endpoint-url", url]
        if ca_bundle is not None:
            self.argv += ["--ca-bundle", str(ca_bundle)]
        self.home = home
        config, credentials = home / "aws-config", home / "aws-credentials"
        config.write_text(self.config)
        credentials.write_text("")
        self.env = client_env(
            home,
            {
                "AWS_ACCESS_KEY_ID": creds.access_key,
                "AWS_SECRET_ACCESS_KEY": creds.secret_key,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_CONFIG_FILE": str(config),
                "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_MAX_ATTEMPTS": "1",
            },
        )

    @staticmethod
    def executable() -> str:
        return aws_executable()

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([*self.argv, *args], self.env, self.home, check)

    def version(self) -> str:
        """`aws --version`, e.g. `aws-cli/1.36.0 Python/3.12.3 ...`; fails unless it is this major version."""
        proc = run([self.argv[0], "--version"], self.env, self.home, check=True)
        # v1 printed its version on stderr before 1.17; every version since prints it on stdout.
        version = (proc.stdout or proc.stderr).strip()
        assert version.startswith(f"aws-cli/{self.major}."), f"{self.argv[0]} is not aws-cli v{self.major}: {version}"
        return version


class AwsCliV2(AwsCli):
    """aws-cli v2 from Debian, configured like v1; its pager is off (v2 pipes output to `less`) and
    its addressing style is path, written down rather than left to the endpoint rules."""

    major = 2
    config = "[default]\ncli_pager =\ns3 =\n    addressing_style = path\n"

    @staticmethod
    def executable() -> str:
        return aws_v2_executable()


class Rclone:
    """`rclone ...` with one S3 remote, `pyblob:`, of provider Other; no retries."""

    remote = "pyblob"

    def __init__(self, url: str, creds: Creds, home: Path, ca_cert: Path | None = None):
        self.argv = [debian_tool("rclone"), "--retries", "1", "--low-level-retries", "1"]
        if ca_cert is not None:
            self.argv += ["--ca-cert", str(ca_cert)]
        self.home = home
        config = home / "rclone.conf"
        config.write_text(
            f"[{self.remote}]\ntype = s3\nprovider = Other\nenv_auth = false\n"
            f"access_key_id = {creds.access_key}\nsecret_access_key = {creds.secret_key}\n"
            f"endpoint = {url}\nregion = {REGION}\n"
        )
        self.env = client_env(home, {"RCLONE_CONFIG": str(config)})

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([*self.argv, *args], self.env, self.home, check)


class S3cmd:
    """`s3cmd -c <config> ...`, path-style on the server's host:port, V4 or V2 signatures."""

    def __init__(self, url: str, creds: Creds, home: Path, signature_v2: bool):
        parts = urlsplit(url)
        config = home / "s3cfg"
        config.write_text(
            "[default]\n"
            f"access_key = {creds.access_key}\nsecret_key = {creds.secret_key}\n"
            f"host_base = {parts.netloc}\nhost_bucket = {parts.netloc}\n"
            f"use_https = {parts.scheme == 'https'}\nbucket_location = {REGION}\n"
            f"signature_v2 = {signature_v2}\n"
        )
        self.argv = [debian_tool("s3cmd"), "-c", str(config), "--no-progress"]
        self.signature_v2 = signature_v2
        self.home = home
        self.env = client_env(home, {})

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = run([*self.argv, *args], self.env, self.home, check)
        # s3cmd retries failed requests on its own (no setting turns that off): fail on any retry.
        assert "Retrying" not in proc.stderr and "Waiting" not in proc.stderr, proc.stderr
        return proc


# local trees ------------------------------------------------------------------------------------
# Relative path -> size: nested directories, an empty file, spaces, '+', unicode; all under 5 MiB,
# so no client switches to multipart (aws-cli's threshold is 8 MiB, s3cmd's 15 MiB, rclone's 200 MiB).
TREE = {
    "top.txt": 100,
    "empty": 0,
    "with space/a file.txt": 2_000,
    "plus+sign/c+d=e.bin": 70_000,
    "ünïcödé/ファイル.txt": 1_234,
    "nested/deeper/deepest/blob.bin": 1 << 20,
    "nested/big.bin": 3 << 20,
}


def make_tree(root: Path, seed: int = 0, files: Mapping[str, int] = TREE) -> dict[str, str]:
    """Writes `files` with pseudo-random content under `root`; returns their digests (`digests`)."""
    rnd = random.Random(seed)
    for rel, size in files.items():
        random_file(root / rel, size, rnd)
    return digests(root)


def random_file(path: Path, size: int, rnd: random.Random | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((rnd or random.Random(size)).randbytes(size))
    return path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digests(root: Path) -> dict[str, str]:
    """Relative POSIX path -> SHA-256 of every file under `root`."""
    return {p.relative_to(root).as_posix(): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def md5s(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }
