"""Prometheus metrics at `/metrics`, for a scrape that sends `Authorization: Bearer <PYBLOB_METRICS_TOKEN>`
(`scrapegate.py` decides who gets them). Without the setting nothing is measured at all.

What is counted per request (surface, S3 operation, status, latency, bytes each way, refusals) comes
from the access log's layer (`accesslog.py`), in prometheus_client's multiprocess mode: each worker
process writes its values to files in `PROMETHEUS_MULTIPROC_DIR` (`pyblob serve` makes one per run),
and a scrape of any worker sums them all. What the store holds (users, objects, logical and
physical bytes, dedup ratio, chunks, links) is read from the metadata at scrape time, so it is exact
whichever worker answers.

`prometheus_client` decides its storage when first imported, so this module is imported only once
the directory is set (`pyblob.app.create_app`, in the worker).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Receive, Scope, Send

from objstore import Store
from objstore.runs import JobRuns
from s3api.requestinfo import RequestInfo, current

from . import boundedhttp, sweeper
from .accesslog import Exchange, surface
from .routes import ROUTE_PREFIXES

SCRAPE = "GET /metrics"  # the operation label of scrapes
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus's text format
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Error codes that mean "refused by a limit", by the limit's kind.
REFUSALS = {
    "SlowDown": "rate_limit",
    "TooManyUploads": "rate_limit",
    "QuotaExceeded": "quota",
    "EntityTooLarge": "size",
    "MaxMessageLengthExceeded": "size",
}

REQUESTS = Counter("pyblob_requests", "HTTP requests answered.", ["surface", "operation", "status"])
LATENCY = Histogram(
    "pyblob_request_duration_seconds",
    "Time from a request's arrival to the end of its answer.",
    ["surface", "operation"],
    buckets=LATENCY_BUCKETS,
)
BYTES_IN = Counter("pyblob_received_bytes", "Request body bytes received.", ["surface"])
BYTES_OUT = Counter("pyblob_sent_bytes", "Response body bytes sent.", ["surface"])
REFUSED = Counter("pyblob_refusals", "Requests refused by a rate limit, a quota or a size limit.", ["reason"])
IN_FLIGHT = Gauge("pyblob_requests_in_flight", "Requests being answered.", multiprocess_mode="livesum")
CONNECTIONS = Gauge("pyblob_open_connections", "Open HTTP connections.", multiprocess_mode="livesum")
SWEEPS = Counter("pyblob_background_runs", "Background job runs, by job and outcome.", ["job", "outcome"])
FINDINGS = Counter("pyblob_background_findings", "What background jobs acted on, by job and kind.", ["job", "kind"])


def operation_of(scope: Scope, info: RequestInfo) -> str:
    """The S3 operation, or the route family of pyblob's own routes (`/s`, `/upload`, ...): a
    label with few values, whatever paths clients send."""
    if info.operation:
        return info.operation
    first = scope["path"][1:].split("/", 1)[0]
    return f"{scope['method']} /{first}" if first in ROUTE_PREFIXES else scope["method"]


class _Series:
    """The labelled children one kind of request touches, looked up once (a lookup costs ~1 µs)."""

    __slots__ = ("latency", "received", "requests", "sent")

    def __init__(self, surface: str, operation: str, status: int):
        self.requests = REQUESTS.labels(surface, operation, str(status))
        self.latency = LATENCY.labels(surface, operation)
        self.received = BYTES_IN.labels(surface)
        self.sent = BYTES_OUT.labels(surface)


_series: dict[tuple[str, str, int], _Series] = {}  # few keys: operations and statuses are bounded sets


def observe(scope: Scope, info: RequestInfo, exchange: Exchange, seconds: float) -> None:
    """Count one finished request (the access log layer calls this)."""
    key = (surface(scope, info), operation_of(scope, info), exchange.status)
    series = _series.get(key)
    if series is None:
        series = _series[key] = _Series(*key)
    series.requests.inc()
    series.latency.observe(seconds)
    if exchange.bytes_in:
        series.received.inc(exchange.bytes_in)
    if exchange.bytes_out:
        series.sent.inc(exchange.bytes_out)
    if info.error:
        reason = REFUSALS.get(info.error)
        if reason is not None:
            REFUSED.labels(reason).inc()
    elif exchange.status == 429:
        REFUSED.labels("rate_limit").inc()


class StoreCollector(Collector):
    """What the store holds, read from the metadata at each scrape."""

    def __init__(self, get_store: Callable[[], Store]):
        self.get_store = get_store

    def collect(self) -> Iterator[Metric]:
        totals = self.get_store().storage_totals()
        yield GaugeMetricFamily("pyblob_users", "Users.", value=totals.users)
        yield GaugeMetricFamily("pyblob_objects", "Object versions (delete markers excluded).", value=totals.objects)
        yield GaugeMetricFamily(
            "pyblob_logical_bytes", "Bytes of every object version, as their owners are charged.", totals.logical_bytes
        )
        yield GaugeMetricFamily("pyblob_physical_bytes", "Bytes of the chunk files.", value=totals.physical_bytes)
        yield GaugeMetricFamily("pyblob_dedup_ratio", "Logical bytes over physical bytes.", value=totals.dedup_ratio)
        yield GaugeMetricFamily("pyblob_chunks", "Chunks stored (shared ones once).", value=totals.chunks)
        yield GaugeMetricFamily("pyblob_links", "Short links.", value=totals.links)
        yield from maintenance_families(self.get_store().maintenance_runs())


def maintenance_families(jobs: dict[str, JobRuns]) -> Iterator[Metric]:
    """`pyblob gc` and `pyblob fsck`, which run beside the server: as their runs recorded them."""
    runs = CounterMetricFamily("pyblob_maintenance_runs", "Runs of pyblob gc and pyblob fsck.", labels=["job"])
    last = GaugeMetricFamily(
        "pyblob_maintenance_last_run_timestamp_seconds", "When the last run of a job ended.", labels=["job"]
    )
    found = GaugeMetricFamily(
        "pyblob_maintenance_last_findings", "What the last run of a job found or did, by kind.", labels=["job", "kind"]
    )
    for job, record in sorted(jobs.items()):
        runs.add_metric([job], record.runs)
        last.add_metric([job], record.last_finished)
        for kind, value in sorted(record.last_findings.items()):
            found.add_metric([job, kind], value)
    yield from (runs, last, found)


class InFlight:
    """Counts the requests being answered."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the lifespan lasts as long as the worker
            return await self.app(scope, receive, send)
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            IN_FLIGHT.dec()


