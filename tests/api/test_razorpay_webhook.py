"""POST /webhooks/razorpay: signature over the raw body, recorded once per event id, redeliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select

from billing_graphql.app import create_app
from billing_graphql.db.models import GatewayEvent
from tests.gateways.test_razorpay import SDK_SECRET, WEBHOOK_SIGNATURE, webhook_body
from tests.factories import count_rows


@pytest.fixture
async def client(db, settings):
    # The SDK's vector signs with the secret 'key_secret'.
    app = create_app(replace(settings, razorpay_webhook_secret=SDK_SECRET), db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield http


def sign(body: bytes) -> str:
    return hmac.new(SDK_SECRET.encode(), body, hashlib.sha256).hexdigest()


async def deliver(client, body: bytes, signature: str | None, event_id: str | None = None):
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-razorpay-signature"] = signature
    if event_id:
        headers["x-razorpay-event-id"] = event_id
    return await client.post("/webhooks/razorpay", content=body, headers=headers)


async def recorded(db) -> list[GatewayEvent]:
    async with db.read() as session:
        return list((await session.scalars(select(GatewayEvent).order_by(GatewayEvent.received_at))).all())


async def test_sdk_vector_is_accepted_and_recorded(client, db):
    response = await deliver(client, webhook_body(), WEBHOOK_SIGNATURE, event_id="evt_1")
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "duplicate": False,
                               "result": "ignored: payment.authorized is not acted on"}
    [event] = await recorded(db)
    assert (event.gateway, event.event_id, event.event_type) == ("razorpay", "evt_1", "payment.authorized")


async def test_redelivery_of_an_event_id_is_recorded_once(client, db):
    for _ in range(3):
        response = await deliver(client, webhook_body(), WEBHOOK_SIGNATURE, event_id="evt_2")
        assert response.status_code == 200
    assert response.json()["duplicate"] is True
    assert await count_rows(db, GatewayEvent) == 1


@pytest.mark.parametrize("position", [0, 10, -2])
async def test_a_flipped_byte_is_400_and_records_nothing(client, db, position):
    body = bytearray(webhook_body())
    body[position] ^= 0x01
    response = await deliver(client, bytes(body), WEBHOOK_SIGNATURE)
    assert response.status_code == 400
    assert await count_rows(db, GatewayEvent) == 0


async def test_missing_signature_and_bad_bodies_are_400(client, db):
    assert (await deliver(client, webhook_body(), None)).status_code == 400
    for body in (b"not json", b"[1, 2]", json.dumps({"event": "Payment Authorized!"}).encode(), b"{}"):
        response = await deliver(client, body, sign(body))
        assert response.status_code == 400, body
    assert await count_rows(db, GatewayEvent) == 0


async def test_without_an_event_id_header_the_body_identifies_the_event(client, db):
    for _ in range(2):
        response = await deliver(client, webhook_body(), WEBHOOK_SIGNATURE)
    assert response.json()["duplicate"] is True
    [event] = await recorded(db)
    assert event.event_id.startswith("sha256:")


async def test_without_a_webhook_secret_it_is_503(api, db):
    response = await deliver(api.client, webhook_body(), WEBHOOK_SIGNATURE)
    assert response.status_code == 503
    assert await count_rows(db, GatewayEvent) == 0
