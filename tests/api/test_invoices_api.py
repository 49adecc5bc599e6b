"""Invoices over the API, and the SQL statement counts of the client queries."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from billing_graphql.db.models import (
    BillingReason,
    Invoice,
    InvoiceLine,
    InvoiceLineKind,
    Payment,
    PaymentStatus,
    Refund,
)
from billing_graphql.domain.status import InvoiceStatus
from tests.factories import make_addon, make_coupon, make_payment_method, make_plan
from tests.helpers import T0, count_statements, gid

QUERIES = Path(__file__).resolve().parents[2] / "queries"
SUBSCRIBE = "mutation($i: SubscribeInput!) { subscribe(input: $i) { subscription { id } invoice { id } errors { code } } }"


async def seed_invoices(db, organization_id, count: int, *, lines: int = 5, start=T0) -> list[uuid.UUID]:
    ids = []
    async with db.write() as session:
        for n in range(count):
            created = start + timedelta(minutes=n)
            invoice = Invoice(
                id=uuid.uuid4(), organization_id=organization_id, status=InvoiceStatus.PAID,
                billing_reason=BillingReason.MANUAL, currency="IDR", number=f"INV-{organization_id.hex[:4]}-{n:06d}",
                subtotal=1000 * lines, discount=0, tax=0, total=1000 * lines, credit_applied=0,
                amount_paid=1000 * lines, amount_refunded=0, retry_count=0, created_at=created, updated_at=created,
                finalized_at=created, paid_at=created, due_date=created,
            )
            invoice.lines = [
                InvoiceLine(position=i, kind=InvoiceLineKind.PLAN, description=f"line {i}", quantity=Decimal(1),
                            unit_amount=Decimal(1000), amount=1000)
                for i in range(lines)
            ]
            session.add(invoice)
            ids.append(invoice.id)
        await session.flush()
        for invoice_id in ids:
            payment_id = uuid.uuid4()
            session.add(Payment(id=payment_id, organization_id=organization_id, invoice_id=invoice_id,
                                gateway="sandbox", idempotency_key=f"pay_{payment_id.hex}", amount=1000 * lines,
                                amount_refunded=0, currency="IDR", status=PaymentStatus.SUCCEEDED,
                                created_at=start, updated_at=start))
    return ids


async def test_invoices_newest_first_scoped_and_paged(api, keys, db, settings):
    mine = await seed_invoices(db, keys.organization_id, 12, lines=2)
    await seed_invoices(db, keys.other_organization_id, 3, lines=1)
    query = (QUERIES / "spa" / "Invoices.graphql").read_text()
    first = await api.ok(query, token=keys.owner)
    edges = first["invoices"]["edges"]
    assert len(edges) == 10 and first["invoices"]["pageInfo"]["hasNextPage"]  # first defaults to 10
    assert edges[0]["node"]["id"] == gid("Invoice", mine[-1])
    node = edges[0]["node"]
    assert node["pdfUrl"] == f"{settings.public_url}/invoices/{mine[-1]}.pdf"
    assert [line["amount"]["amount"] for line in node["lines"]] == ["1000", "1000"]
    assert node["payments"][0]["status"] == "SUCCEEDED"
    rest = await api.ok(query, {"after": first["invoices"]["pageInfo"]["endCursor"]}, token=keys.owner)
    assert len(rest["invoices"]["edges"]) == 2 and not rest["invoices"]["pageInfo"]["hasNextPage"]
    assert (await api.ok(query, {"status": "OPEN"}, token=keys.admin))["invoices"]["edges"] == []
    other = await api.ok("query($o: ID) { invoices(organizationId: $o) { edges { node { id } } } }",
                         {"o": gid("Organization", keys.other_organization_id)}, token=keys.owner)
    assert other["invoices"]["edges"] == []
    everything = await api.ok("{ invoices(first: 100) { edges { node { id organization { externalId } } } } }",
                              token=keys.super_admin)
    assert len(everything["invoices"]["edges"]) == 15
    theirs = await api.ok("query($o: ID) { invoices(organizationId: $o) { edges { node { id } } } }",
                          {"o": gid("Organization", keys.other_organization_id)}, token=keys.super_admin)
    assert len(theirs["invoices"]["edges"]) == 3
    too_many = await api.post("{ invoices(first: 101) { edges { node { id } } } }", token=keys.owner)
    assert too_many["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_invoice_by_id_and_node_respect_the_organization(api, keys, db):
    [mine] = await seed_invoices(db, keys.organization_id, 1)
    [theirs] = await seed_invoices(db, keys.other_organization_id, 1)
    query = "query($id: ID!) { invoice(id: $id) { id invoiceNumber total { amount } } }"
    assert (await api.ok(query, {"id": gid("Invoice", mine)}, token=keys.owner))["invoice"]["total"] == {"amount": "5000"}
    assert (await api.ok(query, {"id": gid("Invoice", theirs)}, token=keys.owner))["invoice"] is None
    assert (await api.ok(query, {"id": gid("Plan", mine)}, token=keys.owner))["invoice"] is None
    assert (await api.ok(query, {"id": gid("Invoice", theirs)}, token=keys.super_admin))["invoice"] is not None
    node = "query($id: ID!) { node(id: $id) { ... on Invoice { invoiceNumber } } }"
    assert (await api.ok(node, {"id": gid("Invoice", theirs)}, token=keys.owner))["node"] is None
    assert (await api.ok(node, {"id": gid("Invoice", mine)}, token=keys.member))["node"] is None  # members: no invoices
    assert (await api.ok(node, {"id": gid("Invoice", mine)}, token=keys.admin))["node"] is not None


async def test_invoice_links_to_its_subscription(api, keys, db):
    plan = await make_plan(db)
    await make_payment_method(db, keys.organization_id)
    created = (await api.ok(SUBSCRIBE, {"i": {"planId": gid("Plan", plan.id)}}, token=keys.owner))["subscribe"]
    data = await api.ok("query($id: ID!) { invoice(id: $id) { subscription { id status } organization { name } "
                        "taxBase amountDue { amount } billingReason } }", {"id": created["invoice"]["id"]},
                        token=keys.owner)
    assert data["invoice"] == {"subscription": {"id": created["subscription"]["id"], "status": "ACTIVE"},
                               "organization": {"name": "Acme"}, "taxBase": "11/12", "amountDue": {"amount": "0"},
                               "billingReason": "SUBSCRIPTION_CREATE"}


# ---- statement counts -----------------------------------------------------------------------

def _refund_key(global_id: str) -> tuple[str, str]:
    from strawberry import relay

    return relay.from_base64(global_id)


async def seed_refunds(db, invoice_ids) -> None:
    """One SUCCEEDED refund of 100 on each invoice's payment."""
    from sqlalchemy import select

    async with db.write() as session:
        payments = (await session.scalars(select(Payment).where(Payment.invoice_id.in_(invoice_ids)))).all()
        for payment in payments:
            refund_id = uuid.uuid4()
            session.add(Refund(id=refund_id, organization_id=payment.organization_id, invoice_id=payment.invoice_id,
                               payment_id=payment.id, gateway="sandbox", idempotency_key=f"refund_{refund_id}",
                               amount=100, currency="IDR", status=PaymentStatus.SUCCEEDED, reason="goodwill",
                               created_at=T0, updated_at=T0))
            payment.amount_refunded = 100


