"""Slow clients (issue 15): a real `pyblob serve` with short timeouts, attacked with raw sockets.

What each attack must get, and what these tests check:

- A slowloris (a request head one byte at a time) is disconnected once `PYBLOB_HEAD_TIMEOUT_SECONDS`
  have passed since its first byte; a connection that sends nothing at all, likewise from its opening.
- A PUT whose body stalls part way is disconnected after `PYBLOB_BODY_IDLE_TIMEOUT_SECONDS` without
  bytes; nothing of the object is visible (HeadObject 404) and its staging files are gone.
- A GET of a large object whose client never reads holds no more than the socket buffers: the server's
  memory does not grow with the object, and the connection is dropped after `PYBLOB_SEND_TIMEOUT_SECONDS`.
- Hundreds of idle connections do not stop the server from answering another client, and are closed.
- WebSocket sockets that have not shown a token and begin a large message are closed with 1009 at its
  frame's header: the server's memory does not grow with what strangers send.
- While 200 slowloris connections run, a normal client's rate of small GETs is measured against its
  rate without them; the ratio is printed (`-s`), not asserted.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from processes import Server, StartServer, isolate_from_aws, user_s3_client
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

KiB = 1024
MiB = 1024 * KiB
TIMEOUT = 2.0  # each of the three timeouts of the server under test
MARGIN = 3.0  # how late a cut may come: timer granularity and a loaded test machine
ADMIN = {"access_key": "SLOWCLIENTADMIN", "secret_key": "slow-clients-secret"}
BUCKET = "slow"
SERVER_ENV = {
    "PYBLOB_ADMIN_ACCESS_KEY": ADMIN["access_key"],
    "PYBLOB_ADMIN_SECRET_KEY": ADMIN["secret_key"],
    "PYBLOB_HEAD_TIMEOUT_SECONDS": str(TIMEOUT),
    "PYBLOB_BODY_IDLE_TIMEOUT_SECONDS": str(TIMEOUT),
    "PYBLOB_SEND_TIMEOUT_SECONDS": str(TIMEOUT),
}


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


@pytest.fixture
def server(start_server: StartServer) -> Server:
    return start_server(env=SERVER_ENV)


@pytest.fixture
def s3(server: Server) -> BaseClient:
    client = user_s3_client(server.url, ADMIN, attempts=1, connect_timeout=10, read_timeout=10)
    client.create_bucket(Bucket=BUCKET)
    return client


def netloc(server: Server) -> str:
    """The Host header a presigned URL of the server was signed for."""
    return server.url.removeprefix("http://")


def connect(server: Server) -> socket.socket:
    host, port = netloc(server).split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed the connection (reads whatever it sent first)."""
    sock.setblocking(False)
    try:
        while True:
            if not sock.recv(64 * KiB):
                return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * KiB
    raise AssertionError("no VmRSS line")


def drip_head(sock: socket.socket, seconds: float, interval: float = 0.2) -> float | None:
    """Sends a head that never ends, one byte each `interval`: the seconds until the server closed
    the connection, or None if it was still open after `seconds`."""
    start = time.monotonic()
    head = b"GET /health HTTP/1.1\r\nHost: pyblob\r\nX-Slow: " + b"a" * 100_000
    for byte in head:
        if time.monotonic() - start > seconds:
            return None
        try:
            sock.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start
        if closed_by_server(sock):
            return time.monotonic() - start
        time.sleep(interval)
    return None


def test_a_slowloris_head_is_cut_off_after_the_head_timeout(server: Server) -> None:
    with connect(server) as sock:
        cut = drip_head(sock, TIMEOUT + MARGIN)
    assert cut is not None, "a head sent one byte each 0.2 s was still being read"
    assert cut >= TIMEOUT * 0.8
    with httpx.Client(trust_env=False, timeout=10) as client:
        assert client.get(server.url + "/health").status_code == 200


def test_a_body_that_stalls_is_cut_off_and_leaves_nothing(server: Server, s3: BaseClient, data_dir: Path) -> None:
    url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "stalled"}, ExpiresIn=300)
    path = url.removeprefix(server.url)
    with connect(server) as sock:
        head = f"PUT {path} HTTP/1.1\r\nHost: {netloc(server)}\r\nContent-Length: {10 * MiB}\r\n\r\n"
        sock.sendall(head.encode() + os.urandom(MiB))
        start = time.monotonic()
        while not closed_by_server(sock) and time.monotonic() - start < TIMEOUT + MARGIN:
            time.sleep(0.1)
        assert closed_by_server(sock), "a body stalled after 1 MiB of 10 was still awaited"
    with pytest.raises(ClientError) as refused:
        s3.head_object(Bucket=BUCKET, Key="stalled")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    deadline = time.monotonic() + 5
    while os.listdir(data_dir / "tmp") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert os.listdir(data_dir / "tmp") == []


