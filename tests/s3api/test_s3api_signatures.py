"""SigV4 and SigV2 against AWS's published examples: the pure functions, then the request glue.

SigV4 examples: https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
(GET Object), .../sigv4-streaming.html (chunked PUT), .../sigv4-query-string-auth.html (presigned).
SigV2 examples: https://docs.aws.amazon.com/AmazonS3/latest/API/RESTAuthentication.html
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from s3api import sigv2, sigv4
from s3api.auth import RequestView, authenticate, parse_query
from s3api.errors import S3Error

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DATE, AMZ_DATE = "20130524", "20130524T000000Z"
EXAMPLE_TIME = datetime(2013, 5, 24, tzinfo=UTC).timestamp()
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
SCOPE = "20130524/us-east-1/s3/aws4_request"


@dataclass
class KeyRecord:
    secret_key: str
    user: str


class Keys:
    def lookup_key(self, access_key: str) -> KeyRecord | None:
        return KeyRecord(SECRET, "example") if access_key == ACCESS_KEY else None


# GET Object --------------------------------------------------------------------------------------
GET_HEADERS = {
    "host": "examplebucket.s3.amazonaws.com",
    "range": "bytes=0-9",
    "x-amz-content-sha256": EMPTY,
    "x-amz-date": AMZ_DATE,
}
GET_SIGNED = ["host", "range", "x-amz-content-sha256", "x-amz-date"]
GET_CANONICAL = (
    "GET\n/test.txt\n\n"
    "host:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
    f"x-amz-content-sha256:{EMPTY}\nx-amz-date:20130524T000000Z\n\n"
    f"host;range;x-amz-content-sha256;x-amz-date\n{EMPTY}"
)
GET_SIGNATURE = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"


def test_get_object_example() -> None:
    canonical = sigv4.canonical_request("GET", "/test.txt", "", GET_HEADERS, GET_SIGNED, EMPTY)
    assert canonical == GET_CANONICAL
    text = sigv4.string_to_sign(AMZ_DATE, sigv4.scope(DATE, "us-east-1"), canonical)
    assert (
        text
        == f"AWS4-HMAC-SHA256\n{AMZ_DATE}\n{SCOPE}\n7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    )
    assert sigv4.sign(sigv4.signing_key(SECRET, DATE, "us-east-1"), text) == GET_SIGNATURE


def get_request(signature: str = GET_SIGNATURE, **header_changes: str) -> RequestView:
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{SCOPE},SignedHeaders={';'.join(GET_SIGNED)},Signature={signature}"
    )
    headers = {**GET_HEADERS, "authorization": authorization, **header_changes}
    return RequestView("GET", "/test.txt", [], headers)


def test_get_object_example_authenticates() -> None:
    identity = authenticate(get_request(), Keys(), EXAMPLE_TIME + 60)
    assert (identity.user, identity.access_key, identity.payload) == ("example", ACCESS_KEY, EMPTY)


@pytest.mark.parametrize(
    "request_view, now, code",
    [
        (get_request("0" * 64), EXAMPLE_TIME, "SignatureDoesNotMatch"),
        (get_request(range="bytes=0-10"), EXAMPLE_TIME, "SignatureDoesNotMatch"),  # a signed header changed
        (get_request(), EXAMPLE_TIME + 16 * 60, "RequestTimeTooSkewed"),
        (get_request(), EXAMPLE_TIME - 16 * 60, "RequestTimeTooSkewed"),
        (get_request(**{"x-amz-content-sha256": "NOT-A-MODE"}), EXAMPLE_TIME, "InvalidArgument"),
    ],
)
def test_get_object_example_rejections(request_view: RequestView, now: float, code: str) -> None:
    with pytest.raises(S3Error) as e:
        authenticate(request_view, Keys(), now)
    assert e.value.code == code


def test_unknown_access_key() -> None:
    view = get_request()
    view.headers["authorization"] = view.headers["authorization"].replace(ACCESS_KEY, "AKIAUNKNOWN")
    with pytest.raises(S3Error) as e:
        authenticate(view, Keys(), EXAMPLE_TIME)
    assert e.value.code == "InvalidAccessKeyId"


def test_skew_error_carries_the_times() -> None:
    with pytest.raises(S3Error) as e:
        authenticate(get_request(), Keys(), EXAMPLE_TIME + 3600)
    assert e.value.extra == {
        "RequestTime": AMZ_DATE,
        "ServerTime": "2013-05-24T01:00:00Z",
        "MaxAllowedSkewMilliseconds": "900000",
    }


# streaming PUT -----------------------------------------------------------------------------------
STREAM_HEADERS = {
    "content-encoding": "aws-chunked",
    "content-length": "66824",
    "host": "s3.amazonaws.com",
    "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "x-amz-date": AMZ_DATE,
    "x-amz-decoded-content-length": "66560",
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
}
STREAM_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNK_SIGNATURES = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]
STREAM_CHUNKS = [b"a" * 65536, b"a" * 1024, b""]


def streaming_example_body() -> bytes:
    """The example's body: 64 KiB, 1 KiB and the final chunk, each with its published signature."""
    out = b""
    for chunk, signature in zip(STREAM_CHUNKS, CHUNK_SIGNATURES, strict=True):
        out += f"{len(chunk):x};chunk-signature={signature}\r\n".encode() + chunk + b"\r\n"
    return out


