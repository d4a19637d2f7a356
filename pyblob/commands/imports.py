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


@import_.command(name="s3")
@click.option("--endpoint", required=True, help="The source's S3 endpoint URL, e.g. https://minio.example.com:9000.")
@click.option("--access-key", required=True, envvar="AWS_ACCESS_KEY_ID", help="[env: AWS_ACCESS_KEY_ID]")
@click.option(
    "--secret-key",
    required=True,
    envvar="AWS_SECRET_ACCESS_KEY",
    help="[env: AWS_SECRET_ACCESS_KEY, which keeps it out of the shell history and the process list]",
)
@click.option("--region", default="us-east-1", show_default=True, help="The region the source signs for.")
@click.option("--bucket", "buckets", multiple=True, help="A bucket to copy (repeat it) [default: every bucket].")
@click.option("--prefix", default="", help="Copy only keys that start with this.")
@click.option("--to-user", required=True, help="The pyblob user who will own the buckets.")
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Objects copied at once (one source connection each).",
)
@click.option(
    "--addressing-style",
    type=click.Choice(["path", "virtual"]),
    default="path",
    show_default=True,
    help="How bucket names go in the source's URLs: path (MinIO, Garage, SeaweedFS) or virtual (AWS).",
)
@click.option("--dry-run", is_flag=True, help="List the source and report what it holds, change nothing.")
@data_dir_option
def s3(
    endpoint: str,
    access_key: str,
    secret_key: str,
    region: str,
    buckets: tuple[str, ...],
    prefix: str,
    to_user: str,
    jobs: int,
    addressing_style: str,
    dry_run: bool,
    data_dir: Path | None,
) -> None:
    """Copy the buckets of any S3-compatible store (MinIO, Garage, SeaweedFS, AWS, ...) into this
    data dir: keys, metadata, content types, tags, and versions where the source keeps them. Every
    object is checked against the source's ETag or checksum before it is visible; duplicates are
    stored once. Safe to run again: what is here already is skipped, so an interrupted import is
    resumed by running it again. Exits 1 if any object could not be copied."""
    from botocore.exceptions import BotoCoreError, ClientError

    from objstore.errors import NoSuchUser

    from ..importers import s3source
    from ..importers.s3import import S3Import

    client = s3source.connect(endpoint, access_key, secret_key, region, addressing_style, jobs)
    with store_for(data_dir) as store, ProgressBars(byte_phases={"bytes"}) as bars:
        try:
            store.accounts.get_user(to_user)
        except NoSuchUser as exc:
            raise click.UsageError(f"no user {to_user!r} here: add one first (pyblob user add {to_user})") from exc
        try:
            report = S3Import(store, client, to_user, list(buckets), prefix, jobs, dry_run, bars).run()
        except (ClientError, BotoCoreError) as exc:
            raise click.ClickException(f"the source at {endpoint} refused: {exc}") from exc
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    echo_fields(
        [
            ("dry run" if dry_run else "imported", "nothing changed" if dry_run else "done"),
            ("objects listed", report.objects_listed),
            ("bytes listed", report.bytes_listed),
            ("buckets created", report.buckets_created),
            ("buckets already there", report.buckets_present),
            ("objects imported", report.objects_imported),
            ("objects already there", report.objects_present),
            ("delete markers", report.delete_markers),
            ("verified by ETag", report.verified_by_etag),
            ("verified by checksum", report.verified_by_checksum),
            ("verified by size only", report.verified_by_size_only),
            ("bytes imported", report.bytes_imported),
            ("bytes saved by dedup", report.bytes_saved),
            ("failed", report.failed),
        ]
    )
    if report.failed:
        raise SystemExit(1)


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
