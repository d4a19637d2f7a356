"""Human byte sizes (`10MiB`, `500M`, `1G`, `1TiB`, `4096`): the settings, the CLI and the limit errors."""

from __future__ import annotations

import re

from .records import MAX_RECORD_INT

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(i?)B?\s*$", re.IGNORECASE)
_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}
MAX_SIZE = MAX_RECORD_INT  # 8 PiB - 1, exact in a float too


def parse_size(text: str | int) -> int:
    """Bytes in `text`. Bare suffixes are binary (`1G` = 1 GiB), as in `df -h` and `du -h`,
    because disks and quotas are reasoned about in powers of two; `iB` is accepted and means the same.

    Raises ValueError with a message fit to show to a user.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"size must not be negative: {text}")
        return _at_most_max(text, text)
    match = _SIZE.match(str(text))
    if match is None:
        raise ValueError(f"invalid size {text!r}: use bytes or a number with K, M, G, T or P (e.g. 10MiB, 1G)")
    number, unit, _ = match.groups()
    value = float(number) * 1024 ** _POWERS[unit.upper()]
    if value != int(value):
        raise ValueError(f"invalid size {text!r}: not a whole number of bytes")
    return _at_most_max(int(value), text)


def _at_most_max(size: int, text: str | int) -> int:
    if size > MAX_SIZE:
        raise ValueError(f"size {text!r} is too large: at most {MAX_SIZE} bytes (8 PiB)")
    return size


def format_size(n: int) -> str:
    """The shortest exact binary form of `n` (`10MiB`), or plain bytes."""
    if n == 0:
        return "0"
    for unit, power in (("PiB", 5), ("TiB", 4), ("GiB", 3), ("MiB", 2), ("KiB", 1)):
        if n and n % 1024**power == 0:
            return f"{n // 1024**power}{unit}"
    return f"{n}B"
