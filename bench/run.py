"""The benchmark: every operation of queries/spa and queries/partner (and `{ viewer { role } }`) over HTTP,
against a plain route running the same SQL, a raw route and PostGraphile 5 on the same tables.

    .venv/bin/pip install -e ".[bench]" && .venv/bin/python bench/run.py      # see bench/README.md

Each server runs as one process pinned to CPU 0 (taskset); wrk (one thread, 32 connections) is pinned to
CPU 1. Contenders are interleaved, each run is `--duration` seconds, and the table gives medians of
`--runs` runs. Figures go into bench/README.md and notes, never into a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import host_noise  # noqa: E402  (bench/ on the path first, as for bench.seed)
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
PEER = BENCH / "peers" / "postgraphile"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_DATABASE = "billing_bench"
SERVER_CPU, LOAD_CPU = "0", "1"
VIEWER_ROLE = "{ viewer { role } }"
BENCH_VARIABLES = {"Invoices": {"first": 50}, "InvoicesAdHoc": {"first": 50}}  # the page size the issue measures
PLAIN_ROUTES = {"Invoices": "/plain/invoices", "SubscriptionPage": "/plain/subscription", "ViewerRole": "/raw",
                "ViewerRoleText": "/raw"}
DEFAULT_ROLE = {"spa": "OWNER", "admin": "SUPER_ADMIN", "partner": "PARTNER"}


def ad_hoc_invoices(text: str, alias: str = "number") -> str:
    """Issue 24's ad-hoc query: the registered invoices page with one field added (retryCount) and one alias
    (``alias: invoiceNumber``): not a registered document, planned when first seen."""
    return text.replace("query Invoices(", "query InvoicesAdHoc(", 1).replace(
        "        invoiceNumber\n", f"        invoiceNumber\n        {alias}: invoiceNumber\n        retryCount\n", 1)


@dataclass
class Operation:
    name: str
    body: dict
    role: str
    statements_declared: int | None = None


@dataclass
class Contender:
    """One thing wrk drives: a server and the request it is sent."""

    op: str
    kind: str  # gateway | plain | raw | postgraphile
    server: str
    path: str
    body: dict
    auth: str | None

    @property
    def label(self) -> str:
        return self.kind


@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    cwd: Path = ROOT
    process: subprocess.Popen | None = None
    ready_path: str = "/graphql"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *self.command], env=self.env, cwd=self.cwd,
            stdout=subprocess.DEVNULL, stderr=open(RESULTS / f".{self.name}.log", "w"),
        )
        deadline = time.monotonic() + 240  # a loaded 2-core machine takes its time
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited; see {RESULTS / f'.{self.name}.log'}")
            try:
                httpx.post(self.url(self.ready_path), json={"query": "{ __typename }"}, timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.3)
        self.stop()
        raise SystemExit(f"{self.name} did not start on port {self.port}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def rss_mib(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@dataclass
class Result:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float | None = None  # the server's own CPU time per response: steady under other load


def _cpu_seconds(server: Server) -> float:
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def settle(servers: list[Server], *, quiet: float = 0.3, limit: float = 10.0) -> float:
    """Wait until no server spends CPU for ``quiet`` seconds (or ``limit`` passed); returns the seconds waited.

    wrk stops at its deadline with up to -c requests still queued in the server it loaded, and every server
    shares one core: without this, the next run (often the same server's c=1 run) starts behind that backlog
    (the generic path's 32 queued requests are ~1.4 s of CPU) and reports it as its own latency."""
    began = time.monotonic()
    last = [_cpu_seconds(server) for server in servers]
    still_since = time.monotonic()
    while time.monotonic() - began < limit:
        time.sleep(0.05)
        now = [_cpu_seconds(server) for server in servers]
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            break
    return time.monotonic() - began


def timed(server: Server, contender: Contender, **options) -> Result:
    """One wrk run against ``server``, with the CPU time the server spent on it."""
    before = _cpu_seconds(server)
    result = wrk(server.url(contender.path), contender.body, contender.auth, **options)
    if result.requests:
        result.cpu_ms = (_cpu_seconds(server) - before) * 1000 / result.requests
    return result


@dataclass
class Row:
    backend: str
    contender: Contender
    runs: list[Result] = field(default_factory=list)
    unloaded: list[Result] = field(default_factory=list)
    statements: float | None = None
    round_trips: float | None = None
    rss_mib: float | None = None

    def median(self, attribute: str, runs: str = "runs") -> float | None:
        values = [value for run in getattr(self, runs) if (value := getattr(run, attribute)) is not None
                  and value == value and run.requests]  # runs that completed nothing have no latency
        return statistics.median(values) if values else None


# --- operations -----------------------------------------------------------------------------------------

def load_operations(keys: dict[str, str], values: dict[str, str], only: set[str] | None) -> list[Operation]:
    operations = []
    for folder in ("spa", "partner", "admin"):
        for path in sorted((ROOT / "queries" / folder).glob("*.graphql")):
            text = path.read_text()
            if re.search(r"^mutation\s", text, re.MULTILINE):
                continue  # a write repeated 10,000 times measures its refusals (see bench/README.md)
            headers = dict(re.findall(r"^#\s*(role|variables|statements):\s*(.+)$", text, re.MULTILINE))
            variables = _substitute(json.loads(headers.get("variables", "{}")), values)
            variables.update(BENCH_VARIABLES.get(path.stem, {}))
            operations.append(Operation(
                name=path.stem, body={"query": text, "variables": variables},
                role=headers.get("role", DEFAULT_ROLE[folder]).strip(),
                statements_declared=int(headers["statements"]) if "statements" in headers else None))
    # The issue's `{ viewer { role } }` as free text (not a registered document: planned when first seen);
    # queries/spa/ViewerRole.graphql is the same selection registered (planned at start-up).
    operations.append(Operation(name="ViewerRoleText", body={"query": VIEWER_ROLE}, role="OWNER"))
    invoices = next(op for op in operations if op.name == "Invoices")
    operations.append(Operation(name="InvoicesAdHoc", body={"query": ad_hoc_invoices(invoices.body["query"]),
                                                            "variables": invoices.body["variables"]}, role="OWNER"))
    return [op for op in operations if only is None or op.name in only]


def _substitute(variables: dict, values: dict[str, str]) -> dict:
    """Replace the headers' "@organization", "@plan:SLUG", ... strings by the seeded objects' IDs."""
    text = json.dumps(variables)
    return json.loads(re.sub(r'"(@[^"]+)"', lambda match: json.dumps(values.get(match[1], match[1])), text))


async def _placeholders(url: str) -> dict[str, str]:
    from sqlalchemy import select
    from strawberry import relay

    from billing_graphql.db.engine import Database
    from billing_graphql.db.models import Addon, Coupon, Invoice, Organization, Plan
    from billing_graphql.demo import DEMO_ORGANIZATION_EXTERNAL_ID

    db = Database.from_url(url)
    try:
        async with db.read() as session:
            organization_id = await session.scalar(
                select(Organization.id).where(Organization.external_id == DEMO_ORGANIZATION_EXTERNAL_ID))
            invoice_id = await session.scalar(select(Invoice.id).where(Invoice.organization_id == organization_id)
                                              .order_by(Invoice.created_at).limit(1))
            plans = (await session.execute(select(Plan.slug, Plan.id))).all()
            addons = (await session.execute(select(Addon.slug, Addon.id))).all()
            coupons = (await session.execute(select(Coupon.code, Coupon.id))).all()
        endpoint_id, delivery_id = await _webhook_endpoint(db, organization_id)
    finally:
        await db.dispose()
    values = {"@webhookEndpoint": relay.to_base64("WebhookEndpoint", endpoint_id),
              "@webhookDelivery": relay.to_base64("WebhookDelivery", delivery_id),
              "@organization": relay.to_base64("Organization", organization_id),
              "@invoice": relay.to_base64("Invoice", invoice_id), "@organization_uuid": str(organization_id)}
    values.update({f"@plan:{slug}": relay.to_base64("Plan", key) for slug, key in plans})
    values.update({f"@addon:{slug}": relay.to_base64("Addon", key) for slug, key in addons})
    values.update({f"@coupon:{code}": relay.to_base64("Coupon", key) for code, key in coupons})
    return values


async def _webhook_endpoint(db, organization_id) -> tuple:
    """A webhook endpoint of the demo organization with a few test deliveries (for the webhook pages)."""
    from datetime import UTC, datetime

    from billing_graphql.domain.actors import Actor
    from billing_graphql.domain.roles import Role
    from billing_graphql.services.webhooks import deliveries, endpoints

    owner = Actor(role=Role.OWNER, organization_id=organization_id, subject="bench:owner")
    now = datetime.now(UTC)
    endpoint, _ = await endpoints.create_endpoint(db, owner, url="http://127.0.0.1:9/hooks", events=["*"],
                                                  description="bench", organization_id=None, production=False,
                                                  now=now)
    delivery = None
    for _ in range(5):
        delivery = await deliveries.send_test(db, owner, endpoint.id, now=now)
    return endpoint.id, delivery.id


# --- data sets ------------------------------------------------------------------------------------------

def seed_all(backends: list[str], scale: int, workdir: Path, database: str = PG_DATABASE) -> dict[str, dict]:
    """Seed each backend afresh; returns {backend: {"url", "keys", "values"}}."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bench.seed import seed

    datasets = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        for backend in backends:
            if backend == "sqlite":
                url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
            else:
                subprocess.run(["psql", "-q", PG_ADMIN, "-c", f"DROP DATABASE IF EXISTS {database}",
                                "-c", f"CREATE DATABASE {database}"], check=True, capture_output=True)
                url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
            keys = asyncio.run(seed(url, scale=scale, progress=bar))
            datasets[backend] = {"url": url, "keys": keys, "values": asyncio.run(_placeholders(url))}
    return datasets


# --- servers --------------------------------------------------------------------------------------------

def _env(url: str) -> dict[str, str]:
    # One public URL for every server: `serve` otherwise links to its own port (pdfUrl), the plain route to 8000.
    return {**os.environ, "BILLING_DATABASE_URL": url, "BILLING_RATE_LIMIT": "0", "BILLING_PRODUCTION": "1",
            "BILLING_PUBLIC_URL": "https://billing.example",
            # Up to five servers share one PostgreSQL (max_connections 100) and each keeps what it opened.
            "BILLING_DB_POOL_SIZE": "16",
            "BILLING_JWT_SECRET": "bench-secret-bench-secret-bench-secret", "PYTHONUNBUFFERED": "1"}


def python_servers(url: str, base_port: int, variants: dict[str, str] | None = None) -> dict[str, Server]:
    env = _env(url)
    servers = {
        # The gateway exactly as operators start it.
        "gateway": Server("gateway", [sys.executable, "-m", "billing_graphql.cli", "serve", "--port", str(base_port)],
                          env, base_port),
        # The same gateway with the compiled plans of the registered documents turned off: every request
        # through graphql-core (the "generic path").
        "gateway@generic": Server("gateway@generic",
                                  [sys.executable, "-m", "billing_graphql.cli", "serve", "--port", str(base_port + 8)],
                                  {**env, "BILLING_COMPILED_DOCUMENTS": "0"}, base_port + 8),
        # The plain and raw routes under the same server options (bench/serve_plain.py).
        "plain": Server("plain", [sys.executable, str(BENCH / "serve_plain.py"), str(base_port + 1)], env,
                        base_port + 1, ready_path="/raw"),
    }
    # Earlier states of the gateway (`--variant NAME=DIR`, DIR holding a copy of src/), measured in the
    # same interleaved runs: the before/after of each tuning step under the same conditions.
    for number, (name, path) in enumerate((variants or {}).items()):
        port = base_port + 3 + number
        servers[f"gateway@{name}"] = Server(
            f"gateway@{name}", [sys.executable, "-m", "billing_graphql.cli", "serve", "--port", str(port)],
            {**env, "PYTHONPATH": str(Path(path) / "src")}, port)
    return servers


def postgraphile_server(url: str, port: int) -> tuple[Server | None, str | None]:
    """PostGraphile 5 under Node 22 (npm's `node` package when the machine's Node is older)."""
    if shutil.which("npm") is None:
        return None, "npm is not installed"
    if not (PEER / "node_modules" / "postgraphile").exists():
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=PEER, capture_output=True, text=True)
        if done.returncode != 0:
            return None, f"npm install failed: {done.stderr.strip()[-300:]}"
    node = _node22()
    if node is None:
        return None, "no Node >= 22 (neither the machine's nor npm's `node` package)"
    database = url.replace("postgresql+asyncpg://", "postgres://")
    env = {**os.environ, "DATABASE_URL": database, "PORT": str(port), "NODE_ENV": "production"}
    return Server("postgraphile", [node, "server.mjs"], env, port, cwd=PEER), None


def _node22() -> str | None:
    for candidate in (shutil.which("node"), str(PEER / "node_modules" / ".bin" / "node")):
        if candidate and Path(candidate).exists():
            version = subprocess.run([candidate, "--version"], capture_output=True, text=True).stdout.strip()
            if version.startswith("v") and int(version[1:].split(".")[0]) >= 22:
                return candidate
    return None


# --- load -----------------------------------------------------------------------------------------------

def wrk(url: str, body: dict, auth: str | None, *, duration: float, connections: int, distinct: int = 0) -> Result:
    """``distinct``: ``body`` is a template (``%d`` in its text) of that many distinct documents, cycled."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(body, handle)
    env = {**os.environ, "BENCH_BODY": handle.name, "BENCH_TEMPLATE": handle.name, "BENCH_AUTH": auth or "",
           "BENCH_DISTINCT": str(distinct)}
    script = "post_distinct.lua" if distinct else "post.lua"
    command = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
               "-s", str(BENCH / "wrk" / script), url]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    os.unlink(handle.name)
    line = next((line for line in done.stdout.splitlines() if line.startswith("BENCH ")), None)
    if line is None:
        raise SystemExit(f"wrk failed: {done.stdout}\n{done.stderr}")
    data = json.loads(line[6:])
    seconds = data["duration_us"] / 1e6
    if data["requests"] == 0:  # nothing came back within the run: no latency to report
        return Result(requests=0, rps=0.0, p50_ms=float("nan"), p99_ms=float("nan"),
                      errors=data["errors"] + data["socket_errors"])
    return Result(requests=data["requests"], rps=data["requests"] / seconds, p50_ms=data["p50_us"] / 1000,
                  p99_ms=data["p99_us"] / 1000, errors=data["errors"] + data["socket_errors"])


def contenders_for(op: Operation, dataset: dict, servers: dict[str, Server]) -> list[Contender]:
    auth = f"Bearer {dataset['keys'][op.role]}"
    found = [Contender(op.name, name, name, "/graphql", op.body, auth)
             for name in servers if name.startswith("gateway@")]
    found.append(Contender(op.name, "gateway", "gateway", "/graphql", op.body, auth))
    if op.name in PLAIN_ROUTES:
        kind = "raw" if PLAIN_ROUTES[op.name] == "/raw" else "plain"
        found.append(Contender(op.name, kind, "plain", PLAIN_ROUTES[op.name], {}, auth))
    peer_query = PEER / f"{op.name}.graphql"
    if "postgraphile" in servers and peer_query.exists():
        variables = {"organizationId": dataset["values"]["@organization_uuid"], **BENCH_VARIABLES.get(op.name, {})}
        found.append(Contender(op.name, "postgraphile", "postgraphile", "/graphql",
                               {"query": peer_query.read_text(), "variables": variables}, None))
    return found


def check(contender: Contender, server: Server) -> dict:
    headers = {"authorization": contender.auth} if contender.auth else {}
    response = httpx.post(server.url(contender.path), json=contender.body, headers=headers, timeout=30)
    payload = response.json()
    if response.status_code != 200 or payload.get("errors"):
        raise SystemExit(f"{contender.op}/{contender.kind}: {response.status_code} {response.text[:500]}")
    return payload


# --- probe: statements and round trips on the wire -----------------------------------------------------

def probe(dataset: dict, operations: list[Operation], base_port: int, variants: dict[str, str],
          requests: int = 20) -> dict[tuple, tuple]:
    """(op, kind) -> (statements, round trips) per request, counted by a proxy in front of PostgreSQL."""
    from bench.pgcount import CountingProxy

    proxy_port = base_port + 9
    proxy = CountingProxy(proxy_port, ("127.0.0.1", 5432))
    url = dataset["url"].replace("127.0.0.1:5432", f"127.0.0.1:{proxy_port}")
    servers = python_servers(url, base_port, variants)
    for server in servers.values():  # the request's own statements: no billing run or webhook poll between them
        if "serve" in server.command:
            server.command = [*server.command, "--no-worker"]
    peer, _ = postgraphile_server(url, base_port + 2)
    if peer:
        servers["postgraphile"] = peer
    counts = {}
    try:
        for server in servers.values():
            server.start()
        for op in operations:
            for contender in contenders_for(op, dataset, servers):
                server = servers[contender.server]
                check(contender, server)  # warm: connections, prepared statements, caches
                check(contender, server)
                proxy.counter.reset()
                for _ in range(requests):
                    check(contender, server)
                counts[(op.name, contender.kind)] = (proxy.counter.statements / requests,
                                                     proxy.counter.round_trips / requests)
    finally:
        for server in servers.values():
            server.stop()
    return counts


# --- main -----------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1, help="x 200 organizations of 60 invoices (10: 2,000)")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--only", help="comma-separated operation names (e.g. Invoices,ViewerRole)")
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--unloaded-duration", type=float, default=4, help="seconds per c=1 run (0: skip)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-probe", dest="probe", action="store_false",
                        help="skip counting statements and round trips (saves starting every server twice)")
    parser.add_argument("--soak", type=int, default=0, help="also: RSS after 10,000 and after this many requests")
    parser.add_argument("--soak-backends", default="", help="the backends to soak (default: every one)")
    parser.add_argument("--distinct", type=int, default=0,
                        help="with --soak: ad-hoc documents, this many distinct ones (issue 24: 5000), instead of spa/Viewer")
    parser.add_argument("--soak-query", choices=("viewer", "invoices"), default="viewer",
                        help="with --distinct: the ad-hoc documents are `query Q<n> { viewer { role } }` (viewer) or "
                             "the ad-hoc invoices page with alias q<n> (invoices: SQL plans, an 80 KB answer each)")
    parser.add_argument("--cold", type=int, default=0,
                        help="also: the first request of this many new ad-hoc invoices documents, against their second")
    parser.add_argument("--label", default="", help="a name for this run's result files")
    parser.add_argument("--database", default=PG_DATABASE,
                        help="the PostgreSQL database to seed (dropped first); two runs at once need two")
    parser.add_argument("--port", type=int, default=18800, help="the first server port (20 a backend)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=DIR",
                        help="also serve the gateway from DIR/src (a copy of an earlier state), as gateway@NAME")
    args = parser.parse_args()
    variants = dict(item.split("=", 1) for item in args.variant)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    RESULTS.mkdir(exist_ok=True)
    backends = [name.strip() for name in args.backends.split(",")]
    only = set(args.only.split(",")) if args.only else None

    from rich.console import Console

    console = Console(width=220)
    workdir = Path(tempfile.mkdtemp(prefix="billing-bench-"))
    if args.soak and only is not None and not only & {"Invoices", "Viewer", "ViewerRoleText"}:
        raise SystemExit("--soak drives Invoices, Viewer or ViewerRoleText: add one to --only")
    datasets = seed_all(backends, args.scale, workdir, args.database)
    rows: list[Row] = []
    notes: list[str] = [host_noise.describe(host_noise.measure(), "before the runs")]
    soak: dict[str, float] = {}
    for number, backend in enumerate(backends):
        dataset = datasets[backend]
        base_port = args.port + 20 * number
        operations = load_operations(dataset["keys"], dataset["values"], only)
        counts = probe(dataset, operations, base_port + 10, variants) if backend == "postgres" and args.probe else {}
        servers = python_servers(dataset["url"], base_port, variants)
        if backend == "postgres":
            peer, reason = postgraphile_server(dataset["url"], base_port + 2)
            if peer:
                servers["postgraphile"] = peer
            else:
                notes.append(f"PostGraphile skipped: {reason}")
        try:
            for server in servers.values():
                server.start()
            backend_rows = []
            for op in operations:
                for contender in contenders_for(op, dataset, servers):
                    check(contender, servers[contender.server])
                    statements, trips = counts.get((op.name, contender.kind), (None, None))
                    backend_rows.append(Row(backend, contender, statements=statements, round_trips=trips))
            _compare_plain(backend_rows, servers, notes)
            for row in backend_rows:  # warm-up
                server = servers[row.contender.server]
                wrk(server.url(row.contender.path), row.contender.body, row.contender.auth, duration=2,
                    connections=args.connections)
            for run in range(args.runs):
                for row in backend_rows:
                    server = servers[row.contender.server]
                    console.print(f"[dim]{backend} run {run + 1}/{args.runs}: {row.contender.op} / "
                                  f"{row.contender.kind}[/dim]")
                    settle(list(servers.values()))
                    row.runs.append(timed(server, row.contender, duration=args.duration,
                                          connections=args.connections))
                    if args.unloaded_duration:
                        settle(list(servers.values()))
                        row.unloaded.append(timed(server, row.contender, duration=args.unloaded_duration,
                                                  connections=1))
            for row in backend_rows:
                row.rss_mib = servers[row.contender.server].rss_mib()
            if args.cold and "gateway" in servers:
                soak.update(_cold(servers, backend_rows, args.cold, backend))
            soaked = args.soak_backends.split(",") if args.soak_backends else backends
            if args.soak and "gateway" in servers and backend in soaked:
                try:  # a failed soak must not cost the timed rows above
                    soak.update(_soak(servers["gateway"], backend_rows, args.soak, backend, args.distinct,
                                      args.soak_query))
                except SystemExit as exc:
                    notes.append(f"{backend}: the soak stopped: {exc}")
            rows.extend(backend_rows)
        finally:
            for server in servers.values():
                server.stop()
    notes.append(host_noise.describe(host_noise.measure(), "after the runs"))
    report(rows, args, notes, soak, console)


