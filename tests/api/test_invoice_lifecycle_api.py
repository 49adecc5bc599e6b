"""voidInvoice and markInvoiceUncollectible over HTTP, on both databases."""

from __future__ import annotations

from sqlalchemy import select, update

from billing_graphql.db.models import (
    AuditEvent,
    BillingReason,
    CouponDuration,
    CouponRedemption,
    Invoice,
    Organization,
    OutboxEvent,
    Subscription,
)
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from tests.api.test_pay_invoice_api import PAY
from tests.factories import (
    T0,
    count_rows,
    make_coupon,
    make_invoice,
    make_payment,
    make_payment_method,
    make_subscription,
)
from tests.helpers import gid

VOID = """
mutation Void($input: VoidInvoiceInput!) {
  voidInvoice(input: $input) { invoice { id status voidedAt amountDue { amount } } errors { code message field } }
}
"""
UNCOLLECTIBLE = """
mutation Uncollectible($input: MarkInvoiceUncollectibleInput!) {
  markInvoiceUncollectible(input: $input) {
    invoice { id status markedUncollectibleAt } errors { code message field }
  }
}
"""


async def _events(db, event_type):
    async with db.read() as session:
        return (await session.scalars(select(OutboxEvent).where(OutboxEvent.event_type == event_type))).all()


async def test_void_gives_back_credit_and_coupon_and_replays(api, db, keys):
    coupon = await make_coupon(db, duration=CouponDuration.ONCE)
    subscription = await make_subscription(db, keys.organization_id)
    invoice = await make_invoice(db, keys.organization_id, status=InvoiceStatus.OPEN, discount=100_000,
                                 subscription_id=subscription.id)
    async with db.write() as session:
        session.add(CouponRedemption(coupon_id=coupon.id, organization_id=keys.organization_id,
                                     subscription_id=subscription.id, redeemed_at=T0))
        await session.execute(update(Invoice).where(Invoice.id == invoice.id).values(
            billing_reason=BillingReason.SUBSCRIPTION_CYCLE, credit_applied=50_000))
    variables = {"input": {"invoiceId": gid("Invoice", invoice.id), "reason": "Billed twice", "idempotencyKey": "v-1"}}
    result = (await api.ok(VOID, variables, token=keys.super_admin))["voidInvoice"]
    assert result["errors"] == [] and result["invoice"]["status"] == "VOID" and result["invoice"]["voidedAt"]
    assert (await api.ok(VOID, variables, token=keys.super_admin))["voidInvoice"] == result
    reused = (await api.ok(VOID, {"input": {**variables["input"], "reason": "Other"}},
                           token=keys.super_admin))["voidInvoice"]
    assert [e["code"] for e in reused["errors"]] == ["IDEMPOTENCY_KEY_REUSED"]
    async with db.read() as session:
        organization = await session.get(Organization, keys.organization_id)
        stored_subscription = await session.get(Subscription, subscription.id)
        audits = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "invoice.voided"))).all()
    assert (organization.credit_balance, organization.credit_currency) == (50_000, "IDR")
    # The spent ONCE coupon applies again to the next invoice.
    assert (stored_subscription.coupon_id, stored_subscription.coupon_periods_remaining) == (coupon.id, 1)
    assert len(audits) == 1 and audits[0].reason == "Billed twice"
    events = await _events(db, "invoice.voided")
    assert len(events) == 1 and events[0].payload["object"]["status"] == "VOID"
    assert events[0].payload["reason"] == "Billed twice"
    # Voided: nothing to pay any more.
    await make_payment_method(db, keys.organization_id)
    paid = (await api.ok(PAY, {"input": {"invoiceId": gid("Invoice", invoice.id)}}, token=keys.owner))["payInvoice"]
    assert [e["code"] for e in paid["errors"]] == ["VALIDATION"]


