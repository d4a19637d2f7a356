"""Served content never runs script on pyblob's origin, and names and metadata never become headers
(issue 15, Security: served content).

In headless Chromium (`browsers.py`), against a real `pyblob serve`: pages that can carry script
(HTML, SVG with <script> and onload, XHTML, XML with an XHTML-namespace script or an xml-stylesheet,
XSLT, PDF with JavaScript, bytes under a type a browser would sniff) are opened through an S3
presigned GET (path-style, with and without response-content-type / response-content-disposition
overrides), through `/s/<id>` and its preview page, and names and metadata carrying markup are shown
by the web console. Each script tries to leave a marker on the origin it runs on: a localStorage
item, a cookie and a same-origin request. None may be found on pyblob's origin; the controls (the
same bytes under the same type from another local origin) show this Chromium runs them where
nothing stops it.

Header injection: CR/LF in names, metadata and query overrides is refused or encoded, checked on
the raw response heads read with `http.client` and a socket.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from botocore.client import BaseClient
from browsers import Origin, chromium, origin
from processes import RunPyblob, Server, StartServer, isolate_from_aws, user_s3_client

BUCKET = "files"
PROBE = (
    "try { localStorage.setItem('pwned', '%(case)s'); } catch (e) {}"
    " document.cookie = 'pwned_%(case)s=1; path=/';"
    " fetch('/pwned-%(case)s').catch(() => {});"
)
XHTML = "http://www.w3.org/1999/xhtml"


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_aws(monkeypatch, tmp_path)


# what a hostile upload holds ---------------------------------------------------------------------
def probe(case: str) -> str:
    return PROBE % {"case": case}


def html_page(case: str) -> bytes:
    js = probe(case)
    return f'<!doctype html><html><body><script>{js}</script><img src="x" onerror="{js}"></body></html>'.encode()


def svg_image(case: str) -> bytes:
    js = probe(case)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" onload="{js}"><script>{js}</script><circle r="5"/></svg>'
    ).encode()


def xhtml_page(case: str) -> bytes:
    return (f'<?xml version="1.0"?><html xmlns="{XHTML}"><body><script>{probe(case)}</script></body></html>').encode()


def xml_with_script(case: str) -> bytes:
    """Any XML document: a script element in the XHTML namespace runs where the XML renders."""
    return f'<?xml version="1.0"?><doc><script xmlns="{XHTML}">{probe(case)}</script></doc>'.encode()


def xslt(case: str) -> bytes:
    """A stylesheet whose output is a page with a script."""
    return (
        '<?xml version="1.0"?><xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        f'<xsl:template match="/"><html xmlns="{XHTML}"><body><script>{probe(case)}</script></body></html>'
        "</xsl:template></xsl:stylesheet>"
    ).encode()


def styled_xml(stylesheet_url: str) -> bytes:
    href = stylesheet_url.replace("&", "&amp;")
    return f'<?xml version="1.0"?><?xml-stylesheet type="text/xsl" href="{href}"?><doc/>'.encode()


def mixed_replace(case: str) -> bytes:
    return b"--b\r\nContent-Type: text/html\r\n\r\n" + html_page(case) + b"\r\n--b--\r\n"


def pdf_with_javascript(case: str) -> bytes:
    """A one-page PDF whose open action is JavaScript trying to reach the origin."""
    js = f"app.launchURL('/pwned-{case}'); this.submitForm('/pwned-{case}-form');"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
        f"<< /Type /Action /S /JavaScript /JS ({js}) >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{at:010d} 00000 n \n".encode() for at in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


# case -> (stored type, body); each opened as stored, as a link, and as the link's preview page
ACTIVE = {
    "html": ("text/html", html_page),
    "svg": ("image/svg+xml", svg_image),
    "xhtml": ("application/xhtml+xml", xhtml_page),
    "xml": ("application/xml", xml_with_script),
    "textxml": ("text/xml", xml_with_script),
    "rss": ("application/rss+xml", xml_with_script),
    "xsl": ("text/xsl", xml_with_script),
    "xslt": ("application/xslt+xml", xml_with_script),
    "mixed": ("multipart/x-mixed-replace; boundary=b", mixed_replace),
    "sniffed": ("text/plain x", html_page),  # not a valid type: a browser sniffs the bytes
    "none": ("", html_page),
    "pdf": ("application/pdf", pdf_with_javascript),
}


# What this Chromium runs when served from an origin that does not stop it (the control's finding).
RUN_ELSEWHERE = {"html", "svg", "xhtml", "xml", "textxml", "xsl", "none"}


# the site ------------------------------------------------------------------------------------------
@dataclass
class Site:
    server: Server
    creds: dict[str, str]
    s3: BaseClient

    @property
    def url(self) -> str:
        return self.server.url

    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.creds['token']}"}

    def put(self, key: str, body: bytes, content_type: str, **extra: Any) -> None:
        if content_type:
            extra["ContentType"] = content_type
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body, **extra)

    def link(self, key: str) -> str:
        made = httpx.post(f"{self.url}/api/links", json={"bucket": BUCKET, "key": key}, headers=self.auth())
        assert made.status_code == 201, made.text
        return str(made.json()["url"])

    def presigned(self, key: str, **overrides: str) -> str:
        params = {"Bucket": BUCKET, "Key": key, **overrides}
        return str(self.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=600))

    def probed(self) -> list[str]:
        """The same-origin requests the probes made, from the access log."""
        return [line for line in self.server.stderr.splitlines() if "/pwned-" in line]


@pytest.fixture
def site(start_server: StartServer, run_pyblob: RunPyblob) -> Iterator[Site]:
    made = run_pyblob("user", "add", "alice", "--json")
    assert made.returncode == 0, made.stderr
    creds = json.loads(made.stdout)
    server = start_server()
    s3 = user_s3_client(server.url, creds)
    s3.create_bucket(Bucket=BUCKET)
    yield Site(server, creds, s3)
    s3.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "profile") as driver:
        yield driver


@pytest.fixture
def other_origin() -> Iterator[Origin]:
    with origin() as served:
        yield served


def visit(browser: Any, url: str) -> None:
    """Open `url` and give a script time to run (a download leaves the page where it was)."""
    browser.get(url)
    time.sleep(0.3)


def markers(browser: Any, url: str) -> list[str]:
    """What the probes left on `url`'s origin: its localStorage item and cookies."""
    browser.get(url)
    found = browser.execute_script("return [localStorage.getItem('pwned') || '', document.cookie]")
    return [value for value in found if value]