def test_streaming_example_seed_signature() -> None:
    signed = sorted(STREAM_HEADERS)
    canonical = sigv4.canonical_request(
        "PUT", "/examplebucket/chunkObject.txt", "", STREAM_HEADERS, signed, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    )
    key = sigv4.signing_key(SECRET, DATE, "us-east-1")
    assert sigv4.sign(key, sigv4.string_to_sign(AMZ_DATE, SCOPE, canonical)) == STREAM_SEED


def test_streaming_example_chunk_signatures() -> None:
    key = sigv4.signing_key(SECRET, DATE, "us-east-1")
    previous = STREAM_SEED
    for chunk, published in zip(STREAM_CHUNKS, CHUNK_SIGNATURES, strict=True):
        previous = sigv4.sign(
            key, sigv4.chunk_string_to_sign(AMZ_DATE, SCOPE, previous, hashlib.sha256(chunk).hexdigest())
        )
        assert previous == published
    body = streaming_example_body()
    assert len(body) == int(STREAM_HEADERS["content-length"])
    assert sum(map(len, STREAM_CHUNKS)) == int(STREAM_HEADERS["x-amz-decoded-content-length"])


def streaming_request() -> RequestView:
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{SCOPE},"
        f"SignedHeaders={';'.join(sorted(STREAM_HEADERS))},Signature={STREAM_SEED}"
    )
    return RequestView("PUT", "/examplebucket/chunkObject.txt", [], {**STREAM_HEADERS, "authorization": authorization})


def test_streaming_example_authenticates_with_its_seed() -> None:
    identity = authenticate(streaming_request(), Keys(), EXAMPLE_TIME)
    assert identity.payload == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    assert identity.signing is not None
    assert (identity.signing.seed, identity.signing.scope, identity.signing.amz_date) == (STREAM_SEED, SCOPE, AMZ_DATE)
    assert identity.signing.key == sigv4.signing_key(SECRET, DATE, "us-east-1")


# presigned GET -----------------------------------------------------------------------------------
PRESIGNED_QUERY = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
)
PRESIGNED_SIGNATURE = "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"


def test_presigned_example() -> None:
    pairs = parse_query(PRESIGNED_QUERY)
    query = sigv4.canonical_query(pairs)
    assert query == PRESIGNED_QUERY  # already canonical: sorted, '/' encoded as %2F
    canonical = sigv4.canonical_request(
        "GET", "/test.txt", query, {"host": "examplebucket.s3.amazonaws.com"}, ["host"], "UNSIGNED-PAYLOAD"
    )
    assert (
        canonical == f"GET\n/test.txt\n{PRESIGNED_QUERY}\nhost:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD"
    )
    key = sigv4.signing_key(SECRET, DATE, "us-east-1")
    assert sigv4.sign(key, sigv4.string_to_sign(AMZ_DATE, SCOPE, canonical)) == PRESIGNED_SIGNATURE


def presigned_request(signature: str = PRESIGNED_SIGNATURE) -> RequestView:
    query = parse_query(f"{PRESIGNED_QUERY}&X-Amz-Signature={signature}")
    return RequestView("GET", "/test.txt", query, {"host": "examplebucket.s3.amazonaws.com"})


def test_presigned_example_authenticates_until_it_expires() -> None:
    assert authenticate(presigned_request(), Keys(), EXAMPLE_TIME + 86400).user == "example"
    with pytest.raises(S3Error) as e:
        authenticate(presigned_request(), Keys(), EXAMPLE_TIME + 86401)
    assert (e.value.code, e.value.message) == ("AccessDenied", "Request has expired")
    with pytest.raises(S3Error) as e:
        authenticate(presigned_request("1" * 64), Keys(), EXAMPLE_TIME)
    assert e.value.code == "SignatureDoesNotMatch"


