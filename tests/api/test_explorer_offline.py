"""GET /graphql with BILLING_GRAPHIQL_ASSETS_DIR: only the gateway's own URLs, a strict CSP, exactly
the page's files served; without it, Strawberry's page (unpkg's scripts) with a check that says in
the page when they could not load. (In a browser: tests/browser.)"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from billing_graphql.app import create_app
from billing_graphql.http.explorer import ExplorerAssetsError, explorer_packages, page_assets


def fake_install(directory: Path, *, version_of: dict[str, str] | None = None) -> None:
    """node_modules with the page's packages and files (placeholder content)."""
    for asset in page_assets():
        package = directory / "node_modules" / asset.package
        package.mkdir(parents=True, exist_ok=True)
        version = (version_of or {}).get(asset.package, asset.version)
        (package / "package.json").write_text(json.dumps({"name": asset.package, "version": version}))
        target = package / asset.file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"/* {asset.package} {asset.file} */")


async def get(app, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        return await client.get(path, headers={"accept": "text/html"})


async def test_page_uses_only_local_assets_under_a_strict_policy(tmp_path, db, settings):
    fake_install(tmp_path)
    app = create_app(replace(settings, graphiql_assets_dir=str(tmp_path)), db=db, freeze_gc=False)
    page = await get(app, "/graphql")
    assert page.status_code == 200 and "Loading..." in page.text
    assert "unpkg.com" not in page.text
    for asset in page_assets():
        assert f'"{asset.local_url}"' in page.text
    policy = page.headers["content-security-policy"]
    assert policy.startswith("default-src 'none'") and "connect-src 'self'" in policy
    assert "http" not in policy  # no other origin is allowed
    script = await get(app, "/graphql/assets/graphiql/graphiql.min.js")
    assert script.status_code == 200 and script.text == "/* graphiql graphiql.min.js */"
    assert script.headers["content-type"].startswith("application/javascript")
    # anything else from the directory, or outside it, is not served
    for path in ("/graphql/assets/graphiql/package.json", "/graphql/assets/../package.json",
                 "/graphql/assets/react/umd/react.development.js", "/graphql/assets/%2e%2e/%2e%2e/etc/passwd"):
        assert (await get(app, path)).status_code == 404, path


async def test_without_the_setting_the_page_is_strawberrys(db, settings):
    page = await get(create_app(settings, db=db, freeze_gc=False), "/graphql")
    assert "https://unpkg.com/graphiql@" in page.text
    assert "content-security-policy" not in page.headers
    assert (await get(create_app(settings, db=db, freeze_gc=False), "/graphql/assets/graphiql/graphiql.min.js")
            ).status_code == 404


async def test_another_version_stops_the_gateway_at_start(tmp_path, db, settings):
    fake_install(tmp_path, version_of={"graphiql": "1.0.0"})
    with pytest.raises(ExplorerAssetsError, match="install-explorer"):
        create_app(replace(settings, graphiql_assets_dir=str(tmp_path)), db=db, freeze_gc=False)


def test_packages_are_the_five_strawberry_names():
    assert set(explorer_packages()) == {"react", "react-dom", "js-cookie", "graphiql", "@graphiql/plugin-explorer"}


async def test_the_cdn_page_says_when_its_scripts_could_not_load(db, settings):
    """Without BILLING_GRAPHIQL_ASSETS_DIR the page loads unpkg's scripts; a check after them (before
    the script that starts GraphiQL) replaces "Loading..." with how to serve them locally."""
    page = await get(create_app(settings, db=db, freeze_gc=False), "/graphql")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    text = page.text
    check = text.index("GraphiQL's scripts could not load")
    assert text.rindex("https://unpkg.com/") < check < text.index("ReactDOM.createRoot")
    assert "billing-graphql install-explorer DIR" in text and "BILLING_GRAPHIQL_ASSETS_DIR=DIR" in text


async def test_the_offline_page_names_one_charset(tmp_path, db, settings):
    fake_install(tmp_path)
    app = create_app(replace(settings, graphiql_assets_dir=str(tmp_path)), db=db, freeze_gc=False)
    assert (await get(app, "/graphql")).headers["content-type"] == "text/html; charset=utf-8"
