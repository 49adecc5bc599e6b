"""Test rows written directly with the models (a real database, no fakes of it): catalog,
organizations, subscriptions, invoices, payments, refunds; and the helpers that count them."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import (
    Addon,
    AddonUnit,
    BillingReason,
    Coupon,
    CouponDuration,
    CouponPlan,
    DiscountKind,
    Invoice,
    InvoiceLine,
    InvoiceLineKind,
    Metric,
    Organization,
    Payment,
    PaymentMethod,
    PaymentMethodType,
    PaymentStatus,
    Plan,
    PlanLimit,
    Refund,
    Subscription,
    TaxRate,
    UsageCounter,
)
from billing_graphql.domain.credit_balance import CreditSource
from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.services.billing.credit import move_account_credit
from tests.helpers import T0

_counter = itertools.count(1)


async def make_plan(
    db: Database,
    *,
    name: str | None = None,
    slug: str | None = None,
    currency: str = "IDR",
    monthly: int = 299000,
    annual: int | None = None,
    per_agent: int = 0,
    included_agents: int = 1,
    trial_days: int = 0,
    active: bool = True,
    sort_order: int = 0,
    limits: dict[str, int | None] | None = None,
    now: datetime = T0,
    id: uuid.UUID | None = None,
) -> Plan:
    number = next(_counter)
    plan = Plan(
        id=id or uuid.uuid4(),
        name=name or f"Plan {number}",
        slug=slug or f"plan-{number}-{uuid.uuid4().hex[:6]}",
        currency=currency,
        base_price_monthly=monthly,
        base_price_annual=monthly * 10 if annual is None else annual,
        per_agent_price=per_agent,
        overage_message_price=0,
        included_agents=included_agents,
        trial_days=trial_days,
        is_active=active,
        sort_order=sort_order,
        created_at=now,
        updated_at=now,
    )
    async with db.write() as session:
        session.add(plan)
        if limits:
            from sqlalchemy import select

            metrics = {m.code: m.id for m in (await session.scalars(select(Metric))).all()}
            await session.flush()
            for code, value in limits.items():
                session.add(PlanLimit(plan_id=plan.id, metric_id=metrics[code], limit_value=value))
    return plan


async def set_overage_price(db: Database, plan_id: uuid.UUID, price: int) -> None:
    """``overageMessagePrice`` set on a plan's rows as updatePlan writes it: the column, and the
    STANDARD charge on messages of its current version, its included units the messages limit."""
    from sqlalchemy import delete, select

    from billing_graphql.db.models import PlanCharge
    from billing_graphql.domain.charges import ChargeModel

    async with db.write() as session:
        plan = await session.get(Plan, plan_id)
        plan.overage_message_price = price
        messages = await session.scalar(select(Metric.id).where(Metric.code == "messages"))
        limit = await session.scalar(select(PlanLimit.limit_value).where(PlanLimit.plan_id == plan_id,
                                                                          PlanLimit.metric_id == messages))
        await session.execute(delete(PlanCharge).where(PlanCharge.plan_id == plan_id,
                                                       PlanCharge.version == plan.version,
                                                       PlanCharge.metric_id == messages))
        session.add(PlanCharge(plan_id=plan_id, version=plan.version, position=0, metric_id=messages,
                               model=ChargeModel.STANDARD, included_units=limit, unit_amount=Decimal(price)))


async def make_addon(
    db: Database, *, name: str | None = None, currency: str = "IDR", monthly: int = 50000,
    annual: int | None = None, per_agent: bool = False, active: bool = True, now: datetime = T0,
) -> Addon:
    number = next(_counter)
    addon = Addon(
        id=uuid.uuid4(),
        name=name or f"Addon {number}",
        slug=f"addon-{number}-{uuid.uuid4().hex[:6]}",
        currency=currency,
        price_monthly=monthly,
        price_annual=monthly * 10 if annual is None else annual,
        unit=AddonUnit.PER_AGENT if per_agent else AddonUnit.FLAT,
        is_active=active,
        sort_order=number,
        created_at=now,
        updated_at=now,
    )
    async with db.write() as session:
        session.add(addon)
    return addon


async def make_coupon(
    db: Database,
    *,
    code: str | None = None,
    percent_off: int | None = 20,
    amount_off: int | None = None,
    currency: str | None = None,
    duration: CouponDuration = CouponDuration.ONCE,
    months: int | None = None,
    max_uses: int | None = None,
    current_uses: int = 0,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    active: bool = True,
    plans: list[Plan] = (),
    now: datetime = T0,
) -> Coupon:
    fixed = amount_off is not None
    coupon = Coupon(
        id=uuid.uuid4(),
        code=(code or f"SAVE{next(_counter)}").upper(),
        name="test coupon",
        discount_type=DiscountKind.FIXED if fixed else DiscountKind.PERCENTAGE,
        percent_off=None if fixed else percent_off,
        amount_off=amount_off,
        currency=(currency or "IDR") if fixed else None,
        duration=duration,
        duration_in_months=months,
        max_uses=max_uses,
        current_uses=current_uses,
        valid_from=valid_from,
        valid_until=valid_until,
        is_active=active,
        created_at=now,
        updated_at=now,
    )
    async with db.write() as session:
        session.add(coupon)
        await session.flush()
        for plan in plans:
            session.add(CouponPlan(coupon_id=coupon.id, plan_id=plan.id))
    return coupon


async def make_payment_method(
    db: Database, organization_id: uuid.UUID, *, token: str = "pm_card_visa", is_default: bool = True,
    gateway: str = "sandbox", label: str | None = None, now: datetime = T0,
) -> PaymentMethod:
    """A card (the default one unless ``is_default=False``); the sandbox answers by ``token``."""
    method = PaymentMethod(
        id=uuid.uuid4(),
        organization_id=organization_id,
        gateway=gateway,
        gateway_payment_method_id=token,
        type=PaymentMethodType.CREDIT_CARD,
        label=label or f"Test {token}",
        brand="visa",
        last4="4242",
        exp_month=12,
        exp_year=2099,
        is_default=is_default,
        created_at=now,
    )
    async with db.write() as session:
        session.add(method)
    return method


async def set_agents(db: Database, organization_id: uuid.UUID, agents: int, now: datetime = T0) -> None:
    """The organization's agents gauge (what seat billing counts)."""
    from sqlalchemy import select

    async with db.write() as session:
        metric_id = await session.scalar(select(Metric.id).where(Metric.code == "agents"))
        counter = await session.scalar(
            select(UsageCounter).where(
                UsageCounter.organization_id == organization_id,
                UsageCounter.metric_id == metric_id,
                UsageCounter.period_key == "current",
            )
        )
        if counter is None:
            session.add(UsageCounter(organization_id=organization_id, metric_id=metric_id, period_key="current",
                                     value=agents, updated_at=now))
        else:
            counter.value, counter.updated_at = agents, now


