"""What an event's ``data.object`` is: the object as the GraphQL API shows it.

One shape per object type an event carries, in the API's dialect: the GraphQL field names
(camelCase), Relay global ids (``id``, and ``{"id": ...}`` for an object it points at), money as
``Money {amount, currency, formatted}`` (``amount`` a decimal string in major units), enums by
name, times as ISO-8601 UTC with ``Z``. A shape lists the GraphQL fields it leaves out (lists and
figures computed at read time: fetch the object by its id for those); a test compares every event
type's object with the same object fetched over GraphQL, field by field, so they cannot drift.
"""

from __future__ import annotations

import base64
import enum
import functools
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing_graphql.domain.invoices import amount_due
from billing_graphql.domain.money import DEFAULT_CURRENCY, Money
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.services.platform.audit import PLAIN_TYPES, JsonData, to_json


@functools.cache  # a field name: a few dozen of them, asked for on every event
def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def global_id(type_name: str, key: uuid.UUID | str | None) -> str | None:
    """The Relay global id the API shows: base64 of ``Type:key``."""
    return None if key is None else base64.b64encode(f"{type_name}:{key}".encode()).decode()


def money(minor: int | None, currency: str | None) -> dict[str, str] | None:
    if minor is None or currency is None:
        return None
    amount, formatted = _money_text(int(minor), currency)
    return {"amount": amount, "currency": currency, "formatted": formatted}


@functools.lru_cache(maxsize=4096)  # the same few amounts recur on every invoice event of a billing run
def _money_text(minor: int, currency: str) -> tuple[str, str]:
    value = Money(minor, currency)
    return format(value.amount, "f"), value.format()