def forget(browser: Any) -> None:
    """Clear the markers of the origin the browser is on."""
    browser.delete_all_cookies()
    browser.execute_script("localStorage.clear()")


# script ----------------------------------------------------------------------------------------------
def test_controls_run_where_nothing_stops_them(browser: Any, other_origin: Origin) -> None:
    """The probes are live: from another origin, served under the same types, they leave their markers."""
    other_origin.pages["/blank"] = b"<!doctype html><title>blank</title>"
    ran = {}
    for case, (content_type, make) in ACTIVE.items():
        other_origin.pages[f"/{case}"] = make(case)
        other_origin.types[f"/{case}"] = content_type
        visit(browser, f"{other_origin.url}/{case}")
        ran[case] = markers(browser, f"{other_origin.url}/blank")
        forget(browser)
    assert {case for case, found in ran.items() if found} >= RUN_ELSEWHERE, ran


def test_no_stored_content_runs_script_on_our_origin(browser: Any, site: Site) -> None:
    urls = {}
    for case, (content_type, make) in ACTIVE.items():
        key = f"{case}.bin"
        site.put(key, make(case), content_type)
        link = site.link(key)
        urls[f"{case} s3"] = site.presigned(key)
        urls[f"{case} link"] = link
        urls[f"{case} preview"] = link + "?output=html"
        urls[f"{case} inline override"] = site.presigned(key, ResponseContentDisposition="inline")
    site.put("style.xsl", xslt("stylesheet"), "text/xsl")
    site.put("styled.xml", styled_xml(site.presigned("style.xsl")), "application/xml")
    urls["stylesheet s3"] = site.presigned("styled.xml")
    site.put("styled-link.xml", styled_xml(site.link("style.xsl")), "application/xml")
    urls["stylesheet link"] = site.link("styled-link.xml")
    site.put("plain.txt", html_page("override"), "text/plain")
    for kind in ("text/html", "image/svg+xml", "text/xsl", "application/xhtml+xml", "text/plain x", ""):
        urls[f"override {kind!r}"] = site.presigned(
            "plain.txt", ResponseContentType=kind, ResponseContentDisposition="inline"
        )
    left = {}
    for name, url in urls.items():
        visit(browser, url)
        found = markers(browser, f"{site.url}/health")
        if found:
            left[name] = found
            forget(browser)
    assert not left, left
    assert not site.probed()


