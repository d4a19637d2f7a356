"""tus 1.0 at /upload_tus/ against a real server: uploads in pieces, resuming a cut PATCH, limits, gc.

Spec: https://tus.io/protocols/resumable-upload
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import os
import re
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from processes import RunPyblob, StartServer
from shortlinks_site import Site
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError

TUS = {"tus-resumable": "1.0.0"}
OFFSET_TYPE = "application/offset+octet-stream"
MiB = 1024 * 1024


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def create(site: Site, length: int, user: str = "alice", **headers: str) -> httpx.Response:
    sent = {**TUS, **site.auth(user), "upload-length": str(length), **headers}
    return httpx.post(f"{site.url}/upload_tus/", headers=sent)


def created(site: Site, length: int, **headers: str) -> str:
    response = create(site, length, **headers)
    assert response.status_code == 201, response.text
    return response.headers["location"]


def patch(location: str, offset: int, body: bytes, auth: dict[str, str], **headers: str) -> httpx.Response:
    sent = {**TUS, **auth, "upload-offset": str(offset), "content-type": OFFSET_TYPE, **headers}
    return httpx.patch(location, content=body, headers=sent, timeout=30)


def head(location: str, auth: dict[str, str]) -> httpx.Response:
    return httpx.head(location, headers={**TUS, **auth})


def download(link_url: str) -> bytes:
    response = httpx.get(link_url)
    assert response.status_code == 200, response.text
    return response.content


def usage(run_pyblob: RunPyblob, user: str = "alice") -> int:
    shown = run_pyblob("user", "show", user, "--json")
    assert shown.returncode == 0, shown.stderr
    return int(json.loads(shown.stdout)["usage_bytes"])


def test_upload_in_three_patches_becomes_a_link(site: Site) -> None:
    data = os.urandom(3 * MiB + 12345)
    location = created(site, len(data), **{"upload-metadata": metadata(filename="holiday.jpg", filetype="image/jpeg")})
    assert location.startswith(f"{site.url}/upload_tus/")
    auth = site.auth("alice")
    cuts = [0, MiB + 7, 2 * MiB + 99, len(data)]
    for start, end in itertools.pairwise(cuts):
        response = patch(location, start, data[start:end], auth)
        assert response.status_code == 204, response.text
        assert response.headers["upload-offset"] == str(end)
        assert response.headers["tus-resumable"] == "1.0.0"
    link_url = response.headers["upload-link"]
    assert link_url.startswith(f"{site.url}/s/")
    got = httpx.get(link_url)
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
    assert got.headers["content-type"] == "image/jpeg"
    assert 'filename="holiday.jpg"' in got.headers["content-disposition"]
    again = head(location, auth)  # a client that lost the last answer still learns its link
    assert again.status_code == 200
    assert (again.headers["upload-offset"], again.headers["upload-link"]) == (str(len(data)), link_url)
    assert again.headers["cache-control"] == "no-store"


def test_an_interrupted_patch_keeps_what_arrived_and_resumes(site: Site) -> None:
    data = os.urandom(3 * MiB)
    half = 3 * MiB // 2 + 1000
    location = created(site, len(data))
    auth = site.auth("alice")
    url = urlsplit(location)
    request = (
        f"PATCH {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nTus-Resumable: 1.0.0\r\n"
        f"Authorization: {auth['authorization']}\r\nUpload-Offset: 0\r\nContent-Type: {OFFSET_TYPE}\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port)) as raw:
        raw.sendall(request + data[:half])
        time.sleep(0.5)  # let the server read it all before the connection drops
    deadline = time.monotonic() + 10
    while int(head(location, auth).headers["upload-offset"]) != half and time.monotonic() < deadline:
        time.sleep(0.1)
    kept = head(location, auth)
    assert kept.status_code == 200 and int(kept.headers["upload-offset"]) == half
    assert kept.headers["upload-length"] == str(len(data))
    assert "upload-expires" in kept.headers
    resumed = patch(location, half, data[half:], auth)
    assert resumed.status_code == 204, resumed.text
    assert download(resumed.headers["upload-link"]) == data


def test_wrong_offset_type_or_length(site: Site) -> None:
    location = created(site, 100)
    auth = site.auth("alice")
    assert patch(location, 0, b"x" * 10, auth).status_code == 204
    conflict = patch(location, 5, b"y", auth)
    assert conflict.status_code == 409 and "detail" in conflict.json()
    assert patch(location, 10, b"y", auth, **{"content-type": "application/octet-stream"}).status_code == 415
    assert patch(location, 10, b"y" * 91, auth).status_code == 413  # past Upload-Length
    assert head(location, auth).headers["upload-offset"] == "10"
    assert create(site, 1, **{"upload-length": "ten"}).status_code == 400
    assert create(site, 1, **{"upload-metadata": "filename not-base64!"}).status_code == 400


def test_a_patch_past_the_segment_cap_is_refused_and_the_upload_stays_where_it_was(
    run_pyblob: RunPyblob, start_server: StartServer
) -> None:
    """Each PATCH is kept as one segment; past `PYBLOB_TUS_MAX_SEGMENTS` (lowered to 3 here) a PATCH is
    refused before any of its bytes is kept, with the JSON error of the other tus refusals."""
    added = run_pyblob("user", "add", "alice", "--json")
    assert added.returncode == 0, added.stderr
    auth = {"authorization": f"Bearer {json.loads(added.stdout)['token']}"}
    server = start_server(env={"PYBLOB_TUS_MAX_SEGMENTS": "3"})
    response = httpx.post(f"{server.url}/upload_tus/", headers={**TUS, **auth, "upload-length": "8"})
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    for offset in (0, 2, 4):
        assert patch(location, offset, b"ab", auth).status_code == 204
    refused = patch(location, 6, b"cd", auth)
    assert refused.status_code == 400 and refused.headers["tus-resumable"] == "1.0.0"
    body = refused.json()
    assert "3 segments" in body["detail"] and "PYBLOB_TUS_MAX_SEGMENTS" in body["detail"] and body["request_id"]
    kept = head(location, auth)
    assert kept.status_code == 200 and kept.headers["upload-offset"] == "6"  # nothing of the PATCH kept
    assert usage(run_pyblob) == 8  # still charged, until it is deleted
    assert httpx.delete(location, headers={**TUS, **auth}).status_code == 204
    assert usage(run_pyblob) == 0
    client = TusClient(f"{server.url}/upload_tus/", headers=auth)  # a real client stops with the error
    uploader = client.uploader(file_stream=io.BytesIO(b"x" * 10), chunk_size=2)
    with pytest.raises(TusCommunicationError) as failed:
        uploader.upload()
    assert failed.value.status_code == 400 and uploader.offset == 6


def test_tus_resumable_header_is_required(site: Site) -> None:
    response = httpx.post(f"{site.url}/upload_tus/", headers={**site.auth("alice"), "upload-length": "5"})
    assert response.status_code == 412
    assert response.headers["tus-version"] == "1.0.0"
    location = created(site, 5)
    assert httpx.head(location, headers=site.auth("alice")).status_code == 412


def test_size_limit_refuses_before_any_data(site: Site, run_pyblob: RunPyblob) -> None:
    assert run_pyblob("quota", "set", "alice", "0", "--max-object-size", "1MiB").returncode == 0
    too_big = create(site, MiB + 1, **{"content-type": OFFSET_TYPE})
    assert too_big.status_code == 413 and "location" not in too_big.headers
    assert usage(run_pyblob) == 0
    options = httpx.options(f"{site.url}/upload_tus/", headers=site.auth("alice"))
    assert options.headers["tus-max-size"] == str(MiB)


def test_quota_is_held_from_creation_and_given_back(site: Site, run_pyblob: RunPyblob) -> None:
    assert run_pyblob("quota", "set", "alice", "1MiB").returncode == 0
    assert create(site, 2 * MiB).status_code == 403
    first = created(site, 600 * 1024)
    assert usage(run_pyblob) == 600 * 1024  # charged before any byte came
    refused = create(site, 600 * 1024)
    assert refused.status_code == 403 and "quota" in refused.json()["detail"]
    assert httpx.delete(first, headers={**TUS, **site.auth("alice")}).status_code == 204
    assert usage(run_pyblob) == 0
    created(site, 600 * 1024)


def test_termination(site: Site) -> None:
    location = created(site, 100)
    auth = site.auth("alice")
    assert patch(location, 0, b"x" * 50, auth).status_code == 204
    assert httpx.delete(location, headers={**TUS, **auth}).status_code == 204
    assert head(location, auth).status_code == 404
    assert patch(location, 50, b"x" * 50, auth).status_code == 404
    assert httpx.delete(location, headers={**TUS, **auth}).status_code == 404


def test_another_users_upload_is_404(site: Site) -> None:
    location = created(site, 10)
    bob = site.auth("bob")
    assert head(location, bob).status_code == 404
    assert patch(location, 0, b"x" * 10, bob).status_code == 404
    assert httpx.delete(location, headers={**TUS, **bob}).status_code == 404
    assert head(location, {}).status_code == 401
    assert head(location, site.auth("alice")).headers["upload-offset"] == "0"


def test_options_advertises_the_protocol_and_answers_cors_preflight(site: Site) -> None:
    preflight = {
        "origin": "https://app.example",
        "access-control-request-method": "PATCH",
        "access-control-request-headers": "tus-resumable,upload-offset,content-type,authorization",
    }
    response = httpx.options(f"{site.url}/upload_tus/", headers=preflight)
    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    assert response.headers["tus-extension"] == "creation,creation-with-upload,termination,expiration"
    assert response.headers["access-control-allow-origin"] == "*"
    assert "PATCH" in response.headers["access-control-allow-methods"]
    assert "upload-offset" in response.headers["access-control-allow-headers"].lower()
    location = created(site, 10)
    assert httpx.options(location).status_code == 204
    exposed = head(location, site.auth("alice")).headers["access-control-expose-headers"]
    assert {"Location", "Upload-Offset", "Upload-Link", "Tus-Resumable"} <= {h.strip() for h in exposed.split(",")}


def test_creation_with_upload_and_empty_files(site: Site, run_pyblob: RunPyblob) -> None:
    response = httpx.post(
        f"{site.url}/upload_tus/",
        content=b"hello",
        headers={
            **TUS,
            **site.auth("alice"),
            "upload-length": "5",
            "content-type": OFFSET_TYPE,
            "upload-metadata": metadata(filename="hello.txt"),
        },
    )
    assert response.status_code == 201 and response.headers["upload-offset"] == "5"
    assert download(response.headers["upload-link"]) == b"hello"
    empty = create(site, 0, **{"upload-metadata": metadata(filename="empty.txt")})
    assert empty.status_code == 201 and download(empty.headers["upload-link"]) == b""
    too_long = httpx.post(
        f"{site.url}/upload_tus/",
        content=b"hello!",
        headers={**TUS, **site.auth("alice"), "upload-length": "5", "content-type": OFFSET_TYPE},
    )
    assert too_long.status_code == 413 and "location" not in too_long.headers
    assert usage(run_pyblob) == 5  # hello.txt alone: nothing is held for the refused upload


def test_gc_drops_an_abandoned_upload(site: Site, run_pyblob: RunPyblob) -> None:
    location = created(site, 1000)
    auth = site.auth("alice")
    assert patch(location, 0, b"x" * 100, auth).status_code == 204
    assert run_pyblob("gc").returncode == 0
    assert head(location, auth).status_code == 200  # not a day old yet
    later = run_pyblob("gc", env={"PYBLOB_CLOCK_OFFSET_SECONDS": str(25 * 3600)})
    assert later.returncode == 0, later.stderr
    assert re.search(r"resumable uploads expired: +1\n", later.stdout), later.stdout
    assert head(location, auth).status_code == 404
    assert usage(run_pyblob) == 0
    assert run_pyblob("fsck").returncode == 0


def test_a_real_tus_client(site: Site) -> None:
    data = os.urandom(2 * MiB + 17)
    client = TusClient(f"{site.url}/upload_tus/", headers=site.auth("alice"))
    uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=MiB, metadata={"filename": "data.bin"})
    uploader.upload()
    assert uploader.offset == len(data)
    assert download(uploader.request.response_headers["upload-link"]) == data


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_method_override_for_clients_without_patch(site: Site, method: str) -> None:
    location = created(site, 3)
    headers = {
        **TUS,
        **site.auth("alice"),
        "x-http-method-override": method,
        "upload-offset": "0",
        "content-type": OFFSET_TYPE,
    }
    response = httpx.post(location, content=b"abc", headers=headers)
    assert response.status_code == 204
    assert head(location, site.auth("alice")).status_code == (200 if method == "PATCH" else 404)


def test_non_ascii_digits_in_lengths_and_offsets_are_400(site: Site) -> None:
    """`"²".isdigit()` is true in Python, and `int("²")` raises: such a header must be a 400, not a 500."""
    sent = {**TUS, **site.auth("alice")}
    creation = httpx.post(f"{site.url}/upload_tus/", headers={**sent, "upload-length": b"\xb2"})
    location = created(site, 10)
    patching = httpx.patch(
        location, content=b"x", headers={**sent, "content-type": OFFSET_TYPE, "upload-offset": b"\xb2"}
    )
    for response in (creation, patching):
        assert response.status_code == 400 and "detail" in response.json(), response.text
