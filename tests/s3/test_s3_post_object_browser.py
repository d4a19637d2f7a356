"""POST Object from a real browser: headless Chromium on a page of another origin, through CORS.

As a web app does it: its backend makes the form with boto3's `generate_presigned_post` (on default
settings, so SigV2; and with s3v4), the page (served here from a second local origin) posts the
file with `fetch` and `FormData`, and reads the answer, which CORS lets it see only when the bucket
allows that origin. Chromium and its driver are the Debian packages `chromium` and
`chromium-driver` (scripts/test installs them as root), driven by Selenium. Every wait is bounded:
the page's script, the page load and the driver's commands.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from post_forms import SCHEMES, form_client, presign
from s3_server import ADMIN, Endpoint

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-proxy-server")
WAIT_SECONDS = 10
CONTENT = bytes(range(256)) * 4  # every byte value, zeros included

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>upload</title></head>
<body>
<script type="application/json" id="job">%s</script>
<script>
const job = JSON.parse(document.getElementById("job").textContent);
async function upload() {
  const form = new FormData();
  for (const [name, value] of Object.entries(job.fields)) form.append(name, value);
  form.append("file", new Blob([new Uint8Array(job.content)], {type: "application/octet-stream"}), job.filename);
  try {
    const response = await fetch(job.url, {method: "POST", body: form});
    const xml = new DOMParser().parseFromString(await response.text(), "application/xml");
    const key = xml.querySelector("PostResponse > Key");
    return {status: response.status, etag: response.headers.get("ETag"), key: key ? key.textContent : null};
  } catch (error) {
    return {error: String(error)};
  }
}
upload().then(result => { window.uploadResult = result; });
</script>
</body></html>
"""


class PageServer:
    """The web app's origin: one page, served on its own loopback port."""

    def __init__(self) -> None:
        self.page = b""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(outer.page)))
                self.end_headers()
                self.wfile.write(outer.page)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(WAIT_SECONDS)


@pytest.fixture(scope="module")
def app_origin() -> Iterator[PageServer]:
    server = PageServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium with a fresh profile, through chromedriver; quit after the module."""
    for tool, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not tool.exists():
            pytest.fail(f"{tool} is missing: install the Debian package {package} (scripts/test does, as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    driver.set_script_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def upload_from_page(browser: Any, app: PageServer, url: str, fields: dict[str, str], filename: str) -> dict[str, Any]:
    """Open the app's page, which posts CONTENT with `fields`; what its script saw."""
    from selenium.webdriver.support.wait import WebDriverWait

    job = {"url": url, "fields": fields, "content": list(CONTENT), "filename": filename}
    app.page = (PAGE % json.dumps(job).replace("</", "<\\/")).encode()
    browser.get(f"{app.origin}/upload.html")
    result: dict[str, Any] = WebDriverWait(browser, WAIT_SECONDS).until(lambda d: d.execute_script("return window.uploadResult || null"))
    return result


def allow_origin(s3: BaseClient, bucket: str, origin: str) -> None:
    rules = [{"AllowedOrigins": [origin], "AllowedMethods": ["POST"], "ExposeHeaders": ["ETag"]}]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_a_page_on_another_origin_uploads_a_file(browser: Any, app_origin: PageServer, http_endpoint: Endpoint,
                                                 s3_http: BaseClient, http_bucket: str, scheme: str) -> None:
    allow_origin(s3_http, http_bucket, app_origin.origin)
    url, fields = presign(form_client(http_endpoint, ADMIN, scheme), http_bucket, "uploads/${filename}", {"success_action_status": "201"})
    seen = upload_from_page(browser, app_origin, url, fields, "hello.bin")
    got = s3_http.get_object(Bucket=http_bucket, Key="uploads/hello.bin")
    assert seen == {"status": 201, "etag": got["ETag"], "key": "uploads/hello.bin"}
    assert got["Body"].read() == CONTENT


def test_without_a_cors_rule_the_page_cannot_read_the_answer(browser: Any, app_origin: PageServer, http_endpoint: Endpoint,
                                                             s3_http: BaseClient, http_bucket: str) -> None:
    """The same upload to a bucket that allows no origin: the browser withholds the answer from the page.
    A form POST is a CORS "simple request", sent without a preflight, so the object is stored all the
    same, as at AWS: CORS decides what pages may read, the signed policy what may be written."""
    url, fields = presign(form_client(http_endpoint, ADMIN, "sigv2-default"), http_bucket, "blocked.bin", {"success_action_status": "201"})
    seen = upload_from_page(browser, app_origin, url, fields, "blocked.bin")
    assert set(seen) == {"error"} and "Failed to fetch" in seen["error"]
    assert s3_http.get_object(Bucket=http_bucket, Key="blocked.bin")["Body"].read() == CONTENT  # it did reach pyblob
