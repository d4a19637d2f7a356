"""Hostile requests to a real `pyblob serve`, sent with httpx: a few hundred, drawn by hypothesis.

Credentials put together from hostile pieces, aws-chunked bodies with bad sizes, signatures and
trailers, XML bodies of every configuration, Range and conditional headers and listing options,
POST Object forms, tus and short-link requests. Every answer is below 500 (or S3's deliberate 501
NotImplemented) and every error is S3's XML `<Error>` with a `<Code>` (the JSON `{"detail"}` of the
REST, tus and link surfaces); afterwards the server answers /health and has logged no Traceback.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from fuzzing import budget, rarely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ports import free_port
from processes import Server, clean_env, serve_argv, wait_healthy
from test_fuzz_auth import HOSTILE, NUMBERS, hostile_requests
from test_fuzz_chunked import TRAILER_VALUES, encode, mutated
from test_fuzz_forms import NAMES, Part, policies
from test_fuzz_forms import encode as encode_form
from test_fuzz_http import CONDITIONS, range_headers
from test_fuzz_shortlinks import metadata_headers
from test_fuzz_xml import documents

from s3api import policy, sigv4
from s3api.auth import RequestView

pytestmark = pytest.mark.xdist_group("fuzz-server")  # one server for the module: its tests on one worker
REGION = "us-east-1"
BUCKET, OBJECT = "fuzz", "fuzz-object"
UNLIMITED = {  # no rate limit answers 429 before the request reaches what is being fuzzed
    "PYBLOB_RATELIMIT_LINKS_IP_RATE": "0",
    "PYBLOB_RATELIMIT_REST_IP_RATE": "0",
    "PYBLOB_RATELIMIT_REST_USER_RATE": "0",
    "PYBLOB_RATELIMIT_S3_FAILED_AUTH_RATE": "0",  # fuzzed signatures fail by the thousand from one address
    "PYBLOB_DURABLE": "false",
}


def campaign(examples: int) -> settings:
    """A budget of requests; the server is shared by every example, as intended. No deadline: each
    request has httpx's timeout, and a loaded machine's round trips say nothing about pyblob."""
    return budget(
        examples, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
    )


@dataclass
class Target:
    server: Server
    access_key: str
    secret_key: str
    token: str
    client: httpx.Client  # one for every request: making one costs more than a request (its TLS context)
    upload_id: str = ""


# Session-scoped, not module-scoped: xdist may run another module's tests between these, which would end
# a module's fixture and start a second server.
@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """`pyblob serve` on a data dir of its own, a user, a bucket with an object and a multipart upload."""
    root = tmp_path_factory.mktemp("fuzz-server")
    data, logs = root / "data", root / "logs"
    logs.mkdir()
    env = clean_env(UNLIMITED)
    made = subprocess.run(
        [sys.executable, "-m", "pyblob", "user", "add", "fuzz", "--json", "--data-dir", str(data)],
        cwd=root, env=env, capture_output=True, text=True, timeout=60, check=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    creds = json.loads(made.stdout)
    port = free_port()
    argv = serve_argv(port, data)
    with open(logs / "stdout", "wb") as out, open(logs / "stderr", "wb") as err:
        proc = subprocess.Popen(
            argv, cwd=root, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True
        )
    server = Server(proc, f"http://127.0.0.1:{port}", logs)
    try:
        wait_healthy(server)
        client = httpx.Client(base_url=server.url, timeout=10.0, trust_env=False)
        target = Target(server, creds["access_key"], creds["secret_key"], creds["token"], client)
        for method, path, query, body in (
            ("PUT", f"/{BUCKET}", "", b""),
            ("PUT", f"/{BUCKET}/{OBJECT}", "", b"0123456789"),
        ):
            assert send(target, method, path, query, body=body).status_code == 200
        created = send(target, "POST", f"/{BUCKET}/{OBJECT}", "uploads")
        target.upload_id = ET.fromstring(created.content).findtext("{*}UploadId") or ""
        yield target
        client.close()
    finally:
        server.stop()


def signed_headers(
    target: Target, method: str, path: str, query: str, headers: dict[str, str], body: bytes, payload: str | None
) -> tuple[dict[str, str], str]:
    """Headers signed by botocore's SigV4 signer, `payload` as x-amz-content-sha256 (else the body's
    hash), and the signature (the seed of an aws-chunked body's chain)."""
    url = target.server.url + path + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers=headers)

    class Signer(S3SigV4Auth):
        def payload(self, request: AWSRequest) -> str:
            return payload or super().payload(request)

    Signer(Credentials(target.access_key, target.secret_key), "s3", REGION).add_auth(request)
    out = {k: str(v) for k, v in request.headers.items()}
    return out, out["Authorization"].rsplit("Signature=", 1)[1]


