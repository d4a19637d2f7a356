"""`pyblob serve`: bootstrap the data dir in this process, then hand over to uvicorn.

The admin user is created here, in the parent, and the store is closed again before uvicorn starts
its workers: each worker opens its own store in the app's lifespan (see `pyblob.app`).
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import uvicorn

from ..bootstrap import admin_banner, ensure_admin, open_store
from ..settings import ENV_PREFIX, Settings, load_settings
from .common import data_dir_option

APP_FACTORY = "pyblob.app:create_app"


@click.command()
@click.option("--host", default=None, help="Address to listen on [default: PYBLOB_HOST or 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: PYBLOB_PORT or 8000].")
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="Worker processes [default: PYBLOB_WORKERS or 1]."
)
@data_dir_option
def serve(host: str | None, port: int | None, workers: int | None, data_dir: Path | None) -> None:
    """Run the HTTP server.

    On the first start of an empty data dir, creates the admin user and prints its
    credentials once.
    """
    settings = load_settings(host=host, port=port, workers=workers, data_dir=data_dir)
    settings.data_dir = settings.data_dir.resolve()
    with open_store(settings) as store:
        creds = ensure_admin(store, settings)
    if creds is not None:
        click.echo(admin_banner(creds, imported=settings.admin_access_key is not None))
    export_settings(settings)
    # The factory form in every case: workers (and the single in-process server) build the app from
    # the environment, so a worker never inherits an object created here.
    uvicorn.run(APP_FACTORY, factory=True, host=settings.host, port=settings.port, workers=settings.workers)


def export_settings(settings: Settings) -> None:
    """Hand the command line's choices to the app factory, which reads the environment."""
    for name in ("data_dir", "host", "port", "workers"):
        os.environ[ENV_PREFIX + name.upper()] = str(getattr(settings, name))
