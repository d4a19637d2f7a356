"""Listing semantics against moto as an oracle, on generated key sets (hypothesis).

The same keys go to `moto_server` and to pyblob; ListObjectsV2 and ListObjects (v1) are paged to
the end for prefix × delimiter × max-keys × start-after/marker, and every page (Contents keys,
CommonPrefixes, KeyCount, IsTruncated, NextMarker) is compared. boto3 asks for encoding-type=url
and decodes, so keys with "é" exercise that too.

moto is the oracle only where it follows AWS
(https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html, .../API_ListObjects.html):

* ListObjectsV2: all of it, but for a start-after inside a common prefix (below).
* ListObjects without a delimiter: keys and IsTruncated. moto also sends NextMarker there, which
  AWS sends "only if you have the delimiter request parameter specified": pyblob must not.
* ListObjects with a delimiter: moto neither pages CommonPrefixes nor counts them against max-keys
  (AWS counts "keys and common prefixes"), and its NextMarker is an opaque token where AWS returns
  the last key or common prefix of the page. There pyblob's v1 pages must equal its v2 pages
  (already checked against moto), with NextMarker = the page's last entry.

Not compared: a start-after / marker strictly inside a common prefix ("a/1" with delimiter "/" and
keys "a/1", "a/2"). moto (and Ceph RGW, which fast-forwards such a marker past the prefix) leave
"a/" out; pyblob (like Garage) lists "a/" for the keys after the marker. AWS's reference does not
say which, so neither is taken as right here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.client import BaseClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from s3_server import unique_bucket_name

ALPHABET = "ab/-_.é"
DELIMITERS = ["", "/", "-", "é", "ab", "/a"]
MAX_KEYS = [1, 2, 3, 7, 1000]  # mostly small, so that most listings take several pages

key_text = st.text(alphabet=ALPHABET, min_size=1, max_size=12)
key_sets = st.lists(key_text, min_size=1, max_size=40, unique=True)


@dataclass(frozen=True)
class Query:
    prefix: str
    delimiter: str
    max_keys: int
    start_after: str  # "" for none; the v1 marker too


@dataclass(frozen=True)
class Page:
    keys: tuple[str, ...]
    prefixes: tuple[str, ...]
    truncated: bool
    key_count: int | None = None
    next_marker: str | None = None


def query_for(keys: list[str]) -> st.SearchStrategy[Query]:
    """Prefixes and start-after points near the keys (some matching nothing)."""
    anchor = st.one_of(st.sampled_from(sorted(keys)), key_text)
    cut = st.tuples(anchor, st.integers(0, 12)).map(lambda t: t[0][: t[1]])
    return st.builds(
        Query,
        prefix=st.one_of(st.just(""), cut),
        delimiter=st.sampled_from(DELIMITERS),
        max_keys=st.one_of(st.sampled_from(MAX_KEYS[:2]), st.sampled_from(MAX_KEYS)),
        start_after=st.one_of(st.just(""), cut),
    )


def inside_common_prefix(q: Query) -> bool:
    """Whether start-after lies strictly inside a common prefix: the case not compared (see above)."""
    if not q.delimiter or not q.start_after.startswith(q.prefix):
        return False
    cut = q.start_after.find(q.delimiter, len(q.prefix))
    return cut >= 0 and q.start_after != q.start_after[: cut + len(q.delimiter)]


def _params(bucket: str, q: Query) -> dict[str, Any]:
    params: dict[str, Any] = {"Bucket": bucket, "MaxKeys": q.max_keys}
    if q.prefix:
        params["Prefix"] = q.prefix
    if q.delimiter:
        params["Delimiter"] = q.delimiter
    return params


def _page(r: dict[str, Any], **extra: Any) -> Page:
    keys = tuple(o["Key"] for o in r.get("Contents", []))
    prefixes = tuple(p["Prefix"] for p in r.get("CommonPrefixes", []))
    return Page(keys, prefixes, r["IsTruncated"], **extra)


def pages_v2(client: BaseClient, bucket: str, q: Query, limit: int) -> list[Page]:
    params = _params(bucket, q)
    if q.start_after:
        params["StartAfter"] = q.start_after
    pages: list[Page] = []
    for _ in range(limit):
        r = client.list_objects_v2(**params)
        pages.append(_page(r, key_count=r["KeyCount"]))
        assert ("NextContinuationToken" in r) == r["IsTruncated"], r
        if not r["IsTruncated"]:
            return pages
        params.pop("StartAfter", None)
        params["ContinuationToken"] = r["NextContinuationToken"]
    raise AssertionError(f"still truncated after {limit} pages: {pages}")


def pages_v1(client: BaseClient, bucket: str, q: Query, limit: int) -> list[Page]:
    params = _params(bucket, q)
    if q.start_after:
        params["Marker"] = q.start_after
    pages: list[Page] = []
    for _ in range(limit):
        r = client.list_objects(**params)
        page = _page(r, next_marker=r.get("NextMarker"))
        pages.append(page)
        if not r["IsTruncated"]:
            return pages
        # "If the response does not include the NextMarker element and it is truncated, you can use
        # the value of the last Key element in the response as the marker parameter."
        params["Marker"] = page.next_marker or page.keys[-1]
    raise AssertionError(f"still truncated after {limit} pages: {pages}")


def without_markers(pages: list[Page]) -> list[Page]:
    return [Page(p.keys, p.prefixes, p.truncated) for p in pages]


def check_v2(pyblob: BaseClient, moto: BaseClient, bucket: str, q: Query, limit: int) -> list[Page]:
    ours = pages_v2(pyblob, bucket, q, limit)
    assert ours == pages_v2(moto, bucket, q, limit), q
    assert all(p.key_count == len(p.keys) + len(p.prefixes) for p in ours), q
    return ours


def check_v1(pyblob: BaseClient, moto: BaseClient, bucket: str, q: Query, limit: int, v2: list[Page]) -> None:
    ours = pages_v1(pyblob, bucket, q, limit)
    if not q.delimiter:
        assert [Page(p.keys, (), p.truncated) for p in pages_v1(moto, bucket, q, limit)] == ours, q
        return
    assert without_markers(ours) == without_markers(v2), q
    for page in ours:
        last = max(page.keys + page.prefixes, key=str.encode) if page.truncated else None
        assert page.next_marker == last, (q, page)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=key_sets, data=st.data())
def test_listing_pages_match_moto(s3: BaseClient, moto: BaseClient, keys: list[str], data: st.DataObject) -> None:
    bucket = unique_bucket_name("oracle")
    for client in (s3, moto):
        client.create_bucket(Bucket=bucket)
        for key in keys:
            client.put_object(Bucket=bucket, Key=key, Body=b"")
    limit = len(keys) + 2  # every page holds at least one entry
    for q in data.draw(st.lists(query_for(keys).filter(lambda q: not inside_common_prefix(q)), min_size=2, max_size=6)):
        v2 = check_v2(s3, moto, bucket, q, limit)
        check_v1(s3, moto, bucket, q, limit, v2)
