"""WebSocket uploads at /upload_socket against a real server, with the `websockets` sync client."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from processes import RunPyblob
from shortlinks_site import Site
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

MiB = 1024 * 1024


@contextmanager
def socket_of(site: Site, headers: dict[str, str] | None = None) -> Iterator[ClientConnection]:
    url = site.url.replace("http://", "ws://") + "/upload_socket"
    with connect(url, additional_headers=headers, proxy=None, max_size=None, open_timeout=10) as ws:
        yield ws


def logged_in(ws: ClientConnection, site: Site, user: str = "alice") -> None:
    ws.send(site.tokens[user])
    assert ws.recv(timeout=10) == f"user is: {user}"


def reply(ws: ClientConnection) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(ws.recv(timeout=30))
    return answer


def send_old(ws: ClientConnection, name: str, data: bytes) -> dict[str, Any]:
    """pyBlobServer's form: the name, then the whole file in one binary message."""
    ws.send(name)
    ws.send(data)
    return reply(ws)


def download(url: str) -> httpx.Response:
    response = httpx.get(url)
    assert response.status_code == 200, response.text
    return response


def test_token_handshake_and_two_files_on_one_socket(site: Site, run_pyblob: RunPyblob) -> None:
    assert run_pyblob("quota", "set", "alice", "1KiB").returncode == 0
    with socket_of(site) as ws:
        logged_in(ws, site)
        first = send_old(ws, "notes.txt", b"hello")
        second = send_old(ws, "photo.png", b"\x89PNG" + bytes(100))
    assert first["file_url"] == f"{site.url}/s/{first['file_id']}"
    assert first["show_image"] == f"{first['file_url']}?output=html"
    assert (first["filename"], first["size"]) == ("notes.txt", 5)
    assert (first["available_space"], second["available_space"], second["size"]) == (1019, 915, 104)
    assert download(first["file_url"]).content == b"hello"
    got = download(second["file_url"])
    assert got.content == b"\x89PNG" + bytes(100)
    assert got.headers["content-type"] == "image/png"  # guessed from the name
    assert second["file_id"] != first["file_id"]


def test_sized_form_in_several_messages_with_header_auth(site: Site) -> None:
    data = os.urandom(3 * MiB + 5)
    with socket_of(site, site.auth("alice")) as ws:
        assert ws.recv(timeout=10) == "user is: alice"
        ws.send(json.dumps({"name": "clip.mp4", "size": len(data), "type": "video/mp4"}))
        for start in range(0, len(data), MiB):
            ws.send(data[start : start + MiB])
        done = reply(ws)
        ws.send(json.dumps({"name": "empty.bin", "size": 0}))  # no data messages at all
        empty = reply(ws)
    got = download(done["file_url"])
    assert got.content == data and got.headers["content-type"] == "video/mp4"
    assert done["size"] == len(data)
    assert download(empty["file_url"]).content == b""


def test_a_bad_token_closes_with_1008(site: Site) -> None:
    for headers, first in (({}, "pbt_wrong"), ({"authorization": "Bearer pbt_wrong"}, None)):
        with socket_of(site, headers) as ws:
            if first is not None:
                ws.send(first)
            assert reply(ws) == {"error": "missing or invalid token", "status_code": 401}
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_too_large_files_are_refused_and_the_socket_goes_on(site: Site, run_pyblob: RunPyblob) -> None:
    assert run_pyblob("quota", "set", "alice", "0", "--max-object-size", "1KiB").returncode == 0
    with socket_of(site) as ws:
        logged_in(ws, site)
        refused = send_old(ws, "big.bin", bytes(2048))
        assert refused["status_code"] == 413 and refused["filename"] == "big.bin" and "error" in refused
        ws.send(json.dumps({"name": "big2.bin", "size": 4096}))
        assert reply(ws)["status_code"] == 413  # refused from the header, before any data
        ws.send(bytes(4096))  # sent anyway: dropped
        ok = send_old(ws, "small.txt", b"fits")
        assert download(ok["file_url"]).content == b"fits"
        ws.send(json.dumps({"name": "liar.bin", "size": 3}))
        ws.send(b"four")
        assert reply(ws)["status_code"] == 400  # more than declared
        assert send_old(ws, "after.txt", b"still here")["size"] == 10


def test_quota_and_available_space(site: Site, run_pyblob: RunPyblob) -> None:
    assert run_pyblob("quota", "set", "alice", "10KiB").returncode == 0
    with socket_of(site) as ws:
        logged_in(ws, site)
        ws.send(json.dumps({"name": "a.bin", "size": 20 * 1024}))
        assert reply(ws)["status_code"] == 403
        done = send_old(ws, "b.bin", bytes(4096))
        assert done["available_space"] == 10 * 1024 - 4096
        assert send_old(ws, "c.bin", bytes(8192))["status_code"] == 403


def test_hostile_headers_are_400_and_the_socket_goes_on(site: Site) -> None:
    """A header nested past the JSON parser's limit, or naming a lone surrogate (no UTF-8 form to
    store), used to end the socket with an unhandled error instead of a 400 for that file."""
    with socket_of(site) as ws:
        logged_in(ws, site)
        for header in ('{"name": "a", "x": ' + "[" * 2000 + "]" * 2000 + "}", '{"name": "\\ud800", "size": 1}'):
            ws.send(header)
            refused = reply(ws)
            assert refused["status_code"] == 400 and "error" in refused, refused
        ws.send(b"x")  # a refused file's data: dropped
        assert send_old(ws, "after.txt", b"still here")["size"] == 10


def closed_with(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=10)
    return closed.value.rcvd.code if closed.value.rcvd else None


def test_a_first_message_past_16_KiB_closes_with_1009_and_later_ones_may_be_16_MiB(site: Site) -> None:
    """A socket's first message is the token, a file name or a header (pyblob/boundedws.py): past 16 KiB
    it is refused with 1009 (message too big) before it is read, with or without the header's token.
    At the bound it is read (and is no token). After it, pyBlobServer's form takes a 12 MiB file."""
    first_max = 16 * 1024
    for headers in (None, site.auth("alice")):
        with socket_of(site, headers) as ws:
            if headers is not None:
                assert ws.recv(timeout=10) == "user is: alice"
            ws.send("x" * (first_max + 1))
            assert closed_with(ws) == 1009
    with socket_of(site) as ws:
        ws.send("x" * first_max)
        assert reply(ws) == {"error": "missing or invalid token", "status_code": 401}
        assert closed_with(ws) == 1008
    data = os.urandom(12 * MiB)
    with socket_of(site) as ws:
        logged_in(ws, site)
        done = send_old(ws, "large.bin", data)
    assert done["size"] == len(data)
    assert download(done["file_url"]).content == data
