"""Every setting of a pyblob deployment, declared once: type, default and help.

Read from `PYBLOB_*` environment variables and a `.env` file in the working directory (the
environment wins). The README's settings table is generated from this class (`settings_table`).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from objstore import S3ChunkSettings, StoreConfig
from objstore.errors import SealingKeyError
from objstore.sealing import parse_sealing_key
from objstore.sizes import format_size, parse_size

__all__ = [
    "Settings",
    "Size",
    "links_host",
    "load_settings",
    "parse_size",
    "proxy_networks",
    "settings_table",
    "store_clock",
    "store_config",
]

ENV_PREFIX = "PYBLOB_"

# A byte count that may be written as `10MiB`, `1G`, ... in the environment or `.env`.
Size = Annotated[int, BeforeValidator(parse_size), Field(ge=0)]


class Settings(BaseSettings):
    # An empty variable (`PYBLOB_ADMIN_ACCESS_KEY=` in a compose file) means "not set", not "empty".
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", env_ignore_empty=True, extra="ignore"
    )

    data_dir: Path = Field(default=Path("./data"), description="Directory holding the metadata (LMDB) and the chunks.")
    metadata_url: str = Field(
        default="lmdb:",
        pattern=r"^(lmdb:|postgres(ql)?://.+)$",
        description="Where the metadata lives: `lmdb:` (in the data dir) or a PostgreSQL database that several "
        "pyblob nodes share, e.g. `postgresql://pyblob@db1,db2,db3/pyblob?target_session_attrs=read-write` "
        "(the password from `~/.pgpass` or `PGPASSWORD` rather than the URL). Backups: `pg_dump`, not "
        "`pyblob snapshot`.",
    )
    chunk_store: str = Field(
        default="local",
        pattern=r"^(local|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?)$",
        description="Where the chunks live: `local` (the data dir's `chunks/`) or `s3://bucket/prefix` on an "
        "S3-compatible object store that several pyblob nodes share (SeaweedFS, Ceph RGW, MinIO, Garage, AWS); "
        "the bucket is made if missing.",
    )
    chunk_store_endpoint: str = Field(
        default="",
        description="URL of that object store's S3 API, e.g. `http://10.0.0.5:8333`. Empty: AWS S3.",
    )
    chunk_store_region: str = Field(default="us-east-1", description="Region to sign the chunk store's requests for.")
    chunk_store_access_key: str | None = Field(
        default=None,
        description="Access key id for the chunk store (with the secret). Unset: boto3's own chain "
        "(`AWS_ACCESS_KEY_ID`, `~/.aws`, an instance role).",
    )
    chunk_store_secret_key: str | None = Field(
        default=None, description="Secret key for the chunk store (with the access key); never logged."
    )
    sealing_key_file: Path | None = Field(
        default=None,
        description="File holding the key that seals the S3 secret keys at rest (32 bytes in base64, "
        "`openssl rand -base64 32`), outside the data dir; see Secrets at rest. Unset: stored as they are.",
    )
    sealing_key: str | None = Field(
        default=None, description="The sealing key itself, instead of a file (base64); never logged."
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP server listens on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port the HTTP server listens on.")
    workers: int = Field(
        default=1, ge=1, description="Number of server worker processes (each opens the data dir itself)."
    )
    head_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a client has to send a request's line and headers, counted from its first byte "
        "(or from the connection's opening): a slow or silent client is then disconnected. "
        "nginx's `client_header_timeout` is 60 s.",
    )
    body_idle_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a request body may stall between two reads before the connection is closed and "
        "the upload dropped (not counted while the server itself holds reading back). "
        "nginx's `client_body_timeout` is 60 s.",
    )
    send_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a response may wait on a client that takes none of its bytes before the "
        "connection is dropped. nginx's `send_timeout` is 60 s.",
    )
    tls_certfile: Path | None = Field(
        default=None,
        description="PEM certificate (chain) to serve HTTPS with; unset: plain HTTP (put TLS in front instead).",
    )
    tls_keyfile: Path | None = Field(
        default=None, description="PEM private key of `PYBLOB_TLS_CERTFILE`, unless that file holds the key too."
    )
    public_url: str = Field(
        default="",
        description="Base URL clients reach the server at, for the links the server hands out. "
        "Empty: `http://<host>:<port>` (`https` with a TLS certificate; `localhost` for a wildcard host).",
    )
    links_url: str = Field(
        default="",
        description="Base URL of short links on a hostname of their own (`https://dl.example.com`), so no user "
        "content served by S3 shares an origin with them. Set: the links handed out use it, `/s/` is served "
        "only on its host (elsewhere it redirects there), and that host serves nothing else but `/health`. "
        "Empty: links use `PYBLOB_PUBLIC_URL`'s host, with S3.",
    )
    link_cache_max_age: int = Field(
        default=300,
        ge=0,
        description="Seconds shared caches may keep what a short link serves (`Cache-Control: max-age`); "
        "never past the link's expiry, and links with a download limit are never cached.",
    )
    presign_v2_max_seconds: int = Field(
        default=7 * 86400,
        ge=0,
        description="Longest a SigV2 presigned URL may stay valid, from now to its `Expires` (0 = no limit, as AWS); "
        "SigV4 URLs have S3's own limit of 7 days.",
    )
    region: str = Field(
        default="us-east-1",
        description="S3 region name reported for buckets (signatures naming any region are accepted).",
    )
    domain: str = Field(
        default="",
        description="Domain for virtual-hosted-style S3 requests (`<bucket>.<domain>`); "
        "empty: path-style only (always available).",
    )
    max_object_size: Size = Field(
        default=0,
        description="Default per-object size limit for new users, on every upload path (0 = unlimited; S3's own "
        "5 TiB still holds; `pyblob quota set USER SIZE --max-object-size SIZE` changes one user's). "
        "The first admin has none.",
    )
    default_quota: Size = Field(
        default=0,
        description="Default storage quota for new users, counting every version of every object (0 = unlimited; "
        "`pyblob quota set USER SIZE` changes one user's). The first admin has none.",
    )
    upload_max_file_size: Size = Field(
        default=0,
        description="Largest file the REST API, tus and WebSocket uploads take, from anyone (0 = no limit of its "
        "own; each user's per-object limit still holds). pyBlobServer's `FILE_SIZE_LIMIT_MB=10` is `10MiB` here.",
    )
    tus_max_segments: int = Field(
        default=StoreConfig.resumable_max_segments,
        ge=1,
        description="Most segments one unfinished tus upload may be kept in: each PATCH request makes one, and a "
        "long PATCH one per 64 MiB or 10 s. A PATCH past it is refused (400) and the upload takes no more bytes. "
        "The default is above what tus clients send (TUSKit's 500 KiB PATCHes reach it at 97 GiB).",
    )
    link_id_length: int = Field(
        default=8, ge=6, le=32, description="Characters in a new short link id (31-letter unambiguous alphabet)."
    )
    link_idle_days: float = Field(
        default=90.0,
        ge=0,
        description="A short link not downloaded for this many days (counted from its creation if never) "
        "expires, and a file uploaded for it is deleted; 0: never.",
    )
    link_sweep_interval_seconds: float = Field(
        default=300.0,
        ge=0,
        description="How often each server deletes expired short links and the files uploaded for them; "
        "0: never in the background (`pyblob gc` does it too).",
    )
    gc_grace_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How long an unreferenced chunk stays on disk before `pyblob gc` may remove it.",
    )
    upload_max_age_seconds: float = Field(
        default=7 * 86400.0,
        gt=0,
        description="Multipart uploads started longer ago than this are aborted by `pyblob gc`.",
    )
    lifecycle_interval_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How often each server applies the buckets' lifecycle rules (expiry, aborting old uploads); "
        "0: never in the background (`pyblob gc` applies them too).",
    )
    scrub_interval_seconds: float = Field(
        default=30 * 86400.0,
        ge=0,
        description="How long after the last scrub pass ended the server starts the next one in the background "
        "(reading every chunk back to find and quarantine any that changed on disk; a pass cut short resumes); "
        "0: never in the background (`pyblob scrub` does it on demand).",
    )
    scrub_rate: Size = Field(
        default=10 * 1024 * 1024,
        description="Bytes a second a scrub reads at most, in the background and by default for `pyblob scrub` "
        "(0: as fast as the disk goes). At 10MiB a pass over 1 TiB takes about 29 hours.",
    )
    clock_offset_seconds: float = Field(
        default=0.0,
        description="For tests: seconds added to the clock the store uses (lifecycle, gc, timestamps). Leave at 0.",
    )
    admin_user: str = Field(
        default="admin", description="Name of the user created on the first start of an empty data dir."
    )
    admin_access_key: str | None = Field(
        default=None, description="Access key id to give the first admin instead of a generated one (with the secret)."
    )
    admin_secret_key: str | None = Field(
        default=None, description="Secret key to give the first admin instead of a generated one (with the access key)."
    )
    ratelimit_links_ip_rate: float = Field(
        default=20.0,
        ge=0,
        description="Short links (`/s/...`): requests per second one client address may sustain "
        "(0 = unlimited); see Rate limits.",
    )
    ratelimit_links_ip_burst: float = Field(
        default=100.0,
        ge=1,
        description="Short links: requests one client address may make at once, above the rate.",
    )
    ratelimit_rest_ip_rate: float = Field(
        default=10.0,
        ge=0,
        description="REST API (uploads, WebSocket, `/api`, ...): requests per second per client "
        "address (0 = unlimited).",
    )
    ratelimit_rest_ip_burst: float = Field(
        default=100.0,
        ge=1,
        description="REST API: requests one client address may make at once, above the rate.",
    )
    ratelimit_rest_user_rate: float = Field(
        default=10.0,
        ge=0,
        description="REST API: requests per second per authenticated user (0 = unlimited).",
    )
    ratelimit_rest_user_burst: float = Field(
        default=100.0,
        ge=1,
        description="REST API: requests one user may make at once, above the rate.",
    )
    ratelimit_s3_ip_rate: float = Field(
        default=0.0,
        ge=0,
        description="S3 API: requests per second per client address, signed or not "
        "(0 = unlimited: parallel multipart clients behind one address are normal).",
    )
    ratelimit_s3_ip_burst: float = Field(
        default=1000.0,
        ge=1,
        description="S3 API: requests one client address may make at once, above the rate.",
    )
    ratelimit_s3_key_rate: float = Field(
        default=0.0,
        ge=0,
        description="S3 API: requests per second per access key (0 = unlimited: sync jobs and pages of presigned "
        "URLs send thousands a second, and AWS allows 3,500 writes and 5,500 reads per second per prefix).",
    )
    ratelimit_s3_key_burst: float = Field(
        default=1000.0,
        ge=1,
        description="S3 API: requests one access key may make at once, above the rate.",
    )
    ratelimit_s3_failed_auth_rate: float = Field(
        default=0.2,
        ge=0,
        description="S3 API: failed authentications (unknown key, wrong signature, tampered presigned URL, POST "
        "policy or chunk signature) per second one client address may sustain; once its burst is spent, every S3 "
        "request of that address is answered 503 `SlowDown` until a token is back (0 = off). One every 5 seconds "
        "lets a mistyped secret be fixed and retried at once yet holds a guesser to 17,280 tries a day; "
        "successful requests take nothing, so no working client ever meets it.",
    )
    ratelimit_s3_failed_auth_burst: float = Field(
        default=40.0,
        ge=1,
        description="S3 API: failed authentications one client address may make at once: room for a client with a "
        "wrong secret and its retries, or a few users behind one NAT, before the address is slowed down.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or CIDR networks of reverse proxies whose `X-Forwarded-For` "
        "(the right-most address in it not listed here is the client) and `X-Forwarded-Proto` are believed; "
        "empty: both are ignored, from loopback too.",
    )
    durable: bool = Field(default=True, description="fsync data and metadata before acknowledging writes.")
    min_free_bytes: Size = Field(
        default=64 * 1024 * 1024,
        description="Uploads are refused (507 `StorageFull`) while the data dir's disk has less than this free, so "
        "that deletes, which need a little room to commit, still work on a full disk; the data dir also keeps a "
        "1 MiB `reserve` file, freed for them if something else fills the disk (0: neither, uploads may fill it "
        "to the last byte). Deleting objects frees room once `pyblob gc` has removed their chunks.",
    )
    lmdb_map_size: Size = Field(
        default=1024**4,
        description="Size the LMDB metadata map starts with (address space, not disk: the file grows as it is used). "
        "A full map grows on its own, doubling, up to `PYBLOB_LMDB_MAP_MAX_SIZE`.",
    )
    lmdb_map_max_size: Size = Field(
        default=0,
        description="Largest the LMDB metadata map may grow to; once it is full, writes are refused with 507 "
        "`StorageFull` (0: it grows as long as the machine can map it).",
    )
    access_log: bool = Field(
        default=True,
        description=(
            "Log every request on standard error, one line each in uvicorn's format (client, request line "
            "with presigned URLs' signatures and credentials redacted, status); about 5-10% of the CPU of a "
            "small S3 GET (docs/benchmarks.md, Serving)."
        ),
    )
    metrics_token: str | None = Field(
        default=None,
        description="Bearer token of Prometheus scrapes: `GET /metrics` with `Authorization: Bearer <token>` "
        "answers the metrics (requests, latency, bytes, refusals, connections, storage and dedup, background "
        "jobs), summed over the worker processes. Unset: no metrics, nothing measured.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`text`: the access log line above. `json`: one JSON object per request instead, with time, "
        "request id (the one in `x-amz-request-id` and REST error bodies), client, method, path (redacted), "
        "surface, S3 operation, user and access key, bucket, key, status, bytes in and out, duration.",
    )

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        if (self.admin_access_key is None) != (self.admin_secret_key is None):
            raise ValueError("set both PYBLOB_ADMIN_ACCESS_KEY and PYBLOB_ADMIN_SECRET_KEY, or neither")
        if (self.chunk_store_access_key is None) != (self.chunk_store_secret_key is None):
            raise ValueError("set both PYBLOB_CHUNK_STORE_ACCESS_KEY and PYBLOB_CHUNK_STORE_SECRET_KEY, or neither")
        if self.sealing_key is not None and self.sealing_key_file is not None:
            raise ValueError("set PYBLOB_SEALING_KEY or PYBLOB_SEALING_KEY_FILE, not both")
        if self.tls_keyfile is not None and self.tls_certfile is None:
            raise ValueError("PYBLOB_TLS_KEYFILE needs PYBLOB_TLS_CERTFILE")
        proxy_networks(self.trusted_proxies)
        if not self.public_url:
            host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host
            host = f"[{host}]" if ":" in host else host
            scheme = "https" if self.tls_certfile else "http"
            self.public_url = f"{scheme}://{host}:{self.port}"
        self.public_url = self.public_url.rstrip("/")
        self.links_url = self.links_url.rstrip("/")
        if self.links_url and links_host(self.links_url) in ("", links_host(self.public_url)):
            raise ValueError("PYBLOB_LINKS_URL must be an http(s) URL on a host other than PYBLOB_PUBLIC_URL's")
        return self


def links_host(url: str) -> str:
    """The lower-case hostname of an http(s) URL without a path; "" for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.path not in ("", "/") or parts.query:
        return ""
    return (parts.hostname or "").lower()


