"""`POST /upload` and `/upload_batch` against a real server: bytes in = bytes out, limits, streaming, races."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import httpx
import pytest
from processes import RunPyblob, StartServer
from rest_helpers import NO_RATE_LIMITS, add_user, curl, curl_upload, get, me, sha256, upload
from shortlinks_site import Site

KiB, MiB = 1024, 1024 * 1024


@pytest.fixture
def carol(site: Site, run_pyblob: RunPyblob) -> str:
    """A user with small limits: 256 KiB per file, 1 MiB in all."""
    site.tokens["carol"] = add_user(run_pyblob, "carol", "--quota", "1MiB", "--max-object-size", "256KiB")
    return "carol"


def test_upload_then_download_the_same_bytes(site: Site) -> None:
    data = os.urandom(200 * KiB)
    response = upload(site, data, "photo.png", content_type="image/png")
    assert response.status_code == 200, response.text
    body = response.json()
    file_id = body["file_id"]
    assert body["file_url"] == f"{site.url}/s/{file_id}"
    assert body["show_image"] == f"{site.url}/s/{file_id}?output=html"
    assert (body["available_space"], body["available_bytes"]) == ("unlimited", None)  # the tests' default
    assert (body["name"], body["size"], body["expires_at"]) == ("photo.png", len(data), None)
    downloaded = httpx.get(body["file_url"])
    assert downloaded.status_code == 200
    assert sha256(downloaded.content) == sha256(data)
    assert downloaded.headers["content-type"] == "image/png"
    page = httpx.get(body["show_image"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_available_space_goes_down_by_the_file_size(site: Site, carol: str) -> None:
    first = upload(site, b"x" * 1000, user=carol).json()
    assert first["available_bytes"] == MiB - 1000
    assert first["available_space"] == "0.999 MB"  # pyBlobServer's format
    second = upload(site, b"y" * 5000, user=carol).json()
    assert first["available_bytes"] - second["available_bytes"] == 5000
    assert me(site, carol)["available_bytes"] == second["available_bytes"]
    assert re.fullmatch(r"\d+\.\d{3} MB", second["available_space"])


def test_curl_multipart_upload_of_3_mib(site: Site, tmp_path: Path) -> None:
    data = os.urandom(3 * MiB + 17)
    path = tmp_path / "big file.bin"
    path.write_bytes(data)
    status, body = curl_upload(f"{site.url}/upload", site.tokens["alice"], path)
    assert status == 200, body
    assert (body["name"], body["size"]) == ("big file.bin", len(data))
    assert sha256(httpx.get(body["file_url"]).content) == sha256(data)


def test_link_options_as_form_fields_or_query(site: Site) -> None:
    body = upload(site, b"once", expires_in=3600, max_downloads=1).json()
    assert body["max_downloads"] == 1 and body["expires_at"] is not None
    query = httpx.post(
        f"{site.url}/upload", params={"max_downloads": 2}, files={"file": ("a", b"a")}, headers=site.auth("alice")
    )
    assert query.status_code == 200 and query.json()["max_downloads"] == 2
    assert httpx.get(body["file_url"]).content == b"once"
    assert httpx.get(body["file_url"]).status_code == 410
    bad = upload(site, b"x", max_downloads=0)
    assert bad.status_code == 400 and "max_downloads" in bad.json()["detail"]
    assert upload(site, b"x", expires_in="soon").status_code == 400


def test_a_link_option_after_the_file_is_refused_and_nothing_kept(site: Site) -> None:
    before = me(site)["total_size"]
    content = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhello\r\n'
        b'--b\r\nContent-Disposition: form-data; name="max_downloads"\r\n\r\n1\r\n--b--\r\n'
    )
    headers = {**site.auth("alice"), "content-type": "multipart/form-data; boundary=b"}
    response = httpx.post(f"{site.url}/upload", content=content, headers=headers)
    assert response.status_code == 400 and "before the files" in response.json()["detail"]
    assert me(site)["total_size"] == before
    assert get(site, "/list").json() == []


@pytest.mark.parametrize("path", ["/upload_batch", "/batch_upload"])  # the latter: an older UI's spelling
def test_batch_gives_one_result_per_file(site: Site, path: str) -> None:
    files = [("files", (f"f{i}.txt", f"content {i}".encode(), "text/plain")) for i in range(3)]
    response = httpx.post(f"{site.url}{path}", files=files, headers=site.auth("alice"))
    assert response.status_code == 200
    results = response.json()
    assert [r["name"] for r in results] == ["f0.txt", "f1.txt", "f2.txt"]
    for i, result in enumerate(results):
        assert httpx.get(result["file_url"]).content == f"content {i}".encode()


def test_batch_with_a_too_large_file_is_207(site: Site, carol: str) -> None:
    small, large = os.urandom(10 * KiB), os.urandom(300 * KiB)
    files = [("files", ("a.bin", small)), ("files", ("big.bin", large)), ("files", ("c.bin", small[::-1]))]
    response = httpx.post(f"{site.url}/upload_batch", files=files, headers=site.auth(carol))
    assert response.status_code == 207
    first, failed, last = response.json()
    assert failed["filename"] == "big.bin" and failed["status_code"] == 413 and failed["error"]
    assert "file_id" not in failed
    assert httpx.get(first["file_url"]).content == small
    assert httpx.get(last["file_url"]).content == small[::-1]
    assert me(site, carol)["total_size"] == 2 * len(small)


def test_too_large_is_413_before_the_body_is_sent(site: Site, carol: str, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(2 * MiB))  # past the limit plus any form overhead: refused by Content-Length
    status, body = curl_upload(f"{site.url}/upload", site.tokens[carol], path)
    assert status == 413 and "limit" in body["detail"]
    path.write_bytes(os.urandom(300 * KiB))  # refused when its part begins
    status, body = curl_upload(f"{site.url}/upload", site.tokens[carol], path)
    assert status == 413
    assert me(site, carol)["total_size"] == 0


def test_too_large_without_content_length_is_413_while_streaming(site: Site, carol: str) -> None:
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'

    def body() -> object:
        yield head
        for _ in range(40):
            yield b"z" * (8 * KiB)  # 320 KiB in all, chunked
        yield b"\r\n--b--\r\n"

    headers = {**site.auth(carol), "content-type": "multipart/form-data; boundary=b"}
    response = httpx.post(f"{site.url}/upload", content=body(), headers=headers)  # type: ignore[arg-type]
    assert response.status_code == 413 and response.json()["detail"]
    assert me(site, carol)["total_size"] == 0


def test_quota_exceeded_is_403(site: Site, carol: str) -> None:
    for i in range(4):
        assert upload(site, os.urandom(250 * KiB), f"{i}", carol).status_code == 200
    used = me(site, carol)["total_size"]
    response = upload(site, os.urandom(100 * KiB), "over", carol)
    assert response.status_code == 403 and "quota" in response.json()["detail"]
    assert me(site, carol)["total_size"] == used == 1000 * KiB
    assert len(get(site, "/list", carol).json()) == 4


def test_malformed_forms_are_400_or_415(site: Site) -> None:
    url, auth = f"{site.url}/upload", site.auth("alice")
    not_form = httpx.post(url, content=b"raw", headers={**auth, "content-type": "application/octet-stream"})
    assert not_form.status_code == 415 and "multipart" in not_form.json()["detail"]
    no_file = httpx.post(url, data={"x": "1"}, files={"other": ("a", b"a")}, headers=auth)
    assert no_file.status_code == 400
    only_field = httpx.post(url, files={"max_downloads": (None, b"1")}, headers=auth)
    assert only_field.status_code == 400 and "no file" in only_field.json()["detail"]
    two = httpx.post(url, files=[("file", ("a", b"a")), ("file", ("b", b"b"))], headers=auth)
    assert two.status_code == 400
    many = [("files", (f"{i}", b"x")) for i in range(101)]
    assert httpx.post(f"{site.url}/upload_batch", files=many, headers=auth).status_code == 400
    truncated = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nhalf a fi'
    headers = {**auth, "content-type": "multipart/form-data; boundary=b"}
    response = httpx.post(url, content=truncated, headers=headers)
    assert response.status_code == 400 and "detail" in response.json()
    assert get(site, "/list").json() == []
    assert me(site)["total_size"] == 0


def test_200_parallel_uploads_fill_the_quota_exactly(run_pyblob: RunPyblob, start_server: StartServer) -> None:
    """One user, 200 uploads at once, a quota for exactly 37: 37 stored, 163 refused with 403,
    usage to the byte, and the list agrees."""
    size, fits = 32 * KiB, 37
    token = add_user(run_pyblob, "dave", "--quota", str(fits * size))
    server = start_server(env=NO_RATE_LIMITS)
    statuses = asyncio.run(parallel_uploads(server.url, token, size, 200))
    assert statuses.count(200) == fits
    assert statuses.count(403) == 200 - fits
    headers = {"authorization": f"Bearer {token}"}
    user = httpx.get(f"{server.url}/user/me", headers=headers).json()
    assert (user["total_size"], user["file_count"], user["total_upload_times"]) == (fits * size, fits, fits)
    listed = httpx.get(f"{server.url}/list", headers=headers).json()
    assert len(listed) == fits and all(f["file_size"] == size for f in listed)


async def parallel_uploads(url: str, token: str, size: int, count: int) -> list[int]:
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=120, headers={"authorization": f"Bearer {token}"}) as client:

        async def one(i: int) -> int:
            files = {"file": (f"f{i}.bin", bytes([i % 256]) * size)}
            response = await client.post(f"{url}/upload", files=files)
            assert response.status_code in (200, 403), response.text
            return response.status_code

        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), timeout=180)


def test_curl_sees_json_errors(site: Site) -> None:
    result = curl("-X", "POST", f"{site.url}/upload")
    body, _, status = result.stdout.rpartition("\n")
    assert status == "401" and '"detail"' in body


def test_the_upload_file_size_setting_bounds_rest_tus_and_websocket_only(
    run_pyblob: RunPyblob, start_server: StartServer
) -> None:
    """PYBLOB_UPLOAD_MAX_FILE_SIZE (pyBlobServer's FILE_SIZE_LIMIT_MB) holds on the REST surface,
    whoever uploads, and says so; S3 clients of the same user are not bound by it."""
    import boto3
    import websockets.sync.client
    from botocore.config import Config

    result = run_pyblob("user", "add", "uma", "--json")
    creds = json.loads(result.stdout)
    server = start_server(env={**NO_RATE_LIMITS, "PYBLOB_UPLOAD_MAX_FILE_SIZE": "64KiB"})
    token = {"authorization": f"Bearer {creds['token']}"}
    refused = httpx.post(f"{server.url}/upload", files={"file": ("big.bin", os.urandom(100 * KiB))}, headers=token)
    assert refused.status_code == 413 and "PYBLOB_UPLOAD_MAX_FILE_SIZE" in refused.json()["detail"]
    fits = httpx.post(f"{server.url}/upload", files={"file": ("ok.bin", os.urandom(60 * KiB))}, headers=token)
    assert fits.status_code == 200, fits.text
    tus = {**token, "tus-resumable": "1.0.0"}
    options = httpx.options(f"{server.url}/upload_tus/", headers=tus)
    assert options.headers["tus-max-size"] == str(64 * KiB)
    created = httpx.post(f"{server.url}/upload_tus/", headers={**tus, "upload-length": str(100 * KiB)})
    assert created.status_code == 413 and "PYBLOB_UPLOAD_MAX_FILE_SIZE" in created.json()["detail"]
    with websockets.sync.client.connect(
        server.url.replace("http", "ws") + "/upload_socket", additional_headers=token
    ) as ws:
        ws.recv()
        ws.send(json.dumps({"name": "big.bin", "size": 100 * KiB}))
        assert "PYBLOB_UPLOAD_MAX_FILE_SIZE" in ws.recv()
    s3 = boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=creds["access_key"],
        aws_secret_access_key=creds["secret_key"],
        config=Config(s3={"addressing_style": "path"}),
    )
    s3.create_bucket(Bucket="uma-s3")
    s3.put_object(Bucket="uma-s3", Key="big.bin", Body=os.urandom(100 * KiB))
    assert s3.head_object(Bucket="uma-s3", Key="big.bin")["ContentLength"] == 100 * KiB
    s3.close()
