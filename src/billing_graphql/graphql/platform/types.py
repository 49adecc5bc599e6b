"""Organization, ApiKey and Viewer types."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from billing_graphql.db.models import ApiKey as ApiKeyRow
from billing_graphql.db.models import Organization as OrganizationRow
from billing_graphql.graphql.context import Info
from billing_graphql.domain.money import DEFAULT_CURRENCY
from billing_graphql.graphql.columns import Form, Nested, RootQuery, Statement, columns, global_id, renamed
from billing_graphql.graphql.common import (
    Money,
    Role,
    connection_from_page,
    from_row,
    load_nodes,
    offset_after,
    page_size,
)
from billing_graphql.graphql.permissions import MANAGERS, allow
from billing_graphql.graphql.platform.balance import CreditBalanceTransactionConnection, CreditBalanceTransactionType
from billing_graphql.graphql.platform.billing_details import BillingDetailsType
from billing_graphql.services.pagination import read_page
from billing_graphql.services.platform.organizations import organization_statement

if TYPE_CHECKING:
    from billing_graphql.graphql.billing.credit_note_types import CreditNoteConnection


async def _billing_details(root: "OrganizationType", info: Info) -> BillingDetailsType:
    value = await info.context.loaders.billing_details_by_organization.load(uuid.UUID(root.id))
    return BillingDetailsType.from_value(value)


def credit_balance_transactions_query(context: Info, organization_id: uuid.UUID, first: int | None = 10,
                                      after: str | None = None) -> RootQuery:
    """The statement and page of ``Organization.creditBalanceTransactions`` (of the organization
    ``organization_id``): the resolver reads it, the SQL tier (``graphql.sql_roots.FIELDS``) writes it as JSON."""
    from billing_graphql.services.billing.balance import credit_balance_transactions_statement

    return RootQuery(Statement(credit_balance_transactions_statement, (organization_id,)), page_size(first),
                     offset_after(after))


async def _credit_balance_transactions(root: "OrganizationType", info: Info, first: int | None = 10,
                                      after: str | None = None) -> CreditBalanceTransactionConnection | None:
    query = credit_balance_transactions_query(info.context, uuid.UUID(root.id), first, after)
    page = await read_page(info.context.db, query.statement, first=query.first, offset=query.offset)
    return connection_from_page(CreditBalanceTransactionConnection, page, CreditBalanceTransactionType.from_row)


def credit_notes_query(context: Any, organization_id: uuid.UUID, first: int | None = 10,
                       after: str | None = None) -> RootQuery | None:
    """The statement and page of ``Organization.creditNotes`` of the organization ``organization_id`` (None: not
    visible to the caller, null)."""
    from billing_graphql.graphql.billing.credit_note_types import credit_note_visible
    from billing_graphql.services.billing.credit_notes import credit_notes_statement

    if not credit_note_visible(context.actor, organization_id):
        return None
    return RootQuery(Statement(credit_notes_statement, (organization_id,)), page_size(first), offset_after(after))


@strawberry.type(name="Organization", description="A tenant of the SaaS.")
class OrganizationType(relay.Node):
    id: relay.NodeID[str]
    name: str
    external_id: str = strawberry.field(description="The SaaS's own id for this tenant (the session token's 'org').")
    currency: str = strawberry.field(
        description="What it is billed in (ISO 4217): its default plan is the cheapest active plan in this currency "
                    "and planLimits lists this currency's plans. Default BILLING_DEFAULT_CURRENCY (IDR).")
    credit_balance: Money = strawberry.field(
        description="Account credit to be spent on the next invoices; zero (in the default currency) when none."
    )
    billing_details: BillingDetailsType = strawberry.field(
        resolver=_billing_details,
        description="Who its invoices are addressed to (owners change it with updateBillingDetails).")
    credit_balance_transactions: CreditBalanceTransactionConnection | None = strawberry.field(
        resolver=_credit_balance_transactions, extensions=allow(*MANAGERS),
        description="The account balance's ledger, newest first: creditBalance is the sum of its amounts "
                    "(owners, admins, super-admins).")
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="Its credit notes, newest first (owners, admins, super-admins; null for others).")
    async def credit_notes(
        self, info: Info, first: int | None = 10, after: str | None = None
    ) -> Annotated[CreditNoteConnection, strawberry.lazy("billing_graphql.graphql.billing.credit_note_types")] | None:
        from billing_graphql.graphql.billing.credit_note_types import CreditNoteConnection, CreditNoteType

        query = credit_notes_query(info.context, uuid.UUID(self.id), first, after)
        if query is None:
            return None
        page = await read_page(info.context.db, query.statement, first=query.first, offset=query.offset)
        return connection_from_page(CreditNoteConnection, page, CreditNoteType.from_row)

    @classmethod
    def from_row(cls, row: OrganizationRow) -> OrganizationType:
        return from_row(cls, row)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        actor = info.context.actor
        return await load_nodes(info.context.loaders.organization_by_id, node_ids, cls.from_row,
                                lambda row: actor is not None and actor.may_see(row.id))


@strawberry.type(name="ApiKey", description="An API key; its secret is shown once, when created.")
class ApiKeyType:
    id: strawberry.ID
    role: Role
    label: str
    prefix: str = strawberry.field(description="The key's first characters, to tell keys apart.")
    organization_id: strawberry.ID | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: ApiKeyRow) -> ApiKeyType:
        return from_row(cls, row)


columns(
    OrganizationType, OrganizationRow,
    credit_balance=Form(  # no credit yet: zero in the default currency
        lambda row: Money.of(row.credit_balance, row.credit_currency or DEFAULT_CURRENCY),
        Nested("Money", lambda sql, row, *parents: (f"{row}.credit_balance",
                                                    f"coalesce({row}.credit_currency, '{DEFAULT_CURRENCY}')"))),
)
columns(
    ApiKeyType, ApiKeyRow,
    id=global_id("ApiKey"),
    prefix=renamed("key_prefix"),
    organization_id=Form(
        lambda row: strawberry.ID(relay.to_base64("Organization", row.organization_id)) if row.organization_id else None,
        lambda sql, row, *parents: (f"CASE WHEN {row}.organization_id IS NULL THEN NULL "
                                    f"ELSE {sql.global_id('Organization', f'{row}.organization_id')} END")),
)


@strawberry.type(description="Who is calling.")
class Viewer:
    role: Role
    subject: str
    organization_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def organization(self, info: Info) -> OrganizationType | None:
        query = viewer_organization_query(info.context, self)
        if query is None:
            return None
        row = await info.context.loaders.organization_by_id.load(query.key)
        return OrganizationType.from_row(row) if row else None


def viewer_organization_query(context: Any, viewer: Viewer) -> RootQuery | None:
    """The row of ``Viewer.organization``: the caller's own organization (None: the caller has none, null). Its
    resolver loads that row by ``key`` (``organization_by_id``); the SQL tier (``graphql.sql_roots.FIELDS``) writes
    the same row, and the connections selected below it, as JSON in one statement."""
    if viewer.organization_id is None:
        return None
    return RootQuery(Statement(organization_statement, (viewer.organization_id,)), key=viewer.organization_id)


@strawberry.type
class OrganizationConnection(relay.Connection[OrganizationType]):
    """Organizations, paged."""
