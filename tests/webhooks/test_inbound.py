"""POST /webhooks/{gateway}: verified on the raw body, recorded once per event id, applied to
payments, invoices, subscriptions and refunds; the same event twice changes nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from billing_graphql.app import create_app
from billing_graphql.db.models import (
    GatewayEvent,
    Invoice,
    OutboxEvent,
    Payment,
    PaymentStatus,
    Refund,
    Subscription,
)
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.domain.webhooks import new_secret
from billing_graphql.gateways.sandbox import webhook_headers
from tests.factories import database_state
from tests.factories import count_rows, make_invoice, make_payment, make_refund, make_subscription

SANDBOX_SECRET = new_secret()
RAZORPAY_SECRET = "razorpay-webhook-secret"


@pytest.fixture
async def client(db, settings):
    configured = replace(settings, sandbox_webhook_secret=SANDBOX_SECRET, razorpay_webhook_secret=RAZORPAY_SECRET)
    app = create_app(configured, db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def past_due(db, organization):
    """A PAST_DUE subscription whose OPEN invoice has a PENDING sandbox payment."""
    subscription = await make_subscription(db, organization.id, status=SubscriptionStatus.PAST_DUE)
    invoice = await make_invoice(db, organization.id, status=InvoiceStatus.OPEN, subscription_id=subscription.id)
    payment = await make_payment(db, invoice, status=PaymentStatus.PENDING)
    return subscription, invoice, payment


async def sandbox_event(client, event_id, event_type, at=None, secret=SANDBOX_SECRET, **data):
    body = json.dumps({"type": event_type, "data": data}).encode()
    headers = {"content-type": "application/json", **webhook_headers(secret, event_id, body, at)}
    return await client.post("/webhooks/sandbox", content=body, headers=headers)


async def load(db, model, key):
    async with db.read() as session:
        return await session.get(model, key)


async def test_a_captured_payment_pays_the_invoice_and_reactivates_the_subscription(client, db, past_due):
    subscription, invoice, payment = past_due
    response = await sandbox_event(client, "evt_1", "payment.captured", payment_id="ch_sandbox_1",
                                   idempotency_key=payment.idempotency_key)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "duplicate": False, "result": "payment SUCCEEDED"}
    stored = await load(db, Payment, payment.id)
    assert (stored.status, stored.gateway_payment_id) == (PaymentStatus.SUCCEEDED, "ch_sandbox_1")
    paid = await load(db, Invoice, invoice.id)
    assert paid.status is InvoiceStatus.PAID and paid.amount_paid == paid.total
    assert (await load(db, Subscription, subscription.id)).status is SubscriptionStatus.ACTIVE
    async with db.read() as session:
        types = set((await session.scalars(select(OutboxEvent.event_type))).all())
    assert {"invoice.paid", "subscription.updated"} <= types

    before = await database_state(db)
    again = await sandbox_event(client, "evt_1", "payment.captured", payment_id="ch_sandbox_1",
                                idempotency_key=payment.idempotency_key)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert await database_state(db) == before


async def test_a_failed_payment_is_marked_failed(client, db, past_due):
    _, invoice, payment = past_due
    response = await sandbox_event(client, "evt_2", "payment.failed", idempotency_key=payment.idempotency_key,
                                   failure_code="card_declined", failure_message="Declined.")
    assert response.json()["result"] == "payment FAILED"
    stored = await load(db, Payment, payment.id)
    assert (stored.status, stored.failure_code) == (PaymentStatus.FAILED, "card_declined")
    assert (await load(db, Invoice, invoice.id)).status is InvoiceStatus.OPEN
    # A late 'captured' for a payment already settled changes nothing.
    late = await sandbox_event(client, "evt_3", "payment.captured", idempotency_key=payment.idempotency_key)
    assert late.json()["result"] == "ignored: payment already FAILED"


async def test_a_processed_refund_succeeds_once(client, db, organization):
    invoice = await make_invoice(db, organization.id)
    payment = await make_payment(db, invoice)
    refund = await make_refund(db, payment, 1000)
    async with db.write() as session:
        (await session.get(Refund, refund.id)).status = PaymentStatus.PENDING
    for duplicate in (False, True):
        response = await sandbox_event(client, "evt_r", "refund.processed", refund_id=refund.gateway_refund_id)
        assert response.json()["duplicate"] is duplicate
    assert (await load(db, Refund, refund.id)).status is PaymentStatus.SUCCEEDED
    async with db.read() as session:
        assert len((await session.scalars(select(OutboxEvent).where(OutboxEvent.event_type == "refund.created"))
                    ).all()) == 1


async def test_razorpay_captured_event_is_applied(client, db, organization):
    invoice = await make_invoice(db, organization.id, status=InvoiceStatus.OPEN)
    payment = await make_payment(db, invoice, status=PaymentStatus.PENDING, gateway="razorpay")
    body = json.dumps({"event": "payment.captured", "payload": {"payment": {"entity": {
        "id": "pay_X", "notes": {"idempotency_key": payment.idempotency_key}}}}}).encode()
    signature = hmac.new(RAZORPAY_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = await client.post("/webhooks/razorpay", content=body, headers={
        "x-razorpay-signature": signature, "x-razorpay-event-id": "evt_rzp", "content-type": "application/json"})
    assert response.json()["result"] == "payment SUCCEEDED"
    assert (await load(db, Invoice, invoice.id)).status is InvoiceStatus.PAID


async def test_unknown_gateway_is_404(client, db):
    response = await client.post("/webhooks/paypal", content=b"{}")
    assert response.status_code == 404
    assert await count_rows(db, GatewayEvent) == 0


@pytest.mark.parametrize("problem", ["wrong secret", "flipped byte", "old timestamp", "no headers"])
async def test_a_bad_signature_is_400_with_nothing_written(client, db, past_due, problem):
    _, _, payment = past_due
    before = await database_state(db)
    body = json.dumps({"type": "payment.captured", "data": {"idempotency_key": payment.idempotency_key}}).encode()
    at = datetime.now(UTC) - timedelta(seconds=301) if problem == "old timestamp" else None
    headers = webhook_headers(new_secret() if problem == "wrong secret" else SANDBOX_SECRET, "evt_bad", body, at)
    if problem == "flipped byte":
        body = body.replace(b"captured", b"capturec")
    if problem == "no headers":
        headers = {}
    response = await client.post("/webhooks/sandbox", content=body, headers=headers)
    assert response.status_code == 400
    assert await database_state(db) == before


async def test_a_signed_body_that_is_not_an_event_is_400(client, db):
    for body in (b"not json", b"[1]", json.dumps({"type": "Payment Captured!"}).encode()):
        headers = webhook_headers(SANDBOX_SECRET, "evt_x", body)
        assert (await client.post("/webhooks/sandbox", content=body, headers=headers)).status_code == 400
    assert await count_rows(db, GatewayEvent) == 0


def razorpay_headers(body: bytes, event_id: str = "evt_rzp_hostile") -> dict[str, str]:
    signature = hmac.new(RAZORPAY_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"x-razorpay-signature": signature, "x-razorpay-event-id": event_id, "content-type": "application/json"}


def hostile_bodies(key: str) -> dict[str, tuple[str, bytes]]:
    """(gateway, raw body) of events that would settle the payment with ``key`` but for one hostile part.
    Raw bytes: ``\\ud800`` is the JSON escape of a lone surrogate, as a processor (or attacker) sends it."""
    def sandbox(data: str) -> bytes:
        return ('{"type":"payment.failed","data":{"idempotency_key":"%s",%s}}' % (key, data)).encode()

    def razorpay(entity: str) -> bytes:
        return ('{"event":"payment.failed","payload":{"payment":{"entity":{"notes":{"idempotency_key":"%s"},%s}},'
                '"refund":{"entity":{"id":"rfnd_1"}}}}' % (key, entity)).encode()

    deep = "[" * 5000 + "]" * 5000
    return {
        "sandbox surrogate payment_id": ("sandbox", sandbox('"payment_id":"\\ud800"')),
        "sandbox surrogate refund_id": ("sandbox", sandbox('"refund_id":"x\\udfff"')),
        "sandbox surrogate failure_message": ("sandbox", sandbox('"failure_message":"\\ud800 declined"')),
        "sandbox nested 5000": ("sandbox", sandbox(f'"extra":{deep}')),
        "sandbox ESC in failure_message": ("sandbox", sandbox('"failure_message":"\\u001b[31mdeclined"')),
        "sandbox NUL in payment_id": ("sandbox", sandbox('"payment_id":"ch_\\u0000"')),
        "sandbox huge number": ("sandbox", sandbox('"amount":1e400')),
        "sandbox huge integer": ("sandbox", sandbox('"amount":' + "9" * 5000)),
        "sandbox NaN": ("sandbox", sandbox('"amount":NaN')),
        "razorpay surrogate payment id": ("razorpay", razorpay('"id":"\\ud800"')),
        "razorpay surrogate error_description": ("razorpay", razorpay('"error_description":"\\ud800"')),
        "razorpay nested 5000": ("razorpay", razorpay(f'"acquirer_data":{deep}')),
        "razorpay DEL in error_code": ("razorpay", razorpay('"error_code":"BAD\\u007f"')),
    }


@pytest.mark.parametrize("case", sorted(hostile_bodies("k")))
async def test_signed_hostile_bodies_are_400_with_a_reason_and_nothing_applied(client, db, past_due, case):
    """Issue 19 item 2: a signed body with a lone surrogate, control characters, absurd nesting or numbers is
    refused with 400 and a reason (a processor's resend gets the same answer), never a 500; nothing applied."""
    _, _, payment = past_due
    gateway, body = hostile_bodies(payment.idempotency_key)[case]
    if gateway == "razorpay":
        async with db.write() as session:
            (await session.get(Payment, payment.id)).gateway = "razorpay"
    before = await database_state(db)
    headers = razorpay_headers(body) if gateway == "razorpay" else {
        "content-type": "application/json", **webhook_headers(SANDBOX_SECRET, "evt_hostile", body)}
    response = await client.post(f"/webhooks/{gateway}", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("The body ")
    assert await database_state(db) == before
    assert (await load(db, Payment, payment.id)).status is PaymentStatus.PENDING


async def test_an_event_id_with_a_control_character_is_400(client, db, past_due):
    _, _, payment = past_due
    body = json.dumps({"event": "payment.captured", "payload": {"payment": {"entity": {
        "id": "pay_X", "notes": {"idempotency_key": payment.idempotency_key}}}}}).encode()
    response = await client.post("/webhooks/razorpay", content=body, headers=razorpay_headers(body, "evt\x1b[2J"))
    assert response.status_code == 400
    assert await count_rows(db, GatewayEvent) == 0
