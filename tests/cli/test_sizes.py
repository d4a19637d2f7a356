"""`parse_size`: the human byte sizes of settings and CLI options."""

from __future__ import annotations

import pytest

from objstore.sizes import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("4096", 4096),
        (4096, 4096),
        ("10MiB", 10 * 1024**2),
        ("500M", 500 * 1024**2),
        ("1G", 1024**3),
        ("1gb", 1024**3),
        ("1TiB", 1024**4),
        ("1.5K", 1536),
        (" 2 GiB ", 2 * 1024**3),
        ("12B", 12),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "ten", "10X", "-1", "1.3B", "MiB", "1e6"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


@pytest.mark.parametrize("n", [0, 1, 1023, 1024, 10 * 1024**2, 5 * 1024**4, 1536])
def test_format_size_round_trips(n: int) -> None:
    assert parse_size(format_size(n)) == n
