"""`pyblob token create|list|revoke`: the REST API's bearer tokens of a user.

Only a token's SHA-256 is stored: `create` shows the token once, `list` shows its first characters
and creation time, `revoke` takes those first characters (or `--all`).
"""

from __future__ import annotations

from pathlib import Path

import click

from objstore.errors import InvalidToken

from .common import data_dir_option, echo_json, json_option, store_for, timestamp


@click.group()
def token() -> None:
    """Manage REST API tokens."""


@token.command("create")
@click.argument("user_name", metavar="USER")
@json_option
@data_dir_option
def token_create(user_name: str, as_json: bool, data_dir: Path | None) -> None:
    """Give USER a new API token (shown only this once)."""
    with store_for(data_dir) as store:
        value = store.accounts.create_token(user_name)
    if as_json:
        echo_json({"user": user_name, "token": value})
        return
    click.echo(value)
    click.echo("The token is shown only this once.", err=True)


@token.command("list")
@click.argument("user_name", metavar="USER")
@json_option
@data_dir_option
def token_list(user_name: str, as_json: bool, data_dir: Path | None) -> None:
    """List USER's tokens by their first characters."""
    with store_for(data_dir) as store:
        tokens = store.accounts.list_tokens(user_name)
    rows = [{"user": t.user, "prefix": t.prefix, "created": timestamp(t.created)} for t in tokens]
    if as_json:
        echo_json(rows)
        return
    click.echo(f"{'PREFIX':<12} CREATED")
    for row in rows:
        click.echo(f"{row['prefix'] + '…':<12} {row['created']}")


@token.command("revoke")
@click.argument("user_name", metavar="USER")
@click.argument("prefix", required=False, default="")
@click.option("--all", "revoke_all", is_flag=True, help="Revoke every token of USER.")
@data_dir_option
def token_revoke(user_name: str, prefix: str, revoke_all: bool, data_dir: Path | None) -> None:
    """Revoke USER's tokens starting with PREFIX (as `token list` shows it), the one token given whole,
    or all with --all."""
    if not prefix and not revoke_all:
        raise click.UsageError("give a PREFIX from `pyblob token list`, or --all")
    with store_for(data_dir) as store:
        count = store.accounts.revoke_tokens(user_name, "" if revoke_all else prefix)
    if count == 0:
        raise InvalidToken(f"no token of {user_name} matches {prefix!r}")
    click.echo(f"revoked {count} token{'s' if count != 1 else ''} of {user_name}")
