"""`pyblob import s3`: the buckets of another S3-compatible store copied in, verified, deduplicated.

Each bucket comes in under the same name, owned by one pyblob user, with every object's metadata,
content type, standard headers and tags; a versioned bucket with its versions and delete markers in
their order. Objects go through the engine like any upload, so identical content is stored once.

Every object is checked before it becomes visible: a plain ETag is the MD5 of the bytes; a
multipart ETag (`<md5 of the parts' MD5s>-N`) is rebuilt by copying the object part by part
(GetObject with partNumber) into a multipart upload with the same boundaries, so the copy keeps the
source's ETag; a full-object checksum the source gives is computed again and compared. A copy that
does not match is dropped and reported, and the command exits non-zero.

Resumable by running again: an object whose ETag and size are here already is skipped, and a
versioned key continues after the versions already copied (each commit is atomic, so a crash leaves
the copied versions a prefix of the source's).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
)

from objstore import Store
from objstore.errors import NoSuchBucket, NoSuchKey, StoreError
from objstore.records import ObjectRecord, UploadRecord
from s3api.checksums import DEFAULT_ALGORITHM

from . import s3source
from .s3source import Attributes, SourceVersion
from .tally import DedupTally

READ_BLOCK = 1024 * 1024
ATTEMPTS = 3  # per object: botocore retries requests, not a body cut off or corrupted on its way
MD5_ETAG = re.compile(r"[0-9a-f]{32}")
Progress = Callable[[str, int, int], None]
RETRIED = (HTTPClientError, IncompleteReadError, ConnectionError, FlexibleChecksumError)


class Mismatch(Exception):
    """The bytes read differ from what the source says the object is."""


@dataclass
class S3ImportReport(DedupTally):
    buckets_created: int = 0
    buckets_present: int = 0
    objects_listed: int = 0  # versions and delete markers included
    bytes_listed: int = 0
    objects_imported: int = 0
    objects_present: int = 0
    delete_markers: int = 0
    verified_by_etag: int = 0
    verified_by_checksum: int = 0
    verified_by_size_only: int = 0  # neither an MD5 ETag nor a checksum to compare with
    failed: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SourceBucket:
    name: str
    versioning: str  # "Enabled", "Suspended" or ""


class S3Import:
    def __init__(
        self,
        store: Store,
        client: BaseClient,
        owner: str,
        buckets: list[str] | None = None,
        prefix: str = "",
        jobs: int = 4,
        dry_run: bool = False,
        progress: Progress | None = None,
    ):
        self.store = store
        self.client = client
        self.owner = owner
        self.buckets = buckets
        self.prefix = prefix
        self.jobs = jobs
        self.dry_run = dry_run
        self.progress = progress or (lambda phase, done, total: None)
        self.report = S3ImportReport()
        self.lock = threading.Lock()
        self.bytes_done = 0

    def run(self) -> S3ImportReport:
        """Lists the source twice: once for the totals (the progress bar's ETA), once to copy."""
        names = self.buckets or s3source.bucket_names(self.client)
        sources = [SourceBucket(name, s3source.versioning(self.client, name)) for name in names]
        for source in sources:
            for history in s3source.histories(self.client, source.name, self.prefix, bool(source.versioning)):
                self.report.objects_listed += len(history)
                self.report.bytes_listed += sum(v.size for v in history)
        if self.dry_run:
            return self.report
        before = self.store.storage_totals().physical_bytes
        self.progress("bytes", 0, self.report.bytes_listed)
        in_flight = threading.BoundedSemaphore(self.jobs * 4)  # listed keys waiting: bounded memory
        prepared = [source for source in sources if self.prepare(source)]
        with ThreadPoolExecutor(self.jobs, thread_name_prefix="import") as pool:
            for source in prepared:
                for history in s3source.histories(self.client, source.name, self.prefix, bool(source.versioning)):
                    in_flight.acquire()
                    pool.submit(self.import_history, source.name, history).add_done_callback(
                        lambda _: in_flight.release()
                    )
        for source in prepared:
            if source.versioning == "Suspended":
                self.store.set_bucket_versioning(source.name, "Suspended")
        self.report.physical_added = self.store.storage_totals().physical_bytes - before
        return self.report

    # buckets ---------------------------------------------------------------------------------
    def prepare(self, source: SourceBucket) -> bool:
        """The destination bucket, made for the owner if missing; False (and a problem) if it cannot be."""
        try:
            bucket = self.store.get_bucket(source.name)
        except NoSuchBucket:
            try:
                self.store.create_bucket(self.owner, source.name)
            except StoreError as e:
                self.problem(f"bucket {source.name}: cannot be made here ({e}): not imported")
                return False
            self.report.buckets_created += 1
        else:
            if bucket.owner != self.owner:
                self.problem(f"bucket {source.name} exists here and belongs to another user: not imported")
                return False
            self.report.buckets_present += 1
        if source.versioning:
            # Suspended too, while copying: every old version must land as a version of its own.
            self.store.set_bucket_versioning(source.name, "Enabled")
        return True

    # one key ---------------------------------------------------------------------------------
    def import_history(self, bucket: str, history: list[SourceVersion]) -> None:
        """The key's versions not yet here, oldest first; a failure stops this key, not the others."""
        key = history[0].key
        try:
            here = self.versions_here(bucket, key, versioned=history[0].version_id is not None)
            if len(here) > len(history) or any(not same(h, s) for h, s in zip(here, history, strict=False)):
                raise Mismatch("its versions here are not the source's: left as they are")
            self.count(objects_present=len(here))
            for version in history[len(here) :]:
                self.copy_with_retries(bucket, version)
        except (Mismatch, StoreError, ClientError, BotoCoreError) as e:
            self.count(failed=1)
            self.problem(f"{bucket}/{key}: {describe(e)}")
        except Exception as e:  # a bug: reported with the key, and the import goes on with the others
            self.count(failed=1)
            self.problem(f"{bucket}/{key}: unexpected {type(e).__name__}: {e}")

    def versions_here(self, bucket: str, key: str, versioned: bool) -> list[ObjectRecord]:
        """What the destination holds of `key`, oldest first (the current object alone, unversioned)."""
        if not versioned:
            try:
                return [self.store.head_object(bucket, key)]
            except NoSuchKey:
                return []
        found: list[ObjectRecord] = []
        key_marker = version_marker = ""
        while True:
            page = self.store.list_object_versions(bucket, key, "", key_marker, version_marker)
            mine = [v for v in page.versions if v.key == key]
            found += mine
            if not page.truncated or len(mine) < len(page.versions):
                return found[::-1]
            key_marker, version_marker = page.next_key or "", page.next_version or ""

    def copy_with_retries(self, bucket: str, version: SourceVersion) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self.copy(bucket, version)
                return
            except (Mismatch, *RETRIED):
                if attempt == ATTEMPTS:
                    raise

    def copy(self, bucket: str, version: SourceVersion) -> None:
        if version.delete_marker:
            self.store.delete_object(bucket, version.key)
            self.count(delete_markers=1)
            return
        get = {"Bucket": bucket, "Key": version.key, "IfMatch": f'"{version.etag}"'} | s3source.version_arg(version)
        if version.parts:
            first = self.client.head_object(**get, PartNumber=1)
            if int(first.get("PartsCount") or 0) == version.parts:
                self.copy_parts(bucket, version, get, first)
                return
            # The source does not serve parts: copied whole, checked by size (and checksum).
        self.copy_whole(bucket, version, self.client.get_object(**get))

    def copy_whole(self, bucket: str, version: SourceVersion, answer: dict[str, Any]) -> None:
        attrs = s3source.attributes(answer)
        algorithms = list(attrs.checksums) or [DEFAULT_ALGORITHM]
        with self.store.open_writer(bucket, version.key, algorithms, size_hint=version.size) as writer:
            self.stream(answer["Body"], writer.write)
            content = writer.finish()
            if content.size != version.size:
                raise Mismatch(f"{content.size} bytes read, {version.size} listed")
            check = verify(version, content.md5, content.checksums, attrs.checksums)
            writer.commit(attrs.content_type, attrs.headers, attrs.meta, tags=self.tags(bucket, version, attrs))
        inline = version.size if version.size <= self.store.config.inline_max else 0
        self.count(objects_imported=1, bytes_imported=version.size, bytes_inline=inline, **{check: 1})

    def copy_parts(self, bucket: str, version: SourceVersion, get: dict[str, Any], head: dict[str, Any]) -> None:
        """Part by part into a multipart upload with the source's boundaries: the same ETag, checked.
        An upload of the key left by an import that was killed goes on where it stopped: its parts
        of the right size are kept, and the ETag of the whole checks them with the others."""
        multipart = self.store.multipart
        upload = self.unfinished_upload(bucket, version.key)
        if upload is None:
            attrs = s3source.attributes(head)
            tags = self.tags(bucket, version, attrs)
            upload = multipart.create_upload(
                bucket, version.key, content_type=attrs.content_type, headers=attrs.headers, meta=attrs.meta, tags=tags
            )
        kept = {part.number: part for part in multipart.list_parts(upload.upload_id)}
        try:
            wanted: list[tuple[int, str]] = []
            size = 0
            for number in range(1, version.parts + 1):
                part = kept.get(number)
                if part is not None and part.size == self.part_size(get, number, head):
                    self.advance(part.size)
                else:
                    answer = self.client.get_object(**get, PartNumber=number)
                    with multipart.open_part_writer(upload.upload_id, number, size_hint=answer["ContentLength"]) as w:
                        self.stream(answer["Body"], w.write)
                        part = w.commit()
                wanted.append((number, part.etag))
                size += part.size
            etag = hashlib.md5(b"".join(bytes.fromhex(e) for _, e in wanted)).hexdigest() + f"-{len(wanted)}"
            if size != version.size or etag != version.etag:
                raise Mismatch(f"the parts read make {size} bytes with ETag {etag}; the source lists {version.etag}")
            multipart.complete_upload(upload.upload_id, wanted, min_part_size=0)
        except BaseException:
            multipart.abort_upload(upload.upload_id)
            raise
        self.count(objects_imported=1, bytes_imported=version.size, verified_by_etag=1)

    def part_size(self, get: dict[str, Any], number: int, head: dict[str, Any]) -> int:
        answer = head if number == 1 else self.client.head_object(**get, PartNumber=number)
        return int(answer["ContentLength"])

    def unfinished_upload(self, bucket: str, key: str) -> UploadRecord | None:
        """The newest multipart upload of `key` by the owner still open, if an earlier run left one."""
        mine = [u for u in self.store.multipart.list_uploads(bucket) if u.key == key and u.owner == self.owner]
        return max(mine, key=lambda u: u.created, default=None)

    def tags(self, bucket: str, version: SourceVersion, attrs: Attributes) -> dict[str, str]:
        return s3source.tags(self.client, bucket, version) if attrs.tag_count else {}

    def stream(self, body: Any, write: Callable[[bytes], None]) -> None:
        """The body into `write`, counted on the progress bar (and taken back off if it breaks)."""
        done = 0
        try:
            while block := body.read(READ_BLOCK):
                write(block)
                done += len(block)
                self.advance(len(block))
        except BaseException:
            self.advance(-done)
            raise
        finally:
            body.close()

    # counting --------------------------------------------------------------------------------
    def advance(self, n: int) -> None:
        with self.lock:
            self.bytes_done += n
            self.progress("bytes", self.bytes_done, self.report.bytes_listed)

    def count(self, **amounts: int) -> None:
        with self.lock:
            for name, n in amounts.items():
                setattr(self.report, name, getattr(self.report, name) + n)

    def problem(self, text: str) -> None:
        with self.lock:
            self.report.problems.append(text)


def same(here: ObjectRecord, source: SourceVersion) -> bool:
    if here.delete_marker or source.delete_marker:
        return here.delete_marker == source.delete_marker
    return here.etag == source.etag and here.size == source.size


def verify(version: SourceVersion, md5: str, computed: dict[str, str], given: dict[str, str]) -> str:
    """The report field of how the copy was checked; Mismatch if it differs from the source."""
    for algorithm, value in given.items():
        if computed.get(algorithm) != value:
            raise Mismatch(f"its {algorithm} is {computed.get(algorithm)}; the source gives {value}")
    if MD5_ETAG.fullmatch(version.etag):
        if md5 != version.etag:
            raise Mismatch(f"the bytes read have MD5 {md5}; the source's ETag is {version.etag}")
        return "verified_by_etag"
    return "verified_by_checksum" if given else "verified_by_size_only"


def describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        if info.get("Code") in ("PreconditionFailed", "412"):
            return "changed at the source while it was copied: run the import again"
        return f"the source answered {info.get('Code')}: {info.get('Message', '')}".rstrip(": ")
    if isinstance(error, FlexibleChecksumError):
        return f"the bytes read do not match the source's checksum ({error})"
    if isinstance(error, StoreError):
        return f"{error.code}: {error}"
    return str(error)
