"""One unit of work for money-moving use cases (DESIGN.md sections 1 and 5).

``money_move`` owns what every such use case needs, in this order:

1. a write session in one transaction (``Database.write``: BEGIN IMMEDIATE on SQLite);
2. the organization's lock, taken first, before anything is read (``FOR UPDATE`` on
   PostgreSQL), and the organization row (NOT_FOUND when it does not exist);
3. the idempotency check: with a key seen before for the same operation and request,
   ``uow.replayed`` is true and ``uow.stored`` holds the stored response (the body rebuilds
   its result from it and writes nothing); the same key with another request is
   IDEMPOTENCY_KEY_REUSED;
4. audit rows and outbox events (``uow.record`` / ``uow.audit`` / ``uow.emit``) in the same
   transaction;
5. the payment gateways, taken from the application's state (``uow.gateway(name)``), so tests
   hand in their own;
6. on leaving the block: the response given to ``uow.done`` is stored under the key, and the
   transaction commits. An exception (a ``BillingError`` included) rolls everything back,
   so the same key may be retried once the cause is fixed.

A use case then reads::

    async with money_move(db, organization_id, "pay_invoice", key, request,
                          actor=actor, now=now, gateways=gateways) as uow:
        if uow.replayed:
            return await rebuild(uow.session, uow.stored)
        ...validate, load, call the domain, write...
        uow.done(result.response())
    return result
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database, lock_organization
from billing_graphql.db.models import Organization
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import not_found
from billing_graphql.gateways import GatewayRegistry, PaymentGateway
from billing_graphql.services.platform import idempotency
from billing_graphql.services.platform.audit import emit_event, record_audit, record_change


@dataclass(slots=True)
class MoneyMove:
    """The open unit of work: its session, the locked organization, and what it writes."""

    session: AsyncSession
    organization: Organization
    operation: str
    key: str | None
    request: dict[str, Any]
    actor: Actor | None
    now: datetime
    gateways: GatewayRegistry
    stored: dict[str, Any] | None = None
    response: dict[str, Any] | None = field(default=None)

    @property
    def organization_id(self) -> uuid.UUID:
        return self.organization.id

    @property
    def replayed(self) -> bool:
        """True when the key was seen before: ``stored`` is its response; write nothing."""
        return self.stored is not None

    def gateway(self, name: str, field_name: str | None = "paymentMethodId") -> PaymentGateway:
        """The gateway called ``name``; PAYMENT_FAILED (on ``field_name``) when it is unavailable."""
        return self.gateways.require(name, field_name)

    def derived_id(self, purpose: str) -> uuid.UUID | None:
        """A stable id for a row this keyed call creates (the same on a retry); None without a key."""
        if self.key is None:
            return None
        return idempotency.derived_id(self.organization.id, self.operation, self.key, purpose)

    def record(self, action: str, object_type: str, object_id: uuid.UUID | str, *,
               before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
        """An audit row and the outbox event named ``action`` (its payload: ``after``, else ``before``)."""
        record_change(self.session, actor=self.actor, action=action, object_type=object_type, object_id=object_id,
                      organization_id=self.organization.id, now=self.now, before=before, after=after)

    def audit(self, action: str, object_type: str, object_id: uuid.UUID | str, *,
              before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
              reason: str | None = None) -> None:
        """An audit row only."""
        record_audit(self.session, actor=self.actor, action=action, object_type=object_type, object_id=object_id,
                     organization_id=self.organization.id, now=self.now, before=before, after=after, reason=reason)

    def emit(self, event_type: str, payload: dict[str, Any]) -> None:
        """An outbox event only (a curated public payload)."""
        emit_event(self.session, event_type=event_type, organization_id=self.organization.id, payload=payload,
                   now=self.now)

    def done(self, response: dict[str, Any]) -> None:
        """The response to keep under the idempotency key (ids to rebuild the result from)."""
        self.response = response


async def locked_organization(session: AsyncSession, organization_id: uuid.UUID) -> Organization:
    """Take the organization's lock (first, before reading anything) and load it (NOT_FOUND when
    it does not exist). ``money_move`` starts with it; writes that move no money use it alone."""
    await lock_organization(session, organization_id)
    organization = await session.get(Organization, organization_id)
    if organization is None:
        raise not_found("Organization", "organizationId")
    return organization


@asynccontextmanager
async def money_move(
    db: Database,
    organization_id: uuid.UUID,
    operation: str,
    idempotency_key: str | None,
    request: dict[str, Any],
    *,
    actor: Actor | None,
    now: datetime,
    gateways: GatewayRegistry,
) -> AsyncIterator[MoneyMove]:
    """Run a money-moving use case for one organization (see the module's docstring)."""
    key = idempotency.clean_key(idempotency_key)
    async with db.write() as session:
        session.info["now"] = now  # the instant of the changes (db.mrr_history dates revisions with it)
        organization = await locked_organization(session, organization_id)
        stored = await idempotency.find_idempotent(
            session, scope_id=organization_id, key=key, operation=operation, request=request
        )
        uow = MoneyMove(session=session, organization=organization, operation=operation, key=key, request=request,
                        actor=actor, now=now, gateways=gateways, stored=stored)
        yield uow
        if stored is None and uow.response is not None:
            idempotency.store_idempotent(session, scope_id=organization_id, key=key, operation=operation,
                                         request=request, response=uow.response, now=now)
        await session.flush()
