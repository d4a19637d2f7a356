"""The first start of an empty data dir: create the admin user and hand out its credentials once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass

from objstore import Store

from .settings import Settings, store_clock, store_config


@dataclass(frozen=True)
class Credentials:
    """What a new user needs to connect; the secret and the token are never shown again."""

    user: str
    access_key: str
    secret_key: str
    token: str


@contextmanager
def open_store(settings: Settings) -> Iterator[Store]:
    """A store held only for the duration of one command, so a running server is never blocked."""
    with closing(new_store(settings)) as store:
        yield store


def new_store(settings: Settings, volatile_tables: tuple[str, ...] = ()) -> Store:
    """The store of a process (a command or a server worker), configured by the settings;
    `volatile_tables`: the caller's own tables in its volatile store (the server's rate limits)."""
    return Store(
        settings.data_dir, store_config(settings), clock=store_clock(settings), volatile_tables=volatile_tables
    )


def create_user_with_credentials(
    store: Store,
    name: str,
    quota: int | None = None,
    max_object_size: int | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> Credentials:
    """A user plus one access key and one API token, created in one transaction."""
    made = store.accounts.create_user_with_credentials(name, quota, max_object_size, access_key, secret_key)
    assert made is not None
    user, key, token = made
    return Credentials(user.name, key.access_key, key.secret_key, token)


def ensure_admin(store: Store, settings: Settings) -> Credentials | None:
    """Create the admin user if the data dir has no users yet; None if it already had some.

    The admin stores without limits, whatever the defaults for new users: it is the operator's own
    account, and the one S3 clients are first pointed at (`pyblob quota set` can limit it later).
    """
    made = store.accounts.create_user_with_credentials(
        settings.admin_user,
        quota=0,
        max_object_size=0,
        access_key=settings.admin_access_key,
        secret_key=settings.admin_secret_key,
        only_if_no_users=True,
    )
    if made is None:
        return None
    user, key, token = made
    return Credentials(user.name, key.access_key, key.secret_key, token)


def admin_banner(creds: Credentials, imported: bool) -> str:
    """The one-time message a first start prints; an imported secret is not echoed back."""
    secret = "(as given in PYBLOB_ADMIN_SECRET_KEY)" if imported else creds.secret_key
    return "\n".join(
        [
            "pyblob: created the admin user. These credentials are shown only this once:",
            f"  user:        {creds.user}",
            f"  access key:  {creds.access_key}",
            f"  secret key:  {secret}",
            f"  API token:   {creds.token}",
        ]
    )
