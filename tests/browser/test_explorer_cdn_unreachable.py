"""GraphiQL's default page (scripts from unpkg) in chromium without internet: the page says that its
scripts could not load and how to serve them locally, instead of "Loading..." forever."""

from __future__ import annotations

import httpx

from billing_graphql.app import create_app

GATEWAY = "http://gateway.test"


async def test_graphiql_without_internet_says_how_to_serve_its_scripts(db, settings, page):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings, db=db, freeze_gc=False)),
                                 base_url=GATEWAY) as client:
        answer = await client.get("/graphql", headers={"accept": "text/html"})
    assert answer.status_code == 200 and "https://unpkg.com/" in answer.text

    async def offline(route) -> None:  # unpkg (any other origin) cannot be reached
        await route.abort("internetdisconnected")

    async def gateway(route) -> None:
        await route.fulfill(status=200, body=answer.text, headers=dict(answer.headers))

    await page.route("**/*", offline)
    await page.route(f"{GATEWAY}/graphql", gateway)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{GATEWAY}/graphql")
    heading = page.locator("#graphiql-offline")
    try:
        await heading.wait_for(timeout=10_000)
    except Exception:
        raise AssertionError((errors, (await page.content())[-1500:]))
    assert await heading.inner_text() == "GraphiQL's scripts could not load"
    body = await page.locator("#graphiql").inner_text()
    assert "Loading..." not in body
    assert "billing-graphql install-explorer DIR" in body and "BILLING_GRAPHIQL_ASSETS_DIR=DIR" in body
    assert "missing: React, ReactDOM, Cookies, GraphiQL, GraphiQLPluginExplorer" in body
