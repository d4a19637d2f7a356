"""The `pyblob` command: the server and the admin commands, each opening the data dir only briefly.

Expected failures (a `StoreError`, a bad setting, an unwritable path) end in one line on stderr and
exit code 2, like click's own usage errors; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
from typing import Any

import click
from pydantic import ValidationError

from objstore.errors import StoreError

from .commands import accounts, doctor, imports, maintenance, migrate, scrub, serve, stats, tokens
from .settings import ENV_PREFIX

OWNER_ONLY = 0o077  # the umask: no permission for the group or others


class Failure(click.ClickException):
    exit_code = 2


def settings_error(error: ValidationError) -> str:
    """A pydantic error as one line naming the environment variables at fault."""
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        parts.append(f"{ENV_PREFIX}{where.upper()}: {item['msg']}" if where else item["msg"])
    return "invalid settings: " + "; ".join(parts)


class PyblobGroup(click.Group):
    """Translates expected errors of any subcommand into `Failure` (one line, exit 2)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StoreError as e:
            raise Failure(f"{type(e).__name__}: {e}") from e
        except ValidationError as e:
            raise Failure(settings_error(e)) from e
        except OSError as e:
            raise Failure(str(e)) from e


@click.group(cls=PyblobGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pyblob")
def cli() -> None:
    """pyblob: a self-hosted, content-addressed object store.

    Every command reads its settings from PYBLOB_* environment variables and a .env file;
    admin commands are safe to run while a server uses the same data dir.
    """
    os.umask(OWNER_ONLY)  # what any command creates (data dir, metadata, chunks, logs) is the owner's alone


for command in (
    serve.serve,
    accounts.user,
    accounts.key,
    accounts.quota,
    tokens.token,
    maintenance.gc,
    maintenance.fsck,
    scrub.scrub,
    maintenance.snapshot,
    stats.stats,
    doctor.doctor,
    imports.import_,
    migrate.migrate,
):
    cli.add_command(command)


def main() -> None:
    cli.main(prog_name="pyblob")
