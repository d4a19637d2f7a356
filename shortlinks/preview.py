"""The `?output=html` page of a short link: a preview people open and chat apps unfurl, running no script.

Every string a user controls (file name, content type, text content) goes through `html.escape`; the
page's CSP (`PAGE_CSP`) has no script source at all; types a browser could execute (`can_run_script`)
are never embedded, only offered as a download. The unfurl tags follow OpenGraph (https://ogp.me/)
and Twitter cards (https://developer.x.com/en/docs/x-for-websites/cards/overview/markup).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from urllib.parse import quote

from .disposition import can_run_script, media_type

# No script-src: with default-src 'none' nothing may run; images and media only from our own /s/ URLs.
PAGE_CSP = (
    "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
TEXT_PREVIEW_BYTES = 64 * 1024
TEXT_TYPES = frozenset({"application/json"})
MEDIA = ("image", "video", "audio")
UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "h1{font-size:1.3rem;overflow-wrap:anywhere}img,video{max-width:100%;max-height:80vh}audio{width:100%}"
    "pre{background:#f5f5f5;padding:1rem;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere}"
    "dt{font-weight:bold}dd{margin:0 0 .5rem;overflow-wrap:anywhere}.muted{color:#666}"
    ".download{display:inline-block;padding:.5rem 1rem;background:#1a5fb4;color:#fff;text-decoration:none;"
    "border-radius:.3rem}"
)


@dataclass(frozen=True)
class Preview:
    """What the preview page shows of a link: its file's name, size and type, and the kind of preview."""

    link_id: str
    name: str
    size: int
    content_type: str
    kind: str  # see `preview_kind`
    public_url: str  # without a trailing slash
    text: bytes | None = None  # the first TEXT_PREVIEW_BYTES, for kind "text"

    @property
    def path(self) -> str:
        return f"/s/{quote(self.link_id, safe='')}"


def preview_kind(content_type: str, budgeted: bool) -> str:
    """ "image", "video", "audio", "text" or "card" (name, size and type only).

    A link with a download budget gets a card: an embedded player or an unfurler fetching og:image
    would spend downloads, and showing the text would bypass the budget.
    """
    kind = media_type(content_type)
    if budgeted or can_run_script(kind):
        return "card"
    top = kind.split("/", 1)[0]
    if top in MEDIA:
        return top
    return "text" if top == "text" or kind in TEXT_TYPES else "card"


def human_size(n: int) -> str:
    unit, size = "bytes", float(n)
    for bigger in UNITS:
        if size < 1024:
            break
        unit, size = bigger, size / 1024
    return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"


def render_page(p: Preview) -> str:
    name = escape(p.name)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{name}</title>\n{unfurl_tags(p)}\n'
        f"<style>{STYLE}</style></head>\n<body><main><h1>{name}</h1>\n{content(p)}\n"
        f'<p><a class="download" href="{escape(p.path)}?output=download" download>Download</a> '
        f'<span class="muted">{escape(human_size(p.size))} · {escape(p.content_type)}</span></p>'
        "</main></body></html>\n"
    )


def content(p: Preview) -> str:
    src = escape(p.path)
    if p.kind == "image":
        return f'<img src="{src}" alt="{escape(p.name)}">'
    if p.kind in ("video", "audio"):
        return f'<{p.kind} controls preload="metadata" src="{src}"></{p.kind}>'
    if p.kind == "text" and p.text is not None:
        return text_block(p.text, p.size)
    return file_card(p)


def text_block(head: bytes, size: int) -> str:
    text = escape(head[:TEXT_PREVIEW_BYTES].decode("utf-8", errors="replace"))
    note = ""
    if size > TEXT_PREVIEW_BYTES:
        note = f'<p class="muted">The first {human_size(TEXT_PREVIEW_BYTES)} of {human_size(size)}.</p>'
    return f"<pre>{text}</pre>{note}"


def file_card(p: Preview) -> str:
    rows = (("Name", p.name), ("Size", human_size(p.size)), ("Type", p.content_type))
    return "<dl>" + "".join(f"<dt>{label}</dt><dd>{escape(value)}</dd>" for label, value in rows) + "</dl>"


def unfurl_tags(p: Preview) -> str:
    """OpenGraph `<meta property>` and Twitter `<meta name>` tags, with absolute URLs."""
    url = p.public_url + p.path
    kind = media_type(p.content_type)
    og = [
        ("og:title", p.name),
        ("og:type", "video.other" if p.kind == "video" else "website"),
        ("og:url", f"{url}?output=html"),
        ("og:site_name", "pyblob"),
        ("og:description", f"{human_size(p.size)} · {kind}"),
    ]
    if p.kind == "image":
        og += [("og:image", url), ("og:image:type", kind), ("og:image:alt", p.name)]
    elif p.kind == "video":
        og += [("og:video", url), ("og:video:type", kind)]
    card = "summary_large_image" if p.kind == "image" else "summary"
    tags = [f'<meta property="{prop}" content="{escape(value)}">' for prop, value in og]
    tags.append(f'<meta name="twitter:card" content="{card}">')
    return "\n".join(tags)
