"""The bench's table (terminal and Markdown), its JSON and its chart, under bench/results/."""

from __future__ import annotations

import json
import platform
import subprocess
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _fmt(value, pattern: str = "{:,.0f}") -> str:
    return "—" if value is None or value != value else pattern.format(value)


def _ratios(rows) -> dict[int, tuple]:
    """For each gateway row: x its plain/raw route, x PostGraphile's figure for the same operation on PostgreSQL,
    the same two by server CPU, and x the generic path (gateway@generic) by req/s and by CPU."""
    rps = {(row.backend, row.contender.op, row.contender.kind): row.median("rps") for row in rows}
    cpu = {(row.backend, row.contender.op, row.contender.kind): row.median("cpu_ms") for row in rows}
    ratios = {}
    for index, row in enumerate(rows):
        if not row.contender.kind.startswith("gateway"):
            continue
        own = rps[(row.backend, row.contender.op, row.contender.kind)]
        plain = rps.get((row.backend, row.contender.op, "plain")) or rps.get((row.backend, row.contender.op, "raw"))
        peer = rps.get(("postgres", row.contender.op, "postgraphile"))
        own_cpu = cpu[(row.backend, row.contender.op, row.contender.kind)]
        plain_cpu = cpu.get((row.backend, row.contender.op, "plain")) or cpu.get((row.backend, row.contender.op, "raw"))
        peer_cpu = cpu.get(("postgres", row.contender.op, "postgraphile"))
        generic = rps.get((row.backend, row.contender.op, "gateway@generic"))
        generic_cpu = cpu.get((row.backend, row.contender.op, "gateway@generic"))
        ratios[index] = (own / plain if own and plain else None, own / peer if own and peer else None,
                         plain_cpu / own_cpu if own_cpu and plain_cpu else None,
                         peer_cpu / own_cpu if own_cpu and peer_cpu else None,
                         own / generic if own and generic and row.contender.kind != "gateway@generic" else None,
                         generic_cpu / own_cpu if own_cpu and generic_cpu and row.contender.kind != "gateway@generic"
                         else None)
    return ratios


def table(rows) -> tuple[list[str], list[list[str]]]:
    header = ["backend", "operation", "contender", "req/s", "CPU ms/req", "p50 ms", "p99 ms", "c=1 p50", "c=1 p99",
              "x plain/raw", "x PostGraphile", "x plain/raw (CPU)", "x PostGraphile (CPU)", "x generic",
              "x generic (CPU)", "SQL stmts", "round trips", "RSS MiB", "errors"]
    ratios = _ratios(rows)
    body = []
    for index, row in enumerate(rows):
        to_plain, to_peer, cpu_plain, cpu_peer, to_generic, cpu_generic = ratios.get(index, (None,) * 6)
        body.append([
            row.backend, row.contender.op, row.contender.kind, _fmt(row.median("rps"), "{:,.1f}"),
            _fmt(row.median("cpu_ms"), "{:,.2f}"),
            _fmt(row.median("p50_ms"), "{:,.1f}"), _fmt(row.median("p99_ms"), "{:,.1f}"),
            _fmt(row.median("p50_ms", "unloaded"), "{:,.2f}"), _fmt(row.median("p99_ms", "unloaded"), "{:,.2f}"),
            _fmt(to_plain, "{:.2f}"), _fmt(to_peer, "{:.2f}"), _fmt(cpu_plain, "{:.2f}"), _fmt(cpu_peer, "{:.2f}"),
            _fmt(to_generic, "{:.2f}"), _fmt(cpu_generic, "{:.2f}"),
            _fmt(row.statements, "{:g}"),
            _fmt(row.round_trips, "{:g}"), _fmt(row.rss_mib, "{:,.0f}"),
            str(sum(run.errors for run in row.runs + row.unloaded)),
        ])
    return header, body


def write_report(rows, args, notes, soak, console) -> None:
    from rich.table import Table

    header, body = table(rows)
    rich_table = Table(*header, title="billing-graphql bench (medians)")
    for line in body:
        rich_table.add_row(*line)
    console.print(rich_table)
    for note in notes:
        console.print(f"- {note}")
    for key, value in soak.items():
        console.print(f"- {key}: {value:,.1f}")

    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{stamp}{'-' + args.label if args.label else ''}"
    command = "python bench/run.py " + " ".join(
        f"--{key.replace('_', '-')} {value}" for key, value in vars(args).items() if value not in (None, "", 0))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=RESULTS.parent).stdout.strip()
    lines = [f"# bench {name}", "", f"`{command}` at {commit} on {platform.node()} ({platform.python_version()}); "
             f"server on CPU 0, wrk -t1 -c{args.connections} on CPU 1; medians of {args.runs} interleaved runs of "
             f"{args.duration:g} s (c=1 columns: {args.unloaded_duration:g} s runs).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(line) + " |" for line in body]
    lines += [""] + [f"- {note}" for note in notes] + [f"- {key}: {value:,.1f}" for key, value in soak.items()]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    raw = [{"backend": row.backend, "op": row.contender.op, "kind": row.contender.kind,
            "runs": [vars(run) for run in row.runs], "unloaded": [vars(run) for run in row.unloaded],
            "statements": row.statements, "round_trips": row.round_trips, "rss_mib": row.rss_mib} for row in rows]
    (RESULTS / f"{name}.json").write_text(json.dumps({"command": command, "commit": commit, "rows": raw,
                                                      "notes": notes, "soak": soak}, indent=1))
    try:
        chart(rows, RESULTS / f"{name}.png", args.connections)
    except ImportError:  # the bench extra's matplotlib is not installed: the tables are all there is
        console.print(f"written: bench/results/{name}.md, .json (no .png: matplotlib is not installed)")
        return
    console.print(f"written: bench/results/{name}.md, .json, .png")


def chart(rows, path: Path, connections: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = list(dict.fromkeys(row.backend for row in rows))
    kinds = list(dict.fromkeys(row.contender.kind for row in rows))
    palette = ["#4c72b0", "#55a868", "#8c8c8c", "#c44e52", "#8172b2", "#ccb974", "#64b5cd", "#da8bc3"]
    colors = {kind: palette[index % len(palette)] for index, kind in enumerate(kinds)}
    figure, axes = plt.subplots(len(backends), 1, figsize=(12, 4.5 * len(backends)), squeeze=False)
    for axis, backend in zip(axes[:, 0], backends):
        ops = list(dict.fromkeys(row.contender.op for row in rows if row.backend == backend))
        width = 0.8 / len(kinds)
        for offset, kind in enumerate(kinds):
            values = []
            for op in ops:
                row = next((r for r in rows if r.backend == backend and r.contender.op == op
                            and r.contender.kind == kind), None)
                values.append((row.median("rps") or 0) if row else 0)
            if any(values):
                positions = [i + (offset - (len(kinds) - 1) / 2) * width for i in range(len(ops))]
                axis.bar(positions, values, width, label=kind, color=colors[kind])
        axis.set_yscale("log")
        axis.set_xticks(range(len(ops)))
        axis.set_xticklabels(ops, rotation=20, ha="right")
        axis.set_ylabel("req/s (median, log)")
        axis.set_title(f"{backend}: one server process on one core, wrk c={connections} on the other")
        axis.legend()
        axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
