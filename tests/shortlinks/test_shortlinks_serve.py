"""`GET`/`HEAD /s/{id}` against a real server: bytes, Range, conditionals, dispositions, safety, expiry."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import quote

import boto3
import httpx
from botocore.config import Config
from processes import RunPyblob
from shortlinks_site import Site

DATA = bytes(range(256)) * 40  # 10240 bytes


def get(site: Site, link_id: str, **kwargs: object) -> httpx.Response:
    return httpx.get(f"{site.url}/s/{link_id}", **kwargs)  # type: ignore[arg-type]


def assert_safe(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "sandbox"


def test_get_serves_the_bytes_inline_for_a_safe_type(site: Site) -> None:
    link_id = site.link_for("pics/cat.png", DATA, "image/png")
    response = get(site, link_id)
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == 'inline; filename="cat.png"'
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["accept-ranges"] == "bytes"
    assert "last-modified" in response.headers
    assert_safe(response)


def test_range_answers_206(site: Site) -> None:
    link_id = site.link_for("video.mp4", DATA, "video/mp4")
    response = get(site, link_id, headers={"range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.content == DATA[100:200]
    assert response.headers["content-range"] == f"bytes 100-199/{len(DATA)}"
    suffix = get(site, link_id, headers={"range": "bytes=-10"})
    assert (suffix.status_code, suffix.content) == (206, DATA[-10:])
    beyond = get(site, link_id, headers={"range": f"bytes={len(DATA)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(DATA)}"
    assert_safe(beyond)


def test_head_has_headers_and_no_body_and_is_not_counted(site: Site) -> None:
    link_id = site.link_for("a.bin", DATA)
    response = httpx.head(f"{site.url}/s/{link_id}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(DATA))
    assert_safe(response)
    assert get(site, link_id, params={"output": "json"}).json()["downloads"] == 0


def test_if_none_match_answers_304_without_counting(site: Site) -> None:
    link_id = site.link_for("a.txt", b"hello", "text/plain")
    first = get(site, link_id)
    again = get(site, link_id, headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    assert_safe(again)
    assert get(site, link_id, params={"output": "json"}).json()["downloads"] == 1


def test_download_names_the_file_with_rfc5987_for_unicode_and_quotes(site: Site) -> None:
    key = 'docs/Résumé "final" 日本.pdf'
    link_id = site.link_for(key, b"%PDF-1.4", "application/pdf")
    response = get(site, link_id, params={"output": "download"})
    assert response.status_code == 200
    name = 'Résumé "final" 日本.pdf'
    expected = f"attachment; filename=\"R_sum_ _final_ __.pdf\"; filename*=UTF-8''{quote(name, safe='')}"
    assert response.headers["content-disposition"] == expected
    assert_safe(response)


def test_json_output_has_metadata_and_never_the_owner(site: Site) -> None:
    link_id = site.link_for("notes/readme.txt", b"hello world", "text/plain")
    get(site, link_id)
    response = get(site, link_id, params={"output": "json"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"name", "size", "type", "created", "downloads"}
    assert (body["name"], body["size"], body["type"], body["downloads"]) == ("readme.txt", 11, "text/plain", 1)
    assert "alice" not in response.text and site.tokens["alice"] not in response.text
    assert_safe(response)


def test_script_capable_types_are_attachments(site: Site) -> None:
    for key, kind in [
        ("x.html", "text/html"),
        ("x.svg", "image/svg+xml"),
        ("x.xml", "application/xml"),
        ("x.js", "text/javascript"),
    ]:
        link_id = site.link_for(key, b"<script>alert(1)</script>", kind)
        response = get(site, link_id)
        assert response.status_code == 200
        assert response.headers["content-disposition"].startswith("attachment;"), kind
        assert_safe(response)


def test_unknown_id_is_404_json(site: Site) -> None:
    response = get(site, "zzzzzzzz")
    assert response.status_code == 404
    assert response.json()["detail"] == "link not found"
    assert_safe(response)


def test_unknown_output_is_400(site: Site) -> None:
    link_id = site.link_for("a.txt", b"x", "text/plain")
    assert get(site, link_id, params={"output": "nope"}).status_code == 400


def test_expired_link_is_410(site: Site) -> None:
    link_id = site.link_for("brief.txt", b"soon gone", "text/plain", expires_in=1)
    assert get(site, link_id).status_code == 200
    time.sleep(1.5)
    response = get(site, link_id)
    assert response.status_code == 410
    assert response.json()["detail"] == "link expired"
    assert_safe(response)


def test_max_downloads_burns_the_link(site: Site) -> None:
    link_id = site.link_for("once.txt", b"only once", "text/plain", max_downloads=1)
    first = get(site, link_id)
    assert (first.status_code, first.content) == (200, b"only once")
    assert first.headers["cache-control"] == "no-store"
    assert get(site, link_id).status_code == 410


def test_link_follows_an_overwritten_object(site: Site) -> None:
    link_id = site.link_for("v.txt", b"one", "text/plain")
    site.s3.put_object(Bucket="shared-files", Key="v.txt", Body=b"two", ContentType="text/plain")
    assert get(site, link_id).content == b"two"


def test_types_no_header_can_carry_do_not_break_a_link(site: Site, run_pyblob: RunPyblob) -> None:
    """A part's Content-Type with a control character, a tus `filetype` outside Latin-1, a POST Object
    `Content-Type` field: each was stored as sent and every GET of the link lost its connection."""
    form = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        b"Content-Type: text/plain\x01\r\n\r\nhi\r\n--b--\r\n"
    )
    headers = {**site.auth("alice"), "content-type": "multipart/form-data; boundary=b"}
    form_id = httpx.post(f"{site.url}/upload", content=form, headers=headers).json()["file_id"]
    assert get(site, form_id).headers["content-type"] == "text/plain"  # the name's type
    filetype = base64.b64encode("image/p\u1e57ng".encode()).decode()
    tus = {
        **site.auth("alice"),
        "tus-resumable": "1.0.0",
        "upload-length": "2",
        "content-type": "application/offset+octet-stream",
        "upload-metadata": f"filename eC5wbmc=,filetype {filetype}",
    }
    link_url = httpx.post(f"{site.url}/upload_tus/", content=b"hi", headers=tus).headers["upload-link"]
    assert httpx.get(link_url).headers["content-type"] == "image/png"
    # An S3 POST Object field no header can carry is refused (InvalidArgument) rather than stored.
    carol = json.loads(run_pyblob("user", "add", "carol", "--json").stdout)
    s3 = boto3.client(
        "s3",
        endpoint_url=site.url,
        region_name="us-east-1",
        aws_access_key_id=carol["access_key"],
        aws_secret_access_key=carol["secret_key"],
        config=Config(signature_version="s3v4"),
    )
    s3.create_bucket(Bucket="carols")
    post = s3.generate_presigned_post(
        "carols", "a.txt", Fields={"Content-Type": "text/plain\x01"}, Conditions=[["starts-with", "$Content-Type", ""]]
    )
    refused = httpx.post(post["url"], data=post["fields"], files={"file": ("a.txt", b"hi")})
    assert refused.status_code == 400 and b"<Code>InvalidArgument</Code>" in refused.content
