"""`pyblob migrate`: a single-node data dir (LMDB and chunks/) moved onto PostgreSQL and an S3 chunk
store, which several pyblob nodes then share (`objstore.migration`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from objstore import StoreConfig

from ..settings import load_settings, store_config
from .common import data_dir_option, echo_fields
from .maintenance import ProgressBars


@click.command()
@click.option(
    "--to-metadata",
    default=None,
    help="PostgreSQL URL to move the metadata into [default: PYBLOB_METADATA_URL]; an empty database.",
)
@click.option(
    "--to-chunks",
    default=None,
    help="s3://bucket/prefix to move the chunks into, or `local` to keep them in the data dir "
    "[default: PYBLOB_CHUNK_STORE]; endpoint and keys from PYBLOB_CHUNK_STORE_*.",
)
@click.option("--jobs", type=click.IntRange(1, 64), default=4, show_default=True, help="Chunks copied at once.")
@data_dir_option
def migrate(to_metadata: str | None, to_chunks: str | None, jobs: int, data_dir: Path | None) -> None:
    """Copy this data dir's store into PostgreSQL and an S3 chunk store, then check the copy.

    Stop the server first: the data dir must not change meanwhile. Chunks are copied first (checked
    against their BLAKE3 names), then every metadata row; a run that stops part way is resumed by
    running it again. The copy is checked with fsck at the end (exit 1 on problems). The data dir is
    left as it was: point PYBLOB_METADATA_URL and PYBLOB_CHUNK_STORE at the copy to use it.
    """
    from objstore import Store
    from objstore.migration import migrate as migrate_store
    from objstore.store import TABLES, open_chunks, open_metadata

    settings = load_settings(data_dir=data_dir, metadata_url=to_metadata, chunk_store=to_chunks)
    target = store_config(settings)
    if not target.metadata_url.startswith("postgres"):
        raise click.UsageError("give the PostgreSQL database to move into: --to-metadata or PYBLOB_METADATA_URL")
    source = dataclasses.replace(target, metadata_url="lmdb:", chunk_store=None)
    if not (settings.data_dir / "meta").is_dir():
        raise click.UsageError(f"{settings.data_dir} holds no LMDB metadata (meta/) to migrate")
    with Store(settings.data_dir, source) as here, ProgressBars() as progress:
        meta = open_metadata(here.root, target)
        try:
            chunks = open_chunks(here.root, target) if target.chunk_store is not None else None
            report = migrate_store(here.meta, here.chunks, meta, chunks, TABLES, jobs, progress)
        finally:
            meta.close()
    if report.corrupt_chunks:
        raise click.ClickException(
            f"{len(report.corrupt_chunks)} chunks do not match their names (first: {report.corrupt_chunks[0]}): "
            "run `pyblob fsck --repair` here first; no metadata was copied"
        )
    if report.already_done:
        click.echo("this data dir was moved into that database already: nothing copied (the copy may be in use)")
    echo_fields(
        [
            ("chunks copied", report.chunks_copied),
            ("chunks already there", report.chunks_already_there),
            ("bytes copied", report.bytes_copied),
            ("rows copied", report.rows_copied),
        ]
    )
    _check(settings.data_dir, target)


def _check(data_dir: Path, target: StoreConfig) -> None:
    from objstore import Store
    from objstore.maintenance import fsck

    with Store(data_dir, target) as copy, ProgressBars() as progress:
        checked = fsck(copy, progress=progress)
    for problem in checked.problems:
        click.echo(f"problem: {problem}")
    click.echo(f"fsck of the copy: {len(checked.problems)} problems, {checked.chunks_checked} chunks re-hashed")
    if not checked.ok:
        raise click.exceptions.Exit(1)
    click.echo("set PYBLOB_METADATA_URL and PYBLOB_CHUNK_STORE (with its endpoint and keys) as here to serve the copy")
