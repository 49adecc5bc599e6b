"""The bench data set: the demo catalog and keys, then 200 organizations (x scale) with 60 invoices
each, 2-3 lines and a payment per invoice, a partial refund on every seventh.

Rows go in with bulk INSERTs of the models' tables (the services would take minutes for this);
the values keep every CHECK of the schema (total = subtotal - discount + tax, paid within due, ...).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import insert, select

from billing_graphql.db.engine import Database
from billing_graphql.db.migrate import migrate
from billing_graphql.db.models import (
    BillingReason,
    Invoice,
    InvoiceLine,
    InvoiceLineKind,
    Organization,
    Payment,
    PaymentStatus,
    Refund,
)
from billing_graphql.demo import DEMO_ORGANIZATION_EXTERNAL_ID, seed_demo
from billing_graphql.domain.roles import Role
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.settings import Settings

ORGANIZATIONS = 200
INVOICES_PER_ORGANIZATION = 60
BATCH = 2000


def _invoice_rows(organization_id: uuid.UUID, currency: str, start: datetime, counter: list[int], rng: random.Random):
    """Yield (invoice, lines, payment, refund | None) dicts for one organization."""
    unit = 100 if currency == "USD" else 1
    for month in range(INVOICES_PER_ORGANIZATION):
        counter[0] += 1
        number = counter[0]
        created = start + timedelta(days=30 * month, seconds=number % 3600)
        period_end = created + timedelta(days=30)
        invoice_id = uuid.uuid4()
        amounts = [rng.randint(10, 500) * 1000 * unit // 100 * 100 for _ in range(rng.choice((2, 3)))]
        lines = [
            dict(id=uuid.uuid4(), invoice_id=invoice_id, position=position,
                 kind=(InvoiceLineKind.PLAN, InvoiceLineKind.SEATS, InvoiceLineKind.ADDON)[position],
                 description=("Plan", "Seats", "Add-on")[position] + f" {created:%b %Y}",
                 quantity=Decimal(1 + position), unit_amount=Decimal(amount // (1 + position)) + Decimal("0.25"),
                 amount=amount, period_start=created, period_end=period_end)
            for position, amount in enumerate(amounts)
        ]
        subtotal = sum(amounts)
        discount = subtotal // 10 if number % 5 == 0 else 0
        if currency == "IDR":
            tax = ((subtotal - discount) * 11 * 12 + 600) // 1200
            tax_fields = dict(tax_name="PPN", tax_rate=Decimal("0.12"), tax_base_numerator=11, tax_base_denominator=12)
        else:
            tax, tax_fields = 0, dict(tax_name=None, tax_rate=None, tax_base_numerator=1, tax_base_denominator=1)
        total = subtotal - discount + tax
        refunded = total // 4 if number % 7 == 0 else 0
        status = InvoiceStatus.PARTIALLY_REFUNDED if refunded else InvoiceStatus.PAID
        paid_at = created + timedelta(hours=1)
        invoice = dict(
            id=invoice_id, organization_id=organization_id, subscription_id=None,
            number=f"INV-{created:%Y%m}-B{number:07d}", status=status,
            billing_reason=BillingReason.SUBSCRIPTION_CYCLE if month else BillingReason.SUBSCRIPTION_CREATE,
            currency=currency, period_start=created, period_end=period_end, subtotal=subtotal,
            discount=discount, tax=tax, total=total, credit_applied=0, amount_paid=total,
            amount_refunded=refunded, due_date=created + timedelta(days=7), finalized_at=created,
            paid_at=paid_at, voided_at=None, retry_count=0, last_retry_at=None, gateway_invoice_id=None,
            gateway_order_id=None, payment_url=None if number % 3 else f"https://pay.example/{invoice_id}",
            created_at=created, updated_at=paid_at, **tax_fields,
        )
        payment_id = uuid.uuid4()
        payment = dict(
            id=payment_id, organization_id=organization_id, invoice_id=invoice_id, payment_method_id=None,
            gateway="sandbox", gateway_payment_id=f"ch_{payment_id.hex[:16]}", idempotency_key=f"bench:{payment_id}",
            amount=total, amount_refunded=refunded, currency=currency, status=PaymentStatus.SUCCEEDED,
            failure_code=None, failure_message=None, created_at=paid_at, updated_at=paid_at,
        )
        refund = None
        if refunded:
            refund_id = uuid.uuid4()
            refund = dict(
                id=refund_id, organization_id=organization_id, invoice_id=invoice_id, payment_id=payment_id,
                gateway="sandbox", gateway_refund_id=f"re_{refund_id.hex[:16]}", idempotency_key=f"bench:{refund_id}",
                amount=refunded, currency=currency, status=PaymentStatus.SUCCEEDED, reason="requested_by_customer",
                created_at=paid_at + timedelta(days=2), updated_at=paid_at + timedelta(days=2),
            )
        yield invoice, lines, payment, refund


async def seed(url: str, *, scale: int = 1, progress=None) -> dict[str, str]:
    """Seed ``url`` (an empty database) and return the demo API keys by role name."""
    settings = Settings(database_url=url, rate_limit=0)
    db = Database.from_url(url)
    try:
        await migrate(db.engine)
        now = datetime.now(UTC).replace(microsecond=0)
        keys = await seed_demo(db, now, settings)
        async with db.read() as session:
            demo_id = await session.scalar(
                select(Organization.id).where(Organization.external_id == DEMO_ORGANIZATION_EXTERNAL_ID))
        organizations = ORGANIZATIONS * scale
        task = progress.add_task(f"seed {db.engine.dialect.name}", total=organizations) if progress else None
        rng = random.Random(14)
        counter = [0]
        start = now - timedelta(days=30 * INVOICES_PER_ORGANIZATION + 1)
        buffers: dict[type, list[dict]] = {Organization: [], Invoice: [], InvoiceLine: [], Payment: [], Refund: []}

        async def flush() -> None:
            async with db.write() as session:
                for model, rows in buffers.items():
                    if rows:
                        await session.execute(insert(model.__table__), rows)
                        rows.clear()

        for index in range(organizations):
            if index == 0:
                organization_id = demo_id  # the keys' organization gets the same invoices as the others
            else:
                organization_id = uuid.uuid4()
                buffers[Organization].append(dict(
                    id=organization_id, name=f"Bench Org {index}", external_id=f"bench-{index}",
                    credit_balance=0, credit_currency=None, gateway_customer_id=None, billing_email=None,
                    created_at=now, updated_at=now))
            currency = "IDR" if index % 2 == 0 else "USD"
            for invoice, lines, payment, refund in _invoice_rows(organization_id, currency, start, counter, rng):
                buffers[Invoice].append(invoice)
                buffers[InvoiceLine].extend(lines)
                buffers[Payment].append(payment)
                if refund:
                    buffers[Refund].append(refund)
            if len(buffers[Invoice]) >= BATCH:
                await flush()
            if progress:
                progress.advance(task)
        await flush()
        if db.engine.dialect.name == "postgresql":
            async with db.engine.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.exec_driver_sql("ANALYZE")
        return {role.value: key for role, key in keys.items() if isinstance(role, Role)}
    finally:
        await db.dispose()
