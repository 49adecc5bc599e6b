"""The PaymentMethod type: a saved processor token with its display details."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import strawberry
from strawberry import relay

from billing_graphql.db.models import PaymentMethod as PaymentMethodRow
from billing_graphql.db.models import PaymentMethodType as DomainPaymentMethodType
from billing_graphql.domain.roles import MANAGERS
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.common import decode_ids

PaymentMethodKind = strawberry.enum(DomainPaymentMethodType, name="PaymentMethodType")



@strawberry.type(
    name="PaymentMethod",
    description="A saved payment method: the processor's token and what to show. Never a card number.",
)
class PaymentMethodNode(relay.Node):
    id: relay.NodeID[str]
    row: strawberry.Private[PaymentMethodRow]

    @classmethod
    def from_row(cls, row: PaymentMethodRow) -> PaymentMethodNode:
        return cls(id=str(row.id), row=row)

    @strawberry.field(description="The processor holding the token (sandbox, razorpay).")
    def gateway(self) -> str:
        return self.row.gateway

    @strawberry.field(description="The processor's token for this method.")
    def gateway_payment_method_id(self) -> str:
        return self.row.gateway_payment_method_id

    @strawberry.field
    def type(self) -> PaymentMethodKind:
        return self.row.type

    @strawberry.field
    def label(self) -> str:
        return self.row.label

    @strawberry.field
    def brand(self) -> str | None:
        return self.row.brand

    @strawberry.field
    def last4(self) -> str | None:
        return self.row.last4

    @strawberry.field
    def exp_month(self) -> int | None:
        return self.row.exp_month

    @strawberry.field
    def exp_year(self) -> int | None:
        return self.row.exp_year

    @strawberry.field(description="Charged for renewals; exactly one per organization.")
    def is_default(self) -> bool:
        return self.row.is_default

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        actor = info.context.actor
        rows = await info.context.loaders.payment_method_by_id.load_many(
            [key or uuid.UUID(int=0) for key in decode_ids(node_ids)]
        )
        return [
            cls.from_row(row)
            if row is not None
            and actor is not None
            and actor.role in MANAGERS
            and actor.organization_in_scope(row.organization_id) == row.organization_id
            else None
            for row in rows
        ]
