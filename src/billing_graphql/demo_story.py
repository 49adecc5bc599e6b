"""The demo's story: four Indonesian customers of an IDR catalog, three months of it, played
through the services a customer (and the billing run) uses, each step at its own instant.

- ``demo`` (PT Demo Niaga Nusantara, documents in Indonesian): Starter from three months and
  twelve days ago, renewed twice, upgraded to Growth with a WhatsApp number half-way through the
  third month, renewed on Growth, its team grown since: usage near every Growth limit now.
- ``demo-trial`` (CV Kopi Senja Nusantara): Growth with the LAUNCH50K coupon, five days into its
  14-day trial.
- ``demo-past-due`` (PT Batik Lestari Abadi): Starter for two months; a new debit card without
  funds made its last renewal fail: PAST_DUE, retried once, an OPEN invoice to pay.
- ``demo-canceled`` (PT Klinik Sehat Sentosa, documents in English): a Growth trial, converted,
  renewed once, canceled at the end of its second paid month (about three weeks ago).

Each organization's billing details are filled in (legal name, address, NPWP, language). The
usage of each period is recorded before the period is billed, so renewals bill what happened;
none of the earlier periods goes over a limit. A story is played once per organization (an
organization with a subscription is left as it is).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Addon, Organization, PaymentMethodType, Plan, Subscription
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.periods import BillingPeriod, add_months
from billing_graphql.domain.roles import Role
from billing_graphql.domain.usage import EventInput
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.jobs.billing_run import run_config, run_subscription
from billing_graphql.services.payments.payment_methods import NewPaymentMethod, add_payment_method
from billing_graphql.services.platform.billing_details import update_billing_details
from billing_graphql.services.platform.organizations import create_organization
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import cancel, subscribe
from billing_graphql.services.subscriptions.plan_changes import attach_addon, change_plan
from billing_graphql.services.usage.ingest import record_usage
from billing_graphql.settings import Settings

DEMO_ORGANIZATION_EXTERNAL_ID = "demo"


@dataclass(frozen=True, slots=True)
class Customer:
    external_id: str
    name: str
    legal_name: str
    address: str
    tax_id: str
    language: str


CUSTOMERS = {
    "demo": Customer(DEMO_ORGANIZATION_EXTERNAL_ID, "Demo Company", "PT Demo Niaga Nusantara",
                     "Jl. Gajah Mada No. 10\nJakarta Pusat 10130", "02.345.678.9-123.000", "id"),
    "trial": Customer("demo-trial", "Kopi Senja", "CV Kopi Senja Nusantara", "Jl. Braga No. 21\nBandung 40111",
                      "3273012345670001", "id"),
    "past_due": Customer("demo-past-due", "Batik Lestari", "PT Batik Lestari Abadi",
                         "Jl. Malioboro No. 56\nYogyakarta 55213", "03.456.789.0-541.000", "id"),
    "canceled": Customer("demo-canceled", "Klinik Sehat", "PT Klinik Sehat Sentosa",
                         "Jl. Pemuda No. 118\nSurabaya 60271", "04.567.890.1-604.000", "en"),
}

# The current counts (GAUGEs) of the demo organization now, against Growth's limits
# (agents 10, contacts 10,000, channels 5, AI agents 2, integrations 10), and this period's
# messages (Growth: 100,000): near every limit, none over.
DEMO_GAUGES = {"agents": 9, "contacts": 9_150, "channels": 4, "ai_agents": 2, "integrations": 8}
DEMO_MESSAGES_SO_FAR = 86_400
DEMO_HISTORY_MONTHS = 3
DEMO_HISTORY_DAYS = 12  # the demo organization started 3 months and 12 days ago


async def organization_id_of(db: Database, external_id: str) -> uuid.UUID | None:
    async with db.read() as session:
        return await session.scalar(select(Organization.id).where(Organization.external_id == external_id))


async def ensure_customer(db: Database, customer: Customer, now: datetime) -> uuid.UUID:
    """The customer's organization (created IDR, with its billing details, when missing)."""
    organization_id = await organization_id_of(db, customer.external_id)
    if organization_id is not None:
        return organization_id
    organization = await create_organization(db, None, name=customer.name, external_id=customer.external_id,
                                             now=now, currency="IDR")
    await update_billing_details(db, None, organization_id=organization.id, legal_name=customer.legal_name,
                                 address=customer.address, country="ID", tax_id=customer.tax_id,
                                 language=customer.language, now=now)
    return organization.id


