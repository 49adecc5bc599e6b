"""The built artefact, as README's Quick start installs it: the wheel, in a fresh virtual environment
outside the checkout, serving ``serve --demo`` from there.

The checkout is never importable by the served process (no PYTHONPATH, working directory in a temporary
directory): what answers is what the wheel carries. The dependencies come from the test environment's
site-packages (a path line in a ``.pth`` file, added after the wheel is installed), so only the wheel
itself is installed and nothing is downloaded but pip's isolated build backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import site
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INVOICES = (ROOT / "queries" / "spa" / "Invoices.graphql").read_text()  # the one source of the documents
SNAPSHOTS = (ROOT / "queries" / "partner" / "UsageSnapshots.graphql").read_text()
README_QUERY = "{ plans { name slug basePriceMonthly { amount currency } } }"  # README's "A first query"
START_TIMEOUT = 60

pytestmark = pytest.mark.wheel


def _run(*command: str | Path, **options) -> subprocess.CompletedProcess:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=180, **options)
    assert result.returncode == 0, f"{command}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _build_wheel(source: Path, dist: Path) -> Path:
    """The wheel pip builds from ``source`` (hatchling in pip's isolated build environment)."""
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, source, cwd=dist.parent)
    (wheel,) = dist.glob("billing_graphql-*.whl")
    return wheel


def _install_wheel(tmp: Path) -> Path:
    """Build the wheel, install it alone in a new virtual environment; its ``bin`` directory."""
    wheel = _build_wheel(ROOT, tmp / "dist")
    venv = tmp / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel, cwd=tmp)
    # The dependencies: the test environment's site-packages as a plain path (its own .pth files,
    # the editable install of the checkout among them, are not processed), after the venv's own.
    own = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp).stdout.strip()
    (Path(own) / "test_environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return venv / "bin"


def _environment(tmp: Path, port: int) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("BILLING_", "PYTHON", "PROMETHEUS_"))}
    env.update(
        BILLING_DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'billing.db'}",
        BILLING_PUBLIC_URL=f"http://127.0.0.1:{port}",
        BILLING_TRUSTED_DOCUMENTS="partner",
        BILLING_PORTAL_SECRET="portal-secret-of-the-wheel-test-0123456789",
        PYTHONUNBUFFERED="1",
        # serve and the cron's run-billing write their metrics where serve's /metrics adds them up
        PROMETHEUS_MULTIPROC_DIR=str(tmp / "metrics"),
    )
    (tmp / "metrics").mkdir()
    return env


def _request(url: str, *, body: dict | None = None, key: str | None = None,
             accept: str = "application/json") -> tuple[int, dict[str, str], bytes]:
    headers = {"Accept": accept}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _registered(body: str) -> dict:
    """A request naming a registered document by its id."""
    return {"documentId": hashlib.sha256(body.encode()).hexdigest()}


def _graphql(base: str, body: dict, key: str) -> dict:
    status, _, content = _request(f"{base}/graphql", body=body, key=key)
    answer = json.loads(content)
    assert status == 200 and not answer.get("errors"), answer
    return answer["data"]


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{label}="{value}"' for label, value in labels.items())
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{{re.escape(wanted)}\}})? (\S+)$", re.MULTILINE)
    match = pattern.search(text)
    return float(match[1]) if match else 0.0


def _wait_for_health(server: subprocess.Popen, base: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"serve exited with {server.returncode}:\n{server.stderr.read()}")
        try:
            if _request(f"{base}/health")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"serve did not answer /health within {START_TIMEOUT}s")