def _compare_plain(rows: list[Row], servers: dict[str, Server], notes: list[str]) -> None:
    """The plain route must answer exactly what the gateway answers, or the comparison is void."""
    by_op: dict[str, dict[str, Row]] = {}
    for row in rows:
        by_op.setdefault(row.contender.op, {})[row.contender.kind] = row
    for op, kinds in by_op.items():
        if "gateway" in kinds and "plain" in kinds:
            gateway = check(kinds["gateway"].contender, servers["gateway"])
            plain = check(kinds["plain"].contender, servers["plain"])
            if gateway != plain:
                notes.append(f"{rows[0].backend} {op}: the plain route's JSON DIFFERS from the gateway's")
            else:
                notes.append(f"{rows[0].backend} {op}: the plain route returns the gateway's JSON exactly")


def _soak_row(rows: list, distinct: int, query: str):
    """The gateway's row the soak drives: the invoices page, or a viewer document (spa/Viewer or ViewerRoleText)."""
    wanted = ("Invoices",) if distinct and query == "invoices" else ("Viewer", "ViewerRoleText")
    for row in rows:
        if row.contender.kind == "gateway" and row.contender.op in wanted:
            return row
    raise SystemExit(f"--soak needs one of {', '.join(wanted)} among the operations (--only)")


