"""The first path segments of pyblob's own routes, and the surface each one belongs to.

One table, from which the rest is derived: the names no bucket may take (`RESERVED_PATHS`: the route
table is matched before S3, so a bucket named like a route could not be reached) and the surface a
request is rate limited and refused as (`surface_of`). Some segments are reserved for routes to come
(`auth`, `static`, ...). A path whose first segment is not here is S3.
"""

from __future__ import annotations

from typing import Literal

Surface = Literal["links", "rest", "s3"]
Kind = Literal["links", "rest", "unlimited"]  # unlimited: served without a rate limit

ROUTE_PREFIXES: dict[str, Kind] = {
    "s": "links",  # /s/<id>, shortlinks/routes.py
    "upload": "rest",
    "upload_batch": "rest",
    "batch_upload": "rest",
    "upload_socket": "rest",  # a WebSocket
    "upload_tus": "rest",
    "list": "rest",
    "delete": "rest",
    "delete_all": "rest",
    "user": "rest",
    "auth": "rest",
    "api": "rest",  # /api/links, shortlinks/api.py
    "health": "unlimited",
    "docs": "unlimited",
    "redoc": "unlimited",
    "openapi.json": "unlimited",
    "static": "unlimited",
    "ui": "unlimited",  # the web console, pyblob/webconsole.py
    "favicon.ico": "unlimited",
}
RESERVED_PATHS = frozenset(ROUTE_PREFIXES)


def surface_of(path: str) -> Surface | None:
    """The surface of a request path; None for the unlimited routes (health, docs)."""
    kind = ROUTE_PREFIXES.get(path[1:].split("/", 1)[0])
    if kind is None:
        return "s3"
    return None if kind == "unlimited" else kind
