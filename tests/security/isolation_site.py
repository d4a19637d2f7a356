"""The isolation matrix's world: one `pyblob serve`, its owner alice and its attacker mallory, and a
digest of everything the store keeps.

Alice's bucket has what every operation can aim at: an object with three versions, one whose current
version is a delete marker, tags, CORS, lifecycle rules, an in-progress multipart upload with a
part, a short link, a REST upload and a tus upload under way. Mallory has her own bucket and upload,
the destinations of cross-account copies. Dead credentials: a revoked access key of alice's, a
revoked API token and one rotated away.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import lmdb
from botocore.client import BaseClient
from isolation_requests import (
    Creds,
    capture_client,
    chunk_signatures,
    chunked_body,
    prepare,
    presigned,
    presigned_v2,
    send,
    streaming,
)
from processes import (
    Server,
    assert_no_secret_logged,
    clean_env,
    free_port,
    printed_secrets,
    user_s3_client,
    wait_healthy,
)

BUCKET = "alice-vault"
MALLORY_BUCKET = "mallory-box"
DOC, GONE, TAGGED, BIG = "doc.txt", "gone.txt", "tagged.txt", "big.bin"
MALLORY_KEY = "m.bin"
TUS = {"tus-resumable": "1.0.0"}
ORIGIN = "https://app.example"
PART_CHUNKS = [b"p" * 8192, b"p" * 100]
# Hundreds of requests from one address: the limits would answer 429 before the rules under test.
# S3_FAILED_AUTH too: the matrix sends ~1,000 deliberately failing requests (wrong secrets, revoked
# keys, tampered URLs and chunk signatures) from 127.0.0.1, and must see each one's own answer, not
# the SlowDown the limit gives an address past its few dozen failures (tests/server/test_failed_auth_limit.py).
NO_RATE_LIMITS = {
    f"PYBLOB_RATELIMIT_{name}_RATE": "0"
    for name in ("LINKS_IP", "REST_IP", "REST_USER", "S3_IP", "S3_KEY", "S3_FAILED_AUTH")
}
# No background job may write while the matrix runs: the digest must change only by a request.
SERVER_ENV = {**NO_RATE_LIMITS, "PYBLOB_LIFECYCLE_INTERVAL_SECONDS": "0"}
Digest = dict[str, dict[bytes, str]]  # table (or "chunk files") -> key -> SHA-256 of the value


@dataclass
class Site:
    """The running server and what the requests of the matrix name."""

    server: Server
    alice: Creds
    mallory: Creds
    revoked_key: Creds  # alice's, revoked with `pyblob key revoke`
    tokens: dict[str, str]  # alice, mallory, revoked (`pyblob token revoke`), rotated (POST /user/me/token)
    versions: dict[str, str] = field(default_factory=dict)  # v1, v2, v3 of DOC; marker: GONE's delete marker
    upload_id: str = ""  # alice's multipart upload of BIG, with part 1
    part_etag: str = ""
    mallory_upload_id: str = ""  # of MALLORY_KEY in MALLORY_BUCKET
    link_id: str = ""  # alice's short link to DOC
    file_id: str = ""  # alice's file uploaded through POST /upload
    tus_id: str = ""  # alice's tus upload, 16 of 64 bytes received

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def data_dir(self) -> Path:
        return self.server.log_dir.parent / "data"

    def alice_secrets(self) -> list[str]:
        """Strings of alice's that no answer to mallory may carry."""
        return [BUCKET, self.link_id, self.file_id, self.tus_id, self.upload_id, *self.versions.values()]


