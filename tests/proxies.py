"""Misconfigured reverse proxies for the deployment doctor's tests: a real HTTP proxy on a loopback
port of its own (a thread of the test process) in front of a real pyblob, with one mistake each."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}
NGINX_413 = b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n</body>\r\n</html>\r\n"


@contextmanager
def proxy(
    upstream: str,
    rewrite_host: bool = False,
    max_body: int | None = None,
    corrupt: str | None = None,
    delay: float = 0.0,
) -> Iterator[str]:
    """The proxy's URL. `rewrite_host`: the upstream's own host:port as Host (nginx's `proxy_pass`
    without `proxy_set_header Host $host`). `max_body`: bodies read whole first (buffered), and
    those larger refused with nginx's 413 page (nginx's default `client_max_body_size` is 1 MiB).
    `corrupt`: the answers to GETs of paths that end with it come with their last byte flipped
    (a bad disk or a broken middlebox between an importer and its source). `delay`: seconds each
    request waits before it is forwarded (a slow source, so a test can act while a client works)."""
    target = urlsplit(upstream).netloc

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def forward(self) -> None:
            time.sleep(delay)
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if max_body is not None and len(body) > max_body:
                self.answer(413, [("server", "nginx"), ("content-type", "text/html")], NGINX_413)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            if rewrite_host:
                headers = {k: v for k, v in headers.items() if k.lower() != "host"} | {"Host": target}
            conn = http.client.HTTPConnection(target, timeout=60)
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in headers.items():
                    conn.putheader(name, value)
                conn.endheaders(body or None)
                response = conn.getresponse()
                kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}]
                body = response.read()
                if corrupt and self.command == "GET" and self.path.split("?")[0].endswith(corrupt) and body:
                    body = body[:-1] + bytes([body[-1] ^ 1])
                self.answer(response.status, kept, body)
            finally:
                conn.close()

        def answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response_only(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.send_header("connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.close_connection = True

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = forward

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