@functools.lru_cache(maxsize=4096)  # a billing run's events show the same few instants again and again
def _instant_text(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def scalar(value: Any) -> Any:
    """A value as the GraphQL scalars serialize it."""
    if value is None or type(value) in PLAIN_TYPES:  # most of an object's fields: nothing to convert
        return value
    if isinstance(value, datetime):
        return _instant_text(value)
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [scalar(item) for item in value]
    if isinstance(value, Mapping):
        return {camel(str(key)): scalar(item) for key, item in value.items()}
    return to_json(value)  # a date, a set: as the outbox stores them


@dataclass(frozen=True)
class Shape:
    """An object type's event shape: ``plain`` attributes copied under their camelCase names,
    ``money`` fields (attribute of the minor amount), ``refs`` (field -> (attribute, type)),
    ``computed`` fields, and the GraphQL fields ``omitted``."""

    type_name: str
    plain: tuple[str, ...]
    money: tuple[str, ...] = ()
    currency: Callable[[Any], str] = lambda row: row.currency
    refs: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    computed: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    omitted: tuple[str, ...] = ()

    @functools.cached_property
    def _named(self) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
        """The ``plain`` and ``money`` attributes, each with its field's (camelCase) name."""
        return (tuple((name, camel(name)) for name in self.plain),
                tuple((name, camel(name)) for name in self.money))

    def of(self, row: Any) -> dict[str, Any]:
        shown: dict[str, Any] = {"id": global_id(self.type_name, row.id)}
        plain, money_fields = self._named
        for name, shown_as in plain:
            value = getattr(row, name)
            shown[shown_as] = value if value is None or type(value) in PLAIN_TYPES else scalar(value)
        if money_fields:
            currency = self.currency(row)
            for name, shown_as in money_fields:
                shown[shown_as] = money(getattr(row, name), currency)
        for name, (attribute, type_name) in self.refs.items():
            key = getattr(row, attribute)
            shown[name] = None if key is None else {"id": global_id(type_name, key)}
        for name, compute in self.computed.items():
            shown[name] = scalar(compute(row))
        return shown


SHAPES: dict[str, Shape] = {shape.type_name: shape for shape in (
    Shape("Subscription",
          plain=("status", "billing_period", "cancel_at_period_end", "cancel_reason", "canceled_at", "ended_at",
                 "trial_ends_at", "current_period_start", "current_period_end", "payment_gateway",
                 "gateway_customer_id", "gateway_subscription_id", "agent_count", "retry_count", "last_retry_at",
                 "plan_version", "pending_plan_version", "created_at", "updated_at"),
          refs={"organization": ("organization_id", "Organization"), "plan": ("plan_id", "Plan")},
          computed={"trialEndDate": lambda row: row.trial_ends_at,
                    "isTrial": lambda row: row.status is SubscriptionStatus.TRIALING},
          omitted=("expiredTrial", "addons", "coupon", "pendingChange", "spendingCap", "nextRetryAt",
                   "upcomingInvoice")),
    Shape("Invoice",
          plain=("currency", "status", "billing_reason", "tax_name", "tax_rate", "retry_count", "last_retry_at",
                 "created_at", "finalized_at", "paid_at", "due_date", "period_start", "period_end",
                 "gateway_invoice_id", "payment_url", "voided_at", "marked_uncollectible_at"),
          money=("subtotal", "discount", "credit_applied", "tax", "total", "amount_paid", "amount_refunded",
                 "amount_credited"),
          refs={"organization": ("organization_id", "Organization"), "subscription": ("subscription_id", "Subscription")},
          computed={"invoiceNumber": lambda row: row.number,
                    "taxBase": lambda row: (f"{row.tax_base_numerator}/{row.tax_base_denominator}"
                                            if row.tax_name is not None else None),
                    "amountDue": lambda row: money(amount_due(row), row.currency)},
          omitted=("pdfUrl", "billingDetails", "lines", "payments", "refunds", "creditNotes")),
    Shape("InvoiceItem",
          plain=("description", "currency", "quantity", "created_at"),
          refs={"organization": ("organization_id", "Organization"), "invoice": ("invoice_id", "Invoice")},
          computed={"amount": lambda row: money(row.unit_amount, row.currency),
                    "total": lambda row: money(row.amount, row.currency),
                    "status": lambda row: "INVOICED" if row.invoice_id else "PENDING"}),
    Shape("CreditNote",
          plain=("number", "status", "reason", "outcome", "memo", "currency", "tax_name", "tax_rate", "created_at"),
          money=("subtotal", "tax", "total"),
          refs={"invoice": ("invoice_id", "Invoice")},
          omitted=("pdfUrl", "lines", "refunds")),
    Shape("PaymentMethod",
          plain=("gateway", "gateway_payment_method_id", "type", "label", "brand", "last4", "exp_month", "exp_year",
                 "is_default", "created_at"),
          refs={"organization": ("organization_id", "Organization")}),
    Shape("Refund", plain=("status", "reason", "created_at"), money=("amount",)),
    Shape("Organization", plain=("name", "external_id", "currency", "created_at", "updated_at"), money=("credit_balance",),
          currency=lambda row: row.credit_currency or DEFAULT_CURRENCY, omitted=("billingDetails", "creditBalanceTransactions", "creditNotes")),
    Shape("Plan",
          plain=("name", "slug", "description", "currency", "included_agents", "trial_days", "is_active",
                 "sort_order", "version", "created_at", "updated_at"),
          money=("base_price_monthly", "base_price_annual", "per_agent_price", "overage_message_price"),
          omitted=("charges", "limits", "maxAgents", "maxContacts", "maxMessagesMonth", "maxChannels", "maxAiAgents",
                   "features", "aiAgent", "apiAccess", "dedicatedSupport")),
    Shape("Addon",
          plain=("name", "slug", "description", "currency", "unit", "is_active", "sort_order", "created_at",
                 "updated_at"),
          money=("price_monthly", "price_annual")),
    Shape("Coupon",
          plain=("code", "name", "discount_type", "percent_off", "currency", "duration", "duration_in_months", "max_uses",
                 "current_uses", "valid_from", "valid_until", "is_active", "created_at", "updated_at"),
          money=("amount_off",), currency=lambda row: row.currency,
          omitted=("discountValue", "applicablePlans")),
    Shape("WebhookEndpoint",
          plain=("url", "description", "enabled", "disabled_reason", "previous_secret_expires_at",
                 "created_at", "updated_at"),
          computed={"events": lambda row: list(row.event_types),
                    "organizationId": lambda row: global_id("Organization", row.organization_id)}),
)}


def wire(values: Mapping[str, Any], ids: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Extra fields of an event in the same dialect: camelCase names, the ``ids`` named (field ->
    type) as global ids, other values as the scalars serialize them."""
    ids = ids or {}
    return {camel(name): global_id(ids[name], value) if name in ids else scalar(value)
            for name, value in values.items()}


def _restored(row: Any, before: Mapping[str, Any]) -> Any:
    """``row`` as it was: its attributes with the JSON snapshot ``before`` read back into their types."""
    values: dict[str, Any] = {}
    for name, value in before.items():
        current = vars(row).get(name)  # loaded attributes only: never a lazy load
        if value is None or current is None or not isinstance(value, str):
            values[name] = value
        elif isinstance(current, datetime):
            values[name] = datetime.fromisoformat(value)
        elif isinstance(current, enum.Enum | uuid.UUID):
            values[name] = type(current)(value)
        else:
            values[name] = value

    class Before:
        def __getattr__(self, name: str) -> Any:
            return values[name] if name in values else getattr(row, name)

    return Before()


def event_data(type_name: str, row: Any, *, before: Mapping[str, Any] | None = None,
               ids: Mapping[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """An event's ``data``: ``object`` (the row as the API shows a ``type_name``), with ``before``
    (a snapshot of its attributes before the change) ``previousAttributes``: the object's fields
    that changed, with their former values; then ``extra`` in the same dialect (``ids`` names
    which of them are global ids of which type)."""
    shape = SHAPES[type_name]
    shown = shape.of(row)
    data = JsonData(object=shown)  # every value made JSON-safe here: emit_event's to_json copies none of it
    if before is not None:
        former = shape.of(_restored(row, before))
        data["previousAttributes"] = {name: value for name, value in former.items() if shown[name] != value}
    data.update(wire(extra, ids))
    return data