def _soak(gateway: Server, rows: list[Row], total: int, backend: str, distinct: int = 0,
          query: str = "viewer") -> dict[str, float]:
    """RSS after 10,000 and after ``total`` requests of spa/Viewer (``distinct``: of that many distinct ad-hoc
    documents, ``query Q<n> { viewer { role } }`` or, ``query="invoices"``, the ad-hoc invoices page with the
    alias ``q<n>``, cycling), counted from wrk's own reports (runs of at most a minute, sized from the
    throughput seen so far)."""
    row = _soak_row(rows, distinct, query)
    op = row.contender.op
    contender = row.contender
    if distinct:
        template = ({"query": ad_hoc_invoices(contender.body["query"], alias="q%d"),
                     "variables": contender.body["variables"]} if op == "Invoices"
                    else {"query": "query Q%d { viewer { role } }"})

        def drive(seconds: float) -> Result:
            return wrk(gateway.url(contender.path), template, contender.auth, duration=seconds, connections=8,
                       distinct=distinct)
    else:
        def drive(seconds: float) -> Result:
            return wrk(gateway.url(contender.path), contender.body, contender.auth, duration=seconds, connections=8)
    calibration = drive(2)
    done, rate, figures = calibration.requests, max(1.0, calibration.rps), {}
    what = f"{distinct:,} distinct ad-hoc {op.lower()} documents" if distinct else "spa/Viewer"
    for target in sorted({min(10_000, total), total}):  # a --soak below 10,000 (a check of the harness): one figure
        while done < target:
            seconds = min(60.0, max(1.0, (target - done) / rate * 1.02))
            result = drive(seconds)
            if result.errors:
                raise SystemExit(f"soak: {result.errors} failed responses")
            done += result.requests
            rate = result.rps or rate
        figures[f"{backend} RSS after {done:,} requests of {what} (MiB)"] = gateway.rss_mib()
    return figures


