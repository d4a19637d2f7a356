"""aws-cli and rclone through HTTPS (`pyblob serve --ssl-certfile/--ssl-keyfile`, self-signed).

Over https aws-cli v1 sends uploads as `aws-chunked` bodies with a CRC32 trailer
(x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER), the path real deployments take behind
TLS; over plain http it sends a checksum header instead. `--debug` shows which one was taken.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from pathlib import Path

import pytest
from s3_server import ADMIN, Endpoint, TlsCert
from s3clients_helpers import TREE, AwsCli, Rclone, digests, make_tree, random_file, sha256


@pytest.fixture
def aws_tls(pyblob_tls: Endpoint, tls_cert: TlsCert, home: Path) -> AwsCli:
    return AwsCli(pyblob_tls.url, ADMIN, home, ca_bundle=tls_cert.certfile)


def crc32_b64(path: Path) -> str:
    return base64.b64encode(zlib.crc32(path.read_bytes()).to_bytes(4, "big")).decode()


def test_aws_cp_over_https_sends_aws_chunked_with_a_crc32_trailer(
    aws_tls: AwsCli, bucket_name: str, tmp_path: Path
) -> None:
    aws_tls("s3", "mb", f"s3://{bucket_name}")
    source = random_file(tmp_path / "three.bin", 3 << 20)

    debug = aws_tls("--debug", "s3", "cp", "--no-progress", str(source), f"s3://{bucket_name}/three.bin").stderr
    put = [line for line in debug.splitlines() if "Sending http request" in line and "method=PUT" in line]
    assert len(put) == 1, "\n".join(put)
    assert re.search(
        r"'x-amz-content-sha256': b'STREAMING-(UNSIGNED-PAYLOAD|AWS4-HMAC-SHA256-PAYLOAD)-TRAILER'", put[0]
    ), put[0]
    assert "'Content-Encoding': b'aws-chunked'" in put[0] and "'X-Amz-Trailer': b'x-amz-checksum-crc32'" in put[0], put[
        0
    ]

    head = json.loads(
        aws_tls(
            "s3api", "head-object", "--bucket", bucket_name, "--key", "three.bin", "--checksum-mode", "ENABLED"
        ).stdout
    )
    assert head["ContentLength"] == 3 << 20
    assert head["ChecksumCRC32"] == crc32_b64(source)  # read from the trailer and kept
    back = tmp_path / "back.bin"
    aws_tls("s3", "cp", "--no-progress", f"s3://{bucket_name}/three.bin", str(back))
    assert sha256(back) == sha256(source)


def test_aws_refuses_the_server_without_its_ca_bundle(pyblob_tls: Endpoint, home: Path) -> None:
    """The certificate is really checked: trust comes from --ca-bundle, not from the machine."""
    untrusting = AwsCli(pyblob_tls.url, ADMIN, home)
    refused = untrusting("s3", "ls", check=False)
    assert refused.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr, refused.stderr


def test_rclone_copy_and_check_over_https(
    pyblob_tls: Endpoint, tls_cert: TlsCert, home: Path, bucket_name: str, tmp_path: Path
) -> None:
    rclone = Rclone(pyblob_tls.url, ADMIN, home, ca_cert=tls_cert.certfile)
    local = tmp_path / "tree"
    expected = make_tree(local)
    rclone("mkdir", f"{rclone.remote}:{bucket_name}")
    rclone("copy", str(local), f"{rclone.remote}:{bucket_name}")
    checked = rclone("check", str(local), f"{rclone.remote}:{bucket_name}")
    assert f"{len(TREE)} matching files" in checked.stderr, checked.stderr
    back = tmp_path / "back"
    rclone("copy", f"{rclone.remote}:{bucket_name}", str(back))
    assert digests(back) == expected
