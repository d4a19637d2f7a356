"""Object keys (`objstore.keys`): validation, LMDB encoding, and round trips through the store."""

from __future__ import annotations

import pytest
from objstore_helpers import read

from objstore import Store, keys
from objstore.errors import InvalidObjectKey, NoSuchKey

ODD_KEYS = [
    "ключ/é/日本語/emoji 😀",
    "with spaces/and more  spaces ",
    "a+b+c",
    "100%/%20/%2F",
    '&+-é"',
    "trailing/",
    "/leading",
    "tab\tand\nnewline",
    "nul\x00byte",
    "🧪" * 256,  # 1024 bytes of 4-byte characters
    "a" * 1024,
    "日" * 341 + "a",  # 1024 bytes, the 490-byte cut lands inside a character
]


def test_validate_key_limits() -> None:
    assert keys.validate_key("a" * 1024) == b"a" * 1024
    with pytest.raises(InvalidObjectKey):
        keys.validate_key("a" * 1025)
    with pytest.raises(InvalidObjectKey):
        keys.validate_key("é" * 512 + "a")  # 1025 bytes in 513 characters
    with pytest.raises(InvalidObjectKey):
        keys.validate_key("")
    with pytest.raises(InvalidObjectKey):
        keys.validate_key("lone \ud800 surrogate")


def test_short_and_long_forms() -> None:
    short = keys.encode(7, b"x" * keys.SHORT)
    assert short == b"\x00\x00\x00\x07" + b"x" * keys.SHORT and not keys.is_long_form(short)
    assert keys.short_key(short) == b"x" * keys.SHORT
    long_a = keys.encode(7, b"x" * keys.SHORT + b"a")
    long_b = keys.encode(7, b"x" * keys.SHORT + b"b")
    assert keys.is_long_form(long_a) and len(long_a) == keys.LONG_FORM_LEN <= 511
    assert long_a != long_b and keys.group_of(long_a) == keys.group_of(long_b) == short
    assert short < long_a  # a key sorts before the longer keys it prefixes


@pytest.mark.parametrize("key", ODD_KEYS, ids=range(len(ODD_KEYS)))
def test_odd_keys_round_trip(store: Store, bucket: str, key: str) -> None:
    data = key.encode() * 3
    rec = store.put_object(bucket, key, data)
    assert rec.key == key
    assert store.head_object(bucket, key).key == key
    assert read(store, bucket, key) == data
    assert [o.key for o in store.list_objects(bucket).objects] == [key]
    assert store.delete_object(bucket, key).changed is True
    with pytest.raises(NoSuchKey):
        store.head_object(bucket, key)


def test_long_keys_sharing_490_bytes_are_distinct_objects(store: Store, bucket: str) -> None:
    base = "k" * 600
    names = [base + s for s in ("a", "b", "é", "😀" * 100)] + [base[:490], base[:491]]
    for n in names:
        store.put_object(bucket, n, n.encode()[-20:])
    for n in names:
        assert read(store, bucket, n) == n.encode()[-20:]
    with pytest.raises(NoSuchKey):
        store.head_object(bucket, base + "c")


@pytest.mark.parametrize("bad", ["", "a" * 1025, "\udcff"])
def test_invalid_keys_are_refused_everywhere(store: Store, bucket: str, bad: str) -> None:
    for call in (
        lambda: store.put_object(bucket, bad, b"x"),
        lambda: store.head_object(bucket, bad),
        lambda: store.delete_object(bucket, bad),
        lambda: store.multipart.create_upload(bucket, bad),
    ):
        with pytest.raises(InvalidObjectKey):
            call()
    assert store.list_objects(bucket).objects == []
