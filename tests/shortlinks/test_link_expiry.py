"""Link expiry end to end with an injected clock: servers (and `pyblob gc`) on the same data dir with
PYBLOB_CLOCK_OFFSET_SECONDS see the future; the TTL, the 90-day idle rule, the sweep that deletes the
files uploaded for spent links (quota given back) and the tombstones that keep answering 410."""

from __future__ import annotations

import time

import httpx
from botocore.exceptions import ClientError
from processes import RunPyblob, StartServer
from rest_helpers import me, uploaded_id
from shortlinks_site import Site

DAY = 86400


def status(url: str, link_id: str) -> int:
    return httpx.get(f"{url}/s/{link_id}").status_code


def future(start_server: StartServer, seconds: float, **env: str) -> str:
    return start_server(env={"PYBLOB_CLOCK_OFFSET_SECONDS": str(seconds), **env}).url


def object_exists(site: Site, bucket: str, key: str) -> bool:
    try:
        site.s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError:
        return False


def listed(site: Site) -> dict[str, dict[str, object]]:
    files = httpx.get(f"{site.url}/list", headers=site.auth("alice")).json()
    return {f["file_id"]: f for f in files}


def test_ttl_and_idle_expiry_then_gc_deletes_the_files(
    site: Site, start_server: StartServer, run_pyblob: RunPyblob
) -> None:
    short = uploaded_id(site, b"s" * 1000, "short.txt", expires_in=3600)
    idle = uploaded_id(site, b"i" * 2000, "idle.txt")
    busy = uploaded_id(site, b"b" * 3000, "busy.txt")
    files = {link_id: listed(site)[link_id] for link_id in (short, idle, busy)}
    used = me(site)["total_size"]

    assert [status(future(start_server, 2 * 3600), x) for x in (short, idle, busy)] == [410, 200, 200]
    in_60_days = future(start_server, 60 * DAY)
    assert status(in_60_days, busy) == 200  # downloaded on day 60: idle time starts again
    time.sleep(1.5)  # the download's count is flushed within a second
    in_100_days = future(start_server, 100 * DAY)
    assert [status(in_100_days, x) for x in (short, idle, busy)] == [410, 410, 200]

    # Nothing is deleted until a sweep (test servers sweep only when told to, see `clean_env`).
    assert me(site)["total_size"] == used
    result = run_pyblob("gc", env={"PYBLOB_CLOCK_OFFSET_SECONDS": str(100 * DAY)})
    assert result.returncode == 0, result.stderr
    assert "links expired" in result.stdout
    assert me(site)["total_size"] == used - 3000
    assert [status(in_100_days, x) for x in (short, idle, busy)] == [410, 410, 200]  # tombstones
    assert set(listed(site)) >= {busy} and not set(listed(site)) & {short, idle}
    bucket = "alice-files"
    assert not object_exists(site, bucket, f"{short}/short.txt")
    assert not object_exists(site, bucket, f"{idle}/idle.txt")
    assert object_exists(site, bucket, f"{busy}/busy.txt")
    assert files[busy]["file_name"] == "busy.txt"


def test_the_server_sweeps_in_the_background(site: Site, start_server: StartServer) -> None:
    link_id = uploaded_id(site, b"x" * 500, "soon.txt", expires_in=60)
    used = me(site)["total_size"]
    future(start_server, 120, PYBLOB_LINK_SWEEP_INTERVAL_SECONDS="0.2")
    deadline = time.monotonic() + 10
    while me(site)["total_size"] != used - 500 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert me(site)["total_size"] == used - 500
    assert status(site.url, link_id) == 410


def test_links_to_s3_objects_expire_without_deleting_them(site: Site, run_pyblob: RunPyblob) -> None:
    link_id = site.link_for("keep.txt", b"kept", "text/plain", expires_in=10)
    result = run_pyblob("gc", env={"PYBLOB_CLOCK_OFFSET_SECONDS": "20"})
    assert result.returncode == 0, result.stderr
    assert status(site.url, link_id) == 410  # swept by gc's clock: a tombstone now, whatever the clock
    assert object_exists(site, "shared-files", "keep.txt")
