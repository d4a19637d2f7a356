"""`pyblob serve` as a real process: health, worker processes, first-start bootstrap."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from pathlib import Path

import httpx
from processes import RunPyblob, Server, StartServer

from objstore import Store
from pyblob.boundedhttp import CoalescingTransport

BANNER = "These credentials are shown only this once"
MiB = 1024 * 1024


def test_health_answers_get_and_head(server: Server) -> None:
    got = httpx.get(server.url + "/health")
    assert got.status_code == 200
    assert got.json() == {"status": "ok"}
    assert httpx.head(server.url + "/health").status_code == 200


def test_two_workers_serve_health(start_server: StartServer) -> None:
    server = start_server("--workers", "2")
    for _ in range(5):
        assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    server.stop()
    assert server.proc.returncode is not None


def test_first_start_prints_admin_credentials_once(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    first = start_server()
    assert BANNER in first.stdout
    access_key = re.search(r"access key:\s+(\S+)", first.stdout)
    secret_key = re.search(r"secret key:\s+(\S+)", first.stdout)
    token = re.search(r"API token:\s+(\S+)", first.stdout)
    assert access_key and secret_key and token
    assert token.group(1).startswith("pbt_")
    first.stop()

    second = start_server()
    assert BANNER not in second.stdout
    assert secret_key.group(1) not in second.stdout + second.stderr
    second.stop()

    keys = json.loads(run_pyblob("key", "list", "admin", "--json").stdout)
    assert [k["access_key"] for k in keys] == [access_key.group(1)]


def test_admin_key_pair_imported_from_env(start_server: StartServer, run_pyblob: RunPyblob, data_dir: Path) -> None:
    env = {
        "PYBLOB_ADMIN_USER": "root",
        "PYBLOB_ADMIN_ACCESS_KEY": "ADMINKEY",
        "PYBLOB_ADMIN_SECRET_KEY": "s3cr/t+key==",
    }
    server = start_server(env=env)
    assert BANNER in server.stdout
    assert "ADMINKEY" in server.stdout
    assert "s3cr/t+key==" not in server.stdout  # the operator has it; no need to echo it into logs
    server.stop()

    keys = json.loads(run_pyblob("key", "list", "--json").stdout)
    assert [(k["access_key"], k["user"]) for k in keys] == [("ADMINKEY", "root")]
    store = Store(data_dir)
    try:
        record = store.accounts.lookup_key("ADMINKEY")
        assert record is not None and record.secret_key == "s3cr/t+key=="
    finally:
        store.close()


def test_half_an_admin_key_pair_is_refused(run_pyblob: RunPyblob) -> None:
    result = run_pyblob("serve", "--port", "1", env={"PYBLOB_ADMIN_ACCESS_KEY": "ADMINKEY"})
    assert result.returncode == 2
    assert "PYBLOB_ADMIN_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_ssl_key_without_certificate_is_refused(run_pyblob: RunPyblob, tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("not used")
    result = run_pyblob("serve", "--port", "1", "--ssl-keyfile", str(key))
    assert result.returncode == 2
    assert "PYBLOB_TLS_CERTFILE" in result.stderr
    assert "Traceback" not in result.stderr


def send_head(server: Server, head: bytes, extra: int) -> bytes:
    """Send `head` and then `extra` more bytes of it (1 MiB at a time, never its end); what came back."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        try:
            sock.sendall(head)
            for _ in range(extra // MiB):
                sock.sendall(b"a" * MiB)
        except OSError:  # the server closed the connection while we were still sending: what we want
            pass
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


def test_an_endless_request_line_or_header_is_refused(server: Server) -> None:
    """No middleware sees a request before its head ends: the HTTP layer itself must bound it."""
    for head in (b"GET /s/x?q=", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: "):
        answer = send_head(server, head, 64 * MiB)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    # A large but sane head (big cookies, a long presigned URL) still passes.
    big = httpx.get(server.url + "/health", params={"q": "a" * 8000}, headers={"x-big": "b" * 16000})
    assert big.status_code == 200


def test_pipelined_requests_get_whole_answers_in_order(server: Server) -> None:
    """Writes are held to the end of an event-loop turn (boundedhttp.CoalescingTransport): answers to
    requests sent back to back on one connection still come whole and in order, the last one closing."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    paths = ["/health", "/nobucket-here-pipelined/k", "/health"]
    heads = [
        f"GET {p} HTTP/1.1\r\nHost: x\r\n" + ("Connection: close\r\n" if i == 2 else "") + "\r\n"
        for i, p in enumerate(paths)
    ]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall("".join(heads).encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert statuses == [b"200", b"404", b"200"], answer[:500]
    assert answer.count(b'{"status":"ok"}') == 2 and b"<Code>NoSuchBucket</Code>" in answer


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def writelines(self, pieces: list[bytes]) -> None:  # one system call for all the pieces
        self.writes.append(b"".join(pieces))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def test_the_writes_of_one_loop_turn_leave_as_one() -> None:
    async def scenario() -> RecordingTransport:
        inner = RecordingTransport()
        transport = CoalescingTransport(inner, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(memoryview(b"body"))
        assert inner.writes == [] and transport.get_write_buffer_size() == 23
        await asyncio.sleep(0)
        transport.write(b"next")
        transport.close()  # flushes what is held before closing
        assert inner.closed
        return inner

    inner = asyncio.run(scenario())
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next"]
