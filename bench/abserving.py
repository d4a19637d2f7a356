"""Two versions of pyblob side by side: is a change to the serving path faster or slower?

    git worktree add /tmp/before <commit>
    python bench/abserving.py --before /tmp/before [--rounds 8] [--seconds 2] [--figures "GET 4k,S 4k"]

Starts `pyblob serve` twice with the same settings: the code of the checkout at --before (put first on
PYTHONPATH) and this checkout's. Both are pinned to core 0 and the load generator to core 1, as in
bench/serving.py, and the two take turns (before, after, then after, before, ...) for each round, so a
machine whose speed drifts treats both alike. The figure compared is the server's CPU time per
request (all its processes, from /proc), which a busy machine disturbs much less than requests per
second; both are printed, as medians of the rounds, with every round's CPU figure.

Figures: "GET 4k", "HEAD 4k", "GET 64k", "HEAD 64k" (presigned S3 requests) and "S 4k", "S 64k"
(a short link `/s/<id>` to the same objects).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
from contextlib import ExitStack
from pathlib import Path

import serving  # bench/serving.py, next to this file
from s3 import random_bytes, start_run  # bench/s3.py

VERSIONS = ("before", "after")


def start(stack: ExitStack, root: Path, version: str, before: Path, files: dict[str, bytes]) -> serving.Target:
    """One pyblob of `version` in its own dir under `root`, its objects and links made."""
    home = root / version
    home.mkdir()
    if version == "before":
        os.environ["PYTHONPATH"] = str(before)  # server_env() copies the environment
    try:
        target = serving.start_pyblob(stack, home)
    finally:
        os.environ.pop("PYTHONPATH", None)
    serving.prepare_s3(target, files)
    target.urls.update({f"S {name}": url for name, url in serving.prepare_links(target, files).items()})
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the older version")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0, help="per figure, version and round")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--figures", default="GET 4k,HEAD 4k,GET 64k,S 4k,S 64k")
    parser.add_argument("--dir", type=Path, default=Path("/tmp"), help="parent of the run's scratch dir")
    args = parser.parse_args()
    figures = [f.strip() for f in args.figures.split(",")]
    budget = int(len(figures) * 2 * args.rounds * (args.seconds + 5) + 600)
    root = start_run(args.dir, "abserving-", budget)
    serving.LOADGEN = serving.build_loadgen(root)
    files = {name: random_bytes(name, size) for name, size in serving.SMALL.items()}
    results: dict[tuple[str, str], list[serving.Load]] = {}
    try:
        with ExitStack() as stack:
            targets = {v: start(stack, root, v, args.before.resolve(), files) for v in VERSIONS}
            for n in range(args.rounds):
                for version in VERSIONS if n % 2 == 0 else VERSIONS[::-1]:
                    target = targets[version]
                    for figure in figures:
                        method = figure.split()[0] if figure.split()[0] in ("GET", "HEAD") else "GET"
                        run = serving.load(target, target.urls[figure], method, args.connections, args.seconds)
                        results.setdefault((figure, version), []).append(run)
                print(f"round {n + 1} of {args.rounds}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'figure':<10} {'CPU µs/req before':>18} {'after':>8} {'change':>8}   {'req/s before':>12} {'after':>8}")
    for figure in figures:
        before, after = results[(figure, "before")], results[(figure, "after")]
        cpu = [statistics.median(r.cpu_us for r in runs) for runs in (before, after)]
        rps = [statistics.median(r.rps for r in runs) for runs in (before, after)]
        print(
            f"{figure:<10} {cpu[0]:>18.1f} {cpu[1]:>8.1f} {cpu[1] / cpu[0] - 1:>+8.1%}   {rps[0]:>12.0f} {rps[1]:>8.0f}"
        )
        print(f"{'':<10} rounds before {[round(r.cpu_us) for r in before]}, after {[round(r.cpu_us) for r in after]}")


if __name__ == "__main__":
    main()
