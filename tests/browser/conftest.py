"""Browser tests: Debian's chromium driven by Playwright against a served gateway.

The gateway runs as `billing-graphql serve` in a subprocess on the test's database, with
GraphiQL's scripts installed by `billing-graphql install-explorer` into a cache directory
(reused while the versions match). One chromium runs for the whole session (each test connects to
it over the DevTools protocol and gets its own context). axe-core, the accessibility checker, comes
from npm into the same cache. Screenshots go to ``tests/browser/artifacts/`` (ignored by git;
``BILLING_TEST_ARTIFACTS`` moves them). Outside CI, a machine without chromium or npm skips these
tests with the reason; under CI=true that is a failure (.ci/run installs chromium). They run on
PostgreSQL only (the ``backend`` fixture below).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

CHROMIUM = os.environ.get("BILLING_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PORTAL_SECRET = "portal-secret-for-browser-tests-0123456789"
JWT_SECRET = "test-secret-of-enough-length-for-hs256"


@pytest.fixture(params=["postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Browser tests serve from PostgreSQL, as production does: what they check is the page in a browser
    (scripts, forms, layout, accessibility); the database under it is tested on both in tests/api."""
    return request.param


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " (CI=true: browser tests must run; .ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def explorer_assets() -> Path:
    """GraphiQL's scripts installed once into a cache directory named after their versions."""
    from billing_graphql.http.explorer import ExplorerAssetsError, check_assets_dir, explorer_packages, install_explorer

    versions = hashlib.sha256(json.dumps(explorer_packages(), sort_keys=True).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "billing-graphql" / f"explorer-{versions}"
    try:
        check_assets_dir(cache)
        return cache
    except ExplorerAssetsError:
        pass
    if shutil.which("npm") is None:
        _unavailable("npm is not installed: GraphiQL's scripts cannot be installed")
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="explorer-", dir=cache.parent))
    try:
        install_explorer(staging)
    except (ExplorerAssetsError, subprocess.CalledProcessError) as exc:
        _unavailable(f"npm could not install GraphiQL's scripts: {exc}")
    try:
        staging.rename(cache)  # atomic: another worker may have won the race
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return cache


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Served:
    url: str


@pytest.fixture
def served_env() -> dict[str, str]:
    """More settings for the served gateway (a test module overrides it: a processor's keys)."""
    return {}


@pytest.fixture
def served(database_url: str, explorer_assets: Path, db, served_env: dict[str, str]) -> Iterator[Served]:
    """`billing-graphql serve` on this test's database, GraphiQL offline, the portal configured."""
    port = _free_port()
    env = {**os.environ, "BILLING_DATABASE_URL": database_url, "BILLING_GRAPHIQL_ASSETS_DIR": str(explorer_assets),
           "BILLING_PORTAL_SECRET": PORTAL_SECRET, "BILLING_JWT_SECRET": JWT_SECRET, "BILLING_RATE_LIMIT": "0",
           "BILLING_PUBLIC_URL": f"http://127.0.0.1:{port}", **served_env}
    command = [sys.executable, "-m", "billing_graphql.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = tempfile.TemporaryFile()  # never a pipe: a full pipe would stall the server
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a loaded CI machine starts slowly
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                output = log.read().decode(errors="replace")
                pytest.fail(f"the gateway did not start: {output[-2000:]}")
            time.sleep(0.2)
        yield Served(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


AXE_VERSION = "4.14.1"
ARTIFACTS = Path(os.environ.get("BILLING_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))


@pytest.fixture(scope="session")
def chromium_endpoint() -> Iterator[str]:
    """Debian's chromium (never a browser Playwright downloads), started once for the session: its
    DevTools websocket."""
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    process = subprocess.Popen([CHROMIUM, *CHROMIUM_ARGS, "--remote-debugging-port=0", f"--user-data-dir={profile}",
                                "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        endpoint = None
        while endpoint is None and time.monotonic() < deadline and process.poll() is None:
            line = process.stderr.readline()
            if line.startswith("DevTools listening on "):
                endpoint = line.split(" on ", 1)[1].strip()
        if endpoint is None:
            pytest.fail(f"chromium did not start (exit code {process.poll()})")
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
async def browser(chromium_endpoint: str) -> AsyncIterator[object]:
    """The session's chromium, connected for this test (contexts it opens are closed after it)."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    async with async_playwright() as playwright:
        connected = await playwright.chromium.connect_over_cdp(chromium_endpoint)
        try:
            yield connected
        finally:
            await connected.close()  # connected over CDP: closes this test's contexts and disconnects


@pytest.fixture
async def page(browser) -> AsyncIterator[object]:
    """A fresh page in a context of its own."""
    context = await browser.new_context()
    yield await context.new_page()


@pytest.fixture(scope="session")
def axe_script() -> Path:
    """axe-core's ``axe.min.js``, installed once from npm into a cache directory named after its version."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "billing-graphql" / f"axe-core-{AXE_VERSION}"
    script = cache / "node_modules" / "axe-core" / "axe.min.js"
    if script.exists():
        return script
    npm = shutil.which("npm")
    if npm is None:
        _unavailable("npm is not installed: axe-core cannot be installed")
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="axe-", dir=cache.parent))
    try:
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--no-package-lock",
                        f"axe-core@{AXE_VERSION}"], cwd=staging, check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        _unavailable(f"npm could not install axe-core: {exc.stderr[-500:]!r}")
    try:
        staging.rename(cache)  # atomic: another worker may have won the race
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return script


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
