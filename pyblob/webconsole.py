"""The web console at `/ui/`: three static files (`pyblob/console/`), read once, served with a
strict Content-Security-Policy (scripts, styles and requests of this origin only, no inline script,
no framing). The console itself is a plain ES module over the REST API (`console/console.js`)."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

FILES = Path(__file__).resolve().parent / "console"
TYPES = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",  # revalidated, so an upgrade's console is the one served
}


def console_routes() -> list[Route]:
    contents = {name: (FILES / name).read_bytes() for name in TYPES}

    async def serve(request: Request) -> Response:
        name = request.path_params.get("name") or "index.html"
        body = contents.get(name)
        if body is None:
            return Response(b'{"detail":"not found"}', status_code=404, media_type="application/json")
        return Response(b"" if request.method == "HEAD" else body, headers={**HEADERS, "content-type": TYPES[name]})

    async def to_index(request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=308)

    return [
        Route("/ui", to_index, methods=["GET", "HEAD"]),
        Route("/ui/", serve, methods=["GET", "HEAD"]),
        Route("/ui/{name}", serve, methods=["GET", "HEAD"]),
    ]
