"""One-off charges over GraphQL (issue 21), on both databases: createInvoiceItem (pending, listed
in upcomingInvoice, billed by the renewal or a billed change), deleteInvoiceItem, and
createOneOffInvoice (CHARGE_NOW | SEND). Replays, key reuse, bad input writing nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from billing_graphql.db.models import Invoice, InvoiceItem, OutboxEvent, TestClock
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import subscribe
from tests.factories import count_rows, database_state, make_payment_method, make_plan, set_credit
from tests.helpers import gid, test_settings

T0 = datetime(2027, 1, 1, 0, tzinfo=UTC)
ERRORS = "errors { code message field }"
ITEM = "id description currency amount { amount } quantity total { amount } status organization { id } invoice { id }"
CREATE_ITEM = f"""mutation($i: CreateInvoiceItemInput!) {{ createInvoiceItem(input: $i) {{
  invoiceItem {{ {ITEM} }} {ERRORS} }} }}"""
DELETE_ITEM = f"""mutation($i: DeleteInvoiceItemInput!) {{ deleteInvoiceItem(input: $i) {{
  deletedInvoiceItemId {ERRORS} }} }}"""
NODE = f"query($id: ID!) {{ node(id: $id) {{ ... on InvoiceItem {{ {ITEM} }} }} }}"
LINES = "lines { kind description quantity unitAmount { amount } amount { amount } }"
TOTALS = "subtotal { amount } tax { amount } total { amount } creditApplied { amount } amountDue { amount }"
UPCOMING = f"query($org: ID) {{ subscription(organizationId: $org) {{ upcomingInvoice {{ {LINES} {TOTALS} }} }} }}"
INVOICE = f"id invoiceNumber status billingReason dueDate finalizedAt {LINES} {TOTALS} subscription {{ id }}"
ONE_OFF = f"""mutation($i: CreateOneOffInvoiceInput!) {{ createOneOffInvoice(input: $i) {{
  invoice {{ {INVOICE} }} payment {{ status amount {{ amount }} failureCode }} {ERRORS} }} }}"""
CHANGE_PLAN = f"""mutation($i: ChangePlanInput!) {{ changePlan(input: $i) {{ invoice {{ {INVOICE} }}
  creditAdded {{ amount }} {ERRORS} }} }}"""
ADVANCE = 'mutation($to: DateTime!) { advanceClock(input: {to: $to}) { errors { code } } }'
PAY = f"mutation($i: PayInvoiceInput!) {{ payInvoice(input: $i) {{ invoice {{ status }} {ERRORS} }} }}"


@pytest.fixture
def settings(database_url: str):
    return test_settings(database_url, test_clock=True)


@pytest.fixture
async def clock(db):
    async with db.write() as session:
        session.add(TestClock(id=1, now=T0))


async def subscribed(db, keys, settings, monthly: int = 500000):
    plan = await make_plan(db, monthly=monthly, trial_days=0, now=T0)
    await make_payment_method(db, keys.organization_id, token="pm_card_visa", now=T0)
    await subscribe(db, None, organization_id=keys.organization_id, choice=PlanChoice(plan.id, BillingPeriod.MONTHLY),
                    payment_method_id=None, idempotency_key=None, gateways=GatewayRegistry(settings), now=T0)
    return plan


def item(keys, description="Setup fee", amount="1000000", quantity=None, key=None) -> dict:
    values = {"organizationId": keys.organization_gid, "description": description, "amount": amount}
    if quantity is not None:
        values["quantity"] = quantity
    if key is not None:
        values["idempotencyKey"] = key
    return {"i": values}


def lines(invoice: dict) -> list[tuple]:
    return [(line["kind"], line["description"], line["quantity"], line["amount"]["amount"])
            for line in invoice["lines"]]


async def test_an_item_waits_in_upcoming_invoice_and_the_renewal_bills_it(api, db, keys, settings, clock):
    await subscribed(db, keys, settings)
    created = (await api.ok(CREATE_ITEM, item(keys, "Onboarding session", "250000", 2, key="item-1"),
                            token=keys.super_admin))["createInvoiceItem"]
    assert created["errors"] == []
    node = created["invoiceItem"]
    assert {key: node[key] for key in ("description", "currency", "amount", "quantity", "total", "status", "invoice")} == {
        "description": "Onboarding session", "currency": "IDR", "amount": {"amount": "250000"}, "quantity": 2,
        "total": {"amount": "500000"}, "status": "PENDING", "invoice": None}
    assert node["organization"] == {"id": keys.organization_gid}
    async with db.read() as session:
        event = (await session.scalars(select(OutboxEvent).where(OutboxEvent.event_type == "invoice_item.created"))).one()
    shown = event.payload["object"]
    assert shown["id"] == node["id"] and shown["status"] == "PENDING" and shown["invoice"] is None
    assert shown["total"]["amount"] == "500000" and shown["organization"] == {"id": keys.organization_gid}

    upcoming = (await api.ok(UPCOMING, token=keys.owner))["subscription"]["upcomingInvoice"]
    assert lines(upcoming) == [("PLAN", lines(upcoming)[0][1], "1", "500000"),
                               ("ONE_OFF", "Onboarding session", "2", "500000")]
    assert (upcoming["subtotal"], upcoming["tax"], upcoming["total"]) == (
        {"amount": "1000000"}, {"amount": "110000"}, {"amount": "1110000"})

    await api.ok(ADVANCE, {"to": "2027-02-01T00:00:00Z"}, token=keys.super_admin)
    invoices = await _invoices(db)
    renewal = invoices[-1]
    assert [(line.kind.value, line.amount) for line in renewal.lines] == [("PLAN", 500000), ("ONE_OFF", 500000)]
    assert (renewal.tax, renewal.total, renewal.amount_paid) == (110000, 1110000, 1110000)
    billed = (await api.ok(NODE, {"id": node["id"]}, token=keys.super_admin))["node"]
    assert billed["status"] == "INVOICED" and billed["invoice"] == {"id": gid("Invoice", renewal.id)}
    # Billed once: the next renewal's preview no longer has it.
    upcoming = (await api.ok(UPCOMING, token=keys.owner))["subscription"]["upcomingInvoice"]
    assert [line[0] for line in lines(upcoming)] == ["PLAN"]
    # Once invoiced it cannot be deleted.
    refused = (await api.ok(DELETE_ITEM, {"i": {"id": node["id"]}}, token=keys.super_admin))["deleteInvoiceItem"]
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("INVALID_TRANSITION", "id")]


async def _invoices(db) -> list[Invoice]:
    from sqlalchemy.orm import selectinload

    async with db.read() as session:
        return list((await session.scalars(select(Invoice).options(selectinload(Invoice.lines))
                                           .order_by(Invoice.created_at))).all())


async def test_a_billed_change_bills_the_pending_items_a_credit_leaves_them(api, db, keys, settings, clock):
    await subscribed(db, keys, settings, monthly=200000)
    bigger = await make_plan(db, monthly=400000, trial_days=0, now=T0)
    smaller = await make_plan(db, monthly=100000, trial_days=0, now=T0)
    await api.ok(CREATE_ITEM, item(keys, "Data migration", "300000"), token=keys.super_admin)
    # Jan 16 (half of January left, 31 days: 15.5/31 = 1/2): a downgrade credits; the item waits.
    await api.ok(ADVANCE, {"to": "2027-01-16T12:00:00Z"}, token=keys.super_admin)
    down = (await api.ok(CHANGE_PLAN, {"i": {"planId": gid("Plan", smaller.id)}}, token=keys.owner))["changePlan"]
    assert down["errors"] == [] and down["invoice"] is None and down["creditAdded"] == {"amount": "55500"}
    # An upgrade bills: its prorated lines and the item, taxed together, the credit spent first.
    up = (await api.ok(CHANGE_PLAN, {"i": {"planId": gid("Plan", bigger.id)}}, token=keys.owner))["changePlan"]
    assert up["errors"] == []
    invoice = up["invoice"]
    assert [line[0] for line in lines(invoice)] == ["PRORATION_CREDIT", "PRORATION_CHARGE", "ONE_OFF"]
    assert invoice["subtotal"] == {"amount": str(-50000 + 200000 + 300000)}
    assert invoice["tax"] == {"amount": "49500"} and invoice["creditApplied"] == {"amount": "55500"}
    async with db.read() as session:
        (row,) = (await session.scalars(select(InvoiceItem))).all()
    assert row.invoice_id is not None


async def test_item_replay_key_reuse_and_delete(api, db, keys, clock):
    first = (await api.ok(CREATE_ITEM, item(keys, key="k-1"), token=keys.super_admin))["createInvoiceItem"]
    again = (await api.ok(CREATE_ITEM, item(keys, key="k-1"), token=keys.super_admin))["createInvoiceItem"]
    assert again == first and await count_rows(db, InvoiceItem) == 1
    reused = (await api.ok(CREATE_ITEM, item(keys, amount="2", key="k-1"), token=keys.super_admin))["createInvoiceItem"]
    assert [(e["code"], e["field"]) for e in reused["errors"]] == [("IDEMPOTENCY_KEY_REUSED", "idempotencyKey")]
    assert await count_rows(db, InvoiceItem) == 1
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxEvent)
                                    .where(OutboxEvent.event_type == "invoice_item.created")) == 1

    item_id = first["invoiceItem"]["id"]
    deleted = (await api.ok(DELETE_ITEM, {"i": {"id": item_id, "idempotencyKey": "del-1"}}, token=keys.super_admin)
               )["deleteInvoiceItem"]
    assert deleted == {"deletedInvoiceItemId": item_id, "errors": []}
    replay = (await api.ok(DELETE_ITEM, {"i": {"id": item_id, "idempotencyKey": "del-1"}}, token=keys.super_admin)
              )["deleteInvoiceItem"]
    assert replay == deleted
    gone = (await api.ok(DELETE_ITEM, {"i": {"id": item_id, "idempotencyKey": "del-2"}}, token=keys.super_admin)
            )["deleteInvoiceItem"]
    assert [(e["code"], e["field"]) for e in gone["errors"]] == [("NOT_FOUND", "id")]
    assert (await api.ok(NODE, {"id": item_id}, token=keys.super_admin))["node"] is None
    for token in (keys.owner, keys.admin, keys.member):
        assert (await api.post(CREATE_ITEM, item(keys), token=token))["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(("values", "field"), [
    ({"amount": "0"}, "amount"),
    ({"amount": "-5000"}, "amount"),
    ({"amount": "1.5"}, "amount"),  # rupiah have no cents
    ({"quantity": 0}, "quantity"),
    ({"quantity": 10001}, "quantity"),
    ({"description": "  "}, "description"),
    ({"description": "x" * 501}, "description"),
])
async def test_bad_items_are_refused_with_nothing_written(api, db, keys, clock, values, field):
    before = await database_state(db, exclude=("api_keys",))
    variables = item(keys, key="bad")
    variables["i"].update(values)
    payload = (await api.ok(CREATE_ITEM, variables, token=keys.super_admin))["createInvoiceItem"]
    assert [(error["code"], error["field"]) for error in payload["errors"]] == [("VALIDATION", field)], payload
    assert await database_state(db, exclude=("api_keys",)) == before


# ---- one-off invoices -------------------------------------------------------------------------

def one_off(keys, items, collect=None, days=None, key=None) -> dict:
    values = {"organizationId": keys.organization_gid, "items": items}
    for name, value in (("collect", collect), ("daysUntilDue", days), ("idempotencyKey", key)):
        if value is not None:
            values[name] = value
    return {"i": values}


SETUP = [{"description": "Setup fee", "amount": "1000000"}, {"description": "Extra training", "amount": "150000",
                                                             "quantity": 2}]


async def test_sent_invoice_is_open_with_its_due_date_and_ppn(api, db, keys, clock):
    result = (await api.ok(ONE_OFF, one_off(keys, SETUP, "SEND", 14, key="oo-1"), token=keys.super_admin)
              )["createOneOffInvoice"]
    assert result["errors"] == [] and result["payment"] is None
    invoice = result["invoice"]
    assert (invoice["status"], invoice["billingReason"], invoice["subscription"]) == ("OPEN", "MANUAL", None)
    assert invoice["invoiceNumber"] == "INV-202701-000001"
    assert invoice["dueDate"] == "2027-01-15T00:00:00Z" and invoice["finalizedAt"] == "2027-01-01T00:00:00Z"
    assert lines(invoice) == [("ONE_OFF", "Setup fee", "1", "1000000"), ("ONE_OFF", "Extra training", "2", "300000")]
    assert (invoice["subtotal"], invoice["tax"], invoice["total"], invoice["amountDue"]) == (
        {"amount": "1300000"}, {"amount": "143000"}, {"amount": "1443000"}, {"amount": "1443000"})
    assert (await api.ok(ONE_OFF, one_off(keys, SETUP, "SEND", 14, key="oo-1"), token=keys.super_admin)
            )["createOneOffInvoice"] == result
    assert await count_rows(db, Invoice) == 1
    reused = (await api.ok(ONE_OFF, one_off(keys, SETUP, "SEND", 30, key="oo-1"), token=keys.super_admin)
              )["createOneOffInvoice"]
    assert [(e["code"], e["field"]) for e in reused["errors"]] == [("IDEMPOTENCY_KEY_REUSED", "idempotencyKey")]
    # The customer pays it (payInvoice), as any open invoice.
    await make_payment_method(db, keys.organization_id, token="pm_card_visa", now=T0)
    paid = (await api.ok(PAY, {"i": {"invoiceId": invoice["id"]}}, token=keys.owner))["payInvoice"]
    assert paid == {"invoice": {"status": "PAID"}, "errors": []}


async def test_charge_now_pays_with_the_default_card_and_spends_credit(api, db, keys, clock):
    await make_payment_method(db, keys.organization_id, token="pm_card_visa", now=T0)
    await set_credit(db, keys.organization_id, 43000)
    result = (await api.ok(ONE_OFF, one_off(keys, SETUP[:1]), token=keys.super_admin))["createOneOffInvoice"]
    assert result["errors"] == []
    assert result["invoice"]["status"] == "PAID" and result["invoice"]["dueDate"] == "2027-01-01T00:00:00Z"
    assert result["invoice"]["creditApplied"] == {"amount": "43000"}
    assert result["payment"] == {"status": "SUCCEEDED", "amount": {"amount": "1067000"}, "failureCode": None}
    ledger = (await api.ok("""query($org: ID!) { organization(id: $org) { creditBalance { amount }
      creditBalanceTransactions { edges { node { amount { amount } source invoiceId } } } } }""",
                           {"org": keys.organization_gid}, token=keys.super_admin))["organization"]
    assert ledger["creditBalance"] == {"amount": "0"}
    assert [edge["node"] for edge in ledger["creditBalanceTransactions"]["edges"]][0] == {
        "amount": {"amount": "-43000"}, "source": "INVOICE_APPLIED", "invoiceId": result["invoice"]["id"]}


async def test_charge_now_declined_leaves_it_open_and_without_a_card_writes_nothing(api, db, keys, clock):
    before = await database_state(db, exclude=("api_keys",))
    refused = (await api.ok(ONE_OFF, one_off(keys, SETUP, "CHARGE_NOW"), token=keys.super_admin))["createOneOffInvoice"]
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("PAYMENT_REQUIRED", "collect")]
    assert refused["invoice"] is None and await database_state(db, exclude=("api_keys",)) == before
    await make_payment_method(db, keys.organization_id, token="pm_card_declined", now=T0)
    declined = (await api.ok(ONE_OFF, one_off(keys, SETUP), token=keys.super_admin))["createOneOffInvoice"]
    assert [e["code"] for e in declined["errors"]] == ["PAYMENT_FAILED"]
    assert declined["invoice"]["status"] == "OPEN" and declined["payment"]["status"] == "FAILED"


@pytest.mark.parametrize(("items", "collect", "days", "field"), [
    ([], None, None, "items"),
    ([{"description": "x", "amount": "0"}], None, None, "items.0.amount"),
    ([SETUP[0], {"description": "y", "amount": "10", "quantity": 0}], None, None, "items.1.quantity"),
    ([{"description": " ", "amount": "10"}], None, None, "items.0.description"),
    (SETUP, "SEND", 0, "daysUntilDue"),
    (SETUP, "SEND", 366, "daysUntilDue"),
    (SETUP, "CHARGE_NOW", 7, "daysUntilDue"),
])
async def test_bad_one_off_invoices_are_refused_with_nothing_written(api, db, keys, clock, items, collect, days,
                                                                 field):
    await make_payment_method(db, keys.organization_id, token="pm_card_visa")
    before = await database_state(db, exclude=("api_keys",))
    payload = (await api.ok(ONE_OFF, one_off(keys, items, collect, days, key="bad"), token=keys.super_admin)
               )["createOneOffInvoice"]
    assert [(error["code"], error["field"]) for error in payload["errors"]] == [("VALIDATION", field)], payload
    assert await database_state(db, exclude=("api_keys",)) == before
