"""The account balance and one-off charges (super-admins): adjustCreditBalance, createInvoiceItem,
deleteInvoiceItem, createOneOffInvoice, and the InvoiceItem node."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry import relay

from billing_graphql.db.models import InvoiceItem as InvoiceItemRow
from billing_graphql.domain.one_off import CollectMethod as DomainCollectMethod
from billing_graphql.domain.one_off import InvoiceItemStatus as DomainInvoiceItemStatus
from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.billing.types import InvoiceType, PaymentType
from billing_graphql.graphql.common import Money, attempt, decode_id, from_row, read_node_ids
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import BillingError
from billing_graphql.graphql.payloads import node_payload
from billing_graphql.graphql.permissions import allow
from billing_graphql.graphql.platform.balance import CreditBalanceTransactionType
from billing_graphql.graphql.platform.types import OrganizationType
from billing_graphql.services.billing import balance, invoice_items
from billing_graphql.services.billing.invoice_items import ItemInput

CollectMethod = strawberry.enum(
    DomainCollectMethod, name="CollectMethod",
    description="CHARGE_NOW: charge the default payment method now; SEND: leave the invoice OPEN with a due date.")

KEY_HELP = "Retrying with the same key and input returns the first result; another input is refused."


InvoiceItemStatus = strawberry.enum(DomainInvoiceItemStatus, name="InvoiceItemStatus",
                                    description="PENDING: waits for the next invoice; INVOICED: on an invoice.")


@strawberry.type(name="InvoiceItem", description="A one-off charge waiting for the organization's next invoice "
                                                 "(a renewal or a billed change), or billed on it.")
class InvoiceItemType(relay.Node):
    id: relay.NodeID[str]
    row: strawberry.Private[InvoiceItemRow]
    description: str
    currency: str
    amount: Money = strawberry.field(description="Per unit, tax excluded.")
    quantity: int
    total: Money = strawberry.field(description="amount x quantity, tax excluded (the invoice adds its tax).")
    status: InvoiceItemStatus
    created_at: datetime

    @classmethod
    def from_row(cls, row: InvoiceItemRow) -> InvoiceItemType:
        return from_row(cls, row, amount=Money.of(row.unit_amount, row.currency), total=Money.of(row.amount, row.currency),
                        status=InvoiceItemStatus.INVOICED if row.invoice_id else InvoiceItemStatus.PENDING)

    @strawberry.field(description="The invoice that billed it (null while pending).")
    async def invoice(self, info: Info) -> InvoiceType | None:
        if self.row.invoice_id is None:
            return None
        return InvoiceType.maybe(await info.context.loaders.invoice_by_id.load(self.row.invoice_id))

    @strawberry.field
    async def organization(self, info: Info) -> OrganizationType | None:
        row = await info.context.loaders.organization_by_id.load(self.row.organization_id)
        return OrganizationType.from_row(row) if row else None

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        actor = info.context.actor
        allowed = actor is not None and actor.is_super_admin
        rows = await info.context.loaders.invoice_item_by_id.load_many(read_node_ids(node_ids))
        return [cls.from_row(row) if allowed and row is not None and row.deleted_at is None else None for row in rows]


# ---- inputs and payloads --------------------------------------------------------------------

@strawberry.input
class AdjustCreditBalanceInput:
    organization_id: strawberry.ID
    amount: Decimal = strawberry.field(description="Major units: positive credits the balance, negative debits it "
                                                   "(never below zero).")
    currency: str = strawberry.field(description="The balance's currency (the organization's while it holds none).")
    reason: str
    idempotency_key: str | None = strawberry.field(default=None, description=KEY_HELP)


@strawberry.type
class AdjustCreditBalancePayload:
    organization: OrganizationType | None = None
    transaction: CreditBalanceTransactionType | None = None
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.input
class CreateInvoiceItemInput:
    organization_id: strawberry.ID
    description: str
    amount: Decimal = strawberry.field(description="Per unit, in major units of the organization's currency, tax "
                                                   "excluded; more than zero.")
    quantity: int = 1
    idempotency_key: str | None = strawberry.field(default=None, description=KEY_HELP)


@strawberry.input
class DeleteInvoiceItemInput:
    id: strawberry.ID
    idempotency_key: str | None = strawberry.field(default=None, description=KEY_HELP)


@strawberry.type
class DeleteInvoiceItemPayload:
    deleted_invoice_item_id: strawberry.ID | None = None
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.input
class OneOffItemInput:
    description: str
    amount: Decimal = strawberry.field(description="Per unit, in major units, tax excluded; more than zero.")
    quantity: int = 1


@strawberry.input
class CreateOneOffInvoiceInput:
    organization_id: strawberry.ID
    items: list[OneOffItemInput]
    collect: CollectMethod = DomainCollectMethod.CHARGE_NOW
    days_until_due: int | None = strawberry.field(
        default=None, description="SEND only: the invoice is due in this many days (1 to 365, default 30).")
    idempotency_key: str | None = strawberry.field(default=None, description=KEY_HELP)


@strawberry.type
class CreateOneOffInvoicePayload:
    invoice: InvoiceType | None = None
    payment: PaymentType | None = strawberry.field(default=None, description="The charge (CHARGE_NOW with "
                                                                             "something due).")
    errors: list[BillingError] = strawberry.field(default_factory=list)


CreateInvoiceItemPayload = node_payload("CreateInvoiceItemPayload", "invoice_item", InvoiceItemType)


def _organization(global_id: strawberry.ID) -> uuid.UUID:
    return decode_id(global_id, "Organization", "organizationId")


@strawberry.type
class Mutation:
    @strawberry.mutation(
        extensions=allow(DomainRole.SUPER_ADMIN),
        description="Credit (positive amount) or debit (negative) the organization's account balance, with a reason; "
                    "never below zero. Writes an ADJUSTMENT entry of its ledger.",
    )
    async def adjust_credit_balance(self, info: Info, input: AdjustCreditBalanceInput) -> AdjustCreditBalancePayload | None:
        context = info.context
        result, errors = await attempt(lambda: balance.adjust_credit_balance(
            context.db, context.actor, organization_id=_organization(input.organization_id), amount=input.amount,
            currency=input.currency, reason=input.reason, idempotency_key=input.idempotency_key, now=context.now,
        ))
        if result is None:
            return AdjustCreditBalancePayload(errors=errors)
        return AdjustCreditBalancePayload(organization=OrganizationType.from_row(result.organization),
                                          transaction=CreditBalanceTransactionType.from_row(result.transaction))

    @strawberry.mutation(
        extensions=allow(DomainRole.SUPER_ADMIN),
        description="Add a one-off charge to the organization's next invoice (a renewal or a billed change); "
                    "upcomingInvoice lists it.",
    )
    async def create_invoice_item(self, info: Info, input: CreateInvoiceItemInput) -> CreateInvoiceItemPayload | None:
        context = info.context
        return await CreateInvoiceItemPayload.of(lambda: invoice_items.create_invoice_item(
            context.db, context.actor, organization_id=_organization(input.organization_id),
            item=ItemInput(input.description, input.amount, input.quantity),
            idempotency_key=input.idempotency_key, now=context.now,
        ))

    @strawberry.mutation(extensions=allow(DomainRole.SUPER_ADMIN),
                         description="Delete a pending invoice item (not one already invoiced).")
    async def delete_invoice_item(self, info: Info, input: DeleteInvoiceItemInput) -> DeleteInvoiceItemPayload | None:
        context = info.context
        result, errors = await attempt(lambda: invoice_items.delete_invoice_item(
            context.db, context.actor, item_id=decode_id(input.id, "InvoiceItem"),
            idempotency_key=input.idempotency_key, now=context.now,
        ))
        if result is None:
            return DeleteInvoiceItemPayload(errors=errors)
        return DeleteInvoiceItemPayload(deleted_invoice_item_id=strawberry.ID(relay.to_base64("InvoiceItem", result)))

    @strawberry.mutation(
        extensions=allow(DomainRole.SUPER_ADMIN),
        description="Invoice one-off items now (tax and account credit as on any invoice): CHARGE_NOW charges the "
                    "default payment method, SEND leaves the invoice OPEN, due in daysUntilDue days.",
    )
    async def create_one_off_invoice(self, info: Info,
                                     input: CreateOneOffInvoiceInput) -> CreateOneOffInvoicePayload | None:
        context = info.context
        result, errors = await attempt(lambda: invoice_items.create_one_off_invoice(
            context.db, context.actor, organization_id=_organization(input.organization_id),
            items=[ItemInput(item.description, item.amount, item.quantity) for item in input.items],
            collect=input.collect, days=input.days_until_due, idempotency_key=input.idempotency_key,
            gateways=context.gateways, now=context.now,
        ))
        if result is None:
            return CreateOneOffInvoicePayload(errors=errors)
        return CreateOneOffInvoicePayload(invoice=InvoiceType.from_row(result.invoice),
                                          payment=PaymentType.from_row(result.payment) if result.payment else None,
                                          errors=errors)
