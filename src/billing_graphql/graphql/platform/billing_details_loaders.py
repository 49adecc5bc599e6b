"""DataLoaders for billing details (kept apart from the types, which import the context)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from billing_graphql.db.engine import Database
from billing_graphql.db.models import BillingDetails, Invoice, InvoiceParties
from billing_graphql.domain.billing_details import BillingDetailsValue
from billing_graphql.domain.language import language_of
from billing_graphql.services.platform.billing_details import value_of


def billing_details_loader(db: Database) -> DataLoader[uuid.UUID, BillingDetailsValue]:
    """An organization's billing details (empty where none were given)."""

    async def load(ids: Sequence[uuid.UUID]) -> list[BillingDetailsValue]:
        async with db.read() as session:
            rows = (await session.scalars(select(BillingDetails).where(BillingDetails.organization_id.in_(ids)))).all()
        found = {row.organization_id: value_of(row) for row in rows}
        return [found.get(key, BillingDetailsValue()) for key in ids]

    return DataLoader(load_fn=load)


def invoice_buyer_loader(db: Database) -> DataLoader[uuid.UUID, BillingDetailsValue | None]:
    """The billing details copied onto an invoice when it was finalized (None: none were given),
    with the organization's language (its documents', the invoice's PDF included, as it is now)."""

    async def load(ids: Sequence[uuid.UUID]) -> list[BillingDetailsValue | None]:
        statement = (
            select(InvoiceParties, BillingDetails.language)
            .join(Invoice, Invoice.id == InvoiceParties.invoice_id)
            .outerjoin(BillingDetails, BillingDetails.organization_id == Invoice.organization_id)
            .where(InvoiceParties.invoice_id.in_(ids))
        )
        async with db.read() as session:
            rows = (await session.execute(statement)).all()
        found = {row.invoice_id: BillingDetailsValue(row.buyer_legal_name, row.buyer_address, row.buyer_country,
                                                     row.buyer_tax_id, language_of(language))
                 for row, language in rows}
        return [found.get(key) for key in ids]

    return DataLoader(load_fn=load)