def send(
    target: Target,
    method: str,
    path: str,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    payload: str | None = None,
) -> httpx.Response:
    signed, _ = signed_headers(target, method, path, query, headers or {}, body, payload)
    return target.client.request(method, path + (f"?{query}" if query else ""), headers=utf8(signed), content=body)


def wire(value: str) -> str:
    """A header value as a client can send it: without control characters (the HTTP parser refuses
    them before pyblob sees the request) or outer spaces; sent as UTF-8 (`utf8`)."""
    return "".join(c for c in value if c >= " " and c != "\x7f").strip(" \t")


def utf8(headers: dict[str, str]) -> dict[bytes, bytes]:
    return {name.encode(): value.encode() for name, value in headers.items()}


def check_s3(response: httpx.Response) -> None:
    """Below 500 (or 501 NotImplemented); an error is S3's XML <Error> with a Code."""
    status, method = response.status_code, response.request.method
    if status < 400:
        return
    code = None if method == "HEAD" else ET.fromstring(response.content).findtext("Code")
    assert status < 500 or (status == 501 and code in (None, "NotImplemented")), (
        f"{status} {code}: {response.text[:300]}"
    )
    if method != "HEAD":
        assert response.headers["content-type"].startswith("application/xml"), response.text[:300]
        assert code, response.text[:300]


def check_json(response: httpx.Response) -> None:
    """Below 500; an error is JSON with a `detail`."""
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:300]}"
    if status >= 400 and response.request.method != "HEAD":
        assert "detail" in response.json(), response.text[:300]


def check_either(response: httpx.Response) -> None:
    """A path that may belong to either surface (`/s/a%2Fb` is no link path: S3's bucket `s`)."""
    xml = response.headers.get("content-type", "").startswith("application/xml")
    check_s3(response) if xml else check_json(response)


def check_server(target: Target) -> None:
    assert target.client.get("/health").status_code == 200
    assert "Traceback" not in target.server.stderr, target.server.stderr[-3000:]


# --- campaigns ---------------------------------------------------------------------------------


@campaign(80)
@given(view=hostile_requests())
def test_hostile_credentials(target: Target, view: RequestView) -> None:
    headers = [(k.encode(), wire(v).encode()) for k, v in view.headers.items() if k != "host"]
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in view.query)
    url = view.raw_path.replace("/bucket/", f"/{BUCKET}/", 1) + (f"?{query}" if query else "")
    method = view.method if view.method in METHODS else "GET"
    check_s3(target.client.request(method, url, headers=headers))
    check_server(target)


# Methods the HTTP layer knows: it answers any other with its own plain-text 400 before pyblob sees it.
METHODS = ("GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH")
STREAMING = [
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
]


@st.composite
def chunked_uploads(draw: st.DrawFn) -> tuple[str, dict[str, str], list[bytes], dict[str, str] | None, bool]:
    mode = draw(st.sampled_from(STREAMING))
    chunks = draw(st.lists(st.binary(min_size=1, max_size=300), max_size=4))
    trailer = mode.endswith("TRAILER")
    trailers = (
        draw(
            st.dictionaries(
                st.sampled_from(["x-amz-checksum-crc32", "x-amz-checksum-sha256", "x-a"]), TRAILER_VALUES, max_size=2
            )
        )
        if trailer
        else None
    )
    headers = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(sum(map(len, chunks)))}
    if rarely(draw, 4):
        headers["x-amz-decoded-content-length"] = wire(draw(NUMBERS))
    if trailer:
        headers["x-amz-trailer"] = ",".join(trailers or {}) if not rarely(draw, 4) else wire(draw(HOSTILE))
    return mode, headers, chunks, trailers, draw(st.booleans())


