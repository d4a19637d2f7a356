"""Sequences of WebSocket messages to a real `pyblob serve`'s `/upload_socket`, drawn by hypothesis.

A sequence mixes file names (pyBlobServer's form), JSON headers with hostile names, sizes and types,
text that only begins like JSON, text past the header bound, and binary messages of any length
arriving where they fit and where they do not. `Model` says what the socket must answer, message by
message (shortlinks/websocket.py's protocol): each file a link whose bytes are exactly the ones sent,
or a 4xx error naming it, binary messages nobody waits for dropped, the socket open throughout. A
last file ends each sequence, so every answer is read without waiting on a clock. Then every link
is downloaded and compared, and the server has logged no Traceback.

The handshake gets hostile tokens too (the first message, or the Authorization header), and the
frames uvicorn refuses for pyblob (a message past 16 MiB, text that is not UTF-8) close the socket
with their code while the server goes on.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fuzzing import budget
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from processes import RunPyblob, Server, StartServer
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from objstore.links.uploads import safe_name
from shortlinks.api import is_utf8

KiB = 1024
MAX_OBJECT = 48 * KiB  # the user's size limit: past it a file is 413
MAX_TEXT = 4096  # shortlinks.websocket.MAX_TEXT: a longer header is 400
WS_MAX_MESSAGE = 16 * 1024 * 1024  # pyblob serve's ws_max_size
UNLIMITED = {"PYBLOB_RATELIMIT_REST_USER_RATE": "0", "PYBLOB_RATELIMIT_REST_IP_RATE": "0"}
QUIET = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]


@dataclass
class Site:
    server: Server
    token: str


@pytest.fixture
def site(start_server: StartServer, run_pyblob: RunPyblob) -> Site:
    made = run_pyblob("user", "add", "ws", "--json")
    assert made.returncode == 0, made.stderr
    limited = run_pyblob("quota", "set", "ws", "0", "--max-object-size", f"{MAX_OBJECT // KiB}KiB")
    assert limited.returncode == 0, limited.stderr
    return Site(start_server(env=UNLIMITED), json.loads(made.stdout)["token"])


@contextmanager
def socket_of(site: Site, headers: dict[str, str] | None = None) -> Iterator[ClientConnection]:
    url = site.server.url.replace("http://", "ws://") + "/upload_socket"
    with connect(url, additional_headers=headers, proxy=None, max_size=None, open_timeout=10) as ws:
        yield ws


def close_code(ws: ClientConnection) -> int | None:
    """The code the server closed with, once it has (every message before it read and dropped)."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=20)
    return closed.value.rcvd.code if closed.value.rcvd else None


def assert_server_well(site: Site) -> None:
    assert httpx.get(f"{site.server.url}/health", timeout=10).status_code == 200
    assert "Traceback" not in site.server.stderr and "Exception in ASGI" not in site.server.stderr


# --- the messages --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Binary:
    size: int
    seed: int

    @property
    def data(self) -> bytes:
        return random.Random(self.seed).randbytes(self.size)


NAMES = st.text(max_size=30) | st.sampled_from(["a.txt", "../../etc/passwd", "x\x00y", "<svg onload=1>.svg", " "])
OLD_FORM = NAMES.filter(lambda name: not name.lstrip().startswith("{")).map(Text)
NAME_VALUES = NAMES | st.integers() | st.none() | st.booleans() | st.lists(st.integers(), max_size=2)
SIZES = (
    st.integers(0, 3 * KiB)
    | st.integers(-3, MAX_OBJECT + 3)
    | st.sampled_from([MAX_OBJECT, MAX_OBJECT + 1, 2**63, 2**70])
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=3)
    | st.none()
)
SIZED_FORM = st.fixed_dictionaries(
    {"name": NAME_VALUES}, optional={"size": SIZES, "type": st.text(max_size=20) | st.integers()}
).map(lambda header: Text(json.dumps(header)))
HOSTILE_TEXT = (
    st.text(max_size=40).map(lambda tail: Text("{" + tail))  # JSON that is not, mostly
    | st.sampled_from(['{"name": "\\ud800", "size": 1}', '{"name": "a", "x": ' + "[" * 3000 + "]" * 3000 + "}"]).map(
        Text
    )
    | st.integers(MAX_TEXT - 1, MAX_TEXT + 2).map(lambda n: Text("n" * n))
)
BINARY = st.builds(Binary, st.integers(0, 3 * KiB) | st.integers(0, MAX_OBJECT + 2 * KiB), st.integers(0, 2**32))
MESSAGES = st.lists(OLD_FORM | SIZED_FORM | HOSTILE_TEXT | BINARY | BINARY, max_size=10)


# --- what the socket must answer ----------------------------------------------------------------
@dataclass
class Pending:
    name: str
    size: int | None  # None: pyBlobServer's form, the whole file in the next binary message
    got: bytes = b""


