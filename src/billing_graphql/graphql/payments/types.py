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
from billing_graphql.graphql.columns import columns
from billing_graphql.graphql.common import from_row, load_nodes
from billing_graphql.graphql.platform.types import OrganizationType

PaymentMethodKind = strawberry.enum(DomainPaymentMethodType, name="PaymentMethodType")



@strawberry.type(
    name="PaymentMethod",
    description="A saved payment method: the processor's token and what to show. Never a card number.",
)
class PaymentMethodNode(relay.Node):
    id: relay.NodeID[str]
    gateway: str = strawberry.field(description="The processor holding the token (sandbox, razorpay).")
    gateway_payment_method_id: str = strawberry.field(description="The processor's token for this method.")
    type: PaymentMethodKind
    label: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    is_default: bool = strawberry.field(description="Charged for renewals; exactly one per organization.")
    created_at: datetime
    organization_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The organization it belongs to (null where the caller may not see it).")
    async def organization(self, info: Info) -> OrganizationType | None:
        actor = info.context.actor
        if actor is None or not actor.may_see(self.organization_id):
            return None
        row = await info.context.loaders.organization_by_id.load(self.organization_id)
        return OrganizationType.from_row(row) if row else None

    @classmethod
    def from_row(cls, row: PaymentMethodRow) -> PaymentMethodNode:
        return from_row(cls, row, organization_id=row.organization_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        actor = info.context.actor
        allowed = actor is not None and actor.role in MANAGERS
        return await load_nodes(info.context.loaders.payment_method_by_id, node_ids, cls.from_row,
                                lambda row: allowed and actor.may_see(row.organization_id))


columns(PaymentMethodNode, PaymentMethodRow)  # organization: no SQL form (visible to some actors only)
