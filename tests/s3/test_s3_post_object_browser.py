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
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.client import BaseClient
from browsers import WAIT_SECONDS, Origin, chromium, origin
from post_forms import SCHEMES, form_client, presign
from s3_server import ADMIN, Endpoint

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


@pytest.fixture(scope="module")
def app_origin() -> Iterator[Origin]:
    """The web app's origin, serving its upload page."""
    with origin() as served:
        yield served


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def upload_from_page(browser: Any, app: Origin, url: str, fields: dict[str, str], filename: str) -> dict[str, Any]:
    """Open the app's page, which posts CONTENT with `fields`; what its script saw."""
    from selenium.webdriver.support.wait import WebDriverWait

    job = {"url": url, "fields": fields, "content": list(CONTENT), "filename": filename}
    app.pages["/upload.html"] = (PAGE % json.dumps(job).replace("</", "<\\/")).encode()
    browser.get(f"{app.url}/upload.html")
    result: dict[str, Any] = WebDriverWait(browser, WAIT_SECONDS).until(
        lambda d: d.execute_script("return window.uploadResult || null")
    )
    return result


def allow_origin(s3: BaseClient, bucket: str, origin: str) -> None:
    rules = [{"AllowedOrigins": [origin], "AllowedMethods": ["POST"], "ExposeHeaders": ["ETag"]}]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_a_page_on_another_origin_uploads_a_file(
    browser: Any, app_origin: Origin, http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str, scheme: str
) -> None:
    allow_origin(s3_http, http_bucket, app_origin.url)
    url, fields = presign(
        form_client(http_endpoint, ADMIN, scheme), http_bucket, "uploads/${filename}", {"success_action_status": "201"}
    )
    seen = upload_from_page(browser, app_origin, url, fields, "hello.bin")
    got = s3_http.get_object(Bucket=http_bucket, Key="uploads/hello.bin")
    assert seen == {"status": 201, "etag": got["ETag"], "key": "uploads/hello.bin"}
    assert got["Body"].read() == CONTENT


def test_without_a_cors_rule_the_page_cannot_read_the_answer(
    browser: Any, app_origin: Origin, http_endpoint: Endpoint, s3_http: BaseClient, http_bucket: str
) -> None:
    """The same upload to a bucket that allows no origin: the browser withholds the answer from the page.
    A form POST is a CORS "simple request", sent without a preflight, so the object is stored all the
    same, as at AWS: CORS decides what pages may read, the signed policy what may be written."""
    url, fields = presign(
        form_client(http_endpoint, ADMIN, "sigv2-default"), http_bucket, "blocked.bin", {"success_action_status": "201"}
    )
    seen = upload_from_page(browser, app_origin, url, fields, "blocked.bin")
    assert set(seen) == {"error"} and "Failed to fetch" in seen["error"]
    assert s3_http.get_object(Bucket=http_bucket, Key="blocked.bin")["Body"].read() == CONTENT  # it did reach pyblob
