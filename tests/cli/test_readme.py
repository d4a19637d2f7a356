"""The README stays true to the code: its settings table and command reference."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click

from pyblob.cli import cli
from pyblob.settings import Settings, settings_table

README = Path(__file__).resolve().parents[2] / "README.md"
TABLE_START = "<!-- settings-table:start -->"
TABLE_END = "<!-- settings-table:end -->"


def test_readme_settings_table_is_generated_from_settings() -> None:
    text = README.read_text()
    table = text.split(TABLE_START)[1].split(TABLE_END)[0].strip()
    for name in Settings.model_fields:
        assert f"`PYBLOB_{name.upper()}`" in table, f"README settings table lacks PYBLOB_{name.upper()}"
    assert table == settings_table(), "README settings table is stale: paste `python -m pyblob.settings` into it"


def command_paths(group: click.Group, prefix: str = "pyblob") -> Iterator[str]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from command_paths(command, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}"


def test_readme_documents_every_command() -> None:
    text = README.read_text()
    missing = [path for path in command_paths(cli) if f"`{path}" not in text]
    assert not missing, f"README command line section lacks {missing}"
