"""Where a gateway process spends its time under load: py-spy on one operation, summed by package.

    .venv/bin/python bench/profile.py --pid PID [--seconds 25]     # while wrk drives the server

Writes bench/results/profile-<time>.svg (flame graph) and .txt (py-spy's raw stacks), and prints the
share of samples per package (inclusive: a sample counts for every package on its stack) and the
top functions by own time.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = {
    "graphql-core": "(graphql/", "strawberry": "(strawberry/", "sqlalchemy": "(sqlalchemy/",
    "asyncpg": "(asyncpg/", "aiosqlite": "(aiosqlite/", "litestar": "(litestar/", "uvicorn": "(uvicorn/",
    "asyncio": "(asyncio/", "billing_graphql": "(billing_graphql/", "orjson/json": "json", "decimal": "decimal",
    "gc": "gc_collect", "dataloader": "dataloader.py",
}


def summarize(raw: Path) -> str:
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        for name, marker in PACKAGES.items():
            if any(marker in frame for frame in frames):
                inclusive[name] += samples
        own[frames[-1]] += samples
    lines = [f"{total} samples"]
    lines += [f"{name:20s} {100 * count / total:5.1f}% (inclusive)" for name, count in inclusive.most_common()]
    lines += ["", "top functions by own time:"]
    lines += [f"{100 * count / total:5.1f}%  {frame}" for frame, count in own.most_common(20)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pid", type=int)
    parser.add_argument("--seconds", type=int, default=25)
    parser.add_argument("--label", default="invoices")
    parser.add_argument("--summarize", type=Path, help="only summarize an earlier raw file")
    args = parser.parse_args()
    if args.summarize:
        print(summarize(args.summarize))
        return
    stamp = time.strftime("%Y%m%d-%H%M%S")
    raw = RESULTS / f"profile-{stamp}-{args.label}.txt"
    svg = RESULTS / f"profile-{stamp}-{args.label}.svg"
    common = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(args.pid), "--duration", str(args.seconds), "--rate", "50", "--nonblocking"]
    subprocess.run([*common, "--format", "raw", "--output", str(raw)], check=True, capture_output=True)
    summary = summarize(raw)
    (RESULTS / f"profile-{stamp}-{args.label}.summary.txt").write_text(summary + "\n")
    print(summary)
    subprocess.run([*common[:4], "--duration", "8", "--rate", "50", "--nonblocking", "--format", "flamegraph",
                    "--output", str(svg)], capture_output=True)


if __name__ == "__main__":
    main()
