"""`pyblob serve`: bootstrap the data dir in this process, then hand over to uvicorn.

The admin user is created here, in the parent, and the store is closed again before uvicorn starts
its workers: each worker opens its own store in the app's lifespan (see `pyblob.app`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click
import uvicorn

from ..bootstrap import admin_banner, ensure_admin, open_store
from ..boundedhttp import PROTOCOL as BOUNDED_HTTP
from ..boundedws import PROTOCOL as WS_PROTOCOL
from ..settings import ENV_PREFIX, Settings, load_settings, proxy_networks
from .common import data_dir_option

APP_FACTORY = "pyblob.app:create_app"
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


@click.command()
@click.option("--host", default=None, help="Address to listen on [default: PYBLOB_HOST or 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: PYBLOB_PORT or 8000].")
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="Worker processes [default: PYBLOB_WORKERS or 1]."
)
@click.option(
    "--ssl-certfile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Serve HTTPS with this PEM certificate [default: PYBLOB_TLS_CERTFILE, else plain HTTP].",
)
@click.option(
    "--ssl-keyfile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM private key of the certificate [default: PYBLOB_TLS_KEYFILE].",
)
@data_dir_option
def serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    ssl_certfile: Path | None,
    ssl_keyfile: Path | None,
    data_dir: Path | None,
) -> None:
    """Run the HTTP server (HTTPS with --ssl-certfile).

    On the first start of an empty data dir, creates the admin user and prints its
    credentials once.
    """
    settings = load_settings(
        host=host, port=port, workers=workers, tls_certfile=ssl_certfile, tls_keyfile=ssl_keyfile, data_dir=data_dir
    )
    settings.data_dir = settings.data_dir.resolve()
    with open_store(settings) as store:
        creds = ensure_admin(store, settings)
    if creds is not None:
        click.echo(admin_banner(creds, imported=settings.admin_access_key is not None))
    export_settings(settings)
    with metrics_dir(settings):
        run_server(settings)


@contextlib.contextmanager
def metrics_dir(settings: Settings) -> Iterator[None]:
    """With metrics on, a fresh directory for the worker processes' values (prometheus_client's
    multiprocess mode), removed when the server stops; one the environment names is used as it is."""
    if not settings.metrics_token or os.environ.get(MULTIPROC_DIR):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="pyblob-metrics-") as path:
        os.environ[MULTIPROC_DIR] = path
        try:
            yield
        finally:
            del os.environ[MULTIPROC_DIR]


def run_server(settings: Settings) -> None:
    # The factory form in every case: workers (and the single in-process server) build the app from
    # the environment, so a worker never inherits an object created here.
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        ssl_certfile=_optional_path(settings.tls_certfile),
        ssl_keyfile=_optional_path(settings.tls_keyfile),
        # Idle keep-alive clients (TLS ones especially) must not hold a shutdown for long.
        timeout_graceful_shutdown=10,
        # X-Forwarded-For/-Proto only from the configured proxies (uvicorn would trust loopback):
        # the client address it reports names the client's rate-limit buckets.
        forwarded_allow_ips=[str(network) for network in proxy_networks(settings.trusted_proxies)],
        access_log=False,  # pyblob writes its own (PYBLOB_ACCESS_LOG, see accesslog.py)
        http=BOUNDED_HTTP,  # httptools with a bound on request heads (see boundedhttp.py)
        # WebSocket uploads (/upload_socket): one message at most 16 MiB, a socket's first (the token,
        # a file name or header) at most 16 KiB (see boundedws.py); uvicorn reads no further while the
        # app has not taken a message.
        ws=WS_PROTOCOL,
        ws_max_size=WS_MAX_MESSAGE,
    )


WS_MAX_MESSAGE = 16 * 1024 * 1024


def _optional_path(path: Path | None) -> str | None:
    return None if path is None else str(path.resolve())


def export_settings(settings: Settings) -> None:
    """Hand the command line's choices to the app factory, which reads the environment."""
    for name in ("data_dir", "host", "port", "workers"):
        os.environ[ENV_PREFIX + name.upper()] = str(getattr(settings, name))
