"""`pyblob import pyblobserver` on a pyBlobServer data dir made the way its code makes one, then
a real pyblob serving it: every old `/s/<id>` answers with the same bytes, the old tokens list the
same files, and the counters carried over.

pyBlobServer (Tortoise ORM, `generate_schemas()` on SQLite) keeps `blobserver.db` with the tables
`usersinfo` and `fileinfo` below, datetimes as ISO text, and each file at `<folder>/<user>/<file_id>`.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from processes import RunPyblob, StartServer

SCHEMA = """
CREATE TABLE "usersinfo" (
    "user" VARCHAR(255) NOT NULL PRIMARY KEY,
    "token" VARCHAR(255) NOT NULL,
    "total_size" INT NOT NULL DEFAULT 0,
    "total_upload_times" INT NOT NULL DEFAULT 0,
    "total_upload_byte" INT NOT NULL DEFAULT 0,
    "total_download_times" INT NOT NULL DEFAULT 0,
    "total_download_byte" INT NOT NULL DEFAULT 0,
    "created_at" TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_upload_at" TIMESTAMP,
    "last_download_at" TIMESTAMP
);
CREATE INDEX "idx_usersinfo_token" ON "usersinfo" ("token");
CREATE TABLE "fileinfo" (
    "file_id" VARCHAR(255) NOT NULL PRIMARY KEY,
    "file_name" VARCHAR(255) NOT NULL,
    "file_type" VARCHAR(255) NOT NULL DEFAULT '',
    "file_size" INT NOT NULL,
    "upload_at" TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "download_times" INT NOT NULL DEFAULT 0,
    "last_download_at" TIMESTAMP,
    "user_id" VARCHAR(255) NOT NULL REFERENCES "usersinfo" ("user") ON DELETE CASCADE
);
"""
PHOTO = hashlib.sha256(b"photo").digest() * 8192  # 256 KiB: chunk files, shared by its copy


@dataclass
class Old:
    source: Path
    tokens: dict[str, str]
    files: dict[str, tuple[str, str, bytes]]  # file id -> (owner, name, bytes) of what is on disk and listed


def old_install(root: Path) -> Old:
    source = root / "uploads"
    source.mkdir()
    tokens = {name: str(uuid.uuid4()) for name in ("alice", "bob", "carol")}
    listed = {
        "AbCdEfGh": ("alice", "holiday.jpg", "image/jpeg", PHOTO),
        "ZzYyXxWw": ("alice", "holiday copy.jpg", "image/jpeg", PHOTO),  # the same bytes again
        "Mn23pqRS": ("carol", "résumé 履歴書.txt", "text/plain", "こんにちは, pyblob".encode()),
    }
    with sqlite3.connect(source / "blobserver.db") as db:
        db.executescript(SCHEMA)
        db.executemany(
            'INSERT INTO "usersinfo" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            [
                ("alice", tokens["alice"], 524288, 3, 600000, 7, 1800000, "2024-03-01 09:00:00.000000+00:00",
                 "2024-05-02 10:00:00.500000+00:00", "2024-06-01 08:30:00.000000+00:00"),
                ("bob", tokens["bob"], 0, 0, 0, 0, 0, "2024-03-02 09:00:00+00:00", None, None),  # no files
                ("carol", tokens["carol"], 20, 2, 40, 1, 20, "2024-04-01 12:00:00", "2024-04-02 12:00:00", None),
            ],
        )  # fmt: skip
        rows = [
            (file_id, name, kind, len(data), "2024-05-02 10:00:00+00:00", 4, "2024-06-01 08:30:00+00:00", owner)
            for file_id, (owner, name, kind, data) in listed.items()
        ]
        rows.append(("GoneGone", "lost.bin", "application/octet-stream", 10, "2024-05-03 10:00:00", 0, None, "alice"))
        rows.append(("Shrunk22", "notes.txt", "text/plain", 999, "2024-05-04 10:00:00", 0, None, "carol"))
        db.executemany('INSERT INTO "fileinfo" VALUES (?, ?, ?, ?, ?, ?, ?, ?)', rows)
    for file_id, (owner, _, _, data) in listed.items():
        (source / owner).mkdir(exist_ok=True)
        (source / owner / file_id).write_bytes(data)
    (source / "carol" / "Shrunk22").write_bytes(b"shorter than its row says")
    (source / "alice" / "Orphan77").write_bytes(b"on disk, in no row")
    files = {file_id: (owner, name, data) for file_id, (owner, name, _, data) in listed.items()}
    files["Shrunk22"] = ("carol", "notes.txt", b"shorter than its row says")
    return Old(source, tokens, files)


@pytest.fixture
def old(tmp_path: Path) -> Old:
    return old_install(tmp_path)


def test_an_import_keeps_every_link_token_and_counter(
    old: Old, run_pyblob: RunPyblob, start_server: StartServer
) -> None:
    result = run_pyblob("import", "pyblobserver", str(old.source))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "alice/GoneGone (lost.bin) is in the database but not on disk" in out
    assert "alice/Orphan77 is on disk without a database row: not imported" in out
    assert "carol/Shrunk22: 25 bytes on disk, 999 in the database: imported as on disk" in out
    assert "users created:        3" in out and "files imported:       4" in out
    assert f"bytes saved by dedup: {len(PHOTO)}" in out  # the copy of the photo took no new chunk

    again = run_pyblob("import", "pyblobserver", str(old.source))
    assert again.returncode == 0 and "files imported:       0" in again.stdout
    assert "files already there:  4" in again.stdout and "users already there:  3" in again.stdout

    server = start_server()
    for file_id, (_, _, data) in old.files.items():
        served = httpx.get(f"{server.url}/s/{file_id}")
        assert served.status_code == 200 and served.content == data, file_id
        download = httpx.get(f"{server.url}/s/{file_id}", params={"output": "download"})
        assert download.content == data and "attachment" in download.headers["content-disposition"]
        assert httpx.get(f"{server.url}/s/{file_id}", params={"output": "html"}).status_code == 200
    assert httpx.get(f"{server.url}/s/GoneGone").status_code == 404

    def listed(user: str) -> dict[str, dict[str, object]]:
        answer = httpx.get(f"{server.url}/list", headers={"authorization": f"Bearer {old.tokens[user]}"})
        assert answer.status_code == 200, answer.text
        return {f["file_id"]: f for f in answer.json()}

    alice = listed("alice")
    assert set(alice) == {"AbCdEfGh", "ZzYyXxWw"} and listed("bob") == {}
    assert alice["AbCdEfGh"]["file_name"] == "holiday.jpg" and alice["AbCdEfGh"]["file_type"] == "image/jpeg"
    assert alice["AbCdEfGh"]["file_size"] == len(PHOTO)
    assert alice["AbCdEfGh"]["download_times"] == 4 + 2  # carried over, plus the two downloads above (not the page)
    assert str(alice["AbCdEfGh"]["upload_at"]).startswith("2024-05-02T10:00:00")
    assert set(listed("carol")) == {"Mn23pqRS", "Shrunk22"}
    me = httpx.get(f"{server.url}/user/me", headers={"authorization": f"Bearer {old.tokens['alice']}"}).json()
    assert (me["total_upload_times"], me["total_upload_byte"]) == (3, 600000)
    assert me["total_download_times"] >= 7 and me["total_download_byte"] >= 1800000


def test_a_dry_run_changes_nothing_and_orphans_come_in_when_asked(
    old: Old, run_pyblob: RunPyblob, data_dir: Path
) -> None:
    dry = run_pyblob("import", "pyblobserver", str(old.source), "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "files imported:       4" in dry.stdout and "nothing changed" in dry.stdout
    assert run_pyblob("user", "list", "--json").stdout.strip() in ("[]", "")
    orphans = run_pyblob("import", "pyblobserver", str(old.source), "--include-orphans")
    assert orphans.returncode == 0 and "files imported:       5" in orphans.stdout
    assert "Orphan77 is on disk without a database row: imported" in orphans.stdout


def test_a_database_that_is_not_there_is_a_usage_error(run_pyblob: RunPyblob, tmp_path: Path) -> None:
    result = run_pyblob("import", "pyblobserver", str(tmp_path))
    assert result.returncode == 2 and "no pyBlobServer database" in result.stderr
    other = run_pyblob("import", "pyblobserver", str(tmp_path), "--database", "postgres://db/blobs")
    assert other.returncode == 2 and "only SQLite" in other.stderr
