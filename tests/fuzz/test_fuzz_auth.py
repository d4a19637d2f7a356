"""SigV4 and SigV2, headers and query strings (`s3api.auth` over `s3api.sigv4` / `s3api.sigv2`).

Three properties: a request signed by botocore (its own signers, a second reading of the specs)
with any key, query and metadata authenticates; a signed request changed in anything signed (its
signature, method, path, query, an x-amz-* header) is refused; and credentials put together from
hostile pieces (malformed Authorization headers, credentials, dates, expiries, payload modes) are a
4xx S3Error, never another exception.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from email.utils import formatdate
from urllib.parse import quote, urlsplit

from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from fuzzing import attempt, budget, rarely
from hypothesis import example, given
from hypothesis import strategies as st

from s3api.auth import RequestView, authenticate, parse_query
from s3api.errors import S3Error
from s3api.sigv4 import canonical_header_value

ACCESS_KEY, SECRET, USER = "AKIDFUZZ", "fuzz/Secret+Key==", "fuzzer"
HOST = "127.0.0.1:9000"
SCHEMES = ("v4-header", "v4-query", "v2-header", "v2-query")


@dataclass(frozen=True)
class KeyRecord:
    user: str
    secret_key: str


class Keys:
    """The one access key there is."""

    def lookup_key(self, access_key: str) -> KeyRecord | None:
        return KeyRecord(USER, SECRET) if access_key == ACCESS_KEY else None


@dataclass(frozen=True)
class Plain:
    """A request before it is signed: names and values as the client means them."""

    method: str
    path: str  # decoded
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]


def signed(plain: Plain, scheme: str) -> RequestView:
    """The request as botocore signs it for `scheme`, as pyblob's app sees it."""
    # An empty value as clients send a sub-resource: `?acl`, not `?acl=` (SigV2 signs what is sent).
    query = "&".join(quote(k, safe="-_.~") + (f"={quote(v, safe='-_.~')}" if v else "") for k, v in plain.query)
    url = f"http://{HOST}{quote(plain.path, safe='/~')}" + (f"?{query}" if query else "")
    request = AWSRequest(method=plain.method, url=url, data=b"", headers=dict(plain.headers))
    credentials = Credentials(ACCESS_KEY, SECRET)
    if scheme == "v4-header":
        S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
    elif scheme == "v4-query":
        S3SigV4QueryAuth(credentials, "s3", "us-east-1", expires=600).add_auth(request)
    elif scheme == "v2-header":
        request.headers["Date"] = formatdate(usegmt=True)
        HmacV1Auth(credentials).add_auth(request)
    else:
        HmacV1QueryAuth(credentials, expires=600).add_auth(request)
    split = urlsplit(request.url)
    headers = {k.lower(): str(v) for k, v in request.headers.items()}
    return RequestView(plain.method, split.path, parse_query(split.query), {"host": HOST, **headers})


def check(view: RequestView) -> object:
    return attempt(authenticate, view, Keys(), time.time(), allowed=(S3Error,))


# What clients put in requests: any key (S3 keys are any UTF-8), any query, printable metadata.
KEYS = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
QUERY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
META_NAMES = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)


@st.composite
def plain_requests(draw: st.DrawFn, v2: bool = False) -> Plain:
    method = draw(st.sampled_from(["GET", "PUT", "HEAD", "DELETE", "POST"]))
    path = "/bucket/" + draw(KEYS)
    # SigV2 signs sub-resources only, and botocore takes their values from the URL as sent.
    names = st.sampled_from(["acl", "tagging", "versionId", "uploadId"]) if v2 else QUERY_TEXT.filter(bool)
    query = draw(st.dictionaries(names, st.text("abcXYZ019-_.~", max_size=8) if v2 else QUERY_TEXT, max_size=4))
    meta = draw(st.dictionaries(META_NAMES, PRINTABLE.map(str.strip).filter(bool), max_size=3))
    headers = tuple((f"x-amz-meta-{k}", v) for k, v in meta.items())
    return Plain(method, path, tuple(query.items()), headers)


@st.composite
def signed_requests(draw: st.DrawFn) -> tuple[str, Plain]:
    scheme = draw(st.sampled_from(SCHEMES))
    return scheme, draw(plain_requests(v2=scheme.startswith("v2")))