@campaign(60)
@given(upload=chunked_uploads(), data=st.data())
def test_hostile_aws_chunked_bodies(
    target: Target, upload: tuple[str, dict[str, str], list[bytes], dict[str, str] | None, bool], data: st.DataObject
) -> None:
    mode, headers, chunks, trailers, change = upload
    path = f"/{BUCKET}/chunked"
    signed, seed = signed_headers(target, "PUT", path, "", headers, b"", mode)
    date = signed["X-Amz-Date"]
    key = sigv4.signing_key(target.secret_key, date[:8], REGION)
    body = encode(
        chunks, trailers, mode.startswith("STREAMING-AWS4"), seed, (key, date, sigv4.scope(date[:8], REGION))
    ).raw
    if change:
        body = data.draw(mutated(body))
    check_s3(target.client.put(path, headers=utf8(signed), content=body))
    check_server(target)


XML_REQUESTS = {  # root: (method, path, query)
    "Delete": ("POST", f"/{BUCKET}", "delete"),
    "CompleteMultipartUpload": ("POST", f"/{BUCKET}/{OBJECT}", "uploadId={upload}"),
    "CORSConfiguration": ("PUT", f"/{BUCKET}", "cors"),
    "LifecycleConfiguration": ("PUT", f"/{BUCKET}", "lifecycle"),
    "Tagging": ("PUT", f"/{BUCKET}/{OBJECT}", "tagging"),
    "VersioningConfiguration": ("PUT", f"/{BUCKET}", "versioning"),
    "CreateBucketConfiguration": ("PUT", "/fuzz-{n}", ""),
}


@campaign(80)
@given(document=documents(), n=st.integers(0, 10**6))
def test_hostile_xml_bodies(target: Target, document: tuple[str, bytes], n: int) -> None:
    root, body = document
    method, path, query = XML_REQUESTS[root]
    headers = {"content-md5": base64.b64encode(hashlib.md5(body).digest()).decode()}
    check_s3(send(target, method, path.format(n=n), query.format(upload=target.upload_id), headers, body))
    check_server(target)


LISTING_OPTIONS = st.dictionaries(
    st.sampled_from(
        [
            "max-keys",
            "prefix",
            "delimiter",
            "marker",
            "start-after",
            "continuation-token",
            "list-type",
            "encoding-type",
            "versions",
            "key-marker",
            "version-id-marker",
            "uploads",
            "max-uploads",
            "upload-id-marker",
            "fetch-owner",
        ]
    ),
    NUMBERS | HOSTILE | st.sampled_from(["2", "url", "x" * 2000, "é" * 600]),
    max_size=4,
)
OBJECT_OPTIONS = st.dictionaries(
    st.sampled_from(["versionId", "partNumber", "response-content-type", "response-content-disposition", "attributes"]),
    NUMBERS | HOSTILE | st.just("null"),
    max_size=2,
)


@campaign(50)
@given(
    range_header=st.none() | range_headers(),
    conditions=CONDITIONS,
    listing=LISTING_OPTIONS,
    options=OBJECT_OPTIONS,
    head=st.booleans(),
)
def test_hostile_ranges_conditions_and_options(
    target: Target,
    range_header: str | None,
    conditions: dict[str, str],
    listing: dict[str, str],
    options: dict[str, str],
    head: bool,
) -> None:
    headers = {k: wire(v) for k, v in conditions.items()}
    if range_header is not None:
        headers["range"] = wire(range_header)
    method = "HEAD" if head else "GET"
    query = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in options.items())
    check_s3(send(target, method, f"/{BUCKET}/{OBJECT}", query, headers))
    query = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in listing.items())
    check_s3(send(target, "GET", f"/{BUCKET}", query))
    check_server(target)


