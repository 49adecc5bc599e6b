"""GraphiQL served offline: Strawberry's page with its CDN scripts served by the gateway itself.

Strawberry's page (``strawberry/static/graphiql.html``) takes react, react-dom, js-cookie,
graphiql and @graphiql/plugin-explorer from unpkg. With ``BILLING_GRAPHIQL_ASSETS_DIR`` pointing
at an npm install of exactly those packages and versions (``billing-graphql install-explorer
DIR``), the page references ``/graphql/assets/<package>/<file>`` instead (the subresource
integrity hashes stay: a file that is not the published one is refused by the browser) and is
sent with a Content-Security-Policy that allows only the gateway's own URLs. The versions are
read from the installed Strawberry's page, so they follow Strawberry upgrades. Without the
setting the page is Strawberry's, unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import strawberry
from litestar import Request, Response, get
from litestar.exceptions import NotFoundException

ASSETS_PREFIX = "/graphql/assets"
_CDN_URL = re.compile(r'https://unpkg\.com/((?:@[^/@"]+/)?[^/@"]+)@([^/"]+)/([^"]+)')
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_CONTENT_TYPES = {".js": "application/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


class ExplorerAssetsError(RuntimeError):
    """The assets directory does not hold the packages and versions the page needs."""


@dataclass(frozen=True, slots=True)
class Asset:
    package: str
    version: str
    file: str  # inside the package

    @property
    def cdn_url(self) -> str:
        return f"https://unpkg.com/{self.package}@{self.version}/{self.file}"

    @property
    def local_url(self) -> str:
        return f"{ASSETS_PREFIX}/{self.package}/{self.file}"


def strawberry_page() -> str:
    return with_live_fetcher((Path(strawberry.__file__).parent / "static" / "graphiql.html").read_text())


_STRAWBERRY_FETCHER = re.compile(r"const fetcher = GraphiQL\.createFetcher\(\{.*?\}\);", re.DOTALL)
# Subscriptions from GraphiQL (issue 25): its own fetcher for queries and mutations; a subscription runs over
# graphql-transport-ws on the same URL, authenticated in connection_init's payload with the Authorization header
# of the headers editor (GraphiQL's bundled fetcher would neither load graphql-ws offline nor send that header).
LIVE_FETCHER = """const httpFetcher = GraphiQL.createFetcher({ url: fetchURL, headers: defaultHeaders });

      function liveSubscription(params, headers) {
        const queue = [];
        let waiting = null;
        let done = false;
        const socket = new WebSocket(subscriptionUrl, "graphql-transport-ws");
        const authorization = headers.Authorization || headers.authorization;
        function push(item) {
          if (waiting) { const resolve = waiting; waiting = null; resolve(item); } else { queue.push(item); }
        }
        function finish() { if (!done) { done = true; push({ value: undefined, done: true }); } }
        socket.onopen = function () {
          socket.send(JSON.stringify({ type: "connection_init",
                                       payload: authorization ? { Authorization: authorization } : {} }));
        };
        socket.onmessage = function (event) {
          const message = JSON.parse(event.data);
          if (message.type === "connection_ack") {
            socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: params }));
          } else if (message.type === "ping") {
            socket.send(JSON.stringify({ type: "pong" }));
          } else if (message.type === "next") {
            push({ value: message.payload, done: false });
          } else if (message.type === "error") {
            push({ value: { errors: message.payload }, done: false });
            finish();
          } else if (message.type === "complete") {
            finish();
          }
        };
        socket.onclose = function (event) {
          if (!done) {
            push({ value: { errors: [{ message: "Socket closed: " + event.code + " " + event.reason }] }, done: false });
            finish();
          }
        };
        return {
          [Symbol.asyncIterator]() { return this; },
          next() {
            if (queue.length) { return Promise.resolve(queue.shift()); }
            if (done) { return Promise.resolve({ value: undefined, done: true }); }
            return new Promise(function (resolve) { waiting = resolve; });
          },
          return() {
            done = true;
            socket.close(1000);
            return Promise.resolve({ value: undefined, done: true });
          },
        };
      }

      function fetcher(params, options) {
        const definitions = (options && options.documentAST && options.documentAST.definitions) || [];
        const operation = definitions.find(function (definition) {
          return definition.kind === "OperationDefinition"
            && (!params.operationName || (definition.name && definition.name.value === params.operationName));
        });
        if (!operation || operation.operation !== "subscription") { return httpFetcher(params, options); }
        return liveSubscription(params, (options && options.headers) || {});
      }"""


def with_live_fetcher(html: str) -> str:
    """Strawberry's page with ``LIVE_FETCHER`` in place of its fetcher (unchanged when that is not found)."""
    return _STRAWBERRY_FETCHER.sub(lambda _: LIVE_FETCHER, html, count=1)


def page_assets(html: str | None = None) -> list[Asset]:
    """The files Strawberry's page loads from the CDN, in page order."""
    return [Asset(*match.groups()) for match in _CDN_URL.finditer(html or strawberry_page())]


def explorer_packages(html: str | None = None) -> dict[str, str]:
    """{package: exact version} the page uses."""
    return {asset.package: asset.version for asset in page_assets(html)}


def install_explorer(directory: Path, *, npm: str | None = None) -> None:
    """``npm install`` exactly the page's packages and versions into ``directory`` (Node required)."""
    npm = npm or shutil.which("npm")
    if npm is None:
        raise ExplorerAssetsError("npm is not installed; install Node.js (it brings npm) and run this again.")
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {"name": "billing-graphql-explorer-assets", "private": True, "dependencies": explorer_packages()}
    (directory / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--omit=dev", "--no-package-lock",
         "--legacy-peer-deps"],
        cwd=directory, check=True,
    )
    check_assets_dir(directory)


