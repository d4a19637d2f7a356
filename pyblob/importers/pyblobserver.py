"""`pyblob import pyblobserver`: a pyBlobServer installation moved in, with every link still working.

pyBlobServer (github.com/deadlyedge/pyBlobServer) keeps a Tortoise ORM database, SQLite by default
at `<BASE_FOLDER>/blobserver.db`, with the tables of its models `UsersInfo` (`usersinfo`: user,
token, counters) and `FileInfo` (`fileinfo`: file_id, user_id, name, type, size, times, downloads),
and each file at `<BASE_FOLDER>/<user>/<file_id>`.

Each user becomes a pyblob user with the same bearer token (kept as its hash, as every token); each
file becomes an object in the user's upload bucket and a short link with the same id, name, type,
creation time and download count, so `/s/<id>` (and `?output=download`, `?output=html`) answers
every embed already published. Files go in one at a time, each in its own transaction with its
link: a second run skips what is there, so an interrupted import is resumed by running it again.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from objstore import Store
from objstore.accounts import USER_NAME, Counters
from objstore.links.links import is_valid_id

from .tally import DedupTally

READ_BLOCK = 1024 * 1024
Progress = Callable[[str, int, int], None]


@dataclass
class OldUser:
    name: str
    token: str
    created: float
    uploads: int
    bytes_uploaded: int
    downloads: int
    bytes_served: int
    last_upload: float | None
    last_download: float | None


@dataclass
class OldFile:
    file_id: str
    owner: str
    name: str
    content_type: str
    size: int
    uploaded: float
    downloads: int
    last_download: float | None


@dataclass
class ImportReport(DedupTally):
    users_created: int = 0
    users_present: int = 0
    files_imported: int = 0
    files_present: int = 0
    problems: list[str] = field(default_factory=list)


def when(text: str | None) -> float | None:
    """A Tortoise datetime as SQLite holds it ('2024-05-01 10:00:00.123456+00:00'); naive is UTC."""
    if not text:
        return None
    moment = datetime.fromisoformat(str(text))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def read_database(database: Path) -> tuple[list[OldUser], list[OldFile]]:
    if not database.is_file():
        raise FileNotFoundError(f"no pyBlobServer database at {database} (give --database)")
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        users = [
            OldUser(
                row[0], row[1] or "", when(row[2]) or 0.0, row[3], row[4], row[5], row[6], when(row[7]), when(row[8])
            )
            for row in db.execute(
                "SELECT user, token, created_at, total_upload_times, total_upload_byte, total_download_times, "
                "total_download_byte, last_upload_at, last_download_at FROM usersinfo"
            )
        ]
        files = [
            OldFile(row[0], row[1], row[2] or row[0], row[3] or "", row[4], when(row[5]) or 0.0, row[6], when(row[7]))
            for row in db.execute(
                "SELECT file_id, user_id, file_name, file_type, file_size, upload_at, download_times, last_download_at "
                "FROM fileinfo ORDER BY upload_at"
            )
        ]
    return users, files


def files_on_disk(source: Path, users: list[OldUser]) -> Iterator[tuple[str, str]]:
    """(user, file id) of every regular file in a user's folder."""
    for user in users:
        folder = source / user.name
        if folder.is_dir():
            for entry in os.scandir(folder):
                if entry.is_file(follow_symlinks=False):
                    yield user.name, entry.name


class PyBlobServerImport:
    def __init__(
        self,
        store: Store,
        source: Path,
        database: Path | None = None,
        dry_run: bool = False,
        include_orphans: bool = False,
        progress: Progress | None = None,
    ):
        self.store = store
        self.source = source
        self.database = database or source / "blobserver.db"
        self.dry_run = dry_run
        self.include_orphans = include_orphans
        self.progress = progress or (lambda phase, done, total: None)
        self.report = ImportReport()

    def run(self) -> ImportReport:
        users, files = read_database(self.database)
        known = self.import_users(users)
        rows = {(f.owner, f.file_id) for f in files}
        orphans = [pair for pair in files_on_disk(self.source, users) if pair not in rows]
        for owner, file_id in orphans:
            note = "imported" if self.include_orphans else "not imported (--include-orphans takes it)"
            self.report.problems.append(f"{owner}/{file_id} is on disk without a database row: {note}")
        todo = [f for f in files if f.owner in known]
        if self.include_orphans:
            todo += [OldFile(i, owner, i, "", -1, 0.0, 0, None) for owner, i in orphans if owner in known]
        before = self.store.storage_totals().physical_bytes
        for done, old in enumerate(todo, 1):
            self.import_file(old)
            self.progress("files", done, len(todo))
        self.report.physical_added = self.store.storage_totals().physical_bytes - before
        if not self.dry_run:
            for user in users:
                if user.name in known:
                    counters = Counters(
                        user.uploads,
                        user.bytes_uploaded,
                        user.last_upload,
                        user.downloads,
                        user.bytes_served,
                        user.last_download,
                    )
                    self.store.accounts.set_counters(user.name, counters)
        return self.report

    def import_users(self, users: list[OldUser]) -> set[str]:
        known: set[str] = set()
        existing = {u.name for u in self.store.accounts.list_users()} if self.dry_run else set()
        for user in users:
            if not USER_NAME.match(user.name):
                self.report.problems.append(f"user {user.name!r} is not a valid pyblob user name: not imported")
                continue
            known.add(user.name)
            if self.dry_run:
                present = user.name in existing
                self.report.users_present += present
                self.report.users_created += not present
                continue
            created, token_kept = self.store.accounts.import_user(user.name, user.token, user.created)
            self.report.users_created += created
            self.report.users_present += not created
            if not token_kept:
                self.report.problems.append(f"user {user.name}: the token is missing or another user's: not kept")
        return known

    def import_file(self, old: OldFile) -> None:
        path = self.source / old.owner / old.file_id
        if not is_valid_id(old.file_id):
            self.report.problems.append(f"{old.owner}/{old.file_id}: the id cannot be a link id: not imported")
            return
        if self.store.links.exists(old.file_id):
            self.report.files_present += 1
            return
        if not path.is_file():
            self.report.problems.append(f"{old.owner}/{old.file_id} ({old.name}) is in the database but not on disk")
            return
        size = path.stat().st_size
        if old.size >= 0 and size != old.size:
            self.report.problems.append(
                f"{old.owner}/{old.file_id}: {size} bytes on disk, {old.size} in the database: imported as on disk"
            )
        self.report.files_imported += 1
        self.report.bytes_imported += size
        self.report.bytes_inline += size if size <= self.store.config.inline_max else 0
        if self.dry_run:
            return
        # Its idle time (PYBLOB_LINK_IDLE_DAYS) starts with the import, not with its last download there.
        fields: dict[str, object] = {
            "downloads": old.downloads,
            "last_download": old.last_download,
            "imported": self.store.clock(),
        }
        if old.uploaded:
            fields["created"] = old.uploaded
        upload = self.store.uploads.open(
            old.owner, old.name, old.content_type or None, size_hint=size, link_id=old.file_id, link_fields=fields
        )
        with upload, open(path, "rb") as source:
            while block := source.read(READ_BLOCK):
                upload.write(block)
            upload.commit()
