"""A clock the tests drive, injected where the code under test asks for `clock: Callable[[], float]`."""

from __future__ import annotations

import time


class Clock:
    """`clock()` reads it, `clock.advance(s)` moves it on.

    It starts at the real time because GC compares it with file ctimes (set by the kernel).
    """

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
