"""GET /invoices/export.csv: invoices and credit notes of a range, DPP/PPN, scope, and errors."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

from billing_graphql.db.models import InvoiceParties
from billing_graphql.domain.credit_notes import CreditNoteOutcome, CreditNoteReason
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.billing.credit_notes import issue_credit_note
from tests.factories import Line, make_invoice, make_payment
from tests.helpers import T0, gid

HEADER = ("type,number,issued_on,due_on,status,corrects_invoice,organization_external_id,customer_legal_name,npwp,"
          "currency,dpp,ppn,total,amount_paid,amount_credited")
RANGE = {"from": "2026-01-15", "to": "2026-01-16"}


async def export(api, token=None, **params):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await api.client.get("/invoices/export.csv", params=params, headers=headers)


def rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.text, newline="")))


async def seed(db, keys, settings):
    paid = await make_invoice(db, keys.organization_id, number="INV-202601-000001",
                              lines=[Line("Growth plan, monthly", 100_000)])
    await make_payment(db, paid)
    async with db.write() as session:
        session.add(InvoiceParties(invoice_id=paid.id, buyer_legal_name="=PT Acme, Tbk", buyer_country="ID",
                                   buyer_tax_id="01.234.567.8-901.000"))
    open_invoice = await make_invoice(db, keys.organization_id, number="INV-202601-000002", status=InvoiceStatus.OPEN,
                                      created_at=T0 + timedelta(hours=2))
    await issue_credit_note(db, None, invoice_id=paid.id, reason=CreditNoteReason.OTHER,
                            outcome=CreditNoteOutcome.CREDIT_BALANCE, amount=Decimal("55500"), idempotency_key=None,
                            gateways=GatewayRegistry(settings), now=T0 + timedelta(days=1))
    # Outside the range, a draft, and another organization's invoice inside it.
    await make_invoice(db, keys.organization_id, number="INV-202601-000003", created_at=T0 - timedelta(days=20))
    await make_invoice(db, keys.organization_id, status=InvoiceStatus.DRAFT)
    await make_invoice(db, keys.other_organization_id, number="INV-202601-000004")
    return paid, open_invoice


async def test_owner_exports_invoices_and_credit_notes(api, db, keys, settings):
    await seed(db, keys, settings)
    response = await export(api, keys.owner, **RANGE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="invoices-2026-01-15-to-2026-01-16.csv"'
    table = rows(response)
    assert ",".join(table[0]) == HEADER
    number = table[3][1]
    assert table[1:] == [
        # 100,000 + PPN 12% on 11/12 (DPP 91,667) = 111,000; the formula-like name is defused
        ["invoice", "INV-202601-000001", "2026-01-15", "2026-01-22", "PAID", "", "acme", "'=PT Acme, Tbk",
         "01.234.567.8-901.000", "IDR", "91667", "11000", "111000", "111000", "55500"],
        ["invoice", "INV-202601-000002", "2026-01-15", "2026-01-22", "OPEN", "", "acme", "Acme", "", "IDR",
         "916667", "110000", "1110000", "0", "0"],
        # the credit note reverses 50,000 net (DPP 45,833) and 5,500 PPN
        ["credit_note", number, "2026-01-16", "", "ISSUED", "INV-202601-000001", "acme", "'=PT Acme, Tbk",
         "01.234.567.8-901.000", "IDR", "-45833", "-5500", "-55500", "0", "55500"],
    ]
    assert number.startswith("CN-202601-")


async def test_scope_super_admin_any_or_all_tenants_their_own(api, db, keys, settings):
    await seed(db, keys, settings)
    everything = rows(await export(api, keys.super_admin, **RANGE))
    assert [row[1] for row in everything[1:] if row[0] == "invoice"] == [
        "INV-202601-000001", "INV-202601-000004", "INV-202601-000002"]
    theirs = rows(await export(api, keys.super_admin, organizationId=gid("Organization", keys.other_organization_id),
                               **RANGE))
    assert [row[1] for row in theirs[1:]] == ["INV-202601-000004"]
    admin = rows(await export(api, keys.admin, **RANGE))
    assert len(admin) == 4
    response = await export(api, keys.owner, organizationId=str(keys.other_organization_id), **RANGE)
    assert response.status_code == 404
    assert (await export(api, keys.member, **RANGE)).status_code == 403
    assert (await export(api, None, **RANGE)).status_code == 401


async def test_bad_dates_are_400_never_a_broken_stream(api, db, keys):
    for params in ({}, {"from": "2026-01-01"}, {"from": "2026-13-01", "to": "2026-01-02"},
                   {"from": "2026-01-02", "to": "2026-01-01"}, {"from": "2026-01-01", "to": "9999-12-31"},
                   {"from": "0001-01-01", "to": "99999-01-01"}, {"from": "yesterday", "to": "today"}):
        response = await export(api, keys.owner, **params)
        assert response.status_code == 400, (params, response.text)
    response = await export(api, keys.owner, **{"from": "0001-01-01", "to": "9999-12-30"})
    assert response.status_code == 200 and rows(response) == [HEADER.split(",")]
