"""`pyblob user|key|quota ...`: users, their S3 access keys, API tokens and limits.

Secrets are printed once, by the command that creates them; listings and `user show` never print them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from objstore import Store
from objstore.records import AccessKeyRecord, UserRecord

from ..bootstrap import Credentials, create_user_with_credentials
from .common import F, data_dir_option, echo_fields, echo_json, json_option, limit, store_for, timestamp, to_size


def key_options(fn: F) -> F:
    """`--access-key`/`--secret-key`: import an existing pair (e.g. from another S3 server)."""
    fn = click.option("--secret-key", default=None, help="Secret key to import (with --access-key).")(fn)
    return click.option("--access-key", default=None, help="Access key id to import (with --secret-key).")(fn)


# users -----------------------------------------------------------------------------------------
@click.group()
def user() -> None:
    """Manage users."""


@user.command("add")
@click.argument("name")
@click.option(
    "--quota",
    default=None,
    callback=to_size,
    metavar="SIZE",
    help="Storage quota, e.g. 10GiB [default: PYBLOB_DEFAULT_QUOTA].",
)
@click.option(
    "--max-object-size",
    default=None,
    callback=to_size,
    metavar="SIZE",
    help="Largest object allowed [default: PYBLOB_MAX_OBJECT_SIZE].",
)
@key_options
@json_option
@data_dir_option
def user_add(
    name: str,
    quota: int | None,
    max_object_size: int | None,
    access_key: str | None,
    secret_key: str | None,
    as_json: bool,
    data_dir: Path | None,
) -> None:
    """Create user NAME with one access key and one API token."""
    with store_for(data_dir) as store:
        creds = create_user_with_credentials(store, name, quota, max_object_size, access_key, secret_key)
    if as_json:
        echo_json(
            {"user": creds.user, "access_key": creds.access_key, "secret_key": creds.secret_key, "token": creds.token}
        )
    else:
        show_credentials(creds)


def show_credentials(creds: Credentials) -> None:
    echo_fields(
        [
            ("user", creds.user),
            ("access key", creds.access_key),
            ("secret key", creds.secret_key),
            ("API token", creds.token),
        ]
    )
    click.echo("The secret key and the token are shown only this once.", err=True)


@user.command("list")
@json_option
@data_dir_option
def user_list(as_json: bool, data_dir: Path | None) -> None:
    """List users with their usage and limits."""
    with store_for(data_dir) as store:
        users = store.accounts.list_users()
    if as_json:
        echo_json([user_summary(u) for u in users])
        return
    click.echo(f"{'USER':<24} {'USED':>14} {'OBJECTS':>9} {'QUOTA':>10} {'MAX OBJECT':>10}")
    for u in users:
        click.echo(
            f"{u.name:<24} {u.usage_bytes:>14} {u.object_count:>9} {limit(u.quota):>10} {limit(u.max_object_size):>10}"
        )


def user_summary(u: UserRecord) -> dict[str, Any]:
    return {
        "user": u.name,
        "created": timestamp(u.created),
        "quota": u.quota,
        "max_object_size": u.max_object_size,
        "usage_bytes": u.usage_bytes,
        "object_count": u.object_count,
        "max_objects": u.max_objects,
    }


def key_summary(k: AccessKeyRecord) -> dict[str, Any]:
    """A key without its secret."""
    return {"access_key": k.access_key, "user": k.user, "created": timestamp(k.created), "active": k.active}


@user.command("show")
@click.argument("name")
@json_option
@data_dir_option
def user_show(name: str, as_json: bool, data_dir: Path | None) -> None:
    """Show a user's usage, limits and keys.

    Lists buckets and access key ids; never secrets.
    """
    with store_for(data_dir) as store:
        details = user_details(store, name)
    if as_json:
        echo_json(details)
        return
    echo_fields(
        [
            ("user", details["user"]),
            ("created", details["created"]),
            ("usage", f"{details['usage_bytes']} bytes in {details['object_count']} objects"),
            ("quota", limit(details["quota"])),
            ("max object size", limit(details["max_object_size"])),
            ("buckets", ", ".join(details["buckets"]) or "-"),
        ]
    )
    click.echo("access keys:")
    for k in details["keys"]:
        click.echo(f"  {k['access_key']}  {'active' if k['active'] else 'inactive'}  created {k['created']}")


def user_details(store: Store, name: str) -> dict[str, Any]:
    details = user_summary(store.accounts.get_user(name))
    details["buckets"] = [b.name for b in store.list_buckets(name)]
    details["keys"] = [key_summary(k) for k in store.accounts.list_keys(name)]
    return details


@user.command("remove")
@click.argument("name")
@data_dir_option
def user_remove(name: str, data_dir: Path | None) -> None:
    """Remove user NAME with their keys and tokens.

    Their buckets must be deleted first.
    """
    with store_for(data_dir) as store:
        store.remove_user(name)
    click.echo(f"removed user {name}")


# access keys -----------------------------------------------------------------------------------
@click.group()
def key() -> None:
    """Manage S3 access keys."""


@key.command("add")
@click.argument("user_name", metavar="USER")
@key_options
@json_option
@data_dir_option
def key_add(
    user_name: str, access_key: str | None, secret_key: str | None, as_json: bool, data_dir: Path | None
) -> None:
    """Give USER a new access key.

    Generated, or imported with --access-key and --secret-key.
    """
    with store_for(data_dir) as store:
        record = store.accounts.add_key(user_name, access_key, secret_key)
    if as_json:
        echo_json({"user": record.user, "access_key": record.access_key, "secret_key": record.secret_key})
        return
    echo_fields([("user", record.user), ("access key", record.access_key), ("secret key", record.secret_key)])
    click.echo("The secret key is shown only this once.", err=True)


@key.command("list")
@click.argument("user_name", metavar="[USER]", required=False)
@json_option
@data_dir_option
def key_list(user_name: str | None, as_json: bool, data_dir: Path | None) -> None:
    """List access keys (no secrets).

    Of every user, or of USER only.
    """
    with store_for(data_dir) as store:
        if user_name is not None:
            store.accounts.get_user(user_name)  # an unknown user is an error, not an empty list
        keys = store.accounts.list_keys(user_name)
    if as_json:
        echo_json([key_summary(k) for k in keys])
        return
    click.echo(f"{'ACCESS KEY':<32} {'USER':<24} {'STATE':<8} CREATED")
    for k in keys:
        click.echo(f"{k.access_key:<32} {k.user:<24} {'active' if k.active else 'inactive':<8} {timestamp(k.created)}")


@key.command("revoke")
@click.argument("access_key")
@data_dir_option
def key_revoke(access_key: str, data_dir: Path | None) -> None:
    """Revoke ACCESS_KEY; requests signed with it fail from now on."""
    with store_for(data_dir) as store:
        store.accounts.revoke_key(access_key)
    click.echo(f"revoked access key {access_key}")


# limits ----------------------------------------------------------------------------------------
@click.group()
def quota() -> None:
    """Manage storage quotas."""


@quota.command("set")
@click.argument("user_name", metavar="USER")
@click.argument("size", callback=to_size)
@click.option("--max-object-size", callback=to_size, default=None, help="Also limit each file/object to this size.")
@click.option(
    "--max-objects", type=click.IntRange(min=0), default=None, help="Also limit the number of objects (0 = unlimited)."
)
@data_dir_option
def quota_set(
    user_name: str, size: int, max_object_size: int | None, max_objects: int | None, data_dir: Path | None
) -> None:
    """Limit USER's stored bytes to SIZE.

    SIZE is e.g. 10GiB or 500M; 0 or `unlimited` removes the limit.
    """
    with store_for(data_dir) as store:
        record = store.accounts.set_limits(
            user_name, quota=size, max_object_size=max_object_size, max_objects=max_objects
        )
    click.echo(f"quota of {record.name}: {limit(record.quota)} ({record.usage_bytes} bytes used)")
