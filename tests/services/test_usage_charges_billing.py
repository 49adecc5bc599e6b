"""Usage charges on the renewal invoice (issue 20): one USAGE line per charge, each rounded once,
tiers kept, PPN on top; five charges cost no more SQL statements than one.

Plan "Five" (IDR, Rp 100,000 a month, no trial), worked by hand for January's usage:
- messages GRADUATED, 1,000 included: 1..1,000 at Rp 100, above at Rp 50 + Rp 5,000 flat.
  3,500 used, 2,500 billable: 1,000 x 100 = 100,000; 1,500 x 50 + 5,000 = 80,000 -> 180,000
- api_calls PACKAGE of 1,000 at Rp 700: 2,500 used -> 3 packages -> 2,100
- contacts VOLUME: up to 100 at Rp 10, above at Rp 5: 150 -> every unit at 5 -> 750
- channels STANDARD Rp 20,000, 2 included: 5 -> 3 x 20,000 -> 60,000
- integrations STANDARD Rp 0.5: 3 -> 1.5 -> rounded once, half up: 2
Usage 242,852 + plan 100,000 = 342,852; PPN 12% of 11/12 = 37,713.72 -> 37,714; total 380,566.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from billing_graphql.domain.charges import ChargeModel, ChargeSpec, TierSpec
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.catalog.plans import PlanSpec, create_plan
from billing_graphql.services.platform.organizations import create_organization
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import subscribe
from tests.factories import make_payment_method, set_agents
from tests.helpers import T0, count_statements
from tests.services.billing_run_helpers import bill, invoices_of, lines_of, set_counter


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


MESSAGES = ChargeSpec("messages", ChargeModel.GRADUATED, 1000, tiers=(
    TierSpec(1000, Decimal(100)), TierSpec(None, Decimal(50), Decimal(5000))))
FIVE = (
    MESSAGES,
    ChargeSpec("api_calls", ChargeModel.PACKAGE, 0, Decimal(700), 1000),
    ChargeSpec("contacts", ChargeModel.VOLUME, 0, tiers=(TierSpec(100, Decimal(10)), TierSpec(None, Decimal(5)))),
    ChargeSpec("channels", ChargeModel.STANDARD, 2, Decimal(20000)),
    ChargeSpec("integrations", ChargeModel.STANDARD, 0, Decimal("0.5")),
)


async def _tenant(db, settings, slug: str, charges, at: datetime):
    """An organization on its own plan with ``charges``, subscribed at ``at``, with January's usage."""
    plan = await create_plan(db, None, PlanSpec(name=slug.title(), slug=slug, base_price_monthly=Decimal(100000),
                                                trial_days=0, charges=charges), now=T0)
    org = await create_organization(db, None, name=slug, external_id=f"{slug}-{uuid.uuid4().hex[:6]}", now=T0)
    await make_payment_method(db, org.id)
    await set_agents(db, org.id, 1)
    await subscribe(db, None, organization_id=org.id, choice=PlanChoice(plan.id, BillingPeriod.MONTHLY, None),
                    payment_method_id=None, idempotency_key=None, gateways=GatewayRegistry(settings), now=at)
    for code, month, value in (("messages", "2026-01", 3500), ("api_calls", "2026-01", 2500),
                               ("contacts", "current", 150), ("channels", "current", 5),
                               ("integrations", "current", 3)):
        await set_counter(db, org.id, code, month, value, at)
    return org


async def _renewal(db, org_id):
    from sqlalchemy import select

    from billing_graphql.db.models import Subscription

    async with db.read() as session:
        subscription_id = await session.scalar(select(Subscription.id).where(Subscription.organization_id == org_id))
    return (await invoices_of(db, subscription_id))[-1]


async def test_five_charges_bill_five_usage_lines_with_no_more_statements_than_one(db, settings):
    warm = await _tenant(db, settings, "warm", (), utc(2026, 1, 9, 12))
    one = await _tenant(db, settings, "one", (MESSAGES,), utc(2026, 1, 10, 12))
    five = await _tenant(db, settings, "five", FIVE, utc(2026, 1, 11, 12))
    await bill(db, settings, utc(2026, 2, 9, 12))  # February's first invoice number: the same work after it
    with count_statements(db) as with_one:
        await bill(db, settings, utc(2026, 2, 10, 12))
    with count_statements(db) as with_five:
        await bill(db, settings, utc(2026, 2, 11, 12))
    assert with_five.count <= with_one.count, (with_one.count, with_five.count)

    assert len((await _renewal(db, warm.id)).lines) == 1  # the plan: no charge, no usage line
    renewal = await _renewal(db, one.id)
    assert lines_of(renewal)[1:] == [
        ("USAGE", "Messages (graduated tiers) above the 1,000 included per month", 2500, 72, 180000)]
    renewal = await _renewal(db, five.id)
    assert lines_of(renewal) == [
        ("PLAN", "Five plan (monthly)", 1, 100000, 100000),
        ("USAGE", "Messages (graduated tiers) above the 1,000 included per month", 2500, 72, 180000),
        ("USAGE", "API calls in packages of 1,000", 2500, 0, 2100),
        ("USAGE", "Contacts (volume tiers)", 150, 5, 750),
        ("USAGE", "Channels above the 2 included per month", 3, 20000, 60000),
        ("USAGE", "Integrations", 3, 0, 2),
    ]
    assert (renewal.subtotal, renewal.tax, renewal.total, renewal.amount_paid) == (342852, 37714, 380566, 380566)
    messages = renewal.lines[1]
    assert messages.tier_breakdown == [
        {"from_unit": 1, "to_unit": 1000, "units": 1000, "unit_amount": "100", "flat_amount": "0",
         "amount": "100000"},
        {"from_unit": 1001, "to_unit": None, "units": 1500, "unit_amount": "50", "flat_amount": "5000",
         "amount": "80000"}]
    assert renewal.lines[3].tier_breakdown == [
        {"from_unit": 101, "to_unit": None, "units": 150, "unit_amount": "5", "flat_amount": "0", "amount": "750"}]
    assert renewal.lines[2].tier_breakdown is None
