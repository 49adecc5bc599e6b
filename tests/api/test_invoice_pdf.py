"""GET /invoices/{id}.pdf: authorization, headers, and the text of the rendered PDF."""

from __future__ import annotations

import io
import uuid
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from pypdf import PdfReader

from billing_graphql.app import create_app
from billing_graphql.db.models import Invoice, InvoiceLineKind
from billing_graphql.domain.roles import Role
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.services.platform.auth import issue_session_token
from billing_graphql.services.billing.invoice_documents import invoice_pdf_path
from tests.helpers import T0
from tests.factories import Line, make_invoice, make_payment, make_refund


def pdf_text(content: bytes) -> str:
    """The PDF's text with whitespace collapsed (table cells come out one per line)."""
    reader = PdfReader(io.BytesIO(content))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


async def get_pdf(api, invoice_id, token=None, path=None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await api.client.get(path or invoice_pdf_path(invoice_id), headers=headers)


async def test_pdf_shows_number_parties_lines_discount_tax_and_total(api, db, keys):
    invoice = await make_invoice(
        db,
        keys.organization_id,
        number="INV-202601-000042",
        lines=[
            Line("Growth plan, monthly", 1_000_000),
            Line("Extra agents <seats> & more", 200_000, quantity=Decimal(2), kind=InvoiceLineKind.SEATS),
        ],
        discount=120_000,
    )
    payment = await make_payment(db, invoice)
    await make_refund(db, payment, 100_000, reason="goodwill")
    response = await get_pdf(api, invoice.id, keys.owner)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["cache-control"] == "private, max-age=3600"
    assert response.content.startswith(b"%PDF-")
    text = pdf_text(response.content)
    # 1,200,000 - 120,000 = 1,080,000; PPN 12% of 11/12 of it (990,000) = 118,800.
    assert invoice.tax == 118_800 and invoice.total == 1_198_800
    for expected in (
        "Invoice INV-202601-000042",
        "Billing Gateway",  # the seller (default setting)
        "Acme",  # the buyer
        "Growth plan, monthly",
        "Extra agents <seats> & more",
        "Subtotal Rp 1,200,000",
        "Discount -Rp 120,000",
        "Price after discount Rp 1,080,000",
        "Tax base (DPP Nilai Lain 11/12) Rp 990,000",  # the base PPN 12% applies to: 11/12 of the price
        "PPN 12% Rp 118,800",
        "Total Rp 1,198,800",
        "Amount refunded Rp 100,000",
        "Status: Partially refunded",
        "Issued 15 January 2026",
        "Due 22 January 2026",
    ):
        assert expected in text, (expected, text)


async def test_indonesian_pdf_names_dpp_nilai_lain_and_both_npwp_in_rupiah_formatted_for_id(db, keys, settings):
    from billing_graphql.services.platform.billing_details import update_billing_details

    await update_billing_details(db, None, organization_id=keys.organization_id, legal_name="PT Acme Indonesia",
                                 address="Jl. Gajah Mada 10\nJakarta 10130", country="ID",
                                 tax_id="02.345.678.9-123.000", language="id", now=T0 - timedelta(days=1))
    invoice = await make_invoice(
        db, keys.organization_id, number="INV-202601-000043",
        lines=[Line("Growth plan, monthly", 1_500_000), Line("WhatsApp number", 163_890)], status=InvoiceStatus.OPEN,
    )
    async with db.write() as session:  # the buyer's details copied as at finalization
        from billing_graphql.services.platform.billing_details import copy_billing_details

        await copy_billing_details(session, await session.get(Invoice, invoice.id))
    seller = replace(settings, seller_name="PT Contoh Teknologi", seller_address="Jl. Sudirman 52\nJakarta 12190",
                     seller_tax_id="01.234.567.8-012.000")
    app = create_app(seller, db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        response = await client.get(invoice_pdf_path(invoice.id), headers={"authorization": f"Bearer {keys.owner}"})
    assert response.status_code == 200
    text = pdf_text(response.content)
    # 1,663,890: DPP Nilai Lain 11/12 = 1,525,232.5 -> 1,525,233; PPN 12% of the exact DPP = 183,027.9 -> 183,028
    assert invoice.tax == 183_028 and invoice.total == 1_846_918
    for expected in (
        "Faktur INV-202601-000043",
        "Penjual", "PT Contoh Teknologi", "NPWP: 01.234.567.8-012.000",
        "Pembeli", "PT Acme Indonesia", "Jl. Gajah Mada 10", "NPWP: 02.345.678.9-123.000",
        "Uraian", "Harga satuan",
        "Subtotal Rp 1.663.890",
        "DPP Nilai Lain 11/12 Rp 1.525.233",
        "PPN 12% Rp 183.028",
        "Total Rp 1.846.918",
        "Sisa tagihan",
        "Tanggal terbit 15 Januari 2026",
        "Jatuh tempo 22 Januari 2026",
        "Status: Belum dibayar",
        "Jumlah dalam IDR.",
    ):
        assert expected in text, (expected, text)
    for english in ("Invoice", "Subtotal Rp 1,663,890", "Tax base", "Amount due", "January"):
        assert english not in text, (english, text)


async def test_dates_are_days_in_the_billing_time_zone(db, keys, settings):
    late = T0.replace(hour=20)  # 15 January 20:00 UTC is 16 January 03:00 in Jakarta
    invoice = await make_invoice(db, keys.organization_id, number="INV-202601-000044", created_at=late)
    for zone, day in (("UTC", "Issued 15 January 2026"), ("Asia/Jakarta", "Issued 16 January 2026")):
        app = create_app(replace(settings, billing_timezone=zone), db=db, freeze_gc=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            response = await client.get(invoice_pdf_path(invoice.id),
                                        headers={"authorization": f"Bearer {keys.owner}"})
        assert day in pdf_text(response.content), zone


async def test_seller_from_settings_and_currency_symbols_outside_the_font(db, keys, settings):
    seller = replace(settings, seller_name="PT Contoh Indonesia", seller_address="Jl. Sudirman 1\nJakarta 10220")
    invoice = await make_invoice(db, keys.organization_id, currency="INR", lines=[Line("Pro plan", 499_900)],
                                 tax_rate=None, tax=0)
    app = create_app(seller, db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        response = await client.get(invoice_pdf_path(invoice.id), headers={"authorization": f"Bearer {keys.admin}"})
    text = pdf_text(response.content)
    assert "PT Contoh Indonesia" in text and "Jakarta 10220" in text
    assert "INR 4,999.00" in text  # the rupee sign is not in the PDF's standard fonts


async def test_super_admin_reads_any_invoice_and_session_tokens_work(api, db, keys, settings):
    invoice = await make_invoice(db, keys.other_organization_id, number="INV-202601-000007")
    assert (await get_pdf(api, invoice.id, keys.super_admin)).status_code == 200
    token = issue_session_token(settings.jwt_secret, subject="u1", organization_external_id="globex",
                                role=Role.ADMIN, expires_at=T0 + timedelta(days=3650))
    response = await get_pdf(api, invoice.id, token)
    assert response.status_code == 200
    assert "INV-202601-000007" in pdf_text(response.content)


async def test_another_organizations_invoice_is_404_like_a_missing_one(api, db, keys):
    theirs = await make_invoice(db, keys.other_organization_id)
    other = await get_pdf(api, theirs.id, keys.owner)
    missing = await get_pdf(api, uuid.uuid4(), keys.owner)
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()
    for path in ("/invoices/not-a-uuid.pdf", f"/invoices/{theirs.id}.txt", f"/invoices/{theirs.id}"):
        assert (await get_pdf(api, None, keys.owner, path=path)).status_code == 404


@pytest.mark.parametrize(
    ("who", "status"), [(None, 401), ("bgk_unknown", 401), ("member", 403), ("partner", 403)]
)
async def test_credentials_and_roles(api, db, keys, who, status):
    invoice = await make_invoice(db, keys.organization_id)
    token = getattr(keys, who) if who in ("member", "partner") else who
    response = await get_pdf(api, invoice.id, token)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_draft_invoice_renders_as_draft(api, db, keys):
    invoice = await make_invoice(db, keys.organization_id, status=InvoiceStatus.DRAFT)
    response = await get_pdf(api, invoice.id, keys.owner)
    assert response.status_code == 200
    assert "Invoice DRAFT" in pdf_text(response.content)