def cli_started(data_dir: Path, *commands: tuple[str, ...]) -> Callable[[], list[dict[str, str]]]:
    """`pyblob COMMAND --data-dir DATA_DIR` for each command, all started at once; a call waits for them
    and gives their JSON outputs."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pyblob", *command, "--data-dir", str(data_dir)],
            cwd=data_dir.parent,  # no .env of the checkout
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=clean_env(),
            text=True,
        )
        for command in commands
    ]

    def outputs() -> list[dict[str, str]]:
        done = [(proc, *proc.communicate(timeout=60)) for proc in procs]
        for proc, _, err in done:
            assert proc.returncode == 0, err
        return [json.loads(out) if out.lstrip().startswith("{") else {} for _, out, _ in done]

    return outputs


def cli(data_dir: Path, *commands: tuple[str, ...]) -> list[dict[str, str]]:
    return cli_started(data_dir, *commands)()


def creds(made: dict[str, str]) -> Creds:
    return Creds(made["user"], made["access_key"], made["secret_key"])


def start_server(root: Path, data_dir: Path) -> Server:
    port = free_port()
    log_dir = root / "server"
    log_dir.mkdir()
    argv = [sys.executable, "-m", "pyblob", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with open(log_dir / "stdout", "wb") as out, open(log_dir / "stderr", "wb") as err:
        proc = subprocess.Popen(
            [*argv, "--data-dir", str(data_dir)],
            cwd=root,
            env=clean_env(SERVER_ENV),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log_dir)
    try:
        wait_healthy(server)
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def running_site(root: Path) -> Iterator[Site]:
    """The server with alice's and mallory's data; stopped at the end, its logs checked for secrets.
    The `pyblob` commands run side by side, and beside the server's start, as they may."""
    data_dir = root / "data"
    made = cli(data_dir, ("user", "add", "alice", "--json"), ("user", "add", "mallory", "--json"))
    spare_key, rotated, revoked = cli(
        data_dir,
        ("key", "add", "alice", "--json"),
        ("token", "create", "alice", "--json"),
        ("token", "create", "alice", "--json"),
    )
    revoke = ("key", "revoke", spare_key["access_key"]), ("token", "revoke", "alice", revoked["token"])
    revoking = cli_started(data_dir, *revoke)
    secrets = {s for m in [*made, spare_key, rotated, revoked] for s in printed_secrets(json.dumps(m))}
    server = start_server(root, data_dir)
    try:
        revoking()
        tokens = {"alice": made[0]["token"], "mallory": made[1]["token"]}
        tokens |= {"rotated": rotated["token"], "revoked": revoked["token"]}
        site = Site(server, creds(made[0]), creds(made[1]), creds(spare_key), tokens)
        secrets.add(populate(site))
        yield site
    finally:
        server.stop()
    assert_no_secret_logged([server], secrets)


# alice's and mallory's data ----------------------------------------------------------------------
def populate(site: Site) -> str:
    """Alice's and mallory's data; the token that replaced the rotated one (a secret of the logs' check)."""
    alice = user_s3_client(site.url, vars(site.alice))
    mallory = user_s3_client(site.url, vars(site.mallory))
    try:
        fill_alice_bucket(site, alice)
        mallory.create_bucket(Bucket=MALLORY_BUCKET)
        site.mallory_upload_id = mallory.create_multipart_upload(Bucket=MALLORY_BUCKET, Key=MALLORY_KEY)["UploadId"]
    finally:
        alice.close()
        mallory.close()
    return fill_alice_rest(site)


def fill_alice_bucket(site: Site, s3: BaseClient) -> None:
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for n, body in enumerate((b"first", b"second", b"third" * 2000), start=1):  # v3 is past the inline size
        site.versions[f"v{n}"] = s3.put_object(Bucket=BUCKET, Key=DOC, Body=body)["VersionId"]
    s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": [{"Key": "owner", "Value": "alice"}]})
    rule = {"AllowedOrigins": [ORIGIN], "AllowedMethods": ["GET", "PUT"], "AllowedHeaders": ["*"]}
    s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [rule]})
    lifecycle = {"ID": "old", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 3650}}
    s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration={"Rules": [lifecycle]})
    site.upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=BIG)["UploadId"]
    fill_with_the_matrix_signers(site)
    site.versions["marker"] = s3.delete_object(Bucket=BUCKET, Key=GONE)["VersionId"]


