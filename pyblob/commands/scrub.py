"""`pyblob scrub`: read every chunk back and check it, at a bounded rate, beside a live server.

The engine's `objstore.scrub` does the work; this prints its report: what was checked, every chunk
quarantined now and the objects that need it. Ctrl-C stops the run cleanly: the pass is saved and
the next run (or the server's background job) picks it up there.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ..bootstrap import open_store
from ..settings import load_settings
from .common import data_dir_option, echo_fields, echo_json, json_option, timestamp, to_size
from .maintenance import ProgressBars
from .stats import approx

EXIT_DAMAGED = 1  # some chunk is quarantined: objects cannot be read
EXIT_INTERRUPTED = 130  # Ctrl-C, nothing damaged found so far: 128 + SIGINT, as shells report it


@click.command()
@click.option(
    "--rate",
    callback=to_size,
    default=None,
    metavar="SIZE",
    help="Read at most SIZE a second, e.g. `50MiB`; `unlimited` or 0: as fast as the disk goes "
    "[default: PYBLOB_SCRUB_RATE].",
)
@click.option("--restart", is_flag=True, help="Begin a new pass instead of resuming the one under way.")
@json_option
@data_dir_option
def scrub(rate: int | None, restart: bool, as_json: bool, data_dir: Path | None) -> None:
    """Re-hash every chunk at a bounded rate; quarantine damaged ones and name their objects.

    Resumes a pass cut short (by Ctrl-C, or the server's background scrub) unless --restart.
    Exit code 1 while any chunk is quarantined.
    """
    from objstore.scrub import scrub as run_scrub

    settings = load_settings(data_dir=data_dir)
    limit = settings.scrub_rate if rate is None else rate
    with open_store(settings) as store, ProgressBars({"scrub"}) as progress, interruptible() as stop:
        report = run_scrub(
            store.meta, store.chunks, limit, restart=restart, stop=stop.is_set, sleep=stop.wait, progress=progress
        )
    assert report is not None  # a run that may take the pass over always runs
    if as_json:
        echo_json({**dataclasses.asdict(report), "ok": report.ok})
    else:
        echo_text(report)
    if not report.ok:
        raise click.exceptions.Exit(EXIT_DAMAGED)
    if stop.is_set():
        raise click.exceptions.Exit(EXIT_INTERRUPTED)


@contextmanager
def interruptible() -> Iterator[threading.Event]:
    """An event Ctrl-C sets (instead of raising KeyboardInterrupt), for the run to stop between chunks."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def echo_text(report: Any) -> None:
    speed = report.bytes_checked / report.seconds if report.seconds else 0.0
    limit = f"{approx(report.rate_limit)}/s" if report.rate_limit else "none"
    echo_fields(
        [
            ("checked", f"{report.chunks_checked} chunks, {approx(report.bytes_checked)} in {report.seconds:.1f} s"),
            ("rate", f"{approx(int(speed))}/s (limit {limit}; {report.throttled_seconds:.1f} s waited for it)"),
            ("pass", pass_state(report)),
            ("corrupt", len(report.corrupt)),
            ("missing", len(report.missing)),
            ("restored", len(report.restored)),
            ("quarantined", len(report.quarantined)),
        ]
    )
    for chunk in report.quarantined:
        click.echo(f"\nchunk {chunk.chunk} ({approx(chunk.size)}): {chunk.problem}, quarantined; needed by")
        for holder in chunk.objects:
            click.echo(f"  {holder.describe()}")
        if not chunk.objects:
            click.echo("  nothing any more (gc removes it)")
    if report.quarantined:
        click.echo(
            "\nThe objects above cannot be read until they are uploaded again or their chunks restored (README: Scrub)."
        )


def pass_state(report: Any) -> str:
    begun = f"begun {timestamp(report.pass_started)}"
    if report.resumed_from:
        begun += f", resumed after chunk {report.resumed_from[:16]}"
    so_far = f"{report.pass_chunks_checked} chunks, {approx(report.pass_bytes_checked)}"
    if report.finished:
        return f"finished ({begun}): {so_far}"
    return f"{report.stopped or 'stopped'} ({begun}) after {so_far}; run again to resume"
