"""Coverage-guided fuzzing of the byte-level parsers with atheris (libFuzzer), for long runs.

`python tests/fuzz/atheris_fuzz.py TARGET [CORPUS_DIR] [libFuzzer options]`, e.g. `-max_total_time=600`
(an empty CORPUS_DIR is given the target's SEEDS); scripts/fuzz runs every target. Each target feeds
the fuzzer's bytes to one parser and holds it to the rule of the hypothesis tests (`fuzzing.attempt`):
a value or the module's own client error. Any other exception is a crash: libFuzzer stops, prints it
and writes the input to `crash-<sha1>`; replay it with `python tests/fuzz/atheris_fuzz.py TARGET crash-<sha1>`.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fuzzing.py, when run as a script
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for pyblob's packages

with atheris.instrument_imports(include=["s3api", "shortlinks", "objstore"]):
    from s3api import cors, lifecycle, policy, tagging
    from s3api.auth import RequestView, Signing, authenticate, parse_query
    from s3api.chunked import ChunkedDecoder
    from s3api.conditional import parse_range
    from s3api.errors import S3Error
    from s3api.formdata import Bounds, FormError, FormParser, boundary_of
    from s3api.ops.delete import _requested_keys
    from s3api.ops.multipart import _wanted_parts
    from s3api.xml import parse
    from shortlinks.tus import parse_metadata

from fuzzing import API_ERRORS, attempt

KEY = bytes(32)


def fed(feed: Callable[[bytes], object], body: bytes, step: int) -> None:
    """`body` fed `step` bytes at a time (0: at once)."""
    for at in range(0, len(body), step or len(body) or 1):
        feed(body[at : at + (step or len(body))])


def chunked(data: bytes) -> None:
    """Byte 0: signed?, trailer?, feed size; the rest: the body."""
    flags, body = (data[0] if data else 0), data[1:]
    signing = Signing(KEY, "20240102T030405Z", "20240102/us-east-1/s3/aws4_request", "0" * 64)
    decoder = ChunkedDecoder(signing if flags & 1 else None, bool(flags & 2))
    attempt(lambda: (fed(decoder.feed, body, flags >> 2), decoder.finish()), allowed=(S3Error,))


READERS: list[tuple[str, tuple[str, ...], Callable[..., object]]] = [
    ("Delete", ("Object",), _requested_keys),
    ("CompleteMultipartUpload", ("Part",), _wanted_parts),
    (
        "CORSConfiguration",
        ("CORSRule", "AllowedOrigin", "AllowedMethod", "AllowedHeader", "ExposeHeader"),
        cors.parse_rules,
    ),
    ("LifecycleConfiguration", lifecycle.FORCE_LIST, lifecycle.parse_rules),
    ("Tagging", ("Tag",), tagging.from_xml),
]


def xml(data: bytes) -> None:
    """Byte 0: which document; the rest: the body."""
    root, force_list, read = READERS[(data[0] if data else 0) % len(READERS)]
    attempt(lambda: read(parse(data[1:], root, force_list=force_list)))


def form(data: bytes) -> None:
    """Byte 0: feed size; up to the first newline: the Content-Type; the rest: the body."""
    step = data[0] if data else 0
    content_type, _, body = data[1:].partition(b"\n")

    def run() -> None:
        boundary = boundary_of(content_type.decode("latin-1")) or b"b"
        parser = FormParser(boundary, Bounds(header_bytes=512, header_lines=8, header_line_bytes=128))
        fed(lambda piece: list(parser.feed(piece)), body, step)
        parser.finish()

    attempt(run, allowed=(FormError,))


def post_policy(data: bytes) -> None:
    """The policy document's JSON (the target encodes it in base64, as a form carries it)."""
    attempt(policy.parse, base64.b64encode(data).decode())


def tus_metadata(data: bytes) -> None:
    attempt(parse_metadata, data.decode("latin-1"), allowed=API_ERRORS)


def headers(data: bytes) -> None:
    """A Range and an Authorization header, then (after a newline) a query string."""
    header, _, query = data.decode("latin-1").partition("\n")
    attempt(parse_range, header, 1000)
    view = RequestView("GET", "/bucket/key", parse_query(query), {"host": "h", "authorization": header})
    attempt(authenticate, view, NoKeys(), 1704164645.0)


# Inputs to start from: libFuzzer mutates what it has, and random bytes rarely make XML or JSON.
SEEDS = {
    "chunked": [bytes([f]) + b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n" for f in (0, 2, 3, 6)],
    "xml": [
        b"\x00<Delete><Object><Key>k</Key><VersionId>v</VersionId></Object><Quiet>true</Quiet></Delete>",
        b"\x01<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>",
        b"\x02<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"
        b"<MaxAgeSeconds>1</MaxAgeSeconds></CORSRule></CORSConfiguration>",
        b"\x03<LifecycleConfiguration><Rule><Status>Enabled</Status><Filter><And><Prefix>p</Prefix><Tag><Key>k</Key>"
        b"<Value>v</Value></Tag></And></Filter><Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>",
        b"\x04<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>",
    ],
    "form": [
        b'\x00multipart/form-data; boundary=b\n--b\r\nContent-Disposition: form-data; name="key"\r\n\r\nk\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\nContent-Type: text/plain\r\n\r\n'
        b"data\r\n--b--\r\n"
    ],
    "post_policy": [
        b'{"expiration": "2030-01-01T00:00:00.000Z", "conditions": [{"bucket": "b"}, ["starts-with", "$key", "k/"],'
        b' ["content-length-range", 1, 1024], {"acl": "private"}]}'
    ],
    "tus_metadata": [b"filename YS50eHQ=,filetype dGV4dC9wbGFpbg==,empty"],
    "headers": [
        b"bytes=0-9\nX-Amz-Expires=60",
        b"AWS4-HMAC-SHA256 Credential=AKID/20240102/us-east-1/s3/aws4_request, SignedHeaders=host, Signature="
        + b"0" * 64,
        b"AWS AKID:c2ln\nAWSAccessKeyId=AKID&Expires=1704164999&Signature=x",
    ],
}


class NoKeys:
    def lookup_key(self, access_key: str) -> None:
        return None


TARGETS = {f.__name__: f for f in (chunked, xml, form, post_policy, tus_metadata, headers)}


def main() -> None:
    """`TARGET [CORPUS_DIR] [libFuzzer options]`; an empty corpus directory is given the target's seeds."""
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: atheris_fuzz.py {{{','.join(TARGETS)}}} [CORPUS_DIR] [libFuzzer options]")
    name = sys.argv.pop(1)
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else None
    if corpus is not None and corpus.is_dir() and not any(corpus.iterdir()):
        for i, seed in enumerate(SEEDS[name]):
            (corpus / f"seed-{i}").write_bytes(seed)
    atheris.Setup(sys.argv, TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