@budget(300)
@given(request=signed_requests())
# found by scripts/fuzz: SigV2 squeezed the inner spaces of an x-amz-* value, which botocore signs as sent
@example(request=("v2-header", Plain("GET", "/bucket/0", (), (("x-amz-meta-0", "0  0"),))))
def test_a_request_botocore_signed_authenticates(request: tuple[str, Plain]) -> None:
    scheme, plain = request
    identity = check(signed(plain, scheme))
    assert not isinstance(identity, Exception), f"{scheme}: {identity!r}"


def _signature_changed(view: RequestView, at: int) -> RequestView:
    def changed(sig: str) -> str:
        i = at % len(sig)
        swap = "0" if sig[i] not in "0" else "1"
        return sig[:i] + swap + sig[i + 1 :]

    if "authorization" in view.headers:
        auth = view.headers["authorization"]
        cut = auth.rindex("=") + 1 if auth.startswith("AWS4") else auth.rindex(":") + 1
        return replace(view, headers={**view.headers, "authorization": auth[:cut] + changed(auth[cut:])})
    name = "X-Amz-Signature" if "X-Amz-Signature" in view.query_map else "Signature"
    return replace(view, query=[(k, changed(v) if k == name else v) for k, v in view.query])


@st.composite
def changed_requests(draw: st.DrawFn) -> tuple[str, RequestView]:
    """A signed request with one signed thing changed: what each change was, and the request."""
    scheme, plain = draw(signed_requests())
    view = signed(plain, scheme)
    kinds = ["signature", "method", "path", "amz-header"] + ([] if scheme.startswith("v2") else ["query"])
    kind = draw(st.sampled_from(kinds))
    if kind == "signature":
        return kind, _signature_changed(view, draw(st.integers(0, 200)))
    if kind == "method":
        return kind, replace(
            view,
            method=draw(st.sampled_from(["GET", "PUT", "HEAD", "DELETE", "POST"]).filter(lambda m: m != view.method)),
        )
    if kind == "path":
        return kind, replace(view, raw_path=view.raw_path + quote(draw(KEYS), safe="/~"))
    if kind == "query":
        name = draw(QUERY_TEXT.filter(lambda n: n and n not in view.query_map))
        return kind, replace(view, query=[*view.query, (name, draw(QUERY_TEXT))])
    name = "x-amz-meta-" + draw(META_NAMES)
    value = draw(
        PRINTABLE.filter(lambda v: canonical_header_value(v) != canonical_header_value(view.headers.get(name, "\0")))
    )
    return kind, replace(view, headers={**view.headers, name: value})


@budget(300)
@given(change=changed_requests())
def test_a_signed_request_changed_is_refused(change: tuple[str, RequestView]) -> None:
    kind, view = change
    result = check(view)
    assert isinstance(result, S3Error), f"changed {kind} and still accepted"


HOSTILE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
HEX64 = st.text("0123456789abcdefABCDEF", min_size=64, max_size=64)


@st.composite
def piece(draw: st.DrawFn, *valid: str, hostile: st.SearchStrategy[str] = HOSTILE) -> str:
    """One field of a credential: mostly a valid value (so that the next field is reached), or anything."""
    return draw(hostile) if rarely(draw, 6) else draw(st.sampled_from(valid))


def amz_date_now() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


DATES = st.sampled_from(["20240230T000000Z", "99991231T235959Z", "00000101T000000Z", "20241301T000000Z"]) | HOSTILE
HTTP_DATES = (
    st.sampled_from(
        [
            "Mon, 01 Jan 0001 00:00:00 +0100",
            "Fri, 31 Dec 9999 23:59:59 -2359",
            "1 Jan 99999 0:0:0",
            "Tue, 1 Jan 2020 0:0 +9999",
        ]
    )
    | HOSTILE
)
PAYLOADS = (
    st.sampled_from(["UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"])
    | HEX64
    | HOSTILE
)
NUMBERS = st.integers(-(10**25), 10**25).map(str) | st.sampled_from(
    ["", "-0", "1e3", "0x10", "٣", "9" * 30, "0" * 4400 + "1"]
)


