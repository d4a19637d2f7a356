"""Users, S3 access keys, REST API tokens and per-user limits.

The one owner of the `users`, `keys` and `tokens` tables: other parts call the functions below
inside their own transaction (`require_user`, `charge`, `count_downloads`, ...). `Accounts` is the
admin's and the web layers' view (create, list, revoke), each call one transaction.

Nothing here is cached: every lookup reads the metadata store, so a key added by the admin CLI while
the server runs authenticates on the very next request, and a revoked one stops at once.
"""

from __future__ import annotations

import hashlib
import random
import re
import secrets
import string
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from .config import StoreConfig
from .errors import (
    AccessKeyAlreadyExists,
    InvalidAccessKey,
    InvalidArgument,
    InvalidToken,
    NoSuchAccessKey,
    NoSuchUser,
    SealingKeyError,
    UserAlreadyExists,
)
from .meta import MetadataStore, ReadTxn, WriteTxn, scan
from .records import MAX_RECORD_INT, AccessKeyRecord, TokenRecord, UserRecord
from .sealing import SecretSealer

USERS, KEYS, TOKENS = "users", "keys", "tokens"
# user name + NUL + 12 random bytes -> (bytes, objects) change: a commit's usage change as a row of
# its own, so commits of one user never write the same row (over PostgreSQL, concurrent SERIALIZABLE
# commits that rewrite one usage row conflict and re-run); folded into the user's row when that row
# is written anyway, and by GC.
USAGE_CHANGES = "usage_changes"
TABLES = (USERS, KEYS, TOKENS, USAGE_CHANGES)
_CHANGE = struct.Struct(">qq")
FOLD_EVERY = 64  # one commit in this many folds its user's changes (a read of them and a row write)

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


# Inside the caller's transaction ---------------------------------------------------------------
def check_limits(**limits: int | None) -> None:
    """A user's quota, per-object size and object count: each at most MAX_RECORD_INT (InvalidArgument)."""
    for name, value in limits.items():
        if value is not None and not 0 <= value <= MAX_RECORD_INT:
            raise InvalidArgument(f"{name} must be from 0 to at most {MAX_RECORD_INT}: {value}")


def find_user(r: ReadTxn, name: str, with_usage: bool = True) -> UserRecord | None:
    """The user; with `with_usage` (the default) its usage includes the changes not folded in yet.
    Without, only the user's own row is read: what a commit that needs no usage asks for, so that it
    does not conflict with the other commits of the same user (each adding a change row)."""
    raw = r.get(USERS, name.encode())
    if raw is None:
        return None
    user = UserRecord.decode(raw)
    if with_usage:
        for _, change in _changes(r, name):
            user.usage_bytes += change[0]
            user.object_count += change[1]
    return user


def require_user(r: ReadTxn, name: str, with_usage: bool = True) -> UserRecord:
    """The user (see `find_user`), or NoSuchUser."""
    user = find_user(r, name, with_usage)
    if user is None:
        raise NoSuchUser(f"no user {name!r}")
    return user


def put_user(w: WriteTxn, user: UserRecord) -> None:
    """Write a user read with its usage: the change rows that usage includes are folded in."""
    for key, _ in list(_changes(w, user.name)):
        w.delete(USAGE_CHANGES, key)
    w.put(USERS, user.name.encode(), user.encode())


def all_users(r: ReadTxn) -> list[UserRecord]:
    users = [UserRecord.decode(raw) for _, raw in r.range(USERS)]
    by_name = {u.name: u for u in users}
    for key, raw in r.range(USAGE_CHANGES):
        user = by_name.get(key.split(b"\0", 1)[0].decode())
        if user is not None:
            delta_bytes, delta_objects = _CHANGE.unpack(raw)
            user.usage_bytes += delta_bytes
            user.object_count += delta_objects
    return users


def charge(w: WriteTxn, name: str, delta_bytes: int, delta_objects: int) -> None:
    """Change a user's logical usage (bytes stored, objects kept): one new row, no read of the usage."""
    if w.get(USERS, name.encode()) is None:
        raise NoSuchUser(f"no user {name!r}")
    key = name.encode() + b"\0" + secrets.token_bytes(12)
    w.put(USAGE_CHANGES, key, _CHANGE.pack(delta_bytes, delta_objects))
    if random.random() < 1 / FOLD_EVERY:  # keeps a user's change rows few, whoever reads them
        put_user(w, require_user(w, name))


