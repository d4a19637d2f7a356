"""WebSocket uploads at `/upload_socket`: pyBlobServer's protocol, with limits, several files a socket.

1. The client authenticates with `Authorization: Bearer <token>` on the handshake, or else sends the
   token as its first text message. A bad token gets `{"error": ..., "status_code": 401}` and the
   socket is closed with 1008 (policy violation). A good one gets the text `user is: <name>`. The
   token is checked again before each file becomes a link: once it is rotated or revoked, the file
   gets the same 401 and the socket is closed with 1008.
2. Then, for each file, a text message and the data:
   - pyBlobServer's form: the file name, then the whole file as one binary message;
   - the form that declares the size: `{"name": ..., "size": <bytes>, "type": <content type>}`, then
     binary messages until `size` bytes have come (none for an empty file). The size is held of the
     quota before the first byte, so a file that cannot fit is refused at once.
   Each file is answered with `{file_id, file_url, show_image, available_space, filename, size}` or
   `{error, status_code, filename}`; the socket stays open for the next file either way. Binary
   messages of a refused file are dropped until the next text message.

A message is at most the server's WebSocket message size (uvicorn's `ws_max_size`, 16 MiB by
default; a socket's first message, at most 16 KiB: pyblob/boundedws.py), which bounds a file in
pyBlobServer's form; bigger files need the sized form (or tus). The bytes go through `LinkUpload`:
the owner's size limit and quota, durability and the short link.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from objstore import Store
from objstore.errors import StoreError
from objstore.links import LinkUpload
from objstore.records import LinkRecord

from .api import is_utf8
from .errors import ApiError, from_store
from .filetypes import content_type_for
from .ratelimit import USER_LIMIT_NAME, rate_limited, user_wait

AUTH_TIMEOUT = 30.0  # for the token message
IDLE_TIMEOUT = 300.0  # between messages
MAX_TEXT = 4096  # a file name or header message, or the token

GetStore = Callable[[], Store]


def websocket_routes(get_store: GetStore, public_url: str) -> list[WebSocketRoute]:
    uploads = SocketUploads(get_store, public_url.rstrip("/"))
    return [WebSocketRoute("/upload_socket", uploads.endpoint)]


class SocketClosed(Exception):
    """The client went away or stayed silent too long."""


class SocketUploads:
    """The `/upload_socket` endpoint: authenticates the socket, then runs one upload session on it."""

    def __init__(self, get_store: GetStore, public_url: str):
        self.get_store = get_store
        self.public_url = public_url

    async def endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        store = self.get_store()
        session: Session | None = None
        try:
            signed_in = await self.authenticate(websocket, store)
            if signed_in is None:
                return
            user, token = signed_in
            await websocket.send_text(f"user is: {user}")
            session = Session(store, user, token, websocket, self.public_url)
            await session.run()
        except (SocketClosed, WebSocketDisconnect):  # the latter when a send finds the client gone
            pass
        finally:
            if session is not None:
                await run_in_threadpool(session.drop)

    async def authenticate(self, websocket: WebSocket, store: Store) -> tuple[str, str] | None:
        """(user, token) of the handshake's bearer token or of the first text message; None after closing."""
        scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            message = await receive(websocket, AUTH_TIMEOUT)
            token = message.get("text") or ""
        user = None
        if token.strip() and len(token) <= MAX_TEXT:
            user = await run_in_threadpool(store.accounts.user_for_token, token.strip())
        if user is None:
            await websocket.send_json({"error": "missing or invalid token", "status_code": 401})
            await websocket.close(1008, "invalid token")
            return None
        return user, token.strip()


async def receive(websocket: WebSocket, timeout: float) -> MutableMapping[str, Any]:
    """The next text or binary message; SocketClosed on disconnect or silence."""
    try:
        message = await asyncio.wait_for(websocket.receive(), timeout)
    except TimeoutError:
        await websocket.close(1000, "idle")
        raise SocketClosed() from None
    if message["type"] == "websocket.disconnect":
        raise SocketClosed()
    return message


@dataclass
class Incoming:
    """The file being received: its header, and its upload once opened."""

    name: str
    size: int | None  # declared; None: pyBlobServer's form, one binary message
    content_type: str | None
    upload: LinkUpload | None = None


