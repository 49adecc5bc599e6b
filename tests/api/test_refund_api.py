"""The refund mutation over HTTP: super-admins only, payload, errors as data."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from billing_graphql.db.models import Invoice, Refund
from billing_graphql.domain.status import InvoiceStatus
from tests.helpers import gid
from tests.factories import count_rows, make_invoice, make_payment
from tests.services.test_refunds import FakeProcessor

REFUND = """
mutation Refund($input: RefundInput!) {
  refund(input: $input) {
    status
    refundAmount { amount currency formatted }
    invoiceStatus
    invoiceId
    errors { code message field }
  }
}
"""


@pytest.fixture
def processor():
    return FakeProcessor()


@pytest.fixture
def gateway_overrides(request):
    """The app's gateways: for tests that ask for ``processor``, it stands in for "sandbox"."""
    return {"sandbox": request.getfixturevalue("processor")} if "processor" in request.fixturenames else {}


async def test_super_admin_refunds_part_then_rest(api, db, keys, processor):
    invoice = await make_invoice(db, keys.organization_id)
    await make_payment(db, invoice)
    variables = {"input": {"invoiceId": gid("Invoice", invoice.id), "amount": "110000", "reason": "Goodwill",
                           "idempotencyKey": "rf-1"}}
    result = (await api.ok(REFUND, variables, token=keys.super_admin))["refund"]
    assert result == {
        "status": "SUCCEEDED",
        "refundAmount": {"amount": "110000", "currency": "IDR", "formatted": "Rp 110,000"},
        "invoiceStatus": "PARTIALLY_REFUNDED",
        "invoiceId": gid("Invoice", invoice.id),
        "errors": [],
    }
    # A retry with the same key is the same result, not a second refund.
    assert (await api.ok(REFUND, variables, token=keys.super_admin))["refund"] == result
    assert await count_rows(db, Refund) == 1
    rest = (await api.ok(REFUND, {"input": {"invoiceId": gid("Invoice", invoice.id)}}, token=keys.super_admin))["refund"]
    assert (rest["status"], rest["refundAmount"]["amount"], rest["invoiceStatus"]) == ("SUCCEEDED", "1000000", "REFUNDED")


async def test_errors_are_data_and_write_nothing(api, db, keys, processor):
    invoice = await make_invoice(db, keys.organization_id)
    await make_payment(db, invoice)
    open_invoice = await make_invoice(db, keys.organization_id, status=InvoiceStatus.OPEN)
    cases = [
        ({"invoiceId": gid("Invoice", invoice.id), "amount": "1110001"}, "REFUND_EXCEEDS_PAID", "amount"),
        ({"invoiceId": gid("Invoice", invoice.id), "amount": "0"}, "REFUND_EXCEEDS_PAID", "amount"),
        ({"invoiceId": gid("Invoice", invoice.id), "amount": "1.5"}, "VALIDATION", "amount"),
        ({"invoiceId": gid("Invoice", open_invoice.id)}, "NOT_REFUNDABLE", "invoiceId"),
        ({"invoiceId": gid("Plan", invoice.id)}, "NOT_FOUND", "invoiceId"),
        ({"invoiceId": "garbage"}, "NOT_FOUND", "invoiceId"),
    ]
    for payload, code, field in cases:
        result = (await api.ok(REFUND, {"input": payload}, token=keys.super_admin))["refund"]
        assert [(e["code"], e["field"]) for e in result["errors"]] == [(code, field)], payload
        assert result["status"] is None
    assert await count_rows(db, Refund) == 0
    async with db.read() as session:
        assert (await session.get(Invoice, invoice.id)).amount_refunded == 0


async def test_key_reused_with_other_input(api, db, keys, processor):
    invoice = await make_invoice(db, keys.organization_id)
    await make_payment(db, invoice)
    base = {"invoiceId": gid("Invoice", invoice.id), "amount": "1000", "idempotencyKey": "rf-9"}
    assert (await api.ok(REFUND, {"input": base}, token=keys.super_admin))["refund"]["errors"] == []
    reused = (await api.ok(REFUND, {"input": {**base, "amount": "1001"}}, token=keys.super_admin))["refund"]
    assert [e["code"] for e in reused["errors"]] == ["IDEMPOTENCY_KEY_REUSED"]