@pytest.mark.parametrize(("settings", "statements"), [
    # the API key, the page of invoices, their lines, their payments, their refunds
    ({"compiled_documents": False}, 5),
    # the API key, one statement building the page's JSON (graphql.compiled.sql)
    ({"compiled_documents": True}, 2),
], indirect=["settings"], ids=["generic", "compiled"])
async def test_invoices_page_runs_in_a_constant_number_of_statements(api, keys, db, statements):
    ids = await seed_invoices(db, keys.organization_id, 100, lines=5)
    await seed_refunds(db, ids)
    query = (QUERIES / "spa" / "Invoices.graphql").read_text()
    await api.ok("{ clock { now } }", token=keys.owner)  # the key's last-used stamp is written once a while
    with count_statements(db) as hundred:
        data = await api.ok(query, {"first": 100}, token=keys.owner)
    assert len(data["invoices"]["edges"]) == 100
    assert all(len(edge["node"]["lines"]) == 5 and len(edge["node"]["payments"]) == 1
               for edge in data["invoices"]["edges"])
    refunds = [edge["node"]["refunds"] for edge in data["invoices"]["edges"]]
    assert all(len(rows) == 1 and _refund_key(rows[0].pop("id"))[0] == "Refund" for rows in refunds)
    assert all(rows == [{"amount": {"amount": "100", "formatted": "Rp 100"}, "status": "SUCCEEDED",
                         "reason": "goodwill", "createdAt": "2026-01-15T09:00:00Z"}] for rows in refunds)
    with count_statements(db) as ten:
        await api.ok(query, {"first": 10}, token=keys.owner)
    assert len(hundred.statements) == len(ten.statements) == statements, hundred.statements


