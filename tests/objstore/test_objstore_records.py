"""Persisted rows (`objstore.records`): versioned JSON that round-trips and tolerates added fields."""

from __future__ import annotations

import json

import pytest

from objstore.errors import FormatError
from objstore.records import (
    AccessKeyRecord,
    BucketRecord,
    ObjectRecord,
    PartRecord,
    TokenRecord,
    UploadRecord,
    UserRecord,
)

SAMPLES = [
    UserRecord("alice", 1.5, quota=10, max_object_size=5, usage_bytes=3, object_count=1),
    AccessKeyRecord("AKID", "se/cr+et=", "alice", 2.0, active=False),
    TokenRecord("alice", 3.0, "pbt_abcd"),
    BucketRecord("photos", 7, "alice", 4.0, "eu-west-1"),
    ObjectRecord(
        "ключ/é/😀",
        10,
        "abc-2",
        "00ff",
        "alice",
        5.0,
        headers={"Cache-Control": "no"},
        meta={"k": "ü"},
        checksums={"CRC32": "AAAAAA=="},
        blake3="ee",
        parts_count=2,
    ),
    UploadRecord("u1", "photos", "k", "alice", 6.0, checksum_algorithm="CRC32"),
    PartRecord(1, 5, "md5", "00", 7.0, {"CRC32": "x"}),
]


@pytest.mark.parametrize("record", SAMPLES, ids=lambda r: type(r).__name__)
def test_round_trip(record: object) -> None:
    raw = record.encode()  # type: ignore[attr-defined]
    assert json.loads(raw)["v"] == 1
    assert type(record).decode(raw) == record  # type: ignore[attr-defined]


def test_unicode_is_stored_as_utf8_not_escaped() -> None:
    raw = SAMPLES[4].encode()
    assert "ключ/é/😀".encode() in raw


def test_unknown_version_is_refused() -> None:
    body = json.loads(SAMPLES[0].encode())
    body["v"] = 2
    with pytest.raises(FormatError):
        UserRecord.decode(json.dumps(body).encode())
    del body["v"]
    with pytest.raises(FormatError):
        UserRecord.decode(json.dumps(body).encode())


def test_unknown_fields_are_ignored_and_missing_ones_defaulted() -> None:
    user = UserRecord.decode(b'{"v":1,"name":"bob","created":1.0,"from_the_future":true}')
    assert user == UserRecord("bob", 1.0)
    assert (user.quota, user.usage_bytes, user.object_count) == (0, 0, 0)
