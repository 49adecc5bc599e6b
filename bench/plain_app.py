"""The contenders without GraphQL, served exactly as the gateway is (same server options, same core).

- ``POST /plain/invoices``: the invoices page (``queries/spa/Invoices.graphql``, ``first: 50``) with the
  same SQL statements (authentication, the page, lines, payments, refunds) over SQLAlchemy Core rows,
  returning byte-for-byte the gateway's JSON (``bench/run.py`` checks that before it measures).
- ``POST /plain/subscription``: the subscription page (``queries/spa/SubscriptionPage.graphql``) through
  the same service call and the same per-request loaders as the resolvers, JSON built by hand.
- ``POST /raw``: a constant JSON body: no GraphQL, no database.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from litestar import Litestar, Request, Response, post
from litestar.datastructures import State
from sqlalchemy import select
from strawberry import relay

from billing_graphql.db.engine import Database
from billing_graphql.db.models import AddonUnit, CouponDuration, DiscountKind, Invoice, InvoiceLine, Payment, Refund
from billing_graphql.domain.money import Money
from billing_graphql.domain.proration import billed_agents, round_half_up
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.graphql.loaders import Loaders
from billing_graphql.services.platform.auth import AuthenticationFailed, authenticate
from billing_graphql.services.subscriptions import lifecycle
from billing_graphql.services.subscriptions.pricing import addon_price, plan_price
from billing_graphql.settings import Settings

RAW_BODY = {"data": {"viewer": {"role": "OWNER"}}}
PAGE_SIZE = 50
def _forbidden() -> Response:
    return Response({"errors": [{"message": "forbidden"}]}, status_code=200)



def _time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _money(minor: int, currency: str, *fields: str) -> dict[str, Any]:
    money = Money(minor, currency)
    values = {"amount": format(money.amount, "f"), "currency": currency, "formatted": money.format()}
    return {field: values[field] for field in fields}


async def _organization(request: Request, db: Database):
    """The caller's organization by the gateway's own authentication (its one statement); None: refused."""
    settings: Settings = request.app.state.settings
    try:
        actor = await authenticate(db, request.headers.get("authorization"), jwt_secret=settings.jwt_secret,
                                   now=datetime.now(UTC))
    except AuthenticationFailed:
        return None
    return actor.organization_id if actor else None


@post("/raw", status_code=200, sync_to_thread=False)
def raw() -> dict:
    return RAW_BODY


def _grouped(rows) -> dict:
    grouped = defaultdict(list)
    for row in rows:
        grouped[row.invoice_id].append(row)
    return grouped


@post("/plain/invoices", status_code=200)
async def plain_invoices(request: Request) -> Response:
    db: Database = request.app.state.db
    organization_id = await _organization(request, db)
    if organization_id is None:
        return _forbidden()
    invoices, lines, payments, refunds = Invoice.__table__, InvoiceLine.__table__, Payment.__table__, Refund.__table__
    async with db.read() as session:
        page = (await session.execute(
            select(invoices).where(invoices.c.organization_id == organization_id)
            .order_by(invoices.c.created_at.desc(), invoices.c.number.desc(), invoices.c.id.desc())
            .limit(PAGE_SIZE + 1).offset(0))).all()
        has_next, page = len(page) > PAGE_SIZE, page[:PAGE_SIZE]
        ids = [row.id for row in page]
        by_lines = _grouped((await session.execute(
            select(lines).where(lines.c.invoice_id.in_(ids)).order_by(lines.c.position))).all())
        by_payments = _grouped((await session.execute(
            select(payments).where(payments.c.invoice_id.in_(ids))
            .order_by(payments.c.created_at, payments.c.id))).all())
        by_refunds = _grouped((await session.execute(
            select(refunds).where(refunds.c.invoice_id.in_(ids)).order_by(refunds.c.created_at, refunds.c.id))).all())
    public_url = request.app.state.settings.public_url
    edges = []
    for row in page:
        currency = row.currency
        edges.append({"node": {
            "id": relay.to_base64("Invoice", row.id),
            "invoiceNumber": row.number,
            "status": row.status.name,
            "billingReason": row.billing_reason.name,
            "currency": currency,
            "subtotal": _money(row.subtotal, currency, "amount", "formatted"),
            "discount": _money(row.discount, currency, "amount", "formatted"),
            "tax": _money(row.tax, currency, "amount", "formatted"),
            "taxName": row.tax_name,
            "taxRate": None if row.tax_rate is None else format(row.tax_rate, "f"),
            "creditApplied": _money(row.credit_applied, currency, "amount", "formatted"),
            "total": _money(row.total, currency, "amount", "currency", "formatted"),
            "amountPaid": _money(row.amount_paid, currency, "amount", "formatted"),
            "amountDue": _money(row.total - row.credit_applied - row.amount_paid, currency, "amount", "formatted"),
            "createdAt": _time(row.created_at),
            "dueDate": _time(row.due_date),
            "paidAt": _time(row.paid_at),
            "periodStart": _time(row.period_start),
            "periodEnd": _time(row.period_end),
            "pdfUrl": f"{public_url}/invoices/{row.id}.pdf",
            "paymentUrl": row.payment_url,
            "lines": [{
                "kind": line.kind.name,
                "description": line.description,
                "quantity": format(line.quantity, "f"),
                "unitAmount": _money(round_half_up(Fraction(line.unit_amount)), currency, "amount"),
                "amount": _money(line.amount, currency, "amount", "formatted"),
                "periodStart": _time(line.period_start),
                "periodEnd": _time(line.period_end),
            } for line in by_lines.get(row.id, [])],
            "payments": [{
                "id": relay.to_base64("Payment", payment.id),
                "amount": _money(payment.amount, payment.currency, "amount", "formatted"),
                "status": payment.status.name,
                "failureCode": payment.failure_code,
                "createdAt": _time(payment.created_at),
            } for payment in by_payments.get(row.id, [])],
            "refunds": [{
                "id": relay.to_base64("Refund", refund.id),
                "amount": _money(refund.amount, refund.currency, "amount", "formatted"),
                "status": refund.status.name,
                "reason": refund.reason,
                "createdAt": _time(refund.created_at),
            } for refund in by_refunds.get(row.id, [])],
        }})
    end_cursor = relay.to_base64("offset", len(page) - 1) if page else None
    return Response({"data": {"invoices": {"pageInfo": {"hasNextPage": has_next, "endCursor": end_cursor},
                                           "edges": edges}}})


def _plan(plan, limits, features) -> dict[str, Any]:
    currency = plan.currency
    return {
        "id": relay.to_base64("Plan", plan.id), "name": plan.name, "slug": plan.slug, "currency": currency,
        "basePriceMonthly": _money(plan.base_price_monthly, currency, "amount", "currency", "formatted"),
        "basePriceAnnual": _money(plan.base_price_annual, currency, "amount", "currency", "formatted"),
        "perAgentPrice": _money(plan.per_agent_price, currency, "amount", "currency", "formatted"),
        "includedAgents": plan.included_agents,
        "limits": [{"metric": {"code": metric.code, "name": metric.name, "kind": metric.kind.name,
                               "unit": metric.unit}, "limit": limit.limit_value} for limit, metric in limits],
        "features": [{"key": feature.key, "enabled": feature.enabled} for (feature,) in features],
    }


@post("/plain/subscription", status_code=200)
async def plain_subscription(request: Request) -> Response:
    db: Database = request.app.state.db
    organization_id = await _organization(request, db)
    if organization_id is None:
        return _forbidden()
    row = await lifecycle.get_live_subscription(db, organization_id)
    if row is None:
        return Response({"data": {"subscription": None}})
    loaders = Loaders(db)
    now = datetime.now(UTC)
    plan = await loaders.plan_by_id.load(row.plan_id)
    limits, features, addons, gauge = (
        await loaders.limits_by_plan.load(plan.id), await loaders.features_by_plan.load(plan.id),
        await loaders.addons_by_subscription.load(row.id), await loaders.agents_by_organization.load(row.organization_id))
    coupon = await loaders.coupon_by_id.load(row.coupon_id) if row.coupon_id else None
    pending = None
    if row.pending_plan_id is not None or row.pending_billing_period is not None:
        pending_plan = await loaders.plan_by_id.load(row.pending_plan_id or row.plan_id)
        pending = {"plan": {"id": relay.to_base64("Plan", pending_plan.id), "name": pending_plan.name},
                   "billingPeriod": (row.pending_billing_period or row.billing_period).name,
                   "effectiveAt": _time(row.current_period_end)}
    agents = billed_agents(gauge, row.agent_count)  # the seats the gateway's agentCount and spendingCap count
    minimum = plan_price(plan).seats(row.billing_period, agents)
    cap = row.spending_cap
    period = row.billing_period
    trial_ends = row.trial_ends_at
    body = {
        "id": relay.to_base64("Subscription", row.id),
        "status": row.status.name,
        "billingPeriod": row.billing_period.name,
        "isTrial": row.status is SubscriptionStatus.TRIALING,
        "expiredTrial": trial_ends is not None and now >= trial_ends and row.status in (
            SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID),
        "trialEndDate": _time(trial_ends),
        "cancelAtPeriodEnd": row.cancel_at_period_end,
        "currentPeriodStart": _time(row.current_period_start),
        "currentPeriodEnd": _time(row.current_period_end),
        "paymentGateway": row.payment_gateway,
        "agentCount": agents,
        "createdAt": _time(row.created_at),
        "updatedAt": _time(row.updated_at),
        "plan": _plan(plan, limits, features),
        "addons": [{
            "addonId": relay.to_base64("Addon", addon.id), "name": addon.name, "slug": addon.slug,
            "perAgent": addon.unit is AddonUnit.PER_AGENT, "quantity": attached.quantity,
            "unitPrice": _money(addon_price(addon, 1).unit_price(period), addon.currency,
                                "amount", "currency", "formatted"),
            "amount": _money(addon_price(addon, attached.quantity).amount(period, agents), addon.currency,
                             "amount", "currency", "formatted"),
        } for attached, addon in addons],
        "coupon": None if coupon is None else {
            "code": coupon.code, "name": coupon.name,
            "percentOff": None if coupon.discount_type is DiscountKind.FIXED else coupon.percent_off,
            "amountOff": _money(coupon.amount_off, coupon.currency, "amount", "formatted")
            if coupon.discount_type is DiscountKind.FIXED else None,
            "duration": coupon.duration.value,
            "durationInMonths": coupon.duration_in_months if coupon.duration is CouponDuration.REPEATING else None,
            "periodsRemaining": row.coupon_periods_remaining,
        },
        "pendingChange": pending,
        "spendingCap": {
            "currentCap": None if cap is None else _money(cap, plan.currency, "amount", "currency", "formatted"),
            "minimumRequiredCap": _money(minimum, plan.currency, "amount", "currency", "formatted"),
            "requireIncrease": cap is not None and cap < minimum,
            "currentAgentCount": agents,
        },
    }
    return Response({"data": {"subscription": body}})


def create_app() -> Litestar:
    from contextlib import asynccontextmanager

    settings = Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Litestar):
        app.state.db = Database.from_url(settings.database_url, pool_size=settings.db_pool_size)
        try:
            yield
        finally:
            await app.state.db.dispose()

    return Litestar(route_handlers=[raw, plain_invoices, plain_subscription], state=State({"settings": settings}),
                    lifespan=[lifespan], debug=False)