class Story:
    """One organization's timeline: steps run in order, each at its instant; the billing run brings
    the subscription up to date before each step (renewals, trial ends, retries, cancellations)."""

    def __init__(self, db: Database, organization_id: uuid.UUID, settings: Settings, gateways: GatewayRegistry,
                 plans: dict[str, uuid.UUID], addons: dict[str, uuid.UUID]) -> None:
        self.db, self.organization_id, self.gateways = db, organization_id, gateways
        self.config = run_config(settings, gateways)
        self.trial_once = settings.trial_once
        self.plans, self.addons = plans, addons
        self.owner = Actor(role=Role.OWNER, organization_id=organization_id, subject="system:demo")
        self.traffic_until: datetime | None = None

    async def at(self, when: datetime, step: Callable[[], Awaitable[object]] | None = None) -> None:
        await self.bill(when)
        if step is not None:
            await step()

    async def bill(self, when: datetime) -> None:
        async with self.db.read() as session:
            ids = (await session.scalars(select(Subscription.id).where(
                Subscription.organization_id == self.organization_id))).all()
        for subscription_id in ids:
            await run_subscription(self.db, subscription_id, when, self.config, organization_id=self.organization_id)

    async def card(self, when: datetime, token: str, label: str, brand: str, last4: str) -> None:
        await add_payment_method(self.db, self.owner, NewPaymentMethod(
            gateway="sandbox", gateway_payment_method_id=token, type=PaymentMethodType.CREDIT_CARD, label=label,
            is_default=True, brand=brand, last4=last4, exp_month=12, exp_year=when.year + 3), now=when)

    async def subscribe(self, when: datetime, plan: str, coupon: str | None = None) -> None:
        await subscribe(self.db, self.owner, organization_id=self.organization_id,
                        choice=PlanChoice(self.plans[plan], BillingPeriod.MONTHLY, coupon), payment_method_id=None,
                        idempotency_key=None, gateways=self.gateways, now=when, trial_once=self.trial_once)

    async def gauges(self, when: datetime, values: dict[str, int]) -> None:
        events = [EventInput(metric, value, when, f"demo:{metric}:{when.isoformat()}")
                  for metric, value in values.items()]
        await record_usage(self.db, organization_id=self.organization_id, events=events, now=when)

    async def traffic(self, since: datetime, until: datetime, *, messages: int, api_calls: int) -> None:
        """``messages`` and ``api_calls`` over [since, until), spread over its days with a weekday
        rhythm (weekends quieter), in four events a day; recorded as they happen (at ``until``)."""
        days = max(1, round((until - since) / timedelta(days=1)))
        weights = [0.45 if (since + timedelta(days=day)).weekday() >= 5 else 1.0 for day in range(days)]
        events: list[EventInput] = []
        for metric, total in (("messages", messages), ("api_calls", api_calls)):
            left = total
            for day, weight in enumerate(weights):
                share = left if day == days - 1 else round(total * weight / sum(weights))
                left -= share
                for quarter in range(4):
                    at = min(since + timedelta(days=day, hours=2 + 5 * quarter), until - timedelta(seconds=1))
                    quantity = share // 4 + (share % 4 if quarter == 3 else 0)
                    events.append(EventInput(metric, quantity, at, f"demo:{metric}:{at.isoformat()}"))
        await record_usage(self.db, organization_id=self.organization_id, events=events, now=until)


async def play_demo(story: Story, now: datetime) -> None:
    start = add_months(now, -DEMO_HISTORY_MONTHS) - timedelta(days=DEMO_HISTORY_DAYS)
    month = [add_months(start, index) for index in range(DEMO_HISTORY_MONTHS + 1)]
    await story.at(start, lambda: story.gauges(start, {"agents": 2, "contacts": 640, "channels": 1, "ai_agents": 0,
                                                      "integrations": 1}))
    await story.card(start, "pm_card_visa", "Visa ending 4242", "visa", "4242")
    await story.subscribe(start, "starter-idr")
    await story.traffic(start, month[1], messages=6_800, api_calls=9_500)
    await story.at(month[1], lambda: story.gauges(month[1] + timedelta(days=9), {"agents": 3, "contacts": 910}))
    await story.traffic(month[1], month[2], messages=8_900, api_calls=12_400)
    upgrade = month[2] + timedelta(days=15)
    await story.at(upgrade, lambda: story.gauges(upgrade, {"agents": 5, "contacts": 4_200, "channels": 3,
                                                           "ai_agents": 1, "integrations": 4}))
    await change_plan(story.db, story.owner, organization_id=story.organization_id, plan_id=story.plans["growth-idr"],
                      billing_period=None, gateways=story.gateways, now=upgrade)
    await attach_addon(story.db, story.owner, organization_id=story.organization_id,
                       addon_id=story.addons["whatsapp-number-idr"], gateways=story.gateways,
                       now=upgrade + timedelta(hours=2))
    await story.traffic(month[2], month[3], messages=61_000, api_calls=48_000)
    await story.at(month[3])
    await story.traffic(month[3], now, messages=DEMO_MESSAGES_SO_FAR, api_calls=52_000)
    await story.at(now, lambda: story.gauges(now, DEMO_GAUGES))


