"""The outermost routing: S3 requests go straight to the S3 app, `/s/` ones to the link routes, the
rest to the FastAPI app.

S3 is the catch-all of the route table (`routes.py`): any path whose first segment is not one of
pyblob's own is S3. Sending S3 and short-link requests past FastAPI saves each of them the
framework's middleware stack and a walk of every REST and tus route (docs/benchmarks.md, "Serving").
Lifespan and WebSocket scopes, and every other request, reach the FastAPI app as before; there a
method no route of the path takes still falls through to S3 (a bucket named like a route is
refused as reserved), as FastAPI's catch-all S3 route did before this dispatch existed.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from .routes import surface_of


class Dispatch:
    def __init__(self, web: ASGIApp, s3: ASGIApp, links: ASGIApp):
        self.web = web
        self.s3 = s3
        self.links = links

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            surface = surface_of(scope["path"])
            if surface == "s3":
                return await self.s3(scope, receive, send)
            if surface == "links" and scope["method"] in ("GET", "HEAD"):
                return await self.links(scope, receive, send)
        return await self.web(scope, receive, send)
