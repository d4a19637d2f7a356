"""uvicorn's WebSocket protocol (websockets-sansio) with a small bound on a socket's first message.

A message is read whole before the app sees it, up to the server's `ws_max_size` (16 MiB, so that
pyBlobServer's form, a file in one message, fits). uvicorn applies that bound to every message of
every socket, the sockets of strangers included: a client without a token could begin a 16 MiB
message, send all but its last byte, and hold that much of the worker's memory until the app's wait
for a token ends (30 s), on as many sockets as it likes.

The first message of an `/upload_socket` socket is always short: the token, or else (the token came in
the handshake's Authorization header) a file name or a file's JSON header, never more than 4,096
characters (`shortlinks.websocket.MAX_TEXT`). This protocol bounds that first message to
`FIRST_MESSAGE_MAX` bytes (4,096 characters of 4 UTF-8 bytes each) and the later ones to `ws_max_size`.
A frame past the bound is refused at its head, before its payload is read: the socket closes with 1009
(message too big). By the time a second message can be read, the app has the first: a bad token
closes the socket, so a stranger holds at most 16 KiB and what arrives while its token is checked.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol

FIRST_MESSAGE_MAX = 16 * 1024
PROTOCOL = "pyblob.boundedws:FirstMessageBoundProtocol"  # uvicorn's `ws=`, importable by every worker


class FirstMessageBound(ServerProtocol):
    """websockets' server side, whose message bound rises from `first` to `later` once a first message
    (all its fragments) has been read: `recv_frame` runs before the parser reads the next frame's head."""

    def __init__(self, *, first: int, later: int | None, **kwargs: Any) -> None:
        super().__init__(max_size=first, **kwargs)
        self.later = later

    def recv_frame(self, frame: Frame) -> None:
        super().recv_frame(frame)
        data = frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
        if data and frame.fin:
            self.max_message_size = self.later


class FirstMessageBoundProtocol(WebSocketsSansIOProtocol):
    """uvicorn's protocol, on `FirstMessageBound` (the rest of its settings as uvicorn makes them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        made = self.conn
        self.conn = FirstMessageBound(
            first=min(FIRST_MESSAGE_MAX, self.config.ws_max_size),
            later=self.config.ws_max_size,
            extensions=made.available_extensions,
            logger=made.logger,
        )
