"""Content-Disposition for served objects: which types may render inline, and the filename parameters.

RFC 6266 section 4.3: a quoted ASCII `filename` for old clients plus an RFC 5987 `filename*` in UTF-8.
"""

from __future__ import annotations

from urllib.parse import quote

from s3api.activecontent import can_run_script, media_type

__all__ = ["can_run_script", "content_disposition", "filename_of", "is_inline_safe", "media_type", "served_type"]

# Types a browser displays without running anything of the sender's; everything else (HTML, SVG,
# XML, JavaScript, unknown types) is an attachment so it never renders on our origin.
INLINE_PREFIXES = ("image/", "video/", "audio/")
INLINE_TYPES = frozenset({"text/plain", "application/pdf"})


def served_type(content_type: str) -> str:
    """The stored type when a header can carry it, else application/octet-stream: a type stored from
    a form field (S3 POST Object) may hold control characters, which the server refuses to send."""
    return content_type if content_type.isascii() and content_type.isprintable() else "application/octet-stream"


def is_inline_safe(content_type: str) -> bool:
    kind = media_type(content_type)
    return not can_run_script(kind) and (kind in INLINE_TYPES or kind.startswith(INLINE_PREFIXES))


def filename_of(key: str) -> str:
    return key.rstrip("/").rsplit("/", 1)[-1] or "download"


def ascii_fallback(name: str) -> str:
    """Printable ASCII only, no quote or backslash (they would end or escape the quoted string)."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name)


def content_disposition(kind: str, key: str) -> str:
    """`kind` is "inline" or "attachment"; the filename is the key's last path segment."""
    name = filename_of(key)
    value = f'{kind}; filename="{ascii_fallback(name)}"'
    if ascii_fallback(name) != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value
