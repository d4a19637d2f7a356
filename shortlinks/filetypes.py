"""The content type a streamed upload is stored with: the client's, if it is one, else a guess by name.

What the type makes a browser do is decided when the file is served (`disposition.py`, the sandbox
CSP of `routes.py`), so a client's declared type is kept as given once it is well-formed.
"""

from __future__ import annotations

import mimetypes
import re

# ASCII only: a type goes into a Content-Type header, and `\w` alone matches any Unicode letter.
MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]{0,126}/[A-Za-z0-9][\w.+-]{0,126}$", re.ASCII)


def content_type_for(declared: str | None, filename: str) -> str | None:
    """`declared` when it is a plain `type/subtype`, else what the file name suggests (None: unknown)."""
    if declared and MEDIA_TYPE.match(declared.strip()):
        return declared.strip().lower()
    return mimetypes.guess_type(filename, strict=False)[0]
