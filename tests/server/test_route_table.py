"""The route-prefix table (pyblob/routes.py) agrees with the routes the app registers.

Every route of pyblob's own is matched before the S3 catch-all, so its first path segment must be in
the table: reserved as a bucket name, and limited as the surface it belongs to.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from starlette.routing import BaseRoute

from pyblob.app import create_app
from pyblob.routes import RESERVED_PATHS, ROUTE_PREFIXES, surface_of
from pyblob.settings import Settings
from shortlinks.api import api_routes
from shortlinks.rest import rest_router
from shortlinks.routes import link_routes
from shortlinks.tus import tus_routes
from shortlinks.websocket import websocket_routes

URL = "http://127.0.0.1:9"  # never contacted: the routes are only listed
S3_CATCH_ALL = ("/", "/{path:path}")


def no_store() -> None:
    raise AssertionError("no request is made")


def paths(routes: Iterable[BaseRoute]) -> Iterator[str]:
    for route in routes:
        if hasattr(route, "path"):
            yield route.path
        else:  # a router FastAPI included as a whole (without a prefix: none is given)
            yield from paths(route.original_router.routes)  # type: ignore[attr-defined]


def first_segments(routes: Iterable[BaseRoute]) -> set[str]:
    return {path.split("/")[1] for path in paths(routes) if path not in S3_CATCH_ALL}


@pytest.mark.parametrize(
    ("routes", "kind"),
    [
        (link_routes(no_store, URL, 60), "links"),  # type: ignore[arg-type]
        (api_routes(no_store, URL), "rest"),  # type: ignore[arg-type]
        (rest_router(no_store, URL).routes, "rest"),  # type: ignore[arg-type]
        (tus_routes(no_store, URL, URL), "rest"),  # type: ignore[arg-type]
        (websocket_routes(no_store, URL), "rest"),  # type: ignore[arg-type]
    ],
    ids=["links", "api", "rest", "tus", "websocket"],
)
def test_each_web_layer_route_has_its_surface(routes: list[BaseRoute], kind: str) -> None:
    assert {segment: ROUTE_PREFIXES.get(segment) for segment in first_segments(routes)} == dict.fromkeys(
        first_segments(routes), kind
    )


def test_every_route_of_the_app_is_reserved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no `.env` of the checkout
    app = create_app(Settings(data_dir=tmp_path / "data"))  # the store opens in the lifespan: not here
    segments = first_segments(app.web.routes)
    assert {"health", "docs", "s", "api", "upload"} <= segments
    assert segments <= RESERVED_PATHS


def test_reserved_paths_are_never_s3() -> None:
    assert all(surface_of(f"/{segment}/x") != "s3" for segment in RESERVED_PATHS)
    assert surface_of("/health") is None and surface_of("/s/x") == "links" and surface_of("/upload") == "rest"
