"""Analytics after credit notes and bad debt: net revenue subtracts a credit note refunded through the
processor (not one that went to the account balance), and an invoice marked uncollectible is bad debt
in its month until it is paid."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from billing_graphql.domain.credit_notes import CreditNoteOutcome, CreditNoteReason
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.billing.credit_notes import issue_credit_note
from billing_graphql.services.billing.invoice_lifecycle import mark_uncollectible
from tests.factories import Line, make_invoice, make_payment
from tests.helpers import T0
from tests.services.test_refunds import FakeProcessor

OPERATION = (Path(__file__).resolve().parents[2] / "queries" / "admin" / "Analytics.graphql").read_text()


async def test_refunded_credit_notes_and_bad_debt(api, db, keys, settings):
    gateways = GatewayRegistry(settings, overrides={"sandbox": FakeProcessor()})
    paid = await make_invoice(db, keys.organization_id, lines=[Line("Growth plan, monthly", 100_000)])
    await make_payment(db, paid, created_at=T0)  # 111,000 received in January
    february = T0 + timedelta(days=31)
    for outcome, amount in ((CreditNoteOutcome.REFUND, "11100"), (CreditNoteOutcome.CREDIT_BALANCE, "22200")):
        await issue_credit_note(db, None, invoice_id=paid.id, reason=CreditNoteReason.OTHER, outcome=outcome,
                                amount=Decimal(amount), idempotency_key=None, gateways=gateways, now=february)
    unpaid = await make_invoice(db, keys.organization_id, status=InvoiceStatus.OPEN,
                                lines=[Line("Growth plan, monthly", 200_000)])
    await mark_uncollectible(db, None, invoice_id=unpaid.id, reason="Gone", idempotency_key=None, now=february)

    data = (await api.ok(OPERATION, {"from": "2026-01-01", "to": "2026-02-28", "currency": "IDR"},
                         token=keys.super_admin))["analytics"]
    january, feb = data["months"]
    assert january["netRevenue"] == {"amount": "111000"} and january["uncollectible"] == {"amount": "0"}
    # Only the refunded credit note takes money back; the other one is account credit.
    assert feb["netRevenue"] == {"amount": "-11100"}
    assert feb["uncollectible"] == {"amount": "222000"}
    # Bad debt is not outstanding (OPEN) any more.
    assert data["outstanding"]["amount"] == "0"
