"""Listing (`objstore.listing`) against a plain-Python reference over the sorted key list.

S3 lists keys in binary UTF-8 order. The reference: keys under `prefix` and after `after`, in that
order, each rolled up to its common prefix at the first `delimiter` past the prefix; a common prefix
is listed once, and not at all if it is `after` itself (resuming after a page that ended on it).
With `inclusive`, `after` itself is listed too (keys >= after) and no common prefix is skipped.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objstore import Store
from objstore.listing import prefix_successor

Item = tuple[str, str]  # ("key" | "prefix", value)


def ref_list(
    keys: list[str], prefix: str = "", delimiter: str = "", after: str = "", inclusive: bool = False
) -> list[Item]:
    bprefix, bdelim, bafter = prefix.encode(), delimiter.encode(), after.encode()
    items: list[Item] = []
    for key in sorted(keys, key=lambda k: k.encode()):
        raw = key.encode()
        if not raw.startswith(bprefix) or (after and (raw < bafter if inclusive else raw <= bafter)):
            continue
        cut = raw.find(bdelim, len(bprefix)) if bdelim else -1
        if cut < 0:
            items.append(("key", key))
            continue
        common = raw[: cut + len(bdelim)].decode()
        if (inclusive or common != after) and ("prefix", common) not in items:
            items.append(("prefix", common))
    return items


def listed(
    store: Store, bucket: str, prefix: str = "", delimiter: str = "", after: str = "", inclusive: bool = False
) -> tuple[list[str], list[str]]:
    page = store.list_objects(bucket, prefix, delimiter, after, max_keys=100_000, inclusive=inclusive)
    assert not page.truncated
    return [o.key for o in page.objects], page.prefixes


def split(items: list[Item]) -> tuple[list[str], list[str]]:
    return [v for k, v in items if k == "key"], [v for k, v in items if k == "prefix"]


def check_query(
    store: Store,
    bucket: str,
    keys: list[str],
    prefix: str,
    delimiter: str,
    after: str,
    max_keys: int,
    inclusive: bool = False,
) -> None:
    expected = ref_list(keys, prefix, delimiter, after, inclusive)
    assert listed(store, bucket, prefix, delimiter, after, inclusive) == split(expected), (
        prefix,
        delimiter,
        after,
        inclusive,
    )
    # Paging with `last` as the next (exclusive) `after` walks the same items, `max_keys` at a time.
    resume, pages = after, []
    for n in range(len(expected) + 2):
        page = store.list_objects(bucket, prefix, delimiter, resume, max_keys, inclusive=inclusive and n == 0)
        pages.append(page)
        if not page.truncated:
            break
        assert page.last is not None
        resume = page.last
    chunks = [expected[i : i + max_keys] for i in range(0, len(expected), max_keys)] or [[]]
    assert len(pages) == len(chunks)
    for page, chunk in zip(pages, chunks, strict=True):
        assert ([o.key for o in page.objects], page.prefixes) == split(chunk)
        assert page.last == (chunk[-1][1] if chunk else None)
    assert [p.truncated for p in pages] == [True] * (len(pages) - 1) + [False]


# Long keys that share their first 490 bytes (one LMDB "group"), with the cut at byte 490 falling
# between characters (A), inside a 2-byte character (B), and with delimiters inside the group (C).
BASE_A = "p/" + "x" * 488  # 490 bytes
BASE_B = "p/" + "x" * 487 + "é"  # 491 bytes: byte 490 is the middle of "é"
BASE_C = "q/" + "y" * 300 + "/" + "z" * 187  # 490 bytes
BASES = (BASE_A, BASE_B, BASE_C)
ALPHABET = "ab/é😀-"


def group_mix() -> list[str]:
    """Many long keys per group, keys that are prefixes of them, and ordinary short keys."""
    keys = [
        base + tail for base in BASES for tail in ("a", "b", "ba", "/", "/a", "é", "😀", "a/b", "a" * 500, "\x00", "~")
    ]
    keys += [base[:n] for base in BASES for n in (1, 2, 3, 100, 489, 490)]
    keys += ["a", "a/b", "a/b/c", "b", "é", "😀/x", "p", "p/", "q/"]
    return sorted({k for k in keys if len(k.encode()) <= 1024})


@pytest.fixture
def mix_bucket(store: Store) -> tuple[str, list[str]]:
    store.accounts.create_user("alice")
    store.create_bucket("alice", "mix")
    keys = group_mix()
    for k in keys:
        store.put_object("mix", k, k.encode()[-8:])
    return "mix", keys


def test_listing_order_is_binary_utf8(store: Store, mix_bucket: tuple[str, list[str]]) -> None:
    bucket, keys = mix_bucket
    assert sum(len(k.encode()) > 490 for k in keys) >= 30
    got = [o.key for o in store.list_objects(bucket, max_keys=10_000).objects]
    assert got == sorted(keys, key=lambda k: k.encode())


QUERIES = [
    ("", "/"),
    ("p/", "/"),
    ("p/", ""),
    (BASE_A[:489], ""),
    (BASE_A, ""),
    (BASE_A, "/"),
    (BASE_B[:489], "é"),
    ("q/", "/"),
    (BASE_C[:303], "/"),
    ("", "x"),
    ("", "é"),
    ("a", "/"),
    ("zzz", ""),
    ("", "😀"),
    ("p/xx", "xé"),
]


@pytest.mark.parametrize("prefix, delimiter", QUERIES)
def test_mix_against_the_reference(
    store: Store, mix_bucket: tuple[str, list[str]], prefix: str, delimiter: str
) -> None:
    bucket, keys = mix_bucket
    full = ref_list(keys, prefix, delimiter)
    resume_points = ["", *[v for _, v in full][:: max(1, len(full) // 6)]]
    for after, max_keys, inclusive in itertools.product(resume_points, (1, 3, 1000), (False, True)):
        check_query(store, bucket, keys, prefix, delimiter, after, max_keys, inclusive)


def test_start_after_inside_a_group(store: Store, mix_bucket: tuple[str, list[str]]) -> None:
    bucket, keys = mix_bucket
    for after in (BASE_A + "a", BASE_A + "b", BASE_B + "é", BASE_A + "a" * 500, BASE_A + "aa"):
        assert listed(store, bucket, after=after) == split(ref_list(keys, after=after))


def test_start_after_a_key_that_ends_with_the_delimiter(store: Store) -> None:
    """`after` = "a/b/" is a key, not a common prefix of this listing ("a/" is): what follows it
    under "a/" still rolls up to "a/", exactly as it does for `after` = "a/b"."""
    store.accounts.create_user("alice")
    store.create_bucket("alice", "bkt")
    keys = ["a/b", "a/b/", "a/b/c"]
    for k in keys:
        store.put_object("bkt", k, b"")
    assert listed(store, "bkt", delimiter="/", after="a/b") == ([], ["a/"])
    assert listed(store, "bkt", delimiter="/", after="a/b/") == ([], ["a/"])


def test_inclusive_lists_the_resume_point_itself(store: Store) -> None:
    store.accounts.create_user("alice")
    store.create_bucket("alice", "bkt")
    for k in ("a", "b", "b/1", "b/2", "c"):
        store.put_object("bkt", k, b"")
    assert listed(store, "bkt", after="b", inclusive=True) == (["b", "b/1", "b/2", "c"], [])
    assert listed(store, "bkt", after="b", inclusive=False) == (["b/1", "b/2", "c"], [])
    assert listed(store, "bkt", delimiter="/", after="b/", inclusive=True) == (["c"], ["b/"])
    assert listed(store, "bkt", delimiter="/", after="b/", inclusive=False) == (["c"], [])


def test_prefix_successor() -> None:
    assert prefix_successor(b"a/") == b"a0"
    assert prefix_successor("é".encode()) == b"\xc3\xaa"


def test_empty_bucket_and_bucket_isolation(store: Store) -> None:
    store.accounts.create_user("alice")
    store.create_bucket("alice", "aaa")
    store.create_bucket("alice", "bbb")
    assert listed(store, "aaa") == ([], [])
    store.put_object("bbb", "k", b"")
    assert listed(store, "aaa") == ([], [])
    page = store.list_objects("aaa", max_keys=0)
    assert (page.objects, page.truncated) == ([], False)


# Random key sets ------------------------------------------------------------------------------
short_keys = st.text(ALPHABET, min_size=1, max_size=6)
tails = st.builds(lambda s, n: s + "w" * n, st.text(ALPHABET, max_size=5), st.sampled_from([0, 0, 0, 30, 520]))
long_keys = st.builds(lambda base, tail: base + tail, st.sampled_from(BASES), tails)
prefix_keys = st.builds(lambda base, n: base[:n], st.sampled_from(BASES), st.integers(1, 491))
key_sets = st.sets(st.one_of(short_keys, long_keys, prefix_keys), min_size=1, max_size=25).map(
    lambda ks: sorted(k for k in ks if 0 < len(k.encode()) <= 1024)
)
_buckets = itertools.count()


@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(keys=key_sets, data=st.data())
def test_random_key_sets_against_the_reference(store: Store, keys: list[str], data: st.DataObject) -> None:
    if not store.accounts.has_users():
        store.accounts.create_user("alice")
    bucket = f"rand-{next(_buckets)}"
    store.create_bucket("alice", bucket)
    for k in keys:
        store.put_object(bucket, k, b"")
    assert listed(store, bucket)[0] == sorted(keys, key=lambda k: k.encode())
    for _ in range(4):
        prefix = data.draw(
            st.one_of(st.just(""), st.sampled_from(keys).flatmap(lambda k: st.integers(0, len(k)).map(lambda n: k[:n])))
        )
        delimiter = data.draw(st.sampled_from(["", "/", "a", "é", "😀", "ab", "w"]))
        resume_points = [""] + keys + [v for kind, v in ref_list(keys, prefix, delimiter) if kind == "prefix"]
        after = data.draw(st.sampled_from(resume_points))
        max_keys = data.draw(st.integers(1, 5))
        check_query(store, bucket, keys, prefix, delimiter, after, max_keys, data.draw(st.booleans()))