def check_assets_dir(directory: Path) -> dict[str, bytes]:
    """The page's files read from ``directory/node_modules`` ({local URL: content}); a missing
    package, another version or a missing file is an ExplorerAssetsError naming it."""
    if not directory.is_dir():
        raise ExplorerAssetsError(f"{directory} is not a directory: run `billing-graphql install-explorer "
                                  f"{directory}` (Node.js's npm) to put GraphiQL's scripts there.")
    modules = directory / "node_modules"
    files: dict[str, bytes] = {}
    for asset in page_assets():
        manifest = modules / asset.package / "package.json"
        try:
            version = json.loads(manifest.read_text())["version"]
        except (OSError, ValueError, KeyError):
            raise ExplorerAssetsError(f"{asset.package} is not installed in {modules}: run "
                                      f"`billing-graphql install-explorer {directory}`.") from None
        if version != asset.version:
            raise ExplorerAssetsError(f"{asset.package} {version} is installed in {modules}; the GraphiQL page "
                                      f"needs {asset.version}: run `billing-graphql install-explorer {directory}`.")
        path = modules / asset.package / asset.file
        if not path.is_file():
            raise ExplorerAssetsError(f"{path} is missing.")
        files[asset.local_url] = path.read_bytes()
    return files


# Run after the page's script tags (which load in order, blocking the parser): when one of them
# could not load (no internet, unpkg blocked), GraphiQL's globals are missing and "Loading..."
# would stay forever; the page says so instead, and how to serve the scripts locally.
LOAD_CHECK = """<script>
      (function () {
        var missing = ["React", "ReactDOM", "Cookies", "GraphiQL", "GraphiQLPluginExplorer"].filter(
          function (name) { return typeof window[name] === "undefined"; });
        if (!missing.length) return;
        var box = document.getElementById("graphiql");
        box.style.cssText = "display:block;height:auto;padding:2em;font:16px/1.5 system-ui,sans-serif;max-width:46em";
        box.replaceChildren();
        function line(tag, text) { var node = document.createElement(tag); node.textContent = text; box.appendChild(node); return node; }
        line("h1", "GraphiQL's scripts could not load").setAttribute("id", "graphiql-offline");
        line("p", "This page loads GraphiQL from unpkg.com, which this browser could not reach (missing: "
          + missing.join(", ") + "). GraphQL itself still answers at this URL (POST).");
        line("p", "To serve GraphiQL's scripts from the gateway itself, without internet:");
        line("pre", "billing-graphql install-explorer DIR\\nBILLING_GRAPHIQL_ASSETS_DIR=DIR billing-graphql serve");
        line("p", "install-explorer needs npm once (on any machine; copy DIR over); the gateway then serves the "
          + "scripts under /graphql/assets/.");
      })();
    </script>
    """


def with_load_check(html: str) -> str:
    """The page with LOAD_CHECK before its own inline script (the one that starts GraphiQL)."""
    index = html.rfind("<script>")
    if index < 0:
        return html
    return html[:index] + LOAD_CHECK + html[index:]


def cdn_ide_renderer():
    """A ``render_graphql_ide`` for Strawberry's controller: Strawberry's page (scripts from unpkg)
    that says in the page when its scripts could not load."""
    from litestar.enums import MediaType

    html = with_load_check(strawberry_page())

    async def render_graphql_ide(self: Any, request: Request[Any, Any, Any]) -> Response[str]:
        return Response(html, media_type=MediaType.HTML)

    return render_graphql_ide


def _hash_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@dataclass(frozen=True, slots=True)
class OfflineExplorer:
    """The rewritten page, its Content-Security-Policy and the files it loads."""

    html: str
    content_security_policy: str
    files: dict[str, bytes]

    @classmethod
    def from_directory(cls, directory: str | Path) -> OfflineExplorer:
        files = check_assets_dir(Path(directory))
        html = strawberry_page()
        for asset in page_assets(html):
            html = html.replace(asset.cdn_url, asset.local_url)
        scripts = " ".join(_hash_source(body) for body in _INLINE_SCRIPT.findall(html))
        policy = "; ".join((
            "default-src 'none'",
            f"script-src 'self' {scripts}",
            "style-src 'self' 'unsafe-inline'",  # the page's <style> and GraphiQL's style attributes
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ))
        return cls(html=html, content_security_policy=policy, files=files)

    def page_response(self) -> Response[str]:
        return Response(self.html, media_type="text/html", headers={  # Litestar adds the charset
            "Content-Security-Policy": self.content_security_policy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        })


def offline_ide_renderer(explorer: OfflineExplorer):
    """A ``render_graphql_ide`` for Strawberry's controller that answers with the offline page."""

    async def render_graphql_ide(self: Any, request: Request[Any, Any, Any]) -> Response[str]:
        return explorer.page_response()

    return render_graphql_ide


@get(f"{ASSETS_PREFIX}/{{asset:path}}", name="explorer_asset", opt={"exclude_from_rate_limit": True},
     include_in_schema=False)
async def explorer_asset(request: Request[Any, Any, Any], asset: str) -> Response[bytes]:
    """One of the page's files, exactly those and nothing else from the directory."""
    explorer: OfflineExplorer | None = getattr(request.app.state, "explorer", None)
    url = f"{ASSETS_PREFIX}{asset}" if asset.startswith("/") else f"{ASSETS_PREFIX}/{asset}"
    content = explorer.files.get(url) if explorer is not None else None
    if content is None:
        raise NotFoundException()
    return Response(content, media_type=_CONTENT_TYPES.get(Path(url).suffix, "application/octet-stream"), headers={
        "Cache-Control": "public, max-age=86400",
        "X-Content-Type-Options": "nosniff",
    })
