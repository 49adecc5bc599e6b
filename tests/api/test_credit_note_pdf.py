"""GET /credit-notes/{id}.pdf: the invoice PDF's access rules and headers, and what the document says."""

from __future__ import annotations

import uuid

from strawberry import relay

from billing_graphql.db.models import InvoiceParties
from billing_graphql.services.billing.credit_notes import credit_note_pdf_path
from tests.api.test_credit_notes_api import CREATE
from tests.api.test_invoice_pdf import pdf_text
from tests.factories import Line, make_invoice, make_payment
from tests.helpers import gid


async def _credit_note(api, db, keys, organization_id=None):
    invoice = await make_invoice(db, organization_id or keys.organization_id, number="INV-202601-000007",
                                 lines=[Line("Growth plan, monthly", 100_000)])
    await make_payment(db, invoice)
    async with db.write() as session:
        session.add(InvoiceParties(invoice_id=invoice.id, buyer_legal_name="PT Acme Indonesia",
                                   buyer_address="Jl. Sudirman 1, Jakarta", buyer_country="ID",
                                   buyer_tax_id="01.234.567.8-901.000"))
    result = (await api.ok(CREATE, {"input": {"invoiceId": gid("Invoice", invoice.id), "amount": "55500",
                                              "reason": "PRODUCT_UNSATISFACTORY", "memo": "Outage in week 2",
                                              "outcome": "CREDIT_BALANCE"}},
                           token=keys.super_admin))["createCreditNote"]
    assert result["errors"] == []
    note = result["creditNote"]
    return note, uuid.UUID(relay.from_base64(note["id"])[1])


async def _get(api, path, token=None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await api.client.get(path, headers=headers)


async def test_credit_note_pdf_shows_parties_invoice_lines_and_reversed_ppn(api, db, keys):
    note, note_id = await _credit_note(api, db, keys)
    response = await _get(api, credit_note_pdf_path(note_id), keys.owner)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["cache-control"] == "private, max-age=3600"
    assert response.headers["content-disposition"] == f'inline; filename="{note["number"]}.pdf"'
    text = pdf_text(response.content)
    for expected in (
        f"Credit note {note['number']}",
        "Billing Gateway",  # the seller
        "PT Acme Indonesia", "NPWP: 01.234.567.8-901.000",  # the buyer as the invoice has it
        "Corrects invoice INV-202601-000007",
        "Credit on invoice INV-202601-000007",
        # 55,500 credited: 50,000 net, PPN 12% on 11/12 of it (45,833) = 5,500 reversed
        "Net amount credited Rp 50,000 Tax base (DPP Nilai Lain 11/12) Rp 45,833 PPN 12% reversed Rp 5,500",
        "Total credited Rp 55,500",
        "Added to the account balance",
        "Memo: Outage in week 2",
    ):
        assert expected in text, (expected, text)
    # The URL the API gives.
    data = await api.ok("query($id: ID!) { node(id: $id) { ... on CreditNote { pdfUrl } } }", {"id": note["id"]},
                        token=keys.owner)
    assert data["node"]["pdfUrl"].endswith(credit_note_pdf_path(note_id))


async def test_credit_note_pdf_access_like_invoices(api, db, keys):
    note, note_id = await _credit_note(api, db, keys)
    path = credit_note_pdf_path(note_id)
    assert (await _get(api, path)).status_code == 401
    assert (await _get(api, path, keys.member)).status_code == 403
    assert (await _get(api, path, keys.admin)).status_code == 200
    assert (await _get(api, path, keys.super_admin)).status_code == 200
    # Another organization's note is a 404, as a missing one; so is a malformed name.
    assert (await _get(api, path, keys.other_owner)).status_code == 404
    assert (await _get(api, credit_note_pdf_path(uuid.uuid4()), keys.owner)).status_code == 404
    assert (await _get(api, "/credit-notes/not-a-uuid.pdf", keys.owner)).status_code == 404
    assert (await _get(api, f"/credit-notes/{note_id}.txt", keys.owner)).status_code == 404