async def set_credit(db: Database, organization_id: uuid.UUID, amount: int, currency: str = "IDR") -> None:
    async with db.write() as session:
        organization = await session.get(Organization, organization_id)
        # Through the ledger, as staff would (an ADJUSTMENT entry), so the balance stays its sum.
        if amount != organization.credit_balance:
            move_account_credit(organization, amount - organization.credit_balance, currency,
                                source=CreditSource.ADJUSTMENT, reason="test set-up", now=T0)


async def add_tax_rate(db: Database, *, name: str, rate, currency: str, numerator: int = 1,
                       denominator: int = 1, effective_from: datetime = T0 - timedelta(days=365)) -> None:
    async with db.write() as session:
        session.add(TaxRate(name=name, rate=rate, base_numerator=numerator, base_denominator=denominator,
                            currency=currency, effective_from=effective_from, created_at=effective_from))


async def database_state(db: Database, *, exclude: tuple[str, ...] = ()) -> dict[str, list[tuple]]:
    """Every row of every table (sorted), to assert that a failed call wrote nothing at all."""
    from sqlalchemy import select

    from billing_graphql.db.models import Base

    state: dict[str, list[tuple]] = {}
    async with db.read() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in exclude:
                continue
            rows = (await session.execute(select(table))).all()
            state[table.name] = sorted((tuple(repr(value) for value in row) for row in rows))
    return state


