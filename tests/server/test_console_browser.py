"""The web console at `/ui/` in headless Chromium (Debian's, driven by Selenium): sign in, upload two
files (one through tus), see them listed with a thumbnail, open a short link, change its expiry,
delete one, on a desktop window and a phone-sized one. Screenshots of each step go to the test's
temporary directory (printed with `-s`). Every wait is bounded."""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browsers import WAIT_SECONDS, chromium
from processes import RunPyblob, Server, StartServer

BIG = 9 * 1024 * 1024  # above the console's 8 MiB: uploaded through tus
UPLOAD_WAIT = 60


def png(width: int = 4, height: int = 4) -> bytes:
    """A small valid PNG (red pixels), made here so the thumbnail has something to show."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "profile") as driver:
        driver.set_window_size(1280, 900)
        yield driver


def until(driver: Any, check: Callable[[Any], Any], seconds: float = WAIT_SECONDS) -> Any:
    """`check` until it answers; an element the page re-rendered meanwhile (stale) is looked up again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.wait import WebDriverWait

    return WebDriverWait(driver, seconds, ignored_exceptions=(StaleElementReferenceException,)).until(check)


def click_button(driver: Any, selector: str, text: str) -> bool:
    """Click the button under `selector` showing `text`, found and clicked in one go (for `until`)."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, selector):
        if button.text == text:
            button.click()
            return True
    return False


def links_of(server: Server, token: str) -> dict[str, dict[str, Any]]:
    listed = httpx.get(f"{server.url}/list", headers={"authorization": f"Bearer {token}"})
    assert listed.status_code == 200, listed.text
    return {f["file_name"]: f for f in listed.json()}


def test_sign_in_upload_list_share_change_and_delete(
    start_server: StartServer, alice: dict[str, str], browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    server = start_server()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nconsole screenshots: {shots}")

    def shot(name: str) -> None:
        browser.save_screenshot(str(shots / f"{name}.png"))

    page = httpx.get(f"{server.url}/ui/")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert b"<script>" not in page.content  # no inline script: the module is a file of its own

    browser.get(f"{server.url}/ui")  # redirected to /ui/
    browser.find_element(By.ID, "token").send_keys("pbt_not-a-token")
    browser.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    until(browser, lambda d: "not valid" in d.find_element(By.ID, "message").text)
    token_field = browser.find_element(By.ID, "token")
    token_field.clear()
    token_field.send_keys(alice["token"])
    browser.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    until(browser, lambda d: "Signed in as alice" in d.find_element(By.ID, "message").text)
    assert browser.execute_script("return document.cookie") == ""  # the token is not a cookie
    shot("1-signed-in")

    picture, big = tmp_path / "red dot.png", tmp_path / "video.bin"
    picture.write_bytes(png())
    big.write_bytes(bytes(range(256)) * (BIG // 256))
    browser.execute_script("document.getElementById('picker').hidden = false")
    browser.find_element(By.ID, "picker").send_keys(f"{picture}\n{big}")
    until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#uploads li.done")) == 2, UPLOAD_WAIT)
    assert not browser.find_elements(By.CSS_SELECTOR, "#uploads li.failed")
    until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#file-list > li")) == 2)
    thumbnail = until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#file-list .thumb img"))
    until(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", thumbnail) == 4)
    shot("2-uploaded")

    files = links_of(server, alice["token"])
    assert set(files) == {"red dot.png", "video.bin"}
    assert files["video.bin"]["file_size"] == BIG and files["red dot.png"]["file_size"] == len(png())
    assert httpx.get(files["video.bin"]["file_url"]).content == big.read_bytes()  # the tus upload, whole

    # Open a short link in the browser: the picture itself.
    browser.get(files["red dot.png"]["file_url"])
    until(browser, lambda d: d.execute_script("return document.images.length && document.images[0].naturalWidth") == 4)
    shot("3-short-link")
    browser.back()
    until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#file-list > li")) == 2)  # signed in still

    # Thumbnails loaded twice by now; only the opened link counts (once for the browser, once for httpx above).
    assert links_of(server, alice["token"])["red dot.png"]["download_times"] == 1

    # Change the video link's expiry and download budget.
    video = browser.find_element(By.CSS_SELECTOR, f"#file-list > li[data-id='{files['video.bin']['file_id']}']")
    assert not video.find_element(By.CSS_SELECTOR, ".settings").is_displayed()  # until asked for
    video.find_element(By.CSS_SELECTOR, ".toggle-settings").click()
    Select(video.find_element(By.CSS_SELECTOR, "select.expiry")).select_by_visible_text("1 day")
    video.find_element(By.CSS_SELECTOR, "input.budget").send_keys("5")
    video.find_element(By.CSS_SELECTOR, "button.save").click()
    until(browser, lambda d: "Saved the settings" in d.find_element(By.ID, "message").text)
    shot("4-settings")
    link = httpx.get(
        f"{server.url}/api/links/{files['video.bin']['file_id']}", headers={"authorization": f"Bearer {alice['token']}"}
    ).json()
    assert link["max_downloads"] == 5 and abs(link["expires_at"] - (time.time() + 86400)) < 120

    # Delete the picture.
    picture_row = browser.find_element(By.CSS_SELECTOR, f"#file-list > li[data-id='{files['red dot.png']['file_id']}']")
    picture_row.find_element(By.CSS_SELECTOR, "button.delete").click()
    until(browser, lambda d: d.switch_to.alert).accept()
    until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#file-list > li")) == 1)
    assert set(links_of(server, alice["token"])) == {"video.bin"}
    assert httpx.get(files["red dot.png"]["file_url"]).status_code == 404
    shot("5-deleted")

    # A phone-sized window: nothing wider than the screen.
    browser.set_window_size(390, 844)
    until(browser, lambda d: d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"))
    shot("6-phone")
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not [e for e in severe if "Content Security Policy" in e["message"]], severe


def test_buckets_are_browsable_and_a_key_becomes_a_short_link(
    start_server: StartServer, alice: dict[str, str], browser: Any, tmp_path: Path
) -> None:
    from processes import user_s3_client
    from selenium.webdriver.common.by import By

    server = start_server()
    s3 = user_s3_client(server.url, alice)
    s3.create_bucket(Bucket="holiday-photos")
    s3.put_object(Bucket="holiday-photos", Key="2026/beach.txt", Body=b"sand")
    browser.get(f"{server.url}/ui/")
    browser.find_element(By.ID, "token").send_keys(alice["token"])
    browser.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    until(browser, lambda d: "Signed in" in d.find_element(By.ID, "message").text)
    browser.find_element(By.CSS_SELECTOR, "nav [data-view='buckets']").click()
    until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "button.open-bucket")).click()
    until(browser, lambda d: click_button(d, "#bucket-list button", "2026/"))
    until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#bucket-list button.share")).click()
    anchor = until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#bucket-list .meta a"))
    assert httpx.get(anchor.get_attribute("href")).content == b"sand"
    browser.save_screenshot(str(tmp_path / "buckets.png"))


def test_a_refused_upload_says_why_with_the_limit(
    start_server: StartServer, run_pyblob: RunPyblob, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    made = run_pyblob("user", "add", "bob", "--quota", "1KiB", "--json")
    assert made.returncode == 0, made.stderr
    bob = json.loads(made.stdout)
    server = start_server()
    browser.get(f"{server.url}/ui/")
    browser.find_element(By.ID, "token").send_keys(bob["token"])
    browser.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    until(browser, lambda d: "Signed in" in d.find_element(By.ID, "message").text)
    until(browser, lambda d: "of 1.0 KiB" in d.find_element(By.ID, "usage-text").text)  # usage against the quota
    too_big = tmp_path / "too big.txt"
    too_big.write_bytes(b"x" * 4096)
    browser.execute_script("document.getElementById('picker').hidden = false")
    browser.find_element(By.ID, "picker").send_keys(str(too_big))
    failed = until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#uploads li.failed"), UPLOAD_WAIT)
    text = failed.get_attribute("textContent")
    assert "exceed the quota of bob (1KiB" in text and "HTTP 403" in text, text
    browser.save_screenshot(str(tmp_path / "refused.png"))
    print(f"\nrefused upload screenshot: {tmp_path / 'refused.png'}")
