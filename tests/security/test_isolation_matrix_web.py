"""The isolation matrix of issue 15 (Security), web side: every REST, tus, WebSocket and console route of
the app, aimed at alice's links, files, bucket, account and tus upload, with mallory's token, with
none, with a revoked token and with a token rotated away.

What each answers is what the README's REST section documents: no valid token is 401 with
`{"detail": "missing or invalid bearer token"}` and `WWW-Authenticate: Bearer`; another user's link,
file, bucket or upload is 404 as an unknown one (ids are no oracle); another user's account 403.
A route that only ever acts on the caller's own account (a listing, `/auth`, deleting one's own
files) answers mallory about mallory, with nothing of alice's in it. Nothing changes: see
conftest.py for the digest of the whole store.

The cases are generated from the app's route table: a route with no row here fails
`test_every_route_is_in_the_matrix` until it has one, or a reason to be left out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from isolation_site import BUCKET, TUS, Site
from starlette.routing import BaseRoute, Route, WebSocketRoute
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from pyblob.app import create_web_app
from pyblob.settings import Settings
from shortlinks.tus import ALL_METHODS

CLASSES = ("mallory", "none", "revoked-token", "rotated-token")
NO_TOKEN = "missing or invalid bearer token"
OFFSET_TYPE = "application/offset+octet-stream"
Kwargs = Callable[[Site], dict[str, Any]]


@dataclass(frozen=True)
class Expect:
    status: int
    detail: str = ""  # the JSON `detail` (not checked on HEAD, which has no body)
    isolated: bool = False  # a 200 about the caller's own account: nothing of alice's in it


ISOLATED = Expect(200, isolated=True)
NOT_FOUND_LINK = Expect(404, "link not found")
NOT_FOUND_BUCKET = Expect(404, "bucket not found")
NOT_FOUND_UPLOAD = Expect(404, "upload not found")


@dataclass(frozen=True)
class Call:
    """One request of the matrix: its path (alice's ids filled in), what it sends, and mallory's answer
    (a string: why mallory's own token is not tried, a write to her own account only)."""

    path: Callable[[Site], str]
    mallory: Expect | str
    kwargs: Kwargs = field(default=lambda s: {})


def fixed(path: str) -> Callable[[Site], str]:
    return lambda s: path


def form(name: str, many: bool = False) -> Kwargs:
    return lambda s: {"files": [(name, ("evil.txt", b"mallory's", "text/plain"))] * (2 if many else 1)}


def tus(**headers: str) -> Kwargs:
    return lambda s: {"headers": {**TUS, **headers}, "content": b"m" * 8 if "upload-offset" in headers else b""}


OWN_UPLOAD = "stores a new file of the caller's own, in her own bucket"


def link_path(site: Site) -> str:
    return f"/api/links/{site.link_id}"


def tus_path(site: Site) -> str:
    return f"/upload_tus/{site.tus_id}"


PATCH_AT_16 = tus(**{"upload-offset": "16", "content-type": OFFSET_TYPE})

# (method, route path) -> variant -> call
ROUTES: dict[tuple[str, str], dict[str, Call]] = {
    ("POST", "/api/links"): {
        "current": Call(
            fixed("/api/links"), NOT_FOUND_BUCKET, lambda s: {"json": {"bucket": BUCKET, "key": "doc.txt"}}
        ),
        "old-version": Call(
            fixed("/api/links"),
            NOT_FOUND_BUCKET,
            lambda s: {"json": {"bucket": BUCKET, "key": "doc.txt", "version_id": s.versions["v1"]}},
        ),
    },
    ("GET", "/api/links"): {"own": Call(fixed("/api/links"), ISOLATED)},
    ("HEAD", "/api/links"): {"own": Call(fixed("/api/links"), ISOLATED)},
    ("GET", "/api/links/{id}"): {"alice": Call(link_path, NOT_FOUND_LINK)},
    ("HEAD", "/api/links/{id}"): {"alice": Call(link_path, NOT_FOUND_LINK)},
    ("DELETE", "/api/links/{id}"): {"alice": Call(link_path, NOT_FOUND_LINK)},
    ("PATCH", "/api/links/{id}"): {
        "alice": Call(link_path, NOT_FOUND_LINK, lambda s: {"json": {"expires_in": 1, "max_downloads": 1}})
    },
    ("GET", "/api/links/{id}/content"): {"alice": Call(lambda s: f"{link_path(s)}/content", NOT_FOUND_LINK)},
    ("HEAD", "/api/links/{id}/content"): {"alice": Call(lambda s: f"{link_path(s)}/content", NOT_FOUND_LINK)},
    ("GET", "/api/buckets"): {"own": Call(fixed("/api/buckets"), ISOLATED)},
    ("HEAD", "/api/buckets"): {"own": Call(fixed("/api/buckets"), ISOLATED)},
    ("GET", "/api/buckets/{bucket}/objects"): {
        "alice": Call(fixed(f"/api/buckets/{BUCKET}/objects"), NOT_FOUND_BUCKET)
    },
    ("HEAD", "/api/buckets/{bucket}/objects"): {
        "alice": Call(fixed(f"/api/buckets/{BUCKET}/objects"), NOT_FOUND_BUCKET)
    },
    ("POST", "/upload"): {"own": Call(fixed("/upload"), OWN_UPLOAD, form("file"))},
    ("POST", "/upload_batch"): {"own": Call(fixed("/upload_batch"), OWN_UPLOAD, form("files", many=True))},
    ("POST", "/batch_upload"): {"own": Call(fixed("/batch_upload"), OWN_UPLOAD, form("files", many=True))},
    ("GET", "/list"): {"own": Call(fixed("/list"), ISOLATED)},
    ("DELETE", "/delete/{file_id}"): {
        "alice-file": Call(lambda s: f"/delete/{s.file_id}", NOT_FOUND_LINK),
        "alice-link": Call(lambda s: f"/delete/{s.link_id}", NOT_FOUND_LINK),
    },
    ("DELETE", "/delete_all"): {"own": Call(fixed("/delete_all"), ISOLATED, lambda s: {"params": {"confirm": "yes"}})},
    ("DELETE", "/delete_all/"): {
        "own": Call(fixed("/delete_all/"), ISOLATED, lambda s: {"params": {"confirm": "yes"}})
    },
    ("GET", "/auth"): {"own": Call(fixed("/auth"), ISOLATED)},
    ("GET", "/user/me"): {"own": Call(fixed("/user/me"), ISOLATED)},
    ("POST", "/user/me/token"): {"own": Call(fixed("/user/me/token"), "rotates the token the request came with")},
    ("GET", "/user/{user_id}"): {
        "alice": Call(fixed("/user/alice"), Expect(403, "you may only see your own account")),
        "alice-change-token": Call(
            fixed("/user/alice"),
            Expect(403, "you may only see your own account"),
            lambda s: {"params": {"function": "change_token"}},
        ),
    },
    ("POST", "/upload_tus"): {"own": Call(fixed("/upload_tus"), OWN_UPLOAD, tus(**{"upload-length": "8"}))},
    ("POST", "/upload_tus/"): {"own": Call(fixed("/upload_tus/"), OWN_UPLOAD, tus(**{"upload-length": "8"}))},
    ("HEAD", "/upload_tus/{id}"): {"alice": Call(tus_path, NOT_FOUND_UPLOAD, tus())},
    ("PATCH", "/upload_tus/{id}"): {"alice": Call(tus_path, NOT_FOUND_UPLOAD, PATCH_AT_16)},
    ("DELETE", "/upload_tus/{id}"): {"alice": Call(tus_path, NOT_FOUND_UPLOAD, tus())},
    ("POST", "/upload_tus/{id}"): {  # X-HTTP-Method-Override, for clients that cannot send PATCH
        "override-patch": Call(
            tus_path,
            NOT_FOUND_UPLOAD,
            tus(**{"x-http-method-override": "PATCH", "upload-offset": "16", "content-type": OFFSET_TYPE}),
        ),
        "override-delete": Call(tus_path, NOT_FOUND_UPLOAD, tus(**{"x-http-method-override": "DELETE"})),
    },
}
TUS_HANDLED = {"/upload_tus": {"POST"}, "/upload_tus/": {"POST"}, "/upload_tus/{id}": {"HEAD", "PATCH", "DELETE"}}
CONSOLE = {"/ui": 308, "/ui/": 200, "/ui/index.html": 200, "/ui/console.js": 200, "/ui/console.css": 200}
CONSOLE |= {"/ui/alice": 404}
# Routes that hold nothing of anyone's, or are public by design: not part of the matrix.
PUBLIC = {
    "/health": "liveness, the same for everyone",
    "/openapi.json": "the REST API's description",
    "/docs": "the REST API's description",
    "/docs/oauth2-redirect": "the REST API's description",
    "/redoc": "the REST API's description",
    "/s/{id}": "a short link is a public capability (shortlinks/routes.py); reading it counts a download",
}


def tus_refused_methods() -> list[tuple[str, str]]:
    """tus routes answer 405 to any other method, before looking at a token."""
    return [(m, p) for p, handled in TUS_HANDLED.items() for m in ALL_METHODS if m not in handled | {"OPTIONS"}]


def preflight_paths() -> list[str]:
    """Paths answering the CORS preflight (no token, by design): the REST router's and tus's."""
    return sorted({p for _, p in ROUTES if not p.startswith("/api/")})


# the route table ---------------------------------------------------------------------------------
def flat(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes, those of included routers too (FastAPI keeps an included router's own routes)."""
    for route in routes:
        if isinstance(route, (Route, WebSocketRoute)):
            yield route
            continue
        inner = getattr(route, "routes", None) or getattr(getattr(route, "original_router", None), "routes", None)
        assert inner is not None, f"a route the matrix cannot read: {route!r}"
        yield from flat(inner)


def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """Every (method, path) the app routes, WebSocket routes as ("WEBSOCKET", path)."""
    app = create_web_app(Settings(_env_file=None, data_dir=tmp_path))  # type: ignore[call-arg]
    found = set()
    for route in flat(app.routes):
        if isinstance(route, WebSocketRoute):
            found.add(("WEBSOCKET", route.path))
        elif isinstance(route, Route):
            found |= {(method, route.path) for method in route.methods or ()}
    return found


def test_every_route_is_in_the_matrix(tmp_path: Path) -> None:
    covered = set(ROUTES) | set(tus_refused_methods()) | {("OPTIONS", p) for p in preflight_paths()}
    covered |= {("WEBSOCKET", "/upload_socket")}
    covered |= {(m, p) for p in ("/ui", "/ui/", "/ui/{name}") for m in ("GET", "HEAD")}
    covered |= {(m, p) for p in PUBLIC for m in ("GET", "HEAD")}
    routes = app_routes(tmp_path)
    assert not routes - covered, f"routes missing from the isolation matrix: {sorted(routes - covered)}"
    assert not covered - routes, f"rows of the matrix for routes the app no longer has: {sorted(covered - routes)}"


# sending -----------------------------------------------------------------------------------------
def token_of(site: Site, kind: str) -> dict[str, str]:
    tokens = {"mallory": "mallory", "revoked-token": "revoked", "rotated-token": "rotated"}
    return {"authorization": f"Bearer {site.tokens[tokens[kind]]}"} if kind in tokens else {}


def request(http: httpx.Client, site: Site, method: str, call: Call, kind: str) -> httpx.Response:
    kwargs = call.kwargs(site)
    headers = {**kwargs.pop("headers", {}), **token_of(site, kind)}
    return http.request(method, site.url + call.path(site), headers=headers, **kwargs)


def check(response: httpx.Response, expect: Expect, method: str, site: Site) -> None:
    shown = f"{response.status_code}: {response.text[:300]}"
    assert response.status_code == expect.status, shown
    if method != "HEAD" and expect.detail:
        assert response.json()["detail"] == expect.detail, shown
    if expect.status == 401:
        assert response.headers["www-authenticate"] == "Bearer", shown
    if expect.isolated:
        assert not [s for s in site.alice_secrets() if s in response.text], shown


def route_cases() -> list[tuple[str, str, str, str]]:
    cases = []
    for (method, path), variants in ROUTES.items():
        for variant, call in variants.items():
            kinds = [k for k in CLASSES if k != "mallory" or isinstance(call.mallory, Expect)]
            cases += [(method, path, variant, kind) for kind in kinds]
    return cases


@pytest.mark.parametrize(("method", "path", "variant", "kind"), route_cases())
def test_rest_request_is_refused(
    site: Site, http: httpx.Client, method: str, path: str, variant: str, kind: str
) -> None:
    call = ROUTES[method, path][variant]
    expect = call.mallory if kind == "mallory" else Expect(401, NO_TOKEN)
    assert isinstance(expect, Expect)
    check(request(http, site, method, call, kind), expect, method, site)


@pytest.mark.parametrize(("method", "path"), tus_refused_methods())
@pytest.mark.parametrize("kind", CLASSES)
def test_tus_refuses_other_methods(site: Site, http: httpx.Client, method: str, path: str, kind: str) -> None:
    filled = path.replace("{id}", site.tus_id)
    response = http.request(method, site.url + filled, headers={**TUS, **token_of(site, kind)})
    check(response, Expect(405, f"{method} is not allowed here"), method, site)


@pytest.mark.parametrize("path", preflight_paths())
@pytest.mark.parametrize("kind", CLASSES)
def test_preflights_need_no_token_and_tell_nothing(site: Site, http: httpx.Client, path: str, kind: str) -> None:
    filled = path.replace("{id}", site.tus_id).replace("{file_id}", site.file_id).replace("{user_id}", "alice")
    headers = {"origin": "https://app.example", "access-control-request-method": "POST", **token_of(site, kind)}
    response = http.options(site.url + filled, headers=headers)
    assert response.status_code == 204, response.text
    assert not [s for s in site.alice_secrets() if s in str(response.headers)]


# the WebSocket -------------------------------------------------------------------------------------
SOCKET_CASES = [
    ("none", "message"),
    *[(k, how) for k in ("revoked-token", "rotated-token") for how in ("header", "message")],
]


@pytest.mark.parametrize(("kind", "how"), SOCKET_CASES)
def test_upload_socket_is_refused(site: Site, kind: str, how: str) -> None:
    """A bad token, on the handshake or as the first message, gets a 401 and the socket closed with 1008.
    Mallory's own token is not tried: a socket only ever uploads to its user's own files."""
    token = token_of(site, kind).get("authorization", "Bearer not-a-token")
    headers = {"authorization": token} if how == "header" else {}
    url = site.url.replace("http://", "ws://") + "/upload_socket"
    with connect(url, additional_headers=headers, proxy=None, open_timeout=10) as ws:
        if how == "message":
            ws.send(token.removeprefix("Bearer "))
        assert json.loads(ws.recv(timeout=10)) == {"error": "missing or invalid token", "status_code": 401}
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


# the console ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", CONSOLE)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_console_is_the_same_static_files_for_everyone(site: Site, http: httpx.Client, path: str, method: str) -> None:
    """The console is three static files: whatever token comes, the same bytes, nothing of alice's."""
    answers = [http.request(method, site.url + path, headers=token_of(site, kind)) for kind in CLASSES]
    assert {a.status_code for a in answers} == {CONSOLE[path]}
    assert len({a.content for a in answers}) == 1
    assert not [s for s in site.alice_secrets() if s in answers[0].text]
