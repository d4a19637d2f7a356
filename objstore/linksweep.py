"""Expiring short links: the background sweep, `pyblob gc`, and the REST API's delete_all.

A spent link (`links.is_spent`) already answers LinkExpired; sweeping it deletes the object that
was uploaded only to back it (giving the bytes back to the quota) and keeps the row as a tombstone,
so the id goes on answering 410 Gone instead of 404 and is never issued again. Work happens in
batches of short write transactions so uploads and downloads are never held up for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .links import is_spent
from .records import LinkRecord

if TYPE_CHECKING:
    from .store import Store

BATCH = 200


@dataclass
class LinkSweepReport:
    links_expired: int = 0
    objects_deleted: int = 0


def sweep_links(store: Store, now: float, stop: Callable[[], bool] = lambda: False) -> LinkSweepReport:
    """Tombstone every spent link and delete the objects they owned."""
    report = LinkSweepReport()
    idle = store.config.link_idle_seconds
    after = b""
    while not stop():
        due, after = _scan(store, after, lambda link: not link.expired and not link.revoked and is_spent(link, now, idle))
        for link_id in due:
            _expire(store, link_id, now, report)
        if not after:
            break
    return report


def _scan(store: Store, after: bytes, wanted: Callable[[LinkRecord], bool]) -> tuple[list[str], bytes]:
    """Up to BATCH wanted link ids after key `after`, and the key to go on from (b"" at the end)."""
    found: list[str] = []
    last = b""
    with store.db.read() as r:
        cursor = r.cursor("links")
        positioned = cursor.set_range(after + b"\0") if after else cursor.first()
        for _ in range(BATCH * 10):  # bounded read transactions, however few links are due
            if not positioned:
                return found, b""
            last = bytes(cursor.key())
            if wanted(LinkRecord.decode(bytes(cursor.value()))):
                found.append(last.decode())
                if len(found) >= BATCH:
                    break
            positioned = cursor.next()
    return found, last


def _expire(store: Store, link_id: str, now: float, report: LinkSweepReport) -> None:
    idle = store.config.link_idle_seconds
    with store.db.write() as w:
        raw = w.get("links", link_id.encode())
        if raw is None:
            return
        link = LinkRecord.decode(raw)
        if link.expired or link.revoked or not is_spent(link, now, idle):
            return  # downloaded (or revoked) since the scan
        if link.owns_object and store.links.drop_object(w, link):
            report.objects_deleted += 1
        store.links.unindex(w, link)
        link.expired = True
        w.put("links", link_id.encode(), link.encode())
        report.links_expired += 1


def delete_links(store: Store, owner: str, only_spent: bool) -> int:
    """Delete `owner`'s links (all, or only the spent ones) and the objects they own."""
    now, idle, deleted = store.clock(), store.config.link_idle_seconds, 0
    before: str | None = None
    while True:
        page = store.links.list(owner, before=before)
        doomed = [link for link in page.links if not only_spent or is_spent(link, now, idle)]
        for start in range(0, len(doomed), BATCH):
            with store.db.write() as w:
                for link in doomed[start : start + BATCH]:
                    if w.get("links", link.id.encode()) is not None:
                        store.links.drop(w, link)
                        deleted += 1
        if page.next_cursor is None:
            return deleted
        before = page.next_cursor