@dataclass
class Model:
    """shortlinks/websocket.py's protocol, from its docstring: the answers a sequence must get."""

    pending: Pending | None = None
    answers: list[tuple[Any, ...]] = field(default_factory=list)  # ("link", name, bytes) | ("error", status, name)

    def text(self, text: str) -> None:
        if self.pending is not None:  # the next file began before this one's data
            self.refuse(400, self.pending.name)
        header = self.header(text)
        if isinstance(header, int):
            self.refuse(header, "")
            return
        self.pending = header
        if header.size is not None and header.size > MAX_OBJECT:
            self.refuse(413, header.name)
        elif header.size == 0:
            self.done(header)

    def header(self, text: str) -> Pending | int:
        """The file a header announces, or the status of its refusal."""
        if len(text) > MAX_TEXT:
            return 400
        if not text.lstrip().startswith("{"):
            return Pending(text, None)
        try:
            header = json.loads(text)
        except (ValueError, RecursionError):
            return 400
        name, size = header.get("name"), header.get("size")
        if not isinstance(name, str) or not name or not is_utf8(name):
            return 400
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            return 400
        return Pending(name, size)

    def binary(self, data: bytes) -> None:
        file = self.pending
        if file is None:
            return  # nobody waits for it: dropped
        if file.size is None:
            if len(data) > MAX_OBJECT:
                self.refuse(413, file.name)
                return
            file.got = data
            self.done(file)
        elif len(file.got) + len(data) > file.size:
            self.refuse(400, file.name)
        else:
            file.got += data
            if len(file.got) == file.size:
                self.done(file)

    def done(self, file: Pending) -> None:
        self.answers.append(("link", safe_name(file.name), file.got))
        self.pending = None

    def refuse(self, status: int, name: str) -> None:
        self.answers.append(("error", status, name))
        self.pending = None


def observed(answer: dict[str, Any]) -> tuple[Any, ...]:
    if "error" in answer:
        assert set(answer) == {"error", "status_code", "filename"} and answer["error"], answer
        return ("error", answer["status_code"], answer["filename"])
    assert {"file_id", "file_url", "filename", "size", "available_space"} <= set(answer), answer
    return ("link", answer["filename"], answer["size"])


@given(messages=MESSAGES)
@budget(30, deadline=None, suppress_health_check=QUIET)
def test_any_sequence_of_messages_gets_the_answers_of_the_protocol(site: Site, messages: list[Text | Binary]) -> None:
    model = Model()
    with socket_of(site) as ws:
        ws.send(site.token)
        assert ws.recv(timeout=20) == "user is: ws"
        for message in [*messages, Text("last.bin"), Binary(5, 0)]:
            if isinstance(message, Text):
                ws.send(message.text)
                model.text(message.text)
            else:
                ws.send(message.data)
                model.binary(message.data)
        answers = []
        while not answers or answers[-1].get("filename") != "last.bin" or "file_id" not in answers[-1]:
            answers.append(json.loads(ws.recv(timeout=30)))
    want = [(kind, a, len(b)) if kind == "link" else (kind, a, b) for kind, a, b in model.answers]
    assert [observed(answer) for answer in answers] == want
    links = [(a["file_url"], body) for a, (kind, _, body) in zip(answers, model.answers, strict=True) if kind == "link"]
    for url, body in links:
        served = httpx.get(url, timeout=20)
        assert (served.status_code, served.content) == (200, body), url
    assert_server_well(site)


RIGHT = "<the user's token>"  # stands for it: the strategies are made before the user is
TOKENS = (
    st.just(RIGHT)
    | st.text(max_size=60)
    | st.sampled_from(["", " ", "Bearer", "pbt_", "pbt_" + "a" * 5000, "\x00"])
    | st.integers(MAX_TEXT - 1, MAX_TEXT + 2).map(lambda n: "t" * n)
)


@given(token=TOKENS, where=st.sampled_from(["message", "binary", "header"]), padded=st.booleans())
@budget(30, deadline=None, suppress_health_check=QUIET)
def test_any_token_but_the_right_one_is_401_and_closes_with_1008(
    site: Site, token: str, where: str, padded: bool
) -> None:
    """The right token (padded with spaces or not) signs in; anything else, sent as the first text or
    binary message or as the handshake's bearer token, is `{"error", "status_code": 401}` and 1008."""
    right = token == RIGHT
    token = site.token if right else token
    if padded:
        token = f" {token} "
    in_header = where == "header" and token.strip() and token.isascii() and token.isprintable()
    headers = {"authorization": f"Bearer {token}"} if in_header else None
    with socket_of(site, headers) as ws:
        if headers is None:
            ws.send(token.encode() if where == "binary" else token)
        if right and where != "binary":
            assert ws.recv(timeout=20) == "user is: ws"
        else:
            assert json.loads(ws.recv(timeout=20)) == {"error": "missing or invalid token", "status_code": 401}
            assert close_code(ws) == 1008
    assert_server_well(site)


def test_frames_uvicorn_refuses_close_the_socket_and_the_server_goes_on(site: Site) -> None:
    """A message past 16 MiB closes with 1009 (too big), text that is not UTF-8 with 1007; either
    way before pyblob holds more than the message's bound, and the next socket works."""
    for frame, code in ((bytes(WS_MAX_MESSAGE + 1), 1009), (b"\xff\xfe not utf-8", 1007)):
        with socket_of(site) as ws:
            ws.send(site.token)
            assert ws.recv(timeout=20) == "user is: ws"
            ws.send(frame, text=code == 1007)
            assert close_code(ws) == code
    with socket_of(site) as ws:
        ws.send(site.token)
        assert ws.recv(timeout=20) == "user is: ws"
        ws.send("after.txt")
        ws.send(b"still here")
        assert json.loads(ws.recv(timeout=20))["size"] == 10
    assert_server_well(site)
    assert site.server.stderr.count("WARNING:  Invalid UTF-8 sequence received from client.") == 1  # one line