class Session:
    """One authenticated socket: files one after the other."""

    def __init__(self, store: Store, user: str, token: str, websocket: WebSocket, public_url: str):
        self.store = store
        self.user = user
        self.token = token
        self.websocket = websocket
        self.public_url = public_url
        self.file: Incoming | None = None  # None also while dropping a refused file's data

    async def run(self) -> None:
        while True:
            message = await receive(self.websocket, IDLE_TIMEOUT)
            if message.get("text") is not None:
                await self.on_text(message["text"])
            elif message.get("bytes") is not None and self.file is not None:
                await self.on_bytes(self.file, message["bytes"])

    async def on_text(self, text: str) -> None:
        if self.file is not None:  # the last one never got its data
            await self.fail(self.file.name, ApiError(400, "the next file began before all of this one came"))
        try:
            self.file = parse_header(text)
            wait = await user_wait(self.websocket, self.user)
            if wait > 0:
                raise rate_limited(wait, self.websocket.scope.get(USER_LIMIT_NAME, ""))
            if self.file.size is not None:
                await run_in_threadpool(self.open, self.file, self.file.size)
                if self.file.size == 0:
                    await self.commit(self.file)
        except (StoreError, ApiError) as exc:
            await self.fail(self.file.name if self.file else "", exc)

    async def on_bytes(self, file: Incoming, data: bytes) -> None:
        try:
            if file.size is None:
                await run_in_threadpool(self.open, file, len(data))
            assert file.upload is not None
            if file.size is not None and file.upload.size + len(data) > file.size:
                raise ApiError(400, f"more than the declared {file.size} bytes")
            await run_in_threadpool(file.upload.write, data)
            if file.size is None or file.upload.size == file.size:
                await self.commit(file)
        except (StoreError, ApiError) as exc:
            await self.fail(file.name, exc)

    def open(self, file: Incoming, size_hint: int) -> None:
        """Reserve `size_hint` bytes for the file (EntityTooLarge / QuotaExceeded before any byte)."""
        file.upload = self.store.uploads.open(self.user, file.name, file.content_type, size_hint=size_hint)

    async def commit(self, file: Incoming) -> None:
        assert file.upload is not None
        if await run_in_threadpool(self.store.accounts.user_for_token, self.token) != self.user:
            await self.fail(
                file.name, ApiError(401, "the token was rotated or revoked", {"www-authenticate": "Bearer"})
            )
            await self.websocket.close(1008, "token rotated or revoked")
            raise SocketClosed()
        link = await run_in_threadpool(file.upload.commit)
        size = file.upload.size
        self.file = None
        user = await run_in_threadpool(self.store.accounts.get_user, self.user)
        space = max(0, user.quota - user.usage_bytes) if user.quota else None
        await self.websocket.send_json({**self.result(link), "available_space": space, "size": size})

    def result(self, link: LinkRecord) -> dict[str, Any]:
        url = f"{self.public_url}/s/{link.id}"
        return {"file_id": link.id, "file_url": url, "show_image": f"{url}?output=html", "filename": link.name}

    async def fail(self, name: str, exc: StoreError | ApiError) -> None:
        """Answer the file's error and drop it (and any more of its data)."""
        await run_in_threadpool(self.drop)
        err = from_store(exc) if isinstance(exc, StoreError) else exc
        await self.websocket.send_json({"error": err.detail, "status_code": err.status, "filename": name})

    def drop(self) -> None:
        if self.file is not None and self.file.upload is not None:
            self.file.upload.close()
        self.file = None


def parse_header(text: str) -> Incoming:
    """A file name, or the JSON header `{"name", "size", "type"}` of the sized form."""
    if len(text) > MAX_TEXT:
        raise ApiError(400, f"a file header is at most {MAX_TEXT} characters")
    if not text.lstrip().startswith("{"):
        return Incoming(text, None, content_type_for(None, text))
    try:
        header = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested past the parser's limit
        raise ApiError(400, "the file header is not valid JSON") from exc
    name, size, declared = header.get("name"), header.get("size"), header.get("type")
    if not isinstance(name, str) or not name or not is_utf8(name):
        raise ApiError(400, "the file header needs a name")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ApiError(400, "size must be a non-negative integer")
    return Incoming(name, size, content_type_for(declared if isinstance(declared, str) else None, name))
