"""Root fields for reading invoices (owners, admins; super-admins across organizations)."""

from __future__ import annotations

import uuid
from typing import Any

import strawberry
from strawberry import relay

from billing_graphql.domain.actors import Actor
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.permissions import MANAGERS, allow
from billing_graphql.graphql.columns import RootQuery, Statement
from billing_graphql.graphql.common import connection_from_page, offset_after, page_size
from billing_graphql.graphql.ids import NOWHERE, read_id
from billing_graphql.graphql.scope import read_scope
from billing_graphql.graphql.billing.types import InvoiceConnection, InvoiceStatus, InvoiceType
from billing_graphql.services.billing import invoicing
from billing_graphql.services.pagination import read_page


@strawberry.type
class Query:
    @strawberry.field(
        extensions=allow(*MANAGERS),
        description="The organization's invoices, newest first. Super-admins may pass organizationId (default: all).",
    )
    async def invoices(
        self, info: Info, status: InvoiceStatus | None = None, organization_id: strawberry.ID | None = None,
        first: int | None = 10, after: str | None = None,
    ) -> InvoiceConnection | None:
        query = invoices_query(info.context, status, organization_id, first, after)
        if query is None:
            return _empty()
        page = await read_page(info.context.db, query.statement, first=query.first, offset=query.offset)
        return connection_from_page(InvoiceConnection, page, InvoiceType.from_row)

    @strawberry.field(extensions=allow(*MANAGERS), description="One invoice of the caller's organization.")
    async def invoice(self, info: Info, id: strawberry.ID) -> InvoiceType | None:
        actor = info.context.actor
        invoice_id = read_id(id, "Invoice")
        scope = None if actor.is_super_admin else actor.organization_id
        return InvoiceType.maybe(await invoicing.get_invoice(info.context.db, invoice_id, organization_id=scope))


def invoices_query(context: Any, status: Any = None, organization_id: str | None = None, first: int | None = 10,
                   after: str | None = None) -> RootQuery | None:
    """The statement and page of ``invoices`` (None: the empty page): the resolver reads it, the SQL tier
    (``graphql.sql_roots``) wraps it in JSON."""
    request = invoice_page_request(context.actor, organization_id, first, after)
    if request is None:
        return None
    scope, size, offset = request
    return RootQuery(Statement(invoicing.invoices_statement, (scope, status)), size, offset)


def invoice_page_request(actor: Actor, organization_id: str | None, first: int | None, after: str | None) -> tuple[uuid.UUID | None, int, int] | None:
    """(organization scope, page size, offset) of an invoices page; None: the empty page.

    Tenants read their own organization (another one reads as empty); super-admins the one named,
    or all. A bad page size, cursor or id is the caller's error. The compiled SQL plan shares this."""
    size, offset = page_size(first), offset_after(after)
    scope = read_scope(actor, organization_id, across=True)
    if scope == NOWHERE:
        return None
    return scope, size, offset


def _empty() -> InvoiceConnection:
    return InvoiceConnection(
        edges=[],
        page_info=relay.PageInfo(has_next_page=False, has_previous_page=False, start_cursor=None, end_cursor=None),
    )