async def play_trial(story: Story, now: datetime) -> None:
    start = now - timedelta(days=5)
    await story.gauges(start, {"agents": 3, "contacts": 1_250, "channels": 2, "ai_agents": 1, "integrations": 2})
    await story.card(start, "pm_card_mastercard", "Mastercard ending 4444", "mastercard", "4444")
    await story.subscribe(start, "growth-idr", coupon="LAUNCH50K")
    await story.traffic(start, now, messages=7_400, api_calls=3_100)
    await story.at(now)


async def play_past_due(story: Story, now: datetime) -> None:
    start = add_months(now - timedelta(days=2, hours=12), -2)  # its third month began 2.5 days ago
    await story.gauges(start, {"agents": 2, "contacts": 540, "channels": 2, "ai_agents": 0, "integrations": 1})
    await story.card(start, "pm_card_visa", "Visa ending 4242", "visa", "4242")
    await story.subscribe(start, "starter-idr")
    second = add_months(start, 1)
    await story.traffic(start, second, messages=5_200, api_calls=1_800)
    await story.at(second)
    new_card = second + timedelta(days=20)
    # A debit card that saves but has no funds when charged (Stripe's pm_card_chargeDeclinedInsufficientFunds).
    await story.at(new_card, lambda: story.card(new_card, "pm_card_chargeDeclinedInsufficientFunds",
                                                "Debit BCA ending 9995", "visa", "9995"))
    third = add_months(start, 2)
    await story.traffic(second, third, messages=6_100, api_calls=2_300)
    await story.at(now)  # the renewal fails, then its first retry a day later


async def play_canceled(story: Story, now: datetime) -> None:
    start = add_months(now, -3) - timedelta(days=5)
    await story.gauges(start, {"agents": 4, "contacts": 2_300, "channels": 2, "ai_agents": 1, "integrations": 3})
    await story.card(start, "pm_card_visa", "Visa ending 4242", "visa", "4242")
    await story.subscribe(start, "growth-idr")  # a 14-day trial
    paid_from = start + timedelta(days=14)
    await story.traffic(start, paid_from, messages=9_000, api_calls=2_000)
    await story.at(paid_from)  # the trial converts: the first invoice, paid
    await story.traffic(paid_from, add_months(paid_from, 1), messages=24_000, api_calls=5_000)
    decided = add_months(paid_from, 1) + timedelta(days=18)
    await story.at(decided, lambda: cancel(story.db, story.owner, organization_id=story.organization_id,
                                           immediately=False, reason="The second branch closed; back to spreadsheets.",
                                           now=decided))
    await story.traffic(add_months(paid_from, 1), add_months(paid_from, 2), messages=16_000, api_calls=3_000)
    await story.at(now)  # canceled at the period's end


STORIES = {"demo": play_demo, "trial": play_trial, "past_due": play_past_due, "canceled": play_canceled}


async def play_stories(db: Database, now: datetime, settings: Settings, gateways: GatewayRegistry) -> uuid.UUID:
    """Every customer's organization, and its story where it has no subscription yet; the demo
    organization's id."""
    async with db.read() as session:
        plans = dict((await session.execute(select(Plan.slug, Plan.id))).all())
        addons = dict((await session.execute(select(Addon.slug, Addon.id))).all())
    created_at = add_months(now, -DEMO_HISTORY_MONTHS) - timedelta(days=DEMO_HISTORY_DAYS + 1)
    ids: dict[str, uuid.UUID] = {}
    for key, customer in CUSTOMERS.items():
        ids[key] = organization_id = await ensure_customer(db, customer, created_at)
        async with db.read() as session:
            started = await session.scalar(select(Subscription.id).where(Subscription.organization_id == organization_id)
                                           .limit(1))
        if started is None:
            await STORIES[key](Story(db, organization_id, settings, gateways, plans, addons), now)
    return ids["demo"]
