"""`pyblob stats`: what the store holds, how much deduplication saves, who uses it, which links are read.

Every figure is read from the metadata: totals kept with each change (`Store.storage_totals`), the
users' own counters, and one pass over the links for the most downloaded. Safe beside a live server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import data_dir_option, echo_fields, echo_json, json_option, limit, store_for, timestamp

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


@click.command()
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True, help="Links to list.")
@json_option
@data_dir_option
def stats(top: int, as_json: bool, data_dir: Path | None) -> None:
    """Storage, deduplication, per-user usage and the most downloaded links."""
    with store_for(data_dir) as store:
        totals = store.storage_totals()
        users = sorted(store.accounts.list_users(), key=lambda u: (-u.usage_bytes, u.name))
        links = store.links.most_downloaded(top) if top else []
        jobs = store.maintenance_runs()
    report: dict[str, Any] = {
        "users": totals.users,
        "objects": totals.objects,
        "logical_bytes": totals.logical_bytes,
        "physical_bytes": totals.physical_bytes,
        "saved_bytes": max(0, totals.logical_bytes - totals.physical_bytes),
        "dedup_ratio": round(totals.dedup_ratio, 3),
        "chunks": totals.chunks,
        "links": totals.links,
        "per_user": [
            {"user": u.name, "bytes": u.usage_bytes, "objects": u.object_count, "quota": u.quota or None} for u in users
        ],
        "top_links": [
            {
                "id": link.id,
                "owner": link.owner,
                "bucket": link.bucket,
                "key": link.key,
                "downloads": link.downloads,
                "bytes_served": link.bytes_served,
                "last_download": timestamp(link.last_download) if link.last_download else None,
            }
            for link in links
        ],
        "maintenance": {
            job: {"runs": run.runs, "last_finished": timestamp(run.last_finished), "last_findings": run.last_findings}
            for job, run in sorted(jobs.items())
        },
    }
    if as_json:
        echo_json(report)
        return
    echo_fields(
        [
            ("users", totals.users),
            ("objects", totals.objects),
            ("logical", approx(totals.logical_bytes)),
            ("on disk", f"{approx(totals.physical_bytes)} in {totals.chunks} chunks"),
            ("dedup", f"{totals.dedup_ratio:.2f}x (saves {approx(report['saved_bytes'])})"),
            ("links", totals.links),
        ]
    )
    click.echo("\nuser                 used        objects  quota")
    for u in users:
        click.echo(f"{u.name:<20} {approx(u.usage_bytes):>10}  {u.object_count:>7}  {limit(u.quota)}")
    for job, run in sorted(jobs.items()):
        found = ", ".join(f"{kind} {value}" for kind, value in run.last_findings.items() if value) or "nothing"
        click.echo(f"\n{job}: {run.runs} runs, the last ended {timestamp(run.last_finished)}: {found}")
    if links:
        click.echo("\nlink        downloads  served      owner                object")
        for link in links:
            served = approx(link.bytes_served)
            click.echo(f"{link.id:<10}  {link.downloads:>9}  {served:>10}  {link.owner:<20} {link.bucket}/{link.key}")


def approx(nbytes: int) -> str:
    """`3.0 MiB`: a size for reading, not for parsing back (`--json` has the exact bytes)."""
    size, unit = float(nbytes), 0
    while size >= 1024 and unit < len(UNITS) - 1:
        size, unit = size / 1024, unit + 1
    return f"{nbytes} B" if unit == 0 else f"{size:.1f} {UNITS[unit]}"
