"""`pyblob import ...`: moving in from another store (`pyblob/importers/`)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import data_dir_option, echo_fields, store_for
from .maintenance import ProgressBars


@click.group(name="import")
def import_() -> None:
    """Bring data from another store into this data dir."""


@import_.command()
@click.argument("source_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--database",
    default=None,
    help="pyBlobServer's DATABASE_URL (sqlite://...) or the path of its SQLite file "
    "[default: SOURCE_DIR/blobserver.db].",
)
@click.option("--dry-run", is_flag=True, help="Read everything and report, change nothing.")
@click.option("--include-orphans", is_flag=True, help="Also import files on disk that the database does not list.")
@data_dir_option
def pyblobserver(
    source_dir: Path, database: str | None, dry_run: bool, include_orphans: bool, data_dir: Path | None
) -> None:
    """Import a pyBlobServer installation: users with their tokens, files as objects, and short
    links with the same ids, so every published /s/<id> keeps working. Safe to run again: what is
    there already is skipped, so an interrupted import is resumed by running it again."""
    from ..importers.pyblobserver import PyBlobServerImport

    path = sqlite_path(database) if database else None
    with store_for(data_dir) as store, ProgressBars() as bars:
        try:
            report = PyBlobServerImport(store, source_dir, path, dry_run, include_orphans, bars).run()
        except FileNotFoundError as exc:
            raise click.UsageError(str(exc)) from exc
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    echo_fields(
        [
            ("dry run" if dry_run else "imported", "nothing changed" if dry_run else "done"),
            ("users created", report.users_created),
            ("users already there", report.users_present),
            ("files imported", report.files_imported),
            ("files already there", report.files_present),
            ("bytes imported", report.bytes_imported),
            ("bytes saved by dedup", report.bytes_saved),
            ("problems", len(report.problems)),
        ]
    )


def sqlite_path(database: str) -> Path:
    """pyBlobServer's DATABASE_URL (Tortoise's `sqlite://path`) or a plain path."""
    if "://" not in database:
        return Path(database)
    scheme, _, rest = database.partition("://")
    if scheme != "sqlite":
        raise click.BadParameter(
            f"only SQLite databases can be read (pyBlobServer's default), not {scheme}://", param_hint="--database"
        )
    return Path(rest)
