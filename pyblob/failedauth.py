"""The limit on failed S3 authentications per client address, on by default, as fail2ban bans an
address after failed logins.

Each failed authentication (`s3api.app.FAILED_AUTHENTICATION`: an unknown key, or a signature of
the headers, a presigned URL, a POST policy or a chunk made with another secret, SigV4 or SigV2)
takes a token from the address's bucket (`s3 failed-auth <address>`, in the buckets of
`ratebuckets.py`: the worker processes' shared LMDB state, or a cluster's PostgreSQL table, so the
allowance is one across workers and nodes). The failure whose take is refused is answered 503
SlowDown, and so is every S3 request of that address to this process until the bucket has a token
again (`_refused_until`), before its signature is looked at: a right guess made then must not show
through.

Successful requests take nothing and read nothing from the buckets, only this process's dict of
refused addresses: the check costs a dict lookup, where reading the bucket would cost an LMDB read
on every request (about as much as the rest of a small GET's metadata work) or a round trip to
PostgreSQL on a cluster. The price: another worker process, or another node, that has not yet had
a take of its own refused lets that address's requests through until it has, so each process lets
at most one failure more through per token than a single one would.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import Scope

from .ratebuckets import retry_after
from .ratelimits import Limit, RateLimiter, client_address
from .settings import Settings

NAME = "PYBLOB_RATELIMIT_S3_FAILED_AUTH_RATE"
MAX_REMEMBERED = 10_000  # refused addresses one process remembers (a flood of addresses fails open)


class FailedAuthLimit:
    """`s3api.app.FailedAuthLimit` over the server's buckets (see the module docstring)."""

    name = NAME

    def __init__(self, limit: Limit, limiter: RateLimiter, monotonic: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.limiter = limiter
        self.monotonic = monotonic
        self._refused_until: dict[str, float] = {}

    @classmethod
    def from_settings(cls, settings: Settings, limiter: RateLimiter) -> FailedAuthLimit:
        limit = Limit(settings.ratelimit_s3_failed_auth_rate, settings.ratelimit_s3_failed_auth_burst)
        return cls(limit, limiter)

    async def wait(self, scope: Scope) -> int:
        """Whole seconds the client must wait before it may be heard (0: go on)."""
        if self.limit.rate <= 0:
            return 0
        return self._remembered(client_address(scope))

    async def failed(self, scope: Scope) -> int:
        """Take a token for a failed authentication of the client: the whole seconds it must now wait
        (0: it may go on)."""
        address = client_address(scope)
        wait = await self.limiter.take(self.limit, bucket_key(address))
        if wait > 0:
            self._remember(address, self.monotonic() + wait)
        return wait

    def _remembered(self, address: str) -> int:
        until = self._refused_until.get(address)
        if until is None:
            return 0
        left = until - self.monotonic()
        if left > 0:
            return retry_after(left)
        del self._refused_until[address]
        return 0

    def _remember(self, address: str, until: float) -> None:
        if len(self._refused_until) >= MAX_REMEMBERED:
            now = self.monotonic()
            self._refused_until = {a: u for a, u in self._refused_until.items() if u > now}
            if len(self._refused_until) >= MAX_REMEMBERED:
                self._refused_until.pop(next(iter(self._refused_until)))
        self._refused_until[address] = until


def bucket_key(address: str) -> str:
    return f"s3 failed-auth {address}"
