"""Throughput and latency of the client query mix over HTTP, as a ratio against a raw Litestar
endpoint served the same way in the same run.

    .venv/bin/python bench/run.py [--requests 2000] [--concurrency 16]

Both servers run as one uvicorn worker each on this machine; the load comes from this process.
Figures go into issue notes, never into a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MIX = ["spa/Viewer.graphql", "spa/Plans.graphql", "spa/PlanBySlug.graphql"]


def _operation(path: str) -> dict:
    import json
    import re

    text = (ROOT / "queries" / path).read_text()
    header = dict(re.findall(r"^#\s*(variables):\s*(.+)$", text, re.MULTILINE))
    return {"query": text, "variables": json.loads(header.get("variables", "{}"))}


def _start(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", *args, "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env, cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": "{ __typename }"}, timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"server on port {port} did not start")


async def _load(url: str, bodies: list[dict], headers: dict[str, str], requests: int, concurrency: int):
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency)) as client:
        async def worker() -> None:
            nonlocal errors
            for index in counter:
                body = bodies[index % len(bodies)]
                start = time.perf_counter()
                response = await client.post(url, json=body, headers=headers)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200 or "errors" in response.json():
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": requests / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1] * 1000,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    env = {**os.environ, "BILLING_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
           "BILLING_RATE_LIMIT": "0"}
    seeded = subprocess.run([sys.executable, "-m", "billing_graphql.cli", "seed-demo"], env=env, cwd=ROOT,
                            capture_output=True, text=True, check=True)
    keys = dict(line.split("=", 1) for line in seeded.stdout.split())
    headers = {"authorization": f"Bearer {keys['OWNER']}"}
    bodies = [_operation(path) for path in MIX]

    gateway = _start(["billing_graphql.app:create_app", "--factory"], env, 8871)
    baseline = _start(["bench.baseline_app:app"], env, 8872)
    try:
        # Warm both up, then measure them alternately so that noise hits both.
        asyncio.run(_load("http://127.0.0.1:8871/graphql", bodies, headers, 200, args.concurrency))
        asyncio.run(_load("http://127.0.0.1:8872/graphql", bodies, headers, 200, args.concurrency))
        results = {"gateway": [], "baseline": []}
        for _ in range(3):
            results["baseline"].append(asyncio.run(
                _load("http://127.0.0.1:8872/graphql", bodies, headers, args.requests, args.concurrency)))
            results["gateway"].append(asyncio.run(
                _load("http://127.0.0.1:8871/graphql", bodies, headers, args.requests, args.concurrency)))
    finally:
        gateway.terminate()
        baseline.terminate()
    best = {name: max(runs, key=lambda r: r["rps"]) for name, runs in results.items()}
    for name, result in best.items():
        print(f"{name:9s} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.1f} ms  "
              f"p95 {result['p95_ms']:6.1f} ms  errors {result['errors']}")
    print(f"gateway/baseline throughput ratio: {best['gateway']['rps'] / best['baseline']['rps']:.3f} "
          f"({args.requests} requests x3, concurrency {args.concurrency}, mix {', '.join(MIX)})")


if __name__ == "__main__":
    main()
