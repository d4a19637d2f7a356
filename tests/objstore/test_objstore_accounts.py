"""Users, access keys, tokens and limits (`objstore.accounts`)."""

from __future__ import annotations

import pytest
from clocks import Clock
from objstore_helpers import raw_metadata

from objstore import Store
from objstore.accounts import TOKEN_PREFIX, token_hash
from objstore.errors import (
    AccessKeyAlreadyExists,
    BucketNotEmpty,
    InvalidAccessKey,
    InvalidArgument,
    NoSuchAccessKey,
    NoSuchUser,
    UserAlreadyExists,
)


def test_users(store: Store, clock: Clock) -> None:
    assert not store.accounts.has_users()
    alice = store.accounts.create_user("alice")
    assert (alice.created, alice.quota, alice.max_object_size) == (
        clock(),
        store.config.default_quota,
        store.config.default_max_object_size,
    )
    store.accounts.create_user("bob.b-2_x", quota=100, max_object_size=10)
    assert store.accounts.has_users()
    assert {u.name for u in store.accounts.list_users()} == {"alice", "bob.b-2_x"}
    with pytest.raises(UserAlreadyExists):
        store.accounts.create_user("alice")
    with pytest.raises(NoSuchUser):
        store.accounts.get_user("carol")
    updated = store.accounts.set_limits("alice", quota=5)
    assert (updated.quota, updated.max_object_size) == (5, store.config.default_max_object_size)
    assert store.accounts.get_user("alice").quota == 5


@pytest.mark.parametrize("name", ["", "-x", ".x", "a" * 65, "has space", "é", "a/b"])
def test_invalid_user_names(store: Store, name: str) -> None:
    with pytest.raises(InvalidArgument):
        store.accounts.create_user(name)


def test_generated_keys(store: Store) -> None:
    store.accounts.create_user("alice")
    key = store.accounts.add_key("alice")
    assert key.access_key.startswith("PB") and len(key.access_key) == 20
    assert len(key.secret_key) >= 40
    assert store.accounts.lookup_key(key.access_key) == key
    assert store.accounts.add_key("alice").access_key != key.access_key
    assert len(store.accounts.list_keys("alice")) == 2 and store.accounts.list_keys("bob") == []


def test_imported_keys_with_awkward_secrets(store: Store) -> None:
    store.accounts.create_user("alice")
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY=="
    store.accounts.add_key("alice", "AKIAIOSFODNN7EXAMPLE", secret)
    found = store.accounts.lookup_key("AKIAIOSFODNN7EXAMPLE")
    assert found is not None and (found.secret_key, found.user, found.active) == (secret, "alice", True)
    with pytest.raises(AccessKeyAlreadyExists):
        store.accounts.add_key("alice", "AKIAIOSFODNN7EXAMPLE", "another-secret")
    assert store.accounts.lookup_key("AKIAIOSFODNN7EXAMPLE").secret_key == secret  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "access, secret",
    [
        ("AK", "longenough"),
        ("AKIA", "short"),
        ("AK IA", "longenough"),
        ("AKIA", "has space!"),
        ("AKIA", "tab\tsecret"),
        ("AKIA", "x" * 129),
        ("é" * 4, "longenough"),
        ("AKIA", None),
        (None, "longenough"),
    ],
)
def test_invalid_key_pairs(store: Store, access: str | None, secret: str | None) -> None:
    store.accounts.create_user("alice")
    with pytest.raises(InvalidAccessKey):
        store.accounts.add_key("alice", access, secret)
    assert store.accounts.list_keys() == []


def test_key_for_unknown_user(store: Store) -> None:
    with pytest.raises(NoSuchUser):
        store.accounts.add_key("ghost", "AKIAGHOST", "secret-secret")
    assert store.accounts.list_keys() == []


def test_revoke_key(store: Store) -> None:
    store.accounts.create_user("alice")
    key = store.accounts.add_key("alice")
    store.accounts.revoke_key(key.access_key)
    assert store.accounts.lookup_key(key.access_key) is None
    assert store.accounts.list_keys() == []
    with pytest.raises(NoSuchAccessKey):
        store.accounts.revoke_key(key.access_key)


def test_tokens_are_stored_only_as_hashes(store: Store) -> None:
    store.accounts.create_user("alice")
    token = store.accounts.create_token("alice")
    assert token.startswith(TOKEN_PREFIX) and len(token) > 40
    assert store.accounts.user_for_token(token) == "alice"
    assert store.accounts.user_for_token(token + "x") is None
    raw = raw_metadata(store)
    assert token_hash(token) in raw  # we are looking at the right file
    assert token.encode() not in raw
    assert token[len(TOKEN_PREFIX) :].encode() not in raw
    assert store.accounts.revoke_token(token) is True
    assert store.accounts.user_for_token(token) is None
    assert store.accounts.revoke_token(token) is False
    with pytest.raises(NoSuchUser):
        store.accounts.create_token("ghost")


