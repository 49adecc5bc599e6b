"""payInvoice over HTTP: who may call it, the payload, errors as data."""

from __future__ import annotations

from sqlalchemy import update

from billing_graphql.db.models import Payment, Subscription
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from tests.factories import count_rows, make_invoice, make_payment_method, make_subscription
from tests.helpers import gid

PAY = """
mutation Pay($input: PayInvoiceInput!) {
  payInvoice(input: $input) {
    invoice { id status amountPaid { amount } amountDue { amount } }
    payment { id status amount { amount currency } gateway failureCode }
    subscription { id status }
    errors { code message field }
  }
}
"""


async def _past_due_invoice(db, keys):
    subscription = await make_subscription(db, keys.organization_id, status=SubscriptionStatus.PAST_DUE)
    async with db.write() as session:
        await session.execute(update(Subscription).where(Subscription.id == subscription.id).values(retry_count=2))
    invoice = await make_invoice(db, keys.organization_id, status=InvoiceStatus.OPEN, subscription_id=subscription.id)
    return subscription, invoice


async def test_owner_pays_and_the_subscription_is_active_again(api, db, keys):
    subscription, invoice = await _past_due_invoice(db, keys)
    card = await make_payment_method(db, keys.organization_id, token="pm_card_visa")
    variables = {"input": {"invoiceId": gid("Invoice", invoice.id), "paymentMethodId": gid("PaymentMethod", card.id),
                           "idempotencyKey": "pay-api-1"}}
    result = (await api.ok(PAY, variables, token=keys.owner))["payInvoice"]
    assert result["errors"] == []
    total = str(invoice.total)
    assert result["invoice"] == {"id": gid("Invoice", invoice.id), "status": "PAID", "amountPaid": {"amount": total},
                                 "amountDue": {"amount": "0"}}
    assert result["payment"]["status"] == "SUCCEEDED" and result["payment"]["amount"] == {"amount": total,
                                                                                          "currency": "IDR"}
    assert result["subscription"] == {"id": gid("Subscription", subscription.id), "status": "ACTIVE"}
    assert (await api.ok(PAY, variables, token=keys.owner))["payInvoice"] == result  # replayed
    assert await count_rows(db, Payment) == 1


async def test_a_decline_is_payment_failed_with_the_invoice_open(api, db, keys):
    subscription, invoice = await _past_due_invoice(db, keys)
    await make_payment_method(db, keys.organization_id, token="pm_card_insufficient_funds")
    result = (await api.ok(PAY, {"input": {"invoiceId": gid("Invoice", invoice.id)}}, token=keys.admin))["payInvoice"]
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("PAYMENT_FAILED", "paymentMethodId")]
    assert result["invoice"]["status"] == "OPEN"
    assert (result["payment"]["status"], result["payment"]["failureCode"]) == ("FAILED", "insufficient_funds")
    assert result["subscription"]["status"] == "PAST_DUE"


async def test_errors_are_data(api, db, keys):
    paid = await make_invoice(db, keys.organization_id)
    open_invoice = await make_invoice(db, keys.organization_id, status=InvoiceStatus.OPEN)
    theirs = await make_invoice(db, keys.other_organization_id, status=InvoiceStatus.OPEN)
    cases = [
        ({"invoiceId": gid("Invoice", paid.id)}, "VALIDATION", "invoiceId"),
        ({"invoiceId": gid("Invoice", open_invoice.id)}, "PAYMENT_REQUIRED", "paymentMethodId"),
        ({"invoiceId": gid("Invoice", theirs.id)}, "NOT_FOUND", "invoiceId"),
        ({"invoiceId": gid("Plan", open_invoice.id)}, "NOT_FOUND", "invoiceId"),
        ({"invoiceId": gid("Invoice", open_invoice.id), "paymentMethodId": gid("Plan", open_invoice.id)},
         "NOT_FOUND", "paymentMethodId"),
        ({"invoiceId": gid("Invoice", open_invoice.id), "idempotencyKey": " "}, "VALIDATION", "idempotencyKey"),
    ]
    for payload, code, field in cases:
        result = (await api.ok(PAY, {"input": payload}, token=keys.owner))["payInvoice"]
        assert [(e["code"], e["field"]) for e in result["errors"]] == [(code, field)], payload
        assert result["invoice"] is None and result["payment"] is None
    assert await count_rows(db, Payment) == 0


async def test_super_admin_pays_any_organizations_invoice(api, db, keys):
    invoice = await make_invoice(db, keys.other_organization_id, status=InvoiceStatus.OPEN)
    await make_payment_method(db, keys.other_organization_id, token="pm_card_visa")
    result = (await api.ok(PAY, {"input": {"invoiceId": gid("Invoice", invoice.id)}}, token=keys.super_admin))
    assert result["payInvoice"]["invoice"]["status"] == "PAID"


async def test_members_partners_and_anonymous_callers_may_not_pay(api, db, keys):
    invoice = await make_invoice(db, keys.organization_id, status=InvoiceStatus.OPEN)
    await make_payment_method(db, keys.organization_id, token="pm_card_visa")
    for token, code in ((keys.member, "FORBIDDEN"), (keys.partner, "FORBIDDEN"), (None, "UNAUTHENTICATED")):
        result = await api.post(PAY, {"input": {"invoiceId": gid("Invoice", invoice.id)}}, token=token)
        assert result["data"] == {"payInvoice": None}
        assert result["errors"][0]["extensions"]["code"] == code
    assert await count_rows(db, Payment) == 0
