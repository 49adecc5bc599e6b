"""What subscription use cases return: the change, its invoice preview, and its replay."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.models import Invoice, Payment, Subscription
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError
from billing_graphql.domain.invoices import InvoiceDraft, LineDraft, Totals
from billing_graphql.services.billing.charging import payment_error
from billing_graphql.services.platform.audit import emit_event, record_audit, snapshot, to_json
from billing_graphql.services.webhooks.objects import event_data

SUBSCRIPTION_FIELDS = (
    "plan_id", "status", "billing_period", "current_period_start", "current_period_end", "trial_ends_at",
    "cancel_at_period_end", "cancel_reason", "agent_count", "coupon_id", "coupon_periods_remaining",
    "spending_cap", "pending_plan_id", "pending_billing_period", "payment_gateway", "gateway_customer_id",
    "gateway_subscription_id",
)


@dataclass(frozen=True, slots=True)
class InvoicePreview(InvoiceDraft):
    """What a change would bill (a dry run), or did: the draft's lines and totals, and
    ``credit_added`` for a change that credits."""

    credit_added: int = 0
    message: str | None = None

    @classmethod
    def nothing_due(cls, currency: str, message: str) -> InvoicePreview:
        """A zero preview: the change bills nothing now (a plan change during a trial)."""
        return cls(currency, (), 0, 0, 0, None, 0, 0, 0, 0, message)

    @classmethod
    def of_invoice(cls, draft: InvoiceDraft) -> InvoicePreview:
        return cls(draft.currency, draft.lines, draft.subtotal, draft.discount, draft.tax, draft.tax_rule,
                   draft.total, draft.credit_applied, draft.amount_due, 0)

    @classmethod
    def of_credit(cls, lines: list[LineDraft], totals: Totals) -> InvoicePreview:
        return cls(totals.currency, tuple(lines), totals.subtotal, totals.discount, totals.tax, totals.tax_rule,
                   totals.total, 0, 0, -totals.total)


@dataclass(slots=True)
class SubscriptionChange:
    """The outcome of a subscription service call."""

    subscription: Subscription
    invoice: Invoice | None = None
    payment: Payment | None = None
    credit_added: int = 0
    preview: InvoicePreview | None = None
    replayed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def payment_error(self) -> BillingError | None:
        return payment_error(self.payment)

    def response(self) -> dict[str, Any]:
        """What the idempotency record stores: ids to rebuild this result from."""
        return {
            "subscription_id": self.subscription.id,
            "invoice_id": self.invoice.id if self.invoice else None,
            "payment_id": self.payment.id if self.payment else None,
            "credit_added": self.credit_added,
        }


async def result_from_response(session: AsyncSession, response: dict[str, Any]) -> SubscriptionChange:
    subscription = await session.get(Subscription, uuid.UUID(response["subscription_id"]))
    invoice = await session.get(Invoice, uuid.UUID(response["invoice_id"])) if response.get("invoice_id") else None
    payment = await session.get(Payment, uuid.UUID(response["payment_id"])) if response.get("payment_id") else None
    return SubscriptionChange(subscription=subscription, invoice=invoice, payment=payment,
                              credit_added=int(response.get("credit_added") or 0), replayed=True)


def subscription_snapshot(subscription: Subscription, *more: str) -> dict[str, Any]:
    """The subscription's fields an audit row and an event carry (JSON-safe)."""
    return snapshot(subscription, *SUBSCRIPTION_FIELDS, *more)


def announce_subscription(
    session: AsyncSession, actor: Actor | None, subscription: Subscription, *, action: str, event: str,
    now: datetime, before: dict[str, Any] | None = None, reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """The outbox ``event`` (the subscription now, ``previous`` with ``before``, and ``extra``)
    and the audit row ``action`` (before, after with ``extra``, reason) of a subscription change."""
    after = subscription_snapshot(subscription)
    emit_event(session, event_type=event, organization_id=subscription.organization_id,
               payload=event_data("Subscription", subscription, before=before, ids={"invoice_id": "Invoice"},
                                  **(extra or {})), now=now)
    record_audit(session, actor=actor, action=action, object_type="Subscription", object_id=subscription.id,
                 organization_id=subscription.organization_id, now=now, before=before,
                 after={**after, **to_json(extra)} if extra else after, reason=reason)
