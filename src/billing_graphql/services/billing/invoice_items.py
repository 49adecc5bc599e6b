"""One-off charges: invoice items pending for the next invoice, and one-off invoices.

- ``create_invoice_item``: a pending item in the organization's currency (outbox
  ``invoice_item.created``); the next invoice of a renewal (the billing run, ``renewals``) or of a
  change (``changePlan``, ``attachAddon``/``detachAddon`` when the change is billed, not when it
  only adds credit) bills every pending item of its currency as a ONE_OFF line, taxed like the
  rest, and marks it invoiced (``bill_items``). ``upcomingInvoice`` lists them.
- ``delete_invoice_item``: while it is pending only (INVALID_TRANSITION once invoiced); the row is
  kept with ``deleted_at`` (never billed, no longer listed).
- ``create_one_off_invoice``: an invoice (billing reason MANUAL, no subscription) of the items
  given, now: tax and account credit as on any invoice; CHARGE_NOW charges the default payment
  method (PAYMENT_REQUIRED without one, nothing written; a decline leaves the invoice OPEN with
  PAYMENT_FAILED), SEND leaves it OPEN, due in ``daysUntilDue`` days. The billing run's dunning
  never retries it (it belongs to no subscription): staff collect it with ``payInvoice``.

All of them super-admin (the API checks), idempotent with a key, audited, in the unit of work.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.models import BillingReason, Invoice, InvoiceItem, Payment
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found, validation
from billing_graphql.domain.invoices import LineDraft
from billing_graphql.domain.money import major_to_minor_exact
from billing_graphql.domain.one_off import MAX_ITEMS, CollectMethod, OneOffItem, days_until_due, one_off_item
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.billing.charging import charge_invoice, default_payment_method, payment_error
from billing_graphql.services.billing.invoicing import amount_due, create_invoice, draft_invoice, finalize_invoice, \
    tax_rule_for
from billing_graphql.services.platform.audit import snapshot
from billing_graphql.services.unit_of_work import money_move

ITEM_FIELDS = ("description", "currency", "unit_amount", "quantity", "amount", "invoice_id")


@dataclass(frozen=True, slots=True)
class ItemInput:
    """An item as the caller gives it: ``amount`` per unit in major units, tax excluded."""

    description: str | None
    amount: Decimal
    quantity: int = 1

    def request(self) -> dict[str, object]:
        return {"description": (self.description or "").strip(), "amount": self.amount.normalize(),
                "quantity": self.quantity}


def _minor(amount: Decimal, currency: str, field: str) -> int:
    if amount.is_nan() or amount.is_infinite():
        raise validation("The amount is a number.", field)
    return major_to_minor_exact(amount, currency, field)


def _checked(item: ItemInput, currency: str, prefix: str = "") -> OneOffItem:
    return one_off_item(item.description, _minor(item.amount, currency, f"{prefix}amount"), item.quantity,
                        field_prefix=prefix)


# ---- pending items on the next invoice ------------------------------------------------------

def pending_items_statement(organization_id: Any, currency: Any) -> Select:
    """The organization's items not invoiced yet, in ``currency`` (values or SQL expressions), oldest first."""
    return (select(InvoiceItem).where(InvoiceItem.organization_id == organization_id, InvoiceItem.invoice_id.is_(None),
                                      InvoiceItem.deleted_at.is_(None), InvoiceItem.currency == currency)
            .order_by(InvoiceItem.created_at, InvoiceItem.id))


async def pending_items(session: AsyncSession, organization_id: uuid.UUID, currency: str) -> list[InvoiceItem]:
    """The organization's items not invoiced yet, in ``currency``, oldest first."""
    return list((await session.scalars(pending_items_statement(organization_id, currency))).all())


def item_lines(items: Sequence[InvoiceItem]) -> tuple[LineDraft, ...]:
    """The ONE_OFF lines of pending items."""
    return tuple(OneOffItem(item.description, item.unit_amount, item.quantity).line() for item in items)


def bill_items(items: Sequence[InvoiceItem], invoice: Invoice, now: datetime) -> None:
    """The items are on ``invoice`` now: no longer pending."""
    for item in items:
        item.invoice_id = invoice.id
        item.updated_at = now


# ---- create and delete ----------------------------------------------------------------------

async def create_invoice_item(
    db: Database, actor: Actor | None, *, organization_id: uuid.UUID, item: ItemInput,
    idempotency_key: str | None, now: datetime,
) -> InvoiceItem:
    """A pending item for the organization's next invoice, in its currency."""
    request = item.request()
    async with money_move(db, organization_id, "create_invoice_item", idempotency_key, request, actor=actor,
                          now=now) as uow:
        session, organization = uow.session, uow.organization
        if uow.replayed:
            return await session.get(InvoiceItem, uuid.UUID(uow.stored["invoice_item_id"]))
        checked = _checked(item, organization.currency)
        row = InvoiceItem(
            id=uow.derived_id("invoice_item") or uuid.uuid4(), organization_id=organization.id,
            description=checked.description, currency=organization.currency, unit_amount=checked.unit_amount,
            quantity=checked.quantity, amount=checked.amount, invoice_id=None, created_at=now, updated_at=now,
        )
        session.add(row)
        await session.flush()
        uow.record("invoice_item.created", "InvoiceItem", row.id, subject=row, after=snapshot(row, *ITEM_FIELDS))
        uow.done({"invoice_item_id": row.id})
    return row