async def test_refused_refund_reports_failed_with_payment_failed(api, db, keys, processor):
    processor.mode = "refuse"
    invoice = await make_invoice(db, keys.organization_id)
    await make_payment(db, invoice)
    result = (await api.ok(REFUND, {"input": {"invoiceId": gid("Invoice", invoice.id)}}, token=keys.super_admin))
    result = result["refund"]
    assert (result["status"], result["refundAmount"]["amount"], result["invoiceStatus"]) == ("FAILED", "0", "PAID")
    assert [e["code"] for e in result["errors"]] == ["PAYMENT_FAILED"]


async def test_only_super_admins_refund(api, db, keys, processor):
    invoice = await make_invoice(db, keys.organization_id)
    await make_payment(db, invoice)
    for token, code in ((keys.owner, "FORBIDDEN"), (keys.admin, "FORBIDDEN"), (None, "UNAUTHENTICATED")):
        result = await api.post(REFUND, {"input": {"invoiceId": gid("Invoice", invoice.id)}}, token=token)
        assert result["data"] == {"refund": None}
        assert result["errors"][0]["extensions"]["code"] == code
    assert await count_rows(db, Refund) == 0
    async with db.read() as session:
        assert (await session.scalar(select(Invoice.amount_refunded).where(Invoice.id == invoice.id))) == 0


async def test_sandbox_end_to_end_pay_then_refund_in_two_parts(api, db, keys):
    """The real sandbox gateway, no stand-in: payInvoice with pm_card_visa, then two refunds."""
    from tests.api.test_pay_invoice_api import PAY
    from tests.factories import make_payment_method

    invoice = await make_invoice(db, keys.organization_id, status=InvoiceStatus.OPEN)  # total 1,110,000
    await make_payment_method(db, keys.organization_id, token="pm_card_visa")
    paid = (await api.ok(PAY, {"input": {"invoiceId": gid("Invoice", invoice.id)}}, token=keys.owner))["payInvoice"]
    assert paid["errors"] == [] and paid["payment"]["status"] == "SUCCEEDED" and paid["invoice"]["status"] == "PAID"
    assert paid["payment"]["gateway"] == "sandbox"
    part = {"input": {"invoiceId": gid("Invoice", invoice.id), "amount": "110000", "reason": "Goodwill"}}
    first = (await api.ok(REFUND, part, token=keys.super_admin))["refund"]
    assert (first["status"], first["refundAmount"]["amount"], first["invoiceStatus"], first["errors"]) == (
        "SUCCEEDED", "110000", "PARTIALLY_REFUNDED", [])
    rest = (await api.ok(REFUND, {"input": {"invoiceId": gid("Invoice", invoice.id)}}, token=keys.super_admin))
    assert (rest["refund"]["status"], rest["refund"]["refundAmount"]["amount"], rest["refund"]["invoiceStatus"]) == (
        "SUCCEEDED", "1000000", "REFUNDED")
    async with db.read() as session:
        refunds = (await session.scalars(select(Refund).order_by(Refund.amount))).all()
    assert [(r.amount, r.status.value) for r in refunds] == [(110000, "SUCCEEDED"), (1000000, "SUCCEEDED")]
    assert all(r.gateway_refund_id.startswith("re_sandbox_") for r in refunds)
    listed = await api.ok("query($id: ID!) { invoice(id: $id) { status amountRefunded { amount } "
                          "refunds { amount { amount } status reason } } }", {"id": gid("Invoice", invoice.id)},
                          token=keys.owner)
    assert listed["invoice"] == {
        "status": "REFUNDED", "amountRefunded": {"amount": "1110000"},
        "refunds": [{"amount": {"amount": "110000"}, "status": "SUCCEEDED", "reason": "Goodwill"},
                    {"amount": {"amount": "1000000"}, "status": "SUCCEEDED", "reason": None}],
    }
    over = (await api.ok(REFUND, {"input": {"invoiceId": gid("Invoice", invoice.id), "amount": "1"}},
                         token=keys.super_admin))["refund"]
    assert [e["code"] for e in over["errors"]] == ["NOT_REFUNDABLE"]
