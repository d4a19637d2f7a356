"""The ASGI application: settings, one `Store` per worker process, and the routers of the web layers.

The store is opened in the lifespan startup, i.e. inside the worker process: an LMDB environment
must never be carried across fork() (see objstore/meta/lmdb.py), and uvicorn's `--workers` starts
the processes before any request arrives. The background jobs (`sweeper.py`) live and die with it.

Requests pass the edge (the access log, rate limits, then `EdgeGuard`) and are dispatched by their first path
segment: S3 straight to `S3App`, everything else (links, REST, tus, WebSocket, docs, health) to a
FastAPI app (`dispatch.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.routing import Router
from starlette.types import ASGIApp, Receive, Scope, Send

from s3api.app import S3App
from s3api.auth import PresignLimit
from s3api.context import S3Config
from shortlinks.api import api_routes
from shortlinks.errors import framework_error
from shortlinks.rest import rest_router
from shortlinks.routes import link_routes
from shortlinks.tus import tus_routes
from shortlinks.websocket import websocket_routes

from . import boundedhttp
from .accesslog import AccessLog
from .bootstrap import new_store
from .clientfaults import quiet_client_faults
from .dispatch import Dispatch
from .edge import EdgeGuard
from .failedauth import FailedAuthLimit
from .memory import keep_large_buffers_unmapped
from .ratebuckets import TABLES as rate_tables
from .ratebuckets import SharedTokenBuckets, open_buckets
from .ratelimits import RateLimiter, RateLimitMiddleware, RateLimits, setting_name
from .routes import RESERVED_PATHS
from .scrapegate import ScrapeGate
from .settings import Settings, load_settings
from .sweeper import background_jobs
from .webconsole import console_routes


class PyblobApp:
    """The ASGI app uvicorn runs: the edge, then `dispatch.py`; `web` is the FastAPI app (every route but S3)."""

    def __init__(self, web: FastAPI, s3: S3App):
        self.web = web
        limiter: RateLimiter = web.state.rate_limiter
        links = Router(routes=web.state.link_routes, default=web)  # a path no link route takes: FastAPI's 404
        settings: Settings = web.state.settings
        guarded = EdgeGuard(Dispatch(web, s3, links), links_url=settings.links_url, public_url=settings.public_url)
        self.edge: ASGIApp = RateLimitMiddleware(guarded, limiter=limiter)  # limits hold for all
        observer, scrape = None, None
        if settings.metrics_token:
            from . import metrics  # imported once PROMETHEUS_MULTIPROC_DIR is set (see metrics.py)

            metrics.start_counting()
            self.edge = metrics.InFlight(self.edge)
            observer, scrape = metrics.observe, metrics.Scrape(lambda: web.state.store).answer
        self.edge = ScrapeGate(self.edge, settings.metrics_token, scrape)
        form = settings.log_format if settings.access_log else ""
        if form or observer is not None:
            self.edge = AccessLog(self.edge, form=form, observer=observer)  # outermost: refusals too

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.edge(scope, receive, send)


def create_app(settings: Settings | None = None) -> PyblobApp:
    """The application; with no settings given they are read from the environment (uvicorn's factory form)."""
    settings = settings or load_settings()
    boundedhttp.timeouts = boundedhttp.Timeouts(
        settings.head_timeout_seconds, settings.body_idle_timeout_seconds, settings.send_timeout_seconds
    )
    web = create_web_app(settings)
    s3 = s3_app(web)
    # Behind pyblob's own routes, for the requests they do not take (a PUT of /health, /upload/x):
    # S3's answer, e.g. InvalidBucketName for a reserved name. Every other S3 path skips FastAPI.
    web.add_route("/{path:path}", s3.endpoint, methods=S3_METHODS, include_in_schema=False)
    return PyblobApp(web, s3)


def create_web_app(settings: Settings) -> FastAPI:
    """Every route but S3's, with the store's lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keep_large_buffers_unmapped()  # in each worker process (see memory.py)
        quiet_client_faults()  # after uvicorn configured the worker's logging
        store = new_store(settings, volatile_tables=rate_tables)
        app.state.store = store
        app.state.rate_buckets = open_buckets(store.volatile, settings.metadata_url, store.clock)
        jobs = background_jobs(
            store,
            settings.lifecycle_interval_seconds,
            settings.link_sweep_interval_seconds,
            settings.scrub_interval_seconds,
            settings.scrub_rate,
        )
        for job in jobs:
            job.start()
        try:
            yield
        finally:
            for job in jobs:
                await job.stop()
            store.close()  # flushes the download statistics still pending
            if isinstance(app.state.rate_buckets, SharedTokenBuckets):
                app.state.rate_buckets.close()

    # /docs, /redoc and /openapi.json describe the REST API; the S3 and /s/ routes stay out of the schema.
    app = FastAPI(title="pyblob", lifespan=lifespan, docs_url="/docs", redoc_url="/redoc", openapi_url="/openapi.json")
    app.add_exception_handler(HTTPException, framework_error)
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter(RateLimits.from_settings(settings), lambda: app.state.rate_buckets)
    app.add_api_route("/health", health, methods=["GET", "HEAD"], include_in_schema=False)
    links_url = settings.links_url or settings.public_url  # what the links handed out start with
    links = link_routes(lambda: app.state.store, links_url, settings.link_cache_max_age)
    app.state.link_routes = links  # also served past FastAPI (dispatch.py); here for the route table
    app.router.routes.extend(links)
    app.router.routes.extend(api_routes(lambda: app.state.store, links_url))
    app.include_router(rest_router(lambda: app.state.store, links_url))
    app.router.routes.extend(tus_routes(lambda: app.state.store, settings.public_url, links_url))
    app.router.routes.extend(websocket_routes(lambda: app.state.store, links_url))
    app.router.routes.extend(console_routes())
    return app


async def health() -> dict[str, str]:
    """Liveness for load balancers and the tests; answers once the worker's store is open."""
    return {"status": "ok"}


S3_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"]


def s3_app(app: FastAPI) -> S3App:
    """The S3 API over the store the FastAPI app's lifespan opens; every path pyblob does not route."""
    settings: Settings = app.state.settings
    config = S3Config(region=settings.region, domain=settings.domain, reserved_buckets=RESERVED_PATHS)
    return S3App(
        lambda: app.state.store,
        config,
        rate_limit=app.state.rate_limiter.s3_key_wait,
        rate_limit_name=setting_name("s3", "key"),
        presign_v2=PresignLimit(settings.presign_v2_max_seconds, "PYBLOB_PRESIGN_V2_MAX_SECONDS"),
        failed_auth=FailedAuthLimit.from_settings(settings, app.state.rate_limiter),
    )