@st.composite
def post_forms(draw: st.DrawFn, target: Target) -> tuple[str, bytes]:
    """A POST Object form signed with the user's key (so its policy is read), with hostile fields."""
    date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    policy_b64 = draw(policies())
    fields = {
        "key": draw(st.sampled_from(["k/${filename}", "k", ""]) | HOSTILE),
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": f"{target.access_key}/{date[:8]}/{REGION}/s3/aws4_request",
        "x-amz-date": date,
        "policy": policy_b64,
        "x-amz-signature": policy.signature(policy_b64, target.secret_key, date[:8], REGION),
    }
    parts = [Part(k, None, None, v.encode()) for k, v in fields.items() if not rarely(draw, 8)]
    parts += [
        Part(draw(NAMES | HOSTILE), None, None, draw(st.binary(max_size=40))) for _ in range(draw(st.integers(0, 3)))
    ]
    parts.append(Part("file", draw(st.sampled_from(["a.txt", "", "..\\x"]) | HOSTILE), "text/plain", b"data"))
    boundary = draw(st.sampled_from([b"fuzzboundary", b"x" * 70]))
    body = encode_form(boundary, parts)
    if rarely(draw, 3):
        body = draw(mutated(body))
    content_type = f"multipart/form-data; boundary={boundary.decode()}"
    if rarely(draw, 6):
        content_type = draw(
            st.sampled_from(["multipart/form-data", "text/plain", "multipart/form-data; boundary=Ā"]) | HOSTILE
        )
    return content_type, body


@campaign(50)
@given(data=st.data())
def test_hostile_post_object_forms(target: Target, data: st.DataObject) -> None:
    content_type, body = data.draw(post_forms(target))
    check_s3(target.client.post(f"/{BUCKET}", headers=utf8({"content-type": wire(content_type)}), content=body))
    check_server(target)


# Non-empty: `/s/` alone is no link path (it is S3's, a bucket named "s").
LINK_IDS = st.sampled_from(["abcdefgh", "x" * 64, "x" * 600, "%00", "..%2f..", "a%ffb", "é"]) | HOSTILE.filter(
    bool
).map(lambda t: quote(t, safe=""))


@campaign(40)
@given(
    tus=st.dictionaries(
        st.sampled_from(
            ["tus-resumable", "upload-length", "upload-metadata", "upload-defer-length", "x-http-method-override"]
        ),
        NUMBERS | HOSTILE | st.sampled_from(["1.0.0", "PATCH", "HEAD"]) | metadata_headers(),
    ),
    offset=NUMBERS | HOSTILE,
    link_id=LINK_IDS,
    output=st.none() | st.sampled_from(["json", "html", "download", "file", "x"]) | HOSTILE,
    limit=st.none() | NUMBERS | HOSTILE,
    authorized=st.booleans(),
)
def test_hostile_tus_link_and_rest_requests(
    target: Target,
    tus: dict[str, str],
    offset: str,
    link_id: str,
    output: str | None,
    limit: str | None,
    authorized: bool,
) -> None:
    auth = {"authorization": f"Bearer {target.token}"} if authorized else {}  # str: ASCII
    headers = utf8({"tus-resumable": "1.0.0", **auth, **{k: wire(v) for k, v in tus.items()}})
    created = target.client.post("/upload_tus/", headers=headers)
    check_json(created)
    location = created.headers.get("location", f"/upload_tus/{link_id}").split("/upload_tus/")[-1]
    patch = {**headers, **utf8({"content-type": "application/offset+octet-stream", "upload-offset": wire(offset)})}
    check_either(target.client.patch(f"/upload_tus/{location}", headers=patch, content=b"abc"))
    check_either(target.client.head(f"/upload_tus/{link_id}", headers=headers))
    query = {"output": output} if output is not None else {}
    check_either(target.client.get(f"/s/{link_id}", params=query))
    check_json(target.client.get("/api/links", params={"limit": limit} if limit is not None else {}, headers=auth))
    check_either(target.client.get(f"/api/links/{link_id}", headers=auth))
    check_server(target)