def test_remove_user_refuses_while_buckets_exist(store: Store) -> None:
    store.accounts.create_user("alice")
    store.accounts.create_user("bob")
    store.create_bucket("alice", "alices")
    key = store.accounts.add_key("alice")
    bob_key = store.accounts.add_key("bob")
    token = store.accounts.create_token("alice")
    with pytest.raises(BucketNotEmpty):
        store.remove_user("alice")
    assert store.accounts.lookup_key(key.access_key) is not None
    store.delete_bucket("alices")
    store.remove_user("alice")
    with pytest.raises(NoSuchUser):
        store.accounts.get_user("alice")
    assert store.accounts.lookup_key(key.access_key) is None
    assert store.accounts.user_for_token(token) is None
    assert store.accounts.lookup_key(bob_key.access_key) == bob_key
    with pytest.raises(NoSuchUser):
        store.remove_user("alice")


def test_user_with_credentials_in_one_transaction(store: Store) -> None:
    made = store.accounts.create_user_with_credentials(
        "admin", quota=10, access_key="AKIAADMIN", secret_key="s3cr/t+key="
    )
    assert made is not None
    user, key, token = made
    assert (user.name, user.quota, key.access_key, key.secret_key, key.user) == (
        "admin",
        10,
        "AKIAADMIN",
        "s3cr/t+key=",
        "admin",
    )
    assert store.accounts.lookup_key("AKIAADMIN") == key
    assert store.accounts.user_for_token(token) == "admin"
    # First-start bootstrap: a second attempt does nothing once any user exists.
    assert store.accounts.create_user_with_credentials("other", only_if_no_users=True) is None
    assert [u.name for u in store.accounts.list_users()] == ["admin"]


def test_user_with_credentials_is_all_or_nothing(store: Store) -> None:
    store.accounts.create_user("alice")
    store.accounts.add_key("alice", "AKIATAKEN", "secret-secret")
    with pytest.raises(AccessKeyAlreadyExists):
        store.accounts.create_user_with_credentials("bob", access_key="AKIATAKEN", secret_key="another-secret")
    with pytest.raises(InvalidAccessKey):
        store.accounts.create_user_with_credentials("bob", access_key="AKIA BAD", secret_key="another-secret")
    with pytest.raises(UserAlreadyExists):
        store.accounts.create_user_with_credentials("alice")
    assert [u.name for u in store.accounts.list_users()] == ["alice"]
    assert [k.access_key for k in store.accounts.list_keys()] == ["AKIATAKEN"]


# usage as change rows: commits of one user add rows, never rewrite one -----------------------------
def test_usage_changes_add_up_and_gc_folds_them(store: Store, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from objstore import accounts
    from objstore.maintenance import collect_garbage, fsck

    monkeypatch.setattr(accounts, "FOLD_EVERY", 10**9)  # no commit folds by chance: GC does
    for n in range(20):
        store.put_object(bucket, f"k{n}", b"x" * (100 + n))
    store.delete_object(bucket, "k0")
    changes = store.meta.read(lambda r: r.count(accounts.USAGE_CHANGES))
    assert changes == 21  # one per commit
    want = (sum(100 + n for n in range(1, 20)), 19)
    alice = store.accounts.get_user("alice")
    assert (alice.usage_bytes, alice.object_count) == want
    assert [(u.usage_bytes, u.object_count) for u in store.accounts.list_users()] == [want]
    assert collect_garbage(store).usage_folded == 1
    assert store.meta.read(lambda r: r.count(accounts.USAGE_CHANGES)) == 0
    alice = store.accounts.get_user("alice")
    assert (alice.usage_bytes, alice.object_count) == want
    assert fsck(store).ok


def test_writing_a_user_folds_its_changes(store: Store, bucket: str) -> None:
    from objstore import accounts

    store.put_object(bucket, "a", b"12345")
    store.accounts.set_limits("alice", quota=1000)  # rewrites the user's row: the change goes into it
    assert store.meta.read(lambda r: r.count(accounts.USAGE_CHANGES)) == 0
    assert store.accounts.get_user("alice").usage_bytes == 5
    store.delete_object(bucket, "a")
    assert store.accounts.get_user("alice").usage_bytes == 0


def test_a_quota_counts_changes_not_folded_yet(store: Store, bucket: str) -> None:
    from objstore.errors import QuotaExceeded

    store.accounts.set_limits("alice", quota=1000)
    store.put_object(bucket, "a", b"x" * 600)
    with pytest.raises(QuotaExceeded):
        store.put_object(bucket, "b", b"x" * 600)


def test_one_commit_in_fold_every_folds(store: Store, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from objstore import accounts

    monkeypatch.setattr(accounts, "FOLD_EVERY", 1)  # every commit folds
    for n in range(3):
        store.put_object(bucket, f"k{n}", b"abc")
    assert store.meta.read(lambda r: r.count(accounts.USAGE_CHANGES)) == 0
    assert store.accounts.get_user("alice").usage_bytes == 9