def users_with_changes(r: ReadTxn) -> list[str]:
    """The users that have usage change rows not folded in yet (for GC)."""
    return sorted({key.split(b"\0", 1)[0].decode() for key, _ in r.range(USAGE_CHANGES)})


def fold_usage(w: WriteTxn, name: str) -> None:
    """Fold one user's change rows into their row (a removed user's are dropped)."""
    user = find_user(w, name)
    if user is None:
        for key, _ in list(_changes(w, name)):
            w.delete(USAGE_CHANGES, key)
    else:
        put_user(w, user)


def _changes(r: ReadTxn, name: str) -> Iterator[tuple[bytes, tuple[int, int]]]:
    for key, raw in scan(r, USAGE_CHANGES, name.encode() + b"\0"):
        yield key, _CHANGE.unpack(raw)


def count_downloads(w: WriteTxn, name: str, downloads: int, nbytes: int, last: float) -> None:
    """Add short-link downloads to a user's statistics (gone users are skipped)."""
    user = find_user(w, name)
    if user is None:
        return
    user.downloads += downloads
    user.bytes_served += nbytes
    user.last_download = max(user.last_download or 0.0, last)
    put_user(w, user)


def count_upload(w: WriteTxn, name: str, nbytes: int, when: float) -> None:
    """Add a file uploaded for a short link to a user's statistics."""
    user = require_user(w, name)
    user.uploads += 1
    user.bytes_uploaded += nbytes
    user.last_upload = when
    put_user(w, user)


def set_default_bucket(w: WriteTxn, name: str, bucket: str) -> None:
    """Remember the bucket the user's short-link uploads go to."""
    user = require_user(w, name)
    user.default_bucket = bucket
    put_user(w, user)


def remove_user(w: WriteTxn, name: str) -> None:
    """Delete the user with their access keys and tokens (the caller checks what else they own)."""
    require_user(w, name)
    for table, decode in ((KEYS, AccessKeyRecord.decode), (TOKENS, TokenRecord.decode)):
        doomed = [k for k, v in w.range(table) if decode(v).user == name]
        for k in doomed:
            w.delete(table, k)
    for key, _ in list(_changes(w, name)):
        w.delete(USAGE_CHANGES, key)
    w.delete(USERS, name.encode())


@dataclass
class Counters:
    """A user's upload and download counters (UserRecord's fields of the same names)."""

    uploads: int
    bytes_uploaded: int
    last_upload: float | None
    downloads: int
    bytes_served: int
    last_download: float | None


