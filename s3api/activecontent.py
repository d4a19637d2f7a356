"""Stored bytes a browser could run as a page or a script: HTML, SVG, XML, JavaScript, and what it sniffs.

S3 objects and short links share pyblob's origin unless `PYBLOB_LINKS_URL` moves the links to a host
of their own. A stored page that ran script on that origin could register a service worker whose
script is a short link, and answer every `/s/` URL in the visitor's browser from then on (issue 9).
So user bytes never run there: responses of these types carry `X-Content-Type-Options: nosniff`
and `Content-Security-Policy: sandbox` (no script, no plugins, an opaque origin that can register no
worker), as /s/ sends on everything; the other types are left as AWS serves them. AWS keeps user
content off its console's origin instead; pyblob has no website hosting that would need script.

Shared by the S3 GET path and `shortlinks` (which may import `s3api` for it).
"""

from __future__ import annotations

SANDBOX_CSP = "sandbox"
SANDBOX_HEADERS = {"x-content-type-options": "nosniff", "content-security-policy": SANDBOX_CSP}
# Types whose name does not say xml, html or script and that a browser still renders as a document
# that runs script: text/xsl is one of Chromium's XML types (`MIMETypeRegistry::IsXMLMIMEType`), so
# an XHTML-namespace <script> in it runs (tests/server/test_served_content.py found it).
SCRIPT_TYPES = frozenset({"image/svg+xml", "text/xsl"})
# What browsers treat as "no type" and sniff, possibly into HTML (WHATWG MIME Sniffing, 7.1).
SNIFFED_TYPES = frozenset({"", "unknown/unknown", "application/unknown", "*/*"})


def media_type(content_type: str) -> str:
    """`text/html; charset=utf-8` -> `text/html`."""
    return content_type.split(";", 1)[0].strip().lower()


def can_run_script(content_type: str) -> bool:
    """HTML, SVG, XML (XHTML, XSLT) and JavaScript: what a browser may execute if it renders the bytes."""
    kind = media_type(content_type)
    return kind in SCRIPT_TYPES or "xml" in kind or "script" in kind or "html" in kind


def needs_sandbox(content_type: str) -> bool:
    """Script-capable, or a type a browser would sniff (none, or not a type at all)."""
    kind = media_type(content_type)
    return can_run_script(kind) or kind in SNIFFED_TYPES or "/" not in kind
