"""GET /payments/export.csv: range, quoting, amounts, scope and errors."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from billing_graphql.db.models import PaymentStatus
from tests.helpers import T0, gid
from tests.factories import Line, make_invoice, make_organization, make_payment, make_refund

HEADER = (
    "type,id,created_at,organization,organization_external_id,legal_name,npwp,invoice_number,status,amount,dpp,ppn,"
    "currency,gateway,gateway_reference,description"
)


async def export(api, token=None, **params):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await api.client.get("/payments/export.csv", params=params, headers=headers)


def rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.text, newline="")))


async def seed(db, keys):
    invoice = await make_invoice(db, keys.organization_id, number="INV-202601-000001", currency="USD",
                                 lines=[Line("Pro plan", 1_900)], tax_rate=None, tax=0)
    failed = await make_payment(db, invoice, 1_900, status=PaymentStatus.FAILED,
                                failure_message="Card declined, try another card", created_at=T0)
    paid = await make_payment(db, invoice, 1_900, created_at=T0 + timedelta(hours=1))
    refund = await make_refund(db, paid, 500, reason='Customer said "too expensive", refunded',
                               created_at=T0 + timedelta(days=1))
    # Outside the range on both sides, and another organization's payment inside it.
    await make_payment(db, invoice, 100, created_at=T0 - timedelta(days=20))
    await make_payment(db, invoice, 100, created_at=T0 + timedelta(days=20))
    theirs = await make_invoice(db, keys.other_organization_id, number="INV-202601-000002")
    other = await make_payment(db, theirs, created_at=T0 + timedelta(hours=2))
    return failed, paid, refund, other


async def test_owner_exports_payments_and_refunds_with_rfc4180_quoting(api, db, keys):
    failed, paid, refund, _ = await seed(db, keys)
    response = await export(api, keys.owner, **{"from": "2026-01-15", "to": "2026-01-16"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"  # one charset, not two
    assert response.headers["content-disposition"] == 'attachment; filename="payments-2026-01-15-to-2026-01-16.csv"'
    text = response.text
    assert text.split("\r\n")[0] == HEADER
    expected = (
        HEADER + "\r\n"
        f"payment,{failed.id},2026-01-15T09:00:00+00:00,Acme,acme,,,INV-202601-000001,FAILED,19.00,,,USD,sandbox,,"
        '"Card declined, try another card"\r\n'
        f"payment,{paid.id},2026-01-15T10:00:00+00:00,Acme,acme,,,INV-202601-000001,SUCCEEDED,19.00,,,USD,sandbox,"
        f"{paid.gateway_payment_id},Payment of invoice INV-202601-000001\r\n"
        f"refund,{refund.id},2026-01-16T09:00:00+00:00,Acme,acme,,,INV-202601-000001,SUCCEEDED,-5.00,,,USD,sandbox,"
        f'{refund.gateway_refund_id},"Customer said ""too expensive"", refunded"\r\n'
    )
    assert text == expected
    parsed = rows(response)
    assert parsed[3][-1] == 'Customer said "too expensive", refunded'
    assert [row[0] for row in parsed[1:]] == ["payment", "payment", "refund"]


async def test_super_admin_exports_one_or_all_organizations(api, db, keys):
    *_, other = await seed(db, keys)
    every = rows(await export(api, keys.super_admin, **{"from": "2026-01-15", "to": "2026-01-16"}))
    assert len(every) == 1 + 4 and str(other.id) in {row[1] for row in every}
    one = rows(await export(api, keys.super_admin, organizationId=gid("Organization", keys.other_organization_id),
                            **{"from": "2026-01-15", "to": "2026-01-16"}))
    assert [row[1] for row in one[1:]] == [str(other.id)]
    assert one[1][3:5] == ["Globex", "globex"]
    by_uuid = await export(api, keys.super_admin, organizationId=str(keys.other_organization_id),
                           **{"from": "2026-01-15", "to": "2026-01-16"})
    assert rows(by_uuid) == one
    missing = await export(api, keys.super_admin, organizationId=gid("Organization", keys.organization_id)[:-4],
                           **{"from": "2026-01-15", "to": "2026-01-16"})
    assert missing.status_code == 404


async def test_owner_cannot_export_another_organization(api, db, keys):
    await seed(db, keys)
    response = await export(api, keys.owner, organizationId=gid("Organization", keys.other_organization_id),
                            **{"from": "2026-01-15", "to": "2026-01-16"})
    assert response.status_code == 404
    own = await export(api, keys.admin, organizationId=gid("Organization", keys.organization_id),
                       **{"from": "2026-01-15", "to": "2026-01-16"})
    assert len(rows(own)) == 4


async def test_empty_range_is_just_the_header(api, keys):
    response = await export(api, keys.owner, **{"from": "2025-01-01", "to": "2025-01-01"})
    assert response.text == HEADER + "\r\n"


async def test_formula_like_text_is_defused(api, db, keys):
    organization = await make_organization(db, name="=cmd|' /C calc'!A0")
    invoice = await make_invoice(db, organization.id, number="INV-202601-000009")
    paid = await make_payment(db, invoice)
    await make_refund(db, paid, 1, reason="@SUM(1+1)")
    parsed = rows(await export(api, keys.super_admin, **{"from": "2026-01-15", "to": "2026-01-15"}))
    assert parsed[1][3] == "'=cmd|' /C calc'!A0"
    assert parsed[2][-1] == "'@SUM(1+1)"
    assert parsed[2][9] == "-1"  # IDR has no decimals; a negative amount is not text and stays as it is


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"to": "2026-01-31"}, "'from' is required"),
        ({"from": "2026-01-01"}, "'to' is required"),
        ({"from": "2026-13-01", "to": "2026-01-31"}, "'from' must be a date"),
        ({"from": "2026-02-30", "to": "2026-03-01"}, "'from' must be a date"),
        ({"from": "20260101", "to": "2026-01-31"}, "'from' must be a date"),
        ({"from": "2026-01-01", "to": "yesterday"}, "'to' must be a date"),
        ({"from": "2026-02-01", "to": "2026-01-31"}, "'from' (2026-02-01) is after 'to' (2026-01-31)"),
        ({"from": "2026-01-01", "to": "9999-12-31"}, "'to' must be before 9999-12-31"),
        ({"from": "9999-12-31", "to": "9999-12-31"}, "'to' must be before 9999-12-31"),
        ({"from": "0000-01-01", "to": "2026-01-31"}, "'from' must be a date"),
        ({"from": "2026-01-01\x00", "to": "2026-01-31"}, "'from' must be a date"),
        ({"from": "2026-01-01", "to": "\uff12\uff10\uff12\uff16-01-31"}, "'to' must be a date"),
    ],
)
async def test_bad_dates_are_400_with_a_message(api, keys, params, message):
    response = await export(api, keys.owner, **params)
    assert response.status_code == 400
    assert message in response.json()["detail"]


async def test_credentials_and_roles(api, keys):
    params = {"from": "2026-01-01", "to": "2026-01-31"}
    assert (await export(api, None, **params)).status_code == 401
    assert (await export(api, keys.member, **params)).status_code == 403
    assert (await export(api, keys.partner, **params)).status_code == 403


async def test_a_large_export_streams_every_row_in_order(api, db, keys):
    import uuid as uuid_module

    from billing_graphql.db.models import Payment

    invoice = await make_invoice(db, keys.organization_id, number="INV-202601-000003")
    async with db.write() as session:
        for n in range(450):
            session.add(Payment(
                id=uuid_module.uuid4(), organization_id=keys.organization_id, invoice_id=invoice.id,
                gateway="sandbox", gateway_payment_id=f"ch_{n}", idempotency_key=f"payment_bulk_{n}",
                amount=1000 + n, currency="IDR", status=PaymentStatus.SUCCEEDED,
                created_at=T0 + timedelta(seconds=n), updated_at=T0,
            ))
    response = await export(api, keys.owner, **{"from": "2026-01-15", "to": "2026-01-15"})
    parsed = rows(response)
    assert len(parsed) == 451
    assert [row[9] for row in parsed[1:]] == [str(1000 + n) for n in range(450)]


async def test_dpp_and_ppn_shares_legal_name_and_npwp_as_the_invoice_carries_them(api, db, keys):
    from billing_graphql.db.models import Invoice
    from billing_graphql.services.platform.billing_details import copy_billing_details, update_billing_details

    await update_billing_details(db, None, organization_id=keys.organization_id, legal_name="=PT Acme Indonesia",
                                 country="ID", tax_id="02.345.678.9-123.000", now=T0)
    # 1,200,000 - 120,000 = 1,080,000: DPP Nilai Lain 11/12 990,000, PPN 118,800, total 1,198,800
    invoice = await make_invoice(db, keys.organization_id, number="INV-202601-000010",
                                 lines=[Line("Growth plan, monthly", 1_200_000)], discount=120_000)
    async with db.write() as session:
        await copy_billing_details(session, await session.get(Invoice, invoice.id))
    paid = await make_payment(db, invoice, created_at=T0)
    await make_refund(db, paid, 599_400, reason="half back", created_at=T0 + timedelta(hours=1))
    parsed = rows(await export(api, keys.owner, **{"from": "2026-01-15", "to": "2026-01-15"}))
    header = parsed[0]
    column = {name: header.index(name) for name in ("legal_name", "npwp", "amount", "dpp", "ppn")}
    assert [[row[index] for index in column.values()] for row in parsed[1:]] == [
        ["'=PT Acme Indonesia", "02.345.678.9-123.000", "1198800", "990000", "118800"],
        ["'=PT Acme Indonesia", "02.345.678.9-123.000", "-599400", "-495000", "-59400"],
    ]


async def test_days_and_times_in_the_billing_time_zone_with_the_offset(db, keys, settings):
    from dataclasses import replace

    import httpx

    from billing_graphql.app import create_app

    invoice = await make_invoice(db, keys.organization_id, number="INV-202601-000011")
    # 14 Jan 18:00 UTC is 15 Jan 01:00 WIB; 15 Jan 18:00 UTC is 16 Jan 01:00 WIB
    early = await make_payment(db, invoice, 10, created_at=T0.replace(day=14, hour=18))
    await make_payment(db, invoice, 20, created_at=T0.replace(hour=18))
    app = create_app(replace(settings, billing_timezone="Asia/Jakarta"), db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        response = await client.get("/payments/export.csv", params={"from": "2026-01-15", "to": "2026-01-15"},
                                    headers={"authorization": f"Bearer {keys.owner}"})
        whole = await client.get("/payments/export.csv", params={"from": "0001-01-01", "to": "9999-12-30"},
                                 headers={"authorization": f"Bearer {keys.owner}"})
    parsed = rows(response)
    assert [(row[1], row[2]) for row in parsed[1:]] == [(str(early.id), "2026-01-15T01:00:00+07:00")]
    assert whole.status_code == 200 and len(rows(whole)) == 3  # the calendar's ends in a zone east of UTC