class Accounts:
    """Users, access keys and tokens as the admin CLI and the web layers see them; one transaction a call."""

    def __init__(self, meta: MetadataStore, config: StoreConfig, clock: Callable[[], float]):
        self.meta = meta
        self.config = config
        self.clock = clock
        self.sealer = SecretSealer(config.sealing_key) if config.sealing_key is not None else None

    # sealed secrets --------------------------------------------------------------------------
    def seal_secrets(self) -> int:
        """With a sealing key: seal every secret still stored as it is, and check that every sealed
        one opens (SealingKeyError names the first that does not). Without one: refuse a store
        whose secrets are sealed. How many were sealed now; run when the store opens."""
        sealer = self.sealer

        def check(r: ReadTxn) -> bool:
            """Whether any secret is stored as it is (to seal)."""
            plain = False
            for _, raw in r.range(KEYS):
                record = AccessKeyRecord.decode(raw)
                if record.sealed and sealer is None:
                    raise SealingKeyError(
                        f"the S3 secret keys of this store are sealed (access key {record.access_key!r}): "
                        "set PYBLOB_SEALING_KEY or PYBLOB_SEALING_KEY_FILE to the key they were sealed with"
                    )
                if record.sealed and sealer is not None:
                    sealer.open(record.access_key, record.sealed)
                plain = plain or not record.sealed
            return plain

        def seal(w: WriteTxn) -> int:
            plain = [(k, AccessKeyRecord.decode(v)) for k, v in w.range(KEYS)]
            plain = [(k, record) for k, record in plain if not record.sealed]
            for key, record in plain:
                w.put(KEYS, key, self._stored(record).encode())
            return len(plain)

        if not self.meta.read(check) or sealer is None:
            return 0
        return self.meta.transact(seal)

    def _stored(self, record: AccessKeyRecord) -> AccessKeyRecord:
        """The row of a key: its secret sealed when there is a sealing key."""
        if self.sealer is None:
            return record
        return replace(record, secret_key="", sealed=self.sealer.seal(record.access_key, record.secret_key))

    def _opened(self, record: AccessKeyRecord) -> AccessKeyRecord:
        """A key as read, its secret opened."""
        if not record.sealed:
            return record
        if self.sealer is None:
            raise SealingKeyError(f"the secret of access key {record.access_key!r} is sealed and no sealing key is set")
        return replace(record, secret_key=self.sealer.open(record.access_key, record.sealed), sealed="")

    # users -----------------------------------------------------------------------------------
    def create_user(self, name: str, quota: int | None = None, max_object_size: int | None = None) -> UserRecord:
        return self.meta.transact(lambda w: self._add_user(w, name, quota, max_object_size))

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

        def create(w: WriteTxn) -> tuple[UserRecord, AccessKeyRecord, str] | None:
            if only_if_no_users and _any_user(w):
                return None
            user = self._add_user(w, name, quota, max_object_size)
            _put_key(w, self._stored(key))
            self._put_token(w, name, token)
            return user, key, token

        return self.meta.transact(create)

    def _add_user(self, w: WriteTxn, name: str, quota: int | None, max_object_size: int | None) -> UserRecord:
        if not USER_NAME.match(name):
            raise InvalidArgument(f"invalid user name {name!r}: 1-64 of letters, digits, '.', '_', '-'")
        check_limits(quota=quota, max_object_size=max_object_size)
        user = UserRecord(
            name=name,
            created=self.clock(),
            quota=self.config.default_quota if quota is None else quota,
            max_object_size=self.config.default_max_object_size if max_object_size is None else max_object_size,
        )
        if find_user(w, name) is not None:
            raise UserAlreadyExists(f"user {name!r} already exists")
        put_user(w, user)
        return user

    def get_user(self, name: str) -> UserRecord:
        return self.meta.read(lambda r: require_user(r, name))

    def list_users(self) -> list[UserRecord]:
        return self.meta.read(all_users)

    def has_users(self) -> bool:
        return self.meta.read(_any_user)

    def set_limits(
        self, name: str, quota: int | None = None, max_object_size: int | None = None, max_objects: int | None = None
    ) -> UserRecord:
        check_limits(quota=quota, max_object_size=max_object_size, max_objects=max_objects)

        def update(w: WriteTxn) -> UserRecord:
            user = require_user(w, name)
            if max_objects is not None:
                user.max_objects = max_objects
            if quota is not None:
                user.quota = quota
            if max_object_size is not None:
                user.max_object_size = max_object_size
            put_user(w, user)
            return user

        return self.meta.transact(update)

    # access keys -----------------------------------------------------------------------------
    def add_key(self, user: str, access_key: str | None = None, secret_key: str | None = None) -> AccessKeyRecord:
        record = self._new_key(user, access_key, secret_key)

        def add(w: WriteTxn) -> AccessKeyRecord:
            require_user(w, user)
            _put_key(w, self._stored(record))
            return record

        return self.meta.transact(add)

    def _new_key(self, user: str, access_key: str | None, secret_key: str | None) -> AccessKeyRecord:
        """A generated key pair, or the imported one after validation."""
        if (access_key is None) != (secret_key is None):
            raise InvalidAccessKey("give both an access key id and a secret key, or neither")
        if access_key is None or secret_key is None:
            access_key, secret_key = new_access_key_id(), new_secret_key()
        validate_key_pair(access_key, secret_key)
        return AccessKeyRecord(access_key, secret_key, user, self.clock())

    def list_keys(self, user: str | None = None) -> list[AccessKeyRecord]:
        keys = self.meta.read(lambda r: [AccessKeyRecord.decode(v) for _, v in r.range(KEYS)])
        return [self._opened(k) for k in keys if user is None or k.user == user]

    def revoke_key(self, access_key: str) -> None:
        def revoke(w: WriteTxn) -> None:
            if not w.delete(KEYS, access_key.encode()):
                raise NoSuchAccessKey(f"no access key {access_key!r}")

        self.meta.transact(revoke)

    def lookup_key(self, access_key: str) -> AccessKeyRecord | None:
        """The active key with this id, read fresh (the caller compares secrets)."""
        raw = self.meta.read(lambda r: r.get(KEYS, access_key.encode()))
        record = AccessKeyRecord.decode(raw) if raw is not None else None
        return self._opened(record) if record is not None and record.active else None

    # API tokens ------------------------------------------------------------------------------
    def create_token(self, user: str) -> str:
        """A new bearer token; only its SHA-256 is stored, so this is the one time it is seen."""
        token = new_token()

        def create(w: WriteTxn) -> str:
            require_user(w, user)
            self._put_token(w, user, token)
            return token

        return self.meta.transact(create)

    def _put_token(self, w: WriteTxn, user: str, token: str) -> None:
        w.put(TOKENS, token_hash(token), TokenRecord(user, self.clock(), token[:TOKEN_SHOWN]).encode())

    def list_tokens(self, user: str) -> list[TokenRecord]:
        """`user`'s tokens as stored: creation time and the first characters, never the token."""

        def tokens(r: ReadTxn) -> list[TokenRecord]:
            require_user(r, user)
            return [TokenRecord.decode(v) for _, v in r.range(TOKENS)]

        return sorted((t for t in self.meta.read(tokens) if t.user == user), key=lambda t: t.created)

    def revoke_tokens(self, user: str, prefix: str = "") -> int:
        """Revoke `user`'s tokens whose stored first characters start with `prefix` (all for ""), or
        exactly the token given whole; how many went."""

        def revoke(w: WriteTxn) -> int:
            require_user(w, user)
            whole = w.get(TOKENS, token_hash(prefix)) if len(prefix) > TOKEN_SHOWN else None
            if whole is not None and TokenRecord.decode(whole).user == user:
                w.delete(TOKENS, token_hash(prefix))
                return 1
            doomed = [k for k, v in w.range(TOKENS) if _token_matches(TokenRecord.decode(v), user, prefix)]
            for key in doomed:
                w.delete(TOKENS, key)
            return len(doomed)

        return self.meta.transact(revoke)

    def import_user(self, name: str, token: str, created: float) -> tuple[bool, bool]:
        """A user carried over from elsewhere with the bearer token it had (kept as its hash, like
        every token): (user created, token kept). An existing user is left as it is; a token that
        belongs to another user already is not taken over."""

        def run(w: WriteTxn) -> tuple[bool, bool]:
            made = find_user(w, name) is None
            if made:
                user = self._add_user(w, name, None, None)
                user.created = created
                put_user(w, user)
            holder = w.get(TOKENS, token_hash(token)) if token else None
            if holder is not None:
                return made, TokenRecord.decode(holder).user == name
            if token:
                self._put_token(w, name, token)
            return made, bool(token)

        return self.meta.transact(run)

    def set_counters(self, name: str, counters: Counters) -> UserRecord:
        """Set a user's upload and download counters, as an import carries them over."""

        def run(w: WriteTxn) -> UserRecord:
            user = require_user(w, name)
            user.uploads, user.bytes_uploaded, user.last_upload = (
                counters.uploads,
                counters.bytes_uploaded,
                counters.last_upload,
            )
            user.downloads, user.bytes_served = counters.downloads, counters.bytes_served
            user.last_download = counters.last_download
            put_user(w, user)
            return user

        return self.meta.transact(run)

    def user_for_token(self, token: str) -> str | None:
        raw = self.meta.read(lambda r: r.get(TOKENS, token_hash(token)))
        return TokenRecord.decode(raw).user if raw is not None else None

    def rotate_token(self, token: str) -> str:
        """Replace `token` by a new one in one transaction; InvalidToken unless it is current.

        Only a holder of the current token can rotate it (pyBlobServer let anyone reset anyone's).
        """
        fresh = new_token()

        def rotate(w: WriteTxn) -> str:
            raw = w.get(TOKENS, token_hash(token))
            if raw is None:
                raise InvalidToken("the token is not valid")
            w.delete(TOKENS, token_hash(token))
            self._put_token(w, TokenRecord.decode(raw).user, fresh)
            return fresh

        return self.meta.transact(rotate)

    def revoke_token(self, token: str) -> bool:
        return self.meta.transact(lambda w: w.delete(TOKENS, token_hash(token)))


def _any_user(r: ReadTxn) -> bool:
    return next(r.range(USERS, limit=1), None) is not None


def _put_key(w: WriteTxn, record: AccessKeyRecord) -> None:
    if w.get(KEYS, record.access_key.encode()) is not None:
        raise AccessKeyAlreadyExists(f"access key {record.access_key!r} already exists")
    w.put(KEYS, record.access_key.encode(), record.encode())


def _token_matches(record: TokenRecord, user: str, prefix: str) -> bool:
    return record.user == user and record.prefix.startswith(prefix)
