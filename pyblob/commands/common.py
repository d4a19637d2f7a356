"""What every subcommand shares: `--data-dir`, size arguments, output and the per-command store."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from objstore import Store
from objstore.sizes import format_size, parse_size

from ..bootstrap import open_store
from ..settings import load_settings

F = TypeVar("F", bound=Callable[..., Any])

# Words accepted in place of a size where 0 means "no limit".
UNLIMITED = ("unlimited", "none")


def to_size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """Click callback: `10MiB`, `500M`, `1G`, `4096`, or `unlimited` (= 0); a bad value is a usage error (exit 2).

    A callback rather than a `click.ParamType`, whose typing changed across click 8.x releases.
    """
    if value is None:
        return None
    if value.strip().lower() in UNLIMITED:
        return 0
    try:
        return parse_size(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from e


def data_dir_option(fn: F) -> F:
    """`--data-dir`, defaulting to PYBLOB_DATA_DIR / `.env` / `./data` through the settings."""
    option = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Data directory [default: PYBLOB_DATA_DIR or ./data].",
    )
    return option(fn)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(fn)


@contextmanager
def store_for(data_dir: Path | None) -> Iterator[Store]:
    """The store of one command, closed when it ends so a server on the same data dir is not held up."""
    with open_store(load_settings(data_dir=data_dir)) as store:
        yield store


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def echo_fields(pairs: list[tuple[str, Any]]) -> None:
    """`label: value` lines with the values aligned."""
    width = max(len(label) for label, _ in pairs) + 1
    for label, value in pairs:
        click.echo(f"{label + ':':<{width}} {value}")


def timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def limit(n: int) -> str:
    """A quota or size limit for people: 0 means there is none."""
    return "unlimited" if n == 0 else format_size(n)
