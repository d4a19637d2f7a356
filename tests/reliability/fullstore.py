"""An object store that fills up and says so as a given S3-compatible store does, for the tests of how
pyblob's chunk store (objstore/chunks/s3.py) reads such an answer.

SeaweedFS, the object store the other tests run, has no such answer: full, it answers 500
InternalError like any fault (tests/reliability/test_disk_full_cluster.py). MinIO, which answers 507
`XMinioStorageFull`, cannot be installed from the registries this project uses. So this store, an
HTTP server in a process of its own on a loopback port (`python fullstore.py STATUS CODE MESSAGE
CAPACITY PORT`, started by `full_store`), keeps objects in memory up to `capacity` bytes and answers
a write past it with the status, code and message of the store it stands for, in S3's XML error
shape. It speaks what pyblob's chunk store uses: HEAD of the bucket; PUT (with `If-None-Match: *`),
GET (with Range), HEAD and DELETE of objects. Signatures are not checked. Its admin side, for the
test: `GET /-/state` (JSON: capacity, writes refused) and `PUT /-/capacity` (the new room, in bytes).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

BUCKET = "chunks"
ADMIN = "/-/"  # the test's side: not a bucket name S3 allows


@dataclass(frozen=True)
class FullAnswer:
    """What a store answers to a write it has no room for."""

    status: int
    code: str
    message: str


# MinIO, a drive below its free-space threshold (cmd/api-errors.go, ErrStorageFull)
MINIO_DRIVE_FULL = FullAnswer(
    507,
    "XMinioStorageFull",
    "Storage backend has reached its minimum free drive threshold. Please delete a few objects to proceed.",
)
MINIO_BUCKET_QUOTA = FullAnswer(400, "XMinioAdminBucketQuotaExceeded", "Bucket quota exceeded")
CEPH_QUOTA = FullAnswer(403, "QuotaExceeded", "")  # Ceph RGW, a user or bucket quota used up
ANY_507 = FullAnswer(507, "SomeStoreIsFull", "no room")  # a code pyblob does not know, with status 507


@dataclass
class FullStore:
    """The store's objects (key -> bytes, when written) and its room; `capacity` may change while it runs."""

    answer: FullAnswer
    capacity: int
    objects: dict[str, tuple[bytes, float]] = field(default_factory=dict)
    refused: int = 0  # writes answered with `answer`
    lock: threading.Lock = field(default_factory=threading.Lock)

    def used(self) -> int:
        return sum(len(data) for data, _ in self.objects.values())


def _error(handler: BaseHTTPRequestHandler, status: int, code: str, message: str, key: str = "") -> None:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Key>{escape(key)}</Key><BucketName>{BUCKET}</BucketName><Resource>/{BUCKET}/{escape(key)}</Resource>"
        "<RequestId>FULLSTORE</RequestId><HostId>fullstore</HostId></Error>"
    ).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/xml")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store: FullStore  # set on the subclass made for each server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: pytest shows what the test asserts

    def _key(self) -> str | None:
        """The object key of a path-style request, None for the bucket itself."""
        path = unquote(urlsplit(self.path).path)
        bucket, _, key = path.lstrip("/").partition("/")
        assert bucket == BUCKET, path
        return key or None

    def _empty(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        key = self._key()
        if key is None:
            return self._empty(200)
        found = self.store.objects.get(key)
        if found is None:
            return self._empty(404)
        self.send_response(200)
        self.send_header("Content-Length", str(len(found[0])))
        self.send_header("Last-Modified", formatdate(found[1], usegmt=True))
        self.end_headers()

    def do_GET(self) -> None:
        if self.path == ADMIN + "state":
            body = json.dumps({"capacity": self.store.capacity, "refused": self.store.refused}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return self.wfile.write(body)  # type: ignore[return-value]
        key = self._key()
        found = self.store.objects.get(key or "")
        if found is None:
            return _error(self, 404, "NoSuchKey", "The specified key does not exist.", key or "")
        data, status = found[0], 200
        wanted = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        if wanted:
            start, end = int(wanted[1]), int(wanted[2])
            data, status = data[start : end + 1], 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Last-Modified", formatdate(found[1], usegmt=True))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        store = self.store
        if self.path == ADMIN + "capacity":
            with store.lock:
                store.capacity = int(data)
            return self._empty(204)
        key = self._key() or ""
        with store.lock:
            if self.headers.get("If-None-Match") == "*" and key in store.objects:
                return _error(
                    self, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"
                )
            if store.used() + len(data) > store.capacity:
                store.refused += 1
                a = store.answer
                return _error(self, a.status, a.code, a.message, key)
            store.objects[key] = (data, time.time())
        self._empty(200, {"ETag": '"0"'})

    def do_DELETE(self) -> None:
        with self.store.lock:
            self.store.objects.pop(self._key() or "", None)
        self._empty(204)


class RunningStore:
    """A store process, as the test sees it: where it answers, and its admin side."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint

    def _state(self) -> dict[str, int]:
        with urllib.request.urlopen(self.endpoint + ADMIN + "state", timeout=10) as answer:
            return dict(json.loads(answer.read()))

    @property
    def refused(self) -> int:
        """Writes answered as full so far."""
        return self._state()["refused"]

    @property
    def capacity(self) -> int:
        return self._state()["capacity"]

    def set_capacity(self, capacity: int) -> None:
        """What the store's admin does to give it room (or take some)."""
        put = urllib.request.Request(self.endpoint + ADMIN + "capacity", data=str(capacity).encode(), method="PUT")
        urllib.request.urlopen(put, timeout=10).close()


@contextmanager
def full_store(answer: FullAnswer, capacity: int) -> Iterator[RunningStore]:
    """The store, in a process of its own on a free loopback port until the block ends (stopped by PID)."""
    from ports import free_port  # the test's side only: the store's process runs without them
    from processes import wait_for_port

    port = free_port()
    argv = [sys.executable, __file__, str(answer.status), answer.code, answer.message, str(capacity), str(port)]
    log = Path(tempfile.mkstemp(prefix="pyblob-fullstore-", suffix=".log")[1])
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, log)
        yield RunningStore(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.unlink(missing_ok=True)


def serve(answer: FullAnswer, capacity: int, port: int) -> None:
    """Serve the store on 127.0.0.1:`port` until the process is stopped."""
    store = FullStore(answer, capacity)
    handler = type("FullStoreHandler", (Handler,), {"store": store})
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    status, code, message, room, port = sys.argv[1:6]
    serve(FullAnswer(int(status), code, message), int(room), int(port))