async def test_subscription_page_statement_count(api, keys, db):
    plan = await make_plan(db, monthly=299000, trial_days=14, limits={"agents": 5, "messages": 10000})
    growth = await make_plan(db, monthly=599000)
    addons = [await make_addon(db, name=f"A{i}", per_agent=i % 2 == 0) for i in range(3)]
    await make_coupon(db, code="TEN", percent_off=10)
    await api.ok(SUBSCRIBE, {"i": {"planId": gid("Plan", plan.id), "couponCode": "TEN"}}, token=keys.owner)
    for addon in addons:
        await api.ok("mutation($i: AttachAddonInput!) { attachAddon(input: $i) { errors { code } } }",
                     {"i": {"addonId": gid("Addon", addon.id), "quantity": 2}}, token=keys.owner)
    await api.ok("mutation($i: ChangePlanInput!) { changePlan(input: $i) { errors { code } } }",
                 {"i": {"planId": gid("Plan", growth.id), "effective": "PERIOD_END", "spendingCap": "100000"}},
                 token=keys.owner)
    query = (QUERIES / "spa" / "SubscriptionPage.graphql").read_text()
    await api.ok("{ clock { now } }", token=keys.member)
    with count_statements(db) as counter:
        data = await api.ok(query, token=keys.member)
    sub = data["subscription"]
    assert len(sub["addons"]) == 3 and sub["coupon"]["code"] == "TEN" and sub["pendingChange"]["plan"]["id"]
    assert {limit["metric"]["code"]: limit["limit"] for limit in sub["plan"]["limits"]} == {"agents": 5, "messages": 10000}
    assert sub["spendingCap"]["currentCap"]["amount"] == "100000"
    # the API key, and the SQL tier's one statement (the generic path: the subscription, plans (current and
    # pending in one batch), limits, features, add-ons, coupon, agents gauge)
    assert len(counter.statements) == 2, counter.statements


async def test_admin_subscriptions_statement_count_is_constant(api, keys, db):
    from billing_graphql.services.platform.organizations import create_organization

    plan = await make_plan(db, trial_days=14)
    other_plan = await make_plan(db, trial_days=14)
    await make_coupon(db, code="TEN", percent_off=10)
    for n in range(12):
        org = await create_organization(db, None, name=f"Org {n}", external_id=f"org-{n}", now=T0)
        org_gid = gid("Organization", org.id)
        await api.ok(SUBSCRIBE, {"i": {"planId": gid("Plan", plan.id), "organizationId": org_gid,
                                       "couponCode": "TEN" if n % 2 else None}}, token=keys.super_admin)
        if n % 3 == 0:
            await api.ok("mutation($i: ChangePlanInput!) { changePlan(input: $i) { errors { code } } }",
                         {"i": {"planId": gid("Plan", other_plan.id), "effective": "PERIOD_END",
                                "organizationId": org_gid}}, token=keys.super_admin)
    query = (QUERIES / "admin" / "Subscriptions.graphql").read_text()
    await api.ok("{ clock { now } }", token=keys.super_admin)
    with count_statements(db) as many:
        data = await api.ok(query, {"first": 12}, token=keys.super_admin)
    nodes = [edge["node"] for edge in data["subscriptions"]["edges"]]
    assert len(nodes) == 12 and sum(bool(node["coupon"]) for node in nodes) == 6
    assert sum(bool(node["pendingChange"]) for node in nodes) == 4
    with count_statements(db) as few:
        await api.ok(query, {"first": 2}, token=keys.super_admin)
    # the API key and the page: one statement writes every subscription with its organization, plans and coupon
    assert len(many.statements) == len(few.statements) == 2, many.statements
