"""One unit of work for money-moving use cases (DESIGN.md sections 1 and 5).

``money_move`` owns what every such use case needs, in this order:

1. a write session in one transaction (``Database.write``: BEGIN IMMEDIATE on SQLite);
2. the organization's lock, taken first, before anything is read (``FOR UPDATE`` on
   PostgreSQL), and the organization row (NOT_FOUND when it does not exist);
3. the idempotency check: with a key seen before for the same operation and request,
   ``uow.replayed`` is true and ``uow.stored`` holds the stored response (the body rebuilds
   its result from it and writes nothing); the same key with another request is
   IDEMPOTENCY_KEY_REUSED. The key is checked (``idempotency.clean_key``) before anything else;
4. audit rows and outbox events (``uow.record`` / ``uow.audit`` / ``uow.emit``) in the same
   transaction;
5. the payment gateways, taken from the application's state (``uow.gateway(name)``), so tests
   hand in their own (``GatewayRegistry(settings, overrides={...})``);
6. on leaving the block: the response given to ``uow.done`` is stored under the key, and the
   transaction commits. An exception (a ``BillingError`` included) rolls everything back,
   so the same key may be retried once the cause is fixed;
7. a failure that must leave a trace (a declined first payment): the body raises
   ``uow.kept_failure(error, action=..., ...)``. Everything the body wrote is rolled back; then,
   in a second transaction under the same lock, the audit row of the attempt is written and
   the error is stored under the idempotency key, so the same key replays the same error
   (``BillingError``) instead of trying again. A new key tries again.

Variants:

- ``organization_id=None``: work that belongs to no organization yet (an inbound gateway
  event): no lock is taken, ``uow.organization`` is None and keys live in the unscoped space
  (``idempotency.NO_SCOPE``); the unique (scope, key) constraint then decides between
  concurrent callers, so the caller handles its ``IntegrityError``.
- ``dry_run=True``: the same checks and pricing in a read-only session: no lock, no
  idempotency record is looked up or kept, and the body must write nothing.
- ``claim="skip_locked"``: a worker's claim (the billing run). On PostgreSQL the lock is taken
  with ``FOR UPDATE SKIP LOCKED`` in the same query that loads the organization; when another
  transaction holds it (or the organization is gone) the block gets ``None`` instead of a unit of
  work and does nothing: the holder does the work. On SQLite the write transaction already
  serializes the workers, so the claim waits as usual.
- ``instant="step"``: the body does work due at several past instants, one step after another
  (``with uow.at(step_at):`` dates its events and audit rows), and the changes keep the instants
  their rows carry (``updated_at``) rather than all being dated ``now``
  (``db.mrr_history`` reads ``session.info["now"]`` only when it is set).

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
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database, lock_organization
from billing_graphql.db.models import Organization
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found
from billing_graphql.gateways import GatewayError, GatewayRegistry, PaymentGateway
from billing_graphql.services.platform import idempotency
from billing_graphql.services.platform.audit import emit_event, record_audit, record_change, to_json


ERROR_KEY = "__error__"  # a stored response holding this key is an error to replay


class KeptFailure(Exception):
    """Raised out of a ``money_move`` body: roll its work back, keep ``error`` under the key and
    the audit row of the attempt (see the module's docstring, step 7)."""

    def __init__(self, error: BillingError, *, action: str, object_type: str, object_id: uuid.UUID | str,
                 after: dict[str, Any] | None, reason: str | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.action, self.object_type, self.object_id = action, object_type, object_id
        self.after, self.reason = after, reason


def _stored_error(error: BillingError) -> dict[str, Any]:
    return {ERROR_KEY: {"code": error.code.value, "message": error.message, "field": error.field}}


def _replayed_error(stored: dict[str, Any]) -> BillingError:
    error = stored[ERROR_KEY]
    return BillingError(BillingErrorCode(error["code"]), error["message"], field=error["field"])


@dataclass(slots=True)
class MoneyMove:
    """The open unit of work: its session, the locked organization, and what it writes."""

    session: AsyncSession
    organization: Organization | None
    operation: str
    key: str | None
    request: dict[str, Any]
    actor: Actor | None
    now: datetime
    gateways: GatewayRegistry | None
    stored: dict[str, Any] | None = None
    response: dict[str, Any] | None = field(default=None)

    @property
    def organization_id(self) -> uuid.UUID | None:
        return self.organization.id if self.organization is not None else None

    @property
    def scope_id(self) -> uuid.UUID:
        """Where the idempotency key lives: the organization, else the unscoped space."""
        return self.organization.id if self.organization is not None else idempotency.NO_SCOPE

    @property
    def replayed(self) -> bool:
        """True when the key was seen before: ``stored`` is its response; write nothing."""
        return self.stored is not None

    def gateway(self, name: str, field_name: str | None = "paymentMethodId") -> PaymentGateway:
        """The gateway called ``name``; PAYMENT_FAILED (on ``field_name``) when it is unavailable."""
        if self.gateways is None:
            raise ValueError(f"the {self.operation} unit of work was opened without gateways")
        return self.gateways.require(name, field_name)

    def available_gateway(self, name: str) -> PaymentGateway | None:
        """The gateway called ``name``, or None when it is unknown or not configured (for work that
        records the failure itself instead of refusing: the billing run)."""
        if self.gateways is None:
            raise ValueError(f"the {self.operation} unit of work was opened without gateways")
        try:
            return self.gateways.get(name)
        except (GatewayError, LookupError, ValueError):
            return None

    @contextmanager
    def at(self, instant: datetime) -> Iterator[MoneyMove]:
        """Inside the block, the unit of work acts at ``instant`` (a step of work due then): what
        it records is dated ``instant``. ``now`` is back to what it was afterwards."""
        outer, self.now = self.now, instant
        try:
            yield self
        finally:
            self.now = outer

    def derived_id(self, purpose: str) -> uuid.UUID | None:
        """A stable id for a row this keyed call creates (the same on a retry); None without a key."""
        if self.key is None:
            return None
        return idempotency.derived_id(self.scope_id, self.operation, self.key, purpose)

    def record(self, action: str, object_type: str, object_id: uuid.UUID | str, *, subject: Any,
               before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
        """An audit row and the outbox event named ``action`` (``subject``, the row, as the API shows it)."""
        record_change(self.session, actor=self.actor, action=action, object_type=object_type, object_id=object_id,
                      organization_id=self.organization_id, now=self.now, before=before, after=after,
                      subject=subject)

    def audit(self, action: str, object_type: str, object_id: uuid.UUID | str, *,
              before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
              reason: str | None = None) -> None:
        """An audit row only."""
        record_audit(self.session, actor=self.actor, action=action, object_type=object_type, object_id=object_id,
                     organization_id=self.organization_id, now=self.now, before=before, after=after, reason=reason)

    def emit(self, event_type: str, payload: dict[str, Any]) -> None:
        """An outbox event only (a curated public payload)."""
        emit_event(self.session, event_type=event_type, organization_id=self.organization_id, payload=payload,
                   now=self.now)

    def kept_failure(self, error: BillingError, *, action: str, object_type: str, object_id: uuid.UUID | str,
                     after: dict[str, Any] | None = None, reason: str | None = None) -> KeptFailure:
        """The exception to raise for a failure whose attempt is audited and whose error is kept
        under the idempotency key, while everything else the body wrote is rolled back."""
        return KeptFailure(error, action=action, object_type=object_type, object_id=object_id, after=after,
                           reason=reason)

    def done(self, response: dict[str, Any]) -> None:
        """The response to keep under the idempotency key (ids to rebuild the result from)."""
        self.response = response


async def locked_organization(session: AsyncSession, organization_id: uuid.UUID) -> Organization:
    """Take the organization's lock (first, before reading anything) and load it (NOT_FOUND when
    it does not exist). ``money_move`` starts with it; writes that move no money use it alone."""
    organization = await _claimed_organization(session, organization_id, skip_locked=False)
    if organization is None:
        raise not_found("Organization", "organizationId")
    return organization


async def _claimed_organization(session: AsyncSession, organization_id: uuid.UUID, *,
                                skip_locked: bool) -> Organization | None:
    """The organization, locked by this transaction; None when another one holds it (``skip_locked``,
    PostgreSQL: one ``FOR UPDATE SKIP LOCKED`` query) or it does not exist."""
    if not skip_locked:
        await lock_organization(session, organization_id)
        return await session.get(Organization, organization_id)
    return await session.scalar(
        select(Organization).where(Organization.id == organization_id)
        .with_for_update(skip_locked=True).execution_options(populate_existing=True))


@asynccontextmanager
async def money_move(
    db: Database,
    organization_id: uuid.UUID | None,
    operation: str,
    idempotency_key: str | None,
    request: dict[str, Any],
    *,
    actor: Actor | None,
    now: datetime,
    gateways: GatewayRegistry | None = None,
    dry_run: bool = False,
    claim: Literal["wait", "skip_locked"] = "wait",
    instant: Literal["now", "step"] = "now",
) -> AsyncIterator[MoneyMove | None]:
    """Run a money-moving use case for one organization (see the module's docstring)."""
    key = idempotency.clean_key(idempotency_key)
    try:
        async with db.read() if dry_run else db.write() as session:
            if instant == "now":
                session.info["now"] = now  # the instant of the changes (db.mrr_history dates revisions with it)
            organization = None
            if dry_run:
                organization = await session.get(Organization, organization_id)
                if organization is None:
                    raise not_found("Organization", "organizationId")
            elif claim == "skip_locked":
                organization = await _claimed_organization(session, organization_id, skip_locked=not db.is_sqlite)
                if organization is None:
                    yield None  # held by another transaction (or gone): not claimed
                    return
            elif organization_id is not None:
                organization = await locked_organization(session, organization_id)
            uow = MoneyMove(session=session, organization=organization, operation=operation, key=key,
                            request=request, actor=actor, now=now, gateways=gateways)
            if not dry_run:
                uow.stored = await idempotency.find_idempotent(
                    session, scope_id=uow.scope_id, key=key, operation=operation, request=request
                )
                if uow.stored is not None and ERROR_KEY in uow.stored:
                    raise _replayed_error(uow.stored)
            yield uow
            if dry_run:
                return
            if uow.stored is None and uow.response is not None:
                idempotency.store_idempotent(session, scope_id=uow.scope_id, key=key, operation=operation,
                                             request=request, response=uow.response, now=now)
            await session.flush()
    except KeptFailure as failure:
        if dry_run:
            raise failure.error from None
        await _keep_failure(db, failure, organization_id=organization_id, operation=operation, key=key,
                            request=request, actor=actor, now=now)
        raise failure.error from None


async def _keep_failure(db: Database, failure: KeptFailure, *, organization_id: uuid.UUID | None, operation: str,
                        key: str | None, request: dict[str, Any], actor: Actor | None, now: datetime) -> None:
    """The second transaction of a kept failure: the attempt's audit row and, under a key, the error."""
    async with db.write() as session:
        scope_id = idempotency.NO_SCOPE
        if organization_id is not None:
            await locked_organization(session, organization_id)
            scope_id = organization_id
        record_audit(session, actor=actor, action=failure.action, object_type=failure.object_type,
                     object_id=failure.object_id, organization_id=organization_id, now=now, after=to_json(failure.after),
                     reason=failure.reason)
        # A concurrent retry with the same key may have kept it first (it waited on the lock).
        if await idempotency.find_idempotent(session, scope_id=scope_id, key=key, operation=operation,
                                             request=request) is None:
            idempotency.store_idempotent(session, scope_id=scope_id, key=key, operation=operation, request=request,
                                         response=_stored_error(failure.error), now=now)