def test_a_reader_that_never_reads_holds_no_memory_and_is_dropped(server: Server, s3: BaseClient) -> None:
    size = 20 * MiB
    s3.put_object(Bucket=BUCKET, Key="large", Body=os.urandom(size))
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "large"}, ExpiresIn=300)
    before = rss_bytes(server.proc.pid)
    with connect(server) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KiB)
        sock.sendall(f"GET {url.removeprefix(server.url)} HTTP/1.1\r\nHost: {netloc(server)}\r\n\r\n".encode())
        time.sleep(TIMEOUT / 2)
        during = rss_bytes(server.proc.pid)
        time.sleep(TIMEOUT / 2 + MARGIN)
        first = sock.recv(MiB)
        received = len(first)
        sock.settimeout(10)
        try:
            while piece := sock.recv(MiB):
                received += len(piece)
        except ConnectionResetError:
            pass
    print(
        f"\nnever-reading GET of {size // MiB} MiB: server RSS {before / MiB:.1f} -> {during / MiB:.1f} MiB, "
        f"{received / MiB:.1f} MiB received before the cut"
    )
    assert first.startswith(b"HTTP/1.1 200 "), first[:200]
    assert during - before < 8 * MiB, "the server buffered the response of a client that does not read"
    assert received < size, "the whole object went out: the server waited for a client that never read"


def test_many_idle_connections_leave_the_server_serving_and_are_closed(server: Server, s3: BaseClient) -> None:
    idle = [connect(server) for _ in range(300)]
    try:
        assert s3.list_buckets()["Buckets"][0]["Name"] == BUCKET
        deadline = time.monotonic() + TIMEOUT + MARGIN
        while time.monotonic() < deadline and not all(closed_by_server(sock) for sock in idle):
            time.sleep(0.2)
        open_left = sum(not closed_by_server(sock) for sock in idle)
        assert open_left == 0, f"{open_left} of 300 idle connections still open"
    finally:
        for sock in idle:
            sock.close()


def binary_frame_head(length: int) -> bytes:
    """The head of a client's (masked) binary frame of `length` bytes, RFC 6455 section 5.2."""
    return bytes([0x82, 0x80 | 127]) + length.to_bytes(8, "big") + os.urandom(4)


def test_websocket_strangers_cannot_make_the_server_hold_their_messages(server: Server) -> None:
    """Before a socket has shown its token, its first message may be 16 KiB at most (a token, a file name
    or a header: never more than 4,096 characters). Ten sockets without a token each begin a 15 MiB
    message and send 8 MiB of it: each is closed with 1009 (message too big) at the frame's head,
    and the server holds none of it (it used to hold it all, until the 30 s wait for a token ended)."""
    url = server.url.replace("http://", "ws://") + "/upload_socket"
    before = rss_bytes(server.proc.pid)
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(ws_connect(url, proxy=None, open_timeout=10)) for _ in range(10)]
        for ws in sockets:
            ws.socket.settimeout(10)
            try:
                ws.socket.sendall(binary_frame_head(15 * MiB))
                ws.socket.sendall(bytes(8 * MiB))
            except OSError:
                pass  # the server refused it part way: closed, as it should be
        during = rss_bytes(server.proc.pid)
        codes = []
        for ws in sockets:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            codes.append(closed.value.rcvd.code if closed.value.rcvd else None)
    print(f"\n10 stranger sockets of 8 MiB each: server RSS {before / MiB:.1f} -> {during / MiB:.1f} MiB")
    assert codes == [1009] * 10
    assert during - before < 8 * MiB, "the server buffered messages of sockets that showed no token"


class Slowloris:
    """`count` connections each sending a never-ending head one byte a tick, from a process of their own
    (not to take the measuring client's interpreter lock); connections the server cuts are reopened."""

    def __init__(self, server: Server, count: int, tick: float = 0.5):
        self.server, self.count, self.tick = server, count, tick
        self.stop = multiprocessing.Event()
        self.reopened = multiprocessing.Value("i", 0)
        self.process = multiprocessing.get_context("fork").Process(target=self.run, daemon=True)

    def run(self) -> None:
        socks = [self.open() for _ in range(self.count)]
        while not self.stop.wait(self.tick):
            for i, sock in enumerate(socks):
                try:
                    sock.send(b"a")
                except OSError:
                    sock.close()
                    socks[i] = self.open()
                    with self.reopened.get_lock():
                        self.reopened.value += 1
        for sock in socks:
            sock.close()

    def open(self) -> socket.socket:
        sock = connect(self.server)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: pyblob\r\nX-Slow: ")
        return sock

    def __enter__(self) -> Slowloris:
        self.process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def small_gets_per_second(url: str, count: int = 200) -> float:
    with httpx.Client(trust_env=False, timeout=10) as client:
        start = time.monotonic()
        for _ in range(count):
            assert client.get(url).status_code == 200
        return count / (time.monotonic() - start)


@pytest.fixture
def small_object_url(s3: BaseClient) -> Iterator[str]:
    s3.put_object(Bucket=BUCKET, Key="small", Body=b"x" * 4 * KiB)
    yield s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "small"}, ExpiresIn=300)


def test_a_normal_client_keeps_its_rate_under_a_slowloris(server: Server, small_object_url: str) -> None:
    small_gets_per_second(small_object_url, 50)  # warm-up: the server's first requests are slower
    alone = small_gets_per_second(small_object_url)
    with Slowloris(server, 200) as attack:
        time.sleep(TIMEOUT + 1)  # long enough for the server to cut the attackers once, and them to come back
        attacked = small_gets_per_second(small_object_url)
    print(
        f"\n200 sequential 4 KiB GETs: {alone:.0f}/s alone, {attacked:.0f}/s under a 200-connection slowloris "
        f"(ratio {attacked / alone:.2f}; {attack.reopened.value} attacker connections cut and reopened)"
    )
    assert attacked > 0