def test_the_installed_wheel_serves_the_demo(tmp_path):
    bin_dir = _install_wheel(tmp_path)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = _environment(tmp_path, port)
    server = subprocess.Popen(
        [bin_dir / "billing-graphql", "serve", "--demo", "--no-worker", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_for_health(server, base)
        keys = dict(server.stdout.readline().strip().partition("=")[::2] for _ in range(5))  # printed before serving
        assert keys["SUPER_ADMIN"].startswith("bgk_") and keys["OWNER"].startswith("bgk_")

        # The manifest the package carries is the checkout's.
        exported = _run(bin_dir / "billing-graphql", "export-manifest", cwd=tmp_path, env=env).stdout
        assert exported == (ROOT / "queries" / "manifest.json").read_text()

        # README's first query.
        plans = _graphql(base, {"query": README_QUERY}, keys["SUPER_ADMIN"])["plans"]
        assert plans and all(plan["basePriceMonthly"]["currency"] for plan in plans)

        # A registered document by its id, answered by its compiled plan (the shipped manifest).
        status, _, content = _request(f"{base}/metrics")
        assert status == 200
        answered_before = _metric(content.decode(), "billing_graphql_compiled_requests_total", outcome="answered")
        invoices = _graphql(base, _registered(INVOICES), keys["OWNER"])["invoices"]
        status, _, content = _request(f"{base}/metrics")
        answered_after = _metric(content.decode(), "billing_graphql_compiled_requests_total", outcome="answered")
        assert answered_after == answered_before + 1, "the documentId was not answered by its compiled plan"

        # Partners may send only registered documents: the packaged ones are accepted, other text refused.
        snapshots = _graphql(base, _registered(SNAPSHOTS), keys["PARTNER"])
        assert len(snapshots["usageSnapshots"]["edges"]) == 1  # the demo organization, granted by seed-demo
        free_text = {"query": "{ usageSnapshots { edges { node { month } } } }"}
        status, _, content = _request(f"{base}/graphql", body=free_text, key=keys["PARTNER"])
        assert [error["extensions"]["code"] for error in json.loads(content)["errors"]] == ["FORBIDDEN"]

        # GraphiQL's page.
        status, headers, content = _request(f"{base}/graphql", accept="text/html")
        assert status == 200 and "text/html" in headers.get("content-type", "").lower()
        assert b"graphiql" in content.lower()

        # The billing run from the command line (as cron runs it beside `serve --no-worker`), against the
        # same database; then the metrics scrape shows it.
        assert _metric(_request(f"{base}/metrics")[2].decode(), "billing_graphql_billing_runs_total",
                       outcome="completed") == 0
        billing = _run(bin_dir / "billing-graphql", "run-billing", cwd=tmp_path, env=env)
        assert billing.stdout.strip()
        status, headers, content = _request(f"{base}/metrics")
        assert status == 200 and headers.get("content-type", "").startswith("text/plain")
        text = content.decode()
        assert _metric(text, "billing_graphql_requests_total", operation="Invoices", outcome="ok") == 1
        assert _metric(text, "billing_graphql_billing_runs_total", outcome="completed") == 1
        assert _metric(text, "billing_graphql_billing_run_last_success_timestamp_seconds") > 0

        # An invoice of the demo data as a PDF, at the pdfUrl the API gives.
        pdf_url = invoices["edges"][0]["node"]["pdfUrl"]
        assert pdf_url.startswith(base)
        status, headers, content = _request(pdf_url, key=keys["OWNER"], accept="application/pdf")
        assert status == 200 and headers.get("content-type", "").startswith("application/pdf")
        assert content.startswith(b"%PDF")

        # The billing portal in Indonesian: its templates and its gettext catalog ship in the wheel.
        portal = _graphql(base, {"query": 'mutation { createBillingPortalSession { url errors { message } } }'},
                          keys["OWNER"])["createBillingPortalSession"]
        status, headers, content = _request(portal["url"] + "?lang=id", accept="text/html")
        page = content.decode()
        assert status == 200 and "Penagihan untuk" in page and 'lang="id"' in page, page[-2000:]
        status, headers, content = _request(portal["url"] + "/plan?lang=id", accept="text/html")
        assert status == 200 and re.search(r"Rp\s\d{1,3}(\.\d{3})+ per bulan", content.decode()), content[-2000:]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log = server.stderr.read()
        server.stdout.close()
        server.stderr.close()
    # serve says how many registered queries it compiled, from the copy inside the installed package.
    compiled = re.search(r"compiled [1-9]\d* registered queries from (\S+)", log)
    assert compiled, log
    assert Path(compiled[1]).is_relative_to(tmp_path / "venv"), compiled[0]
    assert server.returncode == 0, log


def _docker_stage_contexts() -> list[list[tuple[str, str]]]:
    """For each stage of the Dockerfile that installs the package: its COPY lines from the build
    context, as (source, destination) pairs."""
    stages: list[list[tuple[str, str]]] = []
    installs: list[bool] = []
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0].upper() == "FROM":
            stages.append([])
            installs.append(False)
        elif words[0].upper() == "COPY" and not any(word.startswith("--from") for word in words):
            *sources, destination = [word for word in words[1:] if not word.startswith("--")]
            stages[-1].extend((source, destination) for source in sources)
        elif words[0].upper() == "RUN" and "pip install" in line and " . " in f"{line} ":
            installs[-1] = True
    return [stage for stage, install in zip(stages, installs, strict=True) if install]


def test_the_dockerfile_copies_what_the_build_reads(tmp_path):
    """Each Docker stage that runs `pip install .` builds, from what it copies, the wheel the checkout builds."""
    expected = sorted(zipfile.ZipFile(_build_wheel(ROOT, tmp_path / "dist")).namelist())
    stages = _docker_stage_contexts()
    assert stages, "the Dockerfile installs the package in no stage"
    for number, copies in enumerate(stages):
        if copies in stages[:number]:
            continue  # the same context as an earlier stage: the same wheel
        context = tmp_path / f"stage-{number}"
        for source, destination in copies:
            target = context / destination.removeprefix("./") / (Path(source).name if destination.endswith("/") else "")
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, target)
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", context / "dist",
                                 context], capture_output=True, text=True, timeout=180, cwd=tmp_path)
        assert result.returncode == 0, f"stage {number} cannot build from {copies}:\n{result.stderr}"
        (wheel,) = (context / "dist").glob("billing_graphql-*.whl")
        assert sorted(zipfile.ZipFile(wheel).namelist()) == expected, f"stage {number} copies {copies}"
