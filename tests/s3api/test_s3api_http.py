"""The attributes a PUT stores from its headers: content type, standard headers, user metadata."""

from __future__ import annotations

import pytest

from s3api.errors import S3Error
from s3api.http import request_attributes


def test_request_attributes_strip_aws_chunked_and_keep_metadata() -> None:
    headers = {
        "content-type": "text/plain",
        "content-encoding": "gzip,aws-chunked",
        "cache-control": "no-cache",
        "x-amz-meta-colour": "blue",
        "x-amz-date": "ignored",
    }
    content_type, standard, meta = request_attributes(headers)
    assert content_type == "text/plain"
    assert standard == {"cache-control": "no-cache", "content-encoding": "gzip"}
    assert meta == {"colour": "blue"}
    assert request_attributes({"content-encoding": "aws-chunked"})[:2] == ("binary/octet-stream", {})


def test_request_attributes_bound_user_metadata() -> None:
    with pytest.raises(S3Error) as e:
        request_attributes({"x-amz-meta-big": "x" * 3000})
    assert e.value.code == "MetadataTooLarge"
