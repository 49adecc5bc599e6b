"""In chromium: GraphiQL (served offline) runs a usageUpdated subscription over WebSocket and shows the message
that a recordUsage over HTTP produced."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

import httpx

RECORD = """mutation($input: RecordUsageInput!) { recordUsage(input: $input) { accepted } }"""
LIVE = "subscription { usageUpdated { metric { code } used } }"


async def test_graphiql_runs_a_subscription_and_shows_the_message_after_record_usage(served, keys, page):
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    headers = json.dumps({"Authorization": f"Bearer {keys.member}"})
    await page.goto(f"{served.url}/graphql?" + urlencode({"q": LIVE, "headers": headers}, quote_via=quote))
    await page.locator(".graphiql-execute-button").click(timeout=30_000)
    for _ in range(100):  # the socket is open and the subscription registered
        if sockets:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    event = {"metric": "messages", "quantity": 7, "timestamp": datetime.now(UTC).isoformat(), "idempotencyKey": "b-1"}
    response = await asyncio.to_thread(httpx.post, f"{served.url}/graphql",
                                       json={"query": RECORD, "variables": {"input": {"events": [event]}}},
                                       headers={"authorization": f"Bearer {keys.owner}"}, timeout=30)
    assert response.json()["data"]["recordUsage"]["accepted"] == 1
    result = page.locator(".result-window")
    await result.get_by_text('"messages"').wait_for(timeout=30_000)
    shown = " ".join((await result.inner_text()).split())
    assert '"used": "7"' in shown, shown
    assert sockets == [f"{served.url.replace('http', 'ws')}/graphql"], sockets
    assert not [error for error in errors if "Content Security Policy" in error], errors
