"""`pyblob gc|fsck|snapshot`: upkeep of a data dir, safe to run beside a live server.

`objstore.maintenance` is imported inside each command: the admin commands need none of it, and a
broken or missing maintenance module must not take `pyblob user ...` down with it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import click
from tqdm import tqdm

from .common import data_dir_option, echo_fields, store_for


class ProgressBars:
    """The engine's `progress(phase, done, total)` callback as one tqdm bar per phase, on stderr.

    tqdm hides the bars when stderr is not a terminal (`disable=None`), so logs and pipes stay clean.
    """

    def __init__(self, byte_phases: frozenset[str] | set[str] = frozenset()) -> None:
        self.byte_phases = byte_phases  # phases that count bytes: shown as KB/MB/GB with a rate
        self.phase: str | None = None
        self.bar: tqdm[Any] | None = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self.phase or self.bar is None:
            self.close()
            self.phase = phase
            unit, scale = ("B", True) if phase in self.byte_phases else ("", False)
            self.bar = tqdm(desc=phase, total=total, unit=unit, unit_scale=scale, disable=None, leave=True)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def echo_report(report: Any) -> None:
    """Every field of an engine report dataclass, whatever fields it grows later."""
    pairs = [(f.name.replace("_", " "), getattr(report, f.name)) for f in dataclasses.fields(report)]
    echo_fields([(label, value) for label, value in pairs if not isinstance(value, list)])


@click.command()
@click.option(
    "--scan-orphans",
    is_flag=True,
    help="Also list the whole S3 chunk store for orphans (after a crash of the database lost upload intents).",
)
@data_dir_option
def gc(scan_orphans: bool, data_dir: Path | None) -> None:
    """Apply lifecycle rules and expire short links, then delete unused chunks and abandoned uploads.

    Expires objects and aborts uploads as the buckets' lifecycle rules say, expires short links
    (and deletes the files uploaded for them) as PYBLOB_LINK_IDLE_DAYS and their own limits say,
    then removes chunks
    unreferenced for longer than PYBLOB_GC_GRACE_SECONDS, orphan chunks (left by writers that died
    before committing: from their upload intents; over S3, a listing of the bucket only with
    --scan-orphans), dead staging dirs
    and multipart uploads older than PYBLOB_UPLOAD_MAX_AGE_SECONDS, and tus uploads not written to
    for 24 hours.
    """
    from objstore.maintenance import collect_garbage

    with store_for(data_dir) as store, ProgressBars() as progress:
        expired = store.apply_lifecycle(store.clock())
        links = store.sweep_links(store.clock())
        report = collect_garbage(store, progress=progress, scan_orphans=scan_orphans)
    echo_report(expired)
    echo_report(links)
    echo_report(report)


@click.command()
@click.option("--repair", is_flag=True, help="Fix counts and usage, quarantine corrupt chunks, then check again.")
@data_dir_option
def fsck(repair: bool, data_dir: Path | None) -> None:
    """Check metadata and chunks; exit 1 on problems.

    Recounts every reference and usage from the rows and re-hashes every chunk file.
    """
    from objstore.maintenance import fsck as check

    with store_for(data_dir) as store, ProgressBars() as progress:
        report = check(store, repair=repair, progress=progress)
        echo_problems(report.problems)
        click.echo(f"{len(report.problems)} problems found, {report.repaired} repairs made")
        if repair and not report.ok:
            # The report lists what was found, not what is left: only a second pass can tell.
            report = check(store, repair=False, progress=progress)
            echo_problems(report.problems, "remains")
            click.echo(f"after repair: {len(report.problems)} problems remain")
    if not report.ok:
        raise click.exceptions.Exit(1)


def echo_problems(problems: list[str], label: str = "problem") -> None:
    for problem in problems:
        click.echo(f"{label}: {problem}")


@click.command()
@click.argument("path", type=click.Path(exists=False, path_type=Path))
@data_dir_option
def snapshot(path: Path, data_dir: Path | None) -> None:
    """Copy the metadata consistently to PATH.

    PATH must not exist yet. Back up chunks/ after this; see the README for restoring.
    """
    from objstore.maintenance import snapshot as take_snapshot

    if path.exists():
        raise click.BadParameter(f"{path} already exists; a snapshot goes into a new directory", param_hint="PATH")
    with store_for(data_dir) as store:
        data = store.root.resolve()
        try:
            take_snapshot(store, path)
        except NotImplementedError as exc:  # metadata in PostgreSQL: its own tools back it up
            raise click.UsageError(str(exc)) from exc
    click.echo(f"metadata snapshot written to {path}")
    click.echo(f"now copy the chunks: e.g. rsync -a {data}/chunks/ <backup>/chunks/ (see README: Backup and restore)")
