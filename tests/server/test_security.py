"""Findings of the outside security probe (issue 9, section 6) on the surfaces besides S3's own rules:
short links, the REST API, WebSocket uploads, the access log, and short links on a host of their own.

Each test runs `pyblob serve` and replays the probe's requests with httpx, boto3 and `websockets`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import boto3
import httpx
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from browsers import WAIT_SECONDS, Origin, chromium, origin
from processes import RunPyblob, Server, StartServer, isolate_from_aws, user_s3_client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

BUCKET = "files"
LINKS_HOST = "links.pyblob.test"


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


@dataclass
class Running:
    server: Server
    creds: dict[str, str]  # alice's: access_key, secret_key, token
    s3: BaseClient

    @property
    def url(self) -> str:
        return self.server.url

    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.creds['token']}"}

    def link(self, key: str, data: bytes, content_type: str, host: str | None = None) -> dict[str, Any]:
        """Store `data` with boto3, then make a short link to it through the REST API."""
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=data, ContentType=content_type)
        headers = {**self.auth(), **({"host": host} if host else {})}
        made = httpx.post(f"{self.url}/api/links", json={"bucket": BUCKET, "key": key}, headers=headers)
        assert made.status_code == 201, made.text
        return made.json()  # type: ignore[no-any-return]


def start(start_server: StartServer, run_pyblob: RunPyblob, **env: str) -> Running:
    made = run_pyblob("user", "add", "alice", "--json")
    assert made.returncode == 0, made.stderr
    creds = json.loads(made.stdout)
    server = start_server(env=env)
    s3 = user_s3_client(server.url, creds)
    s3.create_bucket(Bucket=BUCKET)
    return Running(server, creds, s3)


@pytest.fixture
def running(start_server: StartServer, run_pyblob: RunPyblob) -> Iterator[Running]:
    site = start(start_server, run_pyblob)
    yield site
    site.s3.close()


# service workers ---------------------------------------------------------------------------------
def test_no_surface_serves_a_service_worker_script(running: Running) -> None:
    """The probe's chain: an HTML object registers a short link serving JavaScript as a service worker
    over /s/. Browsers fetch a worker's script with `Service-Worker: script`; every surface refuses it,
    in its own error format."""
    link = running.link("sw.js", b"self.onfetch = e => e.respondWith(new Response('pwned'))", "text/javascript")
    presigned = running.s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "sw.js"})
    sw = {"service-worker": "script"}
    for url in (link["url"], f"{link['url']}?output=html", f"{link['url']}?output=download"):
        assert httpx.get(url).status_code == 200
        refused = httpx.get(url, headers=sw)
        assert refused.status_code == 403
        assert "service worker" in refused.json()["detail"]
    rest = httpx.get(f"{running.url}/api/links", headers={**running.auth(), **sw})
    assert rest.status_code == 403 and "service worker" in rest.json()["detail"]
    for path in ("/list", "/docs", "/openapi.json"):
        assert httpx.get(running.url + path, headers={**running.auth(), **sw}).status_code == 403
    assert httpx.get(presigned).status_code == 200
    s3 = httpx.get(presigned, headers=sw)
    assert s3.status_code == 403 and b"<Code>AccessDenied</Code>" in s3.content
    assert httpx.head(presigned, headers=sw).status_code == 403


# numbers Python cannot parse -------------------------------------------------------------------
@pytest.mark.parametrize("header", ["bytes=0-" + "9" * 4301, "bytes=" + "9" * 4301 + "-", "bytes=-" + "9" * 4301])
def test_a_short_link_range_of_thousands_of_digits(running: Running, header: str) -> None:
    """Unauthenticated: anyone holding a link could have made the server answer 500."""
    link = running.link("a.txt", b"hello", "text/plain")
    response = httpx.get(link["url"], headers={"range": header})
    assert response.status_code == 416
    assert response.json()["detail"] == "range not satisfiable"
    assert response.headers["content-range"] == "bytes */5"


@pytest.mark.parametrize("limit", ["1" * 5000, "9" * 20])
def test_a_rest_page_limit_of_thousands_of_digits(running: Running, limit: str) -> None:
    response = httpx.get(f"{running.url}/api/links", params={"limit": limit}, headers=running.auth())
    assert response.status_code == 400
    assert "limit" in response.json()["detail"]


# the access log ----------------------------------------------------------------------------------
def test_the_access_log_redacts_signatures_and_credentials(running: Running) -> None:
    running.s3.put_object(Bucket=BUCKET, Key="k", Body=b"v")
    v4 = running.s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "k"})
    v2_client = boto3.client(
        "s3",
        endpoint_url=running.url,
        region_name="us-east-1",
        aws_access_key_id=running.creds["access_key"],
        aws_secret_access_key=running.creds["secret_key"],
        config=Config(signature_version="s3", s3={"addressing_style": "path"}),
    )
    v2 = v2_client.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "k"})
    assert httpx.get(v4).status_code == 200 and httpx.get(v2).status_code == 200
    assert httpx.get(v4.replace("X-Amz-Signature=", "X-Amz-Signature=0")).status_code == 403
    running.server.stop()  # flushes the log
    log = running.server.stdout + running.server.stderr
    secrets = [parse_qs(urlsplit(v4).query)[name][0] for name in ("X-Amz-Signature", "X-Amz-Credential")]
    secrets.append(parse_qs(urlsplit(v2).query)["Signature"][0])
    assert f"/{BUCKET}/k?" in log  # the requests are logged ...
    for secret in secrets:  # ... without what would replay them, encoded or not
        assert secret not in log and quote(secret, safe="") not in log
    assert log.count("X-Amz-Signature=REDACTED") == 2 and "Signature=REDACTED" in log
    assert "X-Amz-Credential=REDACTED" in log and "X-Amz-Date=" in log


def test_the_access_log_has_one_line_per_request_with_its_status(running: Running) -> None:
    running.s3.put_object(Bucket=BUCKET, Key="k", Body=b"v")
    assert httpx.get(f"{running.url}/{BUCKET}/missing").status_code == 403  # anonymous
    assert httpx.get(f"{running.url}/health").status_code == 200
    running.server.stop()
    lines = (running.server.stdout + running.server.stderr).splitlines()
    assert sum(f'"PUT /{BUCKET}/k HTTP/1.1" 200 OK' in line for line in lines) == 1
    assert sum(f'"GET /{BUCKET}/missing HTTP/1.1" 403 Forbidden' in line for line in lines) == 1
    assert any(line.startswith("INFO:     127.0.0.1:") and '"GET /health HTTP/1.1" 200' in line for line in lines)


def test_no_access_log_when_it_is_turned_off(start_server: StartServer, run_pyblob: RunPyblob) -> None:
    site = start(start_server, run_pyblob, PYBLOB_ACCESS_LOG="false")
    site.s3.put_object(Bucket=BUCKET, Key="k", Body=b"v")
    assert httpx.get(f"{site.url}/health").status_code == 200
    site.server.stop()
    log = site.server.stdout + site.server.stderr
    assert "PUT /" not in log and "GET /health" not in log
    assert "Uvicorn running" in log  # the server's own lines still come


# WebSocket uploads -------------------------------------------------------------------------------
def socket_url(running: Running) -> str:
    return running.url.replace("http://", "ws://") + "/upload_socket"


def upload(ws: Any, name: str, data: bytes) -> dict[str, Any]:
    ws.send(name)
    ws.send(data)
    answer: dict[str, Any] = json.loads(ws.recv(timeout=30))
    return answer


@pytest.mark.parametrize("change", ["rotate", "revoke"])
def test_an_open_socket_stops_at_its_token(running: Running, run_pyblob: RunPyblob, change: str) -> None:
    """The token is checked again before each file becomes a link, not only at the handshake."""
    with connect(socket_url(running), additional_headers=running.auth(), proxy=None, open_timeout=10) as ws:
        assert ws.recv(timeout=10) == "user is: alice"
        first = upload(ws, "before.txt", b"one")
        assert httpx.get(first["file_url"]).content == b"one"
        if change == "rotate":
            rotated = httpx.post(f"{running.url}/user/me/token", headers=running.auth())
            assert rotated.status_code == 200, rotated.text
        else:
            assert run_pyblob("token", "revoke", "alice", "--all").returncode == 0
        refused = upload(ws, "after.txt", b"two")
        assert (refused["status_code"], refused["filename"]) == (401, "after.txt")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    listed = running.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    assert not any(o["Key"].endswith("after.txt") for o in listed)


# short links on a host of their own -------------------------------------------------------------
@pytest.fixture
def split(start_server: StartServer, run_pyblob: RunPyblob) -> Iterator[Running]:
    site = start(start_server, run_pyblob, PYBLOB_LINKS_URL=f"http://{LINKS_HOST}")
    yield site
    site.s3.close()


def test_links_url_moves_short_links_to_their_host(split: Running) -> None:
    link = split.link("a.txt", b"hello", "text/plain")
    assert link["url"] == f"http://{LINKS_HOST}/s/{link['id']}"
    path = f"/s/{link['id']}"
    served = httpx.get(split.url + path, headers={"host": LINKS_HOST})
    assert (served.status_code, served.content) == (200, b"hello")
    moved = httpx.get(split.url + path + "?output=json", headers={"host": urlsplit(split.url).netloc})
    assert moved.status_code == 308
    assert moved.headers["location"] == f"http://{LINKS_HOST}{path}?output=json"


def test_a_tus_upload_names_its_link_on_the_links_host(split: Running) -> None:
    """The upload itself stays on the public host; the link it ends in is on the links host."""
    headers = {**split.auth(), "tus-resumable": "1.0.0"}
    created = httpx.post(f"{split.url}/upload_tus/", headers={**headers, "upload-length": "5"})
    assert created.status_code == 201, created.text
    assert not created.headers["location"].startswith(f"http://{LINKS_HOST}")
    patch = {**headers, "upload-offset": "0", "content-type": "application/offset+octet-stream"}
    done = httpx.patch(split.url + urlsplit(created.headers["location"]).path, headers=patch, content=b"hello")
    assert done.status_code == 204, done.text
    assert done.headers["upload-link"].startswith(f"http://{LINKS_HOST}/s/")


def test_the_links_host_serves_nothing_else(split: Running) -> None:
    split.s3.put_object(Bucket=BUCKET, Key="page.html", Body=b"<script></script>", ContentType="text/html")
    presigned = split.s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "page.html"})
    assert httpx.get(presigned).status_code == 200
    on_links = httpx.get(presigned, headers={"host": LINKS_HOST})
    assert on_links.status_code == 400 and b"<Code>InvalidRequest</Code>" in on_links.content
    rest = httpx.get(f"{split.url}/api/links", headers={**split.auth(), "host": LINKS_HOST})
    assert rest.status_code == 404 and "short links only" in rest.json()["detail"]
    assert httpx.get(f"{split.url}/docs", headers={"host": LINKS_HOST}).status_code == 404
    assert httpx.get(f"{split.url}/health", headers={"host": LINKS_HOST}).status_code == 200
    port = urlsplit(split.url).port
    with pytest.raises(InvalidStatus) as refused:  # the Host of the URL, over a socket to this server
        connect(
            f"ws://{LINKS_HOST}:{port}/upload_socket",
            sock=socket.create_connection(("127.0.0.1", port)),
            additional_headers=split.auth(),
            proxy=None,
            open_timeout=10,
        )
    assert refused.value.response.status_code == 404


def test_a_links_url_on_the_public_host_is_refused(run_pyblob: RunPyblob) -> None:
    result = run_pyblob(
        "serve",
        "--port",
        "1",
        env={"PYBLOB_LINKS_URL": "http://localhost:1", "PYBLOB_PUBLIC_URL": "http://localhost:1"},
    )
    assert result.returncode == 2
    assert "PYBLOB_LINKS_URL" in result.stderr and "Traceback" not in result.stderr


# the probe's chain in a real browser -------------------------------------------------------------
ATTACK = """<!doctype html><html><head><title>page</title></head><body><script>
document.title = "ran";
navigator.serviceWorker.register("%s", {scope: "/s/"})
  .then(() => { document.title = "registered"; }, e => { document.title = "refused: " + e; });