async def count_rows(db: Database, model, *where) -> int:
    """How many rows of ``model`` (matching ``where``) the database holds."""
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def expect_unchanged(db: Database, code: BillingErrorCode, call):
    """``call`` fails with ``code`` and leaves every table as it was; the error is returned."""
    before = await database_state(db)
    with pytest.raises(BillingError) as raised:
        await call
    assert raised.value.code is code, raised.value
    assert await database_state(db) == before
    return raised.value


# ---- invoices, payments, refunds ----------------------------------------------------------------

async def make_organization(db: Database, name: str = "Initech", external_id: str | None = None) -> Organization:
    organization = Organization(
        id=uuid.uuid4(),
        name=name,
        external_id=external_id or f"ext-{uuid.uuid4().hex[:8]}",
        created_at=T0,
        updated_at=T0,
    )
    async with db.write() as session:
        session.add(organization)
    return organization


async def make_subscription(
    db: Database,
    organization_id: uuid.UUID,
    *,
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
    plan: Plan | None = None,
    start: datetime = T0,
) -> Subscription:
    plan = plan or await make_plan(db)
    subscription = Subscription(
        id=uuid.uuid4(),
        organization_id=organization_id,
        plan_id=plan.id,
        status=status,
        billing_period=BillingPeriod.MONTHLY,
        period_anchor=start,
        current_period_start=start,
        current_period_end=start + timedelta(days=31),
        created_at=start,
        updated_at=start,
    )
    async with db.write() as session:
        session.add(subscription)
    return subscription


# A USAGE line's tiers as the billing run stores them: 5,000 billable messages, 1..4,000 at Rp 100,
# above at Rp 60 plus Rp 10,000 flat (470,000 in all).
USAGE_TIERS = [
    {"from_unit": 1, "to_unit": 4000, "units": 4000, "unit_amount": "100", "flat_amount": "0", "amount": "400000"},
    {"from_unit": 4001, "to_unit": None, "units": 1000, "unit_amount": "60", "flat_amount": "10000",
     "amount": "70000"},
]


@dataclass
class Line:
    description: str
    amount: int
    quantity: Decimal = Decimal(1)
    kind: InvoiceLineKind = InvoiceLineKind.PLAN
    tier_breakdown: list | None = None


# Numbers of the invoices made here, distinct within the process (random ones collided now and then: the unique
# index on number); far above any number the services give in a test.
_INVOICE_NUMBERS = itertools.count(900_000)