async def delete_invoice_item(
    db: Database, actor: Actor | None, *, item_id: uuid.UUID, idempotency_key: str | None, now: datetime,
) -> uuid.UUID:
    """Delete a pending item (NOT_FOUND when it does not exist; INVALID_TRANSITION once invoiced)."""
    async with db.read() as session:
        organization_id = await session.scalar(select(InvoiceItem.organization_id).where(InvoiceItem.id == item_id))
    if organization_id is None:
        raise not_found("Invoice item", "id")
    async with money_move(db, organization_id, "delete_invoice_item", idempotency_key, {"id": item_id},
                          actor=actor, now=now) as uow:
        if uow.replayed:
            return item_id
        row = await uow.session.get(InvoiceItem, item_id, populate_existing=True)
        if row.deleted_at is not None:
            raise not_found("Invoice item", "id")
        if row.invoice_id is not None:
            raise BillingError(BillingErrorCode.INVALID_TRANSITION,
                               "This item is on an invoice already; correct that invoice instead.", field="id")
        before = snapshot(row, *ITEM_FIELDS)
        row.deleted_at = row.updated_at = now
        uow.audit("invoice_item.deleted", "InvoiceItem", item_id, before=before,
                  after=snapshot(row, *ITEM_FIELDS, "deleted_at"))
        uow.done({"invoice_item_id": item_id})
    return item_id


async def list_pending_items(db: Database, organization_id: uuid.UUID) -> list[InvoiceItem]:
    async with db.read() as session:
        rows = await session.scalars(
            select(InvoiceItem).where(InvoiceItem.organization_id == organization_id, InvoiceItem.invoice_id.is_(None),
                                      InvoiceItem.deleted_at.is_(None))
            .order_by(InvoiceItem.created_at, InvoiceItem.id))
        return list(rows.all())


# ---- one-off invoices -----------------------------------------------------------------------

@dataclass(slots=True)
class OneOffInvoice:
    invoice: Invoice
    payment: Payment | None = None

    @property
    def payment_error(self) -> BillingError | None:
        return payment_error(self.payment)


async def create_one_off_invoice(
    db: Database, actor: Actor | None, *, organization_id: uuid.UUID, items: Sequence[ItemInput],
    collect: CollectMethod, days: int | None, idempotency_key: str | None, gateways: GatewayRegistry,
    now: datetime,
) -> OneOffInvoice:
    """Invoice ``items`` now (see the module's docstring)."""
    if not 1 <= len(items) <= MAX_ITEMS:
        raise validation(f"A one-off invoice has 1 to {MAX_ITEMS} items.", "items")
    due_in = days_until_due(collect, days)
    request = {"items": [item.request() for item in items], "collect": collect, "days_until_due": due_in}
    async with money_move(db, organization_id, "create_one_off_invoice", idempotency_key, request, actor=actor,
                          now=now, gateways=gateways) as uow:
        session, organization = uow.session, uow.organization
        if uow.replayed:
            invoice = await session.get(Invoice, uuid.UUID(uow.stored["invoice_id"]))
            payment_id = uow.stored.get("payment_id")
            return OneOffInvoice(invoice, await session.get(Payment, uuid.UUID(payment_id)) if payment_id else None)
        currency = organization.currency
        checked = [_checked(item, currency, f"items.{index}.") for index, item in enumerate(items)]
        draft = draft_invoice(organization, currency, [item.line() for item in checked], discount=None,
                              tax_rule=await tax_rule_for(session, currency, now))
        method = None
        if collect is CollectMethod.CHARGE_NOW and draft.amount_due > 0:
            method = await default_payment_method(session, organization.id)
            if method is None:
                raise BillingError(BillingErrorCode.PAYMENT_REQUIRED,
                                   "The organization has no default payment method to charge; send the invoice "
                                   "instead (collect: SEND).", field="collect")
        invoice = await create_invoice(session, organization, draft, subscription_id=None,
                                       billing_reason=BillingReason.MANUAL, period_start=None, period_end=None, now=now)
        await finalize_invoice(session, invoice, now, days_until_due=due_in)
        result = OneOffInvoice(invoice)
        if method is not None:
            result.payment = await charge_invoice(session, invoice, method, uow.gateway(method.gateway), now,
                                                  payment_id=uow.derived_id("payment"))
        elif amount_due(invoice) <= 0:
            await charge_invoice(session, invoice, None, None, now)  # account credit covered it: PAID
        uow.audit("invoice.one_off_created", "Invoice", invoice.id,
                  after={"number": invoice.number, "collect": collect.value, "total": invoice.total,
                         "currency": currency, "items": len(checked), "status": invoice.status.value})
        uow.done({"invoice_id": invoice.id, "payment_id": result.payment.id if result.payment else None})
    return result