# canonicalisation of awkward keys --------------------------------------------------------------
@pytest.mark.parametrize(
    "key, encoded",
    [
        ("with space", "with%20space"),
        ("plus+sign", "plus%2Bsign"),
        ("percent%", "percent%25"),
        ('&+-é"', "%26%2B-%C3%A9%22"),
        ("dir/sub/file~_.-", "dir/sub/file~_.-"),
        ("日本", "%E6%97%A5%E6%9C%AC"),
        ("a=b*c", "a%3Db%2Ac"),
    ],
)
def test_uri_encode(key: str, encoded: str) -> None:
    assert sigv4.uri_encode(key, keep_slash=True) == encoded
    assert sigv4.uri_encode("/") == "%2F"


def test_canonical_query_sorts_by_encoded_name_and_encodes_values() -> None:
    pairs = [("prefix", "a b"), ("list-type", "2"), ("delimiter", "/"), ("acl", ""), ("Z", "+")]
    assert sigv4.canonical_query(pairs) == "Z=%2B&acl=&delimiter=%2F&list-type=2&prefix=a%20b"


def test_canonical_header_values_trim_and_collapse_spaces() -> None:
    assert sigv4.canonical_header_value("  a   b \t c  ") == "a b c"


def test_query_is_decoded_with_plus_kept() -> None:
    assert parse_query("a=1+2&b=%2B&c&d=%E2%82%AC") == [("a", "1+2"), ("b", "+"), ("c", ""), ("d", "€")]


# SigV2 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method, headers, date, resource, signature",
    [
        (
            "GET",
            {},
            "Tue, 27 Mar 2007 19:36:42 +0000",
            "/awsexamplebucket1/photos/puppy.jpg",
            "qgk2+6Sv9/oM7G3qLEjTH1a1l1g=",
        ),
        (
            "PUT",
            {"content-type": "image/jpeg"},
            "Tue, 27 Mar 2007 21:15:45 +0000",
            "/awsexamplebucket1/photos/puppy.jpg",
            "iqRzw+ileNPu1fhspnRs8nOjjIA=",
        ),
        ("GET", {}, "1175139620", "/johnsmith/photos/puppy.jpg", "NpgCjnDzrM+WFzoENXmpNDUsSn8="),  # query string auth
        (
            "PUT",
            {
                "content-md5": "4gJE4saaMU4BqNR0kLY+lw==",
                "content-type": "application/x-download",
                "x-amz-acl": "public-read",
                "x-amz-meta-reviewedby": "joe@johnsmith.net,jane@johnsmith.net",
                "x-amz-meta-filechecksum": "0x02661779",
                "x-amz-meta-checksumalgorithm": "crc32",
            },
            "Tue, 27 Mar 2007 21:06:08 +0000",
            "/static.johnsmith.net/db-backup.dat.gz",
            "ilyl83RwaSoYIEdixDQcA4OnAnc=",
        ),
    ],
    ids=["get", "put", "query", "upload-with-amz-headers"],
)
def test_sigv2_examples(method: str, headers: dict[str, str], date: str, resource: str, signature: str) -> None:
    assert sigv2.sign(SECRET, sigv2.string_to_sign(method, headers, date, resource)) == signature


def test_sigv2_canonical_resource_keeps_signed_subresources_only() -> None:
    query = {"acl": "", "prefix": "x", "versionId": "null", "response-content-type": "a/b", "uploads": ""}
    assert sigv2.canonical_resource("/b/k", query) == "/b/k?acl&response-content-type=a/b&uploads&versionId=null"
    assert sigv2.canonical_resource("/b", {"prefix": "x"}) == "/b"


def test_sigv2_query_authenticates_until_it_expires() -> None:
    expires = int(EXAMPLE_TIME) + 600
    signature = sigv2.sign(SECRET, f"GET\n\n\n{expires}\n/bucket/a%20key")
    query = [("AWSAccessKeyId", ACCESS_KEY), ("Expires", str(expires)), ("Signature", signature)]
    view = RequestView("GET", "/bucket/a%20key", query, {"host": "s3.example"})
    assert authenticate(view, Keys(), EXAMPLE_TIME).user == "example"
    with pytest.raises(S3Error) as e:
        authenticate(view, Keys(), expires + 1)
    assert e.value.message == "Request has expired"


def test_sigv2_header_for_a_bucket_signed_with_its_trailing_slash() -> None:
    """botocore's SigV2 signs "/bucket/" for a request sent to "/bucket"."""
    date = "Tue, 27 Mar 2007 19:36:42 +0000"
    signature = sigv2.sign(SECRET, f"PUT\n\n\n{date}\n/bucket/")
    headers = {"date": date, "authorization": f"AWS {ACCESS_KEY}:{signature}"}
    now = datetime(2007, 3, 27, 19, 36, 42, tzinfo=UTC).timestamp()
    assert authenticate(RequestView("PUT", "/bucket", [], headers), Keys(), now).user == "example"
