"""Listing objects in S3 order with prefix, delimiter and a resume point; and listing versions.

A page reads the keys' latest versions (`versions.latest_rows`) from the first key that can match,
skips each common prefix with one seek, and stops after `max_keys` entries: the cost grows with
the page, not the bucket.
Delete markers are invisible to ListObjects, so a prefix under which only markers remain is not
a CommonPrefix; ListObjectVersions shows them, and each key's older versions after its latest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from . import versions
from .meta import ReadTxn
from .records import ObjectRecord


@dataclass
class Page:
    objects: list[ObjectRecord] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    # The last key or common prefix returned; pass it back as `after` to continue.
    last: str | None = None


def prefix_successor(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with `prefix` (UTF-8 has no 0xFF)."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


def _is_common_prefix(key: bytes, prefix: bytes, delimiter: bytes) -> bool:
    """Whether `key` is a CommonPrefix: prefix, then no delimiter until the one it ends with."""
    return (
        bool(key and delimiter)
        and key.startswith(prefix)
        and key.endswith(delimiter)
        and key.find(delimiter, len(prefix)) == len(key) - len(delimiter)
    )


def list_page(
    r: ReadTxn, bucket_id: int, prefix: str, delimiter: str, after: str, max_keys: int, inclusive: bool = False
) -> Page:
    """One page of ListObjects: keys > `after` (>= when `inclusive`) under `prefix`, rolled up at `delimiter`."""
    page = Page()
    bprefix, bdelim, bafter = prefix.encode(), delimiter.encode(), after.encode()
    start = max(bprefix, bafter if inclusive else bafter + b"\x00") if after else bprefix
    if not inclusive and _is_common_prefix(bafter, bprefix, bdelim):
        # `after` is a common prefix returned earlier: resume past every key under it.
        start = max(start, prefix_successor(bafter))
    while True:
        for raw_key, value in versions.latest_rows(r, bucket_id, start):
            if not raw_key.startswith(bprefix):
                return page
            if versions.is_marker_row(value):
                continue
            if len(page.objects) + len(page.prefixes) >= max_keys:
                page.truncated = True
                return page
            cut = raw_key.find(bdelim, len(bprefix)) if bdelim else -1
            if cut >= 0:
                common = raw_key[: cut + len(bdelim)]
                page.prefixes.append(common.decode())
                page.last = page.prefixes[-1]
                start = prefix_successor(common)
                break  # seek past the whole common prefix
            page.objects.append(ObjectRecord.decode(value))
            page.last = page.objects[-1].key
        else:
            return page


@dataclass
class VersionPage:
    versions: list[ObjectRecord] = field(default_factory=list)  # objects and delete markers, in S3 order
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    next_key: str | None = None  # NextKeyMarker: the last key or common prefix returned
    next_version: str | None = None  # NextVersionIdMarker: with a key, the last version returned

    @property
    def count(self) -> int:
        return len(self.versions) + len(self.prefixes)


def _start_after(key_marker: bytes, prefix: bytes, delimiter: bytes) -> bytes:
    """The first key a listing resumed after `key_marker` may return (past a whole common prefix)."""
    start = max(prefix, key_marker + b"\x00")
    if _is_common_prefix(key_marker, prefix, delimiter):
        start = max(start, prefix_successor(key_marker))
    return start


def list_versions_page(
    r: ReadTxn, bucket_id: int, prefix: str, delimiter: str, key_marker: str, version_marker: str, max_keys: int
) -> VersionPage:
    """One page of ListObjectVersions: keys in S3 order, each key's versions newest first.

    With only `key_marker`, the listing starts after that key (or common prefix); with a version
    marker too, it goes on with that key's versions older than the marker.
    """
    page = VersionPage()
    bprefix, bdelim, bmarker = prefix.encode(), delimiter.encode(), key_marker.encode()
    start = _start_after(bmarker, bprefix, bdelim) if key_marker else bprefix
    if key_marker and version_marker:
        start = max(bprefix, bmarker)
    while True:
        for raw_key, value in versions.latest_rows(r, bucket_id, start):
            if not raw_key.startswith(bprefix):
                return page
            cut = raw_key.find(bdelim, len(bprefix)) if bdelim else -1
            if cut >= 0:
                common = raw_key[: cut + len(bdelim)]
                if not _add(page, max_keys, common.decode()):
                    return page
                start = prefix_successor(common)
                break  # seek past the whole common prefix
            marker = version_marker if raw_key == bmarker else ""
            for version in _versions_of(r, bucket_id, raw_key, value, marker):
                if not _add(page, max_keys, version):
                    return page
        else:
            return page


def _versions_of(
    r: ReadTxn, bucket_id: int, raw_key: bytes, latest: bytes, after_version: str
) -> Iterator[ObjectRecord]:
    """The key's latest version then its older ones (newest first: falling `seq`); with
    `after_version`, only those older than it.

    A version id carries its `seq`, so the listing resumes in place even when that version was
    deleted since the last page (emptying a bucket page by page does just that). "null" carries
    none: its row's `seq` places it while it exists; once it is gone the key is listed whole again.
    """
    current = ObjectRecord.decode(latest)
    if not after_version:
        yield current
        yield from versions.noncurrent(r, bucket_id, raw_key)
        return
    bound = versions.seq_of(after_version)
    if bound is None:  # "null" is placed by its row; if that is gone since, list the key again
        null = versions.find(r, bucket_id, raw_key, versions.NULL)  # (repeating is safe, skipping is not)
        bound = null.seq if null is not None else current.seq + 1
    if current.seq < bound:
        yield current
    yield from versions.noncurrent(r, bucket_id, raw_key, below_seq=bound)


def _add(page: VersionPage, max_keys: int, item: ObjectRecord | str) -> bool:
    """Add a version or common prefix to the page; False (and truncated) when the page is full."""
    if page.count >= max_keys:
        page.truncated = True
        return False
    if isinstance(item, str):
        page.prefixes.append(item)
        page.next_key, page.next_version = item, None
    else:
        page.versions.append(item)
        page.next_key, page.next_version = item.key, item.version_id
    return True
