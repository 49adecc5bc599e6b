"""Rows for payment tests, inserted with the models (real database, no fakes of it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import (
    BillingReason,
    Invoice,
    InvoiceLine,
    InvoiceLineKind,
    Organization,
    Payment,
    PaymentMethod,
    PaymentMethodType,
    PaymentStatus,
    Plan,
    Refund,
    Subscription,
)
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from tests.helpers import T0


async def count_rows(db: Database, model) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(model))


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


async def make_plan(db: Database, *, name: str = "Growth", currency: str = "IDR", monthly: int = 299_000) -> Plan:
    plan = Plan(
        id=uuid.uuid4(),
        name=name,
        slug=f"{name.lower()}-{uuid.uuid4().hex[:6]}",
        currency=currency,
        base_price_monthly=monthly,
        base_price_annual=monthly * 10,
        per_agent_price=0,
        overage_message_price=0,
        created_at=T0,
        updated_at=T0,
    )
    async with db.write() as session:
        session.add(plan)
    return plan


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


@dataclass
class Line:
    description: str
    amount: int
    quantity: Decimal = Decimal(1)
    kind: InvoiceLineKind = InvoiceLineKind.PLAN


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
        number=None if status is InvoiceStatus.DRAFT else (number or f"INV-202601-{uuid.uuid4().int % 10**6:06d}"),
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


async def make_payment_method(
    db: Database,
    organization_id: uuid.UUID,
    *,
    token: str | None = None,
    is_default: bool = False,
    label: str = "Visa",
    created_at: datetime = T0,
) -> PaymentMethod:
    method = PaymentMethod(
        id=uuid.uuid4(),
        organization_id=organization_id,
        gateway="sandbox",
        gateway_payment_method_id=token or f"pm_card_visa_{uuid.uuid4().hex[:6]}",
        type=PaymentMethodType.CREDIT_CARD,
        label=label,
        brand="visa",
        last4="4242",
        exp_month=12,
        exp_year=2099,
        is_default=is_default,
        created_at=created_at,
    )
    async with db.write() as session:
        session.add(method)
    return method
