"""A bound on the bytes per second a background job reads: a token bucket that sleeps.

Tokens (bytes) fill at `rate` per second up to one second's worth; a read of n bytes takes n tokens
first, and when the bucket would go below zero the job sleeps until it is back at zero. Over any
stretch of time the job reads at most `rate` bytes a second plus one second's worth, however large
each read is (a read larger than the bucket just waits longer). The clock and the sleep are given,
so a server can wake a sleeping job to stop it and a test can count what was asked of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class BytePacer:
    """`take(n)` before reading n bytes; `rate` 0 takes without ever waiting."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ):
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.tokens = 0.0  # none at the start: the first second is paced too
        self.last = clock()
        self.slept = 0.0  # seconds asked of `sleep` so far

    def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        now = self.clock()
        self.tokens = min(self.rate, self.tokens + (now - self.last) * self.rate) - n
        self.last = now
        if self.tokens < 0:
            wait = -self.tokens / self.rate
            self.slept += wait
            self.sleep(wait)