def load_settings(**overrides: Any) -> Settings:
    """Settings from env and `.env`, with the CLI's options (those not None) taking precedence."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def proxy_networks(spec: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`PYBLOB_TRUSTED_PROXIES` parsed: addresses (one-address networks) and CIDR networks."""
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError(f"PYBLOB_TRUSTED_PROXIES: {exc}") from None


def store_clock(settings: Settings) -> Callable[[], float]:
    """The store's clock: the real time, shifted by `clock_offset_seconds` (0 outside tests)."""
    offset = settings.clock_offset_seconds
    return time.time if not offset else (lambda: time.time() + offset)


def store_config(settings: Settings) -> StoreConfig:
    return StoreConfig(
        gc_grace_seconds=settings.gc_grace_seconds,
        upload_max_age_seconds=settings.upload_max_age_seconds,
        durable=settings.durable,
        min_free_bytes=settings.min_free_bytes,
        map_size=settings.lmdb_map_size,
        map_max_size=settings.lmdb_map_max_size,
        default_quota=settings.default_quota,
        default_max_object_size=settings.max_object_size,
        upload_max_file_size=settings.upload_max_file_size,
        resumable_max_segments=settings.tus_max_segments,
        link_id_length=settings.link_id_length,
        link_idle_seconds=settings.link_idle_days * 86400.0,
        sealing_key=sealing_key(settings),
        metadata_url=settings.metadata_url,
        chunk_store=_chunk_store(settings),
    )


