"""Expiring short links: the background sweep, `pyblob gc`, and the REST API's delete_all.

A spent link (`links.is_spent`) already answers LinkExpired; sweeping it deletes the object that
was uploaded only to back it (giving the bytes back to the quota) and keeps the row as a tombstone,
so the id goes on answering 410 Gone instead of 404 and is never issued again. Work happens in
batches of short write transactions so uploads and downloads are never held up for long.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ..meta import ReadTxn, WriteTxn
from ..records import LinkRecord
from .links import Links, find, is_spent, put, rows_after

BATCH = 200
SCAN = BATCH * 10  # links read per read transaction, however few are due


@dataclass
class LinkSweepReport:
    links_expired: int = 0
    objects_deleted: int = 0


def sweep_links(links: Links, now: float, stop: Callable[[], bool] = lambda: False) -> LinkSweepReport:
    """Tombstone every spent link and delete the objects they owned."""
    report = LinkSweepReport()
    idle = links.idle_seconds
    after = ""
    while not stop():
        rows = links.meta.read(partial(_rows_after, after))
        due = [link.id for link in rows if not link.expired and not link.revoked and is_spent(link, now, idle)]
        for start in range(0, len(due), BATCH):
            links.meta.transact(partial(_expire, links, due[start : start + BATCH], now, report))
        if len(rows) < SCAN:
            break
        after = rows[-1].id
    return report


def _expire(links: Links, link_ids: list[str], now: float, report: LinkSweepReport, w: WriteTxn) -> None:
    expired, deleted = 0, 0
    for link_id in link_ids:
        link = find(w, link_id)
        if link is None or link.expired or link.revoked or not is_spent(link, now, links.idle_seconds):
            continue  # downloaded (or revoked) since the scan
        if link.owns_object and links.drop_object(w, link):
            deleted += 1
        links.unindex(w, link)
        link.expired = True
        put(w, link)
        expired += 1
    w.on_commit(lambda: _count(report, expired, deleted))


def _rows_after(after: str, r: ReadTxn) -> list[LinkRecord]:
    return rows_after(r, after, SCAN)


def _count(report: LinkSweepReport, expired: int, deleted: int) -> None:
    report.links_expired += expired
    report.objects_deleted += deleted


def delete_links(links: Links, owner: str, only_spent: bool) -> int:
    """Delete `owner`'s links (all, or only the spent ones) and the objects they own."""
    now, deleted = links.clock(), 0
    for page in links.all_owned_by(owner):
        doomed = [link for link in page.links if not only_spent or is_spent(link, now, links.idle_seconds)]
        for start in range(0, len(doomed), BATCH):
            deleted += links.meta.transact(partial(_drop, links, doomed[start : start + BATCH]))
    return deleted


def _drop(links: Links, doomed: list[LinkRecord], w: WriteTxn) -> int:
    dropped = 0
    for link in doomed:
        if find(w, link.id) is not None:
            links.drop(w, link)
            dropped += 1
    return dropped