class Scrape:
    """The answer to an authorized scrape (`scrapegate.py` decides who is)."""

    def __init__(self, get_store: Callable[[], Store]):
        self.store_collector = StoreCollector(get_store)

    async def answer(self, scope: Scope, send: Send) -> None:
        info = current.get()
        if info is not None:
            info.surface, info.operation = "web", SCRAPE
        body = b"" if scope["method"] == "HEAD" else self.render()
        headers = [(b"content-type", CONTENT_TYPE.encode()), (b"cache-control", b"no-store")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def render(self) -> bytes:
        registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:  # one process, no directory (an app run outside `pyblob serve`)
            for metric in (REQUESTS, LATENCY, BYTES_IN, BYTES_OUT, REFUSED, IN_FLIGHT, CONNECTIONS, SWEEPS, FINDINGS):
                registry.register(metric)
        registry.register(self.store_collector)
        return generate_latest(registry)


def count_sweep(job: str, ok: bool, report: Any) -> None:
    """One run of a background job (`sweeper.run_observer`): its outcome, and what it found as the
    numbers of its report (objects expired, links expired, ...)."""
    SWEEPS.labels(job, "ok" if ok else "failed").inc()
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        for f in dataclasses.fields(report):
            value = getattr(report, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and value:
                FINDINGS.labels(job, f.name).inc(value)


def start_counting() -> None:
    """Open connections and background runs, counted from now on by the layers that see them."""
    boundedhttp.connection_gauge = CONNECTIONS
    sweeper.run_observer = count_sweep
