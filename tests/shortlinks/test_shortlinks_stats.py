"""Download statistics through the real server: exact under concurrency, across two workers,
batched (no synced write per download), and burn-after-N exact at the moment of the download."""

from __future__ import annotations

import asyncio
import time

import httpx
from processes import StartServer
from shortlinks_site import Site

DATA = bytes(range(256)) * 16  # 4096 bytes


def link_row(site: Site, link_id: str, url: str | None = None) -> dict[str, object]:
    response = httpx.get(f"{url or site.url}/api/links/{link_id}", headers=site.auth("alice"))
    assert response.status_code == 200, response.text
    row: dict[str, object] = response.json()
    return row


def wait_for(site: Site, link_id: str, field: str, want: int, url: str | None = None) -> dict[str, object]:
    """Batched counts land within about a second (the flush interval); wait up to ten."""
    deadline = time.monotonic() + 10
    while True:
        row = link_row(site, link_id, url)
        if row[field] == want or time.monotonic() > deadline:
            return row
        time.sleep(0.2)


async def fetch_all(urls: list[str], headers: dict[str, str] | None = None) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        return await asyncio.gather(*(client.get(u, headers=headers) for u in urls))


def test_concurrent_downloads_are_counted_exactly(site: Site) -> None:
    link_id = site.link_for("hot.bin", DATA)
    responses = asyncio.run(fetch_all([f"{site.url}/s/{link_id}"] * 200))
    assert all(r.status_code == 200 and r.content == DATA for r in responses)
    row = wait_for(site, link_id, "downloads", 200)
    assert (row["downloads"], row["bytes_served"]) == (200, 200 * len(DATA))
    assert isinstance(row["last_download"], float)


def test_ranges_add_bytes_and_only_a_start_counts_as_a_download(site: Site) -> None:
    link_id = site.link_for("clip.mp4", DATA, "video/mp4")
    for header in ("bytes=0-99", "bytes=100-199", "bytes=-50"):
        assert httpx.get(f"{site.url}/s/{link_id}", headers={"range": header}).status_code == 206
    row = wait_for(site, link_id, "bytes_served", 250)
    assert (row["downloads"], row["bytes_served"]) == (1, 250)


def test_a_large_file_sent_from_its_chunk_files_is_counted_exactly(site: Site) -> None:
    """Above 64 KiB the bytes leave from the chunk files (sendfile): the same bytes, the same counts."""
    big = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB: several chunks
    link_id = site.link_for("film.mp4", big, "video/mp4")
    whole = httpx.get(f"{site.url}/s/{link_id}")
    assert whole.status_code == 200 and whole.content == big
    seek = httpx.get(f"{site.url}/s/{link_id}", headers={"range": "bytes=1000000-2999999"})
    assert seek.status_code == 206 and seek.content == big[1000000:3000000]
    row = wait_for(site, link_id, "bytes_served", len(big) + 2000000)
    assert (row["downloads"], row["bytes_served"]) == (1, len(big) + 2000000)


def test_download_budget_is_exact_under_concurrency(site: Site) -> None:
    link_id = site.link_for("limited.bin", DATA, max_downloads=25)
    statuses = [r.status_code for r in asyncio.run(fetch_all([f"{site.url}/s/{link_id}"] * 60))]
    assert (statuses.count(200), statuses.count(410)) == (25, 35)
    assert link_row(site, link_id)["downloads"] == 25


def test_two_workers_count_every_download(site: Site, start_server: StartServer) -> None:
    """A second server with two workers on the same data dir: all three processes count into the
    same rows, each with its own batch, and nothing is lost or counted twice."""
    link_id = site.link_for("shared.bin", DATA)
    two = start_server("--workers", "2")
    urls = [f"{two.url}/s/{link_id}"] * 150 + [f"{site.url}/s/{link_id}"] * 50
    responses = asyncio.run(fetch_all(urls))
    assert all(r.status_code == 200 for r in responses)
    row = wait_for(site, link_id, "downloads", 200)
    assert (row["downloads"], row["bytes_served"]) == (200, 200 * len(DATA))
