"""LifecycleConfiguration XML: the exact GET body, and parsing the forms clients send."""

from __future__ import annotations

import pytest

from objstore.lifecycle import LifecycleRule
from s3api.errors import S3Error
from s3api.lifecycle import FORCE_LIST, parse_rules, rules_xml
from s3api.xml import parse, render

GOLDEN = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    "<Rule><ID>logs</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status>"
    "<Expiration><Days>30</Days></Expiration></Rule>"
    "<Rule><Filter><And><Prefix>tmp/</Prefix><Tag><Key>temp</Key><Value>yes</Value></Tag></And></Filter>"
    "<Status>Disabled</Status><Expiration><Date>2030-01-01T00:00:00.000Z</Date></Expiration></Rule>"
    "<Rule><ID>mp</ID><Filter><Prefix></Prefix></Filter><Status>Enabled</Status>"
    "<AbortIncompleteMultipartUpload><DaysAfterInitiation>7</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>"
    "</LifecycleConfiguration>"
)
RULES = [
    LifecycleRule(id="logs", prefix="logs/", expiration_days=30),
    LifecycleRule(enabled=False, prefix="tmp/", tags={"temp": "yes"}, expiration_date=1893456000.0),
    LifecycleRule(id="mp", abort_upload_days=7),
]


def test_get_body_is_exact() -> None:
    assert render("LifecycleConfiguration", rules_xml(RULES)).decode() == GOLDEN


def test_parse_round_trips_the_golden_document() -> None:
    parsed = parse_rules(parse(GOLDEN.encode(), "LifecycleConfiguration", FORCE_LIST))
    assert [r.filter_form for r in parsed] == ["prefix", "and", "prefix"]
    assert render("LifecycleConfiguration", rules_xml(parsed)).decode() == GOLDEN


def test_legacy_prefix_and_empty_filter() -> None:
    doc = (
        "<LifecycleConfiguration><Rule><Prefix>a/</Prefix><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>"
        "<Rule><Filter/><Status>Enabled</Status><Expiration><Date>2030-01-01</Date></Expiration></Rule></LifecycleConfiguration>"
    )
    got = parse_rules(parse(doc.encode(), "LifecycleConfiguration", FORCE_LIST))
    assert got == [
        LifecycleRule(prefix="a/", expiration_days=1, filter_form="prefix-element"),
        LifecycleRule(expiration_date=1893456000.0, filter_form="empty"),
    ]
    back = render("LifecycleConfiguration", rules_xml(got)).decode()
    assert "<Rule><Prefix>a/</Prefix><Status>" in back and "<Rule><Filter></Filter><Status>" in back


@pytest.mark.parametrize(
    "rule, code",
    [
        ("<Status>On</Status><Filter/><Expiration><Days>1</Days></Expiration>", "MalformedXML"),
        ("<Status>Enabled</Status><Expiration><Days>1</Days></Expiration>", "MalformedXML"),
        ("<Status>Enabled</Status><Filter/><Expiration><Days>one</Days></Expiration>", "MalformedXML"),
        (
            "<Status>Enabled</Status><Filter><Prefix>a</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></Filter>"
            "<Expiration><Days>1</Days></Expiration>",
            "MalformedXML",
        ),
        ("<Status>Enabled</Status><Filter/><Expiration><Date>soon</Date></Expiration>", "InvalidArgument"),
        ("<Status>Enabled</Status><Filter/>", "InvalidRequest"),
        (
            "<Status>Enabled</Status><Filter/><Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition>",
            "NotImplemented",
        ),
        (
            "<Status>Enabled</Status><Filter/><NoncurrentVersionExpiration><NewerNoncurrentVersions>2"
            "</NewerNoncurrentVersions></NoncurrentVersionExpiration>",
            "MalformedXML",
        ),
        (
            "<Status>Enabled</Status><Filter/><Expiration><ExpiredObjectDeleteMarker>yes</ExpiredObjectDeleteMarker>"
            "</Expiration>",
            "MalformedXML",
        ),
    ],
)
def test_refusals(rule: str, code: str) -> None:
    doc = f"<LifecycleConfiguration><Rule>{rule}</Rule></LifecycleConfiguration>".encode()
    with pytest.raises(S3Error) as e:
        parse_rules(parse(doc, "LifecycleConfiguration", FORCE_LIST))
    assert e.value.code == code