# names and metadata with markup, in the console, the preview page and S3 -------------------------------
def sign_in(browser: Any, url: str, token: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    browser.get(f"{url}/ui/")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    WebDriverWait(browser, 10).until(lambda d: "Signed in" in d.find_element(By.ID, "message").text)


def shown(browser: Any, selector: str, count: int) -> str:
    """The text of the list under `selector` once it has `count` items."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    WebDriverWait(browser, 10).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, f"{selector} > li")) >= count)
    return str(browser.find_element(By.CSS_SELECTOR, selector).text)


def parsed_markup(browser: Any) -> int:
    """Elements with an event handler attribute, or images and SVG, that names could have made."""
    return int(browser.execute_script("return document.querySelectorAll('[onerror], [onload], img[src=\"x\"]').length"))


def test_names_and_metadata_with_markup_run_nothing(browser: Any, site: Site) -> None:
    # No slash in a file name: an upload keeps its last path segment.
    name = "<img src=\"x\" onerror=\"localStorage.setItem('pwned', 'name')\">.html"
    svg_name = "<svg onload=\"localStorage.setItem('pwned', 'svgname')\">.svg"
    for upload_name, body, kind in ((name, b"hello", "text/html"), (svg_name, svg_image("uploaded"), "image/svg+xml")):
        sent = httpx.post(
            f"{site.url}/upload", files={"file": (upload_name, body, kind)}, headers=site.auth(), timeout=30
        )
        assert sent.status_code == 200, sent.text
    listed = httpx.get(f"{site.url}/list", headers=site.auth()).json()
    assert len(listed) == 2 and all("<" in f["file_name"] for f in listed)  # markup kept, to be shown as text
    markup = f"<script>{probe('meta')}</script>"
    site.put(
        name,
        b"bytes",
        f'text/plain; charset="<img src=x onerror={probe("type")}>"',
        Metadata={"note": markup},
        ContentDisposition=f'inline; filename="{markup}"',
    )
    link = site.link(name)
    sign_in(browser, site.url, site.creds["token"])
    files = shown(browser, "#file-list", 2)
    assert all(f["file_name"] in files for f in listed), files
    assert parsed_markup(browser) == 0
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, "nav [data-view='buckets']").click()
    shown(browser, "#bucket-list", 1)
    [files_bucket] = [b for b in browser.find_elements(By.CSS_SELECTOR, "button.open-bucket") if b.text == BUCKET]
    files_bucket.click()
    from selenium.webdriver.support.wait import WebDriverWait

    WebDriverWait(browser, 10).until(lambda d: name in d.find_element(By.ID, "bucket-list").text)
    assert parsed_markup(browser) == 0
    for url in (link + "?output=html", link, site.presigned(name)):
        visit(browser, url)
        if urlsplit(browser.current_url).path == urlsplit(url).path:
            assert parsed_markup(browser) == 0, url
    for uploaded in listed:
        visit(browser, f"{uploaded['file_url']}?output=html")
        assert parsed_markup(browser) == 0
    assert markers(browser, f"{site.url}/health") == []
    assert not site.probed()


# header injection ------------------------------------------------------------------------------------
def raw_exchange(url: str, request: bytes) -> tuple[int, list[bytes]]:
    """Send `request` as is to `url`'s server; its status and raw header lines."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            piece = sock.recv(65536)
            if not piece:
                break
            head += piece
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    return int(lines[0].split()[1]), lines[1:]


def assert_clean_head(lines: list[bytes]) -> None:
    """No header line holds a CR or LF of its own, and none was injected."""
    for line in lines:
        assert b"\r" not in line and b"\n" not in line, line
        assert not line.lower().startswith(b"x-injected"), lines
        assert b":" in line, line


def raw_get(url: str) -> tuple[int, list[bytes]]:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode()
    return raw_exchange(url, request)


def header_names(url: str) -> list[str]:
    """The header names of a GET of `url` as `http.client` reads them (an injected line would be one)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = connection.getresponse()
        response.read()
        return [name.lower() for name, _ in response.getheaders()]
    finally:
        connection.close()


def header(lines: list[bytes], name: bytes) -> bytes:
    found = [line.split(b":", 1)[1].strip() for line in lines if line.lower().startswith(name + b":")]
    assert len(found) == 1, (name, lines)
    return found[0]


INJECTIONS = {
    "CRLF": "a\r\nX-Injected: 1",
    "LF": "a\nX-Injected: 1",
    "CR": "a\rX-Injected: 1",
    "encoded CRLF": "a%0D%0AX-Injected:%201",
}


def test_keys_with_crlf_are_served_without_a_new_header(site: Site) -> None:
    for label, text in INJECTIONS.items():
        key = f"{text}.txt"
        site.put(key, b"body", "text/plain")
        for url in (site.presigned(key), site.link(key), site.link(key) + "?output=download"):
            status, lines = raw_get(url)
            assert status == 200, (label, url)
            assert_clean_head(lines)
            assert "x-injected" not in header_names(url)
        disposition = header(raw_get(site.link(key))[1], b"content-disposition")
        if label != "encoded CRLF":  # a real CR or LF: only in the RFC 5987 form, percent-encoded
            assert b"filename*=UTF-8''" in disposition and b"X-Injected%3A" in disposition, disposition


def test_response_overrides_with_crlf_are_refused(site: Site) -> None:
    site.put("doc.txt", b"body", "text/plain")
    for label, text in INJECTIONS.items():
        for param in ("ResponseContentDisposition", "ResponseContentType", "ResponseCacheControl"):
            status, lines = raw_get(site.presigned("doc.txt", **{param: text}))
            assert_clean_head(lines)
            if label != "encoded CRLF":
                assert status == 400, (label, param, status)


def signed_put_head(site: Site, key: str, meta_line: bytes) -> bytes:
    """A SigV4 PUT of an empty body to `key` with the raw header line `meta_line` added after signing
    (an unsigned x-amz-* header is refused, so the server must look at it either way)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{site.url}/{BUCKET}/{quote(key)}"
    request = AWSRequest(method="PUT", url=url, headers={"content-length": "0"}, data=b"")
    creds = Credentials(site.creds["access_key"], site.creds["secret_key"])
    S3SigV4Auth(creds, "s3", "us-east-1").add_auth(request)
    lines = [f"PUT {urlsplit(url).path} HTTP/1.1".encode(), f"Host: {urlsplit(url).netloc}".encode()]
    lines += [f"{k}: {v}".encode() for k, v in request.headers.items() if k.lower() != "host"]
    return b"\r\n".join([*lines, meta_line, b"Connection: close", b"", b""])


@pytest.mark.parametrize(
    "meta_line",
    [
        b"x-amz-meta-note: a\r\n X-Injected: 1",  # obsolete line folding
        b"x-amz-meta-note: a\rX-Injected: 1",
        b"x-amz-meta-note: a\nX-Injected: 1",
        b"Content-Disposition: a\r\n\tX-Injected: 1",
    ],
    ids=["obs-fold", "bare CR", "bare LF", "folded disposition"],
)
def test_metadata_with_crlf_never_comes_back_as_a_header(site: Site, meta_line: bytes) -> None:
    status, lines = raw_exchange(site.url, signed_put_head(site, "meta.txt", meta_line))
    assert status == 400, status  # the HTTP parser takes no CR or LF in a value, and no folded line
    assert_clean_head(lines)
    assert raw_get(site.presigned("meta.txt"))[0] == 404  # nothing stored


def test_post_form_fields_with_crlf_are_refused(site: Site) -> None:
    for field in ("x-amz-meta-note", "Content-Disposition", "Content-Type", "Cache-Control"):
        form = site.s3.generate_presigned_post(
            BUCKET, "posted.txt", Fields={field: "a\r\nX-Injected: 1"}, Conditions=[["starts-with", f"${field}", ""]]
        )
        sent = httpx.post(form["url"], data=form["fields"], files={"file": ("posted.txt", b"x")})
        assert sent.status_code == 400, (field, sent.text)
        assert "<Code>InvalidArgument</Code>" in sent.text or "<Code>InvalidRequest</Code>" in sent.text


def test_upload_names_with_crlf_are_encoded(site: Site) -> None:
    """A REST upload's file name and a tus upload's metadata come back in Content-Disposition, encoded."""
    import base64

    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a\rX-Injected: 1.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n"
    ).encode()
    sent = httpx.post(
        f"{site.url}/upload",
        content=body,
        headers={**site.auth(), "content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["name"] == "aX-Injected: 1.txt"  # control characters dropped from the name
    urls = [sent.json()["file_url"]]
    metadata = ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in {"filename": "b\r\nX-Injected: 1.txt", "filetype": "text/plain\r\nX-Injected: 2"}.items()
    )
    tus = {**site.auth(), "tus-resumable": "1.0.0"}
    created = httpx.post(f"{site.url}/upload_tus", headers={**tus, "upload-length": "5", "upload-metadata": metadata})
    assert created.status_code == 201, created.text
    patched = httpx.patch(
        created.headers["location"]
        if created.headers["location"].startswith("http")
        else site.url + created.headers["location"],
        content=b"hello",
        headers={**tus, "upload-offset": "0", "content-type": "application/offset+octet-stream"},
    )
    assert patched.status_code == 204, patched.text
    urls.append(patched.headers.get("upload-link") or created.headers.get("upload-link", ""))
    for url in filter(None, urls):
        for variant in (url, url + "?output=download", url + "?output=html"):
            status, lines = raw_get(variant)
            assert status == 200, variant
            assert_clean_head(lines)
