"""Calls of the pyBlobServer-compatible REST API for the end-to-end tests (`test_rest_*.py`)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
from processes import RunPyblob
from shortlinks_site import Site

# The per-address and per-user REST rate limits off, for tests that send many requests at once.
NO_RATE_LIMITS = {"PYBLOB_RATELIMIT_REST_IP_RATE": "0", "PYBLOB_RATELIMIT_REST_USER_RATE": "0"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def upload(
    site: Site, data: bytes, name: str = "file.bin", user: str = "alice", content_type: str = "", **fields: Any
) -> httpx.Response:
    """`POST /upload` with the file in the form field `file` and `fields` before it."""
    files = {"file": (name, data, content_type or "application/octet-stream")}
    form = {k: str(v) for k, v in fields.items()}
    return httpx.post(f"{site.url}/upload", files=files, data=form, headers=site.auth(user), timeout=60)


def uploaded_id(site: Site, data: bytes, name: str = "file.bin", user: str = "alice", **fields: Any) -> str:
    response = upload(site, data, name, user, **fields)
    assert response.status_code == 200, response.text
    return str(response.json()["file_id"])


def get(site: Site, path: str, user: str | None = "alice", **params: Any) -> httpx.Response:
    """GET with `user`'s token (None: none) and the query `params` that are not None."""
    headers = site.auth(user) if user else {}
    query = {k: v for k, v in params.items() if v is not None}
    return httpx.get(f"{site.url}{path}", params=query, headers=headers, timeout=30)


def delete(site: Site, path: str, user: str | None = "alice", **params: Any) -> httpx.Response:
    headers = site.auth(user) if user else {}
    return httpx.delete(f"{site.url}{path}", params=params, headers=headers, timeout=30)


def me(site: Site, user: str = "alice") -> dict[str, Any]:
    response = get(site, "/user/me", user)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def add_user(run_pyblob: RunPyblob, name: str, *limits: str) -> str:
    """A new user with `limits` (`--quota`, `--max-object-size`) and their API token."""
    result = run_pyblob("user", "add", name, *limits, "--json")
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["token"])


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    """curl (a real multipart client with `Expect: 100-continue`), body and then the status on the last line."""
    exe = shutil.which("curl")
    assert exe, "curl is needed for these tests"
    argv = [exe, "-sS", "--max-time", "60", "-w", "\n%{http_code}", *args]
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=90)


def curl_upload(url: str, token: str, path: Path, field: str = "file") -> tuple[int, Any]:
    result = curl("-H", f"Authorization: Bearer {token}", "-F", f"{field}=@{path}", url)
    assert result.returncode == 0, result.stderr
    body, _, status = result.stdout.rpartition("\n")
    return int(status), json.loads(body)
