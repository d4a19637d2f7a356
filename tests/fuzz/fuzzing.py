"""What the fuzz tests share: their hypothesis budgets and the one outcome a parser may have.

A parser of client input either returns a value or raises its layer's client error: `S3Error` with a
4xx status (or 501 NotImplemented, S3's deliberate answer for a feature pyblob does not have), an
engine error that S3 maps to a 4xx, `ConditionFailed` / `RangeNotSatisfiable`, the short links'
`ApiError` with a 4xx, the form parser's `FormError`. Anything else would reach the client as a 500.

Budgets: the `ci` profile (the default) runs a fixed number of examples per test from a seed derived
from the test itself (`derandomize`), so CI always tries the same inputs and a failure reproduces;
`PYBLOB_FUZZ_PROFILE=long` (scripts/fuzz) draws fresh random inputs, `PYBLOB_FUZZ_SCALE` times as
many (default 5), and keeps failing examples in hypothesis's example database (.hypothesis/).
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from objstore.errors import StoreError
from s3api.conditional import ConditionFailed, RangeNotSatisfiable
from s3api.errors import S3Code, S3Error, from_store_error
from s3api.formdata import FormError
from shortlinks.errors import ApiError, from_store

T = TypeVar("T")

PROFILE = os.environ.get("PYBLOB_FUZZ_PROFILE", "ci")
SCALE = int(os.environ.get("PYBLOB_FUZZ_SCALE", "5"))
# Far above what any example of a bounded input takes (milliseconds): a parser that needs seconds
# for one has work that grows faster than its input, which is what the deadline is there to catch.
DEADLINE = timedelta(seconds=5)
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]

settings.register_profile(
    "fuzz-ci", derandomize=True, database=None, deadline=DEADLINE, print_blob=True, suppress_health_check=_QUIET
)
settings.register_profile(
    "fuzz-long", derandomize=False, deadline=DEADLINE, print_blob=True, suppress_health_check=_QUIET
)
if PROFILE not in ("ci", "long"):
    raise ValueError(f"PYBLOB_FUZZ_PROFILE is ci or long, not {PROFILE!r}")


def budget(examples: int, **overrides: Any) -> settings:
    """The settings of a fuzz test: `examples` in CI, SCALE times as many in the long profile."""
    parent = settings.get_profile(f"fuzz-{PROFILE}")
    count = examples * SCALE if PROFILE == "long" else examples
    return settings(parent, max_examples=count, **overrides)


S3_ERRORS: tuple[type[Exception], ...] = (S3Error, StoreError, ConditionFailed, RangeNotSatisfiable)
API_ERRORS: tuple[type[Exception], ...] = (ApiError, StoreError)


def client_status(error: BaseException, rest: bool = False) -> int:
    """The HTTP status the edge answers for one of the client errors above; `rest`: an engine error
    as the short links' edge answers it (else as S3's)."""
    if isinstance(error, S3Error | ApiError):
        return error.status
    if isinstance(error, StoreError):
        return from_store(error).status if rest else from_store_error(error).status
    if isinstance(error, ConditionFailed):
        return 412
    if isinstance(error, RangeNotSatisfiable):
        return 416
    if isinstance(error, FormError):
        return 400
    raise AssertionError(f"not a client error: {error!r}")


def is_client_answer(error: BaseException, rest: bool = False) -> bool:
    """A 4xx, or S3's 501 NotImplemented for what pyblob deliberately does not do."""
    if isinstance(error, S3Error) and error.kind is S3Code.NotImplemented:
        return True
    return client_status(error, rest) < 500


def attempt(fn: Callable[..., T], *args: Any, allowed: tuple[type[Exception], ...] = S3_ERRORS) -> T | Exception:
    """`fn(*args)`, or the client error it raised (a 4xx of one of the `allowed` types). Any other
    exception propagates as it is, so hypothesis shows and shrinks it."""
    try:
        return fn(*args)
    except allowed as error:
        rest = ApiError in allowed
        assert is_client_answer(error, rest), f"{type(error).__name__} answers {client_status(error, rest)}: {error}"
        return error


def peak_bytes(fn: Callable[[], object]) -> tuple[int, Exception | None]:
    """The most memory Python allocated while `fn` ran (tracemalloc), and the exception it raised."""
    tracemalloc.start()
    try:
        fn()
        error = None
    except Exception as e:
        error = e
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, error


def rarely(draw: st.DrawFn, one_in: int = 10) -> bool:
    """True once in about `one_in` draws. Not `integers(...) == 0`: hypothesis draws bounds and
    zero far more often than the rest, and shrinks towards them; this shrinks towards False."""
    return bool(draw(st.integers(1, one_in)) == one_in // 2 + 1)
