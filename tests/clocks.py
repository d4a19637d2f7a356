"""A clock the tests drive, injected where the code under test asks for `clock: Callable[[], float]`."""

from __future__ import annotations

import time


class Clock:
    """`clock()` reads it, `clock.advance(s)` moves it on.

    It starts at the real time (or `ahead` seconds after it) because GC compares it with the times
    the chunk store records for its chunks (file ctimes, S3 LastModified).
    """

    def __init__(self, ahead: float = 0.0) -> None:
        self.now = time.time() + ahead

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
