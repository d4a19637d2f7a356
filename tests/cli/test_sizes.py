"""`parse_size`: the human byte sizes of settings and CLI options."""

from __future__ import annotations

import pytest

from objstore.sizes import MAX_SIZE, format_size, parse_size


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


@pytest.mark.parametrize("text", ["8PiB", "99999999999999999999999999", 2**53, "9007199254740993"])
def test_parse_size_refuses_sizes_past_8_PiB(text: str | int) -> None:
    """Past 2^53 - 1 a size is not exact in a float (`99999999999999999999999999` came out as 10^26 and
    some), nor in JSON as JavaScript reads it, nor an integer once a record past 64 bits is read back."""
    with pytest.raises(ValueError, match="at most"):
        parse_size(text)
    assert parse_size(MAX_SIZE) == parse_size(str(MAX_SIZE)) == 2**53 - 1
