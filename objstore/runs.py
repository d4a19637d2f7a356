"""What the upkeep jobs did: one row per job (`gc`, `fsck`), written when a run ends, read by
`/metrics` and `pyblob stats`. GC and fsck run as commands beside the server, so their results
reach the server's metrics through the metadata, not through the server's memory."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from .meta import ReadTxn, WriteTxn

TABLE = "maintenance_runs"  # job name -> JobRuns (JSON)
TABLES = (TABLE,)


@dataclass
class JobRuns:
    runs: int = 0
    last_finished: float = 0.0
    last_findings: dict[str, int] = field(default_factory=dict)


def record(w: WriteTxn, job: str, finished: float, findings: dict[str, int]) -> None:
    """One more run of `job`, ended at `finished`, with what it found or did."""
    runs = get(w, job)
    runs.runs += 1
    runs.last_finished, runs.last_findings = finished, dict(findings)
    w.put(TABLE, job.encode(), orjson.dumps(runs.__dict__))


def get(r: ReadTxn, job: str) -> JobRuns:
    raw = r.get(TABLE, job.encode())
    return JobRuns(**orjson.loads(raw)) if raw is not None else JobRuns()


def all_jobs(r: ReadTxn) -> dict[str, JobRuns]:
    return {key.decode(): JobRuns(**orjson.loads(raw)) for key, raw in r.range(TABLE)}
