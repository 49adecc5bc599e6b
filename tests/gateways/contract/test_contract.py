"""One contract for every processor behind the gateway protocol: sandbox, Razorpay, Stripe.

Each case runs once per processor (the ``processor`` fixture); what a processor does not have
(Razorpay's saved-token payments have no 3-D Secure step) is skipped with that reason.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select

from billing_graphql.app import create_app
from billing_graphql.db.models import GatewayEvent, Invoice, Organization, Payment, PaymentMethod, PaymentStatus
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.gateways.base import ChargeOutcome, GatewayError
from billing_graphql.services.billing.charging import charge_invoice, reconcile_payment
from tests.factories import count_rows, make_payment_method
from tests.gateways.contract.processors import CHARGE_AMOUNT, CURRENCY
from tests.helpers import T0
from tests.services.test_invoicing import events, new_invoice, organization


def key() -> str:
    return f"pay_{uuid.uuid4().hex}"


async def charge(processor, token: str, customer: str, idempotency_key: str, amount: int = CHARGE_AMOUNT):
    return await processor.gateway.charge(customer_id=customer, payment_method_token=token, amount=amount,
                                          currency=CURRENCY, idempotency_key=idempotency_key,
                                          description="Invoice INV-202601-000001")


async def test_a_saved_card_is_charged(processor):
    customer = await processor.new_customer()
    token = await processor.save_card(customer)
    sent = key()
    result = await charge(processor, token, customer, sent)
    assert result.outcome is ChargeOutcome.SUCCEEDED and result.gateway_payment_id
    assert processor.charges_with(sent) == 1


async def test_a_decline_is_a_result_with_the_processors_code(processor):
    customer = await processor.new_customer()
    token = await processor.save_card(customer, "declined")
    result = await charge(processor, token, customer, key())
    assert result.outcome is ChargeOutcome.DECLINED
    assert result.failure_code and result.failure_message
    assert result.failure_code in result.failure_message or processor.name != "stripe"  # Stripe: code in the message


async def test_action_required_is_its_own_outcome_never_success(processor):
    if not processor.has_action_required:
        pytest.skip(f"{processor.name} has no action-required step on saved-card charges")
    customer = await processor.new_customer()
    token = await processor.save_card(customer, "action")
    result = await charge(processor, token, customer, key())
    assert result.outcome is ChargeOutcome.ACTION_REQUIRED
    assert result.failure_code == "authentication_required"


async def test_partial_then_full_refunds_and_never_more(processor):
    customer = await processor.new_customer()
    token = await processor.save_card(customer)
    paid = await charge(processor, token, customer, key())
    payment_id = paid.gateway_payment_id
    first = await processor.gateway.refund(gateway_payment_id=payment_id, amount=500, currency=CURRENCY,
                                           idempotency_key="refund_" + uuid.uuid4().hex)
    assert first.succeeded and first.gateway_refund_id
    assert await processor.refunded(payment_id) == 500
    rest_key = "refund_" + uuid.uuid4().hex
    rest = await processor.gateway.refund(gateway_payment_id=payment_id, amount=CHARGE_AMOUNT - 500,
                                          currency=CURRENCY, idempotency_key=rest_key)
    assert rest.succeeded and rest.gateway_refund_id != first.gateway_refund_id
    again = await processor.gateway.refund(gateway_payment_id=payment_id, amount=CHARGE_AMOUNT - 500,
                                           currency=CURRENCY, idempotency_key=rest_key)
    assert (again.succeeded, again.gateway_refund_id) == (True, rest.gateway_refund_id)  # the same refund
    assert await processor.refunded(payment_id) == CHARGE_AMOUNT


async def test_the_same_idempotency_key_twice_is_one_charge(processor):
    customer = await processor.new_customer()
    token = await processor.save_card(customer)
    sent = key()
    first = await charge(processor, token, customer, sent)
    second = await charge(processor, token, customer, sent)
    assert first.outcome is second.outcome is ChargeOutcome.SUCCEEDED
    assert first.gateway_payment_id == second.gateway_payment_id
    assert processor.charges_with(sent) == 1


async def test_a_timeout_after_the_processor_accepted_is_found_by_the_retry(processor):
    customer = await processor.new_customer()
    token = await processor.save_card(customer)
    sent = key()
    processor.lose_next_charge_answer()
    with pytest.raises(GatewayError):
        await charge(processor, token, customer, sent)
    assert processor.charges_with(sent) == 1  # the processor did charge
    retried = await charge(processor, token, customer, sent)
    assert retried.outcome is ChargeOutcome.SUCCEEDED and retried.gateway_payment_id
    assert processor.charges_with(sent) == 1


# -- the processor's events, through POST /webhooks/<gateway>, on both databases ---------------

async def _client(db, settings, processor) -> httpx.AsyncClient:
    configured = replace(settings, **processor.settings)
    app = create_app(configured, db=db, freeze_gc=False,
                     gateways=GatewayRegistry(configured, overrides={processor.name: processor.gateway}))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def _pending_payment(db, processor) -> tuple[Organization, Payment]:
    """A charge the processor accepted whose answer was lost: PENDING, with our key."""
    org = await organization(db)
    customer = await processor.new_customer()
    async with db.write() as session:
        row = await session.get(Organization, org.id)
        row.gateway_customer_id = customer
    token = await processor.save_card(customer)
    await make_payment_method(db, org.id, token=token, gateway=processor.name)
    invoice = await new_invoice(db, org.id, amount=CHARGE_AMOUNT, finalize=True)
    processor.lose_next_charge_answer()
    async with db.write() as session:
        method = await session.scalar(select(PaymentMethod).where(PaymentMethod.organization_id == org.id))
        payment = await charge_invoice(session, await session.get(Invoice, invoice.id), method,
                                       processor.gateway, T0)
    assert payment.status is PaymentStatus.PENDING
    return org, payment


async def test_an_inbound_event_is_verified_and_applied_once(db, settings, processor):
    org, payment = await _pending_payment(db, processor)
    event = await processor.succeeded_event(None, payment.idempotency_key)
    body, headers = processor.deliver(event)
    async with await _client(db, settings, processor) as client:
        first = await client.post(f"/webhooks/{processor.name}", content=body, headers=headers)
        again = await client.post(f"/webhooks/{processor.name}", content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert (first.json()["duplicate"], first.json()["result"]) == (False, "payment SUCCEEDED")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    async with db.read() as session:
        stored = await session.get(Payment, payment.id)
        invoice = await session.get(Invoice, payment.invoice_id)
    assert stored.status is PaymentStatus.SUCCEEDED and stored.gateway_payment_id
    assert (invoice.status, invoice.amount_paid) == (InvoiceStatus.PAID, invoice.total)
    assert len(await events(db, "invoice.paid")) == 1
    assert await count_rows(db, GatewayEvent) == 1


async def test_a_forged_event_is_refused_and_changes_nothing(db, settings, processor):
    org, payment = await _pending_payment(db, processor)
    event = await processor.succeeded_event(None, payment.idempotency_key)
    body, headers = processor.deliver(event, secret=processor.forged_secret())
    async with await _client(db, settings, processor) as client:
        response = await client.post(f"/webhooks/{processor.name}", content=body, headers=headers)
    assert response.status_code == 400 and response.json()["detail"]
    async with db.read() as session:
        stored = await session.get(Payment, payment.id)
    assert stored.status is PaymentStatus.PENDING
    assert await count_rows(db, GatewayEvent) == 0


async def test_the_retry_of_a_lost_answer_settles_the_pending_payment(db, processor):
    org, payment = await _pending_payment(db, processor)
    async with db.write() as session:
        row = await session.get(Payment, payment.id)
        await reconcile_payment(session, row, processor.gateway, T0)
    async with db.read() as session:
        stored = await session.get(Payment, payment.id)
        invoice = await session.get(Invoice, payment.invoice_id)
    assert stored.status is PaymentStatus.SUCCEEDED and invoice.status is InvoiceStatus.PAID
    assert processor.charges_with(payment.idempotency_key) == 1
