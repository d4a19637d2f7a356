"""`pyblob doctor`: a deployment checked from the outside, the way its clients will use it.

Each check makes real requests to the endpoint (through whatever proxy is in front) and ends in a
`Finding`: passed, failed with what was seen and how to fix it, or skipped for want of a credential.
Requests are signed here with SigV4 (`s3api.sigv4`) over the standard library's HTTP client, so
the doctor needs nothing a pyblob install does not have. Everything it creates (a bucket named
`pyblob-doctor-<random>`, its objects and a short link) is removed at the end.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import secrets
import socket
import ssl
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

from s3api import sigv4

TIMEOUT = 60.0
SKEW_WARN, SKEW_FAIL = 60.0, 15 * 60.0  # S3 refuses signatures more than 15 minutes off
CERT_WARN_DAYS = 14
PART = 8 * 1024 * 1024  # the multipart check sends 8 + 8 + 4 MiB, as aws-cli and boto3 cut 20 MiB
MULTIPART_SIZE = 20 * 1024 * 1024
ORIGIN = "https://doctor.pyblob.test"
HOST_FIX = (
    "the proxy in front must pass the Host header on unchanged, SigV4 signs it "
    "(nginx: `proxy_set_header Host $http_host;`, Caddy keeps it by default; see deploy/)"
)
BODY_FIX = (
    "let the proxy pass large bodies (nginx: `client_max_body_size 0;` and `proxy_request_buffering off;`; "
    "Caddy has no limit unless `request_body max_size` is set)"
)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def s3_error(self) -> tuple[str, dict[str, str]] | None:
        """The S3 error code and fields of an S3 XML error body; None for anything else (a proxy's page)."""
        try:
            root = ElementTree.fromstring(self.body)
        except ElementTree.ParseError:
            return None
        if root.tag != "Error":
            return None
        fields = {child.tag: child.text or "" for child in root}
        return fields.get("Code", ""), fields


@dataclass
class Finding:
    check: str
    ok: bool | None  # None: skipped
    detail: str
    fix: str = ""

    def lines(self) -> list[str]:
        word = "SKIP" if self.ok is None else "PASS" if self.ok else "FAIL"
        lines = [f"{word}  {self.check}: {self.detail}"]
        if self.fix:
            lines.append(f"      fix: {self.fix}")
        return lines


class Failed(Exception):
    """A check that cannot go on: its finding says why."""

    def __init__(self, detail: str, fix: str = ""):
        super().__init__(detail)
        self.detail, self.fix = detail, fix


@dataclass
class Endpoint:
    url: str
    access_key: str = ""
    secret_key: str = ""
    region: str = "us-east-1"
    scheme: str = field(init=False)
    netloc: str = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--endpoint must be an http:// or https:// URL, not {self.url!r}")
        self.scheme, self.netloc = parts.scheme, parts.netloc
        self.url = f"{self.scheme}://{self.netloc}"

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"", netloc: str = ""
    ) -> Answer:
        netloc = netloc or self.netloc
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = cls(netloc, timeout=TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def signed(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        payload: str | None = None,
        netloc: str = "",
    ) -> Answer:
        """A SigV4-signed request (header form); `path` unencoded, `payload` the x-amz-content-sha256 mode."""
        query = query or {}
        netloc = netloc or self.netloc
        now = datetime.now(UTC)
        amz_date, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        payload = payload or hashlib.sha256(body).hexdigest()
        all_headers = {k.lower(): v for k, v in (headers or {}).items()}
        all_headers.update({"host": netloc, "x-amz-date": amz_date, "x-amz-content-sha256": payload})
        signed_names = sorted(all_headers)
        uri = sigv4.uri_encode(path, keep_slash=True)
        canonical_query = sigv4.canonical_query(query.items())
        canonical = sigv4.canonical_request(method, uri, canonical_query, all_headers, signed_names, payload)
        scope = sigv4.scope(date, self.region)
        signature = sigv4.sign(
            sigv4.signing_key(self.secret_key, date, self.region), sigv4.string_to_sign(amz_date, scope, canonical)
        )
        all_headers["authorization"] = (
            f"{sigv4.ALGORITHM} Credential={self.access_key}/{scope}, "
            f"SignedHeaders={';'.join(signed_names)}, Signature={signature}"
        )
        target = uri + (f"?{canonical_query}" if canonical_query else "")
        return self.request(method, target, all_headers, body, netloc)

    def presigned_path(self, path: str, expires: int = 300) -> str:
        """A presigned GET of `path` (query-string SigV4), as a path with its query."""
        now = datetime.now(UTC)
        amz_date, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        scope = sigv4.scope(date, self.region)
        query = {
            "X-Amz-Algorithm": sigv4.ALGORITHM,
            "X-Amz-Credential": f"{self.access_key}/{scope}",
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": str(expires),
            "X-Amz-SignedHeaders": "host",
        }
        uri = sigv4.uri_encode(path, keep_slash=True)
        canonical_query = sigv4.canonical_query(query.items())
        canonical = sigv4.canonical_request(
            "GET", uri, canonical_query, {"host": self.netloc}, ["host"], "UNSIGNED-PAYLOAD"
        )
        key = sigv4.signing_key(self.secret_key, date, self.region)
        signature = sigv4.sign(key, sigv4.string_to_sign(amz_date, scope, canonical))
        return f"{uri}?{canonical_query}&X-Amz-Signature={signature}"


class Doctor:
    def __init__(self, endpoint: Endpoint, token: str = "", domain: str = ""):
        self.endpoint = endpoint
        self.token = token
        self.domain = domain
        self.bucket = f"pyblob-doctor-{secrets.token_hex(4)}"
        self.findings: list[Finding] = []
        self.bucket_made = False
        self.link_id = ""
        self.date_header = ""

    def run(self, report: Callable[[Finding], None] = lambda finding: None) -> list[Finding]:
        checks: list[tuple[str, Callable[[], str], bool]] = [
            ("reachable", self.check_health, True),
            ("clock", self.check_clock, False),
            ("tls", self.check_tls, False),
            ("sigv4", self.check_sigv4, True),
            ("path-style", self.check_put_get, True),
            ("virtual-hosted", self.check_virtual_host, False),
            ("presigned url", self.check_presigned, False),
            ("aws-chunked upload", self.check_aws_chunked, False),
            ("multipart upload", self.check_multipart, False),
            ("cors preflight", self.check_cors, False),
            ("short link", self.check_short_link, False),
        ]
        try:
            for name, check, needed in checks:
                finding = self.attempt(name, check)
                self.findings.append(finding)
                report(finding)
                if needed and finding.ok is False:
                    break  # the checks after this one need it
        finally:
            self.clean_up()
        return self.findings

    def attempt(self, name: str, check: Callable[[], str]) -> Finding:
        try:
            return Finding(name, True, check())
        except Skipped as skip:
            return Finding(name, None, str(skip))
        except Failed as failure:
            return Finding(name, False, failure.detail, failure.fix)
        except ssl.SSLError as exc:
            return Finding(name, False, f"TLS failed: {exc}", "serve a certificate the client trusts")
        except (OSError, http.client.HTTPException) as exc:
            return Finding(name, False, f"request failed: {exc}", "is the server (and the proxy) running?")

    # checks ---------------------------------------------------------------------------------
    def check_health(self) -> str:
        answer = self.endpoint.request("GET", "/health")
        self.date_header = answer.headers.get("date", "")
        try:
            healthy = answer.status == 200 and json.loads(answer.body) == {"status": "ok"}
        except ValueError:
            healthy = False
        if not healthy:
            raise Failed(
                f'GET /health answered {answer.status}, not pyblob\'s {{"status": "ok"}}',
                "point the proxy (or --endpoint) at pyblob's port",
            )
        return f"{self.endpoint.url}/health answers"

    def check_clock(self) -> str:
        if not self.date_header:
            raise Skipped("the server sent no Date header")
        skew = time.time() - parsedate_to_datetime(self.date_header).timestamp()
        if abs(skew) > SKEW_FAIL:
            raise Failed(f"this machine and the server differ by {skew:+.0f} s", "run NTP (chrony, systemd-timesyncd)")
        if abs(skew) > SKEW_WARN:
            raise Failed(f"clocks differ by {skew:+.0f} s; S3 refuses beyond 900 s", "run NTP on both")
        return f"clocks agree within {abs(skew):.0f} s"

    def check_tls(self) -> str:
        host = urlsplit(self.endpoint.url).hostname or ""
        if self.endpoint.scheme == "http":
            if host in ("localhost", "127.0.0.1", "::1"):
                raise Skipped("plain HTTP on loopback")
            raise Failed(
                "plain HTTP: keys, tokens and files cross the network unencrypted",
                "put a TLS-terminating proxy in front (README: Deploy)",
            )
        port = urlsplit(self.endpoint.url).port or 443
        context = ssl.create_default_context()
        with (
            socket.create_connection((host, port), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            cert = tls.getpeercert() or {}
        expires = ssl.cert_time_to_seconds(str(cert.get("notAfter", "")))
        days = (expires - time.time()) / 86400
        if days < CERT_WARN_DAYS:
            raise Failed(f"the certificate expires in {days:.0f} days", "renew it (Caddy renews on its own)")
        return f"certificate valid, {days:.0f} days left"

    def need_keys(self) -> None:
        if not (self.endpoint.access_key and self.endpoint.secret_key):
            raise Skipped("no --access-key/--secret-key")

    def check_sigv4(self) -> str:
        self.need_keys()
        answer = self.endpoint.signed("PUT", f"/{self.bucket}")
        if answer.status != 200:
            raise self.explain(answer, "CreateBucket")
        self.bucket_made = True
        return f"signed requests work (made bucket {self.bucket})"

    def check_put_get(self) -> str:
        self.need_keys()
        body = b"pyblob doctor " * 100
        put = self.endpoint.signed("PUT", f"/{self.bucket}/plain.txt", body=body)
        if put.status != 200:
            raise self.explain(put, "PutObject")
        got = self.endpoint.signed("GET", f"/{self.bucket}/plain.txt")
        if got.status != 200 or got.body != body:
            raise self.explain(got, "GetObject") if got.status != 200 else Failed("the object came back different")
        return "PUT and GET of /bucket/key"

    def check_virtual_host(self) -> str:
        if not self.domain:
            raise Skipped("no --domain (PYBLOB_DOMAIN) given")
        self.need_keys()
        port = urlsplit(self.endpoint.url).port
        netloc = f"{self.bucket}.{self.domain}" + (f":{port}" if port else "")
        try:
            answer = self.endpoint.signed("GET", "/plain.txt", netloc=netloc)
        except OSError as exc:
            raise Failed(
                f"{netloc} cannot be reached ({exc})", f"add a wildcard DNS record *.{self.domain} for the server"
            ) from exc
        if answer.status != 200:
            raise self.explain(answer, "GetObject (virtual-hosted)")
        return f"GET of https://{self.bucket}.{self.domain}/plain.txt"

    def check_presigned(self) -> str:
        self.need_keys()
        answer = self.endpoint.request("GET", self.endpoint.presigned_path(f"/{self.bucket}/plain.txt"))
        if answer.status != 200:
            raise self.explain(answer, "presigned GET")
        return "a presigned GET works through the proxy"

    def check_aws_chunked(self) -> str:
        """What boto3 and aws-cli send by default: aws-chunked framing with a CRC32 trailer."""
        self.need_keys()
        data = secrets.token_bytes(256 * 1024)
        crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        framed = b"%x\r\n" % len(data) + data + b"\r\n0\r\nx-amz-checksum-crc32:" + crc.encode() + b"\r\n\r\n"
        headers = {
            "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "x-amz-trailer": "x-amz-checksum-crc32",
        }
        path = f"/{self.bucket}/chunked.bin"
        answer = self.endpoint.signed(
            "PUT", path, headers=headers, body=framed, payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        )
        if answer.status != 200:
            raise self.explain(answer, "aws-chunked PutObject")
        got = self.endpoint.signed("GET", path)
        if got.body != data:
            raise Failed("the aws-chunked upload came back different", "the proxy must not alter request bodies")
        return "an aws-chunked body with a checksum trailer is stored as sent"

    def check_multipart(self) -> str:
        self.need_keys()
        path = f"/{self.bucket}/multipart.bin"
        created = self.endpoint.signed("POST", path, {"uploads": ""})
        if created.status != 200:
            raise self.explain(created, "CreateMultipartUpload")
        upload_id = _xml_text(created.body, "UploadId")
        parts, sent = [], 0
        for number in range(1, 4):
            size = min(PART, MULTIPART_SIZE - sent)
            answer = self.endpoint.signed(
                "PUT", path, {"partNumber": str(number), "uploadId": upload_id}, body=b"\x00" * size
            )
            if answer.status != 200:
                self.endpoint.signed("DELETE", path, {"uploadId": upload_id})
                raise self.explain(answer, f"UploadPart of {size // (1024 * 1024)} MiB")
            parts.append((number, answer.headers.get("etag", "")))
            sent += size
        xml = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in parts)
        done = self.endpoint.signed(
            "POST",
            path,
            {"uploadId": upload_id},
            body=f"<CompleteMultipartUpload>{xml}</CompleteMultipartUpload>".encode(),
        )
        if done.status != 200 or b"<Error>" in done.body:
            raise self.explain(done, "CompleteMultipartUpload")
        head = self.endpoint.signed("HEAD", path)
        if head.headers.get("content-length") != str(MULTIPART_SIZE):
            raise Failed(f"the 20 MiB upload reads back as {head.headers.get('content-length')} bytes")
        return "20 MiB in 8 MiB parts, as aws-cli and boto3 send it"

    def check_cors(self) -> str:
        self.need_keys()
        rules = (
            "<CORSConfiguration><CORSRule><AllowedOrigin>" + ORIGIN + "</AllowedOrigin>"
            "<AllowedMethod>PUT</AllowedMethod><AllowedHeader>*</AllowedHeader></CORSRule></CORSConfiguration>"
        ).encode()
        md5 = base64.b64encode(hashlib.md5(rules).digest()).decode()
        put = self.endpoint.signed("PUT", f"/{self.bucket}", {"cors": ""}, {"content-md5": md5}, rules)
        if put.status != 200:
            raise self.explain(put, "PutBucketCors")
        preflight = self.endpoint.request(
            "OPTIONS",
            f"/{self.bucket}/plain.txt",
            {
                "origin": ORIGIN,
                "access-control-request-method": "PUT",
                "access-control-request-headers": "content-type",
            },
        )
        allowed = preflight.headers.get("access-control-allow-origin")
        if preflight.status != 200 or allowed != ORIGIN:
            raise Failed(
                f"the preflight got {preflight.status} with Access-Control-Allow-Origin {allowed!r}",
                "let OPTIONS requests and their CORS headers through the proxy to pyblob",
            )
        return "a browser's preflight is answered by pyblob"

    def check_short_link(self) -> str:
        if not self.token:
            raise Skipped("no --token")
        if not self.bucket_made:
            raise Skipped("needs the S3 checks (keys) to have an object to link")
        auth = {"authorization": f"Bearer {self.token}", "content-type": "application/json"}
        body = json.dumps({"bucket": self.bucket, "key": "plain.txt"}).encode()
        made = self.endpoint.request("POST", "/api/links", auth, body)
        if made.status != 201:
            raise Failed(
                f"POST /api/links answered {made.status}: {made.body[:200]!r}", "is the token the same user's?"
            )
        link = json.loads(made.body)
        self.link_id = link["id"]
        url = urlsplit(link["url"])
        served_by = self.endpoint if url.netloc == self.endpoint.netloc else Endpoint(f"{url.scheme}://{url.netloc}")
        ranged = served_by.request("GET", url.path, {"range": "bytes=0-9"})
        if ranged.status != 206 or ranged.body != b"pyblob doc":
            raise Failed(
                f"GET {link['url']} with a Range answered {ranged.status}", "check PYBLOB_PUBLIC_URL and the proxy"
            )
        if f"{url.scheme}://{url.netloc}" != self.endpoint.url:
            return (
                f"links are handed out as {url.scheme}://{url.netloc}/s/..., not {self.endpoint.url}: "
                "right if PYBLOB_LINKS_URL or PYBLOB_PUBLIC_URL names that host on purpose"
            )
        return "a short link serves a Range (206)"

    # how a failure is told ---------------------------------------------------------------------
    def explain(self, answer: Answer, what: str) -> Failed:
        error = answer.s3_error()
        if error is None:
            via = answer.headers.get("server", "something")
            if answer.status == 413:
                return Failed(f"{what}: {via} refused the body with 413 (not pyblob's answer)", BODY_FIX)
            return Failed(f"{what}: {answer.status} from {via}, not an S3 answer", "point the proxy at pyblob")
        code, fields = error
        if code == "SignatureDoesNotMatch":
            seen = _canonical_host(fields.get("CanonicalRequest", ""))
            if seen and seen != self.endpoint.netloc:
                return Failed(
                    f"{what}: the server saw Host {seen!r}, the client signed {self.endpoint.netloc!r}", HOST_FIX
                )
            return Failed(
                f"{what}: SignatureDoesNotMatch", "check --secret-key (and that no proxy rewrites the request)"
            )
        if code == "InvalidAccessKeyId":
            return Failed(f"{what}: the server knows no access key {self.endpoint.access_key!r}", "check --access-key")
        if code == "RequestTimeTooSkewed":
            return Failed(f"{what}: the clocks differ too much", "run NTP on both machines")
        return Failed(f"{what}: {answer.status} {code}: {fields.get('Message', '')}")

    def clean_up(self) -> None:
        """Remove what the checks made (best effort: a failure here is not a finding)."""
        try:
            if self.link_id:
                self.endpoint.request(
                    "DELETE", f"/api/links/{quote(self.link_id)}", {"authorization": f"Bearer {self.token}"}
                )
            if self.bucket_made:
                for key in ("plain.txt", "chunked.bin", "multipart.bin"):
                    self.endpoint.signed("DELETE", f"/{self.bucket}/{key}")
                self.endpoint.signed("DELETE", f"/{self.bucket}")
        except (OSError, http.client.HTTPException):
            pass


class Skipped(Exception):
    pass


def _xml_text(body: bytes, tag: str) -> str:
    root = ElementTree.fromstring(body)
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == tag:
            return element.text or ""
    raise Failed(f"no {tag} in the answer")


def _canonical_host(canonical: str) -> str:
    for line in canonical.split("\n"):
        if line.startswith("host:"):
            return line[5:]
    return ""