def fill_with_the_matrix_signers(site: Site) -> None:
    """Three of alice's writes made as the matrix makes its requests, untampered: a SigV4 presigned URL
    (with a signed x-amz-* header), a SigV2 one and an aws-chunked part. That they succeed shows a
    refusal of the matrix comes from what a case changed, not from the way it signs."""
    capture = capture_client(site.url)
    try:
        tagged = prepare(capture, "put_object", {"Bucket": BUCKET, "Key": TAGGED, "Body": b"t", "Tagging": "team=blue"})
        gone = prepare(capture, "put_object", {"Bucket": BUCKET, "Key": GONE, "Body": b"deleted later"})
        part = {"Bucket": BUCKET, "Key": BIG, "UploadId": site.upload_id, "PartNumber": 1, "Body": b""}
        part_request = streaming(prepare(capture, "upload_part", part), site.alice, PART_CHUNKS)
    finally:
        capture.close()
    part_body = chunked_body(PART_CHUNKS, chunk_signatures(site.alice, part_request, PART_CHUNKS))
    with httpx.Client(timeout=30, trust_env=False) as http:
        for request in (presigned(tagged, site.alice), presigned_v2(gone, site.alice)):
            answer = send(http, request)
            assert answer.status == 200, answer.body
        answer = send(http, part_request.with_body(part_body))
        assert answer.status == 200, answer.body
        site.part_etag = answer.headers["etag"]


def fill_alice_rest(site: Site) -> str:
    with httpx.Client(base_url=site.url, timeout=30, trust_env=False) as http:
        auth = {"authorization": f"Bearer {site.tokens['alice']}"}
        made = http.post("/api/links", json={"bucket": BUCKET, "key": DOC}, headers=auth)
        assert made.status_code == 201, made.text
        site.link_id = made.json()["id"]
        uploaded = http.post("/upload", files={"file": ("note.txt", b"a note", "text/plain")}, headers=auth)
        assert uploaded.status_code == 200, uploaded.text
        site.file_id = uploaded.json()["file_id"]
        created = http.post("/upload_tus/", headers={**auth, **TUS, "upload-length": "64"})
        assert created.status_code == 201, created.text
        site.tus_id = created.headers["location"].rsplit("/", 1)[1]
        patch = {**auth, **TUS, "upload-offset": "0", "content-type": "application/offset+octet-stream"}
        patched = http.patch(f"/upload_tus/{site.tus_id}", content=b"t" * 16, headers=patch)
        assert patched.status_code == 204, patched.text
        rotated = http.post("/user/me/token", headers={"authorization": f"Bearer {site.tokens['rotated']}"})
        assert rotated.status_code == 200, rotated.text
        return str(rotated.json()["token"])


# the digest --------------------------------------------------------------------------------------
def metadata_digest(data_dir: Path) -> Digest:
    """Every row of every table of the metadata, read through a read-only LMDB environment (the server
    may run), and the names of the chunk files: what a request that changed anything would change."""
    tables: Digest = {}
    env = lmdb.open(str(data_dir / "meta"), readonly=True, lock=True, max_dbs=256)
    try:
        with env.begin() as txn:
            names = [bytes(name) for name, _ in txn.cursor()]
            for name in names:
                db = env.open_db(name, txn=txn, create=False)
                rows = txn.cursor(db=db)
                tables[name.decode()] = {bytes(k): hashlib.sha256(bytes(v)).hexdigest() for k, v in rows}
    finally:
        env.close()
    chunks = data_dir / "chunks"
    tables["chunk files"] = {str(p.relative_to(chunks)).encode(): "" for p in chunks.rglob("*") if p.is_file()}
    return tables


def digest_changes(before: Digest, after: Digest) -> list[str]:
    """What differs, table by table: rows added, removed, changed."""
    changes = []
    for table in sorted(before.keys() | after.keys()):
        old, new = before.get(table, {}), after.get(table, {})
        for key in sorted(old.keys() | new.keys()):
            if old.get(key) != new.get(key):
                kind = "added" if key not in old else "removed" if key not in new else "changed"
                changes.append(f"{table}: {kind} {key[:80]!r}")
    return changes