async def test_paid_and_other_invoices_cannot_be_voided(api, db, keys):
    paid = await make_invoice(db, keys.organization_id)
    await make_payment(db, paid)
    void = await make_invoice(db, keys.organization_id, status=InvoiceStatus.VOID)
    other = await make_invoice(db, keys.other_organization_id, status=InvoiceStatus.OPEN)
    audits = await count_rows(db, AuditEvent)
    cases = [
        (paid.id, "INVALID_TRANSITION", "invoiceId"),
        (void.id, "INVALID_TRANSITION", "invoiceId"),
    ]
    for invoice_id, code, field in cases:
        for document, name in ((VOID, "voidInvoice"), (UNCOLLECTIBLE, "markInvoiceUncollectible")):
            result = (await api.ok(document, {"input": {"invoiceId": gid("Invoice", invoice_id)}},
                                   token=keys.super_admin))[name]
            assert [(e["code"], e["field"]) for e in result["errors"]] == [(code, field)]
            assert result["invoice"] is None
    message = (await api.ok(VOID, {"input": {"invoiceId": gid("Invoice", paid.id)}},
                            token=keys.super_admin))["voidInvoice"]["errors"][0]["message"]
    assert "credit note" in message
    bad = [({"invoiceId": "garbage"}, "NOT_FOUND", "invoiceId"),
           ({"invoiceId": gid("Plan", paid.id)}, "NOT_FOUND", "invoiceId"),
           ({"invoiceId": gid("Invoice", other.id), "reason": "x" * 501}, "VALIDATION", "reason"),
           ({"invoiceId": gid("Invoice", other.id), "idempotencyKey": " "}, "VALIDATION", "idempotencyKey")]
    for values, code, field in bad:
        result = (await api.ok(VOID, {"input": values}, token=keys.super_admin))["voidInvoice"]
        assert [(e["code"], e["field"]) for e in result["errors"]] == [(code, field)], values
    for token, code in ((keys.owner, "FORBIDDEN"), (keys.admin, "FORBIDDEN"), (None, "UNAUTHENTICATED")):
        for document, name in ((VOID, "voidInvoice"), (UNCOLLECTIBLE, "markInvoiceUncollectible")):
            result = await api.post(document, {"input": {"invoiceId": gid("Invoice", other.id)}}, token=token)
            assert result["data"] == {name: None} and result["errors"][0]["extensions"]["code"] == code
    async with db.read() as session:
        statuses = {row.id: row.status for row in (await session.scalars(select(Invoice))).all()}
    assert statuses == {paid.id: InvoiceStatus.PAID, void.id: InvoiceStatus.VOID, other.id: InvoiceStatus.OPEN}
    assert await count_rows(db, AuditEvent) == audits


async def test_uncollectible_stops_dunning_and_may_still_be_paid(api, db, keys):
    subscription = await make_subscription(db, keys.organization_id, status=SubscriptionStatus.PAST_DUE)
    invoice = await make_invoice(db, keys.organization_id, status=InvoiceStatus.OPEN, subscription_id=subscription.id)
    variables = {"input": {"invoiceId": gid("Invoice", invoice.id), "reason": "Customer gone", "idempotencyKey": "u-1"}}
    result = (await api.ok(UNCOLLECTIBLE, variables, token=keys.super_admin))["markInvoiceUncollectible"]
    assert result["errors"] == [] and result["invoice"]["status"] == "UNCOLLECTIBLE"
    assert (await api.ok(UNCOLLECTIBLE, variables, token=keys.super_admin))["markInvoiceUncollectible"] == result
    events = await _events(db, "invoice.marked_uncollectible")
    assert len(events) == 1 and events[0].payload["reason"] == "Customer gone"

    # Dunning only collects OPEN invoices: the subscription's retry has nothing to charge.
    from billing_graphql.services.billing.dunning import open_invoices

    async with db.read() as session:
        assert await open_invoices(session, await session.get(Subscription, subscription.id)) == []

    # payInvoice may still pay it: UNCOLLECTIBLE -> PAID, the subscription recovers.
    await make_payment_method(db, keys.organization_id)
    paid = (await api.ok(PAY, {"input": {"invoiceId": gid("Invoice", invoice.id)}}, token=keys.owner))["payInvoice"]
    assert paid["errors"] == [] and paid["invoice"]["status"] == "PAID"
    assert paid["subscription"]["status"] == "ACTIVE"
    again = (await api.ok(UNCOLLECTIBLE, {"input": {"invoiceId": gid("Invoice", invoice.id)}},
                          token=keys.super_admin))["markInvoiceUncollectible"]
    assert [e["code"] for e in again["errors"]] == ["INVALID_TRANSITION"]