async def make_invoice(
    db: Database,
    organization_id: uuid.UUID,
    *,
    lines: list[Line] | None = None,
    currency: str = "IDR",
    status: InvoiceStatus = InvoiceStatus.PAID,
    number: str | None = None,
    discount: int = 0,
    tax: int | None = None,
    tax_name: str | None = "PPN",
    tax_rate: Decimal | None = Decimal("0.12"),
    tax_base: tuple[int, int] = (11, 12),
    paid: bool | None = None,
    created_at: datetime = T0,
    subscription_id: uuid.UUID | None = None,
) -> Invoice:
    """An invoice with lines; tax defaults to PPN 12% on 11/12 of (subtotal - discount)."""
    lines = lines or [Line("Growth plan, monthly", 1_000_000)]
    subtotal = sum(line.amount for line in lines)
    if tax is None:
        base = (Decimal(subtotal - discount) * tax_base[0] / tax_base[1]) if tax_rate else Decimal(0)
        tax = int((base * (tax_rate or 0)).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
    total = subtotal - discount + tax
    if paid is None:
        paid = status in (InvoiceStatus.PAID, InvoiceStatus.PARTIALLY_REFUNDED, InvoiceStatus.REFUNDED)
    invoice = Invoice(
        id=uuid.uuid4(),
        organization_id=organization_id,
        subscription_id=subscription_id,
        number=None if status is InvoiceStatus.DRAFT else (number or f"INV-202601-{next(_INVOICE_NUMBERS):06d}"),
        status=status,
        billing_reason=BillingReason.MANUAL,
        currency=currency,
        period_start=created_at,
        period_end=created_at + timedelta(days=31),
        subtotal=subtotal,
        discount=discount,
        tax=tax,
        tax_name=tax_name if tax_rate else None,
        tax_rate=tax_rate,
        tax_base_numerator=tax_base[0],
        tax_base_denominator=tax_base[1],
        total=total,
        amount_paid=total if paid else 0,
        due_date=created_at + timedelta(days=7),
        finalized_at=None if status is InvoiceStatus.DRAFT else created_at,
        paid_at=created_at if paid else None,
        created_at=created_at,
        updated_at=created_at,
    )
    for position, line in enumerate(lines):
        invoice.lines.append(
            InvoiceLine(
                id=uuid.uuid4(),
                position=position,
                kind=line.kind,
                description=line.description,
                quantity=line.quantity,
                tier_breakdown=line.tier_breakdown,
                unit_amount=Decimal(line.amount) / line.quantity,
                amount=line.amount,
                period_start=invoice.period_start,
                period_end=invoice.period_end,
            )
        )
    async with db.write() as session:
        session.add(invoice)
    return invoice


async def make_payment(
    db: Database,
    invoice: Invoice,
    amount: int | None = None,
    *,
    status: PaymentStatus = PaymentStatus.SUCCEEDED,
    gateway: str = "sandbox",
    created_at: datetime | None = None,
    failure_message: str | None = None,
    payment_method_id: uuid.UUID | None = None,
) -> Payment:
    payment_id = uuid.uuid4()
    when = created_at or invoice.created_at
    payment = Payment(
        id=payment_id,
        organization_id=invoice.organization_id,
        invoice_id=invoice.id,
        payment_method_id=payment_method_id,
        gateway=gateway,
        gateway_payment_id=f"ch_{payment_id.hex[:16]}" if status is PaymentStatus.SUCCEEDED else None,
        idempotency_key=f"payment_{payment_id}",
        amount=amount if amount is not None else invoice.total,
        currency=invoice.currency,
        status=status,
        failure_code="card_declined" if status is PaymentStatus.FAILED else None,
        failure_message=failure_message,
        created_at=when,
        updated_at=when,
    )
    async with db.write() as session:
        session.add(payment)
    return payment


async def make_refund(
    db: Database, payment: Payment, amount: int, *, reason: str | None = None, created_at: datetime | None = None
) -> Refund:
    """A SUCCEEDED refund row, with the payment's and invoice's refunded amounts moved along."""
    refund_id = uuid.uuid4()
    when = created_at or payment.created_at
    refund = Refund(
        id=refund_id,
        organization_id=payment.organization_id,
        invoice_id=payment.invoice_id,
        payment_id=payment.id,
        gateway=payment.gateway,
        gateway_refund_id=f"re_{refund_id.hex[:16]}",
        idempotency_key=f"refund_{refund_id}",
        amount=amount,
        currency=payment.currency,
        status=PaymentStatus.SUCCEEDED,
        reason=reason,
        created_at=when,
        updated_at=when,
    )
    async with db.write() as session:
        stored_payment = await session.get(Payment, payment.id)
        invoice = await session.get(Invoice, payment.invoice_id)
        stored_payment.amount_refunded += amount
        invoice.amount_refunded += amount
        invoice.status = (
            InvoiceStatus.REFUNDED if invoice.amount_refunded == invoice.amount_paid else InvoiceStatus.PARTIALLY_REFUNDED
        )
        session.add(refund)
    return refund
