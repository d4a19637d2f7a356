"""Users, S3 access keys, REST API tokens and per-user limits.

Nothing here is cached: every lookup reads LMDB, so a key added by the admin CLI while the server
runs authenticates on the very next request, and a revoked one stops at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from typing import TYPE_CHECKING, Callable

from .db import Database, Txn
from .errors import (
    AccessKeyAlreadyExists,
    BucketNotEmpty,
    InvalidAccessKey,
    InvalidArgument,
    InvalidToken,
    NoSuchAccessKey,
    NoSuchUser,
    UserAlreadyExists,
)
from .records import AccessKeyRecord, BucketRecord, LinkRecord, TokenRecord, UserRecord

if TYPE_CHECKING:
    from .config import StoreConfig

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KEY_ALPHABET = string.ascii_uppercase + string.digits
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")
TOKEN_PREFIX = "pbt_"
TOKEN_SHOWN = 8  # characters of a token kept in the clear, to tell a user's tokens apart


def new_access_key_id() -> str:
    return "PB" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(18))


def new_secret_key() -> str:
    return secrets.token_urlsafe(30)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def validate_key_pair(access_key: str, secret_key: str) -> None:
    """Imported keys: any printable ASCII without spaces (MinIO and Garage keys included)."""
    if not (3 <= len(access_key) <= 128) or not _PRINTABLE.match(access_key):
        raise InvalidAccessKey("access key id must be 3-128 printable ASCII characters, no spaces")
    if not (8 <= len(secret_key) <= 128) or not _PRINTABLE.match(secret_key):
        raise InvalidAccessKey("secret key must be 8-128 printable ASCII characters, no spaces")


class Accounts:
    def __init__(self, db: Database, config: "StoreConfig", clock: Callable[[], float]):
        self.db = db
        self.config = config
        self.clock = clock

    # users -----------------------------------------------------------------------------------
    def create_user(self, name: str, quota: int | None = None, max_object_size: int | None = None) -> UserRecord:
        with self.db.write() as w:
            return self._put_user(w, name, quota, max_object_size)

    def create_user_with_credentials(
        self,
        name: str,
        quota: int | None = None,
        max_object_size: int | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        only_if_no_users: bool = False,
    ) -> tuple[UserRecord, AccessKeyRecord, str] | None:
        """A user with one access key and one API token, all in one transaction (all or nothing).

        With `only_if_no_users`, nothing happens (None) if any user exists: first-start bootstrap
        stays correct when several processes start at once.
        """
        key = self._new_key(name, access_key, secret_key)
        token = new_token()
        with self.db.write() as w:
            if only_if_no_users and w.cursor("users").first():
                return None
            user = self._put_user(w, name, quota, max_object_size)
            self._put_key(w, key)
            self._put_token(w, name, token)
        return user, key, token

    def _put_user(self, w: Txn, name: str, quota: int | None, max_object_size: int | None) -> UserRecord:
        if not USER_NAME.match(name):
            raise InvalidArgument(f"invalid user name {name!r}: 1-64 of letters, digits, '.', '_', '-'")
        user = UserRecord(
            name=name,
            created=self.clock(),
            quota=self.config.default_quota if quota is None else quota,
            max_object_size=self.config.default_max_object_size if max_object_size is None else max_object_size,
        )
        if w.get("users", name.encode()) is not None:
            raise UserAlreadyExists(f"user {name!r} already exists")
        w.put("users", name.encode(), user.encode())
        return user

    def get_user(self, name: str) -> UserRecord:
        with self.db.read() as r:
            return self.user_in(r, name)

    def user_in(self, r: Txn, name: str) -> UserRecord:
        raw = r.get("users", name.encode())
        if raw is None:
            raise NoSuchUser(f"no user {name!r}")
        return UserRecord.decode(raw)

    def list_users(self) -> list[UserRecord]:
        with self.db.read() as r:
            return [UserRecord.decode(v) for _, v in r.cursor("users")]

    def has_users(self) -> bool:
        with self.db.read() as r:
            return r.cursor("users").first()

    def remove_user(self, name: str) -> None:
        """Remove a user with their keys, tokens, links and unfinished resumable uploads (whose files
        GC removes as orphans); their buckets must be deleted first."""
        with self.db.write() as w:
            self.user_in(w, name)
            if any(BucketRecord.decode(v).owner == name for _, v in w.cursor("buckets")):
                raise BucketNotEmpty(f"user {name!r} still owns buckets; delete them first")
            for table, decode in (("keys", AccessKeyRecord.decode), ("tokens", TokenRecord.decode)):
                doomed = [bytes(k) for k, v in w.cursor(table) if decode(v).user == name]
                for k in doomed:
                    w.delete(table, k)
            self._drop_prefixed(w, "resumables", name.encode() + b"\0")  # charged to this user only
            # Their links: the buckets are gone, so every one of them is dead; a later user of the
            # same name must not inherit them.
            doomed = [bytes(k) for k, v in w.cursor("links") if LinkRecord.decode(v).owner == name]
            for k in doomed:
                w.delete("links", k)
            self._drop_prefixed(w, "link_owners", name.encode() + b"\0")
            w.delete("users", name.encode())

    def _drop_prefixed(self, w: Txn, table: str, prefix: bytes) -> None:
        cursor = w.cursor(table)
        doomed: list[bytes] = []
        if cursor.set_range(prefix):
            for key, _ in cursor:
                if not bytes(key).startswith(prefix):
                    break
                doomed.append(bytes(key))
        for key in doomed:
            w.delete(table, key)

    def set_limits(
        self, name: str, quota: int | None = None, max_object_size: int | None = None, max_objects: int | None = None
    ) -> UserRecord:
        with self.db.write() as w:
            user = self.user_in(w, name)
            if max_objects is not None:
                user.max_objects = max_objects
            if quota is not None:
                user.quota = quota
            if max_object_size is not None:
                user.max_object_size = max_object_size
            w.put("users", name.encode(), user.encode())
        return user

    def charge(self, w: Txn, name: str, delta_bytes: int, delta_objects: int) -> UserRecord:
        """Change a user's logical usage inside the caller's write transaction."""
        user = self.user_in(w, name)
        user.usage_bytes += delta_bytes
        user.object_count += delta_objects
        w.put("users", name.encode(), user.encode())
        return user

    def count_downloads(self, w: Txn, name: str, downloads: int, nbytes: int, last: float) -> None:
        """Add short-link downloads to a user's statistics inside `w` (gone users are skipped)."""
        raw = w.get("users", name.encode())
        if raw is None:
            return
        user = UserRecord.decode(raw)
        user.downloads += downloads
        user.bytes_served += nbytes
        user.last_download = max(user.last_download or 0.0, last)
        w.put("users", name.encode(), user.encode())

    # access keys -----------------------------------------------------------------------------
    def add_key(self, user: str, access_key: str | None = None, secret_key: str | None = None) -> AccessKeyRecord:
        record = self._new_key(user, access_key, secret_key)
        with self.db.write() as w:
            self.user_in(w, user)
            self._put_key(w, record)
        return record

    def _new_key(self, user: str, access_key: str | None, secret_key: str | None) -> AccessKeyRecord:
        """A generated key pair, or the imported one after validation."""
        if (access_key is None) != (secret_key is None):
            raise InvalidAccessKey("give both an access key id and a secret key, or neither")
        if access_key is None or secret_key is None:
            access_key, secret_key = new_access_key_id(), new_secret_key()
        validate_key_pair(access_key, secret_key)
        return AccessKeyRecord(access_key, secret_key, user, self.clock())

    def _put_key(self, w: Txn, record: AccessKeyRecord) -> None:
        if w.get("keys", record.access_key.encode()) is not None:
            raise AccessKeyAlreadyExists(f"access key {record.access_key!r} already exists")
        w.put("keys", record.access_key.encode(), record.encode())

    def list_keys(self, user: str | None = None) -> list[AccessKeyRecord]:
        with self.db.read() as r:
            keys = [AccessKeyRecord.decode(v) for _, v in r.cursor("keys")]
        return [k for k in keys if user is None or k.user == user]

    def revoke_key(self, access_key: str) -> None:
        with self.db.write() as w:
            if not w.delete("keys", access_key.encode()):
                raise NoSuchAccessKey(f"no access key {access_key!r}")

    def lookup_key(self, access_key: str) -> AccessKeyRecord | None:
        """The active key with this id, read fresh from LMDB (the caller compares secrets)."""
        with self.db.read() as r:
            raw = r.get("keys", access_key.encode())
        record = AccessKeyRecord.decode(raw) if raw is not None else None
        return record if record is not None and record.active else None

    # API tokens ------------------------------------------------------------------------------
    def create_token(self, user: str) -> str:
        """A new bearer token; only its SHA-256 is stored, so this is the one time it is seen."""
        token = new_token()
        with self.db.write() as w:
            self.user_in(w, user)
            self._put_token(w, user, token)
        return token

    def _put_token(self, w: Txn, user: str, token: str) -> None:
        w.put("tokens", token_hash(token), TokenRecord(user, self.clock(), token[:TOKEN_SHOWN]).encode())

    def list_tokens(self, user: str) -> list[TokenRecord]:
        """`user`'s tokens as stored: creation time and the first characters, never the token."""
        with self.db.read() as r:
            self.user_in(r, user)
            found = [TokenRecord.decode(v) for _, v in r.cursor("tokens")]
        return sorted((t for t in found if t.user == user), key=lambda t: t.created)

    def revoke_tokens(self, user: str, prefix: str = "") -> int:
        """Revoke `user`'s tokens whose stored first characters start with `prefix` (all for ""), or
        exactly the token given whole; how many went."""
        with self.db.write() as w:
            self.user_in(w, user)
            whole = w.get("tokens", token_hash(prefix)) if len(prefix) > TOKEN_SHOWN else None
            if whole is not None and TokenRecord.decode(whole).user == user:
                w.delete("tokens", token_hash(prefix))
                return 1
            doomed = [bytes(k) for k, v in w.cursor("tokens") if _token_matches(TokenRecord.decode(v), user, prefix)]
            for key in doomed:
                w.delete("tokens", key)
        return len(doomed)

    def user_for_token(self, token: str) -> str | None:
        with self.db.read() as r:
            raw = r.get("tokens", token_hash(token))
        return TokenRecord.decode(raw).user if raw is not None else None

    def rotate_token(self, token: str) -> str:
        """Replace `token` by a new one in one transaction; InvalidToken unless it is current.

        Only a holder of the current token can rotate it (pyBlobServer let anyone reset anyone's).
        """
        fresh = new_token()
        with self.db.write() as w:
            raw = w.get("tokens", token_hash(token))
            if raw is None:
                raise InvalidToken("the token is not valid")
            w.delete("tokens", token_hash(token))
            self._put_token(w, TokenRecord.decode(raw).user, fresh)
        return fresh

    def revoke_token(self, token: str) -> bool:
        with self.db.write() as w:
            return w.delete("tokens", token_hash(token))


def _token_matches(record: TokenRecord, user: str, prefix: str) -> bool:
    return record.user == user and record.prefix.startswith(prefix)