@st.composite
def v4_headers(draw: st.DrawFn) -> dict[str, str]:
    today = amz_date_now()
    credential = "/".join(
        [
            draw(piece(ACCESS_KEY, "")),
            draw(piece(today[:8], "20240230")),
            draw(piece("us-east-1", "")),
            draw(piece("s3")),
            draw(piece("aws4_request")),
        ]
    )
    auth = (
        draw(piece("AWS4-HMAC-SHA256"))
        + draw(piece(" ", "\t", ""))
        + f"Credential={credential}"
        + draw(piece(", ", ",", " ,"))
        + "SignedHeaders="
        + draw(piece("host", "host;x-amz-date", "", ";;", "HOST;X-AMZ-CONTENT-SHA256"))
        + draw(piece(", ", ","))
        + "Signature="
        + draw(piece("0" * 64, hostile=HEX64 | HOSTILE))
    )
    headers = {"host": HOST, "authorization": auth}
    if draw(st.booleans()):
        headers["x-amz-date"] = draw(piece(today, hostile=DATES))
    else:
        headers["date"] = draw(piece(formatdate(usegmt=True), hostile=HTTP_DATES))
    if draw(st.booleans()):
        headers["x-amz-content-sha256"] = draw(PAYLOADS)
    return headers


@st.composite
def v4_queries(draw: st.DrawFn) -> list[tuple[str, str]]:
    today = amz_date_now()
    pairs = {
        "X-Amz-Algorithm": draw(piece("AWS4-HMAC-SHA256")),
        "X-Amz-Credential": draw(piece(f"{ACCESS_KEY}/{today[:8]}/us-east-1/s3/aws4_request", f"{ACCESS_KEY}/x")),
        "X-Amz-Date": draw(piece(today, hostile=DATES)),
        "X-Amz-Expires": draw(piece("600", hostile=NUMBERS)),
        "X-Amz-SignedHeaders": draw(piece("host", "", "x-amz-date")),
        "X-Amz-Signature": draw(piece("0" * 64, hostile=HEX64 | HOSTILE)),
    }
    dropped = draw(st.sets(st.sampled_from(sorted(pairs)), max_size=2)) if rarely(draw, 6) else set()
    return [(k, v) for k, v in pairs.items() if k not in dropped]


@st.composite
def v2_requests(draw: st.DrawFn) -> tuple[dict[str, str], list[tuple[str, str]]]:
    if draw(st.booleans()):
        auth = draw(piece("AWS ")) + draw(piece(ACCESS_KEY, "", ":")) + draw(piece(":", "")) + draw(HOSTILE)
        headers = {"host": HOST, "authorization": auth}
        headers[draw(st.sampled_from(["date", "x-amz-date"]))] = draw(
            piece(formatdate(usegmt=True), hostile=HTTP_DATES)
        )
        return headers, []
    expires = draw(piece(str(int(time.time()) + 60), hostile=NUMBERS))
    query = [("AWSAccessKeyId", draw(piece(ACCESS_KEY, ""))), ("Expires", expires), ("Signature", draw(HOSTILE))]
    return {"host": HOST}, query


@st.composite
def hostile_requests(draw: st.DrawFn) -> RequestView:
    kind = draw(st.sampled_from(["v4-header", "v4-query", "v2", "other"]))
    headers, query = {"host": HOST}, []
    if kind == "v4-header":
        headers = draw(v4_headers())
    elif kind == "v4-query":
        query = draw(v4_queries())
    elif kind == "v2":
        headers, query = draw(v2_requests())
    else:
        headers["authorization"] = draw(HOSTILE)
    extra = draw(st.dictionaries(st.sampled_from(["x-amz-meta-a", "x-amz-security-token", "content-md5"]), HOSTILE))
    return RequestView(draw(piece("GET", "PUT")), "/bucket/" + quote(draw(KEYS)), query, {**headers, **extra})


@budget(1000)
@given(view=hostile_requests())
# found by scripts/fuzz: a Date whose zone takes it past 9999 UTC could not be written as an x-amz-date (500)
@example(
    view=RequestView(
        "GET",
        "/bucket/0",
        [],
        {
            "host": HOST,
            "authorization": f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/99991231/us-east-1/s3/aws4_request, "
            f"SignedHeaders=host, Signature={'0' * 64}",
            "date": "Fri, 31 Dec 9999 23:59:59 -2359",
        },
    )
)
def test_hostile_credentials_are_client_errors(view: RequestView) -> None:
    check(view)


@budget(300)
@given(raw=st.text(st.characters(max_codepoint=0xFF), max_size=200))
def test_any_query_string_parses(raw: str) -> None:
    """The query as uvicorn hands it over (latin-1 text of the raw bytes): pairs, whatever it holds."""
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in parse_query(raw))