</script></body></html>"""
REGISTER = """const done = arguments[arguments.length - 1];
navigator.serviceWorker.register(arguments[0], {scope: arguments[1]})
  .then(() => done("registered"), e => done("refused: " + e));"""
WORKER = b"self.addEventListener('fetch', e => e.respondWith(new Response('served by the worker')));"


@pytest.fixture
def other_origin() -> Iterator[Origin]:
    with origin() as served:
        yield served


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "profile") as driver:
        yield driver


def settled_title(browser: Any) -> str:
    """The page's title once its script is done with it (or at once, for a page whose script never ran)."""
    from selenium.webdriver.support.wait import WebDriverWait

    WebDriverWait(browser, WAIT_SECONDS).until(lambda d: d.title != "ran")
    return str(browser.title)


def test_in_chromium_no_stored_page_can_take_over_short_links(
    browser: Any, running: Running, other_origin: Origin
) -> None:
    """Both layers, in the browser the probe used. The controls (the same page and worker on another
    local origin) show this Chromium runs the page and registers the worker where nothing stops them."""
    link = running.link("sw.js", WORKER, "text/javascript")
    worker_path = urlsplit(link["url"]).path
    page = (ATTACK % worker_path).encode()
    running.s3.put_object(Bucket=BUCKET, Key="attack.html", Body=page, ContentType="text/html")

    other_origin.pages.update({"/attack.html": ATTACK.replace("%s", "/s/sw.js").encode(), "/s/sw.js": WORKER})
    browser.get(f"{other_origin.url}/attack.html")
    assert settled_title(browser) == "registered"  # control: the chain works where nothing prevents it

    # Layer 1: a stored page served by S3 GET runs no script on pyblob's origin (CSP sandbox).
    browser.get(running.s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "attack.html"}))
    assert settled_title(browser) == "page"
    # Layer 2: script that did run on pyblob's origin still cannot make a short link its worker.
    browser.get(f"{running.url}/health")
    refused = browser.execute_async_script(REGISTER, worker_path, "/s/")
    assert refused.startswith("refused:") and "403" in refused
    assert (
        browser.execute_async_script("navigator.serviceWorker.getRegistrations().then(r => arguments[0](r.length))")
        == 0
    )
    browser.get(link["url"])
    assert "served by the worker" not in browser.page_source
