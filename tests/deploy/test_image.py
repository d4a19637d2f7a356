"""The container image, built from the repository's Dockerfile with podman and run.

No registry of images is reachable here, so the base is made from Debian's packages: debootstrap of
bookworm with python3, venv and CA certificates, imported into podman and passed as the Dockerfile's
`BASE` (whose default stays `python:3.12-slim`). The test starts the container, waits for the
image's own HEALTHCHECK, runs an S3 round trip and a short link against it, restarts it, and finds
the data in its volume.

How podman runs here: `runc` (crun refuses this kernel's mixed cgroup v1/v2 mounts), the host's
network (the container listens on a loopback port of its own; no bridge, no firewall rules), and
resource limits within the machine's hard ones. The build trusts the machine's CA bundle, for a
machine that reaches PyPI through a TLS proxy.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config
from ports import free_port

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ["--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
ACCESS_KEY, SECRET_KEY = "PYBLOBIMAGETEST00001", "image-test-secret-key-0000000000000000000"
WAIT = 90.0


def podman(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )
    if check and result.returncode != 0:
        pytest.fail(f"podman {' '.join(args[:3])} ... failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for tool in ("podman", "runc", "debootstrap"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            pytest.fail(f"{tool} is missing: install the Debian package {tool} (scripts/test does, as root)")
    tag = secrets.token_hex(4)
    base, name = f"localhost/pyblob-test-base:{tag}", f"localhost/pyblob-test:{tag}"
    rootfs = tmp_path_factory.mktemp("rootfs")
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    subprocess.run(
        [debootstrap, "--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm", str(rootfs)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(["podman", "import", "-", base], stdin=tar.stdout, capture_output=True, timeout=300)
    tar.wait(timeout=60)
    assert imported.returncode == 0, imported.stderr
    shutil.rmtree(rootfs, ignore_errors=True)
    ca = ["-v", f"{HOST_CA}:/etc/ssl/certs/build-ca.crt:ro", "--build-arg", "PIP_CERT=/etc/ssl/certs/build-ca.crt"]
    podman(
        "build", "--format", "docker", *RUNTIME, *LIMITS, "--network", "host",
        *(ca if HOST_CA.exists() else []), "--build-arg", f"BASE={base}", "-t", name, str(ROOT),
        timeout=900,
    )  # fmt: skip
    try:
        yield name
    finally:
        podman("rmi", "-f", name, base, check=False)


@pytest.fixture
def container(image: str) -> Iterator[tuple[str, str]]:
    """(container id, URL) of the image running on a free loopback port with a volume of its own."""
    volume = f"pyblob-test-{secrets.token_hex(4)}"
    port = free_port()
    podman("volume", "create", volume)
    env = {
        "PYBLOB_HOST": "127.0.0.1",
        "PYBLOB_PORT": str(port),
        "PYBLOB_ADMIN_ACCESS_KEY": ACCESS_KEY,
        "PYBLOB_ADMIN_SECRET_KEY": SECRET_KEY,
    }
    flags = [arg for name, value in env.items() for arg in ("-e", f"{name}={value}")]
    started = podman("run", "-d", *RUNTIME, *LIMITS, "--network", "host", *flags, "-v", f"{volume}:/data", image)
    cid = started.stdout.strip()
    try:
        yield cid, f"http://127.0.0.1:{port}"
    finally:
        podman("rm", "-f", "-t", "5", cid, check=False)
        podman("volume", "rm", "-f", volume, check=False)


def wait_healthy(cid: str) -> None:
    """The image's own HEALTHCHECK, run until it passes."""
    deadline = time.monotonic() + WAIT
    while podman("healthcheck", "run", cid, check=False, timeout=60).returncode != 0:
        if time.monotonic() > deadline:
            logs = podman("logs", cid, check=False).stderr[-3000:]
            pytest.fail(f"the container never became healthy:\n{logs}")
        time.sleep(0.5)


def test_the_image_serves_s3_and_links_and_keeps_its_data_across_a_restart(container: tuple[str, str]) -> None:
    cid, url = container
    wait_healthy(cid)
    assert podman("exec", cid, "id", "-u").stdout.strip() == "10001"  # not root
    s3 = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}),
    )
    body = secrets.token_bytes(300_000)
    s3.create_bucket(Bucket="in-the-image")
    s3.put_object(Bucket="in-the-image", Key="kept.bin", Body=body)
    assert s3.get_object(Bucket="in-the-image", Key="kept.bin")["Body"].read() == body
    token = json.loads(podman("exec", cid, "pyblob", "token", "create", "admin", "--json").stdout)["token"]
    made = httpx.post(
        f"{url}/api/links",
        json={"bucket": "in-the-image", "key": "kept.bin"},
        headers={"authorization": f"Bearer {token}"},
    )
    assert made.status_code == 201, made.text
    link = made.json()["url"]
    assert httpx.get(link).content == body

    podman("restart", "-t", "10", cid)
    wait_healthy(cid)
    assert s3.get_object(Bucket="in-the-image", Key="kept.bin")["Body"].read() == body
    assert httpx.get(link, headers={"range": "bytes=0-99"}).content == body[:100]
    s3.close()