def sealing_key(settings: Settings) -> bytes | None:
    """The key that seals the S3 secret keys, from PYBLOB_SEALING_KEY or the file PYBLOB_SEALING_KEY_FILE
    names; a file inside the data dir is refused: a key kept beside what it seals protects nothing."""
    if settings.sealing_key is not None:
        return parse_sealing_key(settings.sealing_key, "PYBLOB_SEALING_KEY")
    path = settings.sealing_key_file
    if path is None:
        return None
    if path.resolve().is_relative_to(settings.data_dir.resolve()):
        raise SealingKeyError(f"PYBLOB_SEALING_KEY_FILE: {path} is inside the data dir; keep the key elsewhere")
    try:
        text = path.read_text()
    except OSError as e:
        raise SealingKeyError(f"PYBLOB_SEALING_KEY_FILE: cannot read {path}: {e.strerror}") from None
    return parse_sealing_key(text, f"PYBLOB_SEALING_KEY_FILE ({path})")


def _chunk_store(settings: Settings) -> S3ChunkSettings | None:
    if settings.chunk_store == "local":
        return None
    return S3ChunkSettings(
        url=settings.chunk_store,
        endpoint=settings.chunk_store_endpoint,
        region=settings.chunk_store_region,
        access_key=settings.chunk_store_access_key or "",
        secret_key=settings.chunk_store_secret_key or "",
    )


def _shown_default(name: str) -> str:
    field = Settings.model_fields[name]
    value = field.default
    if value is None or value == "":
        return "(unset)"
    if any(isinstance(m, BeforeValidator) for m in field.metadata):
        shown = format_size(value)
    elif isinstance(value, Path) and not value.is_absolute():
        shown = f"./{value}"
    elif isinstance(value, bool):
        shown = str(value).lower()
    elif isinstance(value, float) and value.is_integer():
        shown = str(int(value))
    else:
        shown = str(value)
    return f"`{shown}`"


def settings_table() -> str:
    """The Markdown table of every setting, as the README shows it."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {_shown_default(name)} | {field.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())  # `python -m pyblob.settings`: the README's table