def _cold(servers: dict[str, Server], rows: list[Row], count: int, backend: str) -> dict[str, float]:
    """The first request of ``count`` new ad-hoc invoices documents (each a new alias: planned on that request)
    against their second request, one at a time, on the gateway (and its generic path)."""
    row = next(row for row in rows if row.contender.kind == "gateway" and row.contender.op == "Invoices")
    headers = {"authorization": row.contender.auth}
    figures = {}
    for name in ("gateway", "gateway@generic"):
        server = servers.get(name)
        if server is None:
            continue
        first, second = [], []
        for number in range(count):
            body = {"query": ad_hoc_invoices(row.contender.body["query"], alias=f"cold{number}_{os.getpid()}"),
                    "variables": row.contender.body["variables"]}
            for times in (first, second):
                started = time.perf_counter()
                response = httpx.post(server.url("/graphql"), json=body, headers=headers, timeout=30)
                times.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200 or b'"errors"' in response.content:
                    raise SystemExit(f"cold: {response.text[:300]}")
        figures[f"{backend} {name} ad-hoc invoices, first request (cold) p50 ms"] = statistics.median(first)
        figures[f"{backend} {name} ad-hoc invoices, second request (warm) p50 ms"] = statistics.median(second)
        figures[f"{backend} {name} ad-hoc invoices, planning cost (cold - warm) ms"] = (
            statistics.median(first) - statistics.median(second))
    return figures


def report(rows: list[Row], args, notes: list[str], soak: dict[str, float], console) -> None:
    from bench.report import write_report

    write_report(rows, args, notes, soak, console)


if __name__ == "__main__":
    main()
