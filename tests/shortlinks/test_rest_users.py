"""`/user/me`, token rotation, `/auth`, `/user/{id}`, 401s everywhere and the OpenAPI docs, against a real server."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from processes import RunPyblob
from rest_helpers import add_user, bearer, get, me, uploaded_id
from shortlinks_site import Site

USER_FIELDS = {
    "user", "total_size", "quota", "max_file_size", "available_space", "available_bytes", "file_count",
    "total_upload_times", "total_upload_byte", "total_download_times", "total_download_byte",
    "last_upload_at", "last_download_at", "created_at",
}  # fmt: skip
ENDPOINTS = [
    ("POST", "/upload"), ("POST", "/upload_batch"), ("POST", "/batch_upload"), ("GET", "/list"),
    ("DELETE", "/delete/abcdefgh"), ("DELETE", "/delete_all?confirm=yes"), ("DELETE", "/delete_all/?confirm=yes"),
    ("GET", "/user/me"),
    ("POST", "/user/me/token"), ("GET", "/auth"), ("GET", "/user/alice"),
    ("GET", "/user/alice?function=change_token"), ("GET", "/api/links"),
]  # fmt: skip


def test_user_me_shows_usage_and_counters(site: Site) -> None:
    fresh = me(site)
    assert set(fresh) == USER_FIELDS
    assert (fresh["user"], fresh["total_size"], fresh["file_count"], fresh["total_upload_times"]) == ("alice", 0, 0, 0)
    assert fresh["last_upload_at"] is None and fresh["last_download_at"] is None
    assert (fresh["quota"], fresh["max_file_size"], fresh["available_space"]) == (None, None, "unlimited")
    file_id = uploaded_id(site, b"12345")
    assert httpx.get(f"{site.url}/s/{file_id}").content == b"12345"
    after = me(site)
    assert (after["total_size"], after["file_count"], after["total_upload_times"], after["total_upload_byte"]) == (
        5,
        1,
        1,
        5,
    )
    assert (after["total_download_times"], after["total_download_byte"]) == (1, 5)
    assert datetime.fromisoformat(after["created_at"]) <= datetime.fromisoformat(after["last_upload_at"])
    assert after["last_download_at"] is not None
    assert site.tokens["alice"] not in get(site, "/user/me").text


def test_user_me_shows_limits(site: Site, run_pyblob: RunPyblob) -> None:
    site.tokens["carol"] = add_user(run_pyblob, "carol", "--quota", "1MiB", "--max-object-size", "256KiB")
    uploaded_id(site, b"x" * 1024, user="carol")
    info = me(site, "carol")
    assert (info["quota"], info["max_file_size"], info["total_size"]) == (1024 * 1024, 256 * 1024, 1024)
    assert (info["available_bytes"], info["available_space"]) == (1023 * 1024, "0.999 MB")


def test_auth_echoes_the_callers_token(site: Site) -> None:
    response = get(site, "/auth")
    assert response.status_code == 200
    assert response.json() == {"user": "alice", "token": site.tokens["alice"]}


def test_rotating_the_token_retires_the_old_one(site: Site) -> None:
    old = site.tokens["alice"]
    response = httpx.post(f"{site.url}/user/me/token", headers=bearer(old))
    assert response.status_code == 200
    new = response.json()["token"]
    assert new != old
    assert httpx.get(f"{site.url}/auth", headers=bearer(old)).status_code == 401
    assert httpx.post(f"{site.url}/user/me/token", headers=bearer(old)).status_code == 401
    assert httpx.get(f"{site.url}/auth", headers=bearer(new)).json() == {"user": "alice", "token": new}


def test_user_route_answers_only_for_the_caller(site: Site) -> None:
    own = get(site, "/user/alice")
    assert own.status_code == 200
    assert set(own.json()) == USER_FIELDS | {"token"} and own.json()["token"] == "[hidden...]"
    other = get(site, "/user/bob")
    assert other.status_code == 403 and "detail" in other.json()
    assert get(site, "/user/alice", "bob").status_code == 403


def test_change_token_through_the_old_ui_route(site: Site) -> None:
    stolen = get(site, "/user/alice", "bob", function="change_token")
    assert stolen.status_code == 403
    assert get(site, "/auth").status_code == 200  # alice's token still works
    assert get(site, "/user/alice", None, function="change_token").status_code == 401
    assert get(site, "/user/alice", function="bogus").status_code == 400
    response = get(site, "/user/alice", function="change_token")
    assert response.status_code == 200
    new = response.json()["token"]
    assert new not in (site.tokens["alice"], "[hidden...]")
    assert get(site, "/auth").status_code == 401
    assert httpx.get(f"{site.url}/user/me", headers=bearer(new)).json()["user"] == "alice"


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer pbt_wrong"}, {"authorization": "Basic YTpi"}])
def test_every_endpoint_needs_a_valid_token(site: Site, headers: dict[str, str]) -> None:
    for method, path in ENDPOINTS:
        response = httpx.request(method, f"{site.url}{path}", headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"] == "application/json"
        assert response.json()["detail"]


def test_docs_describe_the_rest_api(site: Site) -> None:
    docs = httpx.get(f"{site.url}/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    schema = httpx.get(f"{site.url}/openapi.json").json()
    paths = schema["paths"]
    for path in ("/upload", "/upload_batch", "/list", "/delete/{file_id}", "/delete_all", "/user/me", "/auth"):
        assert path in paths, path
    assert "multipart/form-data" in paths["/upload"]["post"]["requestBody"]["content"]
    assert not any(p.startswith("/{") or p == "/" for p in paths), "the S3 catch-all is not part of the schema"
    scheme = schema["components"]["securitySchemes"]["token"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")  # Swagger's "Authorize" sends the header
    assert paths["/list"]["get"]["security"] == [{"token": []}]


def test_a_web_ui_on_another_origin_may_call(site: Site) -> None:
    """pyBlobServer's UI runs on its own origin: preflights pass, responses (errors too) allow any origin."""
    preflight = httpx.options(
        f"{site.url}/upload",
        headers={"origin": "https://ui.example", "access-control-request-method": "POST",
                 "access-control-request-headers": "authorization"},
    )  # fmt: skip
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert get(site, "/list").headers["access-control-allow-origin"] == "*"
    assert get(site, "/list", None).headers["access-control-allow-origin"] == "*"
