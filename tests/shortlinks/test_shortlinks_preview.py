"""`GET`/`HEAD /s/{id}?output=html` against a real server: the preview page, its unfurl tags, its safety.

The page is parsed with the standard library's HTML parser, so "no script" means what a browser would
see: no `<script>` element and no `on*` attribute anywhere, whatever the file name or content.
"""

from __future__ import annotations

from html.parser import HTMLParser

import httpx
import pytest
from processes import StartServer
from shortlinks_site import Site

PNG = b"\x89PNG\r\n\x1a\n" + bytes(100)
# A key's last segment is the file name: with a "/" in it, only what follows is shown.
XSS_KEYS = {
    "\"><script>alert(1)<img src=x onerror=alert(1)>'.png": "\"><script>alert(1)<img src=x onerror=alert(1)>'.png",
    '"><script>alert(1)</script><img src=x onerror=alert(1)>.png': "script><img src=x onerror=alert(1)>.png",
}
EMBEDDING_TAGS = {"img", "video", "audio", "iframe", "object", "embed"}


class Page(HTMLParser):
    """The elements of a page as (tag, attributes) and its text, as a browser would parse them."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text = ""
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))

    def handle_data(self, data: str) -> None:
        self.text += data

    def tags(self, name: str) -> list[dict[str, str]]:
        return [attrs for tag, attrs in self.elements if tag == name]

    def meta(self, name: str) -> str | None:
        """The content of `<meta property=name>` (OpenGraph) or `<meta name=name>` (Twitter)."""
        for attrs in self.tags("meta"):
            if name in (attrs.get("property"), attrs.get("name")):
                return attrs.get("content")
        return None


def preview(site: Site, link_id: str, url: str | None = None) -> tuple[httpx.Response, Page]:
    response = httpx.get(f"{url or site.url}/s/{link_id}", params={"output": "html"})
    assert response.status_code == 200, response.text
    return response, Page(response.text)


def downloads(site: Site, link_id: str) -> int:
    count: int = httpx.get(f"{site.url}/s/{link_id}", params={"output": "json"}).json()["downloads"]
    return count


def assert_no_script(page: Page) -> None:
    assert not page.tags("script")
    for tag, attrs in page.elements:
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        assert not any(value.strip().lower().startswith("javascript:") for value in attrs.values()), (tag, attrs)


def assert_download_link(page: Page, link_id: str) -> None:
    assert f"/s/{link_id}?output=download" in [attrs.get("href") for attrs in page.tags("a")]


def test_image_is_embedded_and_unfurls_as_a_large_card(site: Site) -> None:
    link_id = site.link_for("pics/cat.png", PNG, "image/png")
    response, page = preview(site, link_id)
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert [attrs["src"] for attrs in page.tags("img")] == [f"/s/{link_id}"]
    assert page.meta("og:title") == "cat.png"
    assert page.meta("og:site_name") == "pyblob"
    assert page.meta("og:url") == f"{site.url}/s/{link_id}?output=html"
    assert page.meta("og:image") == f"{site.url}/s/{link_id}"
    assert page.meta("og:image:type") == "image/png"
    assert page.meta("twitter:card") == "summary_large_image"
    assert page.meta("og:type")
    assert_download_link(page, link_id)
    assert_no_script(page)


def test_video_and_audio_are_players(site: Site) -> None:
    video_id = site.link_for("clip.mp4", b"\x00" * 64, "video/mp4")
    _, page = preview(site, video_id)
    assert [(v["src"], "controls" in v) for v in page.tags("video")] == [(f"/s/{video_id}", True)]
    assert page.meta("og:video") == f"{site.url}/s/{video_id}"
    assert page.meta("og:video:type") == "video/mp4"
    assert page.meta("og:image") is None
    assert_download_link(page, video_id)
    audio_id = site.link_for("song.ogg", b"OggS" + bytes(60), "audio/ogg")
    _, page = preview(site, audio_id)
    assert [(a["src"], "controls" in a) for a in page.tags("audio")] == [(f"/s/{audio_id}", True)]
    assert page.meta("twitter:card") == "summary"


def test_text_is_shown_in_a_pre(site: Site) -> None:
    link_id = site.link_for("notes/hello.txt", "héllo\nwörld <b>not bold</b>".encode(), "text/plain")
    _, page = preview(site, link_id)
    assert len(page.tags("pre")) == 1
    assert "héllo\nwörld <b>not bold</b>" in page.text
    assert not page.tags("b")
    json_id = site.link_for("data.json", b'{"a": 1}', "application/json")
    assert '{"a": 1}' in preview(site, json_id)[1].text


def test_long_text_shows_the_first_64_kib_only(site: Site) -> None:
    data = b"a" * 65536 + b"TAIL" + "é".encode() * 100
    link_id = site.link_for("big.log", data, "text/plain; charset=utf-8")
    _, page = preview(site, link_id)
    assert "a" * 65536 in page.text
    assert "TAIL" not in page.text


def test_unknown_type_gets_a_file_card(site: Site) -> None:
    link_id = site.link_for("backup.tar.zst", bytes(3 * 1024 * 1024 + 512 * 1024), "application/zstd")
    _, page = preview(site, link_id)
    assert not [tag for tag, _ in page.elements if tag in EMBEDDING_TAGS | {"pre"}]
    assert "backup.tar.zst" in page.text and "application/zstd" in page.text and "3.5 MiB" in page.text
    assert page.meta("twitter:card") == "summary"
    assert page.meta("og:image") is None
    assert_download_link(page, link_id)


@pytest.mark.parametrize(("key", "name"), XSS_KEYS.items())
def test_hostile_file_name_is_escaped_everywhere(site: Site, key: str, name: str) -> None:
    link_id = site.link_for(key, PNG, "image/png")
    response, page = preview(site, link_id)
    assert "<script" not in response.text.lower()
    assert_no_script(page)
    assert [attrs["src"] for attrs in page.tags("img")] == [f"/s/{link_id}"]  # no `src=x` of the name
    assert [attrs["alt"] for attrs in page.tags("img")] == [name]
    assert page.meta("og:title") == name
    assert name in page.text


def test_hostile_text_content_stays_text(site: Site) -> None:
    content = "</pre><script>alert(1)</script><img src=x onerror=alert(1)>"
    link_id = site.link_for("evil.txt", content.encode(), "text/plain")
    response, page = preview(site, link_id)
    assert "<script" not in response.text.lower()
    assert_no_script(page)
    assert not page.tags("img")
    assert content in page.text


def test_hostile_content_type_is_escaped(site: Site) -> None:
    kind = 'application/x-"><script>alert(1)</script>'
    link_id = site.link_for("odd.bin", b"x", kind)
    response, page = preview(site, link_id)
    assert "<script" not in response.text.lower()
    assert_no_script(page)


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("x.svg", "image/svg+xml"),
        ("x.html", "text/html"),
        ("x.xml", "application/xml"),
        ("x.js", "text/javascript"),
        ("x.xhtml", "application/xhtml+xml"),
    ],
)
def test_script_capable_types_are_never_embedded(site: Site, key: str, kind: str) -> None:
    link_id = site.link_for(key, b"<svg onload=alert(1)><script>alert(1)</script></svg>", kind)
    response, page = preview(site, link_id)
    assert not [tag for tag, _ in page.elements if tag in EMBEDDING_TAGS | {"pre"}]
    assert "<script" not in response.text.lower()
    assert page.meta("og:image") is None
    assert_download_link(page, link_id)
    assert_no_script(page)


def test_page_has_a_csp_without_script(site: Site) -> None:
    link_id = site.link_for("cat.png", PNG, "image/png")
    response, _ = preview(site, link_id)
    csp = response.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["default-src"] == ["'none'"]
    assert "script-src" not in directives and "script-src-elem" not in directives
    assert "'unsafe-eval'" not in csp and "sandbox" not in directives
    assert directives["img-src"] == ["'self'"] and directives["frame-ancestors"] == ["'none'"]
    assert response.headers["x-content-type-options"] == "nosniff"
    embedded = httpx.get(f"{site.url}/s/{link_id}")
    assert embedded.headers["content-security-policy"] == "sandbox"


def test_the_page_is_not_a_download_but_its_media_are(site: Site) -> None:
    link_id = site.link_for("cat.png", PNG, "image/png")
    text_id = site.link_for("a.txt", b"words", "text/plain")
    for _ in range(3):
        preview(site, link_id)
        preview(site, text_id)
    assert (downloads(site, link_id), downloads(site, text_id)) == (0, 0)
    httpx.get(f"{site.url}/s/{link_id}")  # what the page's <img> fetches
    assert downloads(site, link_id) == 1


def test_a_link_with_a_download_budget_shows_a_card_only(site: Site) -> None:
    """Embedding or unfurling the media (or showing the text) would spend, or bypass, the budget."""
    image_id = site.link_for("once.png", PNG, "image/png", max_downloads=1)
    text_id = site.link_for("once.txt", b"secret words", "text/plain", max_downloads=1)
    _, page = preview(site, image_id)
    assert not [tag for tag, _ in page.elements if tag in EMBEDDING_TAGS | {"pre"}]
    assert page.meta("og:image") is None
    assert "secret words" not in preview(site, text_id)[1].text
    assert httpx.get(f"{site.url}/s/{image_id}").content == PNG


def test_head_has_the_headers_and_no_body(site: Site) -> None:
    link_id = site.link_for("a.txt", b"words", "text/plain")
    response, _ = preview(site, link_id)
    head = httpx.head(f"{site.url}/s/{link_id}", params={"output": "html"})
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-length", "cache-control", "content-security-policy"):
        assert head.headers[name] == response.headers[name], name


def test_errors_stay_json_and_sandboxed(site: Site) -> None:
    response = httpx.get(f"{site.url}/s/zzzzzzzz", params={"output": "html"})
    assert response.status_code == 404
    assert response.json()["detail"] == "link not found"
    assert response.headers["content-security-policy"] == "sandbox"


def test_public_url_and_cache_max_age_come_from_the_settings(site: Site, start_server: StartServer) -> None:
    """A second server on the same data dir, configured otherwise, serves the same links."""
    env = {"PYBLOB_LINK_CACHE_MAX_AGE": "42", "PYBLOB_PUBLIC_URL": "https://files.example.test/"}
    other = start_server(env=env)
    link_id = site.link_for("cat.png", PNG, "image/png")
    _, page = preview(site, link_id, other.url)
    assert page.meta("og:url") == f"https://files.example.test/s/{link_id}?output=html"
    assert page.meta("og:image") == f"https://files.example.test/s/{link_id}"
    assert httpx.get(f"{other.url}/s/{link_id}").headers["cache-control"] == "public, max-age=42"
    expiring = site.link_for("soon.png", PNG, "image/png", expires_in=30)
    cache = httpx.get(f"{other.url}/s/{expiring}").headers["cache-control"]
    assert cache in ("public, max-age=30", "public, max-age=29")
    budgeted = site.link_for("once.png", PNG, "image/png", max_downloads=2)
    assert httpx.get(f"{other.url}/s/{budgeted}").headers["cache-control"] == "no-store"
