"""Which organization a root field acts on or reads: one policy for every ``organizationId``.

- Tenants act on and read their own organization. Naming another one is answered exactly as
  naming one that does not exist: a mutation's ``NOT_FOUND`` on ``organizationId``, a read of
  nothing (null, or an empty list) in a query.
- Super-admins act on the organization they name. A mutation must name one (``VALIDATION``); a
  field that reads one organization too (a top-level ``BAD_USER_INPUT``), while a list may be
  read across all organizations by naming none.
- A malformed id is the house's id answer (``graphql/ids.py``): ``NOT_FOUND`` in a mutation's
  payload, ``BAD_USER_INPUT`` in a query.
"""

from __future__ import annotations

import uuid

from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import not_found, validation
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import ClientError
from billing_graphql.graphql.ids import NOWHERE, decode_id, read_id

ORGANIZATION_ID_HELP = "Super-admins: the organization to act on (required). Tenants act on their own."
NAME_THE_ORGANIZATION = "Super-admins name the organization: pass organizationId."


def organization_for(info: Info, organization_id: str | None) -> uuid.UUID:
    """Mutations: the organization acted on; raises the payload's BillingError otherwise."""
    actor = info.context.actor
    requested = decode_id(organization_id, "Organization", "organizationId") if organization_id is not None else None
    if actor.is_super_admin and requested is None:
        raise validation(NAME_THE_ORGANIZATION, "organizationId")
    scope = actor.organization_in_scope(requested)
    if scope is None:
        raise not_found("Organization", "organizationId")
    return scope


def read_scope(actor: Actor, organization_id: str | None, *, across: bool = False) -> uuid.UUID | None:
    """Queries: the organization read (``NOWHERE``, which holds nothing, for one out of reach);
    None only for a super-admin naming none of a list read ``across`` organizations."""
    requested = read_id(organization_id, "Organization", "organizationId") if organization_id is not None else None
    if actor.is_super_admin and requested is None and not across:
        raise ClientError(NAME_THE_ORGANIZATION)
    scope = actor.organization_in_scope(requested)
    if scope is None and not actor.is_super_admin:
        return NOWHERE
    return scope
