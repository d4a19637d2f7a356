"""Object bodies sent from chunk files with `sendfile` (pyblob/boundedhttp.py, s3api/objectbody.py):
whole, in ranges across chunk boundaries, to readers slower than the socket, and to readers that
leave half way. Plain sockets read the answers, so nothing in a client library hides a wrong byte."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import blake3
from botocore.client import BaseClient

from pyblob.boundedhttp import _drop, copy_file

MiB = 1024 * 1024


def incompressible(size: int, seed: bytes) -> bytes:
    return blake3.blake3(seed).digest(length=size)


def put_big(s3: BaseClient, bucket: str, key: str, size: int) -> bytes:
    body = incompressible(size, key.encode())
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return body


def connect(url: str) -> tuple[socket.socket, bytes]:
    """A connection to the URL's server and the start of a GET of it (request line and Host, which
    the signature covers), to be ended with more headers and an empty line."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "", parts.port or 80), timeout=20)
    return sock, f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n".encode()


def read_answer(stream: BinaryIO, pause: float = 0.0) -> tuple[bytes, bytes]:
    """One HTTP answer with a Content-Length from a connection's reader: its head and its body;
    `pause` seconds of not reading first, so the server meets a full socket buffer."""
    time.sleep(pause)
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = stream.readline()
        assert line, "the server closed the connection in the head"
        head += line
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:"))
    body = stream.read(length)
    assert len(body) == length, "the server closed the connection before the body ended"
    return head, body


def test_a_multi_chunk_object_and_ranges_across_its_chunks_arrive_whole(s3_http: BaseClient, http_bucket: str) -> None:
    body = put_big(s3_http, http_bucket, "big", 12 * MiB)  # ~24 chunks of 512 KiB on average
    url = s3_http.generate_presigned_url("get_object", Params={"Bucket": http_bucket, "Key": "big"})
    sock, start = connect(url)
    with sock, sock.makefile("rb") as reader:
        ranges = [(0, len(body) - 1), (1, 3 * MiB), (5 * MiB - 3, 5 * MiB + 3), (len(body) - 10, len(body) - 1)]
        for first, last in ranges:
            sock.sendall(b"%sRange: bytes=%d-%d\r\n\r\n" % (start, first, last))
            head, got = read_answer(reader)
            assert head.startswith(b"HTTP/1.1 206 "), head
            assert got == body[first : last + 1]


def test_a_slow_reader_gets_every_byte_and_the_connection_goes_on(s3_http: BaseClient, http_bucket: str) -> None:
    """The socket's buffer fills long before 24 MiB are out: the server waits for room, then sends on."""
    body = put_big(s3_http, http_bucket, "slow", 24 * MiB)
    url = s3_http.generate_presigned_url("get_object", Params={"Bucket": http_bucket, "Key": "slow"})
    sock, start = connect(url)
    with sock, sock.makefile("rb") as reader:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        request = start + b"\r\n"
        sock.sendall(request * 2)  # pipelined: the second answer follows the first on the same connection
        for _ in range(2):
            head, got = read_answer(reader, pause=1.0)
            assert head.startswith(b"HTTP/1.1 200 "), head
            assert got == body


def test_a_reader_that_leaves_half_way_does_not_hurt_the_server(s3_http: BaseClient, http_bucket: str) -> None:
    body = put_big(s3_http, http_bucket, "left", 24 * MiB)
    url = s3_http.generate_presigned_url("get_object", Params={"Bucket": http_bucket, "Key": "left"})
    for _ in range(3):
        sock, start = connect(url)
        with sock:
            sock.sendall(start + b"\r\n")
            assert sock.recv(MiB)  # some of it, then gone with the rest unread
    assert s3_http.get_object(Bucket=http_bucket, Key="left")["Body"].read() == body


def test_the_fallback_reads_the_same_bytes_it_would_have_sent(tmp_path: Path) -> None:
    """Where the transport still holds bytes of its own, the file is read and sent as body pieces."""
    data = incompressible(700 * 1024, b"fallback")
    path = tmp_path / "chunk"
    path.write_bytes(data)
    messages: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        messages.append(message)

    fd = os.open(path, os.O_RDONLY)
    try:
        asyncio.run(copy_file(send, fd, 1000, 600 * 1024))
    finally:
        os.close(fd)
    pieces = [m["body"] for m in messages]
    assert all(m["more_body"] for m in messages) and len(pieces) == 3
    assert b"".join(pieces) == data[1000 : 1000 + 600 * 1024]  # type: ignore[arg-type]


def test_a_partly_written_head_resumes_where_it_stopped() -> None:
    assert _drop([b"abc", b"de", b"f"], 0) == [b"abc", b"de", b"f"]
    assert _drop([b"abc", b"de", b"f"], 4) == [b"e", b"f"]
    assert _drop([b"abc", b"de", b"f"], 5) == [b"f"]
    assert _drop([b"abc", b"de", b"f"], 6) == []
